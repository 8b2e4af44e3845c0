"""`make demo`: runs ddsp-beam on the small corpus shipped in demo/corpus.

1. `ddsp-beam prepare`: the violin recordings -> a training dataset (CREPE tiny,
   2-second windows so that a CPU trains on them quickly);
2. `ddsp-beam train`: tiny_instrument.gin for a few hundred steps (fewer when
   CI=true), then its eval metrics;
3. `ddsp-beam transfer`: the voice and trumpet recordings through that model
   (WAVs, a Parquet report, plots and an index.html to listen to them);
4. `ddsp-beam features`: features and Colab-style plots of every demo file.
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
  ap.add_argument("--steps", type=int, default=30 if os.environ.get("CI") == "true" else 300)
  args = ap.parse_args(argv)
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  from jobs import cli  # pylint: disable=g-import-not-at-top
  out = os.path.abspath(args.output)
  dataset = os.path.join(out, "violin_dataset")
  model_dir = os.path.join(out, "violin_model")
  print(f"[demo] 1/4 prepare: {args.corpus}/violin -> {dataset} (CREPE tiny, 2 s windows, "
        "a third of the recordings held out for eval)", flush=True)
  rc = cli.main(["prepare", "--input", os.path.join(args.corpus, "violin"), "--output", dataset,
                 "--crepe_model", "tiny", "--example_secs", "2", "--eval_fraction", "0.34"])
  if rc != 0:
    return rc
  print(f"[demo] 2/4 train tiny_instrument.gin for {args.steps} steps -> {model_dir} "
        "(rerunning resumes; delete the folder to start over)", flush=True)
  rc = cli.main(["train", "--data", dataset, "--model_dir", model_dir,
                 "--gin_file", "tiny_instrument.gin", "--gin_param", "train.batch_size = 8",
                 "--gin_param", "train.learning_rate = 0.001", "--steps", str(args.steps),
                 "--checkpoint_every", "50", "--log_every", "25"])
  if rc != 0:
    return rc
  transfer_dir = os.path.join(out, "transfer")
  print(f"[demo] 3/4 transfer {args.corpus}/transfer/* through the violin model -> {transfer_dir}",
        flush=True)
  rc_transfer = cli.main(["transfer", "--input", os.path.join(args.corpus, "transfer", "*.wav"),
                          "--model", f"violin={model_dir}", "--output", transfer_dir,
                          "--crepe_model", "tiny", "--plots"])
  print(f"[demo] 4/4 features and plots of every file under {args.corpus}", flush=True)
  rc = cli.main(["features", args.corpus, "-o", os.path.join(out, "features.parquet"),
                 "--crepe_model", "tiny", "--plots", os.path.join(out, "plots")])
  with open(os.path.join(dataset, "dataset.json"), encoding="utf-8") as f:
    counts = json.load(f)["counts"]
  print(f"[demo] dataset:  {dataset} ({counts['windows_train']} train / "
        f"{counts['windows_eval']} eval windows; reports in {dataset}/reports)")
  metrics = os.path.join(model_dir, "eval", "metrics.json")
  if os.path.exists(metrics):
    with open(metrics, encoding="utf-8") as f:
      m = json.load(f)
    print(f"[demo] model:    {model_dir} (step {m['step']}; eval spectral loss "
          f"{m['spectral_loss']:.2f}, loudness L1 {m['loudness_l1_db']:.1f} dB)")
  print(f"[demo] transfer: {transfer_dir}/index.html (listen), reports/transfer.parquet")
  print(f"[demo] features: {os.path.join(out, 'features.parquet')}")
  print(f"[demo] plots:    {os.path.join(out, 'plots')}/")
  return max(rc, rc_transfer)


if __name__ == "__main__":
  sys.exit(main())
