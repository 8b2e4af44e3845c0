"""Training windows as `tf.train.Example`s, in magenta ddsp's layout.

Keys (float32 lists unless noted): `audio` [example_secs * sample_rate],
`audio_16k` [example_secs * 16000] (always, as magenta: its reader requires it),
`f0_hz`, `f0_confidence`, `loudness_db` [n_frames], plus `source_path`
(bytes) and `start_s` (float) so each window traces back to its recording.
n_frames = example_secs * frame_rate, plus one with padding='center'
(magenta's `TFRecordProvider(centered=True)`).
"""

import dataclasses
import json
from typing import Dict, Optional

import numpy as np

from ddsp_core import framing
from ddsp_core.features import FEATURE_KEYS
from ddsp_core.version import __version__

DATASET_INFO_FILE = "dataset.json"


@dataclasses.dataclass(frozen=True)
class WindowSpec:
  """How recordings are cut into windows; everything a reader needs."""
  sample_rate: int = 16000
  frame_rate: int = 250
  example_secs: float = 4.0
  hop_secs: float = 1.0
  padding: str = "same"

  def __post_init__(self):
    framing.check_padding(self.padding)
    framing.hop_size(16000, self.frame_rate)
    for name in ("example_secs", "hop_secs"):
      value = getattr(self, name)
      if value <= 0 or abs(value * self.frame_rate - round(value * self.frame_rate)) > 1e-9:
        raise ValueError(f"{name}={value} must be a positive multiple of 1/frame_rate")

  @property
  def n_samples(self) -> int:
    return int(round(self.example_secs * self.sample_rate))

  @property
  def n_samples_16k(self) -> int:
    return int(round(self.example_secs * 16000))

  @property
  def n_frames(self) -> int:
    n = int(round(self.example_secs * self.frame_rate))
    return n + 1 if self.padding == "center" else n

  @property
  def hop_frames(self) -> int:
    return int(round(self.hop_secs * self.frame_rate))

  @property
  def resamples_audio(self) -> bool:
    """Whether `audio` is at another rate than the 16 kHz features."""
    return self.sample_rate != 16000

  def feature_lengths(self) -> Dict[str, int]:
    # `audio_16k` is written even at 16 kHz: magenta's TFRecordProvider
    # requires it (its FixedLenFeature has no default), and magenta writes it too.
    lengths = {"audio": self.n_samples, "audio_16k": self.n_samples_16k}
    lengths.update({k: self.n_frames for k in FEATURE_KEYS})
    return lengths


def window_starts(duration_s: float, spec: WindowSpec, min_secs: float):
  """Start times of the windows of a recording, and whether the only one is padded.

  Full windows start every hop_secs while they fit. A recording shorter than
  one window (but at least `min_secs`) gives one window padded at the end; no
  other window holds padding.

  Returns:
    (starts_s, padded): list of start times in seconds, and a bool.
  """
  if duration_s < min_secs:
    return [], False
  if duration_s < spec.example_secs:
    return [0.0], True
  count = int(np.floor((duration_s - spec.example_secs) / spec.hop_secs + 1e-9)) + 1
  return [i * spec.hop_secs for i in range(count)], False


def make_example(window: Dict[str, np.ndarray], source_path: str, start_s: float):
  """A `tf.train.Example` from a window's arrays (see the module docstring)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  feature = {
      key: tf.train.Feature(float_list=tf.train.FloatList(value=np.asarray(value, np.float32)))
      for key, value in window.items()
  }
  feature["source_path"] = tf.train.Feature(
      bytes_list=tf.train.BytesList(value=[source_path.encode("utf-8")]))
  feature["start_s"] = tf.train.Feature(float_list=tf.train.FloatList(value=[start_s]))
  return tf.train.Example(features=tf.train.Features(feature=feature))


def feature_spec(spec: WindowSpec, with_provenance: bool = True):
  """`tf.io.parse_single_example` spec for the records of a dataset."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  features = {key: tf.io.FixedLenFeature([length], tf.float32)
              for key, length in spec.feature_lengths().items()}
  if with_provenance:
    features["source_path"] = tf.io.FixedLenFeature([], tf.string)
    features["start_s"] = tf.io.FixedLenFeature([], tf.float32)
  return features


def parse_example(serialized: bytes, spec: WindowSpec) -> Dict[str, np.ndarray]:
  """Parses one serialized record into numpy arrays (for tests and tools)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  parsed = tf.io.parse_single_example(serialized, feature_spec(spec))
  out = {k: v.numpy() for k, v in parsed.items()}
  out["source_path"] = out["source_path"].decode("utf-8")
  return out


def read_dataset_info(data_dir: str) -> dict:
  """Reads `dataset.json` of a prepared dataset."""
  from apache_beam.io.filesystems import FileSystems  # pylint: disable=g-import-not-at-top
  path = FileSystems.join(data_dir, DATASET_INFO_FILE)
  with FileSystems.open(path) as f:
    info = json.loads(f.read().decode("utf-8"))
  return info


def spec_from_info(info: dict) -> WindowSpec:
  return WindowSpec(sample_rate=info["sample_rate"], frame_rate=info["frame_rate"],
                    example_secs=info["example_secs"], hop_secs=info["hop_secs"],
                    padding=info["padding"])


def dataset_info(spec: WindowSpec, crepe_model: str, viterbi: bool, precision: str,
                 counts: Dict[str, int], extra: Optional[dict] = None) -> dict:
  """The content of `dataset.json`."""
  info = {
      "format": "ddsp-beam-tfrecord",
      "ddsp_beam_version": __version__,
      "sample_rate": spec.sample_rate,
      "frame_rate": spec.frame_rate,
      "example_secs": spec.example_secs,
      "hop_secs": spec.hop_secs,
      "padding": spec.padding,
      "centered": spec.padding == "center",
      "n_samples": spec.n_samples,
      "n_frames": spec.n_frames,
      "feature_lengths": spec.feature_lengths(),
      "crepe_model": crepe_model,
      "viterbi": viterbi,
      "precision": precision,
      "counts": counts,
  }
  info.update(extra or {})
  return info
