"""`make bench`: ddsp-beam's speed and memory next to baselines measured in the same run.

    python -m bench.run [--quick] [--repeats N] [--out bench/results/DATE.md]

Figures (each a median over --repeats runs where cheap):
- roofline: TensorFlow float32 matmul GFLOP/s on this CPU;
- CREPE f0 per audio second, ddsp-beam (`compute_f0`) vs plain `crepe.predict`
  one call per file (the real crepe package, from the magenta side venv built by
  bench/make_magenta_venv.sh; skipped when absent), tiny on
  the train corpus and full on two of its files;
- `ddsp-beam prepare` wall time per audio second on ../shared/corpus/train
  (whole command, start-up included) vs the same crepe.predict loop;
- peak resident memory (`/usr/bin/time -v`) of `ddsp-beam features` on a
  10-minute file and of `ddsp-beam prepare` on a 1-hour file (not with --quick);
- training (bench/training.py): harmonic synthesis and train steps (tiny and
  solo) against the step as it was and against magenta's `ddsp_run`, GFLOP/s
  against the roofline, a profile of the step's parts, the tf.data path;
- transfer real-time factor (compute seconds per audio second) of one
  11.9 s recording: the whole per-file step, its feature extraction and its
  synthesis, next to the synthesis alone (`Renderer.render`);
- magenta (not with --quick): `ddsp-beam prepare` configurations against magenta's
  `ddsp_prepare_tfrecord`, wall time and pitch accuracy on train/ (bench/vs_magenta.py);
- pitch (not with --quick): the default prepare over the whole shared corpus (train, transfer,
  range) against one magenta `ddsp_prepare_tfrecord` run over the same files, and pitch accuracy
  per folder of the default and its levers (bench/pitch_vs_magenta.py; about 90 minutes);
- transfer_quality: how close the shipped instruments' and the demo model's transfers of the
  shared transfer takes come to real instruments (bench/transfer_quality.py; needs FluidSynth);
- time_to_quality (opt-in, about 100 minutes): held-out loss after 20 minutes of wall-clock
  training, ddsp-beam's tiny and solo at 250 and 50 frames/s and magenta's `ddsp_run` solo, on a
  prepared instrument dataset (bench/time_to_quality.py);
- studio: a re-render of a 20 s take through the shipped violin from cached features, until the
  output plays and until its f0 error shows, against its first render (bench/studio.py);
- runners: `ddsp-beam prepare` (tiny) on train/ with the DirectRunner in one
  process and with 2 worker processes, and on a Dask LocalCluster of 2
  worker processes (`--runner=dask --dask_workers=2`, cluster start included),
  each against the in-process DirectRunner.
"""

import argparse
import datetime
import glob
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import soundfile as sf

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(os.path.dirname(REPO), "shared", "corpus")
MAGENTA_PY = os.path.expanduser(os.environ.get("MAGENTA_VENV", "~/.magenta-ddsp-venv")) + "/bin/python"
DDSP_BEAM = os.path.join(os.path.dirname(sys.executable), "ddsp-beam")
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")


def cpu_isa():
  """The vector units that decide CREPE's and training's speed, from /proc/cpuinfo's flags.

  This workplace's machine is not always the same CPU ("AMD EPYC" is all lscpu names): on
  2026-12-01 it had AVX-512 with BF16 (CREPE full in bfloat16 1.7x float32's speed), on 2026-12-02 AVX2
  only (the same speed), so every results file says which it ran on.
  """
  try:
    with open("/proc/cpuinfo", encoding="utf-8") as f:
      flags = set(next(line for line in f if line.startswith("flags")).split(":", 1)[1].split())
  except (OSError, StopIteration):
    return "unknown ISA"
  if "avx512_bf16" in flags or "amx_bf16" in flags:
    return "AVX-512 with BF16"
  if "avx512f" in flags:
    return "AVX-512, no BF16"
  return "AVX2, no AVX-512" if "avx2" in flags else "no AVX2"


def cpu_model():
  try:
    out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    return re.search(r"Model name:\s*(.+)", out).group(1).strip() + f" ({cpu_isa()})"
  except Exception:  # pylint: disable=broad-except
    return platform.processor() or "unknown"


