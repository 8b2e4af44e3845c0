"""Untrusted models and datasets: archives, gin, pickles and output paths never escape their bounds.

Model archives are checked before anything is written; gin from a model dir
binds only ddsp-beam's configurables; output paths made from input names stay
under the output root. (Pickles: tests/ddsp_core/test_safe_pickle.py; gin in a
trained model dir: tests/pipelines/test_transfer.py; magenta imports:
tests/jobs/test_import_model.py.)
"""

import os
import zipfile

import pytest

from ddsp_core import archive
from ddsp_core import model_dir as model_dir_lib
from pipelines import transfer
from tests.conftest import FIXTURES


def _zip(path, entries):
  with zipfile.ZipFile(path, "w") as z:
    for name, data in entries:
      if isinstance(data, zipfile.ZipInfo):
        z.writestr(data, "target")
      else:
        z.writestr(name, data)
  return str(path)


def test_unsafe_archives_are_refused(tmp_path):
  link = zipfile.ZipInfo("link")
  link.external_attr = (0o120777 << 16)
  cases = {
      "parent": [("../evil.txt", "x")],
      "absolute": [("/etc/evil.txt", "x")],
      "link": [("link", link)],
      "many": [(f"f{i}", "x") for i in range(30)],
      "big": [("big.bin", "0" * 5000)],
  }
  for name, entries in cases.items():
    path = _zip(tmp_path / f"{name}.zip", entries)
    with pytest.raises(archive.UnsafeArchiveError):
      archive.extract_zip(path, str(tmp_path / "cache"), max_files=20, max_bytes=4000)
  assert not (tmp_path / "evil.txt").exists()
  ok = _zip(tmp_path / "ok.zip", [("model/a.txt", "a")])
  assert archive.extract_zip(ok, str(tmp_path / "cache")).endswith("model")


@pytest.mark.parametrize("text, message", [
    ("import os\n", "not allowed"), ("from os import system\n", "not allowed"),
    ("include '/etc/passwd'\n", "not allowed"), ("os.system.cmd = 'rm -rf /'\n", "unknown configurable 'os'"),
    ("Autoencoder.decoder = @RnnFcDecoder()\nevil.x = 1\n", "unknown configurable 'evil'"),
])
def test_gin_text_is_checked(text, message):
  with pytest.raises(model_dir_lib.ModelDirError, match=message):
    model_dir_lib.check_gin_text(text, "operative_config-1.gin")


@pytest.mark.parametrize("text, line, message", [
    # Each was accepted by the line regexes this parser replaced.
    ("Autoencoder.sample_rate = 16000\nscope/evil.x = 1\n", 2, "scoped gin binding 'scope/evil'"),
    ("s/Autoencoder.sample_rate = 8000\n", 1, "scoped gin binding 's/Autoencoder'"),
    ("RnnFcDecoder.ch = 64\nevil.x \\\n    = 1\n", 2, "unknown configurable 'evil'"),
    ("evil:\n  train = 1\n", 1, "unknown configurable 'evil'"),
    ("train.batch_size = 8\nimport\tos\n", 2, "gin 'import' is not allowed"),
    ("Autoencoder.decoder = @evil.Thing()\n", 1, "unknown or scoped configurable '@evil.Thing'"),
    ("Autoencoder.decoder = @s/RnnFcDecoder()\n", 1, "scoped configurable '@s/RnnFcDecoder'"),
    ("RnnFcDecoder.ch = [1,\n  {'a': @os.system}]\n", 1, "configurable '@os.system'"),
    ("batch_size = 2\n", 1, "gin macro 'batch_size'"),
    ("RnnFcDecoder.ch = %width\n", 1, "gin macro reference '%width'"),
    ("RnnFcDecoder.ch = [1,\n", 2, "gin syntax error"),
])
def test_gin_is_checked_as_gin_parses_it(text, line, message):
  """Statements as gin's own parser reads them: scopes, line breaks, blocks, references."""
  with pytest.raises(model_dir_lib.ModelDirError) as refused:
    model_dir_lib.check_gin_text(text, "op.gin")
  assert str(refused.value).startswith(f"op.gin:{line}: "), refused.value
  assert message in str(refused.value), refused.value
  if "syntax" not in message:  # the offending line is quoted
    assert repr(text.splitlines()[line - 1].strip()) in str(refused.value), refused.value


def test_allowed_gin_passes():
  model_dir_lib.check_gin_text("Autoencoder.sample_rate = 16000\n# a comment\n"
                               "RnnFcDecoder.ch = 64\ntrain.batch_size = 8\n"
                               "RnnFcDecoder:\n  n_harmonics = 60\n", "ok.gin")


def test_shipped_and_written_gin_passes():
  """The shipped gin files, the operative config training writes, and an imported model's gin."""
  import gin  # pylint: disable=g-import-not-at-top
  from ddsp_core import magenta_model  # pylint: disable=g-import-not-at-top
  from ddsp_core import model as model_lib  # pylint: disable=g-import-not-at-top
  from ddsp_core import training  # pylint: disable=g-import-not-at-top
  for name in ("solo_instrument.gin", "tiny_instrument.gin"):
    with open(training.resolve_gin_file(name), encoding="utf-8") as f:
      model_dir_lib.check_gin_text(f.read(), name)
  training.parse_gin(["tiny_instrument.gin"])
  model_lib.Autoencoder()
  model_dir_lib.check_gin_text(gin.operative_config_str(), "operative_config-1.gin")
  magenta_config = os.path.join(FIXTURES, "magenta_model", "operative_config-0.gin")
  with open(magenta_config, encoding="utf-8") as f:
    text = f.read()
  settings = magenta_model.settings_from_gin(magenta_model.parse_gin_bindings(text))
  model_dir_lib.check_gin_text(magenta_model.gin_text(settings), "imported.gin")
  # magenta's own config imports modules: import-model translates it, a model dir may not hold it.
  with pytest.raises(model_dir_lib.ModelDirError, match="gin 'import' is not allowed"):
    model_dir_lib.check_gin_text(text, magenta_config)
  gin.clear_config()


def test_output_paths_stay_under_the_output_root(tmp_path):
  inputs = [str(tmp_path / "in" / "a.wav"), str(tmp_path / "in" / ".." / "in" / "b.wav"),
            str(tmp_path / "in" / "sub" / "..." / "c.wav"), str(tmp_path / "in" / "-rf .wav")]
  rel = transfer.output_relative_paths(inputs)
  for path, out in rel.items():
    assert not os.path.isabs(out) and ".." not in out.split(os.sep), (path, out)
    assert os.path.realpath(os.path.join(tmp_path, "out", out)).startswith(str(tmp_path / "out"))
  for hostile in ("../../etc/passwd", "/etc/passwd", "a/../../b", "..", "."):
    safe = transfer.safe_relative_path(hostile)
    assert not os.path.isabs(safe) and ".." not in safe.split(os.sep), (hostile, safe)
