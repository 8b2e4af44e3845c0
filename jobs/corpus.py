"""The corpus job: prepare -> train -> transfer over a growing corpus, incrementally, in one run.

    ddsp-beam run corpus.toml      # what a scheduler runs every night
    ddsp-beam status corpus.toml   # processed, pending, failed; the last runs

The output root (the config's `output`):

    state.sqlite            runs, stages, inputs by content hash, models (`jobs.state`)
    run.lock                held by the running run
    datasets/<name>/        published datasets (ddsp-beam prepare's layout, `_SUCCESS`)
    models/<name>/          model dirs (checkpoints; training resumes here)
    transfer/               published transfer outputs, report and index.html (`_SUCCESS`)
    report/index.html       the report of the last run
    runs/<run id>/summary.json
    cache/prepare/, cache/transfer/, cache/models/   work kept by content

Each stage does only what changed: a dataset is rebuilt only when its inputs
(by content) or settings changed, and then only new or changed recordings are
analysed (the others are replayed from `cache/prepare`); a model trains only
up to its target step, resuming from its checkpoint; transfer renders only
(input, model) rows whose input, model or settings changed. Everything
readers see is published with one rename, so a run killed at any point
leaves the previous state, and the next run finishes the work.

Exit status: 0 every input succeeded, 1 some inputs failed (each listed), 2 the
run failed (a stage could not run, another run holds the lock, a bad config).
"""

import dataclasses
import glob
import hashlib
import json
import os
import re
import shutil
import sys
import time
import traceback
import uuid
from typing import Dict, List, Optional

import pyarrow.parquet as pq

from jobs import corpus_config
from jobs import state as state_lib
from pipelines import examples
from pipelines import inputs
from pipelines import prepare
from pipelines import prepare_cache
from pipelines import publish
from pipelines import runner
from pipelines import transfer
from pipelines import transfer_cache

EXIT_OK, EXIT_SOME_FAILED, EXIT_RUN_FAILED = 0, 1, 2
MODEL_SETTINGS_FILE = "corpus_model.json"


class StageSkipped(Exception):
  """A stage cannot run because a stage it needs failed (already reported)."""


@dataclasses.dataclass
class StageResult:
  name: str
  status: str  # ok, unchanged, partial (some inputs failed), failed, skipped
  seconds: float = 0.0
  counters: dict = dataclasses.field(default_factory=dict)
  message: str = ""
  failures: List[dict] = dataclasses.field(default_factory=list)  # inputs that failed

  @property
  def exit_code(self) -> int:
    return {"failed": EXIT_RUN_FAILED, "partial": EXIT_SOME_FAILED}.get(self.status, EXIT_OK)


@dataclasses.dataclass
class RunResult:
  run_id: str
  output: str
  exit_code: int
  stages: List[StageResult]
  report: Optional[str]


def _hash(value) -> str:
  return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:16]


def _log(message: str) -> None:
  print(f"[run] {message}", file=sys.stderr, flush=True)


def new_run_id() -> str:
  return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + uuid.uuid4().hex[:6]


def read_json(path: str) -> Optional[dict]:
  """A JSON file's content, or None when it is missing or unreadable."""
  try:
    with open(path, encoding="utf-8") as f:
      return json.load(f)
  except (OSError, ValueError):
    return None


def checkpoint_step(model_dir: str) -> int:
  """Step of the latest complete checkpoint (0 without one).

  Reads TensorFlow's `checkpoint` index (written last, atomically, by each
  save) without importing TensorFlow, and checks that the checkpoint's index
  file exists.
  """
  try:
    with open(os.path.join(model_dir, "checkpoint"), encoding="utf-8") as f:
      match = re.search(r'^model_checkpoint_path: "(?:.*/)?ckpt-(\d+)"', f.read(), re.M)
  except OSError:
    return 0
  if not match or not os.path.exists(os.path.join(model_dir, f"ckpt-{match.group(1)}.index")):
    return 0
  return int(match.group(1))


