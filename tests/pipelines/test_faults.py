"""Faults during a prepare run: a worker process killed, the output storage full."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pyarrow.parquet as pq
import pytest

from tests.conftest import mount_tmpfs, tone
from tests.pipelines.test_prepare import read_records, run_cli


def _children(pid):
  """Pids of the processes below `pid`."""
  out = subprocess.run(["ps", "-eww", "-o", "pid,ppid,args"], capture_output=True, text=True).stdout
  rows = [line.split(None, 2) for line in out.strip().splitlines()[1:]]
  found, frontier = [], {str(pid)}
  while frontier:
    nxt = {r[0] for r in rows if r[1] in frontier}
    found += [r for r in rows if r[0] in nxt]
    frontier = nxt
  return found


# Killed at once (before the worker had answered) the run used to hang for ever: Beam's
# FnApiRunner only logs a dead worker and waits for its data (3 of 3 runs at 0 s and 0.3 s
# hung before `runner._run_watching_workers`). Killed later, it failed by itself.
@pytest.mark.parametrize("delay_s", [0.0, 3.0])
def test_a_worker_process_killed_mid_run(tmp_path, corpus, delay_s):
  """multi_processing, 2 workers, one SIGKILLed `delay_s` after both started: the run either
  completes with every window exactly once, or fails (exit 2) and publishes nothing."""
  files = [os.path.join(corpus, "train", "flute", f) for f in
           ("flute_bb_thirds.wav", "flute_ab_bends.wav", "flute_f_major_air.wav")]
  out = tmp_path / "ds"
  cmd = [sys.executable, "-m", "jobs.cli", "prepare", "--output", str(out), "--crepe_model", "tiny",
         "--direct_running_mode=multi_processing", "--direct_num_workers=2"]
  for f in files:
    cmd += ["--input", f]
  log = open(tmp_path / "run.log", "w+", encoding="utf-8")  # a pipe could fill up and block
  proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, text=True,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
  killed = None
  deadline = time.time() + 120
  while time.time() < deadline and killed is None and proc.poll() is None:
    workers = [r for r in _children(proc.pid) if "sdk_worker_main" in r[2] and "/bin/sh" not in r[2]]
    if len(workers) == 2:
      time.sleep(delay_s)
      killed = int(workers[0][0])
      os.kill(killed, signal.SIGKILL)
    time.sleep(0.2)
  try:
    proc.wait(timeout=300)
  except subprocess.TimeoutExpired:
    proc.kill()
    raise AssertionError("prepare hung after its worker was killed") from None
  log.seek(0)
  output = log.read()
  assert killed is not None, output[-2000:]
  print(f"worker {killed} killed; exit {proc.returncode}")
  if proc.returncode == 2:
    assert "the Beam pipeline failed" in output and "nothing was published" in output
    assert "a Beam worker process died" in output or delay_s > 0, output[-3000:]
    assert not out.exists()
    assert not [p for p in os.listdir(tmp_path) if "staging" in p]
    return
  assert proc.returncode == 0, output[-3000:]
  windows = pq.read_table(out / "reports" / "windows.parquet").to_pandas()
  assert not windows.duplicated(["path", "start_s"]).any()
  assert len(windows) == len(read_records(str(out))) == 14 + 15 + 16


def test_full_storage_keeps_the_previous_dataset(tmp_path, write_wav, capsys):
  disk = tmp_path / "disk"
  if not mount_tmpfs(disk, "3m"):
    pytest.skip("needs root and mount to simulate a full disk")
  try:
    small = write_wav("in/small.wav", tone(300, 2.0, harmonics=2))
    out = disk / "ds"
    assert run_cli(["--input", small, "--output", str(out)]) == 0
    before = {name: (out / name).read_bytes() for name in os.listdir(out) if (out / name).is_file()}
    big = write_wav("in/big.wav", tone(300, 40.0, harmonics=2))  # ~37 windows, ~10 MB of records
    capsys.readouterr()
    assert run_cli(["--input", big, "--output", str(out)]) == 2
    err = capsys.readouterr().err
    assert "No space left on device" in err, err[-2000:]
    assert "nothing was published, the previous output is unchanged" in err
    after = {name: (out / name).read_bytes() for name in os.listdir(out) if (out / name).is_file()}
    assert after == before  # the last good dataset, untouched
    assert sorted(os.listdir(disk)) == ["ds"]  # no staging left behind
    assert np.frombuffer(before["dataset.json"], np.uint8).size > 0
  finally:
    # Lazy: a failed run may still hold a file open there for a moment.
    subprocess.run(["umount", "-l", str(disk)], check=False)

