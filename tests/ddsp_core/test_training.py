"""Training pieces that need no dataset: the decoder's control rate below the dataset's."""

import numpy as np
import pytest

from ddsp_core import loudness
from ddsp_core import training


@pytest.mark.parametrize("padding", ["center", "same"])
@pytest.mark.parametrize("n_samples", [16000, 16001, 23456])
def test_decimated_loudness_is_loudness_computed_at_the_lower_rate(padding, n_samples):
  audio = np.random.default_rng(n_samples).standard_normal(n_samples).astype(np.float32)
  audio *= np.linspace(0.01, 1.0, n_samples, dtype=np.float32)  # a crescendo, not a constant
  at_250 = loudness.compute_loudness(audio, 16000, frame_rate=250, padding=padding)
  for model_rate in (125, 50):
    stride = training.control_stride(250, model_rate)
    direct = loudness.compute_loudness(audio, 16000, frame_rate=model_rate, padding=padding)
    example = {"loudness_db": at_250, "f0_hz": np.zeros_like(at_250),
               "f0_confidence": np.zeros_like(at_250), "audio": audio}
    decimated = training.decimate_features(example, stride)
    assert decimated["audio"] is audio
    assert decimated["f0_hz"].shape == direct.shape
    np.testing.assert_allclose(decimated["loudness_db"], direct, atol=1e-4)


def test_control_stride():
  assert training.control_stride(250, 250) == 1
  assert training.control_stride(250, 50) == 5
  for bad in (100, 500, 0):
    with pytest.raises(ValueError, match="must divide the dataset's"):
      training.control_stride(250, bad)
