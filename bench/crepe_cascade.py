"""A CREPE cascade, a lever measured by bench.pitch_levers: small first, full where small may be wrong.

    .venv/bin/python -m bench.pitch_levers --configs cascade/bfloat16/100

Not part of ddsp_core: measured, not adopted (bench/results/*-pitch*.md). Each batch of frames
goes through CREPE small; a frame goes again through full when small is unsure (peak activation
below CONFIDENCE) or reads it in the low register (below LOW_HZ: small's octave errors on low
instruments read notes up to an octave high, and the low cello's top, 198 Hz, read an octave high
is 396 Hz). The full activations replace small's on those frames, and the Viterbi decoder runs on
the merged activations. The two thresholds were fixed before the first measurement, not tuned on
the corpus that is scored.
"""

import numpy as np

from ddsp_core import crepe as crepe_lib

CONFIDENCE = 0.5
LOW_HZ = 400.0


class CascadeCrepe:
  """CrepeModel's `activations`: small everywhere, full on the frames small may get wrong."""

  def __init__(self, precision: str = "bfloat16"):
    self.model, self.precision = "cascade", precision
    self._small = crepe_lib.get_model("small", precision)
    self._full = crepe_lib.get_model("full", precision)
    self.frames = self.full_frames = 0

  def activations(self, frames: np.ndarray) -> np.ndarray:
    out = self._small.activations(frames)
    hz = 10.0 * 2.0 ** (crepe_lib.activation_to_cents(out) / 1200.0)
    again = (out.max(axis=1) < CONFIDENCE) | ~(hz >= LOW_HZ)  # NaN pitch goes to full too
    if np.any(again):
      out[again] = self._full.activations(np.asarray(frames)[again])
    self.frames += len(frames)
    self.full_frames += int(again.sum())
    return out