def matmul_gflops(repeats=3, dtype="float32"):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  n = 2048
  a = tf.cast(tf.random.normal([n, n]), dtype)
  b = tf.cast(tf.random.normal([n, n]), dtype)
  f = tf.function(lambda: tf.matmul(a, b))
  f().numpy()
  rates = []
  for _ in range(repeats):
    start = time.time()
    for _ in range(10):
      r = f()
    r.numpy()
    rates.append(10 * 2 * n ** 3 / (time.time() - start) / 1e9)
  return statistics.median(rates)


def ours_f0(paths, model, repeats, precision="float32"):
  from ddsp_core import audio, crepe, features  # pylint: disable=g-import-not-at-top
  net = crepe.get_model(model, precision)
  clips = [audio.load_audio(p)[0] for p in paths]
  features.compute_f0(clips[0][:16000], crepe_model=net)  # warm-up
  walls = []
  for _ in range(repeats):
    start = time.time()
    frames = 0
    for clip in clips:
      f0, _ = features.compute_f0(clip, crepe_model=net, viterbi=True)
      frames += len(f0)
    walls.append(time.time() - start)
  audio_s = sum(len(c) for c in clips) / 16000
  wall = statistics.median(walls)
  return {"audio_s": audio_s, "wall_s": wall, "gflops": frames * net.flops_per_frame / wall / 1e9}


def crepe_predict(paths, model):
  if not os.path.exists(MAGENTA_PY):
    return None
  out = subprocess.run([MAGENTA_PY, os.path.join(REPO, "bench", "crepe_baseline.py"), model] + paths,
                       capture_output=True, text=True, env=ENV, check=True).stdout
  return json.loads(out.strip().splitlines()[-1])


def timed(cmd):
  """Runs a command under /usr/bin/time -v; returns (wall s, peak RSS MB)."""
  start = time.time()
  proc = subprocess.run(["/usr/bin/time", "-v"] + cmd, capture_output=True, text=True, env=ENV)
  wall = time.time() - start
  if proc.returncode not in (0, 1):
    raise RuntimeError(f"{cmd} failed:\n{proc.stderr[-3000:]}")
  rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr).group(1)) / 1024
  return wall, rss


def synthetic_recording(path, seconds):
  """A long glide with gaps, written in blocks (never whole in memory)."""
  sr = 16000
  with sf.SoundFile(path, "w", sr, 1, "PCM_16") as f:
    phase = 0.0
    for start in range(0, seconds, 10):
      t = start + np.arange(10 * sr) / sr
      freq = 220 * 2 ** (np.sin(2 * np.pi * t / 30.0))
      ph = phase + 2 * np.pi * np.cumsum(freq) / sr
      phase = float(ph[-1])
      gate = (np.sin(2 * np.pi * t / 7.0) > -0.7)
      f.write((0.3 * gate * (np.sin(ph) + 0.3 * np.sin(2 * ph))).astype(np.float32))


def _tiny_model_dir(path, gin_file):
  """A model dir with an untrained model (timing does not depend on the weights)."""
  import gin  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from ddsp_core import model as model_lib, training  # pylint: disable=g-import-not-at-top
  training.parse_gin([gin_file])
  model = model_lib.Autoencoder()
  tf.train.CheckpointManager(tf.train.Checkpoint(model=model), path, 1,
                             checkpoint_name="ckpt").save(checkpoint_number=0)
  with open(os.path.join(path, "operative_config-0.gin"), "w", encoding="utf-8") as f:
    f.write(gin.config_str())
  return path


