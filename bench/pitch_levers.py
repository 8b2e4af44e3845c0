"""Pitch accuracy per corpus folder for each CREPE lever (issue 16's table).

    .venv/bin/python -m bench.pitch_levers --out bench/results/2026-12-01-pitch-levers.md
    .venv/bin/python -m bench.pitch_levers --configs small/float32/250,full/bfloat16/100

For every config (capacity / precision / f0 frames per second [/ skip-silent dB]; precision
float32, bfloat16, or int8 / int8-weights through TensorFlow Lite, bench/crepe_int8.py) the f0 of
every clean file under ../shared/corpus/{train,transfer,range} is computed in this process
with `ddsp_core.features.compute_features` (the code path of prepare and `ddsp-beam features`;
one model built per config), scored against the corpus's own truth with its `score_f0.py`
(raw pitch accuracy at 50 cents, pooled over frames), and timed (wall and CPU seconds per
audio second, decoding excluded: each file is decoded once up front).

The table gives pooled RPA per folder and over all three, the worst file, and the share of
frames skipped as silent. The time columns are only comparable within one run.
"""

import argparse
import dataclasses
import glob
import importlib.util
import os
import sys
import time
from typing import Dict, List, Optional

import numpy as np

from ddsp_core import audio as audio_lib
from ddsp_core import crepe as crepe_lib
from ddsp_core import crepe_octave
from ddsp_core import features as features_lib
from ddsp_core import loudness as loudness_lib
from bench import run as bench_run
from bench.score_corpus import DEFAULT_CORPUS

FOLDERS = ("train", "transfer", "range")
FRAME_RATE = 250
# The octave cascade without its quiet rule (every unsure frame through full): the default of
# 2026-12-07, kept as a lever to show what the rule changes.
OCTAVE_NO_QUIET = "cascade-octave-noquiet"
# The octave cascade with another octave-move tolerance: "cascade-octave-tol50" (cents; 100 is
# the default's).
OCTAVE_TOLERANCE = "cascade-octave-tol"
DEFAULT_CONFIGS = ("small/float32/250", "tiny/float32/250", "full/bfloat16/250",
                   "full/bfloat16/125", "full/bfloat16/100", "full/bfloat16/50",
                   "full/bfloat16/100/-70", "small/bfloat16/250")


@dataclasses.dataclass
class Config:
  model: str
  precision: str
  f0_rate: int
  skip_silent_db: Optional[float] = None

  @classmethod
  def parse(cls, text: str) -> "Config":
    parts = text.split("/")
    if parts[0].startswith(crepe_lib.CASCADE) and parts[1].startswith("int8"):
      raise ValueError(f"{text}: the cascade runs in float32 or bfloat16 only")
    return cls(parts[0], parts[1], int(parts[2]), float(parts[3]) if len(parts) > 3 else None)

  def __str__(self):
    if self.model == "swiftf0":
      return "SwiftF0 (not CREPE), float32, 62.5"
    skip = f", skip <= {self.skip_silent_db:g} dB" if self.skip_silent_db is not None else ""
    if self.model == "cascade":
      return f"cascade small -> full, {self.precision}, {self.f0_rate}{skip}"
    if self.model == crepe_lib.CASCADE_OCTAVE:
      return (f"cascade-octave (40 ms grid, quiet <= {crepe_octave.QUIET_DB:g} dB keep small), "
              f"{self.precision}, {self.f0_rate}{skip}")
    if self.model.startswith(OCTAVE_TOLERANCE):
      return (f"cascade-octave, octave moves within {self.model[len(OCTAVE_TOLERANCE):]} cents, "
              f"{self.precision}, {self.f0_rate}{skip}")
    if self.model == OCTAVE_NO_QUIET:
      return f"cascade-octave without the quiet rule (2026-12-07), {self.precision}, {self.f0_rate}{skip}"
    return f"{self.model}, {self.precision}, {self.f0_rate}{skip}"


