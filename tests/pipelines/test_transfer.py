"""Batch timbre transfer through a (briefly) trained tiny model, on the DirectRunner."""

import inspect
import json
import os
import shutil
import subprocess

import numpy as np
import pytest
import soundfile as sf
import tensorflow as tf

from ddsp_core import audio as audio_lib
from ddsp_core import features
from ddsp_core import framing
from ddsp_core import model_dir as model_dir_lib
from ddsp_core import render
from jobs import cli
from jobs import train
from pipelines import transfer
from pipelines import transfer_report
from tests.conftest import DEMO_CORPUS, FIXTURES, mount_tmpfs, tone
from tests.pipelines.test_prepare import CREPE_TINY, TINY

MAGENTA_MODEL = os.path.join(FIXTURES, "magenta_model")


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


# Each model is fed features the way it was trained and heard at its own rate.

CONVENTIONS = {  # name -> (frame_rate, padding, sample_rate)
    "fr250_same": (250, "same", 16000),
    "fr100_center": (100, "center", 16000),
    "fr50_same": (50, "same", 16000),
    "sr24k_center": (250, "center", 24000),
    "sr8k_same": (250, "same", 8000),  # shares its input analysis with fr250_same
}
SECONDS = 1.0  # a whole number of hops at every rate: 'same' and 'center' differ by a frame


def _untrained_model_dir(path, frame_rate, padding, sample_rate):
  """A tiny untrained model dir, written by the training job's own writers.

  Its weights are random: what is tested is which features reach the model and
  how its audio is read, not how it sounds.
  """
  model = train.build_model(None, ["tiny_instrument.gin"],
                            [f"Autoencoder.frame_rate = {frame_rate}",
                             f"Autoencoder.sample_rate = {sample_rate}"])
  manager = tf.train.CheckpointManager(tf.train.Checkpoint(model=model), str(path),
                                       max_to_keep=1, checkpoint_name="ckpt")
  train.save_checkpoint(manager, str(path), 1)
  data = path.parent / f"{path.name}.data"  # a dataset folder without statistics
  data.mkdir()
  train._write_model_info(str(path), model, str(data),  # pylint: disable=protected-access
                          {"sample_rate": 16000, "frame_rate": frame_rate, "padding": padding},
                          ["tiny_instrument.gin"])
  return str(path)


@pytest.fixture(scope="module")
def convention_models(tmp_path_factory):
  root = tmp_path_factory.mktemp("conventions")
  return {name: _untrained_model_dir(root / name, *conv) for name, conv in CONVENTIONS.items()}


@pytest.fixture
def renders(monkeypatch):
  """Every `Renderer.render` call: the model's rates, the features given and the audio out."""
  calls = []
  original = render.Renderer.render

  def spy(self, f0_hz, loudness_db):
    out = original(self, f0_hz, loudness_db)
    calls.append({"rates": (self.model.frame_rate, self.model.sample_rate),
                  "f0_hz": np.array(f0_hz), "loudness_db": np.array(loudness_db), "audio": out})
    return out

  monkeypatch.setattr(render.Renderer, "render", spy)
  return calls


@pytest.fixture
def take(write_wav):
  path = write_wav("in/take.wav", tone(330, SECONDS, harmonics=3))
  return path, audio_lib.load_audio(path)[0]  # as transfer decodes it


def _expected_features(audio, frame_rate, padding):
  return features.compute_features(audio, 16000, frame_rate, padding=padding, model="tiny")


