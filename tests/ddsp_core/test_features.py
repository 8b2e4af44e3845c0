"""compute_features: layout, blocked processing and accuracy on real recordings."""

import os

import numpy as np
import pytest

from ddsp_core import audio
from ddsp_core import crepe
from ddsp_core import features
from ddsp_core import framing
from tests.conftest import corpus_truth, raw_pitch_accuracy, tone


def _glide(seconds, sample_rate=16000):
  """A tone whose pitch steps and glides, with gaps: exercises Viterbi."""
  t = np.arange(int(seconds * sample_rate)) / sample_rate
  f = 220 * 2 ** (np.floor(t * 2) % 5 / 12 + 0.3 * np.sin(2 * np.pi * 0.3 * t))
  phase = 2 * np.pi * np.cumsum(f) / sample_rate
  gate = (np.sin(2 * np.pi * 0.7 * t) > -0.8).astype(np.float64)
  return (0.4 * gate * (np.sin(phase) + 0.3 * np.sin(2 * phase))).astype(np.float32)


def _assert_same_features(blocked, whole):
  """Equal, except that Viterbi may take another of several equally likely
  paths on a few frames (see test_blocked_viterbi_path_is_as_likely_as_whole):
  measured 18 of 3001 frames of the glide, at one onset after a gap, 1-55
  cents apart."""
  for key in ("f0_confidence", "loudness_db"):
    np.testing.assert_allclose(blocked[key], whole[key], atol=1e-5, err_msg=key)
  differ = np.abs(blocked["f0_hz"] - whole["f0_hz"]) > 1e-2
  assert np.mean(differ) < 0.01
  cents = 1200 * np.abs(np.log2(blocked["f0_hz"][differ] / whole["f0_hz"][differ]))
  assert np.all(cents < 100)  # never a semitone away


def _path_log_prob(bins, observations):
  transition, emission, initial = crepe._viterbi_matrices()  # pylint: disable=protected-access
  with np.errstate(divide="ignore"):
    return (np.log(initial[bins[0]]) + np.sum(np.log(transition[bins[:-1], bins[1:]]))
            + np.sum(np.log(emission[bins, observations])))


def test_blocked_viterbi_path_is_as_likely_as_whole():
  """Blocks decoded with context, stitched, give a path exactly as likely as
  whole-signal decoding: where the two differ, they chose between tied paths
  (which one wins a tie depends on float rounding, so on where decoding began;
  measured here: the two paths differ on 18 frames)."""
  x = _glide(12.0)
  hop = 64
  n = 1 + len(x) // hop
  frames = framing.frame_signal(x, crepe.FRAME_SIZE, hop, 0, n, "center")
  act = crepe.get_model("tiny").activations(frames)
  whole = crepe.viterbi_bins(act)
  stitched = np.empty_like(whole)
  block, context = 400, features.VITERBI_CONTEXT_FRAMES
  for start in range(0, n, block):
    stop = min(n, start + block)
    lo, hi = max(0, start - context), min(n, stop + context)
    stitched[start:stop] = crepe.viterbi_bins(act[lo:hi])[start - lo:stop - lo]
  observations = np.argmax(act, axis=1)
  best = _path_log_prob(whole, observations)
  assert np.isfinite(best)
  assert _path_log_prob(stitched, observations) == pytest.approx(best, rel=1e-9)


@pytest.mark.parametrize("padding,frames", [("center", 501), ("same", 500)])
def test_keys_and_lengths(padding, frames):
  feats = features.compute_features(tone(330, 2.0, harmonics=3), model="tiny", padding=padding)
  assert set(feats) == set(features.FEATURE_KEYS)
  for key, value in feats.items():
    assert value.shape == (frames,) and value.dtype == np.float32, key


def test_other_frame_rates():
  feats = features.compute_features(tone(330, 1.0, harmonics=3), frame_rate=100, model="tiny")
  assert len(feats["f0_hz"]) == 101
  assert np.median(feats["f0_hz"][20:-20]) == pytest.approx(330, rel=0.01)


def test_blocks_equal_whole_with_viterbi():
  x = _glide(12.0)
  net = crepe.get_model("tiny")
  whole = features.compute_features(x, crepe_model=net, block_frames=10 ** 6)
  blocked = features.compute_features(x, crepe_model=net, block_frames=400)
  _assert_same_features(blocked, whole)


