"""Soak: many short files, 10% broken, two DirectRunner worker processes (slow; make test-all)."""

import os
import re
import subprocess
import sys

import pyarrow.parquet as pq
import pytest
import soundfile as sf

from tests.conftest import tone


def _corpus(root, n_files):
  os.makedirs(root)
  broken = 0
  for i in range(n_files):
    path = os.path.join(root, f"take_{i:04d}.wav")
    if i % 10 == 9:  # every tenth file is broken, in turn: empty, text, truncated
      broken += 1
      if i % 30 == 9:
        open(path, "wb").close()
      elif i % 30 == 19:
        open(path, "w", encoding="utf-8").write("not audio\n" * 20)
      else:
        sf.write(path, tone(200 + i, 1.5), 16000)
        data = open(path, "rb").read()
        open(path, "wb").write(data[: len(data) // 3])
    else:
      sf.write(path, tone(200 + i, 1.5, harmonics=3), 16000)
  return broken


def _run(root, out):
  proc = subprocess.run(
      ["/usr/bin/time", "-v", sys.executable, "-m", "jobs.cli", "prepare", "--input", root,
       "--output", out, "--crepe_model", "tiny", "--no-viterbi", "--no_progress",
       "--direct_running_mode=multi_processing", "--direct_num_workers=2"],
      capture_output=True, text=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
  rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr).group(1))
  return proc.returncode, rss / 1024


@pytest.mark.slow
def test_soak_300_files_10_percent_broken(tmp_path):
  results = {}
  for n in (60, 300):
    root = str(tmp_path / f"in{n}")
    broken = _corpus(root, n)
    out = str(tmp_path / f"out{n}")
    rc, rss = _run(root, out)
    assert rc == 1
    files = pq.read_table(os.path.join(out, "reports", "files.parquet")).column("path").to_pylist()
    errors = pq.read_table(os.path.join(out, "reports", "errors.parquet")).column("path").to_pylist()
    assert len(errors) == broken and len(files) == n - broken
    assert sorted(files + errors) == sorted(os.path.join(root, f) for f in os.listdir(root))
    results[n] = rss
  print(f"peak driver RSS: 60 files {results[60]:.0f} MB, 300 files {results[300]:.0f} MB")
  assert results[300] < 1.25 * results[60]  # memory does not grow with the number of files
