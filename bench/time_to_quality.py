"""`make bench`, section `time_to_quality`: held-out loss after N minutes of wall-clock training.

    python -m bench.time_to_quality --data DATASET_DIR [--minutes 20] [--configs a,b]
        [--out bench/results/DATE-time-to-quality.md]

Each configuration trains from scratch on the same prepared dataset (train
split) for the same wall-clock time, as its own process that is then killed
(start-up, tracing and checkpoint writes all count); every checkpoint it
finished is then scored on the same held-out windows (the dataset's eval
split) by the same code: the multi-scale spectral loss of the model's
resynthesis, noise seeded. The table gives each configuration's steps, steps
per second and held-out loss at 5, 10 and the full minutes; the plot beside
it the curves of held-out loss against minutes.

Configurations: ddsp-beam's tiny and solo architectures, each with the
decoder at the dataset's 250 frames/s and at 50 (`Autoencoder.frame_rate =
50`, features decimated in the input pipeline), and magenta 3.7.0's
`ddsp_run --mode=train` with its solo_instrument.gin (the side venv,
bench/make_magenta_venv.sh) on the same TFRecords, batch and learning rate as
ddsp-beam's solo; its checkpoints are read into ddsp-beam's model
(`ddsp_core.magenta_model`, the importer's parity-tested path) to be scored.

A slow section (about `minutes` x configurations, plus scoring): run once for
the results file, not by default.
"""

import argparse
import datetime
import glob
import json
import os
import re
import subprocess
import sys
import tempfile
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MAGENTA_PY = os.path.expanduser(os.environ.get("MAGENTA_VENV", "~/.magenta-ddsp-venv")) + "/bin/python"
BATCH = 16

# name -> (gin file, bindings, checkpoint every N steps): about ten checkpoints in 20 minutes
# on a 2-core CPU. The learning rates: 1e-3 as the instrument recipes (instruments/*.toml),
# 3e-4 for solo as magenta's solo_instrument.gin, so magenta's run is the same recipe.
CONFIGS = {
    "tiny@250": ("tiny_instrument.gin", ["train.learning_rate = 0.001"], 100),
    "tiny@50": ("tiny_instrument.gin", ["train.learning_rate = 0.001",
                                        "Autoencoder.frame_rate = 50"], 200),
    "solo@250": ("solo_instrument.gin", ["train.learning_rate = 0.0003"], 10),
    "solo@50": ("solo_instrument.gin", ["train.learning_rate = 0.0003",
                                        "Autoencoder.frame_rate = 50"], 30),
    "magenta solo@250": (None, [], 10),
}
MARKS = (5, 10)  # minutes at which the table reads each curve (and at the end)


def _train_ours(data_dir, model_dir, gin_file, bindings, every, seconds):
  cmd = [sys.executable, "-m", "jobs.cli", "train", "--data", data_dir, "--model_dir", model_dir,
         "--gin_file", gin_file, "--steps", "10000000", "--checkpoint_every", str(every),
         "--keep_checkpoints", "1000", "--log_every", str(every), "--seed", "0", "--no-eval",
         "--no_progress", "--gin_param", f"train.batch_size = {BATCH}"]
  for b in bindings:
    cmd += ["--gin_param", b]
  return _run_for(cmd, seconds, dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))


def _train_magenta(data_dir, save_dir, every, seconds):
  ddsp_run = os.path.join(os.path.dirname(MAGENTA_PY), "ddsp_run")
  params = [f"TFRecordProvider.file_pattern = '{os.path.join(data_dir, 'train.tfrecord-*')}'",
            f"train_util.train.batch_size = {BATCH}", "train_util.train.num_steps = 10000000",
            f"train_util.train.steps_per_save = {every}",
            "train_util.train.steps_per_summary = 100000", "Trainer.checkpoints_to_keep = 1000",
            "Trainer.learning_rate = 0.0003"]
  cmd = [ddsp_run, "--mode=train", f"--save_dir={save_dir}",
         "--gin_file=models/solo_instrument.gin", "--gin_file=datasets/tfrecord.gin"]
  cmd += [f"--gin_param={p}" for p in params]
  env = dict(os.environ, CUDA_VISIBLE_DEVICES="", TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="3")
  return _run_for(cmd, seconds, env)