def test_blocks_equal_whole_through_the_cascade():
  # Low frames go through full as well, high ones stay with small: each frame's route is its own,
  # so blocks of 37 frames (without Viterbi: no context to share) read what the whole does.
  x = np.concatenate([_glide(1.0), tone(880.0, 1.0, amplitude=0.4, harmonics=3)])
  net = crepe.get_model("cascade", "float32")
  whole = features.compute_f0(x, frame_rate=100, crepe_model=net, viterbi=False,
                              block_frames=10 ** 6)
  net.frames = net.full_frames = 0
  blocked = features.compute_f0(x, frame_rate=100, crepe_model=net, viterbi=False,
                                block_frames=37)
  assert net.frames == len(whole[0]) == 201
  assert 0.3 < net.full_frames / net.frames < 0.9  # both routes taken
  np.testing.assert_allclose(blocked[0], whole[0], rtol=1e-5)
  np.testing.assert_allclose(blocked[1], whole[1], atol=1e-5)
  np.testing.assert_allclose(whole[0][-80:-10], 880.0, rtol=0.01)


@pytest.mark.slow
def test_ten_minute_file_blocks_equal_whole():
  x = np.tile(_glide(20.0), 30)  # 10 minutes
  net = crepe.get_model("tiny")
  whole = features.compute_features(x, crepe_model=net, block_frames=10 ** 7)
  blocked = features.compute_features(x, crepe_model=net)
  _assert_same_features(blocked, whole)


@pytest.mark.parametrize("relpath", ["train/violin/violin_dminor_aria", "transfer/cello_dminor"])
def test_raw_pitch_accuracy_with_tiny(corpus, relpath):
  x, _ = audio.load_audio(os.path.join(corpus, relpath + ".wav"))
  f0, _ = features.compute_f0(x, model="tiny", viterbi=True)
  truth, scored = corpus_truth(os.path.join(corpus, "truth", relpath + ".csv"))
  assert len(truth) == len(f0)  # same frame grid as the corpus truth
  cents = 1200 * np.abs(np.log2(np.maximum(f0[scored], 1e-3) / truth[scored]))
  assert np.mean(cents <= 50) >= 0.94


def test_hz_to_midi():
  np.testing.assert_allclose(features.hz_to_midi(np.array([440.0, 880.0, 0.0])), [69, 81, 0])


def test_f0_at_a_lower_rate_is_interpolated_onto_the_frame_grid(corpus):
  x, _ = audio.load_audio(os.path.join(corpus, "train", "violin", "violin_dminor_aria.wav"))
  net = crepe.get_model("tiny")
  full = features.compute_features(x, crepe_model=net)
  low = features.compute_features(x, crepe_model=net, f0_rate=100)
  assert len(low["f0_hz"]) == len(full["f0_hz"])
  np.testing.assert_array_equal(low["loudness_db"], full["loudness_db"])
  confident = full["f0_confidence"] > 0.8
  cents = 1200 * np.abs(np.log2(low["f0_hz"][confident] / full["f0_hz"][confident]))
  assert np.mean(cents < 20) > 0.95
  truth, scored = corpus_truth(os.path.join(corpus, "truth", "train", "violin", "violin_dminor_aria.csv"))
  rpa = raw_pitch_accuracy(low["f0_hz"], truth, scored)
  assert rpa >= 0.94


def test_context_secs_holds_the_viterbi_context_in_frames():
  assert features.context_secs(250) == 3  # 500 frames = 2 s, plus a CREPE frame
  assert features.context_secs(100) == 6
  assert features.context_secs(50) == 11
  assert features.context_secs(50, viterbi=False) == 1


def test_skipping_silent_frames_keeps_voiced_features(corpus):
  """The lever is off by default; at -70 dB it runs CREPE only on the frames that sound (here
  about 1 in 8 is skipped), gives the skipped ones f0 0 and confidence 0, and leaves the
  voiced frames as they were (Viterbi may take another of tied paths on a few)."""
  x, _ = audio.load_audio(os.path.join(corpus, "transfer", "trumpet_bb_march.wav"))
  net = crepe.get_model("tiny")
  run = []

  class Counting:
    def activations(self, frames):
      run.append(len(frames))
      return net.activations(frames)

  full = features.compute_features(x, crepe_model=Counting())
  n = len(full["f0_hz"])
  assert sum(run) == n
  run.clear()
  skipping = features.compute_features(x, crepe_model=Counting(), skip_silent_db=-70.0)
  skipped = n - sum(run)
  assert 0.05 * n < skipped < 0.5 * n
  silent = skipping["f0_confidence"] == 0
  assert np.sum(silent) == skipped and np.all(skipping["f0_hz"][silent] == 0)
  np.testing.assert_array_equal(skipping["loudness_db"], full["loudness_db"])
  voiced = (full["f0_confidence"] >= 0.5) & ~silent
  np.testing.assert_allclose(skipping["f0_confidence"][~silent], full["f0_confidence"][~silent],
                             atol=1e-5)  # other batches: the last float bit may differ
  _assert_same_features({k: v[voiced] for k, v in skipping.items()},
                        {k: v[voiced] for k, v in full.items()})
