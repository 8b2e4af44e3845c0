"""Model archives: two processes extracting one zip for the first time at once."""

import os
import zipfile

import numpy as np

from ddsp_core import archive
from tests import racing

ROUNDS = 8


def _extract(round_, worker, barrier, zip_path, cache_root):  # pylint: disable=unused-argument
  return archive.extract_zip(zip_path, os.path.join(cache_root, str(round_)))


def test_two_first_extractions_of_one_zip_both_succeed(tmp_path):
  rng = np.random.default_rng(0)
  files = {f"model/ckpt-{i}.data": rng.bytes(200_000) for i in range(24)}
  files["model/operative_config-0.gin"] = b"# gin\n"
  zip_path = str(tmp_path / "model.zip")
  with zipfile.ZipFile(zip_path, "w") as z:  # stored, large enough that extracting takes a while
    for name, data in files.items():
      z.writestr(name, data)

  results = racing.race(_extract, (zip_path, str(tmp_path / "cache")), workers=2, rounds=ROUNDS)
  errors, failed_rounds = racing.failures(results)
  assert not errors, f"{len(failed_rounds)} of {ROUNDS} rounds failed:\n" + "\n".join(errors)
  assert sorted(results) == list(range(ROUNDS))
  for r, by_worker in results.items():
    folders = {value for _, value in by_worker.values()}
    assert len(by_worker) == 2 and len(folders) == 1, (r, by_worker)
    folder = folders.pop()
    assert os.path.basename(folder) == "model"
    extracted = {}
    for name in os.listdir(folder):
      with open(os.path.join(folder, name), "rb") as f:
        extracted["model/" + name] = f.read()
    assert extracted == files
    cache = os.path.join(tmp_path, "cache", str(r))
    assert len(os.listdir(cache)) == 1  # the loser's temporary folder is gone