def _run_for(cmd, seconds, env):
  """Runs `cmd` for `seconds` of wall clock, then kills it; returns its start time."""
  started = time.time()
  proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, text=True)
  try:
    _, err = proc.communicate(timeout=seconds)
    print(f"{cmd[0]} ended on its own (rc {proc.returncode}) after {time.time() - started:.0f} s:\n"
          f"{err[-2000:]}", file=sys.stderr)
  except subprocess.TimeoutExpired:
    proc.kill()
    _, err = proc.communicate()
    if "Traceback" in err:
      print(err[-3000:], file=sys.stderr)
  return started


def checkpoint_times(model_dir, started):
  """[(step, minutes since start)] of the complete checkpoints (the `checkpoint` file's list)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  state = tf.train.get_checkpoint_state(model_dir)
  out = []
  for prefix in (state.all_model_checkpoint_paths if state else []):
    prefix = prefix if os.path.isabs(prefix) else os.path.join(model_dir, prefix)
    if os.path.exists(prefix + ".index"):
      step = int(re.search(r"-(\d+)$", prefix).group(1))
      out.append((step, (os.path.getmtime(prefix + ".index") - started) / 60.0, prefix))
  return sorted(out)


def held_out_windows(data_dir, max_windows):
  """The first `max_windows` eval windows as numpy arrays (the same for every configuration)."""
  from jobs import train  # pylint: disable=g-import-not-at-top
  from ddsp_core import training  # pylint: disable=g-import-not-at-top
  from pipelines import examples  # pylint: disable=g-import-not-at-top
  source = train.open_data(data_dir)
  ds = training.make_dataset(source.files["eval"], examples.feature_spec(source.spec, False),
                             max_windows, 16000, source.spec.sample_rate, repeat=False,
                             drop_remainder=False)
  batch = next(iter(ds))
  return {k: v.numpy() for k, v in batch.items()}, source.spec.frame_rate


def held_out_loss(model, windows, data_frame_rate, chunk=8):
  """Mean spectral loss of the model's resynthesis of the windows (noise seed (0, 0))."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from ddsp_core import synth, training  # pylint: disable=g-import-not-at-top
  fed = training.decimate_features(windows, training.control_stride(data_frame_rate,
                                                                     model.frame_rate))
  losses = []
  for i in range(0, len(fed["audio"]), chunk):
    target = tf.constant(fed["audio"][i:i + chunk])
    audio = model(tf.constant(fed["f0_hz"][i:i + chunk]),
                  tf.constant(fed["loudness_db"][i:i + chunk]), seed=(0, 0))
    losses.append(float(synth.spectral_loss(target, audio[:, :target.shape[1]])) * len(target))
  return sum(losses) / len(fed["audio"])


def _ours_model(model_dir):
  from jobs import train  # pylint: disable=g-import-not-at-top
  model = train.build_model(model_dir)

  def load(prefix):
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    tf.train.Checkpoint(model=model).restore(prefix).expect_partial()
    return model
  return load


def _magenta_model(save_dir):
  """magenta's checkpoints read into ddsp-beam's model, as `ddsp-beam import-model` does."""
  from ddsp_core import magenta_model  # pylint: disable=g-import-not-at-top
  from jobs import import_model  # pylint: disable=g-import-not-at-top
  config = sorted(glob.glob(os.path.join(save_dir, "operative_config-*.gin")))[-1]
  model, _ = import_model.build_from_magenta_config(config, save_dir)

  def load(prefix):
    magenta_model.load_magenta_weights(model, prefix)
    return model
  return load


def curve(name, data_dir, work, minutes, windows, frame_rate, every=None):
  """[(step, minutes, held-out loss)] of one configuration trained for `minutes`."""
  gin_file, bindings, default_every = CONFIGS[name]
  every = every or default_every
  model_dir = os.path.join(work, re.sub(r"[^a-z0-9]+", "_", name))
  print(f"[time_to_quality] {name}: training {minutes} min", file=sys.stderr, flush=True)
  if gin_file is None:
    started = _train_magenta(data_dir, model_dir, every, minutes * 60)
  else:
    started = _train_ours(data_dir, model_dir, gin_file, bindings, every, minutes * 60)
  points = checkpoint_times(model_dir, started)
  if not points:
    return {"points": [], "n_parameters": None}
  load = (_magenta_model if gin_file is None else _ours_model)(model_dir)
  out = []
  for step, at, prefix in points:
    model = load(prefix)
    out.append((step, round(at, 2), round(held_out_loss(model, windows, frame_rate), 4)))
    print(f"[time_to_quality] {name}: step {step} at {at:.1f} min: held-out loss {out[-1][2]}",
          file=sys.stderr, flush=True)
  return {"points": out, "n_parameters": model.n_parameters}


