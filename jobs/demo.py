"""`make demo`: runs ddsp-beam on the small corpus shipped in demo/corpus.

For now the demo computes features (CREPE tiny, so it takes seconds) and the
Colab-style feature plots of every demo file.
"""

import argparse
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO_CORPUS = os.path.join(REPO, "demo", "corpus")


def main(argv=None) -> int:
  ap = argparse.ArgumentParser(description=__doc__)
  ap.add_argument("--output", default="demo_out")
  ap.add_argument("--corpus", default=DEMO_CORPUS)
  args = ap.parse_args(argv)
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  from jobs import cli  # pylint: disable=g-import-not-at-top
  out = os.path.abspath(args.output)
  print(f"[demo] features of every file under {args.corpus} (CREPE tiny, 250 frames/s)", flush=True)
  rc = cli.main(["features", args.corpus, "-o", os.path.join(out, "features.parquet"),
                 "--crepe_model", "tiny", "--plots", os.path.join(out, "plots")])
  print(f"[demo] per-frame features: {os.path.join(out, 'features.parquet')}")
  print(f"[demo] feature plots:      {os.path.join(out, 'plots')}/")
  return rc


if __name__ == "__main__":
  sys.exit(main())
