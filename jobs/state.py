"""The corpus job's state store (SQLite under the output root) and its run lock.

`<output>/state.sqlite` records every run (id, times, status, exit code, stage
timings and counters), every input seen by each dataset or the transfer (path,
content hash, the hash of the settings that touched it, first and last run,
the run that noticed it was removed), the
content hash of each file by (size, mtime) so unchanged files are not read
again, and each model's training target. The work itself (windows, transfer
outputs) lives in content-addressed caches beside it; the store is
bookkeeping, and every change to it is one SQLite transaction.

Only the run holding the lock writes the store: `ddsp-beam status` opens it
read-only (`read_only=True`, SQLite's `query_only`), so what it hashes is
not stored, and a run in progress is never raced by it.

`RunLock` is an exclusive lock on `<output>/run.lock` (`fasteners`, a POSIX
file lock that the kernel releases when its process dies, so a dead run never
blocks the next one). A run still marked 'running' in the store while nobody
holds the lock died without finishing: `mark_unfinished_runs` reports it.
"""

import json
import os
import socket
import sqlite3
import time
from typing import Dict, Iterable, List, Optional

import fasteners

from pipelines import prepare_cache

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
  run_id TEXT PRIMARY KEY, started REAL NOT NULL, finished REAL, status TEXT NOT NULL,
  exit_code INTEGER, pid INTEGER, host TEXT, config_path TEXT, config_hash TEXT, summary TEXT);
CREATE TABLE IF NOT EXISTS stages (
  run_id TEXT NOT NULL, stage TEXT NOT NULL, status TEXT NOT NULL, started REAL,
  seconds REAL, counters TEXT, message TEXT, PRIMARY KEY (run_id, stage));
