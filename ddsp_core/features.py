"""Per-frame DDSP features: f0 (CREPE), confidence and loudness.

`compute_features` is the one entry point the command line and the pipelines
use, so a dataset, a feature report and a timbre transfer all see the same
numbers. Long signals are processed in blocks of frames: memory is bounded by
the block size, not by the file's length. The only cross-frame step is
Viterbi smoothing, which is run on each block with `VITERBI_CONTEXT_FRAMES`
frames of context on both sides (activations are computed once and reused), so
blocked and whole-signal results agree.
"""

from typing import Dict, Optional

import numpy as np

from ddsp_core import crepe as crepe_lib
from ddsp_core import framing
from ddsp_core import loudness as loudness_lib

FEATURE_KEYS = ("f0_hz", "f0_confidence", "loudness_db")
BLOCK_FRAMES = 5000  # 20 s at 250 frames/s.
VITERBI_CONTEXT_FRAMES = 500  # 2 s: the HMM forgets its start long before.


def compute_f0(audio: np.ndarray, sample_rate: int = 16000,
               frame_rate: int = 250, model: str = "full",
               viterbi: bool = True, padding: str = "center",
               precision: str = "float32",
               crepe_model: Optional[crepe_lib.CrepeModel] = None,
               block_frames: int = BLOCK_FRAMES,
               context_frames: int = VITERBI_CONTEXT_FRAMES):
  """Fundamental frequency and confidence with CREPE.

  Args:
    audio: float array [n_samples], mono, at `sample_rate`.
    sample_rate: Must be 16000 (CREPE's rate); resample first.
    frame_rate: Frames per second; must divide 16000.
    model: CREPE capacity when `crepe_model` is not given.
    viterbi: Viterbi-smooth the pitch track.
    padding: Frame alignment, 'center' or 'same' (see `ddsp_core.framing`).
    precision: 'float32' or 'bfloat16' when `crepe_model` is not given.
    crepe_model: A built `CrepeModel` (e.g. from `DoFn.setup`).
    block_frames: Frames processed at a time (memory bound).
    context_frames: Viterbi context on each side of a block.

  Returns:
    (f0_hz, f0_confidence): float32 arrays [n_frames].
  """
  if sample_rate != crepe_lib.MODEL_SAMPLE_RATE:
    raise ValueError(f"CREPE needs 16 kHz audio, got {sample_rate} Hz")
  net = crepe_model or crepe_lib.get_model(model, precision)
  hop = framing.hop_size(sample_rate, frame_rate)
  n = framing.num_frames(len(audio), hop, padding)
  context = context_frames if viterbi else 0
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
    frames = framing.frame_signal(audio, crepe_lib.FRAME_SIZE, hop, first_new,
                                  hi - first_new, padding)
    cache = np.concatenate([keep, net.activations(frames)])
    cache_start = lo
    block_f0, block_conf = crepe_lib.decode(cache, viterbi=viterbi)
    f0[start:stop] = block_f0[start - lo:stop - lo]
    confidence[start:stop] = block_conf[start - lo:stop - lo]
  return f0, confidence


def compute_features(audio: np.ndarray, sample_rate: int = 16000,
                     frame_rate: int = 250, model: str = "full",
                     viterbi: bool = True, padding: str = "center",
                     precision: str = "float32",
                     crepe_model: Optional[crepe_lib.CrepeModel] = None,
                     block_frames: int = BLOCK_FRAMES) -> Dict[str, np.ndarray]:
  """f0_hz, f0_confidence and loudness_db of mono 16 kHz audio.

  Args:
    audio: float array [n_samples], mono, at `sample_rate` (16 kHz).
    sample_rate: Sample rate in Hz (16000).
    frame_rate: Frames per second (250 as magenta).
    model: CREPE capacity when `crepe_model` is not given.
    viterbi: Viterbi-smooth the pitch track.
    padding: Frame alignment, 'center' or 'same'.
    precision: CREPE precision when `crepe_model` is not given.
    crepe_model: A built `CrepeModel`.
    block_frames: Frames processed at a time (memory bound).

  Returns:
    Dict of float32 arrays [n_frames]: 'f0_hz' (Hz, 0 where undefined),
    'f0_confidence' (0-1) and 'loudness_db' (dB, >= -80).
  """
  f0_hz, confidence = compute_f0(
      audio, sample_rate, frame_rate, model, viterbi, padding, precision,
      crepe_model, block_frames)
  loudness_db = loudness_lib.compute_loudness(
      audio, sample_rate, frame_rate, padding=padding)
  return {"f0_hz": f0_hz, "f0_confidence": confidence, "loudness_db": loudness_db}


def hz_to_midi(f0_hz: np.ndarray) -> np.ndarray:
  """Hz to MIDI note numbers; 0 Hz maps to -inf-free 0."""
  f0_hz = np.asarray(f0_hz, np.float64)
  with np.errstate(divide="ignore"):
    midi = 12.0 * np.log2(f0_hz / 440.0) + 69.0
  return np.where(f0_hz > 0, midi, 0.0)
