"""The training job: prepared dataset -> checkpointed, resumable model dir; eval; export.

A model dir has the layout magenta users know, plus JSON metadata:

    operative_config-<step>.gin   the gin configuration that built the model
    checkpoint, ckpt-<step>.*     TensorFlow checkpoints (model + optimizer state)
    model.json                    sample/frame rate, gin files, dataset settings, version
    dataset_statistics.json       copied from the dataset (for timbre transfer)
    summaries/                    TensorBoard: loss, learning rate, steps/s, eval audio
    eval/metrics.json, eval/metrics.parquet   magenta's F0/loudness metrics
    export/saved_model/           after `ddsp-beam export` (features in, audio out)
"""

import contextlib
import dataclasses
import glob
import json
import os
import shutil
import sys
import time
import zipfile
from typing import Optional, Sequence

import gin
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import tensorflow as tf

from ddsp_core import features as features_lib
from ddsp_core import metrics as metrics_lib
from ddsp_core import model_dir as model_dir_lib
from ddsp_core import synth
from ddsp_core import training
from ddsp_core.version import __version__
from pipelines import examples
from pipelines import publish

# Re-exported: the job's users find the model-dir helpers here too.
MODEL_INFO_FILE = model_dir_lib.MODEL_INFO_FILE
STATS_FILE = model_dir_lib.STATS_FILE
ModelDirError = model_dir_lib.ModelDirError
build_model = model_dir_lib.build_model
restore = model_dir_lib.restore
load_model = model_dir_lib.load_model
latest_operative_config = model_dir_lib.latest_operative_config


@dataclasses.dataclass
class TrainResult:
  model_dir: str
  step: int
  resumed_from: int
  losses: list
  eval: Optional[dict]


def _write_text(path: str, text: str) -> None:
  with publish.atomic_file(path) as tmp:
    with open(tmp, "w", encoding="utf-8") as f:
      f.write(text)


@dataclasses.dataclass
class DataSource:
  """Where training windows come from, and how to parse them."""
  location: str  # a dataset folder or a file pattern
  info: dict
  spec: examples.WindowSpec
  files: dict  # split -> list of TFRecord paths


def open_data(data: str, example_secs: float = 4.0, sample_rate: int = 16000,
              frame_rate: int = 250, centered: bool = False,
              eval_data: Optional[str] = None) -> DataSource:
  """A prepared dataset folder (settings from its dataset.json), or TFRecord files.

  A file pattern (e.g. magenta's `ddsp_prepare_tfrecord` output, which has no
  dataset.json) is read with the given settings, whose defaults are magenta's
  `TFRecordProvider` defaults; `eval_data` is an optional second pattern.
  """
  if os.path.isdir(data):
    try:
      info = examples.read_dataset_info(data)
    except Exception as e:  # pylint: disable=broad-except
      raise ValueError(f"{data}: not a prepared dataset (no readable dataset.json: {e}); "
                       "for TFRecords without one, pass a file pattern") from e
    return DataSource(data, info, examples.spec_from_info(info),
                      {s: training.dataset_files(data, s) for s in ("train", "eval")})
  spec = examples.WindowSpec(sample_rate=sample_rate, frame_rate=frame_rate,
                             example_secs=example_secs, hop_secs=example_secs,
                             padding="center" if centered else "same")
  info = {"source": "tfrecord files (no dataset.json)", "sample_rate": sample_rate,
          "frame_rate": frame_rate, "example_secs": example_secs, "padding": spec.padding}
  files = {"train": sorted(glob.glob(data)),
           "eval": sorted(glob.glob(eval_data)) if eval_data else []}
  if not files["train"]:
    raise ValueError(f"{data}: neither a dataset folder nor a pattern matching TFRecord files")
  return DataSource(data, info, spec, files)


