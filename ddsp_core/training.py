"""Training pieces: gin settings, Adam with a decaying learning rate, compiled steps, data.

The training *job* (model dirs, checkpoints, resuming, summaries) is
`jobs/train.py`; this module is what it and the tests share.
"""

import glob
import os
from typing import Dict, Optional, Sequence

import gin
import tensorflow as tf

from ddsp_core import synth

GIN_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "gin")


@gin.configurable("train")
def train_settings(batch_size=16, learning_rate=3e-4, decay_steps=10000, decay_rate=0.98,
                   grad_clip_norm=3.0, shuffle_buffer=1000):
  """Training hyperparameters (gin scope `train`), magenta's defaults."""
  return dict(batch_size=batch_size, learning_rate=learning_rate, decay_steps=decay_steps,
              decay_rate=decay_rate, grad_clip_norm=grad_clip_norm, shuffle_buffer=shuffle_buffer)


def resolve_gin_file(name: str) -> str:
  """A gin file path: as given if it exists, else from ddsp_core/gin/."""
  if os.path.exists(name):
    return name
  candidate = os.path.join(GIN_DIR, name if name.endswith(".gin") else name + ".gin")
  if os.path.exists(candidate):
    return candidate
  raise FileNotFoundError(f"gin file {name!r} not found (built-in: "
                          f"{', '.join(sorted(os.listdir(GIN_DIR)))})")


def parse_gin(gin_files: Sequence[str], bindings: Sequence[str] = ()) -> None:
  """Clears gin and parses files (built-in names allowed) and bindings."""
  from ddsp_core import model  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
  gin.clear_config()
  gin.add_config_file_search_path(GIN_DIR)
  gin.parse_config_files_and_bindings([resolve_gin_file(f) for f in gin_files], list(bindings))


PRECISIONS = ("float32", "bfloat16")


def precision_bindings(precision: Optional[str]) -> list:
  """The gin binding for the decoder's compute precision (none for None)."""
  if precision is None:
    return []
  if precision not in PRECISIONS:
    raise ValueError(f"precision {precision!r}: one of {', '.join(PRECISIONS)}")
  return [f"RnnFcDecoder.compute_dtype = '{precision}'"]


class Adam(tf.Module):
  """Adam with exponential learning-rate decay; its step counter is the training step."""

  def __init__(self, variables, learning_rate=3e-4, decay_steps=10000, decay_rate=0.98,
               beta1=0.9, beta2=0.999, epsilon=1e-7, name="adam"):
    super().__init__(name=name)
    self.iterations = tf.Variable(0, dtype=tf.int64, trainable=False, name="iterations")
    self.m = [tf.Variable(tf.zeros_like(v), trainable=False, name="m") for v in variables]
    self.v = [tf.Variable(tf.zeros_like(v), trainable=False, name="v") for v in variables]
    self.learning_rate0 = learning_rate
    self.decay_steps, self.decay_rate = decay_steps, decay_rate
    self.beta1, self.beta2, self.epsilon = beta1, beta2, epsilon

  def learning_rate(self, step=None):
    step = tf.cast(self.iterations if step is None else step, tf.float32)
    return self.learning_rate0 * self.decay_rate ** (step / self.decay_steps)

  def apply(self, grads, variables):
    lr = self.learning_rate()
    self.iterations.assign_add(1)
    t = tf.cast(self.iterations, tf.float32)
    lr_t = lr * tf.sqrt(1.0 - self.beta2 ** t) / (1.0 - self.beta1 ** t)
    for g, var, m, v in zip(grads, variables, self.m, self.v, strict=True):
      if g is None:
        continue
      m.assign(self.beta1 * m + (1.0 - self.beta1) * g)
      v.assign(self.beta2 * v + (1.0 - self.beta2) * tf.square(g))
      var.assign_sub(lr_t * m / (tf.sqrt(v) + self.epsilon))


