"""Planning a recording for prepare: validate every sample, then cut it into chunk tasks.

`PlanChunks` reads a file once through (so no window of a broken file is ever
made), sends a broken or too-short one to the errors or files table (and, with
a cache, keeps that verdict by content), and yields one `ChunkTask` per chunk:
the time range it owns and the windows that start in it. The train/eval split
is a function of the file's content hash, so it never changes between runs.
"""

import dataclasses
import hashlib
import os
import time
from typing import Optional

import apache_beam as beam
import numpy as np
from apache_beam.metrics import Metrics

from ddsp_core import audio as audio_lib
from pipelines import examples as examples_lib
from pipelines import inputs
from pipelines import prepare_cache
from pipelines import reports
from pipelines import runner


@dataclasses.dataclass(frozen=True)
class ChunkTask:
  path: str
  sha256: str
  duration_s: float
  split: str
  chunk_index: int
  chunk_count: int
  start_s: float  # owned time range [start_s, end_s)
  end_s: float
  window_starts: tuple
  padded: bool
  signature: tuple = ()  # prepare_cache.file_signature when planned (local inputs)


def _fraction(key: str) -> float:
  """A stable number in [0, 1) from a string (for deterministic splits)."""
  return int(hashlib.sha256(key.encode("utf-8")).hexdigest()[:12], 16) / float(1 << 48)


def split_of(key: str, eval_fraction: float) -> str:
  return "eval" if _fraction(key) < eval_fraction else "train"


class PlanChunks(beam.DoFn):
  """Validates a file and cuts it into chunk tasks; bad files go to 'errors'.

  With a cache, a skipped or broken recording's outcome is kept there.
  """

  def __init__(self, config, cache: Optional[prepare_cache.PrepareCache] = None):
    super().__init__()
    self.config = config
    self.cache = cache
    self.files_read = Metrics.counter(runner.NAMESPACE, "files_read")
    self.files_failed = Metrics.counter(runner.NAMESPACE, "files_failed")
    self.files_skipped = Metrics.counter(runner.NAMESPACE, "files_skipped")

  def process(self, path):
    with inputs.local_copy(path) as local:
      yield from self._plan(path, local)

  def _plan(self, path, local):
    cfg = self.config
    start = time.time()
    sha = None
    planned = prepare_cache.planned_signature(path, local)  # before anything is read
    try:
      info = audio_lib.audio_info(local)  # first: it refuses FIFOs and folders, which hashing would not
      sha = prepare_cache.sha256_file(local)
      if info.duration_s < cfg.min_secs:
        prepare_cache.check_unchanged(path, local, sha, planned)
        self.files_skipped.inc()
        row = reports.skipped_row(path, sha, info, f"shorter than --min_secs={cfg.min_secs:g} s "
                           f"({info.duration_s:.3f} s)", time.time() - start)
        if self.cache:
          self.cache.write_outcome(sha, path, "file", row, chunks=0)
        yield beam.pvalue.TaggedOutput("files", row)
        return
      # Validate every sample now, so no window of a broken file is ever made.
      any_sound = False
      for t in range(0, int(np.ceil(info.duration_s)), cfg.chunk_secs):
        block = audio_lib.read_audio_range(local, t, cfg.chunk_secs, 16000, info)
        any_sound = any_sound or bool(np.any(block))
      prepare_cache.check_unchanged(path, local, sha, planned)  # before the silence verdict is kept
      if not any_sound:
        audio_lib.check_not_silent(path, np.zeros(1))
    except prepare_cache.ChangedWhilePrepared as e:  # not kept: its content is unknown
      self.files_failed.inc()
      yield beam.pvalue.TaggedOutput("errors", reports.error_row(path, "read", e))
      return
    except audio_lib.AudioDecodeError as e:
      self.files_failed.inc()
      e = audio_lib.AudioDecodeError(path, e.reason, e.kind)  # name the input, not a local copy
      row = reports.error_row(path, "decode", e)
      if self.cache and e.kind != "unreadable" and os.path.isfile(local):
        try:  # kept by content, so an unchanged broken file is not decoded again
          sha = sha or prepare_cache.sha256_file(local)
          prepare_cache.check_unchanged(path, local, sha, planned)  # after the hash: both of one content
          self.cache.write_outcome(sha, path, "error", row)
        except OSError:
          pass
        except prepare_cache.ChangedWhilePrepared as changed:  # the verdict may be of another
          row = reports.error_row(path, "read", changed)
      yield beam.pvalue.TaggedOutput("errors", row)
      return
    except OSError as e:  # not kept: a read failure may pass
      self.files_failed.inc()
      yield beam.pvalue.TaggedOutput("errors", reports.error_row(path, "read", e))
      return
    self.files_read.inc()
    starts, padded = examples_lib.window_starts(info.duration_s, cfg.window, cfg.min_secs)
    split = split_of(sha, cfg.eval_fraction)
    # A tail shorter than a quarter chunk joins the last chunk (a task of its
    # own would mostly decode context).
    chunk_count = max(1, int(np.ceil(info.duration_s / cfg.chunk_secs - 0.25)))
    for c in range(chunk_count):
      lo = c * cfg.chunk_secs
      hi = info.duration_s if c == chunk_count - 1 else (c + 1) * cfg.chunk_secs
      mine = tuple(s for s in starts if lo <= s < hi or (c == chunk_count - 1 and s >= hi))
      yield ChunkTask(path=path, sha256=sha, duration_s=info.duration_s, split=split,
                      chunk_index=c, chunk_count=chunk_count, start_s=float(lo),
                      end_s=float(hi), window_starts=mine, padded=padded, signature=planned)
    yield beam.pvalue.TaggedOutput("file_meta", (path, {
        "sha256": sha, "duration_s": info.duration_s, "sample_rate": info.sample_rate,
        "channels": info.channels, "split": split, "planning_s": time.time() - start}))
