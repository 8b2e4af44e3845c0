"""Dataset statistics computed inside the pipeline with Beam combiners.

For pitch (MIDI), loudness (dB) and power (dB), over all frames and over
note-on frames (`<name>_note`): mean, std, min, max, and the mean over windows
of each window's max and min, under magenta ddsp's key names (`mean_pitch`,
`std_loudness_note`, `mean_max_power`, ...). Plus a table of approximate
loudness quantiles of note-on frames (`ApproximateQuantiles`, 1001 points by
default) for quantile loudness matching at transfer time.

As in magenta's `compute_dataset_statistics`, note detection compares each
frame against the mean loudness of the whole dataset (a first combiner,
passed to the second stage as a side input), and a window with no note-on
frame counts all its frames as on. Unlike magenta, no frames are trimmed from
the end of each window (magenta drops 20), and end padding of short files is
left out.
"""

from typing import Dict

import apache_beam as beam
import numpy as np

from ddsp_core import features as features_lib
from ddsp_core import loudness as loudness_lib
from ddsp_core import notes

STAT_NAMES = ("pitch", "loudness", "power")
POWER_FRAME_RATE = 50
POWER_FRAME_SIZE = 1024
NUM_QUANTILES = 1001
# Accumulator fields: count, sum, sum of squares, min, max, sum of window
# maxima, sum of window minima, windows.
_N_FIELDS = 8


def window_statistics_inputs(f0_hz, f0_confidence, loudness_db, audio_16k) -> Dict[str, np.ndarray]:
  """Per-window arrays the statistics need (pass only real frames, not padding)."""
  return {"pitch": features_lib.hz_to_midi(f0_hz),
          "loudness": np.asarray(loudness_db, np.float64),
          "confidence": np.asarray(f0_confidence, np.float64),
          "power": loudness_lib.compute_power(audio_16k, 16000, POWER_FRAME_RATE,
                                              POWER_FRAME_SIZE).astype(np.float64)}


def apply_note_mask(values: Dict[str, np.ndarray], mean_db: float) -> Dict[str, np.ndarray]:
  """Adds the note-on variants, with the dataset's mean loudness as reference."""
  mask, _ = notes.detect_notes(values["loudness"], values["confidence"], mean_db=mean_db)
  if not mask.any():
    mask = np.ones_like(mask)
  power = values["power"]
  # The mask at the power frame rate: the nearest loudness frame.
  idx = np.minimum((np.arange(len(power)) * len(mask) / max(len(power), 1)).astype(int),
                   len(mask) - 1)
  return {"pitch": values["pitch"], "loudness": values["loudness"], "power": power,
          "pitch_note": values["pitch"][mask], "loudness_note": values["loudness"][mask],
          "power_note": power[mask[idx]]}


class MeanCombineFn(beam.CombineFn):
  """Mean of all values of one key over all windows."""

  def __init__(self, key):
    super().__init__()
    self.key = key

  def create_accumulator(self):
    return (0.0, 0)

  def add_input(self, acc, values):
    x = values[self.key]
    return acc[0] + float(np.sum(x)), acc[1] + len(x)

  def merge_accumulators(self, accumulators):
    total, count = 0.0, 0
    for t, c in accumulators:
      total, count = total + t, count + c
    return total, count

  def extract_output(self, acc):
    return acc[0] / acc[1] if acc[1] else 0.0


class MomentsCombineFn(beam.CombineFn):
  """Combines per-window value arrays into magenta-style summary statistics."""

  NAMES = STAT_NAMES + tuple(f"{n}_note" for n in STAT_NAMES)

  def create_accumulator(self):
    acc = np.zeros((len(self.NAMES), _N_FIELDS))
    acc[:, 3], acc[:, 4] = np.inf, -np.inf
    return acc

  def add_input(self, acc, values):
    for i, name in enumerate(self.NAMES):
      x = values[name]
      if len(x) == 0:
        continue
      lo, hi = float(np.min(x)), float(np.max(x))
      acc[i] += [len(x), np.sum(x), np.sum(np.square(x)), 0, 0, hi, lo, 1]
      acc[i, 3], acc[i, 4] = min(acc[i, 3], lo), max(acc[i, 4], hi)
    return acc

  def merge_accumulators(self, accumulators):
    accs = list(accumulators)
    out = np.sum(accs, axis=0)
    out[:, 3] = np.min([a[:, 3] for a in accs], axis=0)
    out[:, 4] = np.max([a[:, 4] for a in accs], axis=0)
    return out

  def extract_output(self, acc):
    stats = {}
    for i, name in enumerate(self.NAMES):
      count, total, squares, lo, hi, sum_max, sum_min, windows = acc[i]
      if count == 0:
        continue
      mean = total / count
      stats[f"mean_{name}"] = mean
      stats[f"std_{name}"] = float(np.sqrt(max(squares / count - mean * mean, 0.0)))
      stats[f"min_{name}"], stats[f"max_{name}"] = lo, hi
      stats[f"mean_max_{name}"] = sum_max / windows
      stats[f"mean_min_{name}"] = sum_min / windows
      stats[f"count_{name}"] = int(count)
    return stats


class ComputeDatasetStatistics(beam.PTransform):
  """PCollection of `window_statistics_inputs` dicts -> one statistics dict."""

  def __init__(self, num_quantiles: int = NUM_QUANTILES):
    super().__init__()
    self.num_quantiles = num_quantiles

  def expand(self, pcoll):
    mean_db = pcoll | "MeanLoudness" >> beam.CombineGlobally(MeanCombineFn("loudness"))
    masked = pcoll | "NoteMask" >> beam.Map(apply_note_mask, beam.pvalue.AsSingleton(mean_db))
    moments = masked | "Moments" >> beam.CombineGlobally(MomentsCombineFn())
    quantiles = (
        masked
        | "NoteLoudness" >> beam.Map(lambda v: [float(x) for x in v["loudness_note"]])
        | "Quantiles" >> beam.ApproximateQuantiles.Globally(self.num_quantiles, input_batched=True))
    return (moments
            | "Join" >> beam.Map(_join, beam.pvalue.AsSingleton(quantiles),
                                 beam.pvalue.AsSingleton(mean_db)))


def _join(stats, quantiles, mean_db):
  stats = dict(stats)
  stats["note_detection_mean_db"] = mean_db
  stats["loudness_quantiles"] = {
      "description": "approximate quantiles of note-on loudness_db (dB); "
                     "references are the cumulative probabilities",
      "references": np.linspace(0.0, 1.0, len(quantiles)).tolist() if quantiles else [],
      "quantiles": [float(q) for q in quantiles],
  }
  return stats
