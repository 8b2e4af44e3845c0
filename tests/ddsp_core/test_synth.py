"""Physics of the synthesizers and the loss, not only shapes."""

import numpy as np
import pytest
import tensorflow as tf

from ddsp_core import synth

SR, HOP = 16000, 64


def _peak_bins(audio, count):
  spectrum = np.abs(np.fft.rfft(audio * np.hanning(len(audio))))
  freqs = np.fft.rfftfreq(len(audio), 1 / SR)
  order = np.argsort(spectrum)[::-1]
  peaks = []
  for i in order:
    if all(abs(freqs[i] - p) > 20 for p in peaks):
      peaks.append(freqs[i])
    if len(peaks) == count:
      break
  return sorted(peaks), spectrum, freqs


def test_constant_f0_puts_peaks_at_f0_and_its_harmonics():
  frames = 250
  f0 = tf.fill([1, frames, 1], 220.0)
  amp = tf.fill([1, frames, 1], 0.5)
  dist = tf.constant([[[1.0, 0.5, 0.25]]]) * tf.ones([1, frames, 3])
  audio = synth.harmonic_synthesis(f0, amp, dist, HOP, SR).numpy()[0]
  assert audio.shape == (frames * HOP,)
  peaks, _, _ = _peak_bins(audio, 3)
  np.testing.assert_allclose(peaks, [220, 440, 660], atol=1.5)


def test_harmonics_above_nyquist_are_silent():
  frames = 100
  f0 = tf.fill([1, frames, 1], 3000.0)  # harmonics 3 and up (9 kHz+) are above 8 kHz
  amp = tf.ones([1, frames, 1])
  dist = tf.ones([1, frames, 10])
  audio = synth.harmonic_synthesis(f0, amp, dist, HOP, SR).numpy()[0]
  _, spectrum, freqs = _peak_bins(audio, 1)
  energy_low = np.sum(spectrum[(freqs > 2900) & (freqs < 6100)] ** 2)
  energy_alias = np.sum(spectrum[(freqs > 6500) | ((freqs > 50) & (freqs < 2500))] ** 2)
  assert energy_alias < 1e-4 * energy_low
  # The distribution is renormalised over the two audible harmonics (0.5 each): RMS 0.5.
  assert np.sqrt(np.mean(audio[HOP:-HOP] ** 2)) == pytest.approx(0.5, abs=0.01)


def test_oscillator_phase_stays_accurate_over_minutes():
  seconds = 120
  n = SR * seconds
  freq = tf.fill([1, n, 1], 1234.5)
  audio = synth.oscillator_bank(freq, tf.ones([1, n, 1]), SR).numpy()[0, -1600:]
  t = (np.arange(n - 1600, n) + 1) / SR
  expected = np.sin(2 * np.pi * 1234.5 * t)
  np.testing.assert_allclose(audio, expected, atol=1e-3)


def test_noise_filter_follows_the_requested_magnitudes():
  frames, n_mags = 500, 65
  mags = np.ones(n_mags, np.float32)
  mags[33:] = 0.05  # low-pass: -26 dB above 4 kHz
  audio = synth.filtered_noise(tf.constant(np.tile(mags, (1, frames, 1))), HOP, seed=(1, 2)).numpy()[0]
  spectrum = np.abs(np.fft.rfft(audio)) ** 2
  freqs = np.fft.rfftfreq(len(audio), 1 / SR)
  low = np.mean(spectrum[(freqs > 500) & (freqs < 3000)])
  high = np.mean(spectrum[(freqs > 5000) & (freqs < 7500)])
  assert 10 * np.log10(low / high) == pytest.approx(26.0, abs=3.0)


def test_noise_window_size_smooths_the_response():
  mags = np.zeros(65, np.float32)
  mags[20] = 1.0
  full = synth.frequency_impulse_response(tf.constant(mags[None, None]), 0).numpy()[0, 0]
  short = synth.frequency_impulse_response(tf.constant(mags[None, None]), 32).numpy()[0, 0]
  assert full.shape == short.shape == (128,)
  assert np.count_nonzero(np.abs(short) > 1e-7) <= 33  # a 32-tap window leaves at most 33 taps
  assert np.count_nonzero(np.abs(full) > 1e-7) > 100


def test_reverb_with_a_unit_impulse_is_the_identity():
  audio = tf.random.stateless_uniform([2, 16000], seed=(3, 4), minval=-1, maxval=1)
  ir = np.zeros(4800, np.float32)
  ir[0] = 1.0
  np.testing.assert_allclose(synth.reverb(audio, tf.constant(ir)).numpy(), audio.numpy(), atol=1e-6)
  ir[100] = 0.5  # an echo 100 samples later
  out = synth.reverb(audio, tf.constant(ir)).numpy()
  np.testing.assert_allclose(out[:, 100:], audio.numpy()[:, 100:] + 0.5 * audio.numpy()[:, :-100],
                             atol=1e-5)


def test_fft_convolve_matches_numpy():
  rng = np.random.default_rng(0)
  audio = rng.standard_normal(1000).astype(np.float32)
  ir = rng.standard_normal(50).astype(np.float32)
  ours = synth.fft_convolve(tf.constant(audio[None]), tf.constant(ir[None]), 0).numpy()[0]
  np.testing.assert_allclose(ours, np.convolve(audio, ir)[:1000], atol=1e-4)


def test_spectral_loss_is_zero_for_equal_and_grows_with_detuning():
  t = np.arange(16000) / SR
  ref = tf.constant(np.sin(2 * np.pi * 440 * t)[None].astype(np.float32))
  assert float(synth.spectral_loss(ref, ref)) == 0.0
  losses = [float(synth.spectral_loss(ref, tf.constant(
      np.sin(2 * np.pi * 440 * 2 ** (c / 1200) * t)[None].astype(np.float32))))
      for c in (5, 50, 300)]
  assert 0 < losses[0] < losses[1] < losses[2]


def test_upsampling_keeps_constants_and_any_length():
  for frames in (7, 250, 1001):
    x = tf.fill([2, frames, 3], 0.7)
    y = synth.upsample_with_windows(x, HOP)
    assert y.shape == (2, frames * HOP, 3)
    np.testing.assert_allclose(y.numpy()[:, HOP:-HOP], 0.7, atol=1e-5)
    z = synth.interpolate_frames(tf.reshape(tf.range(frames, dtype=tf.float32), [1, frames, 1]), HOP)
    np.testing.assert_allclose(z.numpy()[0, ::HOP, 0], np.arange(frames), atol=1e-4)
