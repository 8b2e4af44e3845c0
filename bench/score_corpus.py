"""Pitch accuracy of `ddsp-beam features` on the shared corpus, scored by its own tool.

    python -m bench.score_corpus --crepe_model full --out bench/results/est_full
    python -m bench.score_corpus --crepe_model tiny --precision bfloat16 --out /tmp/est

Runs the features job (same code path as the CLI) over every clean file under
../shared/corpus/{train,transfer}, writes one estimate CSV per file in the layout
`score_f0.py` reads, and prints its per-file markdown table.
"""

import argparse
import os
import subprocess
import sys

import numpy as np
import pyarrow.parquet as pq

from jobs import features as features_job

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_CORPUS = os.path.join(os.path.dirname(REPO), "shared", "corpus")


def main(argv=None):
  ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  ap.add_argument("--corpus", default=DEFAULT_CORPUS)
  ap.add_argument("--crepe_model", default="full")
  ap.add_argument("--precision", default="float32")
  ap.add_argument("--viterbi", action=argparse.BooleanOptionalAction, default=True)
  ap.add_argument("--f0_rate", type=int, default=None)
  ap.add_argument("--out", required=True, help="folder for features.parquet and estimate CSVs")
  ap.add_argument("--parts", nargs="+", default=["train", "transfer"])
  args = ap.parse_args(argv)
  os.makedirs(args.out, exist_ok=True)
  patterns = [os.path.join(args.corpus, part, "**") for part in args.parts]
  parquet = os.path.join(args.out, "features.parquet")
  result = features_job.run_features(patterns, parquet, crepe_model=args.crepe_model,
                                     viterbi=args.viterbi, precision=args.precision,
                                     f0_rate=args.f0_rate)
  print(f"{result.audio_seconds:.1f} s of audio in {result.wall_seconds:.1f} s "
        f"({result.wall_seconds / result.audio_seconds:.3f} s per audio s), "
        f"{len(result.errors)} errors", flush=True)
  table = pq.read_table(parquet).to_pandas()
  for path, rows in table.groupby("path"):
    rel = os.path.relpath(os.path.splitext(path)[0] + ".csv", args.corpus)
    dest = os.path.join(args.out, "est", rel)
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    np.savetxt(dest, rows[["time_s", "f0_hz", "f0_confidence"]].to_numpy(), delimiter=",",
               header="time_s,f0_hz,confidence", comments="", fmt="%.6f")
  # One part: score it alone (score_f0 reports truth files without an estimate as missing).
  sub = args.parts[0] if len(args.parts) == 1 else ""
  cmd = [sys.executable, os.path.join(args.corpus, "score_f0.py"), "--est-dir",
         os.path.join(args.out, "est", sub), "--truth-dir", os.path.join(args.corpus, "truth", sub),
         "--markdown", "--backend", "numpy", "--json", os.path.join(args.out, "scores.json")]
  return subprocess.call(cmd)


if __name__ == "__main__":
  sys.exit(main())
