"""Timbre-transfer adjustments of magenta's Colab, as pure numpy functions.

Before a model re-synthesizes someone else's recording, its features are
moved toward what the model heard in training (its dataset statistics):

1. `octave_shift`: whole octaves toward the dataset's mean pitch;
2. `note_on`: note detection (`ddsp_core.notes.detect_notes`, threshold slider);
3. `match_loudness`: quantile matching of the input's note-on loudness to
   the dataset's note-on loudness distribution;
4. `quiet_note_off`: note-off frames lowered by `quiet` dB times how un-note-like they are;
5. `tuning_factor` and `auto_tune`: pull f0 toward the best-fitting major scale
   (or chromatic semitones) by `amount` (0-1);
6. `shift_loudness` (dB) and `shift_pitch` (octaves), then f0 is clipped to
   the valid range (0 Hz to MIDI 110).
`adjust_features` runs them in the Colab's order.
"""

from typing import Dict, Optional

import numpy as np

from ddsp_core import notes
from ddsp_core.features import hz_to_midi

MAX_MIDI = 110.0
NOTE_NAMES = ("C", "Db", "D", "Eb", "E", "F", "Gb", "G", "Ab", "A", "Bb", "B")


def midi_to_hz(midi: np.ndarray) -> np.ndarray:
  return 440.0 * 2.0 ** ((np.asarray(midi, np.float64) - 69.0) / 12.0)


def octave_shift(f0_hz: np.ndarray, mask_on: np.ndarray, target_mean_pitch: float) -> int:
  """Octaves to add to f0 so its note-on mean pitch nears the dataset's.

  As the Colab: the difference in octaves is rounded toward zero, except that
  differences above 1.5 octaves are rounded down.

  Args:
    f0_hz: float [n_frames].
    mask_on: bool [n_frames] note-on frames.
    target_mean_pitch: the dataset's `mean_pitch` (MIDI).

  Returns:
    Whole octaves (int).
  """
  if not np.any(mask_on):
    return 0
  diff_octaves = (target_mean_pitch - np.mean(hz_to_midi(f0_hz)[mask_on])) / 12.0
  return int(np.floor(diff_octaves) if diff_octaves > 1.5 else np.ceil(diff_octaves))


def shift_pitch(f0_hz: np.ndarray, octaves: float) -> np.ndarray:
  """f0 times 2**octaves, clipped to [0, MIDI 110]."""
  return np.clip(np.asarray(f0_hz, np.float64) * 2.0 ** octaves, 0.0, midi_to_hz(MAX_MIDI))


def shift_loudness(loudness_db: np.ndarray, db: float) -> np.ndarray:
  return np.asarray(loudness_db, np.float64) + db


def _to_uniform(x, quantiles, references):
  """Empirical CDF through a quantile table, symmetric for ties (sklearn's way)."""
  up = np.interp(x, quantiles, references)
  down = -np.interp(-x, -quantiles[::-1], -references[::-1])
  return 0.5 * (up + down)


def match_loudness(loudness_db: np.ndarray, mask_on: np.ndarray, target_quantiles: np.ndarray,
                   n_quantiles: int = 1000) -> np.ndarray:
  """Quantile-matches note-on loudness to a target distribution.

  As magenta: the input's own quantiles are fitted on its note-on frames,
  which are mapped through them to a probability and back through the target
  quantiles (the dataset's note-on loudness). Note-off frames are left as
  they are (`quiet_note_off` lowers them next).

  Args:
    loudness_db: float [n_frames].
    mask_on: bool [n_frames].
    target_quantiles: float [n] increasing, at evenly spaced probabilities 0..1.
    n_quantiles: quantiles fitted on the input.

  Returns:
    float [n_frames] loudness in dB, note-on frames matched.
  """
  loudness_db = np.asarray(loudness_db, np.float64)
  source = loudness_db[mask_on] if np.any(mask_on) else loudness_db
  n = max(1, min(n_quantiles, len(source)))
  refs = np.linspace(0.0, 1.0, n)
  src_q = np.maximum.accumulate(np.nanpercentile(source, refs * 100.0))
  u = _to_uniform(loudness_db, src_q, refs)
  u = np.where(loudness_db <= src_q[0], 0.0, np.where(loudness_db >= src_q[-1], 1.0, u))
  target = np.asarray(target_quantiles, np.float64)
  matched = np.interp(u, np.linspace(0.0, 1.0, len(target)), target)
  return np.where(mask_on, matched, loudness_db) if np.any(mask_on) else matched


def quiet_note_off(loudness_db: np.ndarray, mask_on: np.ndarray, note_on_value: np.ndarray,
                   quiet: float = 20.0) -> np.ndarray:
  """Lowers note-off frames by `quiet` dB scaled by (1 - note_on_value)."""
  out = np.array(loudness_db, np.float64)
  off = ~mask_on
  out[off] -= quiet * (1.0 - note_on_value[off])
  return out


