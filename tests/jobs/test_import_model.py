"""`ddsp-beam import-model`: a model trained by magenta ddsp itself, imported, gives magenta's audio.

tests/fixtures/magenta_model/ was trained for a few steps by magenta's own
`ddsp_run` (solo-instrument architecture at the tiny settings) and
tests/fixtures/magenta_outputs.npz holds what magenta's model computes for
fixed features (tests/fixtures/make_magenta_fixtures.py): magenta is not
needed here.
"""

import json
import os
import shutil
import zipfile

import numpy as np
import pytest
import tensorflow as tf

from ddsp_core import magenta_model
from ddsp_core import model as model_lib
from ddsp_core import model_dir as model_dir_lib
from ddsp_core import synth
from jobs import cli
from jobs import import_model
from pipelines import transfer
from tests.conftest import DEMO_CORPUS, FIXTURES

MAGENTA_MODEL = os.path.join(FIXTURES, "magenta_model")
REF = np.load(os.path.join(FIXTURES, "magenta_outputs.npz"))


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
  out = tmp_path_factory.mktemp("imported") / "violin"
  result = import_model.import_model(MAGENTA_MODEL, str(out), trust_pickle=True)
  assert (result.step, result.weights, result.n_parameters) == (4, 42, 240254)
  return str(out)


def test_the_imported_model_gives_magentas_controls_and_audio(imported, monkeypatch):
  model = model_dir_lib.load_model(imported)
  f0 = tf.constant(REF["model_f0_hz"][None])
  ld = tf.constant(REF["model_loudness_db"][None])
  raw, _ = model.decoder(model_lib.scale_f0(f0), model_lib.scale_loudness(ld))
  for key in ("amps", "harmonic_distribution", "noise_magnitudes"):
    np.testing.assert_allclose(raw[key].numpy()[0], REF[f"model_{key}"], atol=1e-5, err_msg=key)
  controls, _ = model.controls(f0, ld)
  harmonic = synth.harmonic_synthesis(controls["f0_hz"], controls["amplitude"],
                                      controls["harmonic_distribution"], model.hop,
                                      model.sample_rate).numpy()[0]
  noise = synth.filtered_noise(controls["noise_magnitudes"], model.hop,
                               noise=tf.constant(REF["model_noise"][None])).numpy()[0]
  audio = synth.reverb(tf.constant((harmonic + noise)[None]), model.reverb_ir).numpy()[0]
  peak = np.max(np.abs(REF["model_audio_angular"]))
  np.testing.assert_allclose(noise, REF["model_filtered_noise"], atol=1e-7)
  # magenta's model with its accurate phase (use_angular_cumsum=True), the same noise: the
  # same audio to float32 phase rounding (measured 1.9e-4 of a 0.044 peak over 2 s).
  assert np.max(np.abs(audio - REF["model_audio_angular"])) < 0.01 * peak
  # magenta's default phase: sample for sample over the first 0.1 s, then its float32 drift;
  # as a sound, still close (the spectral loss between the two).
  assert np.max(np.abs(audio[:1600] - REF["model_audio"][:1600])) < 0.01 * peak
  assert float(synth.spectral_loss(audio[None], REF["model_audio"][None])) < 1.0
  # The model's own one-call render (`model(f0, loudness)`, what transfer calls), with its own
  # noise: magenta's audio but for the noise (rms 6e-5 here; measured: largest difference 1.1%
  # of the peak, spectral loss 0.10 against magenta's; a silent output scores 51).
  one_call = model(f0, ld, seed=(0, 0)).numpy()[0]
  assert one_call.shape == REF["model_audio_angular"].shape
  assert np.max(np.abs(one_call - REF["model_audio_angular"])) < 0.02 * peak
  assert float(synth.spectral_loss(one_call[None], REF["model_audio_angular"][None])) < 0.2
  # Fed magenta's noise in place of its own (the only random part): magenta's audio, to the
  # float32 phase rounding above (measured 0.42% of the peak), and the composed render's.
  n_samples = REF["model_noise"].shape[0]
  def magentas_noise(batch, start, n, seed):
    assert (int(batch), int(start), int(n), seed) == (1, 0, n_samples, (0, 0))
    return tf.constant(REF["model_noise"][None])
  monkeypatch.setattr(synth, "positional_noise", magentas_noise)
  one_call = model(f0, ld, seed=(0, 0)).numpy()[0]
  assert np.max(np.abs(one_call - REF["model_audio_angular"])) < 0.01 * peak
  np.testing.assert_allclose(one_call, audio, atol=1e-6 * peak)