def default_strategy() -> Optional[tf.distribute.Strategy]:
  """MirroredStrategy over all GPUs when there are several; None (one device) otherwise."""
  gpus = tf.config.list_logical_devices("GPU")
  return tf.distribute.MirroredStrategy() if len(gpus) > 1 else None


class Trainer(tf.Module):
  """Compiled train and eval steps of an autoencoder on batches of windows.

  Deterministic: the synthesizer's noise at step n is drawn from the
  stateless generator with seed (seed, n), so the same seed, weights and
  batches give the same loss curve (and a resumed run draws what an
  uninterrupted one would at each step).

  `jit_compile` compiles the train step with XLA (the batches' shapes must be
  static: `make_dataset` drops the remainder, so they are).

  With a `tf.distribute` strategy (e.g. MirroredStrategy on several GPUs),
  build the model inside `strategy.scope()`: each replica computes gradients
  on its share of the batch, they are averaged across replicas, and the
  optimizer updates the mirrored variables once, in cross-replica context.
  """

  def __init__(self, model, settings: Optional[Dict] = None, jit_compile: bool = False,
               strategy: Optional[tf.distribute.Strategy] = None, seed: int = 0):
    super().__init__(name="trainer")
    self.model = model
    self.settings = settings or train_settings()
    self.strategy = strategy
    self.seed = int(seed)
    # autograph=False: the steps have no tensor-dependent Python control flow, and
    # converting every function they call cost about a third of a run's start-up.
    if strategy is None:
      self.optimizer = self._make_optimizer()
      self.train_step = tf.function(self._train_step, jit_compile=jit_compile, autograph=False)
    else:
      with strategy.scope():
        self.optimizer = self._make_optimizer()
      self.train_step = tf.function(self._distributed_train_step, autograph=False)
    self.eval_step = tf.function(self._eval_step, autograph=False)

  def _make_optimizer(self):
    return Adam(self.model.trainable_variables, self.settings["learning_rate"],
                self.settings["decay_steps"], self.settings["decay_rate"])

  def _gradients(self, batch):
    variables = self.model.trainable_variables
    with tf.GradientTape() as tape:
      loss, _ = self._loss(batch)
    return loss, tape.gradient(loss, variables)

  def _distributed_train_step(self, batch):
    """`batch` comes from `strategy.experimental_distribute_dataset`."""
    losses, grads = self.strategy.run(self._gradients, args=(batch,))
    mean = tf.distribute.ReduceOp.MEAN
    loss = self.strategy.reduce(mean, losses, axis=None)
    grads = [self.strategy.reduce(mean, g, axis=None) for g in grads]
    grads, norm = tf.clip_by_global_norm(grads, self.settings["grad_clip_norm"])
    self.optimizer.apply(grads, self.model.trainable_variables)
    return {"loss": loss, "grad_norm": norm}

  def _noise(self, f0_hz):
    """[B, F * hop] uniform noise in [-1, 1), a function of (seed, step, replica)."""
    shape = [synth.dim(f0_hz, 0), synth.dim(f0_hz, 1) * self.model.hop]
    replica = tf.distribute.get_replica_context()
    replica_id = replica.replica_id_in_sync_group if replica is not None else 0
    seed = tf.stack([tf.constant(self.seed, tf.int64),
                     self.optimizer.iterations * 1024 + tf.cast(replica_id, tf.int64)])
    return tf.random.stateless_uniform(shape, seed, -1.0, 1.0)

  def _loss(self, batch, noise=None):
    f0_hz = batch["f0_hz"]
    noise = self._noise(f0_hz) if noise is None else noise
    audio = self.model(f0_hz, batch["loudness_db"], noise=noise)
    target = batch["audio"]
    audio = audio[:, :synth.dim(target, 1)]  # centred frames give one hop more
    return synth.spectral_loss(target, audio), audio

  def _train_step(self, batch):
    variables = self.model.trainable_variables
    loss, grads = self._gradients(batch)
    grads, norm = tf.clip_by_global_norm(grads, self.settings["grad_clip_norm"])
    self.optimizer.apply(grads, variables)
    return {"loss": loss, "grad_norm": norm}

  def _eval_step(self, batch):
    f0_hz = batch["f0_hz"]
    noise = synth.positional_noise(synth.dim(f0_hz, 0), 0, synth.dim(f0_hz, 1) * self.model.hop,
                                   (0, 0))
    return self._loss(batch, noise)


