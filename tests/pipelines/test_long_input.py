"""A two-hour recording through the prepare pipeline: processed whole, memory bounded (slow)."""

import os
import shutil
import subprocess
import sys

import numpy as np
import pyarrow.parquet as pq
import pytest
import soundfile as sf

from tests.conftest import REPO

HOURS = 2


@pytest.mark.slow
def test_a_two_hour_recording(tmp_path):
  path = tmp_path / "two_hours.wav"
  rate = 16000
  t = np.arange(60 * rate) / rate
  with sf.SoundFile(str(path), "w", rate, 1, "PCM_16") as f:  # written a minute at a time
    for minute in range(60 * HOURS):
      freq = 220.0 * 2 ** ((minute % 12) / 12)  # a semitone higher each minute, for an octave
      f.write((0.3 * np.sin(2 * np.pi * freq * t) + 0.1 * np.sin(4 * np.pi * freq * t))
              .astype(np.float32))
  out = tmp_path / "ds"
  cmd = [sys.executable, "-m", "jobs.cli", "prepare", "--input", str(path), "--output", str(out),
         "--crepe_model", "tiny", "--f0_rate", "50", "--chunk_secs", "60", "--hop_secs", "60",
         "--no_progress"]
  timed = ["/usr/bin/time", "-v"] + cmd if shutil.which("/usr/bin/time") else cmd
  done = subprocess.run(timed, cwd=REPO, capture_output=True, text=True, check=False)
  assert done.returncode == 0, done.stderr[-3000:]
  files = pq.read_table(out / "reports" / "files.parquet").to_pylist()
  assert len(files) == 1 and files[0]["status"] == "ok"
  assert files[0]["duration_s"] == pytest.approx(HOURS * 3600)
  windows = pq.read_table(out / "reports" / "windows.parquet").to_pandas().sort_values("start_s")
  assert len(windows) == HOURS * 60  # one 4-second window a minute
  expected = 220.0 * 2 ** (((windows["start_s"] // 60) % 12) / 12)
  cents = 1200 * np.abs(np.log2(windows["f0_median_hz"].to_numpy() / expected.to_numpy()))
  assert np.max(cents) < 50, cents
  if timed is not cmd:
    peak_kb = int(next(line.split(":")[1] for line in done.stderr.splitlines()
                       if "Maximum resident set size" in line))
    print(f"peak RSS {peak_kb / 1024:.0f} MB for {HOURS} hours of audio")
    assert peak_kb < 3 * 1024 * 1024
  assert os.path.getsize(path) > HOURS * 3600 * rate * 2
