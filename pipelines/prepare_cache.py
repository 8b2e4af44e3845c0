"""Per-recording prepare results kept by content, so no recording is analysed twice.

The prepare pipeline can keep what it computes for each recording in a cache
keyed by the recording's content (sha256) and by the settings that shape the
windows. A later run replays a complete entry instead of decoding the file and
running CREPE again; only the dataset-wide steps (shards, statistics, reports)
run over everything. Layout:

    <cache>/<settings key>/<sha[:2]>/<sha>/
        chunk-00000.tfrecord   the chunk's windows (serialized tf.train.Examples)
        chunk-00000.npz        their splits and windows.parquet rows (JSON) and statistics inputs;
                               the chunk's plan, files.parquet summary and the digest of the
                               samples it was computed from (to be reused by a resumed run)
        file.json              the files.parquet row; written last: the entry is complete
      or error.json            the errors.parquet row of a recording that cannot be used
        plan.json              its chunks, when planning and computing are separate passes (Dask)

Every file is written under a temporary name and renamed, so a killed run
leaves complete pieces or none; an entry counts only once `file.json` or
`error.json` exists. The content is the same whatever the file is called: a
renamed or copied recording is replayed under its new path. The chunks of an
entry that is not complete are reused one by one (`read_chunk`): a prepare
killed after an hour of CREPE resumes from the chunks it finished, not from
the start. A chunk is reused only for a task of the same plan whose freshly
decoded samples have the kept digest, and the entry is completed only after
the whole file is hashed again, as below.

A recording is read again by path after it was hashed (to validate it, then
once per chunk), so each read is checked against what was planned: a local
file by its `file_signature` (any write or replacement changes it), a remote
input's fresh copy by its hash, and the whole file is hashed again before its
entry is completed. A recording that changed is reported
(`ChangedWhilePrepared`) and nothing of it is kept under the planned hash.
"""

import dataclasses
import glob
import hashlib
import json
import os
import tempfile
from typing import Dict, List, Optional, Sequence, Tuple

import apache_beam as beam
import numpy as np
from apache_beam.metrics import Metrics

from ddsp_core.version import __version__
from pipelines import inputs
from pipelines.runner import NAMESPACE

STATS_KEYS = ("pitch", "loudness", "confidence", "power")
# Fields of PrepareConfig that do not change what is computed per recording.
_NOT_PER_FILE = ("progress", "write_magenta_pickle")


def settings_key(config) -> str:
  """A short hash of the settings that change a recording's windows (and the version)."""
  settings = {k: v for k, v in dataclasses.asdict(config).items() if k not in _NOT_PER_FILE}
  settings["ddsp_beam_version"] = __version__
  text = json.dumps(settings, sort_keys=True, default=str)
  return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def sha256_file(path: str) -> str:
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      digest.update(block)
  return digest.hexdigest()


def file_signature(path: str) -> Tuple[int, int, int, int]:
  """(size, mtime_ns, ctime_ns, inode) of a file: a write or a replacement changes it.

  The kernel sets ctime on every write (no tool can set it back); the device
  is left out because it differs between clients of one network file system.
  """
  st = os.stat(path)
  return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)


class ChangedWhilePrepared(Exception):
  """A recording's content is not the one it was planned (hashed) with."""
  kind = "changed"

  def __init__(self, path: str):
    super().__init__(f"{path}: changed while being prepared (its content is not the one hashed "
                     "when it was planned); nothing of it was kept, run again once it is stable")


def read_as_planned(path: str, local: str, sha: str, signature: Sequence[int]) -> bool:
  """Whether what was just read from `local` (the copy of input `path`) is the planned content.

  A local input is compared by `file_signature` (cheap, once per chunk); a
  remote input's copy is fetched whole for each task, so hashing it costs no
  more than the fetch.
  """
  try:
    if inputs.is_local(path):
      return file_signature(local) == tuple(signature)
    return sha256_file(local) == sha
  except OSError:  # removed or made unreadable: not what was planned either
    return False


