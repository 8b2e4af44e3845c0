"""The prepare pipeline's Parquet reports: explicit pyarrow schemas and how rows are made."""

import numpy as np
import pyarrow as pa

from ddsp_core import features as features_lib

FILES_SCHEMA = pa.schema([
    pa.field("path", pa.string(), nullable=False),
    pa.field("status", pa.string(), nullable=False),  # 'ok' or 'skipped'
    pa.field("reason", pa.string()),  # why skipped
    pa.field("sha256", pa.string(), nullable=False),
    pa.field("duration_s", pa.float64(), nullable=False),
    pa.field("sample_rate", pa.int32(), nullable=False),
    pa.field("channels", pa.int32(), nullable=False),
    pa.field("split", pa.string()),  # split of the recording (split_by=file)
    pa.field("windows_train", pa.int32(), nullable=False),
    pa.field("windows_eval", pa.int32(), nullable=False),
    pa.field("windows_dropped_silent", pa.int32(), nullable=False),
    pa.field("voiced_fraction", pa.float32()),
    pa.field("f0_median_hz", pa.float32()),
    pa.field("f0_min_hz", pa.float32()),
    pa.field("f0_max_hz", pa.float32()),
    pa.field("f0_median_midi", pa.float32()),
    pa.field("f0_min_midi", pa.float32()),
    pa.field("f0_max_midi", pa.float32()),
    pa.field("loudness_mean_db", pa.float32()),
    pa.field("loudness_max_db", pa.float32()),
    pa.field("silent_fraction", pa.float32()),
    pa.field("clipping_fraction", pa.float32()),
    pa.field("processing_s", pa.float64(), nullable=False),
])

WINDOWS_SCHEMA = pa.schema([
    pa.field("path", pa.string(), nullable=False),
    pa.field("start_s", pa.float64(), nullable=False),
    pa.field("split", pa.string(), nullable=False),
    pa.field("padded", pa.bool_(), nullable=False),
    pa.field("mean_confidence", pa.float32(), nullable=False),
    pa.field("voiced_fraction", pa.float32(), nullable=False),
    pa.field("loudness_mean_db", pa.float32(), nullable=False),
    pa.field("f0_median_hz", pa.float32(), nullable=False),
])

ERRORS_SCHEMA = pa.schema([
    pa.field("path", pa.string(), nullable=False),
    pa.field("stage", pa.string(), nullable=False),
    pa.field("error_type", pa.string(), nullable=False),
    pa.field("message", pa.string(), nullable=False),
])

# Per-frame thresholds used by the reports.
VOICED_CONFIDENCE = 0.5  # a frame is voiced when f0_confidence >= this
SILENT_DB = -70.0  # a frame is silent when loudness_db < this
CLIPPING_LEVEL = 0.999  # a sample clips when |x| >= this (full scale 1.0)


def error_row(path, stage, error):
  kind = getattr(error, "kind", type(error).__name__)
  message = str(error)
  if path not in message:
    message = f"{path}: {message}"
  return {"path": path, "stage": stage, "error_type": kind, "message": message}


def skipped_row(path, sha, info, reason, seconds):
  row = {name: None for name in FILES_SCHEMA.names}
  row.update(path=path, status="skipped", reason=reason, sha256=sha,
             duration_s=info.duration_s, sample_rate=info.sample_rate,
             channels=info.channels, windows_train=0, windows_eval=0,
             windows_dropped_silent=0, processing_s=seconds)
  return row


def file_row(element):
  """files.parquet row from a file's metadata and its chunk summaries."""
  path, grouped = element
  metas, chunks = list(grouped["meta"]), list(grouped["chunks"])
  meta = metas[0]
  f0 = (np.concatenate([c["voiced_f0"] for c in chunks]) if chunks else np.zeros(0))
  frames = sum(c["frames"] for c in chunks)
  samples = sum(c["samples"] for c in chunks)
  midi = features_lib.hz_to_midi(f0) if len(f0) else None
  loud_max = [c["loudness_max"] for c in chunks if c["loudness_max"] is not None]

  def stat(values, fn):
    return float(fn(values)) if values is not None and len(values) else None
  return {
      "path": path, "status": "ok", "reason": None, "sha256": meta["sha256"],
      "duration_s": meta["duration_s"], "sample_rate": meta["sample_rate"],
      "channels": meta["channels"], "split": meta["split"],
      "windows_train": sum(c["windows_train"] for c in chunks),
      "windows_eval": sum(c["windows_eval"] for c in chunks),
      "windows_dropped_silent": sum(c["dropped"] for c in chunks),
      "voiced_fraction": len(f0) / frames if frames else None,
      "f0_median_hz": stat(f0, np.median), "f0_min_hz": stat(f0, np.min),
      "f0_max_hz": stat(f0, np.max),
      "f0_median_midi": stat(midi, np.median), "f0_min_midi": stat(midi, np.min),
      "f0_max_midi": stat(midi, np.max),
      "loudness_mean_db": sum(c["loudness_sum"] for c in chunks) / frames if frames else None,
      "loudness_max_db": max(loud_max) if loud_max else None,
      "silent_fraction": sum(c["silent"] for c in chunks) / frames if frames else None,
      "clipping_fraction": sum(c["clipped"] for c in chunks) / samples if samples else None,
      "processing_s": meta["planning_s"] + sum(c["seconds"] for c in chunks),
  }
