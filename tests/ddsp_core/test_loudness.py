"""A-weighted loudness: definition, physics and frame alignment."""

import librosa
import numpy as np
import pytest

from ddsp_core import loudness
from tests.conftest import tone


def _reference(x, sr=16000, n_fft=512, hop=64):
  """The same definition through librosa's own STFT (centred, zero padded)."""
  s = librosa.stft(x, n_fft=n_fft, hop_length=hop, window="hann", center=True,
                   pad_mode="constant")
  with np.errstate(divide="ignore"):
    weight = 10 ** (librosa.A_weighting(librosa.fft_frequencies(sr=sr, n_fft=n_fft)) / 10)
  power = np.mean((np.abs(s) ** 2) * weight[:, None], axis=0)
  return np.maximum(10 * np.log10(np.maximum(power, 1e-8)), -80)


def test_matches_an_independent_librosa_computation():
  x = tone(300, 1.0, harmonics=6) * np.linspace(0, 1, 16000).astype(np.float32)
  ours = loudness.compute_loudness(x)
  np.testing.assert_allclose(ours, _reference(x), atol=0.01)


def test_amplitude_scaling_and_floor():
  x = tone(1000, 1.0, amplitude=0.5)
  loud = loudness.compute_loudness(x)[50:-50]
  half = loudness.compute_loudness(x * 0.5)[50:-50]
  np.testing.assert_allclose(loud - half, 20 * np.log10(2), atol=1e-3)
  assert np.all(loudness.compute_loudness(np.zeros(16000, np.float32)) == -80.0)


def test_a_weighting_makes_low_tones_quieter():
  loud_1k = np.median(loudness.compute_loudness(tone(1000, 1.0)))
  loud_100 = np.median(loudness.compute_loudness(tone(100, 1.0)))
  # A-weighting at 100 Hz is -19.1 dB relative to 1 kHz.
  assert loud_1k - loud_100 == pytest.approx(19.1, abs=0.5)


@pytest.mark.parametrize("padding,expected_frames", [("center", 251), ("same", 250)])
def test_frame_counts(padding, expected_frames):
  assert len(loudness.compute_loudness(tone(440, 1.0), padding=padding)) == expected_frames


def test_center_alignment_of_an_onset():
  x = np.zeros(16000, np.float32)
  x[8000:] = tone(1000, 0.5)  # starts at 0.5 s, i.e. frame 125
  ld = loudness.compute_loudness(x)
  assert np.all(ld[:121] == -80.0)  # window (512 samples = 4 frames each side) not yet reached
  assert ld[129] > ld[125] > ld[122] > -80.0
  ld_same = loudness.compute_loudness(x, padding="same")
  assert np.all(ld_same[:117] == -80.0) and ld_same[124] > -80.0  # frame i starts at i*64


def test_blocks_equal_whole():
  x = tone(220, 3.0, harmonics=5) * np.random.default_rng(0).uniform(0.2, 1, 48000).astype(np.float32)
  np.testing.assert_array_equal(loudness.compute_loudness(x, block_frames=97),
                                loudness.compute_loudness(x, block_frames=100000))


def test_frame_rate_must_divide_sample_rate():
  with pytest.raises(ValueError, match="must divide"):
    loudness.compute_loudness(tone(440, 0.1), frame_rate=300)
  assert len(loudness.compute_loudness(tone(440, 1.0), frame_rate=100)) == 101
