"""Explicit pyarrow schemas of the prepare pipeline's Parquet reports."""

import pyarrow as pa

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