def test_the_imported_dir_is_a_ddsp_beam_model_dir(imported, tmp_path):
  info = json.load(open(os.path.join(imported, "model.json"), encoding="utf-8"))
  assert info["imported_from"]["format"] == "magenta-ddsp"
  assert info["frame_rate"] == 250 and info["sample_rate"] == 16000
  stats = json.load(open(os.path.join(imported, "dataset_statistics.json"), encoding="utf-8"))
  assert 40 < stats["mean_pitch"] < 90 and len(stats["loudness_quantiles"]["quantiles"]) > 2
  row = transfer.transfer_single(os.path.join(DEMO_CORPUS, "transfer", "voice_ohh_folk.wav"),
                                 f"violin={imported}", str(tmp_path / "out.wav"),
                                 transfer.TransferConfig(crepe_model="tiny"))
  assert row["status"] == "ok" and row["has_statistics"], row
  exported = cli.main(["export", "--model_dir", imported, "--output", str(tmp_path / "sm"),
                       "--zip", str(tmp_path / "m.zip")])
  assert exported == 0


def test_a_colab_zip_through_the_command_line(tmp_path, capsys):
  archive = tmp_path / "violin_model.zip"
  with zipfile.ZipFile(archive, "w") as z:  # the Colab zips the folder
    for name in os.listdir(MAGENTA_MODEL):
      z.write(os.path.join(MAGENTA_MODEL, name), f"violin/{name}")
  out = tmp_path / "models" / "violin"
  assert cli.main(["import-model", str(archive), "-o", str(out)]) == 0
  captured = capsys.readouterr()
  assert "not read (no --trust_pickle)" in captured.out and "--trust_pickle" in captured.err
  assert not (out / "dataset_statistics.json").exists()  # the pickle was not opened
  assert model_dir_lib.load_model(str(out)).n_parameters == 240254
  assert cli.main(["import-model", str(archive), "-o", str(out), "--trust_pickle"]) == 0
  assert (out / "dataset_statistics.json").exists()


def _with_gin(tmp_path, old, new):
  folder = tmp_path / "magenta"
  shutil.copytree(MAGENTA_MODEL, folder)
  config = next(folder.glob("operative_config-*.gin"))
  text = config.read_text(encoding="utf-8")
  assert old in text
  config.write_text(text.replace(old, new), encoding="utf-8")
  return str(folder)


@pytest.mark.parametrize("old, new, message", [
    ("RnnFcDecoder.rnn_type = 'gru'", "RnnFcDecoder.rnn_type = 'lstm'", "RnnFcDecoder.rnn_type"),
    ("Autoencoder.encoder = None", "Autoencoder.encoder = @encoders.MfccTimeDistributedRnnEncoder()",
     "unsupported encoder"),
    ("(@effects.Reverb(), ['add/signal'])", "(@effects.FIRFilter(), ['add/signal'])",
     "ProcessorGroup.dag"),
    ("RnnFcDecoder.input_keys = ('ld_scaled', 'f0_scaled')",
     "RnnFcDecoder.input_keys = ('ld_scaled', 'f0_scaled', 'z')", "RnnFcDecoder.input_keys"),
    ("FilteredNoise.window_size = 0", "FilteredNoise.window_size = 257", "FilteredNoise.window_size"),
])
def test_unsupported_architectures_are_named(tmp_path, old, new, message):
  with pytest.raises(magenta_model.UnsupportedModelError, match=message):
    import_model.import_model(_with_gin(tmp_path, old, new), str(tmp_path / "out"))
  assert not (tmp_path / "out").exists()


def test_gin_from_the_model_is_never_executed(tmp_path):
  marker = tmp_path / "pwned"
  folder = _with_gin(tmp_path, "RnnFcDecoder.ch = 64",
                     f"RnnFcDecoder.ch = __import__('os').system('touch {marker}')")
  with pytest.raises(magenta_model.UnsupportedModelError, match="cannot read the value"):
    import_model.import_model(folder, str(tmp_path / "out"))
  assert not marker.exists()
  # Import lines are ignored, not run; gin macros and references are kept as text.
  bindings = magenta_model.parse_gin_bindings(
      "import os\nimport evil_module\nA.x = %macro\nB.y = @f()\n# c\nC.z = ('#', 1)\n")
  assert bindings == {"A.x": "%macro", "B.y": "@f()", "C.z": ("#", 1)}


def test_a_checkpoint_of_another_size_is_refused(tmp_path):
  folder = _with_gin(tmp_path, "RnnFcDecoder.ch = 64", "RnnFcDecoder.ch = 32")
  with pytest.raises(magenta_model.UnsupportedModelError, match="has shape"):
    import_model.import_model(folder, str(tmp_path / "out"))
