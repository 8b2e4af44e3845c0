"""Ships a trained instrument model into the package as a built-in model, with its card.

    python -m instruments.ship violin [--quality bench/results/DATE-transfer-quality.json]
    python -m instruments.ship --restore violin
    python -m instruments.ship flute --card-only --quality bench/results/DATE-transfer-quality.json

`make instruments` trains each instrument with its corpus job into
instruments/out/<name>/models/<name> (not committed). Shipping copies the latest checkpoint of
that model dir (model and optimizer state, so training can resume from it in a later session),
its operative config, model.json and dataset statistics into ddsp_core/instruments/<name>
(committed; `ddsp_core.builtin_models` offers it as `--model <name>`), and writes the model card
(`card.json` + `MODEL.md`): the corpus recipe and size (instruments/corpus/<name>/manifest.json),
the architecture, every training run of the corpus job (steps, wall time, machine; runs shipped
before are kept), the eval metrics and, with --quality, the medians of
`bench/transfer_quality.py`. The built-in dir is replaced atomically.

--card-only writes only the quality medians into an installed model's card (for a model shipped
on a host whose instruments/out is gone; the weights and the rest of the card stay as shipped).

--restore does the reverse: when instruments/out/<name>/models/<name> holds no checkpoint, it
copies the shipped model there, so `make instruments` (or `ddsp-beam run instruments/<name>.toml
--set models.<name>.steps=N`) resumes training from the shipped step instead of from zero.
"""

import argparse
import glob
import json
import os
import platform
import re
import shutil
import sys
import tempfile
from typing import List, Optional

from ddsp_core import builtin_models
from ddsp_core import model_dir as model_dir_lib
from instruments.catalog import INSTRUMENTS
from jobs import corpus

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "out")
CORPUS = os.path.join(HERE, "corpus")
# model.json, the dataset statistics (the transfer's octave shift) and the corpus job's settings
# hash of the model (jobs/corpus.py MODEL_SETTINGS_FILE: a restored copy resumes, not restarts)
KEEP_FILES = (model_dir_lib.MODEL_INFO_FILE, model_dir_lib.STATS_FILE, corpus.MODEL_SETTINGS_FILE)


def machine() -> str:
  """'AMD EPYC, 2 cores, avx2' (the CPU model, cores, widest vector ISA): where a run ran."""
  name = platform.processor() or platform.machine()
  flags = ""
  try:
    with open("/proc/cpuinfo", encoding="utf-8") as f:
      for line in f:
        if line.startswith("model name") and name in ("", platform.machine(), "x86_64"):
          name = line.split(":", 1)[1].strip()
        if line.startswith("flags"):
          flags = line
          break
  except OSError:
    pass
  isa = next((f for f in ("avx512_bf16", "avx512f", "avx2") if f" {f}" in flags), "")
  return f"{name}, {os.cpu_count()} cores" + (f", {isa}" if isa else "")


def _f0_labels(settings: dict) -> str:
  """'CREPE cascade, bfloat16, f0 at 100 frames/s' from a dataset's settings."""
  parts = [f"CREPE {settings.get('crepe_model')}"]
  if settings.get("precision"):
    parts.append(str(settings["precision"]))
  if settings.get("f0_rate"):
    parts.append(f"f0 at {settings['f0_rate']} frames/s")
  if settings.get("skip_silent_db") is not None:
    parts.append(f"frames at or below {settings['skip_silent_db']:g} dB skipped")
  return ", ".join(parts)


def _train_bindings(model_dir: str, step: int) -> dict:
  """batch_size and learning_rate as the operative config of `step` binds them."""
  with open(os.path.join(model_dir, f"operative_config-{step}.gin"), encoding="utf-8") as f:
    text = f.read()
  out = {}
  for key in ("batch_size", "learning_rate"):
    found = re.search(rf"^train\.{key}\s*=\s*([0-9.e+-]+)\s*$", text, re.M)
    if found:
      out[key] = float(found.group(1)) if key == "learning_rate" else int(found.group(1))
  return out


REVERB_KEY = "model/reverb_ir/.ATTRIBUTES/VARIABLE_VALUE"


