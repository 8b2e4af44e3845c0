"""The prepare pipeline: recordings -> windows of audio and features -> TFRecords + reports.

    files --PlanChunks--> chunk tasks --Reshuffle--> ComputeChunkFeatures --> examples
                  \\-> errors, skipped files         \\-> window rows, statistics inputs, chunk summaries

`PlanChunks` reads each file's header, hashes its content, validates every
sample (so a broken file goes to the errors table before any of its windows
exist) and cuts it into chunks of `chunk_secs`. `ComputeChunkFeatures` decodes
one chunk plus `CONTEXT_SECS` of context on each side, computes f0, confidence
and loudness on that segment and cuts the windows that start in the chunk (or,
with a cache, reuses the chunk an interrupted run computed from the same samples).
The context makes the windows equal to those of an unchunked run, while memory
stays bounded by the chunk size.

All outputs go to a staging folder next to `--output`, which replaces the
previous output only when the whole run succeeded.
"""

import dataclasses
import functools
import hashlib
import json
import logging
import os
import sys
import time
import uuid
from typing import Dict, List, Optional, Sequence

import apache_beam as beam
import numpy as np
import pyarrow.parquet as pq
from apache_beam.metrics import Metrics

from ddsp_core import audio as audio_lib
from ddsp_core import crepe as crepe_lib
from ddsp_core import features as features_lib
from ddsp_core.loudness import DB_RANGE
from pipelines import examples as examples_lib
from pipelines import inputs
from pipelines import magenta_stats
from pipelines import prepare_cache
from pipelines import prepare_plan
from pipelines import publish
from pipelines import reports
from pipelines import runner
from pipelines import statistics

# Audio decoded on each side of a chunk, at least: the Viterbi context at 250
# frames/s (2 s) plus a CREPE frame, rounded up to whole seconds so that chunk
# edges fall on whole samples at any integer sample rate (resampling then lines
# up exactly). More at lower CREPE rates: see `context_secs`.
CONTEXT_SECS = 3
NAMESPACE = runner.NAMESPACE
SPLITS = ("train", "eval")
# Kept here too: callers of the prepare pipeline know them from this module.
PipelineFailed = runner.PipelineFailed
pipeline_options = runner.pipeline_options


@dataclasses.dataclass(frozen=True)
class PrepareConfig:
  """Settings of a prepare run (everything that changes the records)."""
  window: examples_lib.WindowSpec = examples_lib.WindowSpec()
  crepe_model: str = crepe_lib.DEFAULT_MODEL
  viterbi: bool = True
  precision: str = crepe_lib.DEFAULT_PRECISION
  # CREPE's frames per second, interpolated onto the frame grid; None: at the frame rate.
  f0_rate: Optional[int] = features_lib.DEFAULT_F0_RATE
  # A speed lever, off by default: CREPE only on frames louder than this (A-weighted dB); the
  # others get f0 0 and confidence 0 (features_lib.compute_f0's skip_silent_db).
  skip_silent_db: Optional[float] = None
  eval_fraction: float = 0.0
  split_by: str = "file"
  chunk_secs: int = 20
  min_secs: float = 1.0
  silence_db: float = -DB_RANGE
  write_magenta_pickle: bool = False
  progress: bool = True

  def __post_init__(self):
    if self.split_by not in ("file", "window"):
      raise ValueError("split_by must be 'file' or 'window'")
    if not 0.0 <= self.eval_fraction < 1.0:
      raise ValueError("eval_fraction must be in [0, 1)")
    if self.chunk_secs <= 0 or self.chunk_secs != int(self.chunk_secs):
      raise ValueError("chunk_secs must be a positive whole number of seconds")
    ratio = self.chunk_secs / self.window.hop_secs
    if abs(ratio - round(ratio)) > 1e-9:
      raise ValueError("chunk_secs must be a multiple of hop_secs")
    crepe_lib.check_installed(self.crepe_model)  # fails early when not installed


# Planning (validation, chunk tasks, the split) is its own module; its names are kept here.
ChunkTask = prepare_plan.ChunkTask
PlanChunks = prepare_plan.PlanChunks
split_of = prepare_plan.split_of


