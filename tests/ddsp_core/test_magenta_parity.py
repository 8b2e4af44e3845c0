"""Each DSP component against magenta ddsp 3.7.0's own output on the same inputs.

The reference outputs were computed once by magenta itself
(tests/fixtures/make_magenta_fixtures.py, in the magenta side venv) and are
read from tests/fixtures/magenta_outputs.npz: magenta is not needed here.
"""

import os

import numpy as np
import tensorflow as tf

from ddsp_core import loudness
from ddsp_core import synth
from tests.conftest import FIXTURES

REF = np.load(os.path.join(FIXTURES, "magenta_outputs.npz"))


def test_harmonic():
  amps = synth.exp_sigmoid(tf.constant(REF["harmonic_amps"]))
  dist = synth.exp_sigmoid(tf.constant(REF["harmonic_distribution"]))
  ours = synth.harmonic_synthesis(tf.constant(REF["harmonic_f0_hz"]), amps, dist, 64, 16000)
  ours = ours.numpy()[0]
  peak = np.max(np.abs(ours))
  # magenta with use_angular_cumsum=True (its accurate phase, float32 in chunks): the same
  # signal; what is left is that method's float32 phase rounding (measured 2.0e-3 of 0.88).
  assert np.max(np.abs(ours - REF["harmonic_angular"])) < 0.005 * peak
  # magenta's default (one float32 cumulative sum) is the same at first, then drifts: the
  # drift is magenta's float32 rounding (ddsp-beam accumulates the phase in float64).
  # Measured: 2.0e-4 over the first 0.1 s (as with the angular method), 0.043 after 1 s.
  default = REF["harmonic_float32"]
  assert np.max(np.abs(ours[:1600] - default[:1600])) < 5e-4 * peak
  assert np.max(np.abs(ours - default)) > 0.02 * peak


def test_filtered_noise_with_the_same_noise():
  magnitudes = synth.exp_sigmoid(tf.constant(REF["noise_magnitudes"]) - 5.0)  # initial_bias -5
  ours = synth.filtered_noise(magnitudes, 64, noise=tf.constant(REF["noise_input"][None]))
  np.testing.assert_allclose(ours.numpy()[0], REF["noise_output"], atol=1e-6)


def test_reverb():
  ours = synth.reverb(tf.constant(REF["reverb_audio"][None]), tf.constant(REF["reverb_ir"]))
  np.testing.assert_allclose(ours.numpy()[0], REF["reverb_output"], atol=1e-4, rtol=1e-5)


def test_loudness_within_a_hundredth_of_a_db():
  for padding in ("center", "same"):
    ours = loudness.compute_loudness(REF["loudness_audio"], padding=padding)
    assert ours.shape == REF[f"loudness_{padding}"].shape
    assert np.max(np.abs(ours - REF[f"loudness_{padding}"])) < 0.01  # measured 1.1e-5 dB


def test_spectral_loss():
  ours = synth.spectral_loss(REF["spectral_target"][None], REF["spectral_prediction"][None])
  np.testing.assert_allclose(float(ours), float(REF["spectral_loss"]), rtol=1e-5)
