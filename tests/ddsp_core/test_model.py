"""The autoencoder: sizes, any length, gradients everywhere."""

import numpy as np
import pytest
import tensorflow as tf

from ddsp_core import model as model_lib
from ddsp_core import synth
from ddsp_core import training


def _build(gin_file="tiny_instrument.gin", params=()):
  training.parse_gin([gin_file], params)
  return model_lib.Autoencoder()


def test_parameter_counts():
  assert _build("solo_instrument.gin").n_parameters == pytest.approx(4.8e6, rel=0.03)
  assert _build("tiny_instrument.gin").n_parameters == pytest.approx(0.25e6, rel=0.1)


@pytest.mark.parametrize("frames", [50, 250, 1001])
def test_any_number_of_frames(frames):
  model = _build()
  audio = model(tf.fill([2, frames], 330.0), tf.fill([2, frames], -30.0), seed=(0, 0))
  assert audio.shape == (2, frames * 64)
  assert np.all(np.isfinite(audio.numpy()))


def test_gradients_reach_every_trainable_variable():
  model = _build(params=["RnnFcDecoder.rnn_channels = 16", "RnnFcDecoder.ch = 8",
                         "Autoencoder.reverb_length = 1000"])
  f0 = tf.fill([2, 100], 220.0)
  ld = tf.linspace(-60.0, -10.0, 100)[tf.newaxis] * tf.ones([2, 1])
  target = tf.random.stateless_uniform([2, 6400], seed=(1, 1), minval=-0.5, maxval=0.5)
  with tf.GradientTape() as tape:
    loss = synth.spectral_loss(target, model(f0, ld, seed=(0, 0)))
  grads = tape.gradient(loss, model.trainable_variables)
  names = [v.name for v, g in zip(model.trainable_variables, grads, strict=True)
           if g is None or not np.any(g.numpy())]
  assert names == []


def test_scaling():
  np.testing.assert_allclose(model_lib.scale_f0(tf.constant([440.0, 0.0])).numpy(), [69 / 127, 0])
  np.testing.assert_allclose(model_lib.scale_loudness(tf.constant([-80.0, 0.0])).numpy(), [0, 1])


def test_adam_steps_and_decay():
  v = tf.Variable([1.0, -1.0])
  opt = training.Adam([v], learning_rate=0.1, decay_steps=10, decay_rate=0.5)
  for _ in range(10):
    opt.apply([tf.constant([1.0, -1.0])], [v])
  assert int(opt.iterations.numpy()) == 10
  # Constant gradients: each step moves by the learning rate of that step.
  moved = sum(0.1 * 0.5 ** (k / 10) for k in range(10))
  np.testing.assert_allclose(v.numpy(), [1 - moved, -1 + moved], atol=1e-4)
  assert float(opt.learning_rate()) == pytest.approx(0.05)
