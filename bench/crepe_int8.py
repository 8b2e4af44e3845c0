"""CREPE in int8 through TensorFlow Lite (XNNPACK), a lever measured by bench.pitch_levers.

    .venv/bin/python -m bench.pitch_levers --configs full/int8/100,full/bfloat16/100

Not part of ddsp_core: it is measured, not adopted (see bench/results/*-pitch*.md). The network is
ddsp_core.crepe's (`CrepeModel.network`: the same graph and weights) converted by TensorFlow's own
post-training quantisation: weights and activations in int8, calibrated on frames of the
instrument corpora in instruments/corpus (rendered from this repo's own phrases, not from the
shared corpus that is scored). Frames are normalised in numpy, as CrepeModel does in its graph,
so that only the convolutions and the classifier are quantised. "int8-weights" quantises the
weights only (dynamic range: activations stay float).
"""

import glob
import os

import numpy as np

from ddsp_core import audio as audio_lib
from ddsp_core import crepe as crepe_lib
from ddsp_core import framing

BATCH = 64
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def calibration_frames(n_frames: int = 2048, seed: int = 0) -> np.ndarray:
  """[n_frames, 1024] normalised frames drawn from the rendered instrument corpora."""
  paths = sorted(glob.glob(os.path.join(REPO, "instruments", "corpus", "*", "audio", "*.wav")))
  if not paths:
    raise FileNotFoundError("no instrument corpus to calibrate on: make instruments renders it")
  rng = np.random.default_rng(seed)
  per_file = max(1, n_frames // len(paths))
  chosen = []
  for path in paths:
    audio, _ = audio_lib.load_audio(path)
    frames = framing.frame_signal(audio, crepe_lib.FRAME_SIZE, 160, 0,
                                  framing.num_frames(len(audio), 160, "center"), "center")
    loud = np.std(frames, axis=1) > 1e-3  # sounding frames only: silence calibrates nothing
    idx = np.flatnonzero(loud)
    chosen.append(frames[rng.choice(idx, size=min(per_file, len(idx)), replace=False)])
  return normalise(np.concatenate(chosen))


def normalise(frames: np.ndarray) -> np.ndarray:
  frames = np.asarray(frames, np.float32)
  mean = frames.mean(axis=1, keepdims=True)
  std = np.maximum(frames.std(axis=1, keepdims=True), 1e-8)
  return (frames - mean) / std


class Int8Crepe:
  """CrepeModel's `activations` through a TFLite int8 (or int8-weights) model."""

  def __init__(self, model: str = "full", mode: str = "int8"):
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    net = crepe_lib.CrepeModel(model, "float32")
    forward = tf.function(net.network, autograph=False, input_signature=[
        tf.TensorSpec([BATCH, crepe_lib.FRAME_SIZE], tf.float32)])

    converter = tf.lite.TFLiteConverter.from_concrete_functions([forward.get_concrete_function()])
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if mode == "int8":
      calib = calibration_frames()

      def representative():
        for start in range(0, len(calib) - BATCH + 1, BATCH):
          yield [calib[start:start + BATCH]]

      converter.representative_dataset = representative
    elif mode != "int8-weights":
      raise ValueError(f"mode must be int8 or int8-weights, got {mode!r}")
    self.model, self.precision = model, mode
    self._interpreter = tf.lite.Interpreter(model_content=converter.convert(),
                                            num_threads=os.cpu_count())
    self._interpreter.allocate_tensors()
    self._input = self._interpreter.get_input_details()[0]["index"]
    self._output = self._interpreter.get_output_details()[0]["index"]
    self.flops_per_frame = net.flops_per_frame

  def activations(self, frames: np.ndarray) -> np.ndarray:
    """[n, 1024] raw 16 kHz frames -> [n, 360] activations, as CrepeModel.activations."""
    frames = normalise(frames)
    out = np.empty((len(frames), crepe_lib.N_BINS), np.float32)
    for start in range(0, len(frames), BATCH):
      batch = frames[start:start + BATCH]
      n = len(batch)
      if n < BATCH:
        batch = np.concatenate([batch, np.zeros((BATCH - n, crepe_lib.FRAME_SIZE), np.float32)])
      self._interpreter.set_tensor(self._input, np.ascontiguousarray(batch))
      self._interpreter.invoke()
      out[start:start + n] = self._interpreter.get_tensor(self._output)[:n]
    return out