def transfer_figures(add, quick=False):
  from pipelines import transfer  # pylint: disable=g-import-not-at-top
  from ddsp_core import audio, features  # pylint: disable=g-import-not-at-top
  src = os.path.join(CORPUS, "transfer", "trumpet_bb_march.wav")
  seconds = sf.info(src).duration
  for gin_file in ["tiny_instrument.gin"] + ([] if quick else ["solo_instrument.gin"]):
    for crepe_model in ("tiny",) if quick else ("tiny", "full"):
      with tempfile.TemporaryDirectory() as tmp:
        loaded = transfer.LoadedModel("m", _tiny_model_dir(os.path.join(tmp, "m"), gin_file))
        config = transfer.TransferConfig(crepe_model=crepe_model)
        out = {"m": os.path.join(tmp, "out.wav")}
        transfer.transfer_file(src, [loaded], config, out)  # warm up (traces, model build)
        start = time.time()
        row = transfer.transfer_file(src, [loaded], config, out)[0]
        total = time.time() - start
        x, _ = audio.load_audio(src)
        feats = features.compute_features(x, model=crepe_model)
        start = time.time()
        loaded.renderer.render(feats["f0_hz"], feats["loudness_db"])
        alone = time.time() - start
      add(f"transfer RTF, {gin_file}, CREPE {crepe_model} (11.9 s file)", round(total / seconds, 3),
          round(alone / seconds, 3),
          f"features {row['seconds_features'] / seconds:.3f}, synthesis "
          f"{row['seconds_synthesis'] / seconds:.3f}, output measurement "
          f"{row['seconds_measure'] / seconds:.3f} s/s; baseline: synthesis alone",
          higher_is_better=True)


def main(argv=None):
  ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  ap.add_argument("--quick", action="store_true", help="skip the full-model and 1-hour figures")
  ap.add_argument("--repeats", type=int, default=3)
  ap.add_argument("--sections",
                  default="crepe,prepare,training,transfer,studio,runners,magenta,pitch,"
                  "transfer_quality",
                  help="comma-separated subset of: crepe, prepare, training, transfer, studio, "
                  "runners, "
                  "magenta (bench/vs_magenta.py: about an hour, magenta's side included), "
                  "pitch (bench/pitch_vs_magenta.py: the default over all corpus folders "
                  "against one magenta run; about 90 minutes), "
                  "transfer_quality (bench/transfer_quality.py: the shipped and demo models "
                  "against real instruments; needs FluidSynth); opt-in: time_to_quality "
                  "(bench/time_to_quality.py: about 100 minutes on --ttq_data)")
  ap.add_argument("--ttq_data", default=os.path.join(
      REPO, "instruments", "out", "tenor_saxophone", "datasets", "tenor_saxophone"),
                  help="the prepared dataset of section time_to_quality (default: the one "
                  "`make instruments INSTRUMENTS=tenor_saxophone` prepares)")
  ap.add_argument("--out", default=os.path.join(REPO, "bench", "results",
                                                f"{datetime.date.today().isoformat()}.md"))
  args = ap.parse_args(argv)
  train = sorted(glob.glob(os.path.join(CORPUS, "train", "*", "*.wav")))
  if not train:
    sys.exit(f"the shared corpus is missing at {CORPUS}")
  rows = []  # (figure, ours, baseline, ratio, note)
  sections = set(args.sections.split(","))

  def add(figure, ours, base, note="", higher_is_better=False):
    ratio = "" if base is None or not ours else (
        f"{ours / base:.2f}x" if higher_is_better else f"{base / ours:.2f}x faster")
    rows.append((figure, ours, base, ratio, note))
    print(f"{figure}: ours {ours} baseline {base} {ratio} {note}", flush=True)

  roof = matmul_gflops()
  add("TF float32 matmul roofline (GFLOP/s)", round(roof, 1), None, "2048x2048, median of 3")
  roof_bf16 = matmul_gflops(dtype="bfloat16")
  add("TF bfloat16 matmul roofline (GFLOP/s)", round(roof_bf16, 1), None, "2048x2048, median of 3")
  args.roof_bf16 = roof_bf16
  base = {}
  if "crepe" in sections:
    base = crepe_figures(add, args, train, roof)
  if "prepare" in sections:
    prepare_figures(add, args, train, base)
  if "training" in sections:
    from bench import training as training_bench  # pylint: disable=g-import-not-at-top
    training_bench.training_figures(add, roof, roof_bf16, MAGENTA_PY, quick=args.quick,
                                    repeats=args.repeats)
  if "transfer" in sections:
    transfer_figures(add, quick=args.quick)
  if "studio" in sections:
    from bench import studio as studio_bench  # pylint: disable=g-import-not-at-top
    studio_bench.studio_figures(add, CORPUS, repeats=1 if args.quick else args.repeats)
  if "runners" in sections:
    runner_figures(add, train, args.repeats)
  write_results(rows, args)
  if "magenta" in sections and not args.quick:
    if os.path.exists(MAGENTA_PY):
      from bench import vs_magenta  # pylint: disable=g-import-not-at-top
      vs_magenta.main(["--out", args.out.replace(".md", "-vs-magenta.md")])
    else:
      print("section magenta skipped: bash bench/make_magenta_venv.sh builds the side venv")
  if "pitch" in sections and not args.quick:
    if os.path.exists(MAGENTA_PY):
      from bench import pitch_vs_magenta  # pylint: disable=g-import-not-at-top
      pitch_vs_magenta.main(["--out", args.out.replace(".md", "-pitch.md")])
    else:
      print("section pitch skipped: bash bench/make_magenta_venv.sh builds the side venv")
  if "time_to_quality" in sections:
    from bench import time_to_quality  # pylint: disable=g-import-not-at-top
    time_to_quality.main(["--data", args.ttq_data,
                          "--out", args.out.replace(".md", "-time-to-quality.md")])
  if "transfer_quality" in sections:
    from bench import transfer_quality  # pylint: disable=g-import-not-at-top
    transfer_quality.main(["--out", args.out.replace(".md", "-transfer-quality.md")])
  return 0


