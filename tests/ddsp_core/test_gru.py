"""The GRU recurrence's hand-written backward pass against autodiff of the plain step."""

import numpy as np
import pytest
import tensorflow as tf

from ddsp_core import gru, model


def _gradients(fn, projected, state, kernel, bias, weights):
  with tf.GradientTape() as tape:
    tape.watch([projected, state, kernel, bias])
    outputs = fn(projected, state, kernel, bias)
    # A loss that weights every frame and the final state differently.
    loss = tf.reduce_sum(outputs * weights) + tf.reduce_sum(outputs[-1] ** 2)
  return outputs, tape.gradient(loss, [projected, state, kernel, bias])


@pytest.mark.parametrize("frames", [1, 2, 37])
def test_forward_and_gradients_equal_autodiff(frames):
  rng = np.random.default_rng(frames)
  units, batch = 8, 3
  projected = tf.constant(rng.normal(size=[frames, batch, 3 * units]), tf.float32)
  state = tf.constant(rng.normal(size=[batch, units]) * 0.5, tf.float32)
  kernel = tf.constant(rng.normal(size=[units, 3 * units]) * 0.4, tf.float32)
  bias = tf.constant(rng.normal(size=[3 * units]) * 0.1, tf.float32)
  weights = tf.constant(rng.normal(size=[frames, batch, units]), tf.float32)
  fast, fast_grads = _gradients(gru.gru_recurrence, projected, state, kernel, bias, weights)
  ref, ref_grads = _gradients(gru.gru_recurrence_autodiff, projected, state, kernel, bias, weights)
  np.testing.assert_allclose(fast.numpy(), ref.numpy(), rtol=0, atol=1e-6)
  for name, a, b in zip(["projected", "state", "kernel", "bias"], fast_grads, ref_grads,
                        strict=True):
    scale = np.abs(b.numpy()).max()
    assert scale > 0, name
    np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=0, atol=2e-5 * scale, err_msg=name)


def test_layer_norm_gradients_equal_autodiff():
  rng = np.random.default_rng(0)
  x = tf.constant(rng.normal(size=[2, 5, 16]) * 3 + 1, tf.float32)
  gamma = tf.constant(rng.normal(size=[16]), tf.float32)
  beta = tf.constant(rng.normal(size=[16]), tf.float32)
  weights = tf.constant(rng.normal(size=[2, 5, 16]), tf.float32)

  results = []
  for fn in (model.layer_norm, model.layer_norm_autodiff):
    with tf.GradientTape() as tape:
      tape.watch([x, gamma, beta])
      y = fn(x, gamma, beta, 1e-3)
      loss = tf.reduce_sum(tf.sin(y) * weights)
    results.append((y, tape.gradient(loss, [x, gamma, beta])))
  (fast, fast_grads), (ref, ref_grads) = results
  np.testing.assert_allclose(fast.numpy(), ref.numpy(), atol=1e-5)
  for a, b in zip(fast_grads, ref_grads, strict=True):
    np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-4 * np.abs(b.numpy()).max())


def test_decoder_in_a_compiled_function_matches_eager():
  """The custom gradients hold inside `tf.function` (as the trainer runs them)."""
  tf.random.set_seed(0)
  decoder = model.RnnFcDecoder(rnn_channels=16, ch=8, n_harmonics=4, n_noise_magnitudes=3)
  f0 = tf.random.uniform([2, 9])
  ld = tf.random.uniform([2, 9])

  def grads():
    with tf.GradientTape() as tape:
      controls, state = decoder(f0, ld)
      loss = sum(tf.reduce_sum(v ** 2) for v in controls.values()) + tf.reduce_sum(state)
    return tape.gradient(loss, decoder.trainable_variables)

  eager = grads()
  compiled = tf.function(grads)()
  assert len(eager) == len(decoder.trainable_variables)
  for a, b in zip(eager, compiled, strict=True):
    assert np.abs(a.numpy()).max() > 0
    np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)
