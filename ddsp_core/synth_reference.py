"""The harmonic synthesizer written the straightforward way: the definition the fast one keeps.

`synth.harmonic_synthesis` computes the same signal with a fraction of the
work. This module is what it is tested against (audio, gradients, long
signals) and what `make bench` times it against: every harmonic gets its own
interpolated frequency track (gathers), its own Hann-upsampled amplitude
track (`overlap_and_add` of 2 * hop windows) and its own float64 cumulative
phase, as magenta's `harmonic_synthesis` + `oscillator_bank` do.
"""

import tensorflow as tf

from ddsp_core import synth


def interpolate_frames(x, hop, endpoint=None):
  """[B, F, C] -> [B, F * hop, C] by linear interpolation with gathers."""
  x = synth._with_endpoint(x, endpoint)  # pylint: disable=protected-access
  n_frames = tf.shape(x)[1] - 1
  positions = tf.range(n_frames * hop, dtype=tf.float32) / float(hop)
  lower = tf.cast(tf.floor(positions), tf.int32)
  frac = (positions - tf.cast(lower, tf.float32))[tf.newaxis, :, tf.newaxis]
  return tf.gather(x, lower, axis=1) * (1.0 - frac) + tf.gather(x, lower + 1, axis=1) * frac


def upsample_with_windows(x, hop, endpoint=None):
  """[B, F, C] -> [B, F * hop, C] by overlap-adding Hann windows of 2 * hop."""
  x = synth._with_endpoint(x, endpoint)  # pylint: disable=protected-access
  window = tf.signal.hann_window(2 * hop)
  frames = tf.transpose(x, [0, 2, 1])[..., tf.newaxis] * window  # [B, C, F + 1, 2 hop]
  y = tf.signal.overlap_and_add(frames, hop)  # [B, C, (F + 2) hop]
  return tf.transpose(y[:, :, hop:-hop], [0, 2, 1])


def harmonic_synthesis(f0_hz, amplitude, harmonic_distribution, hop, sample_rate=16000,
                       endpoint=None, initial_phase=None, return_phase=False):
  """As `synth.harmonic_synthesis`; `initial_phase` and the phase returned are per harmonic [B, H]."""
  harmonic_hz, amplitudes = synth.harmonic_amplitudes(f0_hz, amplitude, harmonic_distribution,
                                                      sample_rate)
  next_hz = next_amps = None
  if endpoint is not None:
    next_hz, next_amps = synth.harmonic_amplitudes(*endpoint, sample_rate=sample_rate)
  return synth.oscillator_bank(interpolate_frames(harmonic_hz, hop, next_hz),
                               upsample_with_windows(amplitudes, hop, next_amps), sample_rate,
                               initial_phase, return_phase)