def crepe_figures(add, args, train, roof):
  """Each CREPE path against crepe.predict, with its GFLOP/s against the roofline."""
  tiny = ours_f0(train, "tiny", args.repeats)
  base_tiny = crepe_predict(train, "tiny")
  add("CREPE tiny f0, s per audio s (11 train files)", round(tiny["wall_s"] / tiny["audio_s"], 4),
      round(base_tiny["wall_s"] / base_tiny["audio_s"], 4) if base_tiny else None,
      f"{tiny['gflops']:.0f} GFLOP/s = {tiny['gflops'] / roof:.0%} of roofline")
  small = ours_f0(train, "small", args.repeats)
  add("CREPE small f0, s per audio s (11 train files)", round(small["wall_s"] / small["audio_s"], 4),
      None, f"{small['gflops']:.0f} GFLOP/s = {small['gflops'] / roof:.0%} of roofline; "
      "the default until 2026-12 (crepe.predict has no small weights to compare with)")
  two = train[:2]
  if not args.quick:
    full = ours_f0(two, "full", 1)
    base_full = crepe_predict(two, "full")
    add("CREPE full f0, s per audio s (2 train files)", round(full["wall_s"] / full["audio_s"], 3),
        round(base_full["wall_s"] / base_full["audio_s"], 3) if base_full else None,
        f"{full['gflops']:.0f} GFLOP/s = {full['gflops'] / roof:.0%} of roofline")
    bf16 = ours_f0(two, "full", 1, "bfloat16")
    add("CREPE full bfloat16 f0, s per audio s (2 train files)",
        round(bf16["wall_s"] / bf16["audio_s"], 3),
        round(base_full["wall_s"] / base_full["audio_s"], 3) if base_full else None,
        f"{bf16['gflops']:.0f} GFLOP/s = {bf16['gflops'] / args.roof_bf16:.0%} of the bfloat16 "
        "roofline")
    return {"tiny": base_tiny, "full": base_full}
  return {"tiny": base_tiny}


