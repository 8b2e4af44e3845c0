"""A lever for issue 16, measured before it goes anywhere near the core: the octave-guided cascade.

The cascade (`ddsp_core.crepe.CascadeModel`) runs CREPE full on every frame
small reads below 400 Hz, because small's low errors are octave errors: on the
low instruments of `range/` that is 99.6% of the frames, so there it costs
what full costs. Small's pitch class is right far more often than its octave
(pooled RCA 99% where RPA is 96%), so this variant runs full on only every
`period`-th of those low frames (a grid by frame index) and moves small's
reading of the frames between by whole octaves to agree with the nearest full
frame, when that frame is confident and the two differ by whole octaves to
within `tolerance_cents`. Frames it cannot settle that way (no confident full
neighbour within `period` frames, or a difference that is not whole octaves:
a note change) go through full as well, as do frames small is unsure of.
The octave move shifts small's activation row by 60 bins (20 cents a bin),
so Viterbi decodes the merged activations exactly as for the cascade.

The thresholds (period 4, tolerance 100 cents, confidence 0.5, 400 Hz) were
fixed before the first measurement. The grid is counted from the first frame
of each call, so this bench class does not keep "chunked equals whole"; it
measures accuracy and speed. `bench.pitch_levers --configs
octave/bfloat16/100` runs it.
"""

import threading

import numpy as np

from ddsp_core import crepe as crepe_lib

OCTAVE = "octave"
BINS_PER_OCTAVE = 60  # CREPE's bins are 20 cents apart


def shift_rows(activation: np.ndarray, octaves: np.ndarray) -> np.ndarray:
  """Each row of [n, 360] moved up by `octaves[i]` octaves (60 bins each), zero-filled."""
  out = np.zeros_like(activation)
  for k in np.unique(octaves):
    rows = octaves == k
    s = int(k) * BINS_PER_OCTAVE
    if s == 0:
      out[rows] = activation[rows]
    elif 0 < s < crepe_lib.N_BINS:
      out[np.ix_(rows, np.arange(s, crepe_lib.N_BINS))] = activation[rows, :crepe_lib.N_BINS - s]
    elif -crepe_lib.N_BINS < s < 0:
      out[np.ix_(rows, np.arange(0, crepe_lib.N_BINS + s))] = activation[rows, -s:]
  return out


class OctaveGuidedCascade:
  """The `CrepeModel` interface: small everywhere, full on a grid of the low frames and where unsure."""

  def __init__(self, precision="float32", period=4, tolerance_cents=100.0,
               confidence=crepe_lib.CASCADE_CONFIDENCE, low_hz=crepe_lib.CASCADE_LOW_HZ):
    self.model = OCTAVE
    self.precision = precision
    self.period, self.tolerance = period, tolerance_cents
    self.confidence, self.low_hz = confidence, low_hz
    self.small = crepe_lib.get_model("small", precision)
    self.full = crepe_lib.get_model("full", precision)
    self._lock = threading.Lock()
    self.frames = self.full_frames = self.settled = self.moved = 0

  def activations(self, frames: np.ndarray) -> np.ndarray:
    frames = np.asarray(frames, np.float32)
    out = self.small.activations(frames)
    n = len(out)
    with np.errstate(invalid="ignore"):
      cents = crepe_lib.activation_to_cents(out)
      hz = 10.0 * 2.0 ** (cents / 1200.0)
    unsure = ~(out.max(axis=1) >= self.confidence)
    low = ~(hz >= self.low_hz) & ~unsure
    grid = low & (np.arange(n) % self.period == 0)
    first = unsure | grid
    if np.any(first):
      out[first] = self.full.activations(frames[first])
    targets = np.flatnonzero(low & ~grid)
    octaves, settled = self._octaves(out, np.flatnonzero(grid), targets, cents)
    again = targets[~settled]
    if len(again):
      out[again] = self.full.activations(frames[again])
    moved = targets[settled]
    if len(moved):
      out[moved] = shift_rows(out[moved], octaves[settled])
    with self._lock:
      self.frames += n
      self.full_frames += int(first.sum()) + len(again)
      self.settled += len(moved)
      self.moved += int(np.count_nonzero(octaves[settled]))
    return out

  def _octaves(self, out, grid_idx, targets, small_cents):
    """Whole octaves to move each target by, and whether a confident full neighbour settled it."""
    octaves = np.zeros(len(targets), int)
    settled = np.zeros(len(targets), bool)
    if not len(grid_idx) or not len(targets):
      return octaves, settled
    with np.errstate(invalid="ignore"):
      grid_cents = crepe_lib.activation_to_cents(out[grid_idx])
    grid_sure = out[grid_idx].max(axis=1) >= self.confidence
    best = np.full(len(targets), np.inf)
    pos = np.searchsorted(grid_idx, targets)
    for side in (pos - 1, pos):
      valid = (side >= 0) & (side < len(grid_idx))
      s = np.clip(side, 0, len(grid_idx) - 1)
      near = valid & (np.abs(grid_idx[s] - targets) <= self.period) & grid_sure[s]
      diff = grid_cents[s] - small_cents[targets]
      k = np.rint(diff / 1200.0)
      residual = np.abs(diff - 1200.0 * k)
      take = near & (residual <= self.tolerance) & (residual < best)
      octaves[take] = k[take].astype(int)
      best[take] = residual[take]
      settled |= take
    return octaves, settled
