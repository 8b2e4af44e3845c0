"""ddsp-beam prepare side by side with magenta's ddsp_prepare_tfrecord: wall time and pitch accuracy.

    python -m bench.vs_magenta [--configs tiny:float32:250,full:bfloat16:250 ...] [--out FILE]

On ../shared/corpus/train (11 recordings, 209 s), in one run on this machine:
- magenta ddsp 3.7.0 (the side venv: bash bench/make_magenta_venv.sh), `ddsp_prepare_tfrecord`
  with its default flags, one run per file (../shared/tools/magenta/magenta_prepare_each.sh,
  which keeps which windows came from which file). Its wall time is the sum of the runs; its
  start-up (importing ddsp, TensorFlow and Beam, measured here) is also given, so the ratio can
  be read without it. The per-frame f0 is rebuilt from its records (magenta_f0_csv.py, frames
  labelled at their window centres) and scored against the truth (score_f0.py).
- ddsp-beam, per configuration CAPACITY:PRECISION:F0_RATE: `ddsp-beam prepare` over the same
  files in one command (wall time, start-up included), and the same f0 code scored on the truth
  grid (`bench.score_corpus --parts train`).
- full-model parity: for each full-capacity configuration other than float32 at 250 frames/s,
  the share of frames (confidence >= 0.5 in the float32 reference) whose f0 is within 10 cents of
  the float32 reference's.
Accuracy is the pooled raw pitch accuracy (RPA, 50 cents) over all scored frames of train/.
"""

import argparse
import csv
import datetime
import glob
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import pyarrow.parquet as pq

from bench import run as bench_run

CORPUS = bench_run.CORPUS
TOOLS = os.environ.get("MAGENTA_TOOLS", os.path.join(os.path.dirname(bench_run.REPO), "shared",
                                                     "tools", "magenta"))
DEFAULT_CONFIGS = ("small:float32:250,small:bfloat16:250,tiny:float32:250,tiny:float32:100,"
                   "full:bfloat16:250,full:float32:250")
POOLED = "ALL (pooled frames)"


def score(est_dir, part="train"):
  out = os.path.join(est_dir, "scores.json")
  subprocess.run([sys.executable, os.path.join(CORPUS, "score_f0.py"), "--est-dir",
                  os.path.join(est_dir, part), "--truth-dir", os.path.join(CORPUS, "truth", part),
                  "--backend", "numpy", "--json", out], check=True, capture_output=True)
  with open(out, encoding="utf-8") as f:
    return json.load(f)


def magenta(work, train):
  """(wall s summed over per-file runs, start-up s of one run, scores) of magenta's prepare."""
  runs = os.path.join(work, "magenta_runs")
  subprocess.run(["bash", os.path.join(TOOLS, "magenta_prepare_each.sh"), runs] + train,
                 check=True, env=bench_run.ENV, capture_output=True)
  with open(os.path.join(runs, "timings.csv"), encoding="utf-8") as f:
    rows = list(csv.DictReader(f))
  assert all(r["exit_status"] == "0" for r in rows), rows
  wall = sum(float(r["wall_s"]) for r in rows)
  start = time.time()
  subprocess.run([bench_run.MAGENTA_PY, "-c", "import ddsp.training, apache_beam, crepe"],
                 check=True, env=bench_run.ENV, capture_output=True)
  startup = time.time() - start
  csvs = os.path.join(work, "magenta_csv")
  subprocess.run([bench_run.MAGENTA_PY, os.path.join(TOOLS, "magenta_f0_csv.py"), runs,
                  "--out-dir", csvs], check=True, env=bench_run.ENV, capture_output=True)
  est = os.path.join(work, "magenta_est")
  for path in train:  # score_f0 pairs estimates with the truth by relative path
    rel = os.path.relpath(os.path.splitext(path)[0] + ".csv", CORPUS)
    os.makedirs(os.path.dirname(os.path.join(est, rel)), exist_ok=True)
    shutil.copy(os.path.join(csvs, os.path.basename(rel)), os.path.join(est, rel))
  return wall, startup, score(est)


def ours(work, capacity, precision, f0_rate, repeats):
  """(median prepare wall s, scores, features parquet) of one ddsp-beam configuration."""
  flags = ["--crepe_model", capacity, "--precision", precision, "--f0_rate", str(f0_rate)]
  walls = []
  for i in range(repeats):
    out = os.path.join(work, f"ds-{capacity}-{precision}-{f0_rate}-{i}")
    walls.append(bench_run.timed([bench_run.DDSP_BEAM, "prepare", "--input",
                                  os.path.join(CORPUS, "train", "**"), "--output", out,
                                  "--no_progress"] + flags)[0])
    shutil.rmtree(out, ignore_errors=True)
  est = os.path.join(work, f"est-{capacity}-{precision}-{f0_rate}")
  subprocess.run([sys.executable, "-m", "bench.score_corpus", "--parts", "train", "--out", est,
                  "--crepe_model", capacity, "--precision", precision, "--f0_rate", str(f0_rate)],
                 check=True, env=bench_run.ENV, capture_output=True, cwd=bench_run.REPO)
  return statistics.median(walls), score(os.path.join(est, "est")), os.path.join(
      est, "features.parquet")


