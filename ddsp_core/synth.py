"""Differentiable synthesis: harmonic oscillators, filtered noise, FFT convolution, reverb.

TensorFlow functions on batches; every length is taken from the inputs at run
time, so one model serves any number of frames. Shapes: batch B, frames F,
samples T (= F * hop), harmonics H.
"""

import math

import tensorflow as tf

TWO_PI = 2.0 * math.pi


def exp_sigmoid(x, exponent=10.0, max_value=2.0, threshold=1e-7):
  """Exponentiated sigmoid, magenta's scale function for amplitudes.

  Args:
    x: Tensor of network outputs.
    exponent: Sets the slope (sigmoid ** log(exponent)).
    max_value: Upper limit.
    threshold: Lower limit, keeps gradients and logs finite.

  Returns:
    Tensor like `x`, in [threshold, max_value + threshold].
  """
  x = tf.convert_to_tensor(x, tf.float32)
  return max_value * tf.nn.sigmoid(x) ** math.log(exponent) + threshold


def _with_endpoint(x, endpoint):
  """Appends the frame after the last one (given, or the last repeated)."""
  return tf.concat([x, x[:, -1:, :] if endpoint is None else endpoint], axis=1)


def dim(x, axis):
  """A dimension: a Python int when the shape is static (XLA needs constants), else a tensor."""
  static = x.shape[axis]
  return static if static is not None else tf.shape(x)[axis]


def linear_weights(hop):
  """[hop] weight of the next frame for linear interpolation: r / hop."""
  return tf.range(hop, dtype=tf.float32) / float(hop)


def hann_weights(hop):
  """[hop] weight of the next frame for overlapping Hann windows: sin^2(pi r / (2 hop)).

  Two periodic Hann windows of 2 * hop overlapping by hop sum to one; at
  sample r after a frame the next frame's window is at w[r] and the current
  one's at w[r + hop] = 1 - w[r].
  """
  return tf.signal.hann_window(2 * hop)[:hop]


def _upsample(x, hop, next_weights, endpoint=None):
  """[B, F, C] -> [B, F * hop, C]: (1 - w[r]) x[m] + w[r] x[m + 1] at sample m * hop + r."""
  x = _with_endpoint(x, endpoint)
  w = next_weights[:, tf.newaxis]  # [hop, 1]
  y = x[:, :-1, tf.newaxis, :] * (1.0 - w) + x[:, 1:, tf.newaxis, :] * w  # [B, F, hop, C]
  return tf.reshape(y, [dim(x, 0), (dim(x, 1) - 1) * hop, dim(x, 2)])


def interpolate_frames(x, hop, endpoint=None):
  """Linear interpolation of frame-rate controls to the sample rate.

  Frame k sits at sample k * hop; samples after the last frame move toward
  `endpoint` (the next frame, when a long signal is rendered in pieces) or
  hold the last value.

  Args:
    x: [B, F, C] frame-rate values.
    hop: Samples per frame.
    endpoint: Optional [B, 1, C] frame that follows.

  Returns:
    [B, F * hop, C].
  """
  return _upsample(x, hop, linear_weights(hop), endpoint)


def upsample_with_windows(x, hop, endpoint=None):
  """Upsamples frame-rate amplitudes with overlapping Hann windows (magenta's method).

  Smoother than linear interpolation for amplitudes (no corners at frame
  boundaries). As magenta, the frame after the last is the last repeated,
  unless `endpoint` gives it (rendering in pieces). Equal to overlap-adding
  Hann windows of 2 * hop, computed as an interpolation (`hann_weights`).

  Args:
    x: [B, F, C] frame-rate values.
    hop: Samples per frame.
    endpoint: Optional [B, 1, C] frame that follows.

  Returns:
    [B, F * hop, C].
  """
  return _upsample(x, hop, hann_weights(hop), endpoint)


def remove_above_nyquist(frequencies, amplitudes, sample_rate=16000):
  """Zeroes amplitudes of components at or above the Nyquist frequency."""
  return tf.where(frequencies >= sample_rate / 2.0, tf.zeros_like(amplitudes), amplitudes)