class CorpusRun:
  """One run of the corpus job over a `CorpusConfig` (use `run_corpus`)."""

  def __init__(self, config: corpus_config.CorpusConfig, beam_args=(), progress: bool = True):
    self.config = config
    self.root = config.output
    self.beam_args = list(config.beam_args) + list(beam_args)
    self.progress = progress
    self.run_id = new_run_id()
    self.state: Optional[state_lib.StateStore] = None
    self.stages: List[StageResult] = []
    self.dataset_fingerprints: Dict[str, str] = {}
    self.details: Dict[str, dict] = {"datasets": {}, "models": {}, "transfer": None}

  def path(self, *parts) -> str:
    return os.path.join(self.root, *parts)

  # Orchestration.
  def run(self) -> RunResult:
    os.makedirs(self.root, exist_ok=True)
    with state_lib.RunLock(self.root):
      with state_lib.StateStore(self.path("state.sqlite")) as self.state:
        for stale in self.state.mark_unfinished_runs():
          _log(f"run {stale['run_id']} (pid {stale['pid']}) did not finish (killed?); "
               "this run takes over its work")
        self._clean_leftovers()
        self.state.begin_run(self.run_id, self.config.path, self.config.text_hash)
        started = time.time()
        _log(f"run {self.run_id}: {self.config.path} -> {self.root}")
        report = None
        try:
          with runner.beam_session(self.beam_args) as self.beam_args:  # one Dask cluster, if any
            for ds in self.config.datasets.values():
              self._stage(f"prepare:{ds.name}", self._prepare, ds)
            for model in self.config.models.values():
              self._stage(f"train:{model.name}", self._train, model)
            if self.config.transfer:
              self._stage("transfer", self._transfer)
        finally:
          exit_code = max([s.exit_code for s in self.stages], default=EXIT_OK)
          summary = self._summary(started, exit_code)
          report = self._report(summary)
          exit_code = max(exit_code, summary["exit_code"])
          self.state.end_run(self.run_id, "ok" if exit_code == EXIT_OK else
                             ("partial" if exit_code == EXIT_SOME_FAILED else "failed"),
                             exit_code, summary)
        return RunResult(self.run_id, self.root, exit_code, self.stages, report)

  def _stage(self, name: str, fn, *args) -> StageResult:
    _log(f"stage {name}")
    started = time.time()
    try:
      result = fn(*args)
    except StageSkipped as e:
      result = StageResult(name, "skipped", message=str(e))
    except Exception as e:  # pylint: disable=broad-except  # one stage's failure is reported
      result = StageResult(name, "failed", message=f"{type(e).__name__}: {e}")
      traceback.print_exc(file=sys.stderr)
    result.name, result.seconds = name, time.time() - started
    self.stages.append(result)
    self.state.record_stage(self.run_id, name, result.status, started, result.seconds,
                            result.counters, result.message)
    for failure in result.failures:
      print(f"FAILED [{failure['error_type']}] {failure['message']}", file=sys.stderr)
    _log(f"stage {name}: {result.status} in {result.seconds:.1f} s"
         + (f" ({result.message})" if result.message else "")
         + "".join(f"; {k} {v}" for k, v in result.counters.items()
                   if k in ("files_computed", "files_cached", "steps_trained", "rendered",
                            "reused")))
    return result

  def _clean_leftovers(self) -> None:
    """Staging folders and work files of runs that were killed (nobody else holds the lock)."""
    patterns = [self.path("datasets", ".*.staging-*"), self.path("datasets", ".*.old-*"),
                self.path(".*.staging-*"), self.path(".*.old-*"), self.path("runs", "*", "work")]
    for pattern in patterns:
      for leftover in glob.glob(pattern):
        shutil.rmtree(leftover, ignore_errors=True)

  # Stages.
  def _prepare(self, ds: corpus_config.DatasetSpec) -> StageResult:
    paths = inputs.expand_inputs(ds.sources)
    if not paths:
      raise ValueError(f"no input file matches {list(ds.sources)}")
    hashes = self.state.hash_files(paths)
    settings = prepare_cache.settings_key(ds.prepare)
    changes = self.state.update_inputs(f"dataset:{ds.name}", hashes, self.run_id, settings)
    fingerprint = _hash([settings, ds.num_shards,
                         sorted((p, hashes[p] or f"unreadable:{p}") for p in paths)])
    self.dataset_fingerprints[ds.name] = fingerprint
    output = self.path("datasets", ds.name)
    info = _published_dataset(output)
    counters = {"inputs": len(paths), **{k: len(v) for k, v in changes.items()},
                "files_computed": 0, "files_cached": 0, "chunks_computed": 0}
    if info and info.get("corpus_fingerprint") == fingerprint:
      status, message = "unchanged", "inputs and settings unchanged: dataset kept"
      errors = pq.read_table(os.path.join(output, "reports", "errors.parquet")).to_pylist()
    else:
      result = prepare.run_prepare(
          paths, output, ds.prepare, self.beam_args, ds.num_shards,
          cache_dir=self.path("cache", "prepare"), hashes={p: h for p, h in hashes.items() if h},
          extra_info={"corpus_fingerprint": fingerprint, "corpus_run": self.run_id})
      c = result.counters
      counters.update(files_computed=c.get("files_computed", c.get("files_read", 0) +
                                           c.get("files_failed", 0) + c.get("files_skipped", 0)),
                      files_cached=c.get("files_cached", 0),
                      chunks_computed=c.get("chunks_computed", 0))
      info, errors, status, message = result.info, result.errors, "ok", "dataset rebuilt"
    counters.update({k: info["counts"][k] for k in ("windows_train", "windows_eval", "files_ok",
                                                     "files_skipped", "files_failed")})
    self.details["datasets"][ds.name] = {"output": output, "changes": changes, "info": info}
    return StageResult(ds.name, "partial" if errors else status, counters=counters,
                       message=message, failures=errors)

  def _train(self, spec: corpus_config.ModelSpec) -> StageResult:
    from jobs import train  # pylint: disable=g-import-not-at-top  # TensorFlow: only when training
    data_dir = self.path("datasets", spec.dataset)
    if spec.dataset not in self.dataset_fingerprints or not _published_dataset(data_dir):
      raise StageSkipped(f"dataset {spec.dataset} is not available")
    dataset_fp = self.dataset_fingerprints[spec.dataset]
    settings = spec.settings_hash()
    model_dir = self.path("models", spec.name)
    kept = read_json(os.path.join(model_dir, MODEL_SETTINGS_FILE))
    fresh = kept is None and checkpoint_step(model_dir) == 0
    # Other gin settings make another model: it trains beside the old one, then replaces it.
    work_dir = model_dir if fresh or (kept or {}).get("settings_hash") == settings else (
        model_dir + ".next")
    record = self.state.model(spec.name) or {}
    if record.get("settings_hash") != settings:
      record = {}
    updates = record.get("updates") or 0
    current = checkpoint_step(work_dir)
    trained_on = record.get("dataset_fingerprint")
    if (trained_on and trained_on != dataset_fp and spec.update_steps > 0 and
        current >= spec.steps + updates * spec.update_steps):
      updates += 1  # the dataset changed after the model was done: fine-tune on it
    target = spec.steps + updates * spec.update_steps
    os.makedirs(work_dir, exist_ok=True)
    with publish.atomic_file(os.path.join(work_dir, MODEL_SETTINGS_FILE)) as tmp:
      with open(tmp, "w", encoding="utf-8") as f:
        json.dump({"name": spec.name, "settings_hash": settings}, f)
    counters = {"step_before": current, "target_steps": target, "steps_trained": 0}
    data = train.open_data(data_dir)
    if current < target:
      _log(f"training {spec.name} from step {current} to {target}")
      result = train.run_training(
          data, work_dir, gin_files=list(spec.gin_files), gin_params=list(spec.gin_params),
          steps=target, checkpoint_every=spec.checkpoint_every,
          keep_checkpoints=spec.keep_checkpoints, log_every=spec.log_every, seed=spec.seed,
          progress=self.progress, evaluate_at_end=spec.eval,
          eval_crepe_model=spec.eval_crepe_model)
      counters["steps_trained"] = result.step - result.resumed_from
      trained_on = dataset_fp
      message = f"trained to step {result.step}"
    else:
      message = f"at its target step {current}: nothing to train"
      metrics = read_json(os.path.join(work_dir, "eval", "metrics.json"))
      if spec.eval and data.files["eval"] and (metrics or {}).get("step") != current:
        train.evaluate(work_dir, data, crepe_model=spec.eval_crepe_model, progress=self.progress)
        message += " (evaluated)"
    if work_dir != model_dir:
      publish.replace_directory(work_dir, model_dir)
    step = checkpoint_step(model_dir)
    fingerprint = transfer_cache.model_fingerprint(model_dir)
    self.state.save_model(spec.name, settings_hash=settings, dataset_fingerprint=trained_on or
                          dataset_fp, updates=updates, target_steps=target, step=step,
                          fingerprint=fingerprint,
                          run_id=self.run_id if counters["steps_trained"] or not record
                          else record.get("run_id"))
    counters["step"] = step
    self.details["models"][spec.name] = {
        "model_dir": model_dir, "dataset": spec.dataset, "step": step, "target": target,
        "dataset_current": (trained_on or dataset_fp) == dataset_fp}
    return StageResult(spec.name, "ok" if counters["steps_trained"] else "unchanged",
                       counters=counters, message=message)

  def _transfer(self) -> StageResult:
    spec = self.config.transfer
    paths = inputs.expand_inputs(spec.sources)
    if not paths:
      raise ValueError(f"no input file matches {list(spec.sources)}")
    model_paths, missing = {}, []
    for entry in spec.models:
      if entry in self.config.models:
        ok = any(s.name == f"train:{entry}" and s.status in ("ok", "unchanged")
                 for s in self.stages)
        if ok:
          model_paths[entry] = self.path("models", entry)
        else:
          missing.append(entry)
      else:
        name, model_path = transfer.parse_model_arg(entry)
        model_paths[name] = transfer.resolve_model(model_path, self.path("cache", "models"))
    if not model_paths:
      raise StageSkipped(f"no model to transfer with ({', '.join(missing)} not trained)")
    hashes = self.state.hash_files(paths)
    settings = transfer_cache.settings_hash(spec.config)
    changes = self.state.update_inputs("transfer", hashes, self.run_id, settings)
    fingerprints = {n: transfer_cache.model_fingerprint(p) for n, p in model_paths.items()}
    keys = {(p, n): transfer_cache.pair_key(hashes[p], fingerprints[n], settings)
            for p in paths for n in model_paths}
    cache = transfer_cache.TransferCache(self.path("cache", "transfer"))
    rows, pairs = [], {}
    for (path, name), key in sorted(keys.items()):
      if cache.complete(key):
        rows.append((key, path, cache.read_row(key)))
      else:
        pairs.setdefault(path, []).append(name)
    reused = len(rows)
    _log(f"transfer: {len(keys)} (input, model) rows, {reused} kept, {len(keys) - reused} to render")
    rendered, _ = transfer_cache.render_pairs(
        pairs, keys, model_paths, spec.config, cache, self.path("runs", self.run_id, "work"),
        paths, self.beam_args)
    rows += [(key, row["input_path"], row) for key, row in rendered]
    published = transfer_cache.publish_transfer(self.path("transfer"), rows, paths, cache)
    shutil.rmtree(self.path("runs", self.run_id, "work"), ignore_errors=True)
    failed = [r for r in published if r["status"] != "ok"]
    counters = {"inputs": len(paths), **{k: len(v) for k, v in changes.items()},
                "models": len(model_paths), "rows": len(published), "reused": reused,
                "rendered": len(rendered), "failed": len(failed)}
    self.details["transfer"] = {"output": self.path("transfer"), "rows": published,
                                "changes": changes}
    message = (f"models not trained: {', '.join(missing)}" if missing else "")
    status = "failed" if missing else ("partial" if failed else "ok" if rendered else "unchanged")
    return StageResult("transfer", status, counters=counters, message=message,
                       failures=[{"error_type": r["error_type"], "message": r["error_message"]}
                                 for r in failed])

  # Summary and report.
  def _summary(self, started: float, exit_code: int) -> dict:
    summary = {
        "run_id": self.run_id, "config": self.config.path, "output": self.root,
        "started": started, "finished": time.time(), "exit_code": exit_code,
        "stages": [dataclasses.asdict(s) for s in self.stages]}
    run_dir = self.path("runs", self.run_id)
    os.makedirs(run_dir, exist_ok=True)
    with publish.atomic_file(os.path.join(run_dir, "summary.json")) as tmp:
      with open(tmp, "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=1, default=str)
    return summary

  def _report(self, summary: dict) -> Optional[str]:
    from jobs import report  # pylint: disable=g-import-not-at-top
    try:
      path = report.write_report(self.path("report"), summary, self.details, self.state,
                                 self.config)
    except Exception:  # pylint: disable=broad-except  # a report failure fails the run, loudly
      traceback.print_exc(file=sys.stderr)
      summary["exit_code"] = EXIT_RUN_FAILED
      return None
    _log(f"report: {path}")
    return path


def _published_dataset(output: str) -> Optional[dict]:
  """dataset.json of a published dataset (None without `_SUCCESS`)."""
  if not os.path.exists(os.path.join(output, "_SUCCESS")):
    return None
  return read_json(os.path.join(output, examples.DATASET_INFO_FILE))


def run_corpus(config_path: str, beam_args=(), overrides=(), progress: bool = True) -> RunResult:
  """Loads the config and runs the corpus job once (see the module docstring)."""
  config = corpus_config.load_config(config_path, overrides)
  return CorpusRun(config, beam_args, progress).run()


def corpus_status(config_path: str, overrides=()) -> dict:
  """What is processed, pending and failed, per dataset, model and transfer; the last runs."""
  config = corpus_config.load_config(config_path, overrides)
  root = config.output
  out = {"output": root, "datasets": {}, "models": {}, "transfer": None, "runs": [],
         "running": []}
  if not os.path.exists(os.path.join(root, "state.sqlite")):
    out["note"] = "no run yet"
    return out
  # Read-only: a run may hold the lock and be writing the store right now.
  with state_lib.StateStore(os.path.join(root, "state.sqlite"), read_only=True) as store:
    for ds in config.datasets.values():
      paths = inputs.expand_inputs(ds.sources)
      hashes = store.hash_files(paths)
      cache = prepare_cache.PrepareCache.for_config(os.path.join(root, "cache", "prepare"),
                                                    ds.prepare)
      info = _published_dataset(os.path.join(root, "datasets", ds.name))
      failed = []
      if info:
        failed = pq.read_table(os.path.join(root, "datasets", ds.name, "reports",
                                            "errors.parquet")).column("path").to_pylist()
      removed = [r["path"] for r in store.inputs(f"dataset:{ds.name}")
                 if r["removed_run"] and r["path"] not in hashes]
      out["datasets"][ds.name] = {
          "inputs": len(paths), "failed": len(failed),
          "processed": sum(1 for p in paths if hashes[p] and cache.complete(hashes[p])
                           and p not in failed),
          "pending": sum(1 for p in paths if not (hashes[p] and cache.complete(hashes[p]))),
          "removed": len(removed), "published_run": (info or {}).get("corpus_run"),
          "windows": (info or {}).get("counts", {})}
    for model in config.models.values():
      record = store.model(model.name) or {}
      out["models"][model.name] = {
          "step": checkpoint_step(os.path.join(root, "models", model.name)),
          "target": record.get("target_steps") or model.steps, "run": record.get("run_id")}
    report = os.path.join(root, "transfer", "reports", "transfer.parquet")
    if config.transfer and os.path.exists(report):
      status = pq.read_table(report).column("status").to_pylist()
      out["transfer"] = {"rows": len(status), "ok": status.count("ok"),
                         "failed": len(status) - status.count("ok")}
    out["runs"] = store.last_runs(10)
    out["running"] = store.running_runs()
  return out


def format_status(status: dict) -> str:
  """`corpus_status` as text for a terminal."""
  lines = [f"output root: {status['output']}"]
  if status.get("note"):
    return "\n".join(lines + [status["note"]])
  for r in status["running"]:
    lines.append(f"running now: run {r['run_id']} (pid {r['pid']} on {r['host']})")
  for name, d in status["datasets"].items():
    counts = d["windows"]
    lines.append(f"dataset {name}: {d['inputs']} inputs: {d['processed']} processed, "
                 f"{d['pending']} pending, {d['failed']} failed, {d['removed']} removed; "
                 f"published by run {d['published_run']}: {counts.get('windows_train', 0)} train / "
                 f"{counts.get('windows_eval', 0)} eval windows")
  for name, m in status["models"].items():
    lines.append(f"model {name}: step {m['step']} of {m['target']} (last trained by run {m['run']})")
  if status["transfer"]:
    t = status["transfer"]
    lines.append(f"transfer: {t['rows']} (file, model) rows published: {t['ok']} ok, "
                 f"{t['failed']} failed")
  lines.append("last runs:")
  for r in status["runs"]:
    seconds = f"{r['finished'] - r['started']:.0f} s" if r["finished"] else "-"
    lines.append(f"  {r['run_id']}  {time.strftime('%Y-%m-%d %H:%M', time.localtime(r['started']))}"
                 f"  {seconds:>7}  {r['status']:<8} exit {r['exit_code']}")
  return "\n".join(lines)
