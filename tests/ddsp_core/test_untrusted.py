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


def test_allowed_gin_passes():
  model_dir_lib.check_gin_text("Autoencoder.sample_rate = 16000\n# a comment\n"
                               "RnnFcDecoder.ch = 64\ntrain.batch_size = 8\n", "ok.gin")


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