def reverb_summary(model_dir: str, step: int, sample_rate: int = 16000) -> dict:
  """What the model's learned reverb does, from its checkpoint at `step`.

  {"reverb_length": 0} for a model without one; else its length in samples, the
  wet path's energy relative to the dry path's (`synth.reverb` adds the dry signal
  unchanged, so a unit impulse has 0; a value above 1 means the output is mostly
  reverb) and the time at which the response's remaining energy is 20 dB down
  (Schroeder's backward integral).
  """
  import numpy as np  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  reader = tf.train.load_checkpoint(os.path.join(model_dir, f"ckpt-{step}"))
  if REVERB_KEY not in reader.get_variable_to_shape_map():
    return {"reverb_length": 0}
  ir = reader.get_tensor(REVERB_KEY).astype(np.float64)
  remaining = np.cumsum((ir[1:] ** 2)[::-1])[::-1]  # the first sample is the (ignored) dry tap
  wet = float(remaining[0]) if len(remaining) else 0.0
  below = np.nonzero(remaining <= wet * 0.01)[0]
  return {"reverb_length": int(len(ir)), "wet_to_dry_energy": round(wet, 3),
          "decay_20db_s": round(float(below[0] + 1) / sample_rate, 3) if wet and len(below)
                          else None}


def _latest_step(model_dir: str) -> int:
  """The step of the model dir's latest complete checkpoint; FileNotFoundError without one."""
  step = corpus.checkpoint_step(model_dir)
  if not os.path.exists(os.path.join(model_dir, f"ckpt-{step}.index")):
    raise FileNotFoundError(f"{model_dir}: no checkpoint (train it with `make instruments "
                            f"INSTRUMENTS={os.path.basename(model_dir)}` first)")
  return step


def training_runs(out_dir: str, name: str) -> List[dict]:
  """The corpus job's training stages of model `name`, from its runs/*/summary.json, oldest first."""
  runs = []
  for path in sorted(glob.glob(os.path.join(out_dir, "runs", "*", "summary.json"))):
    with open(path, encoding="utf-8") as f:
      summary = json.load(f)
    for stage in summary.get("stages", []):
      counters = stage.get("counters") or {}
      if stage.get("name") == f"train:{name}" and counters.get("steps_trained"):
        # the corpus job's summary names no machine: the card names the one that ships, so
        # ship on the host that trained (instruments/out is that host's, never committed)
        runs.append({"run_id": summary["run_id"], "from_step": counters["step_before"],
                     "to_step": counters["step"], "wall_s": round(stage["seconds"], 1),
                     "machine": machine()})
  return runs


def _merge_runs(old: List[dict], new: List[dict]) -> List[dict]:
  seen = {r["run_id"] for r in old}
  return sorted(old + [r for r in new if r["run_id"] not in seen], key=lambda r: r["to_step"])


def quality_summary(path: Optional[str], instrument: str,
                    model_dir: Optional[str] = None) -> Optional[dict]:
  """The medians of bench/transfer_quality.py's JSON for the model that targets `instrument`;
  with `model_dir`, refused unless they were measured on that dir (where the JSON says)."""
  if not path:
    return None
  with open(path, encoding="utf-8") as f:
    report = json.load(f)
  if report.get("dry"):
    raise ValueError(f"{path}: measured without the models' reverb (--dry): not a model's quality")
  for summary in report["summaries"]:
    if summary["model"] == instrument:
      if summary.get("instrument", instrument) != instrument:
        raise ValueError(f"{path}: model {instrument!r} was measured as a "
                         f"{summary['instrument']}, not a {instrument}")
      measured = summary.pop("path", None)  # a machine path: not for the card
      if model_dir and measured and os.path.realpath(measured) != os.path.realpath(model_dir):
        raise ValueError(f"{path}: model {instrument!r} was measured at {measured}, not at "
                         f"{model_dir}")
      return dict(summary, source=os.path.basename(path), crepe_model=report["crepe_model"])
  raise ValueError(f"{path}: no summary for model {instrument!r} "
                   f"(it has {[s['model'] for s in report['summaries']]})")