CREATE TABLE IF NOT EXISTS file_hashes (
  path TEXT PRIMARY KEY, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, sha256 TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS inputs (
  scope TEXT NOT NULL, path TEXT NOT NULL, sha256 TEXT, settings TEXT, first_run TEXT,
  last_run TEXT, changed_run TEXT, removed_run TEXT, PRIMARY KEY (scope, path));
CREATE TABLE IF NOT EXISTS models (
  name TEXT PRIMARY KEY, settings_hash TEXT, dataset_fingerprint TEXT, updates INTEGER,
  target_steps INTEGER, step INTEGER, fingerprint TEXT, run_id TEXT);
"""


class LockedError(RuntimeError):
  """Another run holds the output root."""


class RunLock:
  """Exclusive lock on an output root; `LockedError` names the holder when taken."""

  def __init__(self, root: str):
    self.root = root
    self.path = os.path.join(root, "run.lock")
    self.lock = fasteners.InterProcessLock(self.path)

  def __enter__(self):
    os.makedirs(self.root, exist_ok=True)
    if not self.lock.acquire(blocking=False):
      holder = ""
      try:
        with StateStore(os.path.join(self.root, "state.sqlite"), read_only=True) as store:
          running = store.running_runs()
        if running:
          r = running[-1]
          holder = (f" (run {r['run_id']}, pid {r['pid']} on {r['host']}, started "
                    f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(r['started']))})")
      except sqlite3.Error:
        pass
      raise LockedError(f"{self.root}: another run is in progress{holder}; "
                        "two runs never share an output root")
    return self

  def __exit__(self, *exc):
    self.lock.release()


class StateStore:
  """SQLite bookkeeping of the corpus job (see the module docstring)."""

  def __init__(self, path: str, read_only: bool = False):
    self.path = path
    self.read_only = read_only
    self.db = sqlite3.connect(path, timeout=60)
    self.db.row_factory = sqlite3.Row
    if read_only:  # a write raises; a hot journal of a killed run is still rolled back
      self.db.execute("PRAGMA query_only = ON")
    else:
      with self.db:
        self.db.executescript(SCHEMA)

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    self.close()

  def close(self):
    self.db.close()

  # Runs and stages.
  def begin_run(self, run_id: str, config_path: str, config_hash: str) -> None:
    with self.db:
      self.db.execute("INSERT INTO runs (run_id, started, status, pid, host, config_path, "
                      "config_hash) VALUES (?, ?, 'running', ?, ?, ?, ?)",
                      (run_id, time.time(), os.getpid(), socket.gethostname(), config_path,
                       config_hash))

  def end_run(self, run_id: str, status: str, exit_code: int, summary: dict) -> None:
    with self.db:
      self.db.execute("UPDATE runs SET finished = ?, status = ?, exit_code = ?, summary = ? "
                      "WHERE run_id = ?",
                      (time.time(), status, exit_code, json.dumps(summary), run_id))

  def running_runs(self) -> List[dict]:
    return [dict(r) for r in self.db.execute(
        "SELECT * FROM runs WHERE status = 'running' ORDER BY started")]

  def mark_unfinished_runs(self) -> List[dict]:
    """Runs left 'running' by a process that died (call while holding the lock)."""
    stale = self.running_runs()
    with self.db:
      for r in stale:
        self.db.execute("UPDATE runs SET status = 'died', exit_code = NULL WHERE run_id = ?",
                        (r["run_id"],))
    return stale

  def record_stage(self, run_id: str, stage: str, status: str, started: float, seconds: float,
                   counters: dict, message: Optional[str] = None) -> None:
    with self.db:
      self.db.execute("INSERT OR REPLACE INTO stages VALUES (?, ?, ?, ?, ?, ?, ?)",
                      (run_id, stage, status, started, seconds, json.dumps(counters), message))

  def stages(self, run_id: str) -> List[dict]:
    rows = self.db.execute("SELECT * FROM stages WHERE run_id = ? ORDER BY started", (run_id,))
    return [dict(r, counters=json.loads(r["counters"] or "{}")) for r in rows]

  def last_runs(self, n: int = 10) -> List[dict]:
    rows = self.db.execute("SELECT * FROM runs ORDER BY started DESC LIMIT ?", (n,))
    return [dict(r, summary=json.loads(r["summary"]) if r["summary"] else {}) for r in rows]

  # Content hashes.
  def hash_files(self, paths: Iterable[str]) -> Dict[str, Optional[str]]:
    """sha256 of each local file, reusing the stored hash while size and mtime are unchanged.

    Remote paths and files that cannot be read map to None (the pipelines
    report them). A read-only store hashes without storing.
    """
    out = {}
    for path in paths:
      out[path] = None
      if "://" in path:
        continue
      try:
        st = os.stat(path)
      except OSError:
        continue
      row = self.db.execute("SELECT size, mtime_ns, sha256 FROM file_hashes WHERE path = ?",
                            (path,)).fetchone()
      if row and row["size"] == st.st_size and row["mtime_ns"] == st.st_mtime_ns:
        out[path] = row["sha256"]
        continue
      try:
        sha = prepare_cache.sha256_file(path)
      except OSError:
        continue
      if not self.read_only:
        with self.db:
          self.db.execute("INSERT OR REPLACE INTO file_hashes VALUES (?, ?, ?, ?)",
                          (path, st.st_size, st.st_mtime_ns, sha))
      out[path] = sha
    return out

  # Inputs.
  def update_inputs(self, scope: str, hashes: Dict[str, Optional[str]], run_id: str,
                    settings: str = "") -> dict:
    """Records the inputs of `scope` seen in this run, each with the content hash and the hash of
    the settings that touched it; returns new, changed, unchanged, removed (by content)."""
    known = {r["path"]: dict(r) for r in self.db.execute(
        "SELECT * FROM inputs WHERE scope = ?", (scope,))}
    changes = {"new": [], "changed": [], "unchanged": [], "removed": []}
    with self.db:
      for path, sha in sorted(hashes.items()):
        old = known.get(path)
        if old is None or old["removed_run"]:
          changes["new"].append(path)
          self.db.execute("INSERT OR REPLACE INTO inputs VALUES (?, ?, ?, ?, ?, ?, ?, NULL)",
                          (scope, path, sha, settings, run_id, run_id, run_id))
          continue
        kind = "unchanged" if old["sha256"] == sha and sha is not None else "changed"
        changes[kind].append(path)
        self.db.execute("UPDATE inputs SET sha256 = ?, settings = ?, last_run = ?, changed_run = ? "
                        "WHERE scope = ? AND path = ?",
                        (sha, settings, run_id, run_id if kind == "changed" else old["changed_run"],
                         scope, path))
      for path, old in known.items():
        if path not in hashes and not old["removed_run"]:
          changes["removed"].append(path)
          self.db.execute("UPDATE inputs SET removed_run = ? WHERE scope = ? AND path = ?",
                          (run_id, scope, path))
    return changes

  def inputs(self, scope: str) -> List[dict]:
    return [dict(r) for r in self.db.execute(
        "SELECT * FROM inputs WHERE scope = ? ORDER BY path", (scope,))]

  # Models.
  def model(self, name: str) -> Optional[dict]:
    row = self.db.execute("SELECT * FROM models WHERE name = ?", (name,)).fetchone()
    return dict(row) if row else None

  def save_model(self, name: str, **fields) -> None:
    row = self.model(name) or {"name": name}
    row.update(fields)
    columns = ("name", "settings_hash", "dataset_fingerprint", "updates", "target_steps", "step",
               "fingerprint", "run_id")
    with self.db:
      self.db.execute(f"INSERT OR REPLACE INTO models ({', '.join(columns)}) VALUES "
                      f"({', '.join('?' * len(columns))})", [row.get(c) for c in columns])