def prepare_figures(add, args, train, base):
  """prepare throughput (tiny, full) and peak memory (10-minute and 1-hour files)."""
  base_tiny, base_full = base.get("tiny"), base.get("full")
  audio_train = sum(sf.info(p).duration for p in train)
  with tempfile.TemporaryDirectory() as tmp:
    walls = []
    for i in range(args.repeats):
      wall, rss = timed([DDSP_BEAM, "prepare", "--input", os.path.join(CORPUS, "train", "**"),
                         "--output", os.path.join(tmp, f"ds{i}"), "--crepe_model", "tiny",
                         "--no_progress"])
      walls.append(wall)
    wall = statistics.median(walls)
    add("prepare (tiny), wall s per audio s on train/ (209 s)", round(wall / audio_train, 4),
        round(base_tiny["wall_s"] / base_tiny["audio_s"], 4) if base_tiny else None,
        f"{audio_train / wall:.1f} audio s/s; baseline: crepe.predict tiny loop; peak RSS {rss:.0f} MB")
    if not args.quick:
      wall, rss = timed([DDSP_BEAM, "prepare", "--input", os.path.join(CORPUS, "train", "**"),
                         "--output", os.path.join(tmp, "dsfull"), "--crepe_model", "full",
                         "--no_progress"])
      add("prepare (full), wall s per audio s on train/", round(wall / audio_train, 3),
          round(base_full["wall_s"] / base_full["audio_s"], 3) if base_full else None,
          f"{audio_train / wall:.2f} audio s/s; baseline: crepe.predict full on 2 files; "
          f"peak RSS {rss:.0f} MB")
    ten = os.path.join(tmp, "ten_minutes.wav")
    synthetic_recording(ten, 600)
    wall, rss = timed([DDSP_BEAM, "features", ten, "-o", os.path.join(tmp, "f.parquet"),
                       "--crepe_model", "tiny", "--no_progress"])
    add("features (tiny) on a 10-minute file: peak RSS MB", round(rss), None,
        f"{wall:.1f} s wall; target < 2048 MB")
    if not args.quick:
      hour = os.path.join(tmp, "one_hour.wav")
      synthetic_recording(hour, 3600)
      wall, rss = timed([DDSP_BEAM, "prepare", "--input", hour, "--output",
                         os.path.join(tmp, "dshour"), "--crepe_model", "tiny", "--no_progress"])
      add("prepare (tiny) on a 1-hour file: peak RSS MB", round(rss), None,
          f"{wall:.0f} s wall; target < 3072 MB")
      shutil.rmtree(os.path.join(tmp, "dshour"), ignore_errors=True)



def runner_figures(add, train, repeats):
  """prepare throughput on the DirectRunner (1 and 2 workers) and on a 2-worker Dask LocalCluster."""
  audio_s = sum(sf.info(p).duration for p in train)
  modes = {"DirectRunner, in process": [],
           "DirectRunner, 2 worker processes": ["--direct_running_mode=multi_processing",
                                                "--direct_num_workers=2"],
           "Dask LocalCluster, 2 worker processes": ["--runner=dask", "--dask_workers=2"]}
  walls = {}
  with tempfile.TemporaryDirectory() as tmp:
    for name, flags in modes.items():
      runs = []
      for i in range(repeats):
        out = os.path.join(tmp, f"ds-{len(walls)}-{i}")
        runs.append(timed([DDSP_BEAM, "prepare", "--input", os.path.join(CORPUS, "train", "**"),
                           "--output", out, "--crepe_model", "tiny", "--no_progress"] + flags)[0])
        shutil.rmtree(out, ignore_errors=True)
      walls[name] = statistics.median(runs)
  base = walls["DirectRunner, in process"]
  for name, wall in walls.items():
    add(f"prepare (tiny) on train/, {name}: audio s per wall s", round(audio_s / wall, 2),
        round(audio_s / base, 2), f"{wall:.1f} s wall ({wall / base - 1:+.0%} against the "
        "DirectRunner in one process, command start-up included)", higher_is_better=True)


def write_results(rows, args):
  lines = [f"# ddsp-beam benchmark, {datetime.date.today().isoformat()}", "",
           f"CPU: {cpu_model()}, {os.cpu_count()} cores; Python {platform.python_version()}; "
           f"repeats {args.repeats} (medians).", "",
           "| figure | ddsp-beam | baseline | ratio | note |", "|---|---:|---:|---:|---|"]
  for figure, ours, base, ratio, note in rows:
    lines.append(f"| {figure} | {ours} | {'' if base is None else base} | {ratio} | {note} |")
  if not os.path.exists(MAGENTA_PY):
    lines += ["", "Baselines need the magenta side venv: bash bench/make_magenta_venv.sh"]
  text = "\n".join(lines) + "\n"
  print("\n" + text)
  os.makedirs(os.path.dirname(args.out), exist_ok=True)
  with open(args.out, "w", encoding="utf-8") as f:
    f.write(text)
  print(f"written to {args.out}")


if __name__ == "__main__":
  sys.exit(main())
