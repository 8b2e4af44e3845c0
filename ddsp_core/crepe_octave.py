"""The octave-guided CREPE cascade ('cascade-octave'): full on a 40 ms grid of the low frames.

The cascade (`crepe.CascadeModel`) runs CREPE full on every frame small reads
below 400 Hz, because small's low errors are octave errors: on the low
instruments of the shared corpus's `range/` that is 99.6% of the frames, so
there it costs what full costs. Small's pitch class is right far more often
than its octave (pooled RCA 99% where RPA is 96%), so this variant runs full
on only those low frames that fall on a 40 ms grid of time, and moves small's
reading of the low frames between by whole octaves to agree with the nearest
grid frame within 40 ms, when that frame's full reading is confident and the
two differ by whole octaves to within `tolerance_cents`. The low frames it
cannot settle that way (no confident full neighbour within 40 ms, or a
difference that is not whole octaves: a note change) go through full as well,
as do the frames small is unsure of, unless they are quiet: a frame whose
A-weighted loudness over CREPE's window is at or below `quiet_db` (-70 dB, the
level of the `skip_silent_db` lever) never goes through full; it keeps small's
reading (octave-moved like the others when a grid neighbour settles it). Such
frames are release tails and the noise between notes, where small is unsure
because there is no pitch to be sure of; they were over a third of the frames
the octave cascade ran full on over the shared corpus (9.3% of all: its dithered
silence reads about -70.7 dB). Unlike `skip_silent_db` they keep a CREPE
reading (small's), not f0 0 and confidence 0. The octave move shifts small's
activation row by 60 bins (20 cents a bin), so decoding (Viterbi included) runs on the
merged activations exactly as for the cascade.

The grid is on absolute time: frame i (at `frame_rate` frames/s) is on it when
i * 1000 / frame_rate is a multiple of 40 ms. A frame's route then depends only
on the frames within 40 ms of it, so `features.compute_f0` gives each call
`neighbour_frames(frame_rate)` frames on each side (and drops their rows), and
segments that start on whole seconds (prepare's chunks) read what the whole
file reads. At 100 frames/s the grid is every 4th frame, at 250 every 10th, at
50 every 2nd; at a rate whose frame times are rarely multiples of 40 ms (64
frames/s: one frame a second) nearly all low frames go through full, as in the
cascade. Whole seconds are multiples of 40 ms at every rate.

The thresholds (40 ms, 100 cents, confidence 0.5, 400 Hz) were fixed before the
first measurement (bench/results/2026-12-07-pitch-octave-range.md); the quiet
level (-70 dB) was fixed before its first measurement, as the level the
`skip_silent_db` lever had been measured at
(bench/results/2026-12-08-pitch-quiet-rule.md).
"""

import math
import threading
from typing import Optional

import numpy as np

from ddsp_core import crepe as crepe_lib
from ddsp_core import loudness as loudness_lib

BINS_PER_OCTAVE = 60  # CREPE's bins are 20 cents apart
GRID_MS = 40
TOLERANCE_CENTS = 100.0
QUIET_DB = -70.0  # A-weighted dB over CREPE's window (features' skip_silent_db scale)


def grid_period(frame_rate: int) -> int:
  """Frames from one grid frame to the next: frame i is on the grid when its time, i * 1000 /
  frame_rate ms, is a multiple of 40 ms (every 4th frame at 100 frames/s, 10th at 250, 64th at 64)."""
  return frame_rate * GRID_MS // math.gcd(frame_rate * GRID_MS, 1000)


def neighbour_frames(frame_rate: int) -> int:
  """Frames within 40 ms of a frame on each side: the context a frame's route depends on."""
  return frame_rate * GRID_MS // 1000


def shift_rows(activation: np.ndarray, octaves: np.ndarray) -> np.ndarray:
  """Each row of activations [n, 360] moved up by `octaves[i]` octaves (60 bins each), zero-filled."""
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


