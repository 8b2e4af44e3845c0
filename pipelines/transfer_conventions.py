"""A model's conventions for timbre transfer: the features it was trained on, the rate it renders at.

A model is fed features computed as its dataset's were, and its audio is read
at its own rate:

- frame rate and sample rate: the model's own (`Autoencoder.frame_rate`,
  `.sample_rate`; its hop is sample_rate / frame_rate samples);
- padding: the framing of its dataset's features, recorded in model.json by
  `train` (the dataset's settings) and by `import-model` (magenta's
  `TFRecordProvider.centered`); 'same' when none is recorded.

Features are always analysed at 16 kHz (CREPE's rate), as `prepare` does, so
they depend on the frame rate and padding only: inputs are analysed once per
(frame rate, padding) among the models (`Conventions.analysis`).
"""

import dataclasses
import json
import os
import time
from typing import Optional

import numpy as np

from ddsp_core import crepe as crepe_lib
from ddsp_core import features as features_lib
from ddsp_core import framing
from ddsp_core import model_dir as model_dir_lib

ANALYSIS_SAMPLE_RATE = crepe_lib.MODEL_SAMPLE_RATE
# ddsp-beam's `prepare` default and magenta's (`TFRecordProvider.centered = False`).
DEFAULT_PADDING = "same"


@dataclasses.dataclass(frozen=True)
class Conventions:
  """How a model's features are framed and its audio sampled.

  Attributes:
    frame_rate: Feature frames per second (the model's).
    padding: 'center' or 'same': the framing of the features it was trained on.
    sample_rate: Hz of the audio the model renders.
  """
  frame_rate: int
  padding: str
  sample_rate: int

  @property
  def analysis(self) -> tuple:
    """What an input's features depend on (they are always analysed at 16 kHz)."""
    return (self.frame_rate, self.padding)


def model_padding(model_path: str) -> str:
  """The padding ('center' or 'same') of the features a model dir's model was trained on.

  From model.json's dataset settings; `DEFAULT_PADDING` when it records none.
  """
  info = {}
  info_path = os.path.join(model_path, model_dir_lib.MODEL_INFO_FILE)
  if os.path.exists(info_path):
    with open(info_path, encoding="utf-8") as f:
      info = json.load(f)
  return framing.check_padding((info.get("dataset") or {}).get("padding") or DEFAULT_PADDING)


def model_conventions(model_path: str, model) -> Conventions:
  """The conventions of a loaded model: rates from the model, padding from its model.json.

  Args:
    model_path: The model dir.
    model: The `Autoencoder` built from that dir.

  Raises:
    ValueError: The padding is unknown, or the frame rate cannot be analysed at 16 kHz.
  """
  framing.hop_size(ANALYSIS_SAMPLE_RATE, model.frame_rate)  # the features' hop at 16 kHz
  return Conventions(int(model.frame_rate), model_padding(model_path), int(model.sample_rate))


def compute_features(audio: np.ndarray, conventions: Conventions, viterbi: bool,
                     crepe_model, f0_rate: Optional[int] = None) -> dict:
  """f0_hz, f0_confidence and loudness_db of 16 kHz audio on a model's frame grid.

  Args:
    audio: float32 [n_samples] at 16 kHz.
    conventions: The model's `Conventions`.
    viterbi: Viterbi-smooth the pitch track.
    crepe_model: A built `CrepeModel` or `CascadeModel`.
    f0_rate: CREPE's frames per second, interpolated onto the model's frame
      grid (None: at the model's frame rate).

  Returns:
    Dict of float32 arrays [n_frames] (`framing.num_frames` at the model's hop and padding).
  """
  return features_lib.compute_features(audio, ANALYSIS_SAMPLE_RATE, conventions.frame_rate,
                                       viterbi=viterbi, padding=conventions.padding,
                                       crepe_model=crepe_model, f0_rate=f0_rate)


def input_features(audio: np.ndarray, conventions: Conventions, viterbi: bool, crepe_model,
                   analyses: Optional[dict] = None, f0_rate: Optional[int] = None) -> dict:
  """`compute_features` of an input, once per convention.

  Args:
    audio: float32 [n_samples] at 16 kHz.
    conventions: The model's `Conventions`.
    viterbi: Viterbi-smooth the pitch track.
    crepe_model: A built `CrepeModel` or `CascadeModel`.
    analyses: This input's memo, `Conventions.analysis` -> result: models that
      share a convention share one analysis.
    f0_rate: As in `compute_features`.

  Returns:
    {'features': the features, 'seconds': the time their analysis took}.
  """
  analyses = {} if analyses is None else analyses
  if conventions.analysis not in analyses:
    started = time.time()
    feats = compute_features(audio, conventions, viterbi, crepe_model, f0_rate)
    analyses[conventions.analysis] = {"features": feats, "seconds": time.time() - started}
  return analyses[conventions.analysis]


def output_samples(n_input: int, sample_rate: int) -> int:
  """Samples at `sample_rate` that last as long as `n_input` samples at 16 kHz."""
  return int(round(n_input * sample_rate / ANALYSIS_SAMPLE_RATE))
