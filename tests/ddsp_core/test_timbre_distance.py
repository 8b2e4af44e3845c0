"""The timbre-transfer measure on one short take (fixtures: tests/fixtures/timbre/, rendered by
make_timbre_fixtures.py from the shared corpus' trumpet_bb_march MIDI; no FluidSynth here)."""

import os

import numpy as np
import pytest
import soundfile as sf

from bench import transfer_quality
from ddsp_core import timbre_distance as td
from pipelines import transfer
from tests.conftest import FIXTURES
from tests.ddsp_core.test_builtin_models import untrained_model_dir

TIMBRE = os.path.join(FIXTURES, "timbre")


@pytest.fixture(scope="module")
def clips():
  """The trumpet take (input), its notes on the FluidR3 violin (reference), on MuseScore's
  violin (another real violin) and on the FluidR3 flute (another instrument)."""
  return {name: sf.read(os.path.join(TIMBRE, name + ".flac"))[0]
          for name in ("trumpet_input", "violin_fluidr3", "violin_musescore", "flute_fluidr3")}


def test_distance_to_itself_is_zero_and_level_does_not_count(clips):
  ref = clips["violin_fluidr3"]
  assert td.distances(ref, ref) == {"mfcc": 0.0, "log_spectral_l1": 0.0}
  quieter = td.distances(0.1 * ref, ref)
  assert quieter["mfcc"] < 1e-6 and quieter["log_spectral_l1"] < 1e-6  # RMS-normalised
  with pytest.raises(ValueError, match="silent"):
    td.mfcc_distance(ref, np.zeros_like(ref))


def test_the_measure_tells_instruments_apart(clips):
  """Another real violin is much closer to the violin reference than the trumpet input is,
  and a flute playing the same notes is not scored as a violin."""
  ref = clips["violin_fluidr3"]
  d = {name: td.distances(clips[name], ref)
       for name in ("trumpet_input", "violin_musescore", "flute_fluidr3")}
  for figure in transfer_quality.FIGURES:
    assert d["violin_musescore"][figure] < 0.5 * d["trumpet_input"][figure]
    flute = td.transfer_score(d["trumpet_input"][figure], d["flute_fluidr3"][figure],
                              d["violin_musescore"][figure])
    assert flute < 0.3, (figure, flute)


def test_scores_on_one_take(clips, tmp_path):
  """The input scores 0, the other real violin 1, a real model's output a finite number."""
  ref, other, take = clips["violin_fluidr3"], clips["violin_musescore"], clips["trumpet_input"]
  as_input = transfer_quality.score_take(take, take, ref, ref, other)
  as_other = transfer_quality.score_take(take, other, ref, ref, other)
  for figure in transfer_quality.FIGURES:
    assert as_input[f"{figure}_score"] == pytest.approx(0.0, abs=1e-9)
    assert as_other[f"{figure}_score"] == pytest.approx(1.0, abs=1e-9)
    assert as_input[f"{figure}_input"] > as_input[f"{figure}_other"] > 0
  # A real (untrained, saved) model through the transfer's own per-file code.
  model = tmp_path / "violin"
  model.mkdir()
  take_wav = tmp_path / "take.wav"
  sf.write(str(take_wav), take, 16000)
  row = transfer.transfer_single(str(take_wav), f"violin={untrained_model_dir(model)}",
                                 str(tmp_path / "out.wav"),
                                 transfer.TransferConfig(crepe_model="tiny"))
  assert row["status"] == "ok" and row["octave_shift"] == 0  # no statistics: no shift
  out = transfer_quality.score_take(take, sf.read(str(tmp_path / "out.wav"))[0], ref, ref, other)
  for figure in transfer_quality.FIGURES:
    assert np.isfinite(out[f"{figure}_score"]), out
  # The model's ceiling: the reference itself through the same model (adjustments off).
  loaded = transfer.LoadedModel("violin", str(model))
  ceiling = transfer_quality.resynthesis_figures(loaded, ref, out, "tiny", str(tmp_path))
  resynthesis = sf.read(str(tmp_path / "resynthesis.wav"))[0]
  as_output = transfer_quality.score_take(take, resynthesis, ref, ref, other)
  for figure in transfer_quality.FIGURES:
    assert ceiling[f"{figure}_resynth"] > 0  # an untrained model is no real violin
    assert ceiling[f"{figure}_ceiling"] < 1.0
    # the ceiling is the score of the reference's resynthesis taken as the transfer's output
    assert ceiling[f"{figure}_ceiling"] == pytest.approx(as_output[f"{figure}_score"])
  out.update(ceiling)
  rows = [dict(out, model="m", instrument="violin", take="t", status="ok", octave_shift=0,
               f0_error_cents=12.0),
          dict(model="m", instrument="violin", take="u", status="failed", error="x")]
  assert transfer_quality.table(rows, "tiny").count("| m |") == 3
  assert "(--dry)" in transfer_quality.table(rows, "tiny", dry=True)
  assert "(--dry)" not in transfer_quality.table(rows, "tiny")
  (summary,) = transfer_quality.summarize(rows)
  assert summary["takes"] == 1 and summary["failed"] == 1
  assert summary["mfcc_score"] == out["mfcc_score"] and summary["f0_error_cents"] == 12.0
  assert summary["mfcc_ceiling"] == out["mfcc_ceiling"]
  assert summary["targets_met"] == (out["mfcc_score"] >= transfer_quality.TARGET_SCORE)


def test_score_is_undefined_when_the_measure_cannot_tell():
  assert np.isnan(td.transfer_score(1.0, 0.5, 1.0))
  assert np.isnan(td.transfer_score(1.0, 0.5, 2.0))
  assert td.transfer_score(4.0, 3.0, 2.0) == 0.5