def _check_render_call(call, audio, frame_rate, padding):
  """The model got features of the model's frame count, framed with its padding."""
  n = framing.num_frames(len(audio), 16000 // frame_rate, padding)
  assert len(call["f0_hz"]) == len(call["loudness_db"]) == n, (frame_rate, padding)
  expected = _expected_features(audio, frame_rate, padding)
  np.testing.assert_array_equal(call["loudness_db"], expected["loudness_db"])
  np.testing.assert_array_equal(call["f0_hz"], expected["f0_hz"])


def test_transfer_feeds_each_model_its_frame_rate_padding_and_sample_rate(
    convention_models, renders, take, tmp_path, monkeypatch):
  path, audio = take
  analysed = []  # (frame_rate, padding) of every analysis of the input
  compute = features.compute_features
  signature = inspect.signature(compute)

  def counting(*args, **kwargs):
    bound = signature.bind(*args, **kwargs)
    bound.apply_defaults()
    a = bound.arguments
    if len(a["audio"]) == len(audio) and np.array_equal(a["audio"], audio):
      analysed.append((a["frame_rate"], a["padding"]))
    return compute(*args, **kwargs)

  monkeypatch.setattr(features, "compute_features", counting)
  out = tmp_path / "out"
  args = ["transfer", "--input", path, "--output", str(out), "--no-adjust",
          "--sample_rate_out", "input"] + CREPE_TINY
  for name, model_dir in convention_models.items():
    args += ["--model", f"{name}={model_dir}"]
  assert cli.main(args) == 0
  monkeypatch.setattr(features, "compute_features", compute)
  # One analysis per (frame rate, padding) among the models, shared by the 8 kHz model.
  assert sorted(analysed) == sorted({(fr, pad) for fr, pad, _ in CONVENTIONS.values()})
  rows = {r["model"]: r for r in transfer.read_report(str(out)).to_pylist()}
  calls = {c["rates"]: c for c in renders}
  assert len(calls) == len(CONVENTIONS)
  for name, (frame_rate, padding, sample_rate) in CONVENTIONS.items():
    row = rows[name]
    assert row["status"] == "ok", row
    written, rate = sf.read(row["output_path"], dtype="float32")
    assert rate == 16000
    assert abs(len(written) / rate - SECONDS) <= 1.0 / frame_rate, name  # within one hop
    call = calls[(frame_rate, sample_rate)]
    _check_render_call(call, audio, frame_rate, padding)
    # The file is the model's audio read at the model's rate (to 16-bit rounding).
    model_audio = call["audio"][:int(SECONDS * sample_rate)]
    np.testing.assert_allclose(written, audio_lib.resample(model_audio, sample_rate, 16000),
                               atol=1e-4, err_msg=name)


def test_single_file_transfer_uses_the_models_conventions(convention_models, renders, take,
                                                          tmp_path):
  path, audio = take
  for name in ("fr100_center", "sr8k_same"):
    frame_rate, padding, sample_rate = CONVENTIONS[name]
    dest = tmp_path / f"{name}.wav"
    assert cli.main(["transfer", path, "--model", convention_models[name], "-o", str(dest),
                     "--no-adjust"] + CREPE_TINY) == 0
    assert abs(sf.info(str(dest)).duration - SECONDS) <= 1.0 / frame_rate, name
    assert renders[-1]["rates"] == (frame_rate, sample_rate)
    _check_render_call(renders[-1], audio, frame_rate, padding)


def test_render_pieces_hold_ten_seconds_at_any_hop(convention_models):
  for name in ("fr50_same", "sr24k_center"):
    loaded = model_dir_lib.load_model(convention_models[name])
    renderer = render.Renderer(loaded)
    assert renderer.piece_frames * loaded.hop == 10 * loaded.sample_rate, name
    n = 3 * loaded.frame_rate
    t = np.arange(n) / loaded.frame_rate
    f0, ld = 330 * 2 ** (0.3 * np.sin(2 * np.pi * t)), -30 + 10 * np.sin(2 * np.pi * t / 2)
    whole = render.Renderer(loaded, piece_frames=n).render(f0, ld)
    assert whole.shape == (n * loaded.hop,)
    # With some random weights the harmonic part of pieces differs from the whole by up to
    # 0.16% of the peak (isolated samples; the noise part agrees to 1e-10): within 0.5%.
    np.testing.assert_allclose(render.Renderer(loaded, piece_frames=37).render(f0, ld), whole,
                               atol=5e-3 * np.max(np.abs(whole)))


def test_an_imported_model_is_fed_the_padding_magenta_trained_it_on(renders, take, tmp_path):
  path, audio = take
  for centered, padding in ((False, "same"), (True, "center")):
    source = tmp_path / f"magenta_{padding}"
    shutil.copytree(MAGENTA_MODEL, source)
    config = source / "operative_config-0.gin"
    text = config.read_text(encoding="utf-8")
    assert "TFRecordProvider.centered = False" in text
    config.write_text(text.replace("TFRecordProvider.centered = False",
                                   f"TFRecordProvider.centered = {centered}"), encoding="utf-8")
    imported = tmp_path / f"imported_{padding}"
    assert cli.main(["import-model", str(source), "-o", str(imported)]) == 0
    info = json.load(open(imported / "model.json", encoding="utf-8"))
    assert info["dataset"]["padding"] == padding
    row = transfer.transfer_single(path, str(imported), str(tmp_path / f"{padding}.wav"),
                                   transfer.TransferConfig(crepe_model="tiny", precision="float32",
                                                           f0_rate=None, adjust=False))
    assert row["status"] == "ok", row
    _check_render_call(renders[-1], audio, 250, padding)


def test_the_transfer_cache_key_changes_with_the_models_padding(tmp_path):
  """Rows rendered from `same` features are not reused for a model fed `center` ones."""
  from pipelines import transfer_cache  # pylint: disable=g-import-not-at-top
  model_dir = _untrained_model_dir(tmp_path / "m", 250, "same", 16000)
  same = transfer_cache.model_fingerprint(model_dir)
  info_path = os.path.join(model_dir, "model.json")
  info = json.load(open(info_path))
  info["dataset"]["padding"] = "center"
  with open(info_path, "w", encoding="utf-8") as f:
    json.dump(info, f)
  assert transfer_cache.model_fingerprint(model_dir) != same