def at_minutes(points, minutes):
  """The held-out loss of the last checkpoint finished by `minutes` (None before the first)."""
  done = [p for p in points if p[1] <= minutes + 1e-9]
  return done[-1][2] if done else None


def write_results(results, args, n_windows):
  marks = [m for m in MARKS if m < args.minutes] + [args.minutes]
  lines = [f"# Time to quality, {datetime.date.today().isoformat()}", "",
           f"Held-out spectral loss (lower is better) of checkpoints after wall-clock training on "
           f"`{args.data}` ({n_windows} eval windows of 4 s), batch {BATCH}, each configuration "
           f"in its own process for {args.minutes} minutes on this machine ({os.cpu_count()} "
           "cores). Command: `python -m bench.time_to_quality " + " ".join(args.argv) + "`.", "",
           "| configuration | parameters | steps | steps/s after start-up | "
           + " | ".join(f"loss at {m} min" for m in marks) + " |",
           "|---|---:|---:|---:|" + "---:|" * len(marks)]
  for name, res in results.items():
    pts = res["points"]
    if not pts:
      lines.append(f"| {name} | | 0 | | " + " | ".join("" for _ in marks) + " | (no checkpoint) |")
      continue
    last_step, last_min = pts[-1][0], pts[-1][1]
    # steps/s between the first and the last checkpoint: the rate once started
    rate = ((last_step - pts[0][0]) / ((last_min - pts[0][1]) * 60)) if len(pts) > 1 else (
        last_step / (last_min * 60))
    cells = ["" if at_minutes(pts, m) is None else f"{at_minutes(pts, m):.3f}" for m in marks]
    lines.append(f"| {name} | {res['n_parameters']:,} | {last_step} | "
                 f"{rate:.3f} | " + " | ".join(cells) + " |")
  lines += ["", f"Curves: `{os.path.basename(args.plot)}`. Points (step, minutes, loss):", "",
            "```", json.dumps({k: v["points"] for k, v in results.items()}, indent=None), "```"]
  text = "\n".join(lines) + "\n"
  with open(args.out, "w", encoding="utf-8") as f:
    f.write(text)
  print(text)


def plot(results, path, minutes):
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, ax = plt.subplots(figsize=(7, 4))
  for name, res in results.items():
    if res["points"]:
      pts = np.array([(p[1], p[2]) for p in res["points"]])
      ax.plot(pts[:, 0], pts[:, 1], marker="o", markersize=3, label=name)
  ax.set_xlabel("wall-clock minutes of training")
  ax.set_ylabel("held-out spectral loss")
  ax.set_xlim(0, minutes)
  ax.grid(alpha=0.3)
  ax.legend()
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def main(argv=None):
  argv = list(sys.argv[1:] if argv is None else argv)
  ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  ap.add_argument("--data", required=True, help="a prepared dataset dir with an eval split")
  ap.add_argument("--minutes", type=float, default=20)
  ap.add_argument("--configs", default=",".join(CONFIGS), help=f"subset of {', '.join(CONFIGS)}")
  ap.add_argument("--eval_windows", type=int, default=32)
  ap.add_argument("--every", type=int, default=None,
                  help="checkpoint every N steps in every configuration (default: per configuration)")
  ap.add_argument("--work", help="where the model dirs go (default: a temporary folder)")
  ap.add_argument("--out", default=os.path.join(
      REPO, "bench", "results", f"{datetime.date.today().isoformat()}-time-to-quality.md"))
  args = ap.parse_args(argv)
  args.argv = argv
  args.plot = args.out.replace(".md", ".png")
  names = [n for n in args.configs.split(",") if n]
  unknown = [n for n in names if n not in CONFIGS]
  if unknown:
    ap.error(f"unknown configurations {unknown}; choose from {', '.join(CONFIGS)}")
  if any(CONFIGS[n][0] is None for n in names) and not os.path.exists(MAGENTA_PY):
    print("magenta skipped: no side venv (bash bench/make_magenta_venv.sh)", file=sys.stderr)
    names = [n for n in names if CONFIGS[n][0] is not None]
  windows, frame_rate = held_out_windows(args.data, args.eval_windows)
  with tempfile.TemporaryDirectory() as tmp:
    work = args.work or tmp
    results = {n: curve(n, args.data, work, args.minutes, windows, frame_rate, args.every)
               for n in names}
  os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
  plot(results, args.plot, args.minutes)
  write_results(results, args, len(windows["audio"]))
  return 0


if __name__ == "__main__":
  sys.exit(main())