def context_secs(config: PrepareConfig) -> int:
  """Seconds decoded on each side of a chunk so that its windows equal an unchunked run's.

  The Viterbi context is a number of CREPE frames, so with `--f0_rate` below
  250 it spans more than `CONTEXT_SECS` (5 s at 100 frames/s, 10 s at 50).
  """
  f0_rate = config.f0_rate or config.window.frame_rate
  return max(CONTEXT_SECS, features_lib.context_secs(f0_rate, config.viterbi))


def _take(x: np.ndarray, start: int, length: int, fill: float) -> np.ndarray:
  """x[start:start+length], padded with `fill` past the end."""
  out = np.full(length, fill, np.float32)
  piece = x[max(start, 0):start + length]
  out[:len(piece)] = piece
  return out


class ComputeChunkFeatures(beam.DoFn):
  """Features of one chunk (with context) and its windows as tf.train.Examples.

  With a cache, the chunk's windows are also kept there before they are emitted,
  and a chunk kept there by a run that did not complete its file (one killed
  mid-way) is emitted again instead of computed, when the samples it was
  computed from are the ones decoded now (metric `chunks_cached`).
  """

  def __init__(self, config: PrepareConfig, cache: Optional[prepare_cache.PrepareCache] = None):
    super().__init__()
    self.config = config
    self.cache = cache
    self.windows = {s: Metrics.counter(NAMESPACE, f"windows_{s}") for s in SPLITS}
    self.dropped = Metrics.counter(NAMESPACE, "windows_dropped_silent")
    self.audio_ms = Metrics.counter(NAMESPACE, "audio_ms")
    self.chunks_computed = Metrics.counter(NAMESPACE, "chunks_computed")
    self.chunks_cached = Metrics.counter(NAMESPACE, "chunks_cached")

  def setup(self):
    # Heavy: the CREPE network is built once per worker process and cached
    # there, not on this DoFn, so that the DoFn stays picklable after setup.
    crepe_lib.get_model(self.config.crepe_model, self.config.precision)

  @property
  def crepe(self):
    return crepe_lib.get_model(self.config.crepe_model, self.config.precision)

  def process(self, task: ChunkTask):
    with inputs.local_copy(task.path) as local:
      yield from self._compute(task, local)

  def _compute(self, task: ChunkTask, local: str):
    cfg, spec = self.config, self.config.window
    started = time.time()
    last_window_end = max((s + spec.example_secs for s in task.window_starts), default=task.end_s)
    context = context_secs(cfg)
    seg_start = max(0.0, task.start_s - context)
    seg_end = min(task.duration_s, max(task.end_s, last_window_end) + context)
    # Read by path again: checked against the plan before anything is computed or kept.
    as_planned = functools.partial(prepare_cache.read_as_planned, task.path, local, task.sha256,
                                   task.signature)
    try:
      audio16 = audio_lib.read_audio_range(local, seg_start, seg_end - seg_start, 16000)
      audio_sr = (audio16 if not spec.resamples_audio else audio_lib.read_audio_range(
          local, seg_start, seg_end - seg_start, spec.sample_rate))
    except (audio_lib.AudioDecodeError, OSError):
      if as_planned():
        raise
      audio16 = None
    if audio16 is None or not as_planned():  # FileRow reports the file
      yield beam.pvalue.TaggedOutput("chunks", (task.path, {"changed": True}))
      return
    # A chunk kept by an earlier run that did not complete the file (killed) stands for this
    # one only if it was computed from these very samples: decoding is cheap, CREPE is not.
    digest = _audio_digest(audio16, audio_sr) if self.cache else None
    kept = self.cache and self.cache.read_chunk(task.sha256, task.chunk_index,
                                                chunk_plan(task), digest, task.path)
    if kept:
      self.chunks_cached.inc()
      yield from self._emit(task, *kept, cached=True)
      return
    feats = features_lib.compute_features(
        audio16, frame_rate=spec.frame_rate, viterbi=cfg.viterbi, padding=spec.padding,
        crepe_model=self.crepe, f0_rate=cfg.f0_rate, skip_silent_db=cfg.skip_silent_db)
    fill = {"f0_hz": 0.0, "f0_confidence": 0.0, "loudness_db": -DB_RANGE}
    counts = {"train": 0, "eval": 0, "dropped": 0}
    records, window_rows, stats_inputs = [], [], []
    for start_s in task.window_starts:
      offset_s = start_s - seg_start
      frame0 = int(round(offset_s * spec.frame_rate))
      window = {"audio": _take(audio_sr, int(round(offset_s * spec.sample_rate)), spec.n_samples, 0.0)}
      a16 = _take(audio16, int(round(offset_s * 16000)), spec.n_samples_16k, 0.0)
      window["audio_16k"] = a16
      for key in features_lib.FEATURE_KEYS:
        window[key] = _take(feats[key], frame0, spec.n_frames, fill[key])
      if np.max(window["loudness_db"]) <= cfg.silence_db:
        counts["dropped"] += 1
        continue
      split = (task.split if cfg.split_by == "file" else
               split_of(f"{task.sha256}:{start_s:.6f}", cfg.eval_fraction))
      counts[split] += 1
      example = examples_lib.make_example(window, task.path, float(start_s))
      records.append((split, example.SerializeToString()))
      voiced = window["f0_confidence"] >= reports.VOICED_CONFIDENCE
      window_rows.append({
          "path": task.path, "start_s": float(start_s), "split": split, "padded": task.padded,
          "mean_confidence": float(np.mean(window["f0_confidence"])),
          "voiced_fraction": float(np.mean(voiced)),
          "loudness_mean_db": float(np.mean(window["loudness_db"])),
          "f0_median_hz": float(np.median(window["f0_hz"]))})
      # Statistics see only real frames: a padded window's tail is not audio.
      n_real = min(spec.n_frames, len(feats["f0_hz"]) - frame0)
      n_real_16k = min(spec.n_samples_16k, len(audio16) - int(round(offset_s * 16000)))
      stats_inputs.append(statistics.window_statistics_inputs(
          window["f0_hz"][:n_real], window["f0_confidence"][:n_real],
          window["loudness_db"][:n_real], a16[:n_real_16k]))
    # Summary of the frames and samples this chunk owns, for files.parquet.
    first = int(round((task.start_s - seg_start) * spec.frame_rate))
    last = int(round((task.end_s - seg_start) * spec.frame_rate))
    if task.chunk_index == task.chunk_count - 1:
      last = len(feats["f0_hz"])
    conf = feats["f0_confidence"][first:last]
    f0 = feats["f0_hz"][first:last]
    loud = feats["loudness_db"][first:last]
    owned = audio_sr[int(round((task.start_s - seg_start) * spec.sample_rate)):
                     int(round((task.end_s - seg_start) * spec.sample_rate))]
    voiced = conf >= reports.VOICED_CONFIDENCE
    summary = {
        "frames": len(conf), "voiced_f0": f0[voiced].astype(np.float32),
        "loudness_sum": float(np.sum(loud, dtype=np.float64)),
        "loudness_max": float(np.max(loud)) if len(loud) else None,
        "silent": int(np.sum(loud < reports.SILENT_DB)),
        "clipped": int(np.sum(np.abs(owned) >= reports.CLIPPING_LEVEL)),
        "samples": len(owned), "windows_train": counts["train"], "windows_eval": counts["eval"],
        "dropped": counts["dropped"], "seconds": time.time() - started}
    if self.cache:  # kept before anything is emitted: the file's row completes the entry
      self.cache.write_chunk(task.sha256, task.chunk_index, task.path, records, window_rows,
                             stats_inputs, plan=chunk_plan(task), summary=summary,
                             audio_digest=digest)
    self.chunks_computed.inc()
    self.audio_ms.inc(int(round((task.end_s - task.start_s) * 1000)))  # analysed in this run
    yield from self._emit(task, records, window_rows, stats_inputs, summary)

  def _emit(self, task: ChunkTask, records, window_rows, stats_inputs, summary, cached=False):
    """The chunk's windows (main output, 'windows', 'stats') and its summary ('chunks')."""
    for record, row, stats in zip(records, window_rows, stats_inputs, strict=True):
      self.windows[record[0]].inc()
      yield record
      yield beam.pvalue.TaggedOutput("windows", row)
      yield beam.pvalue.TaggedOutput("stats", stats)
    self.dropped.inc(summary["dropped"])
    yield beam.pvalue.TaggedOutput("chunks", (task.path, summary))
    if self.config.progress:
      audio_s, seconds = task.end_s - task.start_s, summary["seconds"]
      done = ("from the cache (a run before computed it)" if cached else
              f"{audio_s:.1f} s of audio in {seconds:.1f} s "
              f"({audio_s / max(seconds, 1e-9):.1f} audio s/s)")
      print(f"[prepare] {os.path.basename(task.path)} chunk {task.chunk_index + 1}/"
            f"{task.chunk_count}: {done}", file=sys.stderr, flush=True)