def within_cents(parquet, reference, cents=10.0, confidence=0.5):
  """Share of frames confident in `reference` whose f0 is within `cents` of it."""
  a = pq.read_table(parquet).to_pandas().sort_values(["path", "frame"])
  b = pq.read_table(reference).to_pandas().sort_values(["path", "frame"])
  keep = (b["f0_confidence"].to_numpy() >= confidence) & (b["f0_hz"].to_numpy() > 0)
  fa, fb = a["f0_hz"].to_numpy()[keep], b["f0_hz"].to_numpy()[keep]
  diff = 1200 * np.abs(np.log2(np.maximum(fa, 1e-3) / fb))
  return float(np.mean(diff <= cents)), int(keep.sum())


def main(argv=None):
  ap = argparse.ArgumentParser(description=__doc__,
                               formatter_class=argparse.RawDescriptionHelpFormatter)
  ap.add_argument("--configs", default=DEFAULT_CONFIGS)
  ap.add_argument("--repeats", type=int, default=1)
  ap.add_argument("--keep", help="keep the work folder (records, estimates, scores) here")
  ap.add_argument("--out", default=os.path.join(bench_run.REPO, "bench", "results",
                                                f"{datetime.date.today().isoformat()}-vs-magenta.md"))
  args = ap.parse_args(argv)
  if not os.path.exists(bench_run.MAGENTA_PY):
    sys.exit("the magenta side venv is missing: bash bench/make_magenta_venv.sh")
  train = sorted(glob.glob(os.path.join(CORPUS, "train", "*", "*.wav")))
  audio_s = sum(bench_run.sf.info(p).duration for p in train)
  lines = []
  with tempfile.TemporaryDirectory() as scratch:
    work = args.keep or scratch
    os.makedirs(work, exist_ok=True)
    m_wall, m_startup, m_scores = magenta(work, train)
    m_rpa = m_scores[POOLED]["RPA"]
    print(f"magenta: {m_wall:.0f} s ({m_startup:.1f} s start-up per run), RPA {m_rpa:.4f}",
          flush=True)
    lines += [f"# ddsp-beam prepare vs magenta ddsp_prepare_tfrecord, "
              f"{datetime.date.today().isoformat()}", "",
              f"CPU: {bench_run.cpu_model()}, {os.cpu_count()} cores. Input: ../shared/corpus/train, "
              f"{len(train)} files, {audio_s:.1f} s of audio. RPA: pooled raw pitch accuracy "
              "(50 cents) on the truth of train/.", "",
              f"magenta ddsp 3.7.0, default flags (CREPE full, Viterbi, 20 s chunks), one run per "
              f"file: **{m_wall:.0f} s** ({m_wall / audio_s:.2f} s per audio s; {len(train)} runs of "
              f"which start-up is {m_startup:.1f} s each, so {m_wall - len(train) * m_startup:.0f} s "
              f"without it), RPA **{m_rpa:.4f}**.", "",
              "| ddsp-beam config (capacity, precision, f0 frames/s) | prepare wall s | s per "
              "audio s | vs magenta | vs magenta without its start-up | RPA | RPA - magenta's |",
              "|---|---:|---:|---:|---:|---:|---:|"]
    features = {}
    for config in args.configs.split(","):
      capacity, precision, f0_rate = config.split(":")
      wall, scores, parquet = ours(work, capacity, precision, int(f0_rate), args.repeats)
      features[(capacity, precision, int(f0_rate))] = parquet
      rpa = scores[POOLED]["RPA"]
      row = (f"| {capacity}, {precision}, {f0_rate} | {wall:.1f} | {wall / audio_s:.3f} | "
             f"{m_wall / wall:.1f}x | {(m_wall - len(train) * m_startup) / wall:.1f}x | "
             f"{rpa:.4f} | {rpa - m_rpa:+.4f} |")
      print(row, flush=True)
      lines.append(row)
    reference = features.get(("full", "float32", 250))
    if reference:
      lines += ["", "Full-model parity: f0 within 10 cents of CREPE full float32 at 250 frames/s, "
                "over its frames with confidence >= 0.5:", ""]
      for (capacity, precision, f0_rate), parquet in features.items():
        if capacity == "full" and (precision, f0_rate) != ("float32", 250):
          share, n = within_cents(parquet, reference)
          lines.append(f"- full, {precision}, {f0_rate} frames/s: {share:.2%} of {n} frames")
  text = "\n".join(lines) + "\n"
  print("\n" + text)
  os.makedirs(os.path.dirname(args.out), exist_ok=True)
  with open(args.out, "w", encoding="utf-8") as f:
    f.write(text)
  return 0


if __name__ == "__main__":
  sys.exit(main())
