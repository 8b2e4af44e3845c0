"""The training job on a small real dataset: learning, resuming after kill -9, export, model dirs."""

import json
import os
import signal
import subprocess
import sys
import time
import zipfile

import numpy as np
import pytest
import soundfile
import tensorflow as tf

from ddsp_core import training
from jobs import cli
from jobs import train
from tests.conftest import DEMO_CORPUS

FAST = ["--gin_file", "tiny_instrument.gin", "--gin_param", "train.batch_size = 8",
        "--gin_param", "train.learning_rate = 0.001", "--seed", "0", "--no_progress",
        "--eval_crepe_model", "tiny"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
  """1-second windows of the three demo violin recordings (one held out)."""
  out = tmp_path_factory.mktemp("data") / "violin"
  rc = cli.main(["prepare", "--input", os.path.join(DEMO_CORPUS, "violin"), "--output", str(out),
                 "--crepe_model", "tiny", "--example_secs", "1", "--hop_secs", "1",
                 "--eval_fraction", "0.34", "--no_progress"])
  assert rc == 0
  info = json.load(open(out / "dataset.json"))
  assert info["counts"]["windows_eval"] > 5 and info["counts"]["windows_train"] > 20
  return str(out)


@pytest.fixture(scope="module")
def trained(dataset, tmp_path_factory):
  """Step 1 (evaluated), then resumed to step 60 (evaluated again)."""
  model_dir = str(tmp_path_factory.mktemp("models") / "violin")
  base = ["train", "--data", dataset, "--model_dir", model_dir, "--checkpoint_every", "20"] + FAST
  assert cli.main(base + ["--steps", "1"]) == 0
  first = json.load(open(os.path.join(model_dir, "eval", "metrics.json")))
  assert cli.main(base + ["--steps", "60"]) == 0
  last = json.load(open(os.path.join(model_dir, "eval", "metrics.json")))
  return model_dir, first, last


def test_eval_spectral_loss_falls(trained):
  _, first, last = trained
  assert first["step"] == 1 and last["step"] == 60
  print(f"eval spectral loss: step 1 {first['spectral_loss']:.3f} -> step 60 "
        f"{last['spectral_loss']:.3f}")
  assert last["spectral_loss"] < 0.8 * first["spectral_loss"]
  assert last["loudness_l1_db"] < first["loudness_l1_db"]


def test_model_dir_layout(trained):
  model_dir, _, last = trained
  names = set(os.listdir(model_dir))
  assert {"checkpoint", "model.json", "dataset_statistics.json", "operative_config-60.gin",
          "ckpt-60.index", "eval", "summaries"} <= names
  info = json.load(open(os.path.join(model_dir, "model.json")))
  assert info["sample_rate"] == 16000 and info["frame_rate"] == 250
  assert info["n_parameters"] > 200000
  assert "RnnFcDecoder.rnn_channels = 160" in open(
      os.path.join(model_dir, "operative_config-60.gin")).read()
  assert os.path.exists(os.path.join(model_dir, "eval", "metrics.parquet"))
  for key in ("loudness_l1_db", "f0_l1_midi", "outlier_ratio", "spectral_loss"):
    assert key in last
  # Only the kept checkpoints' configs remain (keep 3: 20, 40, 60).
  assert sorted(n for n in names if n.startswith("operative_config-")) == [
      "operative_config-20.gin", "operative_config-40.gin", "operative_config-60.gin"]


def test_export_matches_the_in_process_model(trained, tmp_path):
  model_dir, _, _ = trained
  out = train.export(model_dir, str(tmp_path / "saved"), str(tmp_path / "violin.zip"))
  assert out["step"] == 60
  loaded = tf.saved_model.load(out["saved_model"])
  model = train.load_model(model_dir)
  f0 = tf.constant(np.linspace(200, 400, 333, dtype=np.float32)[None])
  ld = tf.constant(np.linspace(-50, -10, 333, dtype=np.float32)[None])
  ours = model(f0, ld, seed=(0, 0)).numpy()
  theirs = loaded.signatures["serving_default"](f0_hz=f0, loudness_db=ld)["audio"].numpy()
  assert theirs.shape == (1, 333 * 64)
  np.testing.assert_allclose(theirs, ours, atol=1e-5)
  with zipfile.ZipFile(out["zip"]) as z:
    assert {"checkpoint", "model.json", "operative_config-60.gin", "ckpt-60.index"} <= set(z.namelist())


def test_kill_9_then_rerun_resumes(dataset, tmp_path):
  model_dir = str(tmp_path / "m")
  cmd = [sys.executable, "-m", "jobs.cli", "train", "--data", dataset, "--model_dir", model_dir,
         "--checkpoint_every", "5", "--steps", "1000", "--no-eval"] + FAST
  proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  deadline = time.time() + 300
  while time.time() < deadline and not (
      tf.train.latest_checkpoint(model_dir) or "").endswith(("-10", "-15")):
    time.sleep(0.2)
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  killed_at = int(tf.train.latest_checkpoint(model_dir).rsplit("-", 1)[1])
  assert killed_at >= 10
  _assert_optimizer_state_restored(model_dir)
  result = train.run_training(dataset, model_dir, ["tiny_instrument.gin"],
                              ["train.batch_size = 8", "train.learning_rate = 0.001"],
                              steps=killed_at + 3, checkpoint_every=5, progress=False,
                              evaluate_at_end=False)
  assert result.resumed_from == killed_at
  assert result.step == killed_at + 3
  assert [s for s, _ in result.losses] == [killed_at + 1, killed_at + 2, killed_at + 3]


def _assert_optimizer_state_restored(model_dir):
  """Every optimizer variable (step counter, Adam's m and v) comes back as it was saved."""
  latest = tf.train.latest_checkpoint(model_dir)
  reader = tf.train.load_checkpoint(latest)
  model = train.build_model(model_dir)
  optimizer = training.Adam(model.trainable_variables)
  assert train.restore(model_dir, model, optimizer) == latest
  restored = 0
  for name, _ in tf.train.list_variables(latest):
    path = name.split("/.ATTRIBUTES")[0].split("/")
    if path[0] != "optimizer" or path[1] not in ("m", "v", "iterations"):
      continue
    var = getattr(optimizer, path[1])  # optimizer/m/<i>, optimizer/v/<i>, optimizer/iterations
    var = var[int(path[2])] if len(path) > 2 else var
    np.testing.assert_array_equal(var.numpy(), reader.get_tensor(name))
    restored += 1
  assert restored == 2 * len(model.trainable_variables) + 1
  assert int(optimizer.iterations.numpy()) == int(latest.rsplit("-", 1)[1])
  assert any(np.abs(v.numpy()).max() > 0 for v in optimizer.v)  # a trained state, not zeros


def test_the_same_command_gives_the_same_loss_curve(dataset, tmp_path):
  """--seed fixes weights, shuffling and noise; XLA on and off (default) agree closely."""
  curves = []
  for name, jit in (("a", False), ("b", False), ("xla", True)):
    result = train.run_training(dataset, str(tmp_path / name), ["tiny_instrument.gin"],
                                ["train.batch_size = 8", "train.learning_rate = 0.001"], steps=6,
                                progress=False, evaluate_at_end=False, seed=0, jit_compile=jit)
    curves.append([loss for _, loss in result.losses])
  assert curves[0] == curves[1]
  assert len(set(curves[0])) == 6  # a curve, not a constant
  # XLA computes the same first step (same weights, batch and noise) up to float rounding
  # (measured 1.2e-4 relative); later steps drift apart as rounding feeds back through Adam
  # (measured 1% after 6 steps).
  assert curves[2][0] == pytest.approx(curves[0][0], rel=1e-3)
  np.testing.assert_allclose(curves[2], curves[0], rtol=0.05)
  other = train.run_training(dataset, str(tmp_path / "seed1"), ["tiny_instrument.gin"],
                             ["train.batch_size = 8", "train.learning_rate = 0.001"], steps=2,
                             progress=False, evaluate_at_end=False, seed=1)
  assert [loss for _, loss in other.losses] != curves[0][:2]


def test_corrupt_or_missing_model_dirs(trained, tmp_path):
  with pytest.raises(train.ModelDirError, match="no such model dir"):
    train.load_model(str(tmp_path / "nothing"))
  empty = tmp_path / "empty"
  empty.mkdir()
  with pytest.raises(train.ModelDirError, match="operative_config"):
    train.load_model(str(empty))
  model_dir, _, _ = trained
  broken = tmp_path / "broken"
  broken.mkdir()
  for name in ("checkpoint", "operative_config-60.gin", "ckpt-60.index"):
    (broken / name).write_bytes(open(os.path.join(model_dir, name), "rb").read())
  data = [n for n in os.listdir(model_dir) if n.startswith("ckpt-60.data")][0]
  (broken / data).write_bytes(open(os.path.join(model_dir, data), "rb").read()[:1000])
  with pytest.raises(train.ModelDirError, match="cannot be restored"):
    train.load_model(str(broken))


MIRRORED = """
import sys, tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from jobs import train
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
r = train.run_training(sys.argv[1], sys.argv[2], ["tiny_instrument.gin"],
                       ["train.batch_size = 4", "RnnFcDecoder.rnn_channels = 32"], steps=3,
                       checkpoint_every=3, progress=False, evaluate_at_end=False, strategy=strategy)
print("STEP", r.step, "LOSSES", " ".join(f"{l:.4f}" for _, l in r.losses))
"""


def test_mirrored_strategy_on_two_logical_devices(dataset, tmp_path):
  """The multi-GPU path (MirroredStrategy), exercised on two logical CPUs."""
  proc = subprocess.run([sys.executable, "-c", MIRRORED, dataset, str(tmp_path / "m")],
                        capture_output=True, text=True, timeout=600,
                        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
  assert proc.returncode == 0, proc.stderr[-3000:]
  line = [x for x in proc.stdout.splitlines() if x.startswith("STEP")][0]
  assert line.startswith("STEP 3 ")
  losses = [float(x) for x in line.split("LOSSES")[1].split()]
  assert len(losses) == 3 and all(np.isfinite(losses))
  assert tf.train.latest_checkpoint(str(tmp_path / "m")).endswith("ckpt-3")


def test_a_checkpoint_write_cut_short_resumes_from_the_last_complete_one(dataset, tmp_path):
  """What a kill during a checkpoint write leaves: TensorFlow writes ckpt-N.data, then
  ckpt-N.index, then renames the `checkpoint` state file into place. Cut it at each point."""
  model_dir = str(tmp_path / "m")
  args = dict(gin_files=["tiny_instrument.gin"],
              gin_params=["train.batch_size = 4", "RnnFcDecoder.rnn_channels = 32"],
              checkpoint_every=2, progress=False, evaluate_at_end=False)
  train.run_training(dataset, model_dir, steps=2, **args)
  data = [n for n in os.listdir(model_dir) if n.startswith("ckpt-2.data")][0]
  # 1. Killed while writing the data of step 4: a truncated data file, no index.
  with open(os.path.join(model_dir, data.replace("ckpt-2", "ckpt-4")), "wb") as f:
    f.write(open(os.path.join(model_dir, data), "rb").read()[:500])
  # 2. ... and a temporary state file that never got renamed.
  with open(os.path.join(model_dir, "checkpoint.tmp1234"), "w", encoding="utf-8") as f:
    f.write('model_checkpoint_path: "ckpt-4"\n')
  result = train.run_training(dataset, model_dir, steps=3, **args)
  assert result.resumed_from == 2 and result.step == 3


def test_a_decoder_at_50_frames_per_second_trains_on_250_frame_data(dataset, tmp_path):
  """`Autoencoder.frame_rate = 50` reads every 5th frame of the same records; it learns,
  and transfer computes its features at 50 frames/s."""
  model_dir = str(tmp_path / "m50")
  result = train.run_training(dataset, model_dir, ["tiny_instrument.gin"],
                              ["train.batch_size = 8", "train.learning_rate = 0.001",
                               "Autoencoder.frame_rate = 50", "Autoencoder.reverb_length = 0"],
                              steps=30, checkpoint_every=30, progress=False,
                              evaluate_at_end=False, seed=0)
  losses = [loss for _, loss in result.losses]
  assert np.mean(losses[-5:]) < 0.8 * losses[0]
  info = json.load(open(os.path.join(model_dir, "model.json")))
  assert info["frame_rate"] == 50 and info["dataset"]["frame_rate"] == 250
  # Evaluation compares the resynthesis' features at the model's rate with the decimated truth.
  metrics = train.evaluate(model_dir, dataset, max_examples=2, crepe_model="tiny", progress=False)
  assert metrics["step"] == 30 and metrics["spectral_loss"] > 0
  assert 0 <= metrics["loudness_l1_db"] < 60
  take = os.path.join(DEMO_CORPUS, "violin", "violin_portamento.wav")
  out = tmp_path / "out.wav"
  assert cli.main(["transfer", take, "--model", model_dir, "-o", str(out), "--crepe_model",
                   "tiny"]) == 0
  rendered, rate = soundfile.read(str(out))
  assert rate == 16000
  assert len(rendered) / rate == pytest.approx(soundfile.info(take).duration, abs=0.01)
  assert np.abs(rendered).max() > 1e-3


def test_a_model_rate_that_does_not_divide_the_dataset_s_is_refused(dataset, tmp_path):
  with pytest.raises(ValueError, match="must divide the dataset's"):
    train.run_training(dataset, str(tmp_path / "m"), ["tiny_instrument.gin"],
                       ["Autoencoder.frame_rate = 100"], steps=1, progress=False,
                       evaluate_at_end=False)