def _audio_digest(audio16: np.ndarray, audio_sr: np.ndarray) -> str:
  """sha256 of the samples a chunk was computed from (at 16 kHz and the dataset's rate)."""
  digest = hashlib.sha256(np.ascontiguousarray(audio16, np.float32).tobytes())
  if audio_sr is not audio16:
    digest.update(np.ascontiguousarray(audio_sr, np.float32).tobytes())
  return digest.hexdigest()


def chunk_plan(task: ChunkTask) -> dict:
  """What a kept chunk must match to stand for `task` (its settings are the cache key's)."""
  return {"chunk_index": task.chunk_index, "chunk_count": task.chunk_count,
          "start_s": task.start_s, "end_s": task.end_s, "duration_s": task.duration_s,
          "window_starts": list(task.window_starts), "split": task.split, "padded": task.padded}


class FileRow(beam.DoFn):
  """files.parquet row of a computed file; with a cache, it completes the file's entry.

  A file that changed since it was planned goes to 'errors' instead, and its
  chunks leave the cache (windows of chunks read before the change, which are
  of the planned content, stay in this run's dataset: they were written already).
  """

  def __init__(self, cache: Optional[prepare_cache.PrepareCache] = None):
    super().__init__()
    self.cache = cache
    self.files_failed = Metrics.counter(NAMESPACE, "files_failed")

  def process(self, element):
    path, grouped = element
    sha = list(grouped["meta"])[0]["sha256"]
    if not prepare_cache.assembled_as_planned(path, sha, grouped["chunks"]):
      if self.cache:
        self.cache.discard_chunks(sha)
      self.files_failed.inc()
      yield beam.pvalue.TaggedOutput("errors", reports.error_row(
          path, "read", prepare_cache.ChangedWhilePrepared(path)))
      return
    row = reports.file_row(element)
    if self.cache:
      chunks = len(list(element[1]["chunks"]))
      self.cache.write_outcome(row["sha256"], row["path"], "file", row, chunks=chunks)
    yield row