def load_score_f0(corpus: str):
  """The corpus's own scorer, imported from its file (it is not a package)."""
  spec = importlib.util.spec_from_file_location("score_f0", os.path.join(corpus, "score_f0.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def corpus_files(corpus: str) -> List[Dict]:
  """Each clean file with a truth CSV: folder, audio path, truth path."""
  files = []
  for folder in FOLDERS:
    root = os.path.join(corpus, "truth", folder)
    for truth in sorted(glob.glob(os.path.join(root, "**", "*.csv"), recursive=True)):
      if truth.endswith(".notes.csv"):
        continue
      stem = os.path.splitext(os.path.relpath(truth, root))[0]
      audio = [p for p in glob.glob(os.path.join(corpus, folder, glob.escape(stem) + ".*"))
               if not p.endswith((".csv", ".json", ".mid", ".txt"))]
      if audio:
        files.append({"folder": folder, "audio": audio[0], "truth": truth,
                      "name": os.path.basename(stem)})
  return files


def _swift_f0():
  """SwiftF0 (PyPI `swift-f0`, MIT, ONNX weights in its wheel), when installed."""
  from swift_f0 import SwiftF0  # pylint: disable=g-import-not-at-top
  return SwiftF0()


def run_config(config: Config, files: List[Dict], scorer) -> Dict:
  if config.model == "swiftf0":
    return run_swift_f0(config, files, scorer)
  if config.precision in ("int8", "int8-weights"):
    from bench import crepe_int8  # pylint: disable=g-import-not-at-top
    net = crepe_int8.Int8Crepe(config.model, config.precision)
  elif config.model.startswith(OCTAVE_TOLERANCE):
    net = crepe_octave.OctaveCascadeModel(
        config.precision, tolerance_cents=float(config.model[len(OCTAVE_TOLERANCE):]))
  elif config.model == OCTAVE_NO_QUIET:
    net = crepe_octave.OctaveCascadeModel(config.precision, quiet_db=None)
  else:  # 'cascade': crepe.CascadeModel; 'cascade-octave': crepe_octave.OctaveCascadeModel
    net = crepe_lib.get_model(config.model, config.precision)
  net.activations(np.zeros((4, crepe_lib.FRAME_SIZE), np.float32))  # build, warm
  two_stage = hasattr(net, "full_frames")
  if two_stage:
    net.frames = net.full_frames = 0  # one cascade per process: count this config's frames only
    if hasattr(net, "moved"):
      net.settled = net.moved = net.quiet_kept = 0
  wall = cpu = 0.0
  skipped = frames = 0
  per_file = []
  shares = {"skipped": {}, "full": {}}  # per folder: [numerator, frames]
  for f in files:
    audio = f["pcm"]
    before = (net.full_frames, net.frames) if two_stage else None
    t0, c0 = time.perf_counter(), time.process_time()
    feats = features_lib.compute_features(audio, frame_rate=FRAME_RATE, crepe_model=net,
                                          f0_rate=None if config.f0_rate == FRAME_RATE else config.f0_rate,
                                          skip_silent_db=config.skip_silent_db)
    wall += time.perf_counter() - t0
    cpu += time.process_time() - c0
    n = len(feats["f0_hz"])
    frames += n
    if config.skip_silent_db is not None:
      loud = loudness_lib.compute_loudness(audio, 16000, FRAME_RATE, n_fft=crepe_lib.FRAME_SIZE)
      silent = int((loud[:n] <= config.skip_silent_db).sum())
      skipped += silent
      _add(shares["skipped"], f["folder"], silent, n)
    if before is not None:
      _add(shares["full"], f["folder"], net.full_frames - before[0], net.frames - before[1])
    ref_t, ref_f, ref_v, w = scorer.read_truth(f["truth"])
    est_t = np.arange(n) / FRAME_RATE
    m = scorer.score_arrays(ref_t, ref_f, ref_v, w, est_t, feats["f0_hz"].astype(float),
                            feats["f0_confidence"].astype(float), backend="numpy")
    per_file.append((f, m))
  result = summarise(config, files, per_file, wall, cpu, skipped, frames, scorer)
  if two_stage:  # the share of CREPE's frames that went through full too
    result["full_share"] = net.full_frames / max(net.frames, 1)
  if hasattr(net, "moved"):
    result["settled_share"] = net.settled / max(net.frames, 1)
    result["moved_share"] = net.moved / max(net.frames, 1)
    result["quiet_share"] = net.quiet_kept / max(net.frames, 1)
  result["folder_shares"] = {k: {folder: a / max(b, 1) for folder, (a, b) in v.items()}
                             for k, v in shares.items() if v}
  return result


def _add(table: Dict, folder: str, count: int, frames: int) -> None:
  a, b = table.get(folder, (0, 0))
  table[folder] = (a + count, b + frames)


def run_swift_f0(config: Config, files: List[Dict], scorer) -> Dict:
  """The same measurement for SwiftF0 (16 ms frames, 46.875-2093.75 Hz)."""
  detector = _swift_f0()
  detector.detect(np.zeros(16000, np.float32), 16000)  # warm
  wall = cpu = 0.0
  per_file = []
  for f in files:
    t0, c0 = time.perf_counter(), time.process_time()
    result = detector.detect(f["pcm"], 16000)
    wall += time.perf_counter() - t0
    cpu += time.process_time() - c0
    ref_t, ref_f, ref_v, w = scorer.read_truth(f["truth"])
    m = scorer.score_arrays(ref_t, ref_f, ref_v, w, result.timestamps, result.pitch_hz,
                            result.confidence, backend="numpy")
    per_file.append((f, m))
  return summarise(config, files, per_file, wall, cpu, 0, 0, scorer)


def summarise(config, files, per_file, wall, cpu, skipped, frames, scorer) -> Dict:
  by_folder = {}
  for folder in FOLDERS + ("all",):
    rows = [m for f, m in per_file if folder in ("all", f["folder"])]
    if rows:
      pooled = scorer.pool(rows, "numpy")
      worst = min(((m["RPA"], f["name"]) for f, m in per_file if folder in ("all", f["folder"])))
      by_folder[folder] = {"RPA": pooled["RPA"], "RCA": pooled["RCA"], "worst": worst}
  seconds = sum(len(f["pcm"]) for f in files) / 16000
  return {"config": config, "by_folder": by_folder, "wall_per_s": wall / seconds,
          "cpu_per_s": cpu / seconds, "skipped_share": skipped / frames if frames else 0.0,
          "per_file": [(f["folder"], f["name"], m["RPA"]) for f, m in per_file]}


def markdown(results: List[Dict], seconds: float, n_files: int) -> str:
  lines = [f"{n_files} files, {seconds:.1f} s of audio ({', '.join(FOLDERS)}); RPA = raw pitch "
           "accuracy at 50 cents, pooled over frames; worst = the lowest file RPA in the folder.", "",
           "| CREPE (model, precision, f0 frames/s) | " +
           " | ".join(f"{f} RPA" for f in FOLDERS) + " | all RPA | worst file (RPA) | all RCA | "
           "wall s per audio s | CPU s per audio s | frames skipped |",
           "|---|" + "---:|" * (len(FOLDERS) + 1) + "---|---:|---:|---:|---:|"]
  for r in results:
    b = r["by_folder"]
    worst = b["all"]["worst"]
    lines.append(f"| {r['config']} | " + " | ".join(
        f"{100 * b[f]['RPA']:.2f}%" if f in b else "-" for f in FOLDERS) +
        f" | {100 * b['all']['RPA']:.2f}% | {worst[1]} ({100 * worst[0]:.1f}%) | "
        f"{100 * b['all']['RCA']:.2f}% | {r['wall_per_s']:.3f} | {r['cpu_per_s']:.3f} | "
        f"{100 * r['skipped_share']:.1f}% |")
  for r in results:
    if "full_share" in r:
      lines.append(f"\n{r['config']}: {100 * r['full_share']:.1f}% of CREPE's frames went "
                   "through full as well as small.")
    if "moved_share" in r:
      lines.append(f"\n{r['config']}: {100 * r['settled_share']:.1f}% of CREPE's frames were low "
                   "and settled by a full neighbour without full of their own; "
                   f"{100 * r['moved_share']:.1f}% moved by whole octaves; "
                   f"{100 * r['quiet_share']:.1f}% quiet, kept small's reading where unsure or low.")
    for kind, what in (("skipped", "of the frames skipped as silent"),
                       ("full", "of CREPE's frames through full as well")):
      per = r.get("folder_shares", {}).get(kind)
      if per:
        lines.append(f"\n{r['config']}, per folder, share {what}: " + ", ".join(
            f"{folder} {100 * share:.1f}%" for folder, share in per.items()) + ".")
  lines += ["", "Files below 99% RPA per config:", ""]
  for r in results:
    low = [f"{name} {100 * rpa:.1f}%" for _, name, rpa in r["per_file"] if rpa < 0.99]
    lines.append(f"- {r['config']}: " + (", ".join(low) if low else "none"))
  return "\n".join(lines) + "\n"


def main(argv=None):
  ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  ap.add_argument("--corpus", default=DEFAULT_CORPUS)
  ap.add_argument("--configs", default=",".join(DEFAULT_CONFIGS))
  ap.add_argument("--out", help="markdown file for the table (printed either way)")
  ap.add_argument("--only", help="comma-separated substrings: only the files whose name has one")
  args = ap.parse_args(argv)
  scorer = load_score_f0(args.corpus)
  files = corpus_files(args.corpus)
  if args.only:
    files = [f for f in files if any(s in f["name"] for s in args.only.split(","))]
  for f in files:
    f["pcm"], _ = audio_lib.load_audio(f["audio"])
  seconds = sum(len(f["pcm"]) for f in files) / 16000
  print(f"{len(files)} files, {seconds:.1f} s of audio", flush=True)
  results = []
  for text in args.configs.split(","):
    r = run_config(Config.parse(text), files, scorer)
    results.append(r)
    print(f"  {r['config']}: all {100 * r['by_folder']['all']['RPA']:.2f}%  "
          f"wall {r['wall_per_s']:.3f} s/s", flush=True)
    if args.out:  # after each config, so that a long run stopped early keeps what it measured
      _write(args.out, args.configs, markdown(results, seconds, len(files)))
  print(markdown(results, seconds, len(files)))
  return 0


def _write(path: str, configs: str, table: str):
  with open(path, "w", encoding="utf-8") as fh:
    fh.write(f"# CREPE levers per corpus folder, {time.strftime('%Y-%m-%d')}\n\n"
             f"`python -m bench.pitch_levers --configs {configs}` on "
             f"{bench_run.cpu_model()}, {os.cpu_count()} cores\n\n" + table)


if __name__ == "__main__":
  sys.exit(main())
