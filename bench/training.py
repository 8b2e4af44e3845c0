"""`make bench`, section `training`: synthesis and train steps against today's code and magenta's.

Every figure has a baseline measured in the same run:
- harmonic synthesis forward + backward at batch 16 x 4 s, 60 harmonics:
  `synth.harmonic_synthesis` (graph, XLA) against `synth_reference` (the
  per-harmonic code of ddsp-beam <= 0.3 and magenta's method);
- the train step (forward, backward, Adam) of tiny_instrument.gin and
  solo_instrument.gin: the default (graph, float32), with XLA, with the
  decoder in bfloat16, with the decoder at 50 frames/s (`Autoencoder.frame_rate
  = 50` on the same 250-frame batch, `training.decimate_features`), against
  the step as it was (per-harmonic synthesis, no XLA), each with its
  achieved GFLOP/s (model FLOPs, see `step_flops`) next to the matmul roofline measured by bench/run.py;
- a profile of the new step's parts, each as its own compiled function,
  forward only (decoder, harmonic synthesis, filtered noise, reverb, loss),
  and of the decoder's forward + backward with its GRU alone (hand-written
  backward and autodiff);
- steps/s fed by the real tf.data pipeline (parse, shuffle, batch) of a
  prepared dataset, against the same step on one batch held in memory;
- magenta's `ddsp_run --mode=train` on the same TFRecords, gin architecture
  and batch (the magenta side venv, where it is built).
Timings are medians of wall-clock seconds; `--quick` skips the solo model.
"""

import os
import re
import statistics
import subprocess
import tempfile
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BATCH, FRAMES, HOP = 16, 1000, 64


def _median_seconds(fn, repeats):
  fn()  # trace, compile, warm up
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    fn()
    times.append(time.perf_counter() - start)
  return statistics.median(times)


def synthetic_batch(batch=BATCH, frames=FRAMES, seed=0):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(seed)
  return {"f0_hz": tf.constant(rng.uniform(200, 500, (batch, frames)), tf.float32),
          "loudness_db": tf.constant(rng.uniform(-50, -10, (batch, frames)), tf.float32),
          "audio": tf.constant(rng.uniform(-0.3, 0.3, (batch, frames * HOP)), tf.float32)}


def harmonic_timings(repeats=3, n_harmonics=60):
  """Seconds per forward + backward of each harmonic synthesizer at batch 16 x 4 s."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from ddsp_core import synth, synth_reference  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  f0 = tf.constant(rng.uniform(100, 800, (BATCH, FRAMES, 1)), tf.float32)
  amp = tf.constant(rng.random((BATCH, FRAMES, 1)), tf.float32)
  dist = tf.constant(rng.random((BATCH, FRAMES, n_harmonics)), tf.float32)
  probe = tf.sin(tf.range(FRAMES * HOP, dtype=tf.float32) * 0.01)

  def step(fn, jit):
    @tf.function(jit_compile=jit)
    def run():
      with tf.GradientTape() as tape:
        tape.watch([amp, dist])
        loss = tf.reduce_sum(fn(f0, amp, dist, HOP) * probe)
      return tape.gradient(loss, [amp, dist])
    return lambda: [g.numpy() for g in run()]

  return {"reference": _median_seconds(step(synth_reference.harmonic_synthesis, False), repeats),
          "graph": _median_seconds(step(synth.harmonic_synthesis, False), repeats),
          "xla": _median_seconds(step(synth.harmonic_synthesis, True), repeats)}


def step_flops(model, frames=FRAMES, batch=BATCH):
  """Model FLOPs of one train step: the decoder's matrix products x 3 (forward and backward).

  Synthesis and the loss add a few percent (FFTs, sines), not counted: the
  figure is the one to hold against the matmul roofline.
  """
  dec = model.decoder
  macs = 0
  for var in dec.trainable_variables:
    if len(var.shape) == 2:
      macs += int(var.shape[0]) * int(var.shape[1])
  return 3 * 2 * macs * frames * batch


def _trainer(gin_file, mode):
  """A fresh model and trainer: mode 'reference' (the step as it was), 'nojit', 'xla', 'bf16',
  'cr50' (the decoder at 50 frames/s on the same 250-frame batch, decimated)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from ddsp_core import model as model_lib, synth, synth_reference, training  # pylint: disable=g-import-not-at-top
  bindings = training.precision_bindings("bfloat16" if mode == "bf16" else None)
  training.parse_gin([gin_file], bindings + (["Autoencoder.frame_rate = 50"] if mode == "cr50"
                                             else []))
  tf.random.set_seed(0)
  model = model_lib.Autoencoder()
  if mode == "reference":
    # The step as it was: every harmonic synthesised on its own track, no XLA,
    # the decoder's GRU and layer norms differentiated by autodiff.
    model.synthesize = _reference_synthesize(model, synth, synth_reference)
    _autodiff_decoder(model)
  return model, training.Trainer(model, jit_compile=mode == "xla")


