"""The corpus job's state store: `ddsp-beam status` next to a run that holds the lock."""

import os
import sqlite3

import pytest
import soundfile as sf

from jobs import corpus
from jobs import state as state_lib
from tests import racing
from tests.conftest import tone

ROUNDS = 4
CONFIG = """
output = "{out}"
[prepare]
crepe_model = "tiny"
[datasets.ds]
sources = ["{sources}"]
"""


def _run_or_status(round_, worker, barrier, base):
  """Worker 0 is a run holding the lock and writing the store; worker 1 asks for the status."""
  root, config = os.path.join(base, str(round_), "out"), os.path.join(base, str(round_), "c.toml")
  db = os.path.join(root, "state.sqlite")
  if worker == 0:
    run_paths = sorted(os.path.join(base, str(round_), "in", f"old_{i}.wav") for i in range(2))
    with state_lib.RunLock(root), state_lib.StateStore(db) as store:
      barrier.wait(racing.BARRIER_TIMEOUT_S)  # status starts while this run holds the lock
      for i in range(40):  # a transaction each
        hashes = store.hash_files(run_paths)
        store.update_inputs("dataset:ds", hashes, f"run-{round_}-{i}")
      barrier.wait(racing.BARRIER_TIMEOUT_S)
    return None
  barrier.wait(racing.BARRIER_TIMEOUT_S)
  try:
    return corpus.corpus_status(config)["datasets"]["ds"]
  finally:
    barrier.wait(racing.BARRIER_TIMEOUT_S)


def test_status_never_writes_the_store_of_a_running_run(tmp_path):
  for r in range(ROUNDS):
    base = tmp_path / str(r)
    for name in ("old_0", "old_1", "new_0", "new_1"):  # new_*: added while the run is running
      (base / "in").mkdir(parents=True, exist_ok=True)
      sf.write(str(base / "in" / f"{name}.wav"), tone(220.0 + 10 * r, 1.5), 16000)
    (base / "c.toml").write_text(CONFIG.format(out=base / "out", sources=base / "in" / "*.wav"),
                                 encoding="utf-8")
    (base / "out").mkdir()
    state_lib.StateStore(str(base / "out" / "state.sqlite")).close()  # a run happened before

  results = racing.race(_run_or_status, (str(tmp_path),), workers=2, rounds=ROUNDS)
  errors, failed_rounds = racing.failures(results)
  assert not errors, f"{len(failed_rounds)} of {ROUNDS} rounds failed:\n" + "\n".join(errors)
  written_by_status = {}
  for r in range(ROUNDS):
    status = results[r][1][1]
    assert (status["inputs"], status["pending"], status["processed"]) == (4, 4, 0)
    db = sqlite3.connect(str(tmp_path / str(r) / "out" / "state.sqlite"))
    hashed = sorted(os.path.basename(p) for (p,) in db.execute("SELECT path FROM file_hashes"))
    assert db.execute("SELECT count(*) FROM inputs").fetchone()[0] == 2
    db.close()
    if hashed != ["old_0.wav", "old_1.wav"]:  # the run's alone
      written_by_status[r] = hashed
  assert not written_by_status, (
      f"status wrote the store in {len(written_by_status)} of {ROUNDS} rounds: {written_by_status}")


def test_a_read_only_store_refuses_writes(tmp_path):
  path = str(tmp_path / "state.sqlite")
  state_lib.StateStore(path).close()
  sf.write(str(tmp_path / "a.wav"), tone(), 16000)
  with state_lib.StateStore(path, read_only=True) as store:
    assert store.hash_files([str(tmp_path / "a.wav")])[str(tmp_path / "a.wav")]
    assert store.last_runs() == []
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
      store.begin_run("r", "c.toml", "h")
  with state_lib.StateStore(path) as store:
    assert store.db.execute("SELECT count(*) FROM file_hashes").fetchone()[0] == 0