def oscillator_bank(frequencies, amplitudes, sample_rate=16000, initial_phase=None,
                    return_phase=False):
  """Sum of sinusoids with independent sample-wise frequencies and amplitudes.

  The general (and costly) oscillator: each component's phase is its own
  cumulative sum. `harmonic_synthesis` does not need it (a harmonic's phase
  is a multiple of the fundamental's). The phase is accumulated in float64
  and wrapped, so it stays accurate over signals of any length (a float32
  cumulative sum drifts audibly after a few seconds at high frequencies).

  Args:
    frequencies: [B, T, H] in Hz.
    amplitudes: [B, T, H].
    sample_rate: Hz.
    initial_phase: Optional float64 [B, H] phase before the first sample
      (continuing a previous piece).
    return_phase: Also return the float64 [B, H] phase after the last sample.

  Returns:
    [B, T] audio (and the final phase).
  """
  amplitudes = remove_above_nyquist(frequencies, amplitudes, sample_rate)
  omegas = tf.cast(frequencies, tf.float64) * (TWO_PI / sample_rate)
  phases = tf.cumsum(omegas, axis=1)
  if initial_phase is not None:
    phases += initial_phase[:, tf.newaxis, :]
  phases = tf.math.floormod(phases, TWO_PI)
  audio = tf.reduce_sum(amplitudes * tf.sin(tf.cast(phases, tf.float32)), axis=-1)
  return (audio, phases[:, -1, :]) if return_phase else audio


def fundamental_phase(f0_hz, hop, sample_rate=16000, endpoint=None, initial_phase=None):
  """The fundamental's phase at every sample, wrapped to [0, 2 pi).

  Accumulated in float64 (one track, not one per harmonic), so it stays
  accurate over signals of any length; harmonic k's phase is k times it.

  Args:
    f0_hz: [B, F, 1] frame-rate fundamental in Hz.
    hop: Samples per frame.
    sample_rate: Hz.
    endpoint: Optional [B, 1, 1] f0 of the following frame.
    initial_phase: Optional float64 [B, 1] phase before the first sample.

  Returns:
    (f0 at the sample rate [B, T] float32, wrapped phase [B, T] float64).
  """
  f0_samples = interpolate_frames(f0_hz, hop, endpoint)[..., 0]
  phase = tf.cumsum(tf.cast(f0_samples, tf.float64) * (TWO_PI / sample_rate), axis=1)
  if initial_phase is not None:
    phase += initial_phase
  return f0_samples, tf.math.floormod(phase, TWO_PI)


def harmonic_amplitudes(f0_hz, amplitude, harmonic_distribution, sample_rate=16000):
  """Per-harmonic frequencies and amplitudes [B, F, H] at frame rate.

  The distribution is zeroed above Nyquist and normalised to sum to 1.
  """
  n_harmonics = harmonic_distribution.shape[-1]
  harmonic_hz = f0_hz * tf.range(1, n_harmonics + 1, dtype=tf.float32)
  distribution = remove_above_nyquist(harmonic_hz, harmonic_distribution, sample_rate)
  distribution = tf.math.divide_no_nan(distribution,
                                       tf.reduce_sum(distribution, axis=-1, keepdims=True))
  return harmonic_hz, amplitude * distribution


def harmonic_synthesis(f0_hz, amplitude, harmonic_distribution, hop, sample_rate=16000,
                       endpoint=None, initial_phase=None, return_phase=False):
  """Harmonic oscillator from frame-rate controls.

  The same signal as `oscillator_bank` over the harmonics' linearly
  interpolated frequencies and Hann-upsampled amplitudes (magenta's
  definition; `ddsp_core/synth_reference.py` computes it that way), with
  the minimum of work:
  - one float64 phase track (the fundamental's), harmonic k at k times it;
  - amplitudes never upsampled one track at a time: per frame, the sum over
    harmonics of a[m] * sin and of a[m + 1] * sin (two batched matrix
    products), blended by the Hann weights of each sample.
  The per-sample Nyquist mask is kept: a harmonic is silent on the samples
  where its interpolated frequency reaches sample_rate / 2.

  Args:
    f0_hz: [B, F, 1] fundamental frequency.
    amplitude: [B, F, 1] overall amplitude.
    harmonic_distribution: [B, F, H] relative amplitudes (normalised here to
      sum to 1 over the harmonics below Nyquist).
    hop: Samples per frame.
    sample_rate: Hz.
    endpoint: Optional (f0_hz, amplitude, harmonic_distribution) of the
      following frame, each [B, 1, .] (rendering in pieces).
    initial_phase: Optional float64 [B, 1] fundamental phase to continue from.
    return_phase: Also return the fundamental's final phase.

  Returns:
    [B, F * hop] audio (and the final float64 [B, 1] phase).
  """
  _, amplitudes = harmonic_amplitudes(f0_hz, amplitude, harmonic_distribution, sample_rate)
  next_f0 = next_amps = None
  if endpoint is not None:
    next_f0 = endpoint[0]
    _, next_amps = harmonic_amplitudes(*endpoint, sample_rate=sample_rate)
  f0_samples, phase = fundamental_phase(f0_hz, hop, sample_rate, next_f0, initial_phase)
  amplitudes = _with_endpoint(amplitudes, next_amps)  # [B, F + 1, H]
  batch, n_frames, n_harmonics = dim(f0_hz, 0), dim(f0_hz, 1), amplitudes.shape[-1]
  k = tf.range(1, n_harmonics + 1, dtype=tf.float32)
  # Wrapped in float64, then scaled in float32: k * phase is within 2 pi k, so
  # the rounding is a few 1e-5 rad for the top harmonic, whatever the length.
  waves = tf.sin(tf.cast(phase, tf.float32)[..., tf.newaxis] * k)  # [B, T, H]
  waves = tf.where(f0_samples[..., tf.newaxis] * k >= sample_rate / 2.0, 0.0, waves)
  waves = tf.reshape(waves, [batch, n_frames, hop, n_harmonics])
  current = tf.einsum("bfrh,bfh->bfr", waves, amplitudes[:, :-1])
  following = tf.einsum("bfrh,bfh->bfr", waves, amplitudes[:, 1:])
  w = hann_weights(hop)
  audio = tf.reshape(current * (1.0 - w) + following * w, [batch, n_frames * hop])
  if return_phase:
    return audio, phase[:, -1:]
  return audio


