"""Per-frame DDSP features: f0 (CREPE), confidence and loudness.

`compute_features` is the one entry point the command line and the pipelines
use, so a dataset, a feature report and a timbre transfer all see the same
numbers. Long signals are processed in blocks of frames: memory is bounded by
the block size, not by the file's length. The cross-frame steps are Viterbi
smoothing, which is run on each block with `VITERBI_CONTEXT_FRAMES` frames of
context on both sides (activations are computed once and reused), and the
octave-guided cascade's routing, which is given the 40 ms around each call; so
blocked and whole-signal results agree.
"""

import math
from typing import Dict, Optional

import numpy as np

from ddsp_core import crepe as crepe_lib
from ddsp_core import framing
from ddsp_core import loudness as loudness_lib

FEATURE_KEYS = ("f0_hz", "f0_confidence", "loudness_db")
BLOCK_FRAMES = 5000  # 20 s at 250 frames/s.
VITERBI_CONTEXT_FRAMES = 500  # 2 s: the HMM forgets its start long before.
# The pipelines' default CREPE rate (with crepe.DEFAULT_MODEL and DEFAULT_PRECISION; see there):
# f0 at 100 frames/s, interpolated onto the 250 frames/s grid. The functions here default to
# CREPE at the frame rate in float32, magenta's definition.
DEFAULT_F0_RATE = 100


def context_secs(f0_rate: int, viterbi: bool = True) -> int:
  """Whole seconds of audio a segment needs on each side for its f0 to equal the whole file's.

  The Viterbi context is a number of frames (`VITERBI_CONTEXT_FRAMES`: the HMM's
  memory is per frame, whatever the rate), so it lasts longer at lower CREPE
  rates: 2 s at 250 frames/s, 5 s at 100, 10 s at 50. Plus one CREPE frame,
  rounded up to whole seconds (chunk edges then fall on whole samples at any
  integer sample rate).

  Args:
    f0_rate: CREPE frames per second.
    viterbi: Whether f0 is Viterbi-smoothed (else one frame of context is enough).

  Returns:
    Seconds, an int >= 1.
  """
  frames = VITERBI_CONTEXT_FRAMES if viterbi else 0
  return math.ceil(frames / f0_rate + crepe_lib.FRAME_SIZE / crepe_lib.MODEL_SAMPLE_RATE)