def run_training(data_dir, model_dir: str, gin_files: Sequence[str] = ("solo_instrument.gin",),
                 gin_params: Sequence[str] = (), steps: int = 30000, checkpoint_every: int = 300,
                 keep_checkpoints: int = 3, log_every: int = 50, seed: int = 0,
                 progress: bool = True, evaluate_at_end: bool = True,
                 eval_crepe_model: str = "tiny", eval_examples: int = 16,
                 strategy: Optional[tf.distribute.Strategy] = None, jit_compile: bool = False,
                 precision: Optional[str] = None) -> TrainResult:
  """Trains until `steps` (total, counting resumed ones), checkpointing as it goes.

  Rerunning the same command after an interruption resumes from the latest
  checkpoint with the same step counter and optimizer state. With several
  GPUs visible, a MirroredStrategy splits each batch across them (or pass
  `strategy`); otherwise it runs on the one device (the CPU here).

  `seed` seeds the initial weights, the shuffling and the synthesizer's
  noise: the same command on the same machine gives the same loss curve.
  `jit_compile` compiles the step with XLA (not with a strategy); off by default:
  on this project's 2-core CPU the XLA step took twice the graph step's time
  (README, Speed).
  `precision` 'bfloat16' computes the decoder's matrix products in bfloat16
  (a gin binding, so the model dir records it); None keeps the gin files'.
  """
  source = data_dir if isinstance(data_dir, DataSource) else open_data(data_dir)
  info, spec = source.info, source.spec
  os.makedirs(model_dir, exist_ok=True)
  strategy = strategy or training.default_strategy()
  gin_params = list(gin_params) + training.precision_bindings(precision)
  seed = 0 if seed is None else int(seed)
  tf.random.set_seed(seed)  # before the weights are made
  with strategy.scope() if strategy else contextlib.nullcontext():
    model = build_model(model_dir, gin_files, gin_params)
  # A decoder at a lower frame rate than the dataset's reads every stride-th frame.
  stride = training.control_stride(spec.frame_rate, model.frame_rate)
  trainer = training.Trainer(model, training.train_settings(), strategy=strategy,
                             jit_compile=jit_compile and strategy is None, seed=seed)
  settings = trainer.settings
  latest = restore(model_dir, model, trainer.optimizer)
  resumed_from = int(trainer.optimizer.iterations.numpy())
  manager = tf.train.CheckpointManager(
      tf.train.Checkpoint(model=model, optimizer=trainer.optimizer), model_dir,
      max_to_keep=keep_checkpoints, checkpoint_name="ckpt")
  _write_model_info(model_dir, model, source.location, info, gin_files)
  if progress:
    where = f"resuming from {os.path.basename(latest)}" if latest else "from scratch"
    devices = f", {strategy.num_replicas_in_sync} replicas" if strategy else ""
    print(f"[train] {model.n_parameters:,} parameters, batch {settings['batch_size']}{devices}, "
          f"{where}, to step {steps}", file=sys.stderr, flush=True)
  files = source.files["train"]
  if not files:
    raise ValueError(f"{data_dir}: no train.tfrecord-* shards")
  ds = training.make_dataset(files, examples.feature_spec(spec, with_provenance=False),
                             settings["batch_size"], model.sample_rate, spec.sample_rate,
                             settings["shuffle_buffer"], seed=seed, stride=stride)
  if strategy:
    ds = strategy.experimental_distribute_dataset(ds)
  writer = tf.summary.create_file_writer(os.path.join(model_dir, "summaries", "train"))
  step = resumed_from
  losses = []
  started, last_log, last_step = time.time(), time.time(), step
  iterator = iter(ds)
  while step < steps:
    out = trainer.train_step(next(iterator))
    step = int(trainer.optimizer.iterations.numpy())
    loss = float(out["loss"].numpy())
    losses.append((step, loss))
    if step % log_every == 0 or step == steps:
      now = time.time()
      rate = (step - last_step) / max(now - last_log, 1e-9)
      last_log, last_step = now, step
      with writer.as_default(step=step):
        tf.summary.scalar("loss", loss)
        tf.summary.scalar("learning_rate", trainer.optimizer.learning_rate())
        tf.summary.scalar("steps_per_second", rate)
      if progress:
        eta = (steps - step) / rate if rate > 0 else float("nan")
        print(f"[train] step {step}/{steps} loss {loss:.3f} {rate:.2f} steps/s "
              f"ETA {eta / 60:.1f} min", file=sys.stderr, flush=True)
    if step % checkpoint_every == 0 or step == steps:
      save_checkpoint(manager, model_dir, step)
  writer.flush()
  result = TrainResult(model_dir, step, resumed_from, losses, None)
  if evaluate_at_end and source.files["eval"]:
    result.eval = evaluate(model_dir, source, model=model, crepe_model=eval_crepe_model,
                           max_examples=eval_examples, progress=progress)
  if progress:
    print(f"[train] done at step {step} in {time.time() - started:.0f} s -> {model_dir}",
          file=sys.stderr, flush=True)
  return result


