"""The corpus config: TOML, checked; unknown keys and wrong types name the key."""

import os

import pytest

from jobs import corpus_config
from jobs.corpus_config import ConfigError, load_config

GOOD = """
output = "out"
beam_args = ["--direct_num_workers=1"]
[prepare]
crepe_model = "tiny"
example_secs = 2
[datasets.violin]
sources = ["violin/*.wav"]
eval_fraction = 0.25
[datasets.flute]
sources = ["/abs/flute/**"]
crepe_model = "full"
[models.violin]
dataset = "violin"
gin_files = ["tiny_instrument.gin"]
steps = 10
[transfer]
sources = ["voice/*.wav"]
models = ["violin", "ext=models/ext.zip"]
sample_rate_out = "input"
"""


def _write(tmp_path, text):
  path = tmp_path / "corpus.toml"
  path.write_text(text, encoding="utf-8")
  return str(path)


def test_a_good_config(tmp_path):
  config = load_config(_write(tmp_path, GOOD))
  assert config.output == str(tmp_path / "out")
  violin = config.datasets["violin"]
  assert violin.sources == (str(tmp_path / "violin" / "*.wav"),)
  assert violin.prepare.crepe_model == "tiny"  # from [prepare]
  assert violin.prepare.window.example_secs == 2.0 and violin.prepare.eval_fraction == 0.25
  assert config.datasets["flute"].prepare.crepe_model == "full"  # overridden per dataset
  assert violin.prepare.skip_silent_db is None  # absent: off
  assert config.datasets["flute"].sources == ("/abs/flute/**",)
  assert config.models["violin"].steps == 10 and config.models["violin"].update_steps == 0
  assert config.transfer.models == ("violin", f"ext={tmp_path / 'models' / 'ext.zip'}")
  assert config.transfer.config.sample_rate_out is None
  assert config.beam_args == ("--direct_num_workers=1",)


@pytest.mark.parametrize("bad, message", [
    (GOOD.replace("eval_fraction = 0.25", "eval_fractoin = 0.25"),
     "unknown key 'datasets.violin.eval_fractoin'"),
    ("schedule = 'nightly'\n" + GOOD, "unknown key 'schedule'"),
    (GOOD + "\nschedule = 'nightly'\n", "unknown key 'transfer.schedule'"),
    (GOOD.replace("steps = 10", "steps = 10\nstepz = 3"), "unknown key 'models.violin.stepz'"),
    (GOOD.replace("steps = 10", "steps = 'ten'"), "'models.violin.steps' must be a number"),
    (GOOD.replace('example_secs = 2', 'example_secs = true'), "'prepare.example_secs'"),
    (GOOD.replace('dataset = "violin"', 'dataset = "viola"'), "'models.violin.dataset'"),
    (GOOD.replace('"violin", "ext=', '"cello", "ext='), "'cello' is neither"),
    (GOOD.replace('output = "out"', ''), "'output'"),
    (GOOD.replace('sources = ["violin/*.wav"]', ''), "'datasets.violin.sources'"),
    (GOOD.replace('crepe_model = "full"', 'crepe_model = "huge"'), "datasets.flute"),
    ("output = [", "not valid TOML"),
])
def test_bad_configs_name_the_key(tmp_path, bad, message):
  with pytest.raises(ConfigError) as e:
    load_config(_write(tmp_path, bad))
  assert message in str(e.value)
  assert str(tmp_path / "corpus.toml") in str(e.value)


def test_overrides_and_hash(tmp_path):
  path = _write(tmp_path, GOOD)
  config = load_config(path, ["models.violin.steps=3", 'output="elsewhere"'])
  assert config.models["violin"].steps == 3
  assert config.output == "elsewhere" or config.output.endswith(os.sep + "elsewhere")
  assert config.text_hash != load_config(path).text_hash
  with pytest.raises(ConfigError, match="unknown key 'models.violin.stepz'"):
    load_config(path, ["models.violin.stepz=3"])
  with pytest.raises(ConfigError, match="KEY=VALUE"):
    corpus_config.parse_override("models.violin.steps")


def test_model_settings_hash_follows_gin(tmp_path):
  config = load_config(_write(tmp_path, GOOD))
  model = config.models["violin"]
  other = load_config(_write(tmp_path, GOOD.replace(
      'steps = 10', 'steps = 10\ngin_params = ["train.batch_size = 4"]'))).models["violin"]
  more_steps = load_config(_write(tmp_path, GOOD.replace("steps = 10", "steps = 99")))
  assert model.settings_hash() != other.settings_hash()
  assert model.settings_hash() == more_steps.models["violin"].settings_hash()  # steps: same model


def test_skip_silent_db_from_prepare_or_per_dataset(tmp_path):
  text = GOOD.replace('[datasets.flute]\n', '[datasets.flute]\nskip_silent_db = -70\n')
  config = load_config(_write(tmp_path, text))
  assert config.datasets["flute"].prepare.skip_silent_db == -70.0
  assert config.datasets["violin"].prepare.skip_silent_db is None
  text = GOOD.replace('example_secs = 2\n', 'example_secs = 2\nskip_silent_db = -65.5\n', 1)
  config = load_config(_write(tmp_path, text))
  assert {d.prepare.skip_silent_db for d in config.datasets.values()} == {-65.5}
  with pytest.raises(ConfigError, match="skip_silent_db' must be"):
    load_config(_write(tmp_path, GOOD.replace('[datasets.flute]\n',
                                              '[datasets.flute]\nskip_silent_db = "quiet"\n')))