def build_card(name: str, src: str, step: int, out_dir: str, corpus_dir: str,
               old_card: Optional[dict], quality: Optional[dict]) -> dict:
  """The model card of the model in `src` at `step` (see builtin_models.CARD_FIELDS)."""
  inst = INSTRUMENTS[name]
  with open(os.path.join(corpus_dir, "manifest.json"), encoding="utf-8") as f:
    manifest = json.load(f)
  with open(os.path.join(src, "model.json"), encoding="utf-8") as f:
    info = json.load(f)
  dataset = {}
  dataset_json = os.path.join(out_dir, "datasets", name, "dataset.json")
  if os.path.exists(dataset_json):
    with open(dataset_json, encoding="utf-8") as f:
      dataset = json.load(f)
  metrics_path = os.path.join(src, "eval", "metrics.json")
  metrics = {}
  if os.path.exists(metrics_path):
    with open(metrics_path, encoding="utf-8") as f:
      metrics = json.load(f)
  old_training = (old_card or {}).get("training", {})
  runs = _merge_runs(old_training.get("runs", []), training_runs(out_dir, name))
  counts = dataset.get("counts", {})
  # a quality measured before stays only while it describes these weights (the same step)
  old_quality = (old_card or {}).get("transfer_quality") if old_training.get("steps") == step \
      else None
  return {
      "name": name, "instrument": inst.label,
      "data": {
          "recipe": f"instruments/{name}.toml, instruments/phrases.py (seed {manifest['seed']}), "
                    "instruments/render.py",
          "soundfont": f"{manifest['soundfont']} ({manifest['debian_package']} "
                       f"{manifest['package_version']}), programme {manifest['program']}",
          "fluidsynth": manifest["fluidsynth"], "recipe_hash": manifest["recipe_hash"],
          "files": manifest["n_files"], "seconds": manifest["total_seconds"],
          "midi_range": manifest["midi_range"],
          "train_windows": counts.get("windows_train"), "eval_windows": counts.get("windows_eval"),
          "f0_labels": _f0_labels(dataset or info["dataset"]),
          "prepare_wall_s": round(dataset["wall_seconds"], 1) if "wall_seconds" in dataset
                            else None},
      "architecture": {"gin_files": info["gin_files"], "n_parameters": info["n_parameters"],
                       "sample_rate": info["sample_rate"], "frame_rate": info["frame_rate"],
                       "reverb": reverb_summary(src, step, info["sample_rate"])},
      "training": {"steps": step, **_train_bindings(src, step),
                   "window_s": info["dataset"].get("example_secs"),
                   "wall_s": round(sum(r["wall_s"] for r in runs), 1), "runs": runs,
                   "machine": "; ".join(dict.fromkeys(r["machine"] for r in runs)) or machine()},
      "eval": {k: metrics.get(k) for k in ("step", "spectral_loss", "loudness_l1_db",
                                           "f0_l1_midi", "f0_outlier_ratio", "crepe_model")
               if k in metrics} or {"spectral_loss": None},
      "transfer_quality": quality if quality is not None else old_quality,
      "licence": "Apache-2.0 (the model, as ddsp-beam); trained on audio rendered from MIT-licensed "
                 "soundfont samples (instruments/COPYING.soundfonts)",
  }


def ship(name: str, out_root: str = OUT, dest_root: str = builtin_models.ROOT,
         corpus_root: str = CORPUS, quality: Optional[str] = None) -> str:
  """Copies out_root/<name>/models/<name> at its latest step into dest_root/<name>; its path."""
  if name not in INSTRUMENTS:
    raise ValueError(f"unknown instrument {name!r} (instruments: {', '.join(INSTRUMENTS)})")
  from pipelines import publish  # pylint: disable=g-import-not-at-top
  out_dir = os.path.join(out_root, name)
  src = os.path.join(out_dir, "models", name)
  step = _latest_step(src)
  final = os.path.join(dest_root, name)
  old_card = None
  if os.path.exists(os.path.join(final, builtin_models.CARD_FILE)):
    old_card = builtin_models.read_card(final)
  os.makedirs(dest_root, exist_ok=True)
  staged = tempfile.mkdtemp(prefix=f".{name}.staging-", dir=dest_root)
  os.chmod(staged, 0o755)  # mkdtemp's 0700 would hide an installed copy from other users
  try:
    for path in glob.glob(os.path.join(src, f"ckpt-{step}.*")):
      shutil.copyfile(path, os.path.join(staged, os.path.basename(path)))
    with open(os.path.join(staged, "checkpoint"), "w", encoding="utf-8") as f:
      f.write(f'model_checkpoint_path: "ckpt-{step}"\n'
              f'all_model_checkpoint_paths: "ckpt-{step}"\n')
    shutil.copyfile(os.path.join(src, f"operative_config-{step}.gin"),
                    os.path.join(staged, f"operative_config-{step}.gin"))
    for file_name in KEEP_FILES:
      if os.path.exists(os.path.join(src, file_name)):
        shutil.copyfile(os.path.join(src, file_name), os.path.join(staged, file_name))
    info_path = os.path.join(staged, model_dir_lib.MODEL_INFO_FILE)
    with open(info_path, encoding="utf-8") as f:
      info = json.load(f)
    info["data"] = f"instruments/out/{name}/datasets/{name} (instruments/{name}.toml)"
    with open(info_path, "w", encoding="utf-8") as f:
      json.dump(info, f, indent=1)
    if os.path.exists(os.path.join(src, "eval", "metrics.json")):
      os.makedirs(os.path.join(staged, "eval"))
      shutil.copyfile(os.path.join(src, "eval", "metrics.json"),
                      os.path.join(staged, "eval", "metrics.json"))
    card = build_card(name, src, step, out_dir, os.path.join(corpus_root, name), old_card,
                      quality_summary(quality, name, model_dir=final))
    builtin_models.write_card(staged, card)
    publish.replace_directory(staged, final)
  except BaseException:
    publish.remove_tree(staged)
    raise
  return final