def build_pipeline(pipeline: beam.Pipeline, paths: Sequence[str], staging: str,
                   config: PrepareConfig, num_shards: int = 0,
                   cache: Optional[prepare_cache.PrepareCache] = None,
                   cached: Sequence[tuple] = ()):
  """Adds the prepare transforms to `pipeline`, writing under `staging`.

  Args:
    pipeline: The Beam pipeline.
    paths: Recordings to compute.
    staging: Output folder.
    config: A `PrepareConfig`.
    num_shards: TFRecord shards per split (0: the runner decides).
    cache: Where computed recordings are kept (None: nowhere).
    cached: (path, sha256) of recordings replayed from `cache` instead.
  """
  planned = (pipeline
             | "Inputs" >> beam.Create(sorted(paths))
             | "ReshuffleFiles" >> beam.Reshuffle()
             | "PlanChunks" >> beam.ParDo(PlanChunks(config, cache)).with_outputs(
                 "errors", "files", "file_meta", main="chunks"))
  computed = (planned.chunks
              | "ReshuffleChunks" >> beam.Reshuffle()
              | "ComputeChunkFeatures" >> beam.ParDo(ComputeChunkFeatures(config, cache))
              .with_outputs("windows", "stats", "chunks", main="examples"))
  file_rows = ({"meta": planned.file_meta, "chunks": computed.chunks}
               | "GroupByFile" >> beam.CoGroupByKey()
               | "FileRows" >> beam.ParDo(FileRow(cache)).with_outputs("errors", main="files"))
  outputs = {"examples": [computed.examples], "windows": [computed.windows],
             "stats": [computed.stats], "files": [file_rows.files, planned.files],
             "errors": [planned.errors, file_rows.errors]}
  if cached:
    replayed = (pipeline
                | "CachedInputs" >> beam.Create(sorted(cached))
                | "ReshuffleCached" >> beam.Reshuffle()
                | "ReplayCached" >> beam.ParDo(prepare_cache.ReplayCachedFiles(cache)).with_outputs(
                    "windows", "stats", "files", "errors", main="examples"))
    for name, pcolls in outputs.items():
      pcolls.append(replayed[name])
  merged = {name: (pcolls[0] if len(pcolls) == 1 else tuple(pcolls) | f"All{name}" >> beam.Flatten())
            for name, pcolls in outputs.items()}
  splits = SPLITS if config.eval_fraction > 0 else ("train",)
  for split in splits:
    (merged["examples"]
     | f"Only{split}" >> beam.Filter(lambda kv, s=split: kv[0] == s)
     | f"Bytes{split}" >> beam.Map(lambda kv: kv[1])
     | f"Write{split}" >> beam.io.WriteToTFRecord(
         os.path.join(staging, f"{split}.tfrecord"), num_shards=num_shards))
  for name, schema in (("files", reports.FILES_SCHEMA), ("windows", reports.WINDOWS_SCHEMA),
                       ("errors", reports.ERRORS_SCHEMA)):
    _ = merged[name] | f"Write{name}Report" >> beam.io.WriteToParquet(
        os.path.join(staging, "reports", f"{name}.parquet"), schema, num_shards=1,
        shard_name_template="")
  _ = (merged["stats"]
       | "Statistics" >> statistics.ComputeDatasetStatistics()
       | "StatsJson" >> beam.Map(lambda s: json.dumps(s, indent=1, sort_keys=True))
       | "WriteStatistics" >> beam.io.WriteToText(
           os.path.join(staging, "dataset_statistics.json"), num_shards=1,
           shard_name_template=""))


