"""Odd and broken inputs through the prepare pipeline: each is processed or reported, none lost."""

import os
import shlex
import shutil
import subprocess
import sys

import numpy as np
import pyarrow.parquet as pq
import pytest
import soundfile as sf

from tests.conftest import REPO, tone
from tests.pipelines.test_prepare import TINY, run_cli


def test_odd_and_broken_inputs(tmp_path, write_wav):
  x = tone(330, 2.5, harmonics=3)
  valid = {
      "pcm_u8.wav": (x, 16000, "PCM_U8"), "pcm_24.wav": (x, 16000, "PCM_24"),
      "pcm_32.wav": (x, 16000, "PCM_32"), "float.wav": (x, 16000, "FLOAT"),
      "rate_8k.wav": (tone(330, 2.5, 8000), 8000, None),
      "rate_96k.wav": (tone(330, 2.5, 96000), 96000, None),
      "six_channels.wav": (np.stack([x] * 6, axis=1), 16000, None),
      "name with spaces, 'quotes' and \"more\"\nnewline.wav": (x, 16000, None),
      "flac.flac": (x, 16000, None),
  }
  for name, (data, rate, subtype) in valid.items():
    write_wav(f"in/{name}", data, rate, subtype)
  broken = {}
  inf = x.copy()
  inf[100] = np.inf
  broken["inf.wav"] = write_wav("in/inf.wav", inf, 16000, "FLOAT")
  broken["huge.wav"] = write_wav("in/huge.wav", x * 1000, 16000, "FLOAT")
  truncated = write_wav("in/truncated.wav", x)
  with open(truncated, "r+b") as f:  # the header still claims the whole 2.5 s
    f.truncate(os.path.getsize(truncated) // 2)
  write_wav("in/silence.wav", np.zeros(40000, np.float32))
  write_wav("in/clip_20ms.wav", tone(330, 0.02))
  (tmp_path / "in" / "zero_length.wav").write_bytes(b"")
  (tmp_path / "in" / "random.mp3").write_bytes(np.random.default_rng(0).bytes(4000))
  (tmp_path / "in" / "text.wav").write_text("time,f0\n" * 100)
  (tmp_path / "in" / "folder.wav").mkdir()
  os.mkfifo(tmp_path / "in" / "fifo.wav")
  out = tmp_path / "ds"
  assert run_cli(["--input", str(tmp_path / "in" / "*"), "--output", str(out)]) == 1
  files = pq.read_table(out / "reports" / "files.parquet").to_pylist()
  errors = pq.read_table(out / "reports" / "errors.parquet").to_pylist()
  ok = {os.path.basename(r["path"]): r for r in files}
  failed = {os.path.basename(r["path"]): r["error_type"] for r in errors}
  assert set(ok) == set(valid) | {"clip_20ms.wav"}
  skipped = ok.pop("clip_20ms.wav")  # shorter than --min_secs: reported as skipped, with why
  assert skipped["status"] == "skipped" and "shorter than --min_secs" in skipped["reason"]
  assert all(r["status"] == "ok" and r["windows_train"] == 1 for r in ok.values())
  assert ok["rate_96k.wav"]["sample_rate"] == 96000 and ok["six_channels.wav"]["channels"] == 6
  assert failed == {"inf.wav": "non_finite", "huge.wav": "out_of_range", "random.mp3": "not_audio",
                    "text.wav": "not_audio", "folder.wav": "not_audio", "fifo.wav": "not_audio",
                    "truncated.wav": "truncated", "silence.wav": "silent",
                    "zero_length.wav": "empty"}
  for r in errors:  # each message names its file
    assert r["path"] in r["message"]
  assert sf.info(os.path.join(tmp_path, "in", "pcm_24.wav")).subtype == "PCM_24"


def test_an_unreadable_file_is_reported(tmp_path, write_wav):
  """chmod 000 does not stop root, so the run drops the capabilities that let root read anyway."""
  if os.geteuid() != 0 or not shutil.which("capsh"):
    pytest.skip("needs root and capsh to run without CAP_DAC_OVERRIDE")
  write_wav("in/readable.wav", tone(330, 2.5, harmonics=3))
  locked = write_wav("in/locked.wav", tone(220, 2.5, harmonics=3))
  os.chmod(locked, 0)
  out = tmp_path / "ds"
  command = " ".join(["exec"] + [shlex.quote(a) for a in [
      sys.executable, "-m", "jobs.cli", "prepare", "--input", str(tmp_path / "in" / "*.wav"),
      "--output", str(out)] + TINY])
  done = subprocess.run(["capsh", "--drop=cap_dac_override,cap_dac_read_search", "--", "-c",
                         command], cwd=REPO, capture_output=True, text=True, check=False)
  assert done.returncode == 1, done.stderr[-3000:]
  assert "FAILED [unreadable]" in done.stderr and "locked.wav" in done.stderr
  errors = pq.read_table(out / "reports" / "errors.parquet").to_pylist()
  assert [(os.path.basename(e["path"]), e["error_type"]) for e in errors] == [
      ("locked.wav", "unreadable")]
  files = pq.read_table(out / "reports" / "files.parquet").to_pylist()
  assert [os.path.basename(f["path"]) for f in files] == ["readable.wav"], done.stderr[-3000:]
