"""Note detection from loudness and f0 confidence (magenta ddsp's definition).

A frame is "note on" when its confidence-weighted loudness, smoothed over
`smoothing` frames, rises above a threshold relative to the signal's mean
loudness. Used for the dataset statistics (note-on variants, loudness
quantiles) and for the timbre-transfer loudness adjustment.
"""

from typing import Optional

import numpy as np

from ddsp_core.loudness import DB_RANGE


def smooth(x: np.ndarray, window: int = 40) -> np.ndarray:
  """Box filter with zero padding, output aligned like TF's 'SAME' conv.

  Args:
    x: float array [n_frames].
    window: Width of the box in frames.

  Returns:
    float array [n_frames].
  """
  x = np.asarray(x, np.float64)
  kernel = np.ones(window) / window
  # 'SAME' places (window - 1) // 2 zeros before and window // 2 after.
  padded = np.pad(x, ((window - 1) // 2, window // 2))
  return np.convolve(padded, kernel, mode="valid")


def detect_notes(loudness_db: np.ndarray, f0_confidence: np.ndarray,
                 note_threshold: float = 1.0, exponent: float = 2.0,
                 smoothing: int = 40, f0_confidence_threshold: float = 0.7,
                 min_db: float = -DB_RANGE, mean_db: Optional[float] = None):
  """Note-on mask and how note-like each frame is.

  Args:
    loudness_db: float array [n_frames], dB.
    f0_confidence: float array [n_frames], 0-1.
    note_threshold: Ratio to the threshold above which a frame is a note
      (the Colab's "threshold" slider, default 1.0).
    exponent: Power applied to the confidence.
    smoothing: Box-filter width in frames.
    f0_confidence_threshold: Confidence of a frame at the threshold.
    min_db: Floor of the loudness scale.
    mean_db: Reference mean loudness; default the mean of `loudness_db`.
      Magenta's dataset statistics use the mean over the whole dataset.

  Returns:
    (mask_on, note_on_value): bool array [n_frames] and float array
    [n_frames] (the ratio to the threshold; >= note_threshold where on).
  """
  loudness_db = np.asarray(loudness_db, np.float64)
  if mean_db is None:
    mean_db = float(np.mean(loudness_db))
  db = smooth(np.asarray(f0_confidence, np.float64) ** exponent, smoothing) * (loudness_db - min_db)
  db_threshold = (mean_db - min_db) * f0_confidence_threshold ** exponent
  with np.errstate(divide="ignore", invalid="ignore"):
    note_on_ratio = np.nan_to_num(db / db_threshold)
  return note_on_ratio >= note_threshold, note_on_ratio