def compute_f0(audio: np.ndarray, sample_rate: int = 16000,
               frame_rate: int = 250, model: str = "full",
               viterbi: bool = True, padding: str = "center",
               precision: str = "float32",
               crepe_model=None,
               block_frames: int = BLOCK_FRAMES,
               context_frames: int = VITERBI_CONTEXT_FRAMES,
               skip_silent_db: Optional[float] = None):
  """Fundamental frequency and confidence with CREPE.

  Args:
    audio: float array [n_samples], mono, at `sample_rate`.
    sample_rate: Must be 16000 (CREPE's rate); resample first.
    frame_rate: Frames per second; must divide 16000.
    model: CREPE model when `crepe_model` is not given: a capacity ('tiny' ...
      'full', magenta's), 'cascade' (`crepe_lib.CascadeModel`) or 'cascade-octave'
      (`crepe_octave.OctaveCascadeModel`).
    viterbi: Viterbi-smooth the pitch track.
    padding: Frame alignment, 'center' or 'same' (see `ddsp_core.framing`).
    precision: 'float32' or 'bfloat16' when `crepe_model` is not given.
    crepe_model: A built model from `crepe_lib.get_model` (e.g. in `DoFn.setup`).
    block_frames: Frames processed at a time (memory bound).
    context_frames: Viterbi context on each side of a block.
    skip_silent_db: A speed lever, off by default: frames whose A-weighted
      loudness over CREPE's 1024-sample window is at or below this (dB) are
      not run through CREPE; they get f0 0 and confidence 0, and the Viterbi
      path carries on through them. (On the shared corpus, -70 dB skips about
      9% of frames, but CREPE is not silent there: its confidence has a median
      of 0.14 and reaches 0.5 on about 1 in 100 of them, in quiet release tails.)

  Returns:
    (f0_hz, f0_confidence): float32 arrays [n_frames].
  """
  if sample_rate != crepe_lib.MODEL_SAMPLE_RATE:
    raise ValueError(f"CREPE needs 16 kHz audio, got {sample_rate} Hz")
  net = crepe_model or crepe_lib.get_model(model, precision)
  hop = framing.hop_size(sample_rate, frame_rate)
  n = framing.num_frames(len(audio), hop, padding)
  context = context_frames if viterbi else 0
  silent = None if skip_silent_db is None else loudness_lib.compute_loudness(
      audio, sample_rate, frame_rate, n_fft=crepe_lib.FRAME_SIZE, padding=padding) <= skip_silent_db
  sounding = None if silent is None else ~silent
  f0 = np.empty(n, np.float32)
  confidence = np.empty(n, np.float32)
  # Activations of frames [cache_start, cache_start + len(cache)), reused
  # between neighbouring blocks so that context frames are computed once.
  cache_start, cache = 0, np.zeros((0, crepe_lib.N_BINS), np.float32)
  for start in range(0, n, block_frames):
    stop = min(n, start + block_frames)
    lo, hi = max(0, start - context), min(n, stop + context)
    cache_end = cache_start + len(cache)
    keep = cache[max(lo - cache_start, 0):] if cache_end > lo else cache[:0]
    first_new = max(lo, cache_end) if len(keep) else lo
    new = _activations(net, audio, hop, padding, first_new, hi, n, frame_rate, sounding)
    cache = np.concatenate([keep, new])
    cache_start = lo
    block_f0, block_conf = crepe_lib.decode(
        cache, viterbi=viterbi, observed=None if sounding is None else sounding[lo:hi])
    f0[start:stop] = block_f0[start - lo:stop - lo]
    confidence[start:stop] = block_conf[start - lo:stop - lo]
  return f0, confidence


def _activations(net, audio, hop, padding, start, stop, n, frame_rate, sounding=None):
  """CREPE activations float32 [stop - start, 360] of frames [start, stop) of `audio`.

  A model whose route for a frame depends on its neighbours (the octave-guided cascade:
  `net.neighbour_frames(frame_rate)` frames each side) is given those too, with each frame's
  index in the signal, and their rows are dropped: every row then equals the whole signal's.
  Frames not `sounding` (bool [n], or None for all) are not run: their rows are 0.
  """
  routed = hasattr(net, "neighbour_frames")
  margin = net.neighbour_frames(frame_rate) if routed else 0
  a, b = max(0, start - margin), min(n, stop + margin)
  frames = framing.frame_signal(audio, crepe_lib.FRAME_SIZE, hop, a, b - a, padding)
  run = np.ones(b - a, bool) if sounding is None else sounding[a:b]
  out = np.zeros((b - a, crepe_lib.N_BINS), np.float32)
  if np.any(run):
    where = {"index": np.arange(a, b)[run], "frame_rate": frame_rate} if routed else {}
    out[run] = net.activations(frames if sounding is None else frames[run], **where)
  return out[start - a:stop - a]