def record_quality(name: str, quality: str, dest_root: str = builtin_models.ROOT) -> str:
  """Writes the transfer-quality medians of `quality` into an installed model's card, weights
  untouched (a model shipped on another host, whose instruments/out is gone); its path."""
  path = builtin_models.installed(dest_root).get(name)
  if not path:
    raise FileNotFoundError(f"{name}: not installed in {dest_root} (ship it first)")
  card = builtin_models.read_card(path)
  card["transfer_quality"] = quality_summary(quality, name, model_dir=path)
  card["architecture"]["reverb"] = reverb_summary(  # of the shipped weights (older cards lack it)
      path, card["training"]["steps"], card["architecture"].get("sample_rate", 16000))
  builtin_models.write_card(path, card)
  return path


def restore(name: str, out_root: str = OUT, dest_root: str = builtin_models.ROOT) -> Optional[str]:
  """Copies the shipped model back into out_root/<name>/models/<name> when that has no checkpoint.

  Returns the model dir it filled, or None when there was nothing to do (no shipped model, or
  the corpus job's model dir already holds a checkpoint: that one is never overwritten).
  """
  shipped = os.path.join(dest_root, name)
  target = os.path.join(out_root, name, "models", name)
  if not builtin_models.installed(dest_root).get(name):
    return None
  if glob.glob(os.path.join(target, "ckpt-*.index")):
    return None
  os.makedirs(os.path.dirname(target), exist_ok=True)
  if os.path.isdir(target):
    shutil.rmtree(target)
  shutil.copytree(shipped, target)
  return target


def main(argv=None) -> int:
  ap = argparse.ArgumentParser(description=__doc__,
                               formatter_class=argparse.RawDescriptionHelpFormatter)
  ap.add_argument("names", nargs="+", help=f"instruments ({', '.join(INSTRUMENTS)})")
  ap.add_argument("--quality", help="JSON written by bench/transfer_quality.py (its medians go "
                                    "into the card)")
  ap.add_argument("--card-only", action="store_true",
                  help="with --quality: write the medians into the installed model's card only "
                       "(no instruments/out needed; the weights stay as shipped)")
  ap.add_argument("--restore", action="store_true",
                  help="copy the shipped model back into instruments/out to resume training")
  args = ap.parse_args(argv)
  for name in args.names:
    if name not in INSTRUMENTS:
      print(f"unknown instrument {name!r} (instruments: {', '.join(INSTRUMENTS)})",
            file=sys.stderr)
      return 2
  if args.card_only and (not args.quality or args.restore):
    print("--card-only needs --quality JSON, and not --restore", file=sys.stderr)
    return 2
  for name in args.names:
    if args.card_only:
      print(f"[ship] {name}: transfer quality recorded in {record_quality(name, args.quality)}")
    elif args.restore:
      target = restore(name)
      print(f"[ship] {name}: " + (f"restored the shipped model into {target}" if target else
                                  "nothing to restore (none shipped, or a checkpoint is there)"))
    else:
      print(f"[ship] {name}: shipped -> {ship(name, quality=args.quality)}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