class OctaveCascadeModel:
  """Small everywhere; full on the 40 ms grid of the low frames, on frames small is unsure of,
  and on low frames no confident grid neighbour settles, except on quiet frames. The
  `CrepeModel` interface, plus `index` and `frame_rate` (see `activations`) and
  `neighbour_frames`.

  Args:
    precision: 'float32' or 'bfloat16', for both networks.
    tolerance_cents: How far from whole octaves small and its full neighbour may differ.
    confidence: Small's peak activation below which full runs too (and full's, for a grid
      frame to settle its neighbours).
    low_hz: Small's pitch below which a frame is low.
    quiet_db: Frames at or below this A-weighted loudness (dB, over the 1024-sample frame)
      keep small's reading and never go through full; None: no frame is quiet.
  """

  def __init__(self, precision: str = "float32", tolerance_cents: float = TOLERANCE_CENTS,
               confidence: float = crepe_lib.CASCADE_CONFIDENCE,
               low_hz: float = crepe_lib.CASCADE_LOW_HZ,
               quiet_db: Optional[float] = QUIET_DB):
    self.model = crepe_lib.CASCADE_OCTAVE
    self.precision = precision
    self.tolerance, self.confidence, self.low_hz = tolerance_cents, confidence, low_hz
    self.quiet_db = quiet_db
    self.small = crepe_lib.get_model("small", precision)
    self.full = crepe_lib.get_model("full", precision)
    self._lock = threading.Lock()
    # Frames through small; through full too; settled without full; of those, moved by octaves;
    # quiet frames small was unsure of or read low (full's, but for the quiet rule).
    self.frames = self.full_frames = self.settled = self.moved = self.quiet_kept = 0

  neighbour_frames = staticmethod(neighbour_frames)

  def activations(self, frames: np.ndarray, index: Optional[np.ndarray] = None,
                  frame_rate: int = 100) -> np.ndarray:
    """Activations float32 [n_frames, 360] of raw frames [n_frames, 1024].

    Args:
      frames: float array [n_frames, 1024] of 16 kHz audio.
      index: int array [n_frames], increasing: each frame's number in the signal (the grid
        and the 40 ms neighbourhoods are counted on it); default 0 ... n_frames - 1.
      frame_rate: Frames per second of `index`.
    """
    frames = np.asarray(frames, np.float32)
    n = len(frames)
    index = np.arange(n) if index is None else np.asarray(index, np.int64)
    if index.shape != (n,):
      raise ValueError(f"index has shape {index.shape}, frames {frames.shape}")
    out = self.small.activations(frames)
    with np.errstate(invalid="ignore"):
      cents = crepe_lib.activation_to_cents(out)
      hz = 10.0 * 2.0 ** (cents / 1200.0)
    quiet = (np.zeros(n, bool) if self.quiet_db is None else
             loudness_lib.frame_loudness(frames, crepe_lib.MODEL_SAMPLE_RATE) <= self.quiet_db)
    unsure = ~(out.max(axis=1) >= self.confidence)
    low = ~(hz >= self.low_hz) & ~unsure  # NaN pitch: not low (it is unsure)
    grid = low & (index % grid_period(frame_rate) == 0) & ~quiet
    first = (unsure & ~quiet) | grid
    if np.any(first):
      out[first] = self.full.activations(frames[first])
    targets = np.flatnonzero(low & ~grid)
    octaves, settled = self._octaves(out, index, np.flatnonzero(grid), targets, cents,
                                     neighbour_frames(frame_rate))
    again = targets[~settled & ~quiet[targets]]
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
      self.quiet_kept += int(np.sum(quiet & (unsure | low)))
    return out

  def _octaves(self, out, index, grid_rows, targets, small_cents, reach):
    """Whole octaves to move each target row by, and whether a confident grid neighbour within
    `reach` frames settled it (the nearer in cents of the two on either side)."""
    octaves = np.zeros(len(targets), int)
    settled = np.zeros(len(targets), bool)
    if not len(grid_rows) or not len(targets):
      return octaves, settled
    with np.errstate(invalid="ignore"):
      grid_cents = crepe_lib.activation_to_cents(out[grid_rows])
    grid_sure = out[grid_rows].max(axis=1) >= self.confidence
    grid_index, target_index = index[grid_rows], index[targets]
    best = np.full(len(targets), np.inf)
    pos = np.searchsorted(grid_index, target_index)
    for side in (pos - 1, pos):
      valid = (side >= 0) & (side < len(grid_rows))
      s = np.clip(side, 0, len(grid_rows) - 1)
      near = valid & (np.abs(grid_index[s] - target_index) <= reach) & grid_sure[s]
      with np.errstate(invalid="ignore"):
        diff = grid_cents[s] - small_cents[targets]
        k = np.rint(diff / 1200.0)
        residual = np.abs(diff - 1200.0 * k)
      take = near & (residual <= self.tolerance) & (residual < best)
      octaves[take] = k[take].astype(int)
      best[take] = residual[take]
      settled |= take
    return octaves, settled
