"""`make demo`: runs ddsp-beam on the small corpus shipped in demo/corpus.

Steps (CREPE tiny, so each takes seconds on a laptop CPU):
1. `ddsp-beam prepare` of the violin recordings into a training dataset;
2. `ddsp-beam features` of every demo file, with Colab-style feature plots.
Training, timbre transfer and the HTML report join as those features land.
"""

import argparse
import json
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
  dataset = os.path.join(out, "violin_dataset")
  print(f"[demo] 1/2 prepare: {args.corpus}/violin -> {dataset} (CREPE tiny, 4 s windows, "
        "a third of the recordings held out for eval)", flush=True)
  rc_prepare = cli.main(["prepare", "--input", os.path.join(args.corpus, "violin"),
                         "--output", dataset, "--crepe_model", "tiny", "--eval_fraction", "0.34"])
  print(f"[demo] 2/2 features and plots of every file under {args.corpus}", flush=True)
  rc_features = cli.main(["features", args.corpus, "-o", os.path.join(out, "features.parquet"),
                          "--crepe_model", "tiny", "--plots", os.path.join(out, "plots")])
  if rc_prepare == 0:
    with open(os.path.join(dataset, "dataset.json"), encoding="utf-8") as f:
      counts = json.load(f)["counts"]
    print(f"[demo] dataset:   {dataset} ({counts['windows_train']} train / "
          f"{counts['windows_eval']} eval windows; reports in {dataset}/reports)")
  print(f"[demo] features:  {os.path.join(out, 'features.parquet')}")
  print(f"[demo] plots:     {os.path.join(out, 'plots')}/")
  return max(rc_prepare, rc_features)


if __name__ == "__main__":
  sys.exit(main())
