"""A-weighted loudness, with magenta ddsp's definition.

Per frame: Hann-windowed STFT (periodic window, n_fft samples), power
spectrum, weighted by librosa's A-weighting curve converted from dB to power,
mean over the frequency bins in linear power, then 10 * log10, relative to
`ref_db` and floored at -`range_db`. Frames follow `ddsp_core.framing` (frame
i is centred on sample i * hop with padding='center').
"""

import functools

import librosa
import numpy as np
import scipy.signal

from ddsp_core import framing

# Floor of the loudness scale in dB (also the span used to scale loudness for
# the model: ld_scaled = loudness_db / 80 + 1).
DB_RANGE = 80.0
# Frames per block when computing long signals, to bound memory.
BLOCK_FRAMES = 8192


@functools.lru_cache(maxsize=8)
def _weights(sample_rate: int, n_fft: int):
  window = scipy.signal.get_window("hann", n_fft, fftbins=True).astype(np.float32)
  freqs = librosa.fft_frequencies(sr=sample_rate, n_fft=n_fft)
  with np.errstate(divide="ignore"):  # log10(0) at DC; librosa floors it at -80 dB.
    a_weighting = librosa.A_weighting(freqs)
  return window, (10.0 ** (a_weighting / 10.0)).astype(np.float64)


def power_to_db(power: np.ndarray, ref_db: float = 0.0,
                range_db: float = DB_RANGE) -> np.ndarray:
  """Power to decibels, relative to `ref_db` and floored at -`range_db`.

  Args:
    power: Non-negative array (linear power).
    ref_db: Reference level in dB subtracted from the result.
    range_db: The result is clipped below at -range_db.

  Returns:
    Array like `power`, in dB.
  """
  amin = 10.0 ** (-range_db / 10.0)
  db = 10.0 * np.log10(np.maximum(power, amin)) - ref_db
  return np.maximum(db, -range_db)


def compute_loudness(audio: np.ndarray, sample_rate: int = 16000,
                     frame_rate: int = 250, n_fft: int = 512,
                     range_db: float = DB_RANGE, ref_db: float = 0.0,
                     padding: str = "center",
                     block_frames: int = BLOCK_FRAMES) -> np.ndarray:
  """A-weighted loudness of mono audio, one value per frame.

  Args:
    audio: float array [n_samples], mono, at `sample_rate`.
    sample_rate: Sample rate in Hz.
    frame_rate: Frames per second; must divide `sample_rate`.
    n_fft: STFT size in samples (512 at 16 kHz, as magenta).
    range_db: Floor of the result is -range_db dB.
    ref_db: Reference level in dB.
    padding: Frame alignment, 'center' or 'same' (see `ddsp_core.framing`).
    block_frames: Frames computed at a time (memory bound, not a result).

  Returns:
    float32 array [n_frames] of loudness in dB.
  """
  audio = np.asarray(audio, np.float32)
  hop = framing.hop_size(sample_rate, frame_rate)
  n = framing.num_frames(len(audio), hop, padding)
  out = np.empty(n, np.float32)
  for start in range(0, n, block_frames):
    count = min(block_frames, n - start)
    frames = framing.frame_signal(audio, n_fft, hop, start, count, padding)
    out[start:start + count] = frame_loudness(frames, sample_rate, range_db, ref_db)
  return out


def frame_loudness(frames: np.ndarray, sample_rate: int = 16000, range_db: float = DB_RANGE,
                   ref_db: float = 0.0) -> np.ndarray:
  """A-weighted loudness of frames already cut, one value per frame (`compute_loudness`'s).

  Args:
    frames: float array [n_frames, n_fft] of audio at `sample_rate`.
    sample_rate: Sample rate in Hz.
    range_db: Floor of the result is -range_db dB.
    ref_db: Reference level in dB.

  Returns:
    float32 array [n_frames] of loudness in dB.
  """
  frames = np.asarray(frames, np.float32)
  window, weighting = _weights(sample_rate, frames.shape[-1])
  spectrum = np.fft.rfft(frames * window, axis=-1)
  power = spectrum.real.astype(np.float64) ** 2 + spectrum.imag.astype(np.float64) ** 2
  return power_to_db(np.mean(power * weighting, axis=-1), ref_db, range_db).astype(np.float32)


def compute_power(audio: np.ndarray, sample_rate: int = 16000, frame_rate: int = 50,
                  frame_size: int = 1024, range_db: float = DB_RANGE,
                  ref_db: float = 0.0) -> np.ndarray:
  """Frame-wise mean power in dB (magenta ddsp's `compute_power`, centred frames).

  Args:
    audio: float array [n_samples], mono.
    sample_rate: Sample rate in Hz.
    frame_rate: Frames per second (magenta's dataset statistics use 50).
    frame_size: Samples per frame.
    range_db: Floor of the result is -range_db dB.
    ref_db: Reference level in dB.

  Returns:
    float32 array [n_frames] of power in dB.
  """
  audio = np.asarray(audio, np.float32)
  hop = framing.hop_size(sample_rate, frame_rate)
  n = framing.num_frames(len(audio), hop, "center")
  frames = framing.frame_signal(audio, frame_size, hop, 0, n, "center")
  power = np.mean(frames.astype(np.float64) ** 2, axis=-1)
  return power_to_db(power, ref_db, range_db).astype(np.float32)
