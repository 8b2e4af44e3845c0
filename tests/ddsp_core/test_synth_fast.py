"""The fast harmonic synthesizer against its definition: audio, gradients, pieces, XLA.

The definition is written three ways: float64 numpy here (exact up to
float64 rounding), `ddsp_core.synth_reference` (the per-harmonic TensorFlow
code ddsp-beam used before, magenta's method), and `synth.harmonic_synthesis`.
"""

import numpy as np
import tensorflow as tf

from ddsp_core import synth
from ddsp_core import synth_reference

SR, HOP, H = 16000, 64, 60


def _controls(batch, frames, seed=0):
  """Gliding f0 (some harmonics cross Nyquist), random amplitudes and distributions."""
  rng = np.random.default_rng(seed)
  glide = np.linspace(0.5, 3.0, frames)[None, :, None]
  f0 = ((150 + 250 * rng.random((batch, 1, 1))) * glide
        * (1 + 0.02 * np.sin(np.arange(frames) / 7.0))[None, :, None]).astype(np.float32)
  amp = rng.random((batch, frames, 1)).astype(np.float32)
  dist = rng.random((batch, frames, H)).astype(np.float32)
  return f0, amp, dist


def _float64_definition(f0, amp, dist):
  """Per-harmonic linear frequencies, Hann-upsampled amplitudes, float64 cumulative phases."""
  batch, frames, _ = f0.shape
  hz = f0.astype(np.float64) * np.arange(1, H + 1)
  d = np.where(hz >= SR / 2, 0.0, dist.astype(np.float64))
  a = amp * d / d.sum(-1, keepdims=True)
  ext = lambda x: np.concatenate([x, x[:, -1:]], 1)  # noqa: E731
  def up(x, w):
    x = ext(x)
    return (x[:, :-1, None] * (1 - w[:, None]) + x[:, 1:, None] * w[:, None]).reshape(
        batch, frames * HOP, -1)
  freqs = up(hz, np.arange(HOP) / HOP)
  amps = up(a, np.sin(np.pi * np.arange(HOP) / (2 * HOP)) ** 2)
  amps = np.where(freqs >= SR / 2, 0.0, amps)
  audio = (amps * np.sin(np.cumsum(freqs * 2 * np.pi / SR, axis=1))).sum(-1)
  # Samples where a harmonic is within 0.01 Hz of Nyquist: there float32 and
  # float64 may disagree on which side it is (the harmonic on or off).
  at_nyquist = (np.abs(freqs - SR / 2) < 0.01).any(-1)
  return audio, at_nyquist


def test_equals_the_float64_definition_over_twenty_seconds():
  f0, amp, dist = _controls(1, 5000)  # 20 s: 320000 samples
  truth, at_nyquist = _float64_definition(f0, amp, dist)
  assert 0 < at_nyquist.sum() < 50  # the glide takes harmonics across Nyquist (16 samples)
  keep = ~at_nyquist
  peak = np.abs(truth).max()
  fast = synth.harmonic_synthesis(tf.constant(f0), tf.constant(amp), tf.constant(dist), HOP).numpy()
  old = synth_reference.harmonic_synthesis(tf.constant(f0), tf.constant(amp), tf.constant(dist),
                                           HOP).numpy()
  # Measured over 20 s: fast 3e-5 of the peak; the per-harmonic code 2.2e-4 (its frame
  # positions are float32 sample indices / hop, which lose precision as the signal grows).
  assert np.abs(fast - truth)[keep].max() < 1e-4 * peak
  assert np.abs(old - truth)[keep].max() < 5e-4 * peak
  assert np.abs(fast - old)[keep].max() < 5e-4 * peak


def test_gradients_equal_the_reference():
  f0, amp, dist = _controls(2, 250, seed=1)
  probe = tf.sin(tf.range(250 * HOP, dtype=tf.float32) * 0.013)

  def grads(fn):
    amp_t, dist_t = tf.constant(amp), tf.constant(dist)
    with tf.GradientTape() as tape:
      tape.watch([amp_t, dist_t])
      loss = tf.reduce_sum(fn(tf.constant(f0), amp_t, dist_t, HOP) * probe)
    return [g.numpy() for g in tape.gradient(loss, [amp_t, dist_t])]

  for fast, old in zip(grads(synth.harmonic_synthesis), grads(synth_reference.harmonic_synthesis),
                       strict=True):
    # Measured: within 7e-5 of the largest gradient.
    assert np.abs(fast - old).max() < 5e-4 * np.abs(old).max()


def test_pieces_with_endpoints_and_phase_equal_a_whole_render():
  f0, amp, dist = _controls(1, 3000, seed=2)
  whole = synth.harmonic_synthesis(tf.constant(f0), tf.constant(amp), tf.constant(dist), HOP)
  pieces, phase = [], None
  bounds = [0, 777, 1500, 2999, 3000]
  for start, stop in zip(bounds[:-1], bounds[1:], strict=True):
    nxt = min(stop, 2999)
    endpoint = None if stop == 3000 else tuple(
        tf.constant(x[:, nxt:nxt + 1]) for x in (f0, amp, dist))
    piece, phase = synth.harmonic_synthesis(
        tf.constant(f0[:, start:stop]), tf.constant(amp[:, start:stop]),
        tf.constant(dist[:, start:stop]), HOP, endpoint=endpoint, initial_phase=phase,
        return_phase=True)
    pieces.append(piece.numpy())
  np.testing.assert_allclose(np.concatenate(pieces, 1), whole.numpy(), atol=2e-5)


def test_xla_compiles_and_equals_the_graph():
  f0, amp, dist = (tf.constant(x) for x in _controls(2, 300, seed=3))
  graph = tf.function(lambda *a: synth.harmonic_synthesis(*a, HOP))(f0, amp, dist)
  xla = tf.function(lambda *a: synth.harmonic_synthesis(*a, HOP), jit_compile=True)(f0, amp, dist)
  np.testing.assert_allclose(xla.numpy(), graph.numpy(), atol=2e-5)


def test_fft_convolution_compiles_with_static_shapes():
  rng = np.random.default_rng(4)
  audio = tf.constant(rng.standard_normal((2, 6400)).astype(np.float32))
  mags = tf.constant(rng.random((2, 100, 65)).astype(np.float32))
  noise = lambda: synth.filtered_noise(mags, HOP, noise=audio)  # noqa: E731
  np.testing.assert_allclose(tf.function(noise, jit_compile=True)().numpy(), noise().numpy(),
                             atol=1e-5)