@dataclasses.dataclass
class PrepareResult:
  output: str
  info: dict
  errors: List[dict]
  counters: dict

  @property
  def exit_code(self) -> int:
    return 1 if self.errors else 0


def run_prepare(patterns: Sequence[str], output: str, config: PrepareConfig,
                beam_args: Sequence[str] = (), num_shards: int = 0,
                cache_dir: Optional[str] = None, hashes: Optional[Dict[str, str]] = None,
                extra_info: Optional[dict] = None) -> PrepareResult:
  """Runs the prepare pipeline and publishes `output` atomically.

  Args:
    patterns: Input glob patterns, files or directories.
    output: Local output folder (replaced as a whole on success).
    config: A `PrepareConfig`.
    beam_args: Pass-through Beam options (`--runner`, `--direct_num_workers`, ...).
    num_shards: TFRecord shards per split; 0 lets the runner decide (and
      streams records to disk; a fixed count groups them first).
    cache_dir: Keep each recording's results here, by content and settings,
      and replay them instead of computing them again (`pipelines.prepare_cache`).
    hashes: Known sha256 of input paths (else local files are hashed).
    extra_info: More keys for dataset.json.

  Returns:
    A `PrepareResult`.
  """
  paths = inputs.expand_inputs(patterns)
  if not paths:
    raise ValueError(f"no input file matches {list(patterns)}")
  output = os.path.abspath(output)
  parent = os.path.dirname(output)
  os.makedirs(parent, exist_ok=True)
  staging = os.path.join(parent, f".{os.path.basename(output)}.staging-{uuid.uuid4().hex[:8]}")
  temporary_cache = None
  if cache_dir is None and runner.is_dask(beam_args):  # Dask works through a cache
    cache_dir = temporary_cache = staging + "-cache"
  cache = prepare_cache.PrepareCache.for_config(cache_dir, config) if cache_dir else None
  compute, replay = prepare_cache.split_cached(paths, cache, hashes) if cache else (paths, [])
  os.makedirs(os.path.join(staging, "reports"))
  try:
    started = time.time()
    if config.progress:
      print(f"[prepare] {len(paths)} input file(s) -> {output}"
            + (f" ({len(replay)} from the cache, {len(compute)} to compute)" if cache else ""),
            file=sys.stderr, flush=True)
    analysed = {}
    try:
      with runner.beam_session(beam_args) as args:
        if runner.is_dask(beam_args) and compute:
          from pipelines import prepare_chains  # pylint: disable=g-import-not-at-top
          analysed = dict(prepare_chains.analyse_into_cache(compute, config, cache, args, hashes),
                          files_cached=len(replay))
          compute, replay = prepare_cache.split_cached(paths, cache, hashes)
          args = []  # the dataset is assembled here, from the cache
        pipeline = beam.Pipeline(options=runner.pipeline_options(args))
        build_pipeline(pipeline, compute, staging, config, num_shards, cache, replay)
        result = runner.run_and_wait(pipeline)
    except runner.PipelineFailed as e:
      raise runner.PipelineFailed(
          f"{e}; nothing was published"
          + (", the previous output is unchanged" if os.path.exists(output) else "")) from e
    counters = dict(runner.counters(result), **analysed)
    info = _finish_staging(staging, config, len(paths), time.time() - started, extra_info)
    errors = pq.read_table(os.path.join(staging, "reports", "errors.parquet")).to_pylist()
    publish.replace_directory(staging, output)
  except BaseException:
    publish.remove_tree(staging)
    raise
  finally:
    if temporary_cache:
      publish.remove_tree(temporary_cache)
  return PrepareResult(output, info, errors, counters)