def save_checkpoint(manager, model_dir: str, step: int) -> None:
  """Checkpoint, then the operative gin config of that step.

  TensorFlow writes the `checkpoint` index last and atomically, so a run
  killed while saving resumes from the previous complete checkpoint.
  """
  manager.save(checkpoint_number=step)
  _write_text(os.path.join(model_dir, f"operative_config-{step}.gin"), gin.operative_config_str())
  keep = {f"operative_config-{_ckpt_step(p)}.gin" for p in manager.checkpoints}
  for name in os.listdir(model_dir):
    if name.startswith("operative_config-") and name not in keep:
      os.remove(os.path.join(model_dir, name))


def _ckpt_step(path: str) -> int:
  return int(path.rsplit("-", 1)[1])


def _write_model_info(model_dir, model, data_dir, info, gin_files):
  model_info = {
      "format": "ddsp-beam-model", "ddsp_beam_version": __version__,
      "sample_rate": model.sample_rate, "frame_rate": model.frame_rate,
      "n_parameters": model.n_parameters, "gin_files": list(gin_files),
      "dataset": {k: info.get(k) for k in ("sample_rate", "frame_rate", "example_secs",
                                           "hop_secs", "padding", "crepe_model", "viterbi")},
      "data": os.path.abspath(data_dir) if data_dir else None,
  }
  _write_text(os.path.join(model_dir, MODEL_INFO_FILE), json.dumps(model_info, indent=1))
  stats = os.path.join(data_dir, STATS_FILE)
  if data_dir and os.path.isdir(data_dir) and os.path.exists(stats):
    shutil.copyfile(stats, os.path.join(model_dir, STATS_FILE))