def tuning_factor(f0_midi: np.ndarray, f0_confidence: np.ndarray, mask_on: np.ndarray) -> float:
  """Offset (semitones, -0.5..0.5 in 1-cent steps) to the most consistent chromatic grid.

  Balances (after z-scoring each) the confidence-weighted mean distance to the
  grid and the number of note changes the snapped line would have.
  """
  candidates = np.linspace(-0.5, 0.5, 101)
  midi = np.asarray(f0_midi, np.float64)[mask_on][:, None]
  if len(midi) < 2:
    return 0.0
  diffs = (midi - candidates[None, :]) % 1.0
  diffs[diffs > 0.5] -= 1.0
  weights = np.asarray(f0_confidence, np.float64)[mask_on][:, None]
  cost_diffs = np.mean(weights * np.abs(diffs), axis=0)
  snapped = midi - diffs
  changes = (np.diff(snapped, axis=0) != 0.0).astype(np.float64)
  cost_changes = np.mean(weights[:-1] * changes, axis=0)

  def zscore(x):
    std = np.std(x)
    return (x - np.mean(x)) / std if std > 0 else np.zeros_like(x)
  return float(candidates[np.argmin(zscore(cost_changes) + zscore(cost_diffs))])


def best_major_scale(f0_midi: np.ndarray, mask_on: np.ndarray):
  """(tonic index 0-11, scale notes) of the major scale closest to the note-on pitches."""
  major = np.ravel([np.array([0, 2, 4, 5, 7, 9, 11]) + 12 * i for i in range(10)])
  scales = np.stack([major + i for i in range(12)])  # [12, notes]
  on = np.asarray(f0_midi, np.float64)[mask_on]
  distance = np.min(np.abs(on[:, None, None] - scales[None]), axis=-1)  # [time, scale]
  tonic = int(np.argmin(np.mean(distance, axis=0)))
  return tonic, scales[tonic]


def auto_tune(f0_midi: np.ndarray, tuning: float, mask_on: np.ndarray, amount: float = 0.0,
              chromatic: bool = False) -> np.ndarray:
  """Pulls f0 toward the nearest scale note (or semitone, offset by `tuning`).

  Args:
    f0_midi: float [n_frames] pitch in MIDI.
    tuning: Offset of the chromatic grid in semitones (`tuning_factor`).
    mask_on: bool [n_frames] note-on frames (choose the scale).
    amount: 0 leaves f0 as is, 1 snaps it fully.
    chromatic: Snap to semitones instead of the best-fitting major scale.

  Returns:
    float [n_frames] MIDI.
  """
  f0_midi = np.asarray(f0_midi, np.float64)
  if chromatic:
    diff = (f0_midi - tuning) % 1.0
    diff[diff > 0.5] -= 1.0
  else:
    _, scale = best_major_scale(f0_midi, mask_on)
    to_notes = f0_midi[:, None] - scale[None, :]
    diff = np.take_along_axis(to_notes, np.argmin(np.abs(to_notes), axis=1)[:, None], 1)[:, 0]
  return f0_midi - amount * diff


def adjust_features(features: Dict[str, np.ndarray], stats: Optional[dict] = None,
                    adjust: bool = True, threshold: float = 1.0, quiet: float = 20.0,
                    autotune: float = 0.0, chromatic: bool = False, pitch_shift: float = 0.0,
                    loudness_shift: float = 0.0) -> Dict[str, np.ndarray]:
  """The Colab's adjustments in its order; returns new features plus what was done.

  Args:
    features: 'f0_hz', 'f0_confidence', 'loudness_db' float [n_frames].
    stats: The model's dataset statistics (`mean_pitch`, `loudness_quantiles`).
      Without them only the manual shifts apply.
    adjust: Apply the automatic adjustments (octave, loudness, quiet, autotune).
    threshold: Note detection threshold (the Colab's slider, default 1.0).
    quiet: dB by which note-off frames are lowered.
    autotune: Auto-tune amount, 0-1.
    chromatic: Auto-tune to semitones instead of the best major scale.
    pitch_shift: Octaves, -2..2.
    loudness_shift: dB, -20..20.

  Returns:
    Dict with adjusted 'f0_hz', 'loudness_db', 'f0_confidence', 'mask_on'
    (bool), 'note_on_value', and scalars 'octave_shift', 'tuning_factor'.
  """
  f0 = np.asarray(features["f0_hz"], np.float64)
  loud = np.asarray(features["loudness_db"], np.float64)
  conf = np.asarray(features["f0_confidence"], np.float64)
  mask_on, note_on_value = notes.detect_notes(loud, conf, note_threshold=threshold)
  octaves, tuning = 0, 0.0
  if adjust and stats and np.any(mask_on):
    octaves = octave_shift(f0, mask_on, stats["mean_pitch"])
    f0 = shift_pitch(f0, octaves)
    quantiles = (stats.get("loudness_quantiles") or {}).get("quantiles")
    if quantiles:
      loud = match_loudness(loud, mask_on, np.asarray(quantiles))
    loud = quiet_note_off(loud, mask_on, note_on_value, quiet)
    if autotune:
      midi = hz_to_midi(f0)
      tuning = tuning_factor(midi, conf, mask_on)
      f0 = np.where(f0 > 0, midi_to_hz(auto_tune(midi, tuning, mask_on, autotune, chromatic)), 0.0)
  loud = shift_loudness(loud, loudness_shift)
  f0 = shift_pitch(f0, pitch_shift)
  return {"f0_hz": f0.astype(np.float32), "loudness_db": loud.astype(np.float32),
          "f0_confidence": conf.astype(np.float32), "mask_on": mask_on,
          "note_on_value": note_on_value.astype(np.float32), "octave_shift": octaves,
          "tuning_factor": tuning}
