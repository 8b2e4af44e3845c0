"""Frame alignment shared by every per-frame feature.

Two conventions, both with hop = sample_rate / frame_rate samples:

- ``'center'``: frame i is centred on sample ``i * hop`` (the signal is
  zero-padded by frame_size // 2 on both sides), so there are
  ``n_samples // hop + 1`` frames. This is librosa's and crepe's ``center=True``
  and the grid of the sample corpus' ground truth (time_s = i / frame_rate).
- ``'same'``: frame i starts at sample ``i * hop`` (zero padding only at the
  end), ``ceil(n_samples / hop)`` frames. This is magenta ddsp's default in
  ``ddsp_prepare_tfrecord`` (its ``--center`` flag is off), which gives
  exactly ``example_secs * frame_rate`` frames per window.

Frames are extracted for any frame range without padding or copying the whole
signal, which is what keeps long-file processing bounded by a block size.
"""

import math

import numpy as np

PADDINGS = ("center", "same")


def hop_size(sample_rate: int, frame_rate: int) -> int:
  """Samples between frames; raises unless frame_rate divides sample_rate."""
  if frame_rate <= 0 or sample_rate % frame_rate:
    raise ValueError(f"frame_rate {frame_rate} must divide sample_rate "
                     f"{sample_rate} (e.g. 250 or 100 at 16 kHz)")
  return sample_rate // frame_rate


def check_padding(padding: str) -> str:
  if padding not in PADDINGS:
    raise ValueError(f"padding must be one of {PADDINGS}, got {padding!r}")
  return padding


def num_frames(n_samples: int, hop: int, padding: str = "center") -> int:
  """Frame count of a signal of `n_samples` under a padding convention."""
  check_padding(padding)
  if padding == "center":
    return n_samples // hop + 1
  return int(math.ceil(n_samples / hop))


def frame_signal(audio: np.ndarray, frame_size: int, hop: int,
                 start_frame: int, n_frames: int,
                 padding: str = "center") -> np.ndarray:
  """Frames [start_frame, start_frame + n_frames) of a 1-D signal.

  Args:
    audio: float array [n_samples].
    frame_size: Samples per frame.
    hop: Samples between frame starts.
    start_frame: First frame index (in the whole signal's frame grid).
    n_frames: Number of frames to return.
    padding: 'center' or 'same' (see the module docstring).

  Returns:
    float32 array [n_frames, frame_size]; samples outside the signal are 0.
  """
  check_padding(padding)
  left = frame_size // 2 if padding == "center" else 0
  first = start_frame * hop - left
  last = first + (n_frames - 1) * hop + frame_size  # exclusive
  lo, hi = max(first, 0), min(last, len(audio))
  span = np.zeros(max(last - first, 0), np.float32)
  if hi > lo:
    span[lo - first:hi - first] = audio[lo:hi]
  if n_frames <= 0:
    return np.zeros((0, frame_size), np.float32)
  return np.lib.stride_tricks.sliding_window_view(span, frame_size)[::hop][:n_frames]


def frame_times(n_frames: int, frame_rate: int) -> np.ndarray:
  """Time in seconds of each frame index (its centre for 'center', its start for 'same')."""
  return np.arange(n_frames, dtype=np.float64) / frame_rate
