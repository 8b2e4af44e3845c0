"""The same prepare run on three runner set-ups gives the same dataset.

- the DirectRunner in-process (the default);
- the DirectRunner with --direct_running_mode=multi_processing and 2 workers;
- the PortableRunner against Beam's local job service (LOOPBACK environment),
  the job-submission path of Flink and Spark.
"""

import os
import socket
import subprocess
import sys
import time

import numpy as np
import pyarrow.parquet as pq
import pytest

from tests.pipelines.test_prepare import read_records, run_cli


def _free_port():
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


@pytest.fixture
def job_service():
  port = _free_port()
  proc = subprocess.Popen(
      [sys.executable, "-m", "apache_beam.runners.portability.local_job_service_main",
       "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  deadline = time.time() + 60
  while time.time() < deadline:
    try:
      socket.create_connection(("127.0.0.1", port), timeout=1).close()
      break
    except OSError:
      time.sleep(0.3)
  else:
    proc.kill()
    pytest.fail("the local job service did not start")
  yield f"localhost:{port}"
  proc.terminate()
  proc.wait(timeout=30)


def _dataset(out):
  files = pq.read_table(os.path.join(out, "reports", "files.parquet")).to_pandas()
  errors = pq.read_table(os.path.join(out, "reports", "errors.parquet")).to_pandas()
  windows = pq.read_table(os.path.join(out, "reports", "windows.parquet")).to_pandas()
  return read_records(out), files.sort_values("path"), errors.sort_values("path"), windows


def test_runner_modes_agree(tmp_path, corpus, job_service):
  inputs = ["--input", os.path.join(corpus, "transfer", "trumpet_bb_march.wav"),
            "--input", os.path.join(corpus, "bad", "zero_bytes.wav"),
            "--input", os.path.join(corpus, "bad", "clip_30ms.wav")]
  modes = {
      "in_process": [],
      "multi_processing": ["--direct_running_mode=multi_processing", "--direct_num_workers=2"],
      "portable": ["--runner=PortableRunner", f"--job_endpoint={job_service}",
                   "--environment_type=LOOPBACK"],
  }
  results = {}
  for name, beam_args in modes.items():
    out = str(tmp_path / name)
    assert run_cli(inputs + ["--output", out] + beam_args) == 1, name  # one input fails
    results[name] = _dataset(out)
  ref_records, ref_files, ref_errors, ref_windows = results["in_process"]
  assert len(ref_records) == 8
  for name, (records, files, errors, windows) in results.items():
    assert records.keys() == ref_records.keys(), name
    for key, ex in records.items():
      for feature in ("audio", "f0_hz", "f0_confidence", "loudness_db"):
        np.testing.assert_allclose(ex[feature], ref_records[key][feature], rtol=1e-5,
                                   atol=1e-5, err_msg=f"{name} {key} {feature}")
    assert files["path"].tolist() == ref_files["path"].tolist()
    assert files["status"].tolist() == ref_files["status"].tolist()
    assert errors[["path", "error_type"]].values.tolist() == \
        ref_errors[["path", "error_type"]].values.tolist()
    assert len(windows) == len(ref_windows) == 8
