"""Baseline for `make bench`: plain `crepe.predict`, one call per file.

Runs under the magenta side venv (which has the real `crepe` package), not
ddsp-beam's: `~/.magenta-ddsp-venv/bin/python bench/crepe_baseline.py tiny a.wav b.wav`.
Prints one JSON object: seconds per file and in total, audio seconds.
"""

import json
import sys
import time

import soundfile as sf


def main(argv):
  import crepe  # pylint: disable=g-import-not-at-top
  capacity, paths = argv[0], argv[1:]
  # Build (and warm) the model once so the timing is inference, as in a loop over a corpus.
  crepe.core.build_and_load_model(capacity)
  out = {"capacity": capacity, "files": [], "audio_s": 0.0, "wall_s": 0.0}
  for path in paths:
    audio, sr = sf.read(path, dtype="float32")
    start = time.time()
    crepe.predict(audio, sr, model_capacity=capacity, viterbi=True, step_size=4,
                  center=True, verbose=0)
    wall = time.time() - start
    out["files"].append({"path": path, "audio_s": len(audio) / sr, "wall_s": wall})
    out["audio_s"] += len(audio) / sr
    out["wall_s"] += wall
  print(json.dumps(out))


if __name__ == "__main__":
  main(sys.argv[1:])
