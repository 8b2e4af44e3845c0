"""Built-in model names: resolution, unknown names listing the built-ins, model cards, `models`."""

import json
import os

import gin
import numpy as np
import pytest
import soundfile as sf
import tensorflow as tf

from ddsp_core import builtin_models
from ddsp_core import model_dir as model_dir_lib
from jobs import cli
from jobs import corpus_config
from pipelines import transfer
from tests.conftest import DEMO_CORPUS, tone

CARD = {
    "name": "violin", "instrument": "violin",
    "data": {"recipe": "instruments/phrases.py", "seconds": 666.0},
    "architecture": {"gin_files": ["tiny_instrument.gin"], "n_parameters": 1234},
    "training": {"steps": 0, "wall_s": 0.0, "machine": "test"},
    "eval": {"spectral_loss": None}, "transfer_quality": None,
    "licence": "MIT (soundfont samples)",
}


def untrained_model_dir(path):
  """A real model dir (operative config + checkpoint) of a small untrained autoencoder."""
  model = model_dir_lib.build_model(None, ["tiny_instrument.gin"], [
      "RnnFcDecoder.rnn_channels = 16", "RnnFcDecoder.ch = 8", "RnnFcDecoder.n_harmonics = 8",
      "RnnFcDecoder.n_noise_magnitudes = 8", "Autoencoder.reverb_length = 1000"])
  model(tf.zeros([1, 250]), tf.zeros([1, 250]))  # build the weights
  tf.train.CheckpointManager(tf.train.Checkpoint(model=model), str(path), 1,
                             checkpoint_name="ckpt").save(checkpoint_number=0)
  with open(os.path.join(path, "operative_config-0.gin"), "w", encoding="utf-8") as f:
    f.write(gin.config_str())
  return str(path)


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
  """A registry root holding an installed 'violin' and a 'flute' dir without a model."""
  root = tmp_path_factory.mktemp("builtin")
  violin = root / "violin"
  violin.mkdir()
  untrained_model_dir(violin)
  builtin_models.write_card(str(violin), CARD)
  (root / "flute").mkdir()
  return str(root)


@pytest.fixture
def installed(registry, monkeypatch):
  monkeypatch.setattr(builtin_models, "ROOT", registry)
  return os.path.join(registry, "violin")


def test_builtin_names_resolve(installed, tmp_path, monkeypatch):
  assert builtin_models.installed() == {"violin": installed}
  assert transfer.parse_model_arg("violin") == ("violin", installed)
  loaded = transfer.LoadedModel(*transfer.parse_model_arg("violin"))  # real weights load
  audio = loaded.renderer.render(np.full(250, 440.0, np.float32), np.full(250, -30.0, np.float32))
  assert np.all(np.isfinite(audio)) and len(audio) == 16000
  # A user's model dir named like a built-in still wins, and NAME=PATH is untouched.
  monkeypatch.chdir(tmp_path)
  (tmp_path / "violin").mkdir()
  assert transfer.parse_model_arg("violin") == ("violin", "violin")
  assert transfer.parse_model_arg("mine=some/dir") == ("mine", "some/dir")
  # The corpus config: a built-in name becomes NAME=PATH; a [models] name wins over it.
  config = tmp_path / "c.toml"
  config.write_text('output = "out"\n[transfer]\nsources = ["x/*.wav"]\nmodels = ["violin"]\n')
  assert corpus_config.load_config(str(config)).transfer.models == (f"violin={installed}",)
  config.write_text(config.read_text() + '[datasets.d]\nsources = ["a/*.wav"]\n'
                    '[models.violin]\ndataset = "d"\n')
  assert corpus_config.load_config(str(config)).transfer.models == ("violin",)
  # ... and NAME=<built-in name> gives a shipped model a second name beside it (the demo's way);
  # a path of that name next to the config, where one exists, still wins.
  config.write_text(config.read_text().replace('models = ["violin"]',
                                               'models = ["violin", "shipped=violin"]'))
  assert corpus_config.load_config(str(config)).transfer.models == (
      "violin", f"shipped={tmp_path / 'violin'}")
  (tmp_path / "violin").rmdir()
  assert corpus_config.load_config(str(config)).transfer.models == ("violin",
                                                                    f"shipped={installed}")