def compute_f0_at_rate(audio: np.ndarray, f0_rate: int, frame_rate: int = 250,
                       padding: str = "center", **kwargs):
  """CREPE at `f0_rate` frames/s, interpolated onto the `frame_rate` grid.

  A speed lever: CREPE's cost is per frame, so f0 at 100 frames/s costs 40%
  of 250 frames/s. f0 is interpolated linearly in cents between voiced
  neighbours (the nearest one next to a frame without pitch), confidence
  linearly. Both grids have frame i at i * hop (centre or start, by
  `padding`), so they line up.

  Args:
    audio: float array [n_samples] at 16 kHz.
    f0_rate: Frames per second at which CREPE runs (divides 16000).
    frame_rate: Output frames per second.
    padding: 'center' or 'same'.
    **kwargs: Passed to `compute_f0`.

  Returns:
    (f0_hz, f0_confidence): float32 arrays [n_frames at frame_rate].
  """
  n = framing.num_frames(len(audio), framing.hop_size(16000, frame_rate), padding)
  if f0_rate == frame_rate:
    return compute_f0(audio, frame_rate=frame_rate, padding=padding, **kwargs)
  f0, conf = compute_f0(audio, frame_rate=f0_rate, padding=padding, **kwargs)
  positions = np.arange(n) * (f0_rate / frame_rate)  # output frames on the f0 grid
  grid = np.arange(len(f0))
  confidence = np.interp(positions, grid, conf).astype(np.float32)
  voiced = f0 > 0
  if not np.any(voiced):
    return np.zeros(n, np.float32), confidence
  cents = np.interp(positions, grid[voiced], 1200.0 * np.log2(f0[voiced] / 10.0))
  nearest = np.clip(np.rint(positions).astype(int), 0, len(f0) - 1)
  lower = np.clip(np.floor(positions).astype(int), 0, len(f0) - 1)
  upper = np.clip(lower + 1, 0, len(f0) - 1)
  both = voiced[lower] & voiced[upper]
  f0_out = np.where(both, 10.0 * 2.0 ** (cents / 1200.0), f0[nearest])
  return f0_out.astype(np.float32), confidence


def compute_features(audio: np.ndarray, sample_rate: int = 16000,
                     frame_rate: int = 250, model: str = "full",
                     viterbi: bool = True, padding: str = "center",
                     precision: str = "float32",
                     crepe_model=None,
                     block_frames: int = BLOCK_FRAMES,
                     f0_rate: Optional[int] = None,
                     skip_silent_db: Optional[float] = None) -> Dict[str, np.ndarray]:
  """f0_hz, f0_confidence and loudness_db of mono 16 kHz audio.

  Args:
    audio: float array [n_samples], mono, at `sample_rate` (16 kHz).
    sample_rate: Sample rate in Hz (16000).
    frame_rate: Frames per second (250 as magenta).
    model: CREPE model when `crepe_model` is not given: a capacity ('tiny' ...
      'full', magenta's), 'cascade' or 'cascade-octave' (see `compute_f0`).
    viterbi: Viterbi-smooth the pitch track.
    padding: Frame alignment, 'center' or 'same'.
    precision: CREPE precision when `crepe_model` is not given.
    crepe_model: A built model from `crepe_lib.get_model`.
    block_frames: Frames processed at a time (memory bound).
    f0_rate: Run CREPE at this many frames per second and interpolate
      (`compute_f0_at_rate`); None runs it at `frame_rate`.
    skip_silent_db: Skip CREPE on frames this quiet (see `compute_f0`); None
      (default) runs it on every frame.

  Returns:
    Dict of float32 arrays [n_frames]: 'f0_hz' (Hz, 0 where undefined),
    'f0_confidence' (0-1) and 'loudness_db' (dB, >= -80).
  """
  f0_hz, confidence = compute_f0_at_rate(
      audio, f0_rate or frame_rate, frame_rate, padding, sample_rate=sample_rate, model=model,
      viterbi=viterbi, precision=precision, crepe_model=crepe_model, block_frames=block_frames,
      skip_silent_db=skip_silent_db)
  loudness_db = loudness_lib.compute_loudness(
      audio, sample_rate, frame_rate, padding=padding)
  return {"f0_hz": f0_hz, "f0_confidence": confidence, "loudness_db": loudness_db}


def hz_to_midi(f0_hz: np.ndarray) -> np.ndarray:
  """Hz to MIDI note numbers; 0 Hz (no pitch) maps to 0, not -inf."""
  f0_hz = np.asarray(f0_hz, np.float64)
  with np.errstate(divide="ignore"):
    midi = 12.0 * np.log2(f0_hz / 440.0) + 69.0
  return np.where(f0_hz > 0, midi, 0.0)