def planned_signature(path: str, local: str) -> Optional[tuple]:
  """`file_signature` of input `path` before planning reads it; () for a remote input's copy
  (private to the task), None when it cannot be read."""
  try:
    return file_signature(local) if inputs.is_local(path) else ()
  except OSError:
    return None


def check_unchanged(path: str, local: str, sha: str, planned: Optional[tuple]) -> None:
  """Raises `ChangedWhilePrepared` unless input `path` is as when planning began."""
  if planned is None or (inputs.is_local(path) and not read_as_planned(path, local, sha, planned)):
    raise ChangedWhilePrepared(path)


def assembled_as_planned(path: str, sha: str, chunks: Sequence[dict]) -> bool:
  """Whether every chunk read the planned content and a local `path` still hashes to `sha`.

  The hash, once per file, catches a change that left the signature as it was
  (a write within the file system's timestamp granularity); remote inputs'
  copies were hashed per chunk.
  """
  if any(c.get("changed") for c in chunks):
    return False
  if not inputs.is_local(path):
    return True
  try:
    return sha256_file(path) == sha
  except OSError:
    return False


def _write_atomic(path: str, write) -> None:
  """Calls write(tmp_path), then renames tmp over `path`."""
  fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=os.path.dirname(path))
  os.close(fd)
  try:
    write(tmp)
    os.replace(tmp, path)
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)


def _write_json(path: str, value) -> None:
  def write(tmp):
    with open(tmp, "w", encoding="utf-8") as f:
      json.dump(value, f)
  _write_atomic(path, write)


