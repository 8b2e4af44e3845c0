"""A measure of timbre transfer that can fail: how close a rendering sounds to a reference.

Loss curves do not say whether a voice comes out sounding like a violin. When the ground truth
of a transfer exists (the same notes played by the target instrument, at the pitch the transfer
used), two distances compare a signal with that reference:

- `mfcc_distance`: the mean, over frames where the reference sounds, of the Euclidean distance
  between MFCC vectors (coefficients 1-19: the spectral envelope, without the overall level
  c0);
- `log_spectral_l1`: the multi-scale log-magnitude spectrogram L1 (FFT sizes 2048 ... 64,
  magenta's spectral-loss scales), averaged over the same kind of frames and every bin.

Both signals are RMS-normalised first, so a level difference does not count as timbre. A frame
"sounds" when the reference's RMS there is within 40 dB of its loudest frame.

`transfer_score(d_input, d_output, d_other)` = (d_input - d_output) / (d_input - d_other): 0 when
the output is no closer to the reference than the untransferred input was, 1 when it is as
close as another real instrument of the target's kind (the same notes from another soundfont).
It can be negative (farther than the input) or above 1.
"""

from typing import Dict, Sequence

import librosa
import numpy as np

SAMPLE_RATE = 16000
N_MFCC = 20           # coefficients 0..19 are computed; 1..19 are compared
MFCC_FFT = 1024       # 64 ms at 16 kHz
MFCC_HOP = 256        # 16 ms
N_MELS = 64
SOUNDING_DB = 40.0    # a frame sounds within this many dB of the reference's loudest frame
FFT_SIZES = (2048, 1024, 512, 256, 128, 64)
LOG_EPS = 1e-5


def fit_length(audio: np.ndarray, n: int) -> np.ndarray:
  """`audio` cut or zero-padded to `n` samples (renders of one score may differ by a tail)."""
  audio = np.asarray(audio, np.float64).reshape(-1)
  return np.pad(audio[:n], (0, max(n - len(audio), 0)))


def rms_normalise(audio: np.ndarray) -> np.ndarray:
  """`audio` / its RMS (float64); silence stays silence."""
  audio = np.asarray(audio, np.float64)
  rms = float(np.sqrt(np.mean(audio ** 2))) if audio.size else 0.0
  return audio / rms if rms > 0 else audio


def sounding_frames(reference: np.ndarray, frame_length: int, hop: int,
                    floor_db: float = SOUNDING_DB) -> np.ndarray:
  """bool [1 + len // hop]: centred frames whose RMS is within `floor_db` of the loudest one."""
  rms = librosa.feature.rms(y=np.asarray(reference, np.float64), frame_length=frame_length,
                            hop_length=hop, center=True)[0]
  if not np.any(rms > 0):
    return np.zeros(len(rms), bool)
  db = 20.0 * np.log10(np.maximum(rms, 1e-12))
  return db >= db.max() - floor_db


def mfcc(audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
  """float [19, n_frames]: MFCC coefficients 1-19 (librosa, 64 mel bands, 64 ms / 16 ms)."""
  coefficients = librosa.feature.mfcc(y=np.asarray(audio, np.float64), sr=sample_rate,
                                      n_mfcc=N_MFCC, n_fft=MFCC_FFT, hop_length=MFCC_HOP,
                                      n_mels=N_MELS, fmax=sample_rate / 2)
  return coefficients[1:]


def _prepare(audio: np.ndarray, reference: np.ndarray):
  reference = np.asarray(reference, np.float64).reshape(-1)
  return rms_normalise(fit_length(audio, len(reference))), rms_normalise(reference)


def mfcc_distance(audio: np.ndarray, reference: np.ndarray,
                  sample_rate: int = SAMPLE_RATE) -> float:
  """Mean Euclidean MFCC (1-19) distance over frames where `reference` sounds.

  Args:
    audio: float [n] (cut or padded to the reference's length).
    reference: float [n_ref], the same sample rate.
    sample_rate: Hz.
  """
  audio, reference = _prepare(audio, reference)
  mask = sounding_frames(reference, MFCC_FFT, MFCC_HOP)
  if not mask.any():
    raise ValueError("the reference is silent: no frame to compare")
  diff = mfcc(audio, sample_rate) - mfcc(reference, sample_rate)
  return float(np.mean(np.sqrt(np.sum(diff ** 2, axis=0))[mask[:diff.shape[1]]]))


def log_spectral_l1(audio: np.ndarray, reference: np.ndarray,
                    fft_sizes: Sequence[int] = FFT_SIZES) -> float:
  """Multi-scale log-magnitude spectrogram L1, over frames where `reference` sounds.

  For each FFT size (Hann window, hop size / 4, centred frames), the mean over those frames and
  every bin of |log(|X| + 1e-5) - log(|R| + 1e-5)|; then the mean over sizes.
  """
  audio, reference = _prepare(audio, reference)
  per_scale = []
  for size in fft_sizes:
    hop = size // 4
    mask = sounding_frames(reference, size, hop)
    if not mask.any():
      raise ValueError("the reference is silent: no frame to compare")
    spec = [np.log(np.abs(librosa.stft(x, n_fft=size, hop_length=hop, window="hann",
                                       center=True)) + LOG_EPS) for x in (audio, reference)]
    per_scale.append(float(np.mean(np.abs(spec[0] - spec[1])[:, mask[:spec[0].shape[1]]])))
  return float(np.mean(per_scale))


def distances(audio: np.ndarray, reference: np.ndarray,
              sample_rate: int = SAMPLE_RATE) -> Dict[str, float]:
  """{'mfcc': mfcc_distance, 'log_spectral_l1': log_spectral_l1} of `audio` to `reference`."""
  return {"mfcc": mfcc_distance(audio, reference, sample_rate),
          "log_spectral_l1": log_spectral_l1(audio, reference)}


def transfer_score(d_input: float, d_output: float, d_other: float) -> float:
  """(d_input - d_output) / (d_input - d_other); NaN when the measure cannot tell the input
  from another real instrument of the target's kind (d_other >= d_input)."""
  span = d_input - d_other
  if not np.isfinite(span) or span <= 0:
    return float("nan")
  return float((d_input - d_output) / span)
