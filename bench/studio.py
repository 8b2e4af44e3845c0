"""`make bench` section studio: how long the studio's re-render of a 20 s take takes.

The page computes a take's features once; a changed control re-runs only the
adjustments and the synthesis (the output plays then), then the output's
measurement (CREPE on the output: its f0 error). Figures, through the shipped
violin: the re-render until the output plays, and until its figures show,
each against the take's first render (decode + CREPE and loudness of the take
+ the same) in the same run.
"""

import os
import tempfile
import time

import numpy as np
import soundfile as sf

TAKE_SECONDS = 20.0


def twenty_second_take(corpus: str, path: str, gain: float = 1.0) -> str:
  """The shared trumpet take followed by the clarinet's, cut at 20 s (16 kHz WAV), times gain."""
  parts = [sf.read(os.path.join(corpus, "transfer", name), dtype="float32")[0]
           for name in ("trumpet_bb_march.wav", "clarinet_waltz.wav")]
  sf.write(path, gain * np.concatenate(parts)[:int(TAKE_SECONDS * 16000)], 16000)
  return path


def studio_figures(add, corpus: str, repeats: int = 3) -> None:
  from ddsp_core import builtin_models  # pylint: disable=g-import-not-at-top
  from jobs import studio_session  # pylint: disable=g-import-not-at-top
  if "violin" not in builtin_models.installed():
    print("section studio skipped: the shipped violin is missing")
    return
  with tempfile.TemporaryDirectory() as tmp:
    studio = studio_session.Studio(work_dir=tmp)
    config = studio_session.control_config(**studio.crepe_settings)
    warm = studio.load_take(twenty_second_take(corpus, os.path.join(tmp, "warm.wav")))
    studio.render(warm, "violin", config)  # model load, traces
    firsts, playing, measured = [], [], []
    for i in range(repeats):
      # Another file content each time, so that it is decoded and analysed afresh.
      path = twenty_second_take(corpus, os.path.join(tmp, f"take{i}.wav"), 0.9 - 0.01 * i)
      start = time.time()
      first = studio.render(studio.load_take(path), "violin", config)
      firsts.append(time.time() - start)
      start = time.time()
      louder = studio.render(studio.load_take(path), "violin", studio_session.control_config(
          loudness_shift=6.0, **studio.crepe_settings), measure=False)
      playing.append(time.time() - start)
      louder = studio.measure(louder)
      measured.append(time.time() - start)
      assert louder.seconds_features == 0 and first.seconds_features > 0
  base = round(float(np.median(firsts)), 2)
  note = f"median of {repeats}; baseline: the take's first render (decode, features, the same)"
  add(f"studio re-render of a {TAKE_SECONDS:.0f} s take, violin, until the output plays (s)",
      round(float(np.median(playing)), 2), base, note)
  add(f"studio re-render of a {TAKE_SECONDS:.0f} s take, violin, until its f0 error shows (s)",
      round(float(np.median(measured)), 2), base, note)
