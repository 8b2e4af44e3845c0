"""The Colab's timbre-transfer adjustments on crafted inputs.

Cases (all from the definitions in magenta ddsp's Colab utilities):
- octave shift: the octave difference of note-on mean pitches, rounded toward
  zero unless it exceeds 1.5 octaves (then rounded down);
- loudness quantile matching maps the input's note-on distribution onto the target's;
- note-off frames lose `quiet` dB times (1 - note_on_value);
- the tuning factor finds a constant +30 cent detuning;
- auto-tune snaps to the offset semitone grid (chromatic) or to the best major scale;
- manual shifts, and f0 clipped to MIDI 110.
"""

import numpy as np
import pytest

from ddsp_core import adjust
from ddsp_core.features import hz_to_midi


@pytest.mark.parametrize("input_midi,target,expected", [
    (48, 72, 2),    # +2 octaves (> 1.5: floor)
    (60, 79, 1),    # +1.58 octaves: floor -> 1
    (60, 66, 1),    # +0.5: ceil -> 1
    (60, 50, 0),    # -0.83: ceil -> 0
    (60, 40, -1),   # -1.67: ceil -> -1
])
def test_octave_shift(input_midi, target, expected):
  f0 = np.full(100, adjust.midi_to_hz(input_midi))
  assert adjust.octave_shift(f0, np.ones(100, bool), target) == expected
  assert adjust.octave_shift(f0, np.zeros(100, bool), target) == 0  # no notes: no shift


def test_match_loudness_maps_distributions():
  loud = np.linspace(-60, -20, 401)
  out = adjust.match_loudness(loud, np.ones(401, bool), np.linspace(-30, -10, 1001))
  np.testing.assert_allclose(out[[0, 200, 400]], [-30, -20, -10], atol=0.1)
  assert np.all(np.diff(out) >= 0)  # monotonic


def test_match_loudness_fits_on_note_on_frames_only():
  loud = np.concatenate([np.linspace(-40, -20, 100), np.full(50, -80.0)])
  mask = np.arange(150) < 100
  out = adjust.match_loudness(loud, mask, np.linspace(-10, 0, 1001))
  np.testing.assert_allclose(out[[0, 99]], [-10, 0], atol=0.1)
  assert np.all(out[100:] == -80)  # note-off frames are left to quiet_note_off


def test_quiet_note_off():
  loud = np.full(4, -30.0)
  mask = np.array([True, False, False, True])
  value = np.array([1.5, 0.25, 1.0, 2.0])
  np.testing.assert_allclose(adjust.quiet_note_off(loud, mask, value, quiet=20),
                             [-30, -45, -30, -30])


def test_tuning_factor_finds_a_constant_detuning():
  midi = np.repeat([60.3, 62.3, 64.3, 65.3, 67.3], 40)
  factor = adjust.tuning_factor(midi, np.ones_like(midi), np.ones(len(midi), bool))
  assert factor == pytest.approx(0.3, abs=0.011)


def test_auto_tune_chromatic_and_scale():
  midi = np.array([60.3, 62.1, 63.7])
  mask = np.ones(3, bool)
  np.testing.assert_allclose(adjust.auto_tune(midi, 0.3, mask, 1.0, chromatic=True),
                             [60.3, 62.3, 63.3])
  np.testing.assert_allclose(adjust.auto_tune(midi, 0.0, mask, 0.5, chromatic=True),
                             [60.15, 62.05, 63.85])
  c_major = np.array([60.2, 62.1, 64.1, 65.2, 67.1, 69.1, 71.2, 72.1])
  tonic, _ = adjust.best_major_scale(c_major, np.ones(8, bool))
  assert adjust.NOTE_NAMES[tonic] == "C"
  tuned = adjust.auto_tune(np.append(c_major, 61.2), 0.0, np.append(np.ones(8, bool), False), 1.0)
  np.testing.assert_allclose(tuned, [60, 62, 64, 65, 67, 69, 71, 72, 62])  # C# is not in C major


def test_adjust_features_manual_shifts_and_clipping():
  n = 200
  feats = {"f0_hz": np.full(n, 440.0), "loudness_db": np.full(n, -30.0),
           "f0_confidence": np.full(n, 0.9)}
  out = adjust.adjust_features(feats, stats=None, pitch_shift=1.0, loudness_shift=5.0)
  np.testing.assert_allclose(out["f0_hz"], 880.0, rtol=1e-6)
  np.testing.assert_allclose(out["loudness_db"], -25.0)
  high = adjust.adjust_features(dict(feats, f0_hz=np.full(n, 4000.0)), pitch_shift=2.0)
  assert np.max(hz_to_midi(high["f0_hz"])) == pytest.approx(110.0)


def test_adjust_features_with_statistics():
  n = 500
  t = np.arange(n)
  loud = np.where((t // 50) % 2 == 0, -20.0, -70.0)  # notes and rests
  feats = {"f0_hz": np.full(n, adjust.midi_to_hz(48)), "loudness_db": loud,
           "f0_confidence": np.where(loud > -50, 0.95, 0.1)}
  stats = {"mean_pitch": 72.0, "loudness_quantiles": {"quantiles": list(np.linspace(-40, -5, 1001))}}
  out = adjust.adjust_features(feats, stats)
  assert out["octave_shift"] == 2
  np.testing.assert_allclose(out["f0_hz"], adjust.midi_to_hz(72), rtol=1e-5)
  on = out["mask_on"]
  assert on.sum() > 150 and (~on).sum() > 150
  # Note-on frames now sit in the dataset's range; rests were lowered further.
  assert np.all(out["loudness_db"][on] >= -40.1) and np.all(out["loudness_db"][on] <= -4.9)
  assert np.median(out["loudness_db"][~on]) < -40 - 10
  unadjusted = adjust.adjust_features(feats, stats, adjust=False)
  np.testing.assert_allclose(unadjusted["f0_hz"], feats["f0_hz"], rtol=1e-6)