def _next_power_of_2(n):
  if isinstance(n, int):
    return 1 << max(0, (n - 1).bit_length())
  return tf.cast(2 ** tf.math.ceil(tf.math.log(tf.cast(n, tf.float32)) / math.log(2.0)), tf.int32)


def _ceil_div(a, b):
  if isinstance(a, int) and isinstance(b, int):
    return -(-a // b)
  return tf.cast(tf.math.ceil(a / b), tf.int32)


def fft_convolve_full(audio, impulse_response):
  """Full convolution of audio with one impulse response per equal frame.

  The audio is cut into as many equal frames as there are impulse
  responses; each frame is convolved with its response by FFT and the
  results are overlap-added.

  Args:
    audio: [B, T].
    impulse_response: [B, F, K] or [B, K] (one response for the whole signal).

  Returns:
    [B, >= T + K - 1]: the full convolution (zeros past T + K - 1).
  """
  if impulse_response.shape.rank == 2:
    impulse_response = impulse_response[:, tf.newaxis, :]
  # Sizes are Python ints when the shapes are static, so XLA sees constants.
  audio_size = dim(audio, 1)
  n_ir_frames = dim(impulse_response, 1)
  ir_size = dim(impulse_response, 2)
  frame_size = _ceil_div(audio_size, n_ir_frames)
  frames = tf.signal.frame(audio, frame_size, frame_size, pad_end=True)  # [B, F, frame]
  fft_size = _next_power_of_2(frame_size + ir_size - 1)
  spectrum = tf.signal.rfft(frames, [fft_size]) * tf.signal.rfft(impulse_response, [fft_size])
  return tf.signal.overlap_and_add(tf.signal.irfft(spectrum, [fft_size]), frame_size)


def fft_convolve(audio, impulse_response, delay_compensation=-1):
  """`fft_convolve_full`, cut to the input's length ('same' padding).

  Args:
    audio: [B, T].
    impulse_response: [B, F, K] or [B, K].
    delay_compensation: Samples trimmed from the start; -1 trims the group
      delay of a centred linear-phase response ((K - 1) // 2 - 1, as
      magenta), 0 keeps the output aligned with a causal response (reverb).

  Returns:
    [B, T].
  """
  ir_size = dim(impulse_response, -1)
  start = (ir_size - 1) // 2 - 1 if delay_compensation < 0 else delay_compensation
  return fft_convolve_full(audio, impulse_response)[:, start:start + dim(audio, 1)]


def frequency_impulse_response(magnitudes, window_size=0):
  """Linear-phase FIR filters from frequency-sampled magnitudes.

  Args:
    magnitudes: [B, F, M] linear magnitudes at M frequencies from 0 to Nyquist.
    window_size: Hann window length applied to the response (shorter =
      smoother frequency response); 0 or more than the response uses its
      full length 2 (M - 1).

  Returns:
    [B, F, 2 (M - 1)] causal responses centred at (M - 1).
  """
  ir = tf.signal.irfft(tf.complex(magnitudes, tf.zeros_like(magnitudes)))  # zero-phase
  ir_size = ir.shape[-1]
  if window_size <= 0 or window_size > ir_size:
    window_size = ir_size
  window = tf.signal.hann_window(window_size)  # periodic: peak at window_size // 2
  # Centre the window on the zero-phase response (peak at index 0, wrapping).
  half = (window_size + 1) // 2
  window = tf.concat([window[half:], tf.zeros([ir_size - window_size]), window[:half]], 0)
  ir = ir * window
  return tf.roll(ir, shift=ir_size // 2, axis=-1)  # causal, centred at ir_size // 2


def positional_noise(batch, start, n_samples, seed):
  """Uniform noise in [-1, 1) that depends only on (seed, sample index).

  A counter-based hash (32-bit, in int64 arithmetic) of each sample's index:
  a signal rendered in pieces gets exactly the noise of a whole render.

  Args:
    batch: Batch size (rows differ by seed).
    start: Index of the first sample.
    n_samples: Number of samples.
    seed: Pair of ints.

  Returns:
    float32 [batch, n_samples].
  """
  mask = 0xFFFFFFFF
  index = tf.cast(start, tf.int64) + tf.range(tf.cast(n_samples, tf.int64), dtype=tf.int64)
  rows = tf.range(tf.cast(batch, tf.int64), dtype=tf.int64)[:, tf.newaxis]
  key = (int(seed[0]) * 0x27D4EB2D + int(seed[1]) * 0x165667B1) & mask
  x = (index[tf.newaxis, :] + rows * 0x3C6EF372 + key) & mask
  for shift, multiplier in ((16, 0x7FEB352D), (15, 0x5BD1E995), (16, 0x2C1B3C6D)):
    x = ((x ^ tf.bitwise.right_shift(x, shift)) * multiplier) & mask
  x = x ^ tf.bitwise.right_shift(x, 16)
  return tf.cast(x, tf.float32) * (2.0 / 4294967296.0) - 1.0


def filtered_noise(magnitudes, hop, window_size=0, seed=None, noise=None, start_sample=0,
                   full=False):
  """White noise shaped by a time-varying FIR filter per frame.

  Args:
    magnitudes: [B, F, M] filter magnitudes per frame.
    hop: Samples per frame.
    window_size: See `frequency_impulse_response`.
    seed: None for fresh random noise on every call; a pair of ints for
      reproducible noise (`positional_noise`, which depends only on the
      sample index, so pieces of a long signal get the noise of the whole).
    noise: Optional [B, F * hop] noise to filter instead (tests, parity).
    start_sample: Index of the first sample (rendering in pieces).
    full: Return the full convolution ([B, >= F * hop + K - 1], not yet
      shifted by `NOISE_DELAY(K)`) for overlap-adding pieces.

  Returns:
    [B, F * hop] audio (or the full convolution).
  """
  if noise is None:
    batch, n = dim(magnitudes, 0), dim(magnitudes, 1) * hop
    noise = (tf.random.uniform([batch, n], -1.0, 1.0) if seed is None else
             positional_noise(batch, start_sample, n, seed))
  ir = frequency_impulse_response(magnitudes, window_size)
  if full:
    return fft_convolve_full(noise, ir)
  return fft_convolve(noise, ir, delay_compensation=noise_delay(ir.shape[-1]))


def noise_delay(ir_size: int) -> int:
  """Samples trimmed from the filtered noise: magenta's (K - 1) // 2 - 1.

  The responses peak at K // 2, so this leaves the noise 2 samples (0.1 ms)
  early for K = 128, as magenta does: the same noise in, the same audio out.
  """
  return (ir_size - 1) // 2 - 1


def reverb(audio, impulse_response):
  """Adds a wet signal: audio convolved with a causal impulse response.

  The response's first sample (the dry path) is ignored; the dry signal is
  added unchanged, so a unit impulse leaves the audio as it is.

  Args:
    audio: [B, T].
    impulse_response: [K] or [B, K].

  Returns:
    [B, T].
  """
  if impulse_response.shape.rank == 1:
    impulse_response = tf.broadcast_to(impulse_response[tf.newaxis, :],
                                       [dim(audio, 0), dim(impulse_response, 0)])
  wet_ir = tf.concat([tf.zeros_like(impulse_response[:, :1]), impulse_response[:, 1:]], axis=1)
  return audio + fft_convolve(audio, wet_ir, delay_compensation=0)


def _safe_log(x, eps=1e-5):
  return tf.math.log(tf.where(x <= 0.0, eps, x))


def spectral_loss(target, prediction, fft_sizes=(2048, 1024, 512, 256, 128, 64),
                  mag_weight=1.0, logmag_weight=1.0):
  """Multi-scale spectral loss (magenta's solo-instrument settings).

  For each FFT size, 75% overlap: mean L1 distance of magnitudes and of log
  magnitudes (as magenta's `safe_log`, exact zeros count as 1e-5).

  Args:
    target: [B, T] audio.
    prediction: [B, T] audio.
    fft_sizes: STFT sizes.
    mag_weight: Weight of the magnitude term.
    logmag_weight: Weight of the log-magnitude term.

  Returns:
    Scalar loss.
  """
  loss = 0.0
  for size in fft_sizes:
    def mag(x, size=size):
      return tf.abs(tf.signal.stft(x, size, size // 4, size, pad_end=True))
    t, p = mag(target), mag(prediction)
    if mag_weight:
      loss += mag_weight * tf.reduce_mean(tf.abs(t - p))
    if logmag_weight:
      loss += logmag_weight * tf.reduce_mean(tf.abs(_safe_log(t) - _safe_log(p)))
  return loss