def test_unknown_names_fail_listing_the_builtin_ones(installed, tmp_path, write_wav, capsys):
  unknown = builtin_models.UnknownModelError
  with pytest.raises(unknown, match=r"cello.*built-in models in this copy: violin\)"):
    transfer.parse_model_arg("cello")
  with pytest.raises(unknown, match=r"not installed in this copy.*: violin\)"):
    transfer.parse_model_arg("flute")  # a built-in name whose dir holds no model
  with pytest.raises(unknown, match="models/violin.*violin"):
    transfer.parse_model_arg("models/violin")  # a path that does not exist
  take = write_wav("take.wav", tone(440.0, 1.0))
  assert cli.main(["transfer", take, "--model", "cello", "-o", str(tmp_path / "o.wav")]) == 2
  assert "built-in models in this copy: violin" in capsys.readouterr().err
  config = tmp_path / "c.toml"
  config.write_text('output = "out"\n[transfer]\nsources = ["x/*.wav"]\nmodels = ["cello"]\n')
  with pytest.raises(corpus_config.ConfigError, match=r"'cello' is neither.*this copy: violin"):
    corpus_config.load_config(str(config))
  config.write_text(config.read_text().replace('"cello"', '"second=flute"'))
  with pytest.raises(corpus_config.ConfigError,
                     match=r"c.toml: .*'second=flute'.*'flute' is not installed.*copy: violin\)"):
    corpus_config.load_config(str(config))


def test_no_builtin_installed_says_so(tmp_path, monkeypatch, capsys):
  monkeypatch.setattr(builtin_models, "ROOT", str(tmp_path))
  assert builtin_models.installed() == {}
  with pytest.raises(builtin_models.UnknownModelError,
                     match=r"in this copy: none; the names are violin, .*tenor_saxophone\)"):
    transfer.parse_model_arg("violin")
  assert cli.main(["models"]) == 0
  assert "no built-in models are installed" in capsys.readouterr().out


def test_model_cards_parse(installed, tmp_path, capsys):
  card = builtin_models.read_card(installed)
  assert card == CARD
  text = open(os.path.join(installed, "MODEL.md"), encoding="utf-8").read()
  assert text.startswith("# violin: violin") and "## Licence" in text and "not measured" in text
  assert cli.main(["models"]) == 0
  out = capsys.readouterr().out
  assert out.startswith(f"violin: violin ({installed})") and "licence: MIT" in out
  assert cli.main(["models", "--json"]) == 0
  assert json.loads(capsys.readouterr().out)["violin"]["path"] == installed
  # Broken cards fail naming the file and the field; a dir without a card is not installed.
  for broken, message in ((dict(CARD, licence=3), "'licence' must be str"),
                          ({k: v for k, v in CARD.items() if k != "eval"}, "'eval' is missing")):
    (tmp_path / "card.json").write_text(json.dumps(broken))
    with pytest.raises(builtin_models.ModelCardError, match=message):
      builtin_models.read_card(str(tmp_path))
  (tmp_path / "card.json").write_text("{not json")
  with pytest.raises(builtin_models.ModelCardError, match="not valid JSON"):
    builtin_models.read_card(str(tmp_path))
  with pytest.raises(builtin_models.ModelCardError, match="'eval' is missing"):
    builtin_models.write_card(str(tmp_path / "new"), {k: v for k, v in CARD.items() if k != "eval"})
  assert not os.path.exists(tmp_path / "new" / "card.json")


@pytest.mark.parametrize("name", list(builtin_models.installed()))
def test_shipped_models_load_and_follow_the_input_pitch(name, tmp_path):
  """Every model this copy ships (none until they are trained) renders a short take whose
  measured f0 follows the input's."""
  path = builtin_models.installed()[name]
  builtin_models.read_card(path)
  audio, rate = sf.read(os.path.join(DEMO_CORPUS, "transfer", "trumpet_bb_march.wav"))
  take = tmp_path / "take.wav"
  sf.write(str(take), audio[:4 * rate], rate)
  row = transfer.transfer_single(str(take), name, str(tmp_path / "out.wav"),
                                 transfer.TransferConfig(crepe_model="tiny"))
  assert row["status"] == "ok", row
  assert row["f0_error_cents_median"] <= 20.0
