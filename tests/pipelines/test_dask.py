"""The prepare pipeline on a Dask cluster (Beam's DaskRunner): the DirectRunner's dataset, also
when a worker process is killed mid-run."""

import glob
import json
import os
import signal
import threading
import time

import numpy as np
import pytest
import tensorflow as tf

from pipelines import runner
from tests.pipelines.test_prepare import read_records, read_reports, run_cli


def _inputs(corpus):
  files = [os.path.join(corpus, "train", "flute", f) for f in
           ("flute_bb_thirds.wav", "flute_ab_bends.wav", "flute_f_major_air.wav")]
  files += [os.path.join(corpus, "bad", "zero_bytes.wav"), os.path.join(corpus, "bad", "clip_30ms.wav")]
  return [a for f in files for a in ("--input", f)] + ["--eval_fraction", "0.34"]


def _dataset(out):
  tables = read_reports(out)
  with open(os.path.join(out, "dataset_statistics.json"), encoding="utf-8") as f:
    stats = json.load(f)
  records = {split: read_records(out, split) for split in ("train", "eval")}
  return records, tables, stats


def _n_records(out):
  """Records in all the shards of both splits (duplicates counted, unlike `read_records`)."""
  return sum(1 for path in glob.glob(os.path.join(out, "*.tfrecord-*"))
             for _ in tf.data.TFRecordDataset(path))


def _assert_same_dataset(a, b):
  (records_a, tables_a, stats_a), (records_b, tables_b, stats_b) = a, b
  for split in ("train", "eval"):
    assert records_a[split].keys() == records_b[split].keys(), split
    for key, ex in records_a[split].items():
      for feature in ("audio", "f0_hz", "f0_confidence", "loudness_db"):
        np.testing.assert_allclose(ex[feature], records_b[split][key][feature], atol=1e-5)
  assert tables_a == tables_b
  assert stats_a.keys() == stats_b.keys()
  for key, value in stats_a.items():
    if isinstance(value, float):
      assert value == stats_b[key] or np.isclose(value, stats_b[key], rtol=1e-6), key


@pytest.fixture(scope="module")
def direct(tmp_path_factory, corpus):
  """The DirectRunner's dataset of the same inputs, and its record count."""
  parent = tmp_path_factory.mktemp("direct")
  out = str(parent / "direct")
  assert run_cli(_inputs(corpus) + ["--output", out]) == 1  # one broken input
  assert os.listdir(parent) == ["direct"]  # no staging, cache or beam-temp left
  return _dataset(out), _n_records(out)


def test_prepare_on_dask_equals_the_direct_runner(tmp_path, corpus, dask_cluster, direct):
  assert run_cli(_inputs(corpus) + ["--output", str(tmp_path / "dask"), "--runner=dask",
                                    f"--dask_address={dask_cluster.scheduler_address}"]) == 1
  direct, _ = direct
  dask = _dataset(str(tmp_path / "dask"))
  assert len(direct[0]["train"]) + len(direct[0]["eval"]) == 14 + 15 + 16
  _assert_same_dataset(dask, direct)
  assert os.listdir(tmp_path) == ["dask"]  # no staging, cache or beam-temp left


def test_a_dask_worker_killed_mid_run(tmp_path, corpus, dask_cluster, direct):
  """The run completes with the DirectRunner's dataset (Dask runs the lost tasks again; the
  cache makes that harmless): the same records, features, statistics and reports."""
  import distributed  # pylint: disable=g-import-not-at-top
  cache = tmp_path / "cache"
  result = {}
  args = _inputs(corpus) + ["--output", str(tmp_path / "dask"), "--cache_dir", str(cache),
                            "--runner=dask", f"--dask_address={dask_cluster.scheduler_address}"]
  worker = threading.Thread(target=lambda: result.update(rc=run_cli(args)))
  worker.start()
  killed = None
  # No deadline: on a loaded machine the first chunk can take minutes; a run that ends before
  # a worker could be killed fails the test below.
  with distributed.Client(dask_cluster.scheduler_address) as client:
    while worker.is_alive() and killed is None:
      if list(cache.glob("*/*/*/chunk-*.npz")):  # the analysis is under way
        busy = [w for w, tasks in client.processing().items() if tasks]
        if busy:
          killed = client.run(os.getpid, workers=[busy[0]])[busy[0]]
          os.kill(killed, signal.SIGKILL)
      time.sleep(0.1)
  worker.join()
  assert killed is not None, "the run ended before a busy worker could be killed"
  print(f"worker process {killed} killed mid-run; exit {result['rc']}")
  assert result["rc"] == 1  # the run succeeded; 1 is the broken input, as on the DirectRunner
  direct_dataset, direct_records = direct
  assert _n_records(str(tmp_path / "dask")) == direct_records == 14 + 15 + 16
  _assert_same_dataset(_dataset(str(tmp_path / "dask")), direct_dataset)


def test_runner_flags():
  with runner.beam_session(["--runner=dask", "--dask_address", "tcp://h:8786", "--x=1"]) as args:
    assert args == ["--x=1", f"--runner={runner.DASK_RUNNER}", "--dask_client_address=tcp://h:8786",
                    "--dask_partition_size=1"]
  with runner.beam_session(["--runner=DirectRunner"]) as args:
    assert args == ["--runner=DirectRunner"]
  assert runner.is_dask(["--runner", "DaskRunner"]) and not runner.is_dask([])