def evaluate(model_dir: str, data_dir, split: str = "eval", model=None,
             crepe_model: str = "tiny", max_examples: int = 16, progress: bool = True) -> dict:
  """Spectral loss and magenta's F0/loudness metrics on eval windows, into the model dir."""
  source = data_dir if isinstance(data_dir, DataSource) else open_data(data_dir)
  spec = source.spec
  model = model or load_model(model_dir)
  step = int(tf.train.latest_checkpoint(model_dir).rsplit("-", 1)[1])
  files = source.files[split]
  if not files:
    raise ValueError(f"{data_dir}: no {split} records")
  ds = training.make_dataset(files, examples.feature_spec(spec, with_provenance=False), 1,
                             model.sample_rate, spec.sample_rate, repeat=False,
                             stride=training.control_stride(spec.frame_rate, model.frame_rate))
  rows, losses = [], []
  first_audio = None
  for batch in ds.take(max_examples):
    audio = model(batch["f0_hz"], batch["loudness_db"], seed=(0, 0))
    target = batch["audio"]
    audio = audio[:, :tf.shape(target)[1]]
    losses.append(float(synth.spectral_loss(target, audio).numpy()))
    gen = audio.numpy()[0]
    if first_audio is None:
      first_audio = (target.numpy()[0], gen)
    gen_features = features_lib.compute_features(gen, model.sample_rate, model.frame_rate,
                                                 model=crepe_model, padding=spec.padding)
    truth = {k: batch[k].numpy()[0] for k in ("f0_hz", "f0_confidence", "loudness_db")}
    row = metrics_lib.example_metrics(truth, gen_features)
    row["spectral_loss"] = losses[-1]
    rows.append(row)
  summary = metrics_lib.summarize(rows)
  summary.update(step=step, split=split, spectral_loss=float(np.mean(losses)) if losses else None,
                 crepe_model=crepe_model)
  out_dir = os.path.join(model_dir, "eval")
  os.makedirs(out_dir, exist_ok=True)
  _write_text(os.path.join(out_dir, "metrics.json"), json.dumps(summary, indent=1))
  schema = pa.schema([("step", pa.int64()), ("spectral_loss", pa.float64()),
                      ("loudness_l1_db", pa.float64()), ("f0_l1_midi", pa.float64()),
                      ("f0_outlier", pa.bool_())])
  table = pa.Table.from_pylist([dict(r, step=step) for r in rows], schema=schema)
  with publish.atomic_file(os.path.join(out_dir, "metrics.parquet")) as tmp:
    pq.write_table(table, tmp)
  writer = tf.summary.create_file_writer(os.path.join(model_dir, "summaries", "eval"))
  with writer.as_default(step=step):
    for key in ("spectral_loss", "loudness_l1_db", "f0_l1_midi", "outlier_ratio"):
      if summary.get(key) is not None:
        tf.summary.scalar(key, summary[key])
    if first_audio is not None:
      pair = np.stack(first_audio)[:, :, np.newaxis]
      tf.summary.audio("original_and_resynthesis", pair, model.sample_rate, max_outputs=2)
  writer.flush()
  if progress:
    print(f"[eval] step {step}: spectral loss {summary['spectral_loss']:.3f}, loudness L1 "
          f"{summary['loudness_l1_db']} dB, f0 L1 {summary['f0_l1_midi']} MIDI, outliers "
          f"{summary['outlier_ratio']}", file=sys.stderr, flush=True)
  return summary


class ExportedModel(tf.Module):
  """What `ddsp-beam export` saves: features in, audio out, any length."""

  def __init__(self, model):
    super().__init__(name="ddsp_beam_model")
    self.model = model
    self.sample_rate = tf.constant(model.sample_rate)
    self.frame_rate = tf.constant(model.frame_rate)

  @tf.function(input_signature=[tf.TensorSpec([None, None], tf.float32, name="f0_hz"),
                                tf.TensorSpec([None, None], tf.float32, name="loudness_db")],
               autograph=False)
  def __call__(self, f0_hz, loudness_db):
    return {"audio": self.model(f0_hz, loudness_db, seed=(0, 0))}


def export(model_dir: str, output: Optional[str] = None, zip_path: Optional[str] = None) -> dict:
  """Writes a SavedModel and a zip of the model dir (latest checkpoint only)."""
  model = load_model(model_dir)
  output = output or os.path.join(model_dir, "export", "saved_model")
  staging = output + ".tmp"
  shutil.rmtree(staging, ignore_errors=True)
  exported = ExportedModel(model)
  tf.saved_model.save(exported, staging, signatures={"serving_default": exported.__call__})
  if os.path.exists(output):
    shutil.rmtree(output)
  os.replace(staging, output)
  zip_path = zip_path or os.path.join(model_dir, "export",
                                      os.path.basename(os.path.abspath(model_dir)) + ".zip")
  latest = tf.train.latest_checkpoint(model_dir)
  step = _ckpt_step(latest)
  names = [MODEL_INFO_FILE, STATS_FILE, f"operative_config-{step}.gin"] + [
      f for f in os.listdir(model_dir) if f.startswith(f"ckpt-{step}.")]
  with publish.atomic_file(zip_path) as tmp:
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
      for name in names:
        if os.path.exists(os.path.join(model_dir, name)):
          z.write(os.path.join(model_dir, name), name)
      z.writestr("checkpoint", f'model_checkpoint_path: "ckpt-{step}"\n'
                 f'all_model_checkpoint_paths: "ckpt-{step}"\n')
  return {"saved_model": output, "zip": zip_path, "step": step}
