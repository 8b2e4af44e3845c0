"""Rendering recordings of any length with a trained model, in pieces, without seams.

A whole-file pass would need memory in proportion to the file (harmonic
synthesis alone holds samples x harmonics in float64). Here the features go
through the model a piece at a time, and everything that crosses a piece
boundary is carried over exactly:

- the GRU state (the decoder continues where it stopped);
- the oscillators' phases (float64);
- the frame after the piece (the interpolation endpoint);
- the noise (`positional_noise` depends only on the sample index) and its
  filters' convolution tails (overlap-added);
- the reverb tail (the dry signal is convolved once, by blocks, with scipy).

So the result equals a whole-file render up to float rounding.
"""

from typing import Optional, Tuple

import numpy as np
import scipy.signal
import tensorflow as tf

from ddsp_core import synth

PIECE_SECONDS = 10  # of audio per piece, whatever the model's frame and sample rates


class Renderer:
  """Features -> audio with a loaded `Autoencoder`, piece by piece.

  Features are frames at `model.frame_rate`; each frame renders `model.hop`
  samples at `model.sample_rate`.

  Args:
    model: A `ddsp_core.model.Autoencoder` (weights restored).
    piece_frames: Frames per piece (bounds memory; not a result); None:
      `PIECE_SECONDS` at the model's frame rate (10 s of audio at any hop).
    seed: Pair of ints for the noise (the same seed gives the same audio).
  """

  def __init__(self, model, piece_frames: Optional[int] = None,
               seed: Tuple[int, int] = (0, 0)):
    self.model = model
    self.piece_frames = piece_frames or PIECE_SECONDS * model.frame_rate
    self.seed = seed
    units = model.decoder.rnn.units
    self._controls = tf.function(model.controls, input_signature=[
        tf.TensorSpec([1, None], tf.float32), tf.TensorSpec([1, None], tf.float32),
        tf.TensorSpec([1, units], tf.float32)], autograph=False)
    self._piece = tf.function(self._render_piece, autograph=False)

  def _render_piece(self, controls, endpoint, phase, start_sample):
    harmonic, phase = synth.harmonic_synthesis(
        controls["f0_hz"], controls["amplitude"], controls["harmonic_distribution"],
        self.model.hop, self.model.sample_rate,
        endpoint=(endpoint["f0_hz"], endpoint["amplitude"], endpoint["harmonic_distribution"]),
        initial_phase=phase, return_phase=True)
    noise = synth.filtered_noise(controls["noise_magnitudes"], self.model.hop,
                                 self.model.noise_window_size, seed=self.seed,
                                 start_sample=start_sample, full=True)
    return harmonic, phase, noise

  def render(self, f0_hz: np.ndarray, loudness_db: np.ndarray) -> np.ndarray:
    """Audio for frame-rate features.

    Args:
      f0_hz: float [n_frames] in Hz.
      loudness_db: float [n_frames] in dB.

    Returns:
      float32 [n_frames * model.hop] audio at the model's sample rate.
    """
    hop = self.model.hop
    n = len(f0_hz)
    total = n * hop
    f0 = np.asarray(f0_hz, np.float32)[np.newaxis]
    ld = np.asarray(loudness_db, np.float32)[np.newaxis]
    harmonic = np.zeros(total, np.float32)
    ir_size = 2 * (self.model.decoder.splits[2] - 1)
    noise_full = np.zeros(total + ir_size, np.float32)
    state = tf.zeros([1, self.model.decoder.rnn.units])
    phase = tf.zeros([1, 1], tf.float64)  # the fundamental's (harmonics are multiples)
    starts = list(range(0, n, self.piece_frames))
    current, state = self._controls(f0[:, :self.piece_frames], ld[:, :self.piece_frames], state)
    for i, start in enumerate(starts):
      stop = min(n, start + self.piece_frames)
      if i + 1 < len(starts):
        following, state = self._controls(f0[:, stop:stop + self.piece_frames],
                                          ld[:, stop:stop + self.piece_frames], state)
        endpoint = {k: v[:, :1] for k, v in following.items()}
      else:
        following = None
        endpoint = {k: v[:, -1:] for k, v in current.items()}  # hold the last frame
      piece, phase, noise = self._piece(current, endpoint, phase, tf.constant(start * hop, tf.int64))
      harmonic[start * hop:stop * hop] = piece.numpy()[0]
      valid = min((stop - start) * hop + ir_size - 1, noise.shape[1])
      noise_full[start * hop:start * hop + valid] += noise.numpy()[0, :valid]
      current = following
    delay = synth.noise_delay(ir_size)
    dry = harmonic + noise_full[delay:delay + total]
    if self.model.reverb_ir is None:
      return dry
    wet_ir = self.model.reverb_ir.numpy().copy()
    wet_ir[0] = 0.0  # the dry path is added as is
    wet = scipy.signal.oaconvolve(dry, wet_ir)[:total].astype(np.float32)
    return dry + wet