def _autodiff_decoder(model):
  from ddsp_core import gru, model as model_lib  # pylint: disable=g-import-not-at-top
  for module in model.submodules:
    if isinstance(module, model_lib.Gru):
      module.recurrence = gru.gru_recurrence_autodiff
    elif isinstance(module, model_lib.LayerNorm):
      module.function = model_lib.layer_norm_autodiff


def _reference_synthesize(model, synth, synth_reference):
  def synthesize(controls, seed=None, noise=None):
    harmonic = synth_reference.harmonic_synthesis(
        controls["f0_hz"], controls["amplitude"], controls["harmonic_distribution"], model.hop,
        model.sample_rate)
    audio = harmonic + synth.filtered_noise(controls["noise_magnitudes"], model.hop,
                                            model.noise_window_size, seed=seed, noise=noise)
    return synth.reverb(audio, model.reverb_ir) if model.reverb_ir is not None else audio
  return synthesize


def step_timings(gin_file, modes, repeats=3):
  """Seconds per train step in each mode, and each mode's model FLOPs (`flops_<mode>`)."""
  from ddsp_core import training  # pylint: disable=g-import-not-at-top
  batch = synthetic_batch()
  out = {}
  for mode in modes:
    model, trainer = _trainer(gin_file, mode)
    stride = training.control_stride(250, model.frame_rate)
    fed = training.decimate_features(batch, stride)
    out[mode] = _median_seconds(lambda t=trainer, b=fed: float(t.train_step(b)["loss"]), repeats)
    out[f"flops_{mode}"] = step_flops(model, frames=FRAMES // stride)
  return out


def profile_parts(gin_file, repeats=3):
  """Forward seconds of each part of the new step, each its own compiled function (graph)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from ddsp_core import model as model_lib, synth, training  # pylint: disable=g-import-not-at-top
  training.parse_gin([gin_file])
  model = model_lib.Autoencoder()
  batch = synthetic_batch()
  controls, _ = model.controls(batch["f0_hz"], batch["loudness_db"])
  noise = tf.random.stateless_uniform([BATCH, FRAMES * HOP], (0, 0), -1.0, 1.0)
  dry = batch["audio"]
  parts = {
      "decoder": lambda: model.controls(batch["f0_hz"], batch["loudness_db"])[0]["amplitude"],
      "harmonic synthesis": lambda: synth.harmonic_synthesis(
          controls["f0_hz"], controls["amplitude"], controls["harmonic_distribution"], HOP),
      "filtered noise": lambda: synth.filtered_noise(controls["noise_magnitudes"], HOP,
                                                     noise=noise),
      "reverb": lambda: synth.reverb(dry, model.reverb_ir),
      "spectral loss": lambda: synth.spectral_loss(batch["audio"], dry * 0.9),
  }
  result = {}
  for name, fn in parts.items():
    compiled = tf.function(fn)
    result[name] = _median_seconds(lambda compiled=compiled: compiled().numpy(), repeats)
  return result


def decoder_backward_profile(gin_file, repeats=3):
  """Forward + backward seconds of the decoder and of its GRU alone (hand-written and autodiff).

  The profile behind `ddsp_core/gru.py`: at 250 frames/s the solo decoder's
  backward pass was mostly the GRU's, and that mostly autodiff's per-frame
  accumulation of the recurrent kernel's gradient.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from ddsp_core import gru, model as model_lib, training  # pylint: disable=g-import-not-at-top
  training.parse_gin([gin_file])
  model = model_lib.Autoencoder()
  batch = synthetic_batch()
  decoder = model.decoder
  x = tf.random.stateless_uniform([BATCH, FRAMES, decoder.rnn.input_kernel.kernel.shape[0]],
                                  (0, 1))

  def grads(fn, variables):
    with tf.GradientTape() as tape:
      loss = fn()
    return tape.gradient(loss, variables)

  def decoder_loss():
    controls, _ = model.controls(batch["f0_hz"], batch["loudness_db"])
    return tf.add_n([tf.reduce_sum(v) for v in controls.values()])

  parts = {"decoder": (decoder_loss, decoder.trainable_variables)}
  for name, recurrence in (("GRU", gru.gru_recurrence), ("GRU by autodiff", gru.gru_recurrence_autodiff)):
    def gru_loss(recurrence=recurrence):
      decoder.rnn.recurrence = recurrence
      return tf.reduce_sum(decoder.rnn(x)[0])
    parts[name] = (gru_loss, decoder.rnn.trainable_variables)
  result = {}
  for name, (fn, variables) in parts.items():
    compiled = tf.function(lambda fn=fn, variables=variables: grads(fn, variables))
    result[name] = _median_seconds(lambda compiled=compiled: [g.numpy() for g in compiled()],
                                   repeats)
  decoder.rnn.recurrence = gru.gru_recurrence
  return result


def data_path_timings(dataset_dir, gin_file="tiny_instrument.gin", steps=10):
  """Steps/s of the default step fed by the real tf.data pipeline vs one batch in memory."""
  from ddsp_core import model as model_lib, training  # pylint: disable=g-import-not-at-top
  from jobs import train  # pylint: disable=g-import-not-at-top
  from pipelines import examples  # pylint: disable=g-import-not-at-top
  source = train.open_data(dataset_dir)
  training.parse_gin([gin_file])
  model = model_lib.Autoencoder()
  trainer = training.Trainer(model)
  ds = training.make_dataset(source.files["train"],
                             examples.feature_spec(source.spec, with_provenance=False), BATCH,
                             model.sample_rate, source.spec.sample_rate, seed=0)
  iterator = iter(ds)
  first = next(iterator)
  float(trainer.train_step(first)["loss"])
  start = time.perf_counter()
  for _ in range(steps):
    out = trainer.train_step(next(iterator))
  float(out["loss"])
  fed = steps / (time.perf_counter() - start)
  start = time.perf_counter()
  for _ in range(steps):
    out = trainer.train_step(first)
  float(out["loss"])
  held = steps / (time.perf_counter() - start)
  start = time.perf_counter()
  for _ in range(steps * 5):
    next(iterator)
  pipeline_alone = steps * 5 / (time.perf_counter() - start)
  return {"fed": fed, "held": held, "pipeline_batches_per_s": pipeline_alone}


MAGENTA_ARCH = {"tiny_instrument.gin": ["RnnFcDecoder.rnn_channels = 160", "RnnFcDecoder.ch = 64"],
                "solo_instrument.gin": []}
STEP_LINE = re.compile(r"^I(\d{4}) (\d\d):(\d\d):(\d\d\.\d+).*step: (\d+)\s")


def magenta_step(magenta_py, dataset_dir, gin_file, steps=8):
  """Seconds per step of magenta's `ddsp_run --mode=train` on the same records.

  magenta's solo_instrument.gin (tiny: its decoder narrowed as ours is), batch
  16, the records' 4 s windows; the time between its logged steps after the
  first two (tracing). None without the side venv.
  """
  ddsp_run = os.path.join(os.path.dirname(magenta_py), "ddsp_run")
  if not os.path.exists(ddsp_run):
    return None
  pattern = os.path.join(dataset_dir, "train.tfrecord-*")
  params = [f"TFRecordProvider.file_pattern = '{pattern}'", "train_util.train.batch_size = 16",
            f"train_util.train.num_steps = {steps}", "train_util.train.steps_per_save = 100000",
            "train_util.train.steps_per_summary = 100000"] + MAGENTA_ARCH[gin_file]
  with tempfile.TemporaryDirectory() as tmp:
    cmd = [ddsp_run, "--mode=train", f"--save_dir={tmp}", "--gin_file=models/solo_instrument.gin",
           "--gin_file=datasets/tfrecord.gin", "--alsologtostderr"]
    cmd += [f"--gin_param={p}" for p in params]
    proc = subprocess.run(cmd, capture_output=True, text=True,
                          env=dict(os.environ, CUDA_VISIBLE_DEVICES="", TF_USE_LEGACY_KERAS="1"))
  times = []
  for line in proc.stderr.splitlines():
    m = STEP_LINE.match(line)
    if m:
      times.append(int(m.group(2)) * 3600 + int(m.group(3)) * 60 + float(m.group(4)))
  if proc.returncode != 0 or len(times) < 4:
    print(f"magenta ddsp_run gave no timing (rc {proc.returncode}):\n{proc.stderr[-2000:]}")
    return None
  return (times[-1] - times[2]) / (len(times) - 3)


def prepare_dataset(out_dir):
  """A small dataset of 4 s windows from the demo corpus (prepare with CREPE tiny)."""
  from jobs import cli  # pylint: disable=g-import-not-at-top
  rc = cli.main(["prepare", "--input", os.path.join(REPO, "demo", "corpus", "violin"),
                 "--output", out_dir, "--crepe_model", "tiny", "--no_progress"])
  if rc != 0:
    raise RuntimeError("prepare of the demo corpus failed")
  return out_dir


def training_figures(add, roof, roof_bf16, magenta_py, quick=False, repeats=3):
  synth_s = harmonic_timings(repeats)
  add("harmonic synthesis fwd+bwd, batch 16 x 4 s, 60 harmonics (s)", round(synth_s["graph"], 4),
      round(synth_s["reference"], 4), "baseline: the per-harmonic code (synth_reference)")
  add("harmonic synthesis fwd+bwd with XLA (s)", round(synth_s["xla"], 4),
      round(synth_s["reference"], 4), "baseline: the per-harmonic code (synth_reference)")
  with tempfile.TemporaryDirectory() as tmp:
    dataset = prepare_dataset(os.path.join(tmp, "violin"))
    for gin_file in ["tiny_instrument.gin"] + ([] if quick else ["solo_instrument.gin"]):
      times = step_timings(gin_file, ("reference", "nojit", "xla", "bf16", "cr50"), repeats)
      for mode, label in (("nojit", "default: graph, float32"), ("xla", "XLA, float32"),
                          ("bf16", "graph, decoder bfloat16"),
                          ("cr50", "decoder at 50 frames/s, graph, float32")):
        peak = roof_bf16 if mode == "bf16" else roof
        flops = times[f"flops_{mode}"]
        add(f"train step, {gin_file}, batch 16 x 4 s, {label} (s)", round(times[mode], 3),
            round(times["reference"], 3),
            f"{flops / times[mode] / 1e9:.1f} GFLOP/s = {flops / times[mode] / 1e9 / peak:.0%} of "
            "the roofline; baseline: the step as it was (per-harmonic synthesis, no XLA)")
      theirs = magenta_step(magenta_py, dataset, gin_file)
      add(f"train step, {gin_file}, vs magenta ddsp_run (s)", round(times["nojit"], 3),
          None if theirs is None else round(theirs, 3),
          "baseline: magenta 3.7.0 ddsp_run, same records, architecture and batch"
          + ("" if theirs is not None else " (not measured: " + (
              "ddsp_run gave no timing, see the log)" if os.path.exists(magenta_py) else
              "no side venv; bash bench/make_magenta_venv.sh)")))
      parts = profile_parts(gin_file, repeats)
      add(f"profile, {gin_file}: forward parts (s)", round(sum(parts.values()), 3),
          None, ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in parts.items()))
      back = decoder_backward_profile(gin_file, repeats)
      add(f"profile, {gin_file}: decoder forward + backward (s)", round(back["decoder"], 3), None,
          f"of which the GRU {back['GRU'] * 1000:.0f} ms (by autodiff of its loop: "
          f"{back['GRU by autodiff'] * 1000:.0f} ms)")
    data = data_path_timings(dataset)
    add("train steps/s fed by tf.data (tiny, default)", round(data["fed"], 3),
        round(data["held"], 3), f"pipeline alone {data['pipeline_batches_per_s']:.0f} batches/s; "
        "baseline: the same step on one batch held in memory", higher_is_better=True)