@dataclasses.dataclass(frozen=True)
class PrepareCache:
  """One settings key's part of a prepare cache (picklable: workers write to it)."""
  root: str
  key: str

  @classmethod
  def for_config(cls, cache_dir: str, config) -> "PrepareCache":
    return cls(os.path.abspath(cache_dir), settings_key(config))

  def entry(self, sha: str) -> str:
    return os.path.join(self.root, self.key, sha[:2], sha)

  def complete(self, sha: str) -> bool:
    """Whether the entry can be replayed: an error, or a file row with all its chunks."""
    entry = self.entry(sha)
    if os.path.exists(os.path.join(entry, "error.json")):
      return True
    try:
      with open(os.path.join(entry, "file.json"), encoding="utf-8") as f:
        chunks = json.load(f)["chunks"]
    except (OSError, ValueError, KeyError):
      return False
    return chunks is None or len(self.read_chunks(sha)) == chunks

  def write_chunk(self, sha: str, index: int, path: str, records: Sequence[Tuple[str, bytes]],
                  windows: Sequence[dict], stats: Sequence[Dict[str, np.ndarray]],
                  plan: Optional[dict] = None, summary: Optional[dict] = None,
                  audio_digest: Optional[str] = None) -> None:
    """Keeps one chunk's windows: records (split, serialized example), report rows, stats inputs.

    With `plan` (the chunk's place in its file), `summary` (its files.parquet
    part) and `audio_digest` (of the samples it was computed from), `read_chunk`
    can hand the chunk back to a later run.
    """
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    entry = self.entry(sha)
    os.makedirs(entry, exist_ok=True)
    stem = os.path.join(entry, f"chunk-{index:05d}")

    def write_records(tmp):
      with tf.io.TFRecordWriter(tmp) as writer:
        for _, record in records:
          writer.write(record)
    _write_atomic(stem + ".tfrecord", write_records)
    meta = {"path": path, "splits": [s for s, _ in records], "windows": list(windows)}
    if plan is not None and summary is not None and audio_digest:
      meta["plan"] = plan
      meta["audio_digest"] = audio_digest
      meta["summary"] = {k: v for k, v in summary.items() if k != "voiced_f0"}
    arrays = {"meta": np.array(json.dumps(meta))}
    if "summary" in meta:
      arrays["voiced_f0"] = np.asarray(summary["voiced_f0"], np.float32)
    for key in STATS_KEYS:
      parts = [np.asarray(s[key], np.float64) for s in stats]
      arrays[key] = np.concatenate(parts) if parts else np.zeros(0)
      arrays[key + "_len"] = np.array([len(p) for p in parts], np.int64)

    def write_arrays(tmp):
      with open(tmp, "wb") as f:
        np.savez(f, **arrays)
    _write_atomic(stem + ".npz", write_arrays)  # last: the chunk is complete

  def write_outcome(self, sha: str, path: str, kind: str, row: dict,
                    chunks: Optional[int] = None) -> None:
    """Marks an entry complete: kind 'file' (a files.parquet row) or 'error'."""
    entry = self.entry(sha)
    os.makedirs(entry, exist_ok=True)
    _write_json(os.path.join(entry, f"{kind}.json"), {"path": path, "row": row, "chunks": chunks})

  def write_plan(self, sha: str, path: str, meta: dict, tasks: Sequence[dict]) -> None:
    """The chunk plan of a valid recording (for runners that plan and compute in two passes)."""
    entry = self.entry(sha)
    os.makedirs(entry, exist_ok=True)
    _write_json(os.path.join(entry, "plan.json"), {"path": path, "meta": meta, "tasks": list(tasks)})

  def read_plan(self, sha: str) -> Optional[dict]:
    try:
      with open(os.path.join(self.entry(sha), "plan.json"), encoding="utf-8") as f:
        return json.load(f)
    except (OSError, ValueError):
      return None

  def read_chunk(self, sha: str, index: int, plan: dict, audio_digest: str, path: str):
    """A kept chunk computed with the same `plan` from samples of `audio_digest`, or None.

    Returns (records, windows, stats, summary) as `write_chunk` was given them,
    its windows named as input `path`; None for a chunk that is missing,
    unreadable or inconsistent, of another plan or other samples, or kept
    without its summary (by an older version): such a chunk is computed again.
    """
    npz = os.path.join(self.entry(sha), f"chunk-{index:05d}.npz")
    try:
      if not _reusable(_chunk_meta(npz), plan, audio_digest):  # before the records are read
        return None
      meta, records, windows, stats, voiced_f0 = _load_chunk(npz, path)
    except Exception:  # pylint: disable=broad-except
      # Whatever a torn or foreign file raises (EOFError, BadZipFile, DataLossError, a
      # length mismatch, ...): the chunk is computed again and rewritten.
      return None
    return records, windows, stats, dict(meta["summary"], voiced_f0=voiced_f0)

  def kept_chunks(self, sha: str, plans: Sequence[dict]) -> int:
    """How many of `plans` (chunk 0, 1, ...) have a kept chunk of that plan (digests unchecked)."""
    count = 0
    for index, plan in enumerate(plans):
      try:
        count += _reusable(_chunk_meta(os.path.join(self.entry(sha), f"chunk-{index:05d}.npz")),
                           plan)
      except Exception:  # pylint: disable=broad-except
        pass
    return count

  def read_chunks(self, sha: str) -> List[str]:
    return sorted(glob.glob(os.path.join(self.entry(sha), "chunk-*.npz")))

  def discard_chunks(self, sha: str) -> None:
    """Removes an entry's chunks (of a recording that changed while they were computed).

    Files, not the folder: another input of the same content may be writing
    there, and an entry short of chunks is computed again (`complete`).
    """
    names = glob.glob(os.path.join(self.entry(sha), "chunk-*"))
    for name in sorted(names, key=lambda n: not n.endswith(".npz")):  # markers first
      try:
        os.remove(name)
      except FileNotFoundError:
        pass


def _reusable(meta: dict, plan: dict, audio_digest: Optional[str] = None) -> bool:
  """Whether a kept chunk's meta was written for `plan` (and samples of `audio_digest`, when
  given) with what a resumed run needs."""
  return (meta.get("plan") == json.loads(json.dumps(plan)) and "summary" in meta
          and bool(meta.get("audio_digest"))
          and (audio_digest is None or meta["audio_digest"] == audio_digest))


def _chunk_meta(npz: str) -> dict:
  with np.load(npz, allow_pickle=False) as arrays:
    return json.loads(str(arrays["meta"]))


