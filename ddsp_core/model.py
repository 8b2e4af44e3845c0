"""The solo-instrument autoencoder (magenta ddsp's architecture), as a `tf.Module`.

    f0_hz, loudness_db -> scaled (f0 MIDI / 127, dB / 80 + 1)
      -> RNN-FC decoder: per input a stack of (Dense, LayerNorm, leaky ReLU) x 3,
         concatenated -> GRU -> [inputs, GRU] -> stack -> Dense
      -> 1 amplitude, 60 harmonic distribution, 65 noise magnitudes
      -> Harmonic + FilteredNoise -> Add -> Reverb (trainable impulse response)

Plain `tf.Module`s (no Keras), so `tf.train.Checkpoint` and SavedModel see
exactly these variables. The model works on any number of frames: nothing is
bound to a length when it is built. Configured with gin (`ddsp_core/gin/`).
"""

import gin
import tensorflow as tf

from ddsp_core import gru, synth
from ddsp_core.loudness import DB_RANGE


def scale_f0(f0_hz):
  """f0 in Hz -> MIDI / 127 (0 Hz -> 0)."""
  midi = 12.0 * (tf.math.log(tf.maximum(f0_hz, 1e-5) / 440.0) / tf.math.log(2.0)) + 69.0
  return tf.where(f0_hz > 0.0, midi, 0.0) / 127.0


def scale_loudness(loudness_db):
  """dB -> dB / 80 + 1 (the -80 dB floor maps to 0)."""
  return loudness_db / DB_RANGE + 1.0


class Dense(tf.Module):
  """y = x W + b, Glorot-uniform initialised.

  `compute_dtype` 'bfloat16' runs the matrix product in bfloat16 (the weights
  stay float32; the product is cast back), the mixed precision of the decoder.
  """

  def __init__(self, n_in, n_out, compute_dtype="float32", name=None):
    super().__init__(name=name)
    limit = (6.0 / (n_in + n_out)) ** 0.5
    self.kernel = tf.Variable(tf.random.uniform([n_in, n_out], -limit, limit), name="kernel")
    self.bias = tf.Variable(tf.zeros([n_out]), name="bias")
    self.compute_dtype = tf.as_dtype(compute_dtype)

  def __call__(self, x):
    if self.compute_dtype == tf.float32:
      return tf.tensordot(x, self.kernel, 1) + self.bias
    y = tf.tensordot(tf.cast(x, self.compute_dtype), tf.cast(self.kernel, self.compute_dtype), 1)
    return tf.cast(y, tf.float32) + self.bias


class LayerNorm(tf.Module):

  def __init__(self, n, epsilon=1e-3, name=None):
    super().__init__(name=name)
    self.gamma = tf.Variable(tf.ones([n]), name="gamma")
    self.beta = tf.Variable(tf.zeros([n]), name="beta")
    self.epsilon = epsilon
    self.function = layer_norm  # layer_norm_autodiff: the bench's old step

  def __call__(self, x):
    return self.function(x, self.gamma, self.beta, self.epsilon)


def layer_norm_autodiff(x, gamma, beta, epsilon):
  """`layer_norm` by autodiff through `tf.nn.moments`: the definition (tests, the old step)."""
  mean, variance = tf.nn.moments(x, axes=[-1], keepdims=True)
  return (x - mean) * tf.math.rsqrt(variance + epsilon) * gamma + beta


def layer_norm(x, gamma, beta, epsilon):
  """(x - mean) / sqrt(variance + epsilon) * gamma + beta over the last axis.

  The backward pass is the closed form (three reductions over channels)
  rather than autodiff through `tf.nn.moments`, which takes twice as long;
  a solo step has nine of these on [16000, 512] activations.
  """

  @tf.custom_gradient
  def norm(x, gamma, beta):
    centred = x - tf.reduce_mean(x, axis=-1, keepdims=True)
    inv_std = tf.math.rsqrt(tf.reduce_mean(centred * centred, axis=-1, keepdims=True) + epsilon)
    normed = centred * inv_std

    def grad(dy):
      g = dy * gamma
      dx = inv_std * (g - tf.reduce_mean(g, axis=-1, keepdims=True)
                      - normed * tf.reduce_mean(g * normed, axis=-1, keepdims=True))
      channels = tf.shape(x)[-1]
      d_gamma = tf.reduce_sum(tf.reshape(dy * normed, [-1, channels]), axis=0)
      d_beta = tf.reduce_sum(tf.reshape(dy, [-1, channels]), axis=0)
      return dx, d_gamma, d_beta

    return normed * gamma + beta, grad

  return norm(x, gamma, beta)


class FcStack(tf.Module):
  """`layers` x (Dense -> LayerNorm -> leaky ReLU)."""

  def __init__(self, n_in, ch, layers=3, compute_dtype="float32", name=None):
    super().__init__(name=name)
    self.dense = [Dense(n_in if i == 0 else ch, ch, compute_dtype, name=f"dense_{i}")
                  for i in range(layers)]
    self.norm = [LayerNorm(ch, name=f"norm_{i}") for i in range(layers)]

  def __call__(self, x):
    for dense, norm in zip(self.dense, self.norm, strict=True):
      x = tf.nn.leaky_relu(norm(dense(x)))
    return x