def dataset_files(data_dir: str, split: str):
  return sorted(glob.glob(os.path.join(data_dir, f"{split}.tfrecord-*")))


FRAME_FEATURES = ("f0_hz", "f0_confidence", "loudness_db")


def control_stride(data_frame_rate: int, model_frame_rate: int) -> int:
  """Dataset frames per model frame (1: the same rate); raises unless it divides."""
  if model_frame_rate <= 0 or data_frame_rate % model_frame_rate:
    raise ValueError(f"the model's frame rate ({model_frame_rate}) must divide the dataset's "
                     f"({data_frame_rate}); set Autoencoder.frame_rate")
  return data_frame_rate // model_frame_rate


def decimate_features(example: Dict, stride: int) -> Dict:
  """Keeps every `stride`-th frame of the per-frame features (audio untouched).

  Frame i of the result is frame i * stride of the input, the frame centred
  (or starting) on the same sample as frame i computed at the lower rate: for
  loudness (512-sample windows, longer than any hop down to 31.25 frames/s)
  it is exactly that, for CREPE's f0 what it would be up to Viterbi's
  smoothing. Both are smooth at a frame's scale, so nothing aliases that the
  features computed at the model's rate would not carry. Counts also agree:
  'center' n // hop + 1 and 'same' ceil(n / hop) frames (`ddsp_core.framing`).

  Args:
    example: {'f0_hz', 'f0_confidence', 'loudness_db': [..., F], ...}.
    stride: Dataset frames per model frame.

  Returns:
    The same dict with those features at [..., ceil(F / stride)].
  """
  if stride == 1:
    return example
  return {k: (v[..., ::stride] if k in FRAME_FEATURES else v) for k, v in example.items()}


def make_dataset(files: Sequence[str], feature_spec: Dict, batch_size: int, model_sample_rate: int,
                 data_sample_rate: int, shuffle_buffer: int = 1000, repeat: bool = True,
                 seed: Optional[int] = None, drop_remainder: bool = True,
                 stride: int = 1) -> tf.data.Dataset:
  """Batches of {'audio' (at the model's rate), 'f0_hz', 'f0_confidence', 'loudness_db'}.

  `stride` > 1 feeds a model whose decoder runs at a lower frame rate than
  the dataset's (`decimate_features`): no dataset has to be prepared again.
  """
  audio_key = "audio" if data_sample_rate == model_sample_rate else "audio_16k"
  if audio_key not in feature_spec:
    raise ValueError(f"the dataset has no audio at the model's {model_sample_rate} Hz")
  keys = (audio_key, "f0_hz", "f0_confidence", "loudness_db")
  spec = {k: feature_spec[k] for k in keys}

  def parse(record):
    ex = tf.io.parse_single_example(record, spec)
    return decimate_features({"audio": ex[audio_key], "f0_hz": ex["f0_hz"],
                              "f0_confidence": ex["f0_confidence"],
                              "loudness_db": ex["loudness_db"]}, stride)
  ds = tf.data.TFRecordDataset(list(files), num_parallel_reads=tf.data.AUTOTUNE)
  if repeat:
    ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True).repeat()
  ds = ds.map(parse, num_parallel_calls=tf.data.AUTOTUNE)
  return ds.batch(batch_size, drop_remainder=drop_remainder).prefetch(tf.data.AUTOTUNE)
