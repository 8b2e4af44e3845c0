"""The instruments of the training corpora: soundfont, GM programme, playable range, vibrato.

The names are ddsp-beam's built-in model names (`ddsp_core.builtin_models.BUILTIN_NAMES`).
`other` names the soundfont that renders "another real instrument of the same kind" for the
transfer-quality measure (bench/transfer_quality.py).
"""

import dataclasses
from typing import Tuple

SOUNDFONTS = {
    "FluidR3_GM": dict(path="/usr/share/sounds/sf2/FluidR3_GM.sf2", package="fluid-soundfont-gm"),
    "MuseScore_General": dict(path="/usr/share/sounds/sf3/MuseScore_General_Full.sf3",
                              package="musescore-general-soundfont"),
}
APT_PACKAGES = ("fluidsynth", "fluid-soundfont-gm", "musescore-general-soundfont")


@dataclasses.dataclass(frozen=True)
class Instrument:
  """One corpus: `low`..`high` are MIDI notes (sounding pitch); `avoid` notes are never the
  MIDI note of a sound (bends may pass through them); `vibrato` is (depth in cents, rate in
  Hz) of a plain vibrato; `breath` is the longest note in seconds (winds breathe)."""
  name: str
  label: str
  soundfont: str
  program: int
  low: int
  high: int
  vibrato: Tuple[float, float]
  other: str
  bank: int = 0
  avoid: Tuple[int, ...] = ()
  breath: float = 8.0
  seed: int = 0

  def notes(self):
    return [n for n in range(self.low, self.high + 1) if n not in self.avoid]


INSTRUMENTS = {
    # G3 to C7; the FluidR3 violin samples carry their own slight vibrato.
    "violin": Instrument("violin", "violin", "FluidR3_GM", 40, 55, 96, (24.0, 5.6),
                         "MuseScore_General", seed=4001),
    # C4 to C7.
    "flute": Instrument("flute", "flute", "FluidR3_GM", 73, 60, 96, (16.0, 5.0),
                        "MuseScore_General", breath=6.0, seed=4002),
    # Bb trumpet, sounding E3 to Bb5.
    "trumpet": Instrument("trumpet", "trumpet", "FluidR3_GM", 56, 52, 82, (12.0, 5.5),
                          "MuseScore_General", breath=6.0, seed=4003),
    # Sounding Ab2 to Eb5. E4-G4 (64-67) are left out as MIDI notes: in both soundfonts one
    # sample covers them and its subharmonics (0.5x, 1.5x) make f0 trackers read an octave low
    # (../shared/corpus/README.md, "Tenor sax E4-G4 growl"), which would teach a model wrong
    # pitch labels. Slides bend other notes through them.
    "tenor_saxophone": Instrument("tenor_saxophone", "tenor saxophone", "FluidR3_GM", 66, 44, 75,
                                  (20.0, 5.2), "MuseScore_General", avoid=(64, 65, 66, 67),
                                  breath=6.0, seed=4004),
    # MuseScore_General's flute: a second flute recording set, C4 to C7.
    "flute2": Instrument("flute2", "flute (MuseScore_General)", "MuseScore_General", 73, 60, 96,
                         (16.0, 5.0), "FluidR3_GM", breath=6.0, seed=4005),
}