def _load_chunk(npz: str, path: str):
  """A kept chunk as input `path`: (meta, [(split, record)], window rows, stats inputs,
  voiced_f0 or None). Raises when its parts disagree in length."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  with np.load(npz, allow_pickle=False) as arrays:
    meta = json.loads(str(arrays["meta"]))
    n = len(meta["splits"])
    if len(meta["windows"]) != n or any(len(arrays[k + "_len"]) != n for k in STATS_KEYS):
      raise ValueError(f"{npz}: its windows, splits and statistics differ in number")
    stats = {k: np.split(arrays[k], np.cumsum(arrays[k + "_len"])[:-1]) for k in STATS_KEYS}
    voiced_f0 = arrays["voiced_f0"] if "voiced_f0" in arrays else None
  records = list(tf.data.TFRecordDataset(npz[:-4] + ".tfrecord").as_numpy_iterator())
  if meta["path"] != path:  # the same content under another name
    records = [_renamed_example(r, path) for r in records]
  return (meta, list(zip(meta["splits"], records, strict=True)),
          [dict(w, path=path) for w in meta["windows"]],
          [{k: stats[k][i] for k in STATS_KEYS} for i in range(n)], voiced_f0)


def _renamed_example(record: bytes, path: str) -> bytes:
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  example = tf.train.Example.FromString(record)
  feature = example.features.feature["source_path"]
  del feature.bytes_list.value[:]
  feature.bytes_list.value.append(path.encode("utf-8"))
  return example.SerializeToString()


class ReplayCachedFiles(beam.DoFn):
  """(path, sha) of a complete cache entry -> the outputs the pipeline would compute.

  Main output: (split, serialized example); tagged: 'windows', 'stats',
  'files', 'errors' (the same elements as the computing path).
  """

  def __init__(self, cache: PrepareCache):
    super().__init__()
    self.cache = cache
    self.files_cached = Metrics.counter(NAMESPACE, "files_cached")
    self.windows = {s: Metrics.counter(NAMESPACE, f"windows_{s}") for s in ("train", "eval")}

  def process(self, element):
    path, sha = element
    entry = self.cache.entry(sha)
    self.files_cached.inc()
    error = os.path.join(entry, "error.json")
    if os.path.exists(error):
      with open(error, encoding="utf-8") as f:
        kept = json.load(f)
      row = dict(kept["row"], path=path, message=kept["row"]["message"].replace(kept["path"], path))
      yield beam.pvalue.TaggedOutput("errors", row)
      return
    with open(os.path.join(entry, "file.json"), encoding="utf-8") as f:
      kept = json.load(f)
    chunks = self.cache.read_chunks(sha)
    if kept["chunks"] is not None and len(chunks) != kept["chunks"]:
      raise RuntimeError(f"prepare cache entry {entry} is incomplete "
                         f"({len(chunks)} of {kept['chunks']} chunks); delete it")
    for npz in chunks:
      _, records, windows, stats, _ = _load_chunk(npz, path)
      for record, row, stats_input in zip(records, windows, stats, strict=True):
        self.windows[record[0]].inc()
        yield record
        yield beam.pvalue.TaggedOutput("windows", row)
        yield beam.pvalue.TaggedOutput("stats", stats_input)
    yield beam.pvalue.TaggedOutput("files", dict(kept["row"], path=path))


def content_hashes(paths: Sequence[str], hashes: Optional[Dict[str, str]] = None):
  """path -> sha256 for local regular files (from `hashes` when known), else None.

  Files that cannot be read are left to the pipeline to report.
  """
  out = {}
  for path in paths:
    sha = (hashes or {}).get(path)
    if sha is None and inputs.is_local(path) and os.path.isfile(path):
      try:
        sha = sha256_file(path)
      except OSError:
        sha = None
    out[path] = sha
  return out


def split_cached(paths: Sequence[str], cache: "PrepareCache",
                 hashes: Optional[Dict[str, str]] = None):
  """(paths to compute, [(path, sha) to replay]): a path is replayed when its entry is complete."""
  compute, replay = [], []
  for path, sha in content_hashes(paths, hashes).items():
    if sha and cache.complete(sha):
      replay.append((path, sha))
    else:
      compute.append(path)
  return compute, replay
