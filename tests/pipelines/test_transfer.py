"""Batch timbre transfer through a (briefly) trained tiny model, on the DirectRunner."""

import json
import os
import shutil
import subprocess

import numpy as np
import pytest
import soundfile as sf
import tensorflow as tf

from ddsp_core import model_dir as model_dir_lib
from ddsp_core import render
from jobs import cli
from jobs import train
from pipelines import transfer
from pipelines import transfer_report
from tests.conftest import DEMO_CORPUS, mount_tmpfs, tone

TINY = ["--crepe_model", "tiny", "--no_progress"]


@pytest.fixture(scope="module")
def model(tmp_path_factory):
  """A tiny model trained for a few steps on 1-second demo violin windows, and its zip."""
  root = tmp_path_factory.mktemp("model")
  data = root / "data"
  assert cli.main(["prepare", "--input", os.path.join(DEMO_CORPUS, "violin"), "--output", str(data),
                   "--example_secs", "1"] + TINY) == 0
  model_dir = root / "violin"
  assert cli.main(["train", "--data", str(data), "--model_dir", str(model_dir), "--gin_file",
                   "tiny_instrument.gin", "--gin_param", "train.batch_size = 4", "--steps", "3",
                   "--no-eval", "--no_progress"]) == 0
  zipped = train.export(str(model_dir))["zip"]
  return str(model_dir), zipped


def test_transfer_pipeline(model, corpus, tmp_path):
  model_dir, zipped = model
  src = tmp_path / "in"
  src.mkdir()
  shutil.copy(os.path.join(corpus, "transfer", "trumpet_bb_march.wav"), src / "trumpet.wav")
  shutil.copy(os.path.join(corpus, "transfer", "voice_ohh_folk_44k_flac.flac"), src / "voice.flac")
  shutil.copy(os.path.join(corpus, "bad", "zero_bytes.wav"), src / "zero_bytes.wav")
  odd = "it's a \"take\" – n°1.wav"
  shutil.copy(os.path.join(corpus, "bad", "tiny_8k_8bit.wav"), src / odd)
  out = tmp_path / "out"
  rc = cli.main(["transfer", "--input", str(src / "*"), "--model", f"violin={model_dir}",
                 "--model", f"zipped={zipped}", "--output", str(out), "--crepe_model", "tiny",
                 "--plots", "--cache_dir", str(tmp_path / "cache"), "--sample_rate_out", "input"])
  assert rc == 1  # the empty file failed, the rest went through
  table = transfer.read_report(str(out))
  assert table.schema.equals(transfer_report.SCHEMA)
  rows = table.to_pylist()
  assert len(rows) == 4 * 2  # every (file, model)
  failed = [r for r in rows if r["status"] != "ok"]
  assert {os.path.basename(r["input_path"]) for r in failed} == {"zero_bytes.wav"}
  assert all(r["error_type"] == "empty" and "zero_bytes.wav" in r["error_message"] for r in failed)
  for r in rows:
    if r["status"] != "ok":
      continue
    assert r["output_path"].startswith(str(out / r["model"]) + os.sep)
    audio, rate = sf.read(r["output_path"])
    assert rate == r["sample_rate_in"]  # --sample_rate_out input
    assert len(audio) / rate == pytest.approx(r["duration_s"], abs=0.01)
    assert sf.info(r["output_path"]).subtype == "PCM_16"
    assert r["loudness_l1_db"] is not None and r["seconds_synthesis"] > 0
    assert r["has_statistics"] and r["adjust"] and r["crepe_model"] == "tiny"
    assert os.path.exists(r["plot_path"])
  # Same model, same input: the zip and the dir give the same audio.
  by_model = {(os.path.basename(r["input_path"]), r["model"]): r for r in rows}
  a = sf.read(by_model[("trumpet.wav", "violin")]["output_path"])[0]
  b = sf.read(by_model[("trumpet.wav", "zipped")]["output_path"])[0]
  np.testing.assert_array_equal(a, b)
  # The odd name became a safe one.
  assert os.path.basename(by_model[(odd, "violin")]["output_path"]) == "it_s_a__take____n_1.wav.wav"
  index = (out / "index.html").read_text(encoding="utf-8")
  assert index.count("<audio") == 8 + 6 and index.count("<img") == 6