def _finish_staging(staging: str, config: PrepareConfig, n_inputs: int, seconds: float,
                    extra_info: Optional[dict] = None) -> dict:
  """Writes dataset.json and _SUCCESS into the staging folder."""
  files = pq.read_table(os.path.join(staging, "reports", "files.parquet"))
  errors = pq.read_table(os.path.join(staging, "reports", "errors.parquet"))
  windows = pq.read_table(os.path.join(staging, "reports", "windows.parquet"))
  split_col = windows.column("split").to_pylist()
  status = files.column("status").to_pylist()
  counts = {
      "inputs": n_inputs, "files_ok": status.count("ok"), "files_skipped": status.count("skipped"),
      "files_failed": errors.num_rows,
      "windows_train": split_col.count("train"), "windows_eval": split_col.count("eval"),
      "windows_dropped_silent": int(sum(files.column("windows_dropped_silent").to_pylist())),
      "audio_seconds": float(sum(files.column("duration_s").to_pylist())),
  }
  shards = {s: sorted(f for f in os.listdir(staging) if f.startswith(f"{s}.tfrecord-"))
            for s in SPLITS}
  info = examples_lib.dataset_info(
      config.window, config.crepe_model, config.viterbi, config.precision, counts,
      extra={"eval_fraction": config.eval_fraction, "split_by": config.split_by,
             "f0_rate": config.f0_rate or config.window.frame_rate,
             "skip_silent_db": config.skip_silent_db,
             "chunk_secs": config.chunk_secs, "min_secs": config.min_secs,
             "silence_db": config.silence_db, "shards": shards,
             "file_patterns": {s: f"{s}.tfrecord-*" for s in SPLITS if shards[s]},
             "wall_seconds": seconds, **(extra_info or {})})
  with open(os.path.join(staging, examples_lib.DATASET_INFO_FILE), "w", encoding="utf-8") as f:
    json.dump(info, f, indent=1, sort_keys=True)
  if config.write_magenta_pickle:
    with open(os.path.join(staging, "dataset_statistics.json"), encoding="utf-8") as f:
      stats = json.load(f)
    with open(os.path.join(staging, "dataset_statistics.pkl"), "wb") as f:
      f.write(magenta_stats.magenta_statistics_bytes(stats))
  open(os.path.join(staging, "_SUCCESS"), "w", encoding="utf-8").close()
  logging.info("prepare finished: %s", counts)
  return info
