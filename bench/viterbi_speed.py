"""Banded Viterbi (ddsp_core.crepe.viterbi_bins) against hmmlearn's dense decoder.

Ten minutes of frames at 250 frames/s (150000 x 360): the fixture's crepe
activations tiled, so the path crosses real note changes and ties. Prints the
CPU and wall time of each and checks that the paths are equal (hmmlearn, no
longer a dependency, must be installed for the comparison).

    .venv/bin/python -m bench.viterbi_speed [--frames 150000]
"""

import argparse
import importlib.util
import os
import time

import numpy as np

from ddsp_core import crepe

FIXTURE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                       "tests", "fixtures", "crepe_reference.npz")


def hmmlearn_bins(activation: np.ndarray) -> np.ndarray:
  """crepe's own decoding (to_viterbi_cents): hmmlearn on the peak bins."""
  from hmmlearn import hmm  # pylint: disable=g-import-not-at-top
  transition, emission, initial = crepe._viterbi_matrices()  # pylint: disable=protected-access
  model = hmm.CategoricalHMM(crepe.N_BINS, init_params="", params="")
  model.startprob_, model.transmat_, model.emissionprob_ = initial, transition, emission
  observations = np.argmax(activation, axis=1)
  return model.predict(observations.reshape(-1, 1), [len(observations)])


def timed(fn, *args):
  cpu, wall = time.process_time(), time.perf_counter()
  out = fn(*args)
  return out, time.process_time() - cpu, time.perf_counter() - wall


def main():
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--frames", type=int, default=150000)
  args = p.parse_args()
  clip = np.load(FIXTURE)["activation_tiny_clip"]
  act = np.tile(clip, (int(np.ceil(args.frames / len(clip))), 1))[:args.frames]
  ours, ours_cpu, ours_wall = timed(crepe.viterbi_bins, act)
  print(f"{len(act)} frames x {crepe.N_BINS} bins")
  print(f"banded (numpy):  {ours_cpu:7.2f} s CPU  {ours_wall:7.2f} s wall")
  if importlib.util.find_spec("hmmlearn") is None:
    print("hmmlearn is not installed (no longer a dependency): pip install hmmlearn to compare")
    return
  theirs, their_cpu, their_wall = timed(hmmlearn_bins, act)
  print(f"hmmlearn dense:  {their_cpu:7.2f} s CPU  {their_wall:7.2f} s wall")
  print(f"speed-up: {their_cpu / ours_cpu:.1f}x CPU, {their_wall / ours_wall:.1f}x wall; "
        f"paths equal: {np.array_equal(ours, theirs)}")


if __name__ == "__main__":
  main()