def test_single_file_mode_and_input_protection(model, corpus, tmp_path):
  model_dir, _ = model
  src = os.path.join(corpus, "transfer", "cello_dminor.wav")
  dest = tmp_path / "cello_violin.wav"
  assert cli.main(["transfer", src, "--model", model_dir, "-o", str(dest), "--crepe_model",
                   "tiny"]) == 0
  assert sf.info(str(dest)).duration == pytest.approx(sf.info(src).duration, abs=0.01)
  # An input where an output would go is never overwritten: inputs 'x' (no extension) and
  # 'x.wav' in out/violin/, so 'x' -> out/violin/x.wav is the other input.
  out = tmp_path / "out"
  (out / "violin").mkdir(parents=True)
  shutil.copy(src, out / "violin" / "x")
  shutil.copy(src, out / "violin" / "x.wav")
  before = (out / "violin" / "x.wav").read_bytes()
  rc = cli.main(["transfer", "--input", str(out / "violin" / "*"), "--model", f"violin={model_dir}",
                 "--output", str(out), "--crepe_model", "tiny"])
  assert rc == 1 and (out / "violin" / "x.wav").read_bytes() == before
  rows = {os.path.basename(r["input_path"]): r for r in transfer.read_report(str(out)).to_pylist()}
  assert "refusing to overwrite an input" in rows["x"]["error_message"]
  assert rows["x.wav"]["status"] == "ok"
  assert rows["x.wav"]["output_path"] == str(out / "violin" / "x.wav.wav")


def test_pieces_match_a_whole_render_over_60_seconds(model):
  loaded = model_dir_lib.load_model(model[0])
  n = 60 * 250
  t = np.arange(n) / 250
  f0 = 330 * 2 ** (0.5 * np.sin(2 * np.pi * t / 7))
  ld = -30 + 15 * np.sin(2 * np.pi * t / 3)
  whole = render.Renderer(loaded, piece_frames=n).render(f0, ld)
  pieces = render.Renderer(loaded, piece_frames=777).render(f0, ld)
  assert whole.shape == (n * 64,)
  np.testing.assert_allclose(pieces, whole, atol=1e-4)
  # And the renderer equals the model's own one-pass synthesis on a short input.
  short = slice(0, 800)
  ref = loaded(tf.constant(f0[None, short], tf.float32), tf.constant(ld[None, short], tf.float32),
               seed=(0, 0)).numpy()[0]
  np.testing.assert_allclose(render.Renderer(loaded).render(f0[short], ld[short]), ref, atol=1e-4)


def test_gin_from_a_model_dir_is_checked(model, tmp_path):
  model_dir, _ = model
  for text, message in (("import os\n", "not allowed"), ("include 'x.gin'\n", "not allowed"),
                        ("os.system.cmd = 'rm'\n", "unknown configurable 'os'")):
    bad = tmp_path / "bad"
    shutil.rmtree(bad, ignore_errors=True)
    shutil.copytree(model_dir, bad)
    config = model_dir_lib.latest_operative_config(str(bad))
    with open(config, "a", encoding="utf-8") as f:
      f.write(text)
    with pytest.raises(model_dir_lib.ModelDirError, match=message):
      model_dir_lib.load_model(str(bad))
  info = json.load(open(os.path.join(model_dir, "model.json")))
  assert info["frame_rate"] == 250


def test_full_storage_during_transfer(model, tmp_path, write_wav, capsys):
  """The output disk fills up: the cause is named, earlier outputs are intact, nothing half-written."""
  disk = tmp_path / "disk"
  if not mount_tmpfs(disk, "1m"):
    pytest.skip("needs root and mount to simulate a full disk")
  try:
    model_dir, _ = model
    short = write_wav("in/short.wav", tone(330, 2.0, harmonics=3))
    out = disk / "out"
    args = ["--model", f"violin={model_dir}", "--output", str(out), "--crepe_model", "tiny"]
    assert cli.main(["transfer", "--input", short] + args) == 0
    wav = out / "violin" / "short.wav.wav"
    before = wav.read_bytes()
    long = write_wav("in/long.wav", tone(330, 40.0, harmonics=3))  # 1.3 MB of output: too much
    capsys.readouterr()
    rc = cli.main(["transfer", "--input", long, "--input", short] + args)
    err = capsys.readouterr().err
    assert rc in (1, 2) and "No space left on device" in err, err[-2000:]
    assert wav.read_bytes() == before  # the earlier output, whole
    assert not (out / "violin" / "long.wav.wav").exists()
    leftovers = [os.path.join(d, f) for d, _, files in os.walk(disk) for f in files
                 if f.endswith(".tmp") or "staging" in d]
    assert not leftovers
    if rc == 1:  # the report was written: the row says why
      rows = {os.path.basename(r["input_path"]): r for r in transfer.read_report(str(out)).to_pylist()}
      assert rows["long.wav"]["status"] == "failed" and rows["long.wav"]["stage"] == "write"
  finally:
    subprocess.run(["umount", "-l", str(disk)], check=False)
