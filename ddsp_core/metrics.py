"""magenta ddsp's F0 and loudness metrics of generated audio against its features.

Per example: loudness L1 (dB) over all frames; f0 L1 (MIDI) over frames whose
ground-truth confidence is >= 0.85. An example whose ground truth never
reaches that confidence is discarded from the f0 metrics; one whose f0 error
exceeds 12 semitones (or that has no trackable pitch) counts as an outlier.
"""

from typing import Dict, Iterable

import numpy as np

from ddsp_core.features import hz_to_midi

MIN_F0_CONFIDENCE = 0.85
OUTLIER_MIDI_THRESH = 12.0  # semitones, as magenta


def f0_l1_midi(f0_hz, f0_hz_gen, f0_confidence, threshold=MIN_F0_CONFIDENCE):
  """Mean |MIDI difference| over confident ground-truth frames; None if there are none."""
  keep = np.asarray(f0_confidence) >= threshold
  if not keep.any():
    return None
  n = min(len(f0_hz), len(f0_hz_gen))
  diff = np.abs(hz_to_midi(f0_hz[:n]) - hz_to_midi(f0_hz_gen[:n]))
  return float(np.mean(diff[keep[:n]]))


def example_metrics(truth: Dict[str, np.ndarray], generated: Dict[str, np.ndarray]) -> dict:
  """Metrics of one example: truth and generated hold f0_hz, f0_confidence, loudness_db."""
  n = min(len(truth["loudness_db"]), len(generated["loudness_db"]))
  out = {"loudness_l1_db": float(np.mean(np.abs(truth["loudness_db"][:n] -
                                                generated["loudness_db"][:n]))),
         "f0_l1_midi": None, "f0_outlier": None}
  if np.max(truth["f0_confidence"]) >= MIN_F0_CONFIDENCE:
    dist = f0_l1_midi(truth["f0_hz"], generated["f0_hz"], truth["f0_confidence"])
    out["f0_outlier"] = dist is None or dist > OUTLIER_MIDI_THRESH
    if not out["f0_outlier"]:
      out["f0_l1_midi"] = dist
  return out


def summarize(rows: Iterable[dict]) -> dict:
  """Means over examples: loudness_l1_db, f0_l1_midi (non-outliers), outlier_ratio."""
  rows = list(rows)
  loud = [r["loudness_l1_db"] for r in rows]
  f0 = [r["f0_l1_midi"] for r in rows if r["f0_l1_midi"] is not None]
  outliers = [r["f0_outlier"] for r in rows if r["f0_outlier"] is not None]
  return {"examples": len(rows),
          "loudness_l1_db": float(np.mean(loud)) if loud else None,
          "f0_l1_midi": float(np.mean(f0)) if f0 else None,
          "outlier_ratio": float(np.mean(outliers)) if outliers else None}