class Gru(tf.Module):
  """A GRU over time (Keras' `reset_after` formulation), state in and out.

  Input projections for all frames are one matmul; only the recurrence runs
  in a loop (`ddsp_core.gru`, whose backward pass is written by hand).
  """

  def __init__(self, n_in, units, compute_dtype="float32", name=None):
    super().__init__(name=name)
    self.units = units
    self.input_kernel = Dense(n_in, 3 * units, compute_dtype, name="input")
    self.recurrent_kernel = Dense(units, 3 * units, compute_dtype, name="recurrent")
    self.recurrence = gru.gru_recurrence  # gru_recurrence_autodiff: the bench's old step

  def __call__(self, x, state=None):
    """x: [B, F, n_in]; state: [B, units] or None. Returns ([B, F, units], [B, units])."""
    if state is None:
      state = tf.zeros([tf.shape(x)[0], self.units])
    projected = tf.transpose(self.input_kernel(x), [1, 0, 2])  # [F, B, 3u]
    outputs = self.recurrence(projected, state, self.recurrent_kernel.kernel,
                                 self.recurrent_kernel.bias,
                                 self.recurrent_kernel.compute_dtype)  # [F, B, u]
    return tf.transpose(outputs, [1, 0, 2]), outputs[-1]


@gin.configurable
class RnnFcDecoder(tf.Module):
  """magenta's RnnFcDecoder: input stacks -> GRU -> output stack -> controls.

  `compute_dtype` 'bfloat16' computes the hidden layers' matrix products in
  bfloat16 (weights, layer norms, the GRU state and the output layer stay
  float32): `ddsp-beam train --precision bfloat16`.
  """

  def __init__(self, rnn_channels=512, ch=512, layers_per_stack=3, n_harmonics=60,
               n_noise_magnitudes=65, compute_dtype="float32", name="decoder"):
    super().__init__(name=name)
    if compute_dtype not in ("float32", "bfloat16"):
      raise ValueError(f"compute_dtype {compute_dtype!r}: float32 or bfloat16")
    self.compute_dtype = compute_dtype
    self.input_stacks = [FcStack(1, ch, layers_per_stack, compute_dtype, name=f"input_stack_{i}")
                         for i in range(2)]
    self.rnn = Gru(2 * ch, rnn_channels, compute_dtype, name="gru")
    self.output_stack = FcStack(2 * ch + rnn_channels, ch, layers_per_stack, compute_dtype,
                                name="output_stack")
    self.splits = (1, n_harmonics, n_noise_magnitudes)
    self.output_dense = Dense(ch, sum(self.splits), name="output")

  def __call__(self, f0_scaled, ld_scaled, state=None):
    x = tf.concat([self.input_stacks[0](ld_scaled[..., tf.newaxis]),
                   self.input_stacks[1](f0_scaled[..., tf.newaxis])], axis=-1)
    rnn_out, state = self.rnn(x, state)
    y = self.output_dense(self.output_stack(tf.concat([x, rnn_out], axis=-1)))
    amps, harmonics, noise = tf.split(y, self.splits, axis=-1)
    return {"amps": amps, "harmonic_distribution": harmonics, "noise_magnitudes": noise}, state


@gin.configurable
class Autoencoder(tf.Module):
  """Features (f0_hz, loudness_db per frame) -> audio.

  Args:
    sample_rate: Output sample rate in Hz.
    frame_rate: Control frames per second (hop = sample_rate / frame_rate).
    reverb_length: Samples of the trainable impulse response (0: no reverb).
    noise_window_size: Window of the noise filters' impulse responses.
    noise_initial_bias: Added to noise magnitudes before scaling (starts quiet).
  """

  def __init__(self, sample_rate=16000, frame_rate=250, reverb_length=48000,
               noise_window_size=0, noise_initial_bias=-5.0, decoder=None, name="autoencoder"):
    super().__init__(name=name)
    if sample_rate % frame_rate:
      raise ValueError("frame_rate must divide sample_rate")
    self.sample_rate = sample_rate
    self.frame_rate = frame_rate
    self.hop = sample_rate // frame_rate
    self.decoder = decoder or RnnFcDecoder()
    self.noise_window_size = noise_window_size
    self.noise_initial_bias = noise_initial_bias
    self.reverb_ir = (tf.Variable(tf.random.normal([reverb_length], stddev=1e-6), name="reverb_ir")
                      if reverb_length else None)

  def controls(self, f0_hz, loudness_db, state=None):
    """Synthesizer controls from features ([B, F] each)."""
    out, state = self.decoder(scale_f0(f0_hz), scale_loudness(loudness_db), state)
    return {
        "f0_hz": f0_hz[..., tf.newaxis],
        "amplitude": synth.exp_sigmoid(out["amps"]),
        "harmonic_distribution": synth.exp_sigmoid(out["harmonic_distribution"]),
        "noise_magnitudes": synth.exp_sigmoid(out["noise_magnitudes"] + self.noise_initial_bias),
    }, state

  def synthesize(self, controls, seed=None, noise=None):
    """Audio from controls; `seed` (pair of ints) or `noise` ([B, T] in [-1, 1)) fixes the noise."""
    harmonic = synth.harmonic_synthesis(controls["f0_hz"], controls["amplitude"],
                                        controls["harmonic_distribution"], self.hop,
                                        self.sample_rate)
    noise = synth.filtered_noise(controls["noise_magnitudes"], self.hop,
                                 self.noise_window_size, seed=seed, noise=noise)
    audio = harmonic + noise
    if self.reverb_ir is not None:
      audio = synth.reverb(audio, self.reverb_ir)
    return audio

  def __call__(self, f0_hz, loudness_db, seed=None, noise=None):
    """[B, F] f0 (Hz) and loudness (dB) -> [B, F * hop] audio (see `synthesize` for the noise)."""
    controls, _ = self.controls(f0_hz, loudness_db)
    return self.synthesize(controls, seed, noise)

  @property
  def n_parameters(self):
    return int(sum(v.shape.num_elements() for v in self.trainable_variables))
