"""The instrument corpora's phrase generator and MIDI code (no FluidSynth needed)."""

import numpy as np
import pytest

from instruments import midi, phrases
from instruments.catalog import INSTRUMENTS
from instruments.render import compose_corpus


def test_files_are_the_same_on_every_run():
  inst = INSTRUMENTS["violin"]
  first = [midi.encode(phrases.to_events(phrases.compose_file(inst, i)[0]), 40.0) for i in (0, 7)]
  again = [midi.encode(phrases.to_events(phrases.compose_file(inst, i)[0]), 40.0) for i in (0, 7)]
  assert first == again and first[0] != first[1]


@pytest.mark.parametrize("name", list(INSTRUMENTS))
def test_a_corpus_covers_the_range_and_avoids_the_avoided_notes(name, tmp_path):
  inst = INSTRUMENTS[name]
  files = compose_corpus(name, 11.0)
  assert sum(seconds for _, _, seconds, _ in files) >= 11 * 60
  played, kinds = set(), set()
  for stem, data, seconds, file_kinds in files:
    path = tmp_path / f"{stem}.mid"
    path.write_bytes(data)
    messages, end = midi.read(str(path))
    assert end == pytest.approx(seconds, abs=1e-3)
    played |= {m[1] for _, m in messages if m[0] & 0xF0 == 0x90 and m[2] > 0}
    kinds |= set(file_kinds)
  assert played == set(inst.notes())  # every playable note, nothing outside or avoided
  assert kinds == set(phrases.KINDS)


def test_truth_follows_notes_and_bends(tmp_path):
  line = phrases.Line(INSTRUMENTS["violin"], np.random.default_rng(0))
  line.note(69, 1.0, 3)                 # A4, no bend
  line.note(60, 2.0, 3, glide=7)        # C4 gliding up to G4 (one MIDI note)
  path = tmp_path / "t.mid"
  midi.write(str(path), phrases.to_events(line), line.t + 0.5)
  messages, _ = midi.read(str(path))
  times, f0, voiced = phrases.truth_frames(messages, 1000)
  assert not voiced[times < phrases.LEAD_IN - 1e-6].any()
  assert f0[(times > 0.6) & (times < 1.3)] == pytest.approx(440.0)
  end = f0[(times > 3.0) & (times < 3.3)]  # the glide's far end sounds G4 (bend scale applied)
  assert np.all(np.abs(1200 * np.log2(end / phrases.note_hz(67))) < 0.2)


def test_retarget_moves_notes_and_replaces_the_programme(tmp_path):
  line = phrases.Line(INSTRUMENTS["trumpet"], np.random.default_rng(0))
  line.note(60, 0.5, 2)
  path = tmp_path / "t.mid"
  midi.write(str(path), phrases.to_events(line), 1.5)
  messages, end = midi.read(str(path))
  out = tmp_path / "r.mid"
  midi.write(str(out), midi.retarget(messages, 12, 40), end)
  back, _ = midi.read(str(out))
  assert [m[1] for _, m in back if m[0] & 0xF0 == 0xC0] == [40]
  assert [m[1] for _, m in back if m[0] & 0xF0 in (0x80, 0x90)] == [72, 72]
  with pytest.raises(ValueError, match="MIDI range"):
    midi.retarget(messages, 100, 40)
