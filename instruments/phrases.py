"""Seeded solo phrases for the instrument training corpora, as MIDI events.

`compose_file(instrument, index)` writes one file's worth (about 30 s) of monophonic playing:
a sequence of phrases drawn from

  scale        major/minor scales over one or two octaves, up, down or both; legato, detached
               or staccato; the last note held with vibrato
  arpeggio     triads and sevenths of the key over up to two and a half octaves
  melody       a random walk over the scale with mixed rhythms, vibrato on long notes, a
               crescendo or diminuendo over the phrase, a rest inside now and then
  long_tones   held notes (up to the instrument's breath): crescendo, diminuendo or swell, with
               or without delayed vibrato
  run          fast legato runs with turns (sixteenths and sextuplets at 120-168 BPM)
  slides       pitch-bend glides of 1-7 semitones inside one MIDI note, scoops and falls
  repeated     repeated staccato notes on one to three pitches
  chromatic    a chromatic sweep over the whole range, low to high or high to low

Each phrase has its own tempo (56-168 BPM), dynamic level (pp..ff: MIDI velocity and CC11
expression together) and register (uniform over the instrument's range, so the whole range
is played; the chromatic sweeps visit every note). Keys change every few phrases. Rests of
0.3-1.4 s separate phrases. Everything comes from `numpy.random.default_rng([seed, index])`,
so a file is the same on every machine and every run.

Bends use a 12-semitone range; FluidSynth scales it by 127/128 (measured by the shared corpus'
build: +600 cents nominal sounds as 595.0), so bend values are chosen for the sounding pitch
and the truth (`truth_frames`) applies the same factor.
"""

from typing import Dict, List

import numpy as np

from instruments import midi
from instruments.catalog import Instrument

SAMPLE_RATE, HOP = 16000, 64  # truth frames: 250 per second, frame i at i * 4 ms
BEND_RANGE = 12                # semitones (RPN 0)
BEND_SCALE = 127.0 / 128.0     # FluidSynth's pitch-wheel sensitivity scaling
LEAD_IN, TAIL = 0.5, 1.0       # s of silence before the first note and after the last note-off
FILE_SECONDS = (27.0, 33.0)    # a file ends after the first phrase past a length drawn in here
CURVE_STEP = 0.01              # s between pitch-bend / expression updates
VELOCITY = (34, 50, 66, 82, 100, 118)    # pp p mp mf f ff
EXPRESSION = (64, 78, 92, 106, 118, 127)
MODES = {"major": (0, 2, 4, 5, 7, 9, 11), "minor": (0, 2, 3, 5, 7, 8, 10),
         "harmonic": (0, 2, 3, 5, 7, 8, 11)}
KINDS = ("scale", "arpeggio", "melody", "long_tones", "run", "slides", "repeated", "chromatic")
WEIGHTS = (0.16, 0.13, 0.22, 0.13, 0.11, 0.12, 0.07, 0.06)


def note_hz(note: float) -> float:
  return 440.0 * 2.0 ** ((note - 69.0) / 12.0)


def smooth(x):
  """Smoothstep on [0, 1]: a glide's shape (zero slope at both ends)."""
  x = np.clip(x, 0.0, 1.0)
  return x * x * (3.0 - 2.0 * x)


class Line:
  """A monophonic line being written: notes in time order, each with its bend and expression
  curves (functions of seconds since the note-on)."""

  def __init__(self, instrument: Instrument, rng: np.random.Generator):
    self.instrument = instrument
    self.rng = rng
    self.t = LEAD_IN
    self.notes: List[Dict] = []

  def rest(self, seconds: float) -> None:
    self.t += seconds

  def note(self, pitch: int, seconds: float, level: int, sound: float = 0.92,
           vibrato: float = 0.0, glide: int = 0, scoop: bool = False, fall: bool = False,
           expression=None) -> None:
    """Plays `pitch` for `sound` of `seconds` (1.0: legato into the next note).

    vibrato: depth factor of the instrument's vibrato (0 none, 1 plain, 1.8 wide);
    glide: semitones to slide to over the note's second half (one MIDI note, bent);
    expression: (start level, end level) for a CC11 ramp over the note, else steady.
    """
    inst, rng = self.instrument, self.rng
    pitch = int(pitch)
    if pitch in inst.avoid or not inst.low <= pitch <= inst.high:
      raise ValueError(f"{inst.name}: note {pitch} is outside the playable notes")
    level = int(np.clip(level, 0, 5))
    velocity = int(np.clip(VELOCITY[level] + rng.integers(-6, 7), 20, 127))
    start, end = expression if expression else (level, level)
    depth = inst.vibrato[0] * vibrato * rng.uniform(0.85, 1.15)
    rate = inst.vibrato[1] * rng.uniform(0.93, 1.07)
    self.notes.append(dict(
        on=self.t, off=self.t + seconds * sound, pitch=pitch, velocity=velocity,
        depth=depth, rate=rate, delay=min(0.25, 0.3 * seconds), glide=glide, scoop=scoop,
        fall=fall, expression=(EXPRESSION[int(np.clip(start, 0, 5))],
                               EXPRESSION[int(np.clip(end, 0, 5))])))
    self.t += seconds


def bend_cents(note: Dict, local: np.ndarray) -> np.ndarray:
  """Sounding pitch offset (cents) of a note at `local` seconds after its note-on."""
  length = note["off"] - note["on"]
  cents = np.zeros_like(local)
  if note["glide"]:
    a = 0.45 * length
    cents += 100.0 * note["glide"] * smooth((local - a) / max(min(0.3, 0.4 * length), 0.05))
  if note["depth"]:
    x = local - note["delay"]
    ramp = np.clip(x / 0.3, 0.0, 1.0)
    cents += note["depth"] * ramp * np.sin(2 * np.pi * note["rate"] * np.maximum(x, 0.0))
  if note["scoop"]:
    cents -= 110.0 * (1.0 - smooth(local / 0.12))
  if note["fall"]:
    cents -= 250.0 * np.clip(1.0 - (length - local) / 0.22, 0.0, 1.0) ** 2
  return cents


def to_events(line: Line) -> List[midi.Event]:
  """MIDI events of a line: set-up (programme, bend range, expression), then the notes."""
  inst = line.instrument
  ev = [(0.0, midi.CONTROL, midi.control(121, 0))]
  ev += [(0.0, midi.CONTROL, m) for m in midi.bend_range_rpn(BEND_RANGE)]
  ev += [(0.0, midi.CONTROL, m) for m in (
      midi.control(0, inst.bank), midi.control(32, 0), midi.program(inst.program),
      midi.control(7, 100), midi.control(10, 64), midi.control(11, 100), midi.control(91, 0),
      midi.control(93, 0), midi.pitch_bend(0))]
  bend, expr = 0, 100
  full = BEND_RANGE * 100.0 * BEND_SCALE
  for n in line.notes:
    times = np.arange(n["on"], n["off"], CURVE_STEP)
    local = times - n["on"]
    values = np.round(bend_cents(n, local) / full * 8192.0).astype(int)
    if np.any(np.abs(values) > 8191):
      raise ValueError(f"{inst.name}: a bend at {n['on']:.2f} s exceeds the bend range")
    e0, e1 = n["expression"]
    exprs = np.round(e0 + (e1 - e0) * local / max(n["off"] - n["on"], 1e-6)).astype(int)
    for i, t in enumerate(times):
      order = midi.CONTROL
      if values[i] != bend:
        bend = int(values[i])
        ev.append((float(t), order, midi.pitch_bend(bend)))
      if exprs[i] != expr and (i == 0 or i % 2 == 0):
        expr = int(exprs[i])
        ev.append((float(t), order, midi.control(11, expr)))
      if i == 0:
        ev.append((float(t), midi.ON, midi.note_on(n["pitch"], n["velocity"])))
    ev.append((n["off"], midi.OFF, midi.note_off(n["pitch"])))
  return ev


# ------------------------------------------------------------------------------- phrases

def scale_notes(inst: Instrument, tonic: int, mode: str) -> List[int]:
  steps = MODES[mode]
  return [n for n in inst.notes() if (n - tonic) % 12 in steps]


def _register_index(line: Line, notes: List[int], span: int) -> int:
  """A start index such that `span` steps upward stay within `notes`; uniform over them."""
  return int(line.rng.integers(0, max(len(notes) - span, 1)))


def _beat(bpm: float) -> float:
  return 60.0 / bpm


def scale(line, notes, bpm, level):
  rng = line.rng
  length = int(rng.integers(8, 16))
  value = _beat(bpm) * rng.choice([0.25, 0.5, 0.5, 1.0 / 3.0])
  sound = rng.choice([1.0, 0.92, 0.5])
  i = _register_index(line, notes, length)
  path = list(range(i, min(i + length, len(notes))))
  shape = rng.integers(3)
  path = path[::-1] if shape == 1 else (path + path[-2::-1] if shape == 2 else path)
  for k in path[:-1]:
    line.note(notes[k], value, level, sound=sound)
  line.note(notes[path[-1]], max(4 * value, 0.8), level, vibrato=1.0,
            expression=(level, level - 2) if rng.random() < 0.5 else None)


def arpeggio(line, notes, bpm, level):
  rng = line.rng
  seventh = rng.random() < 0.35
  root = _register_index(line, notes, 12)
  chord = [k for k in range(root, len(notes)) if (k - root) % 7 in ((0, 2, 4, 6) if seventh
                                                                    else (0, 2, 4))]
  chord = chord[:int(rng.integers(5, 10))]
  value = _beat(bpm) * rng.choice([0.25, 0.5])
  sound = rng.choice([1.0, 0.92, 0.55])
  seq = chord + chord[-2::-1] if rng.random() < 0.6 else chord
  for k in seq[:-1]:
    line.note(notes[k], value, level, sound=sound)
  line.note(notes[seq[-1]], max(3 * value, 0.6), level, vibrato=rng.choice([0.0, 1.0]))


def melody(line, notes, bpm, level):
  rng = line.rng
  k = _register_index(line, notes, 6) + 3
  count = int(rng.integers(8, 17))
  end_level = int(np.clip(level + rng.choice([-2, -1, 0, 1, 2]), 0, 5))
  beats = rng.choice([0.5, 0.5, 1.0, 1.0, 1.5, 2.0, 0.25, 0.75], size=count)
  for j in range(count):
    k = int(np.clip(k + rng.choice([-2, -1, -1, 1, 1, 2, 0, rng.integers(-5, 6)]), 0,
                    len(notes) - 1))
    here = int(round(level + (end_level - level) * j / max(count - 1, 1)))
    seconds = beats[j] * _beat(bpm)
    vib = rng.choice([0.0, 1.0, 1.0, 1.8]) if seconds >= 0.45 else 0.0
    line.note(notes[k], seconds, here, sound=rng.choice([0.92, 0.92, 1.0, 0.6]), vibrato=vib,
              scoop=seconds >= 0.4 and rng.random() < 0.08)
    if rng.random() < 0.08:
      line.rest(rng.uniform(0.15, 0.5))


def long_tones(line, notes, bpm, level):
  rng = line.rng
  for _ in range(int(rng.integers(2, 5))):
    seconds = rng.uniform(1.5, min(line.instrument.breath, 5.0))
    shape = rng.integers(4)
    expression = [(0, 5), (5, 0), None, (level, 5 - level)][shape]
    line.note(notes[int(rng.integers(len(notes)))], seconds, level, sound=0.95,
              vibrato=rng.choice([0.0, 1.0, 1.0, 1.8]), expression=expression)
    line.rest(rng.uniform(0.2, 0.6))


def run(line, notes, bpm, level):
  rng = line.rng
  bpm = rng.uniform(120, 168)
  value = _beat(bpm) * rng.choice([0.25, 1.0 / 6.0])
  k = _register_index(line, notes, 10)
  up = rng.random() < 0.5
  for _ in range(int(rng.integers(12, 25))):
    line.note(notes[k], value, level, sound=1.0)
    step = rng.choice([1, 1, 1, -1, 2]) * (1 if up else -1)
    if not 0 <= k + step < len(notes):
      up = not up
      step = -step
    k += step
  line.note(notes[k], 0.6, level, vibrato=1.0)


def slides(line, notes, bpm, level):
  rng = line.rng
  inst = line.instrument
  for _ in range(int(rng.integers(3, 6))):
    pitch = notes[int(rng.integers(len(notes)))]
    seconds = rng.uniform(0.5, 1.6)
    kind = rng.integers(3)
    if kind == 0:  # a glide to a pitch within the range, 1-7 semitones away
      for _ in range(10):
        glide = int(rng.choice([-1, 1]) * rng.integers(1, 8))
        if inst.low <= pitch + glide <= inst.high:
          break
      else:
        glide = 0
      line.note(pitch, seconds * 1.5, level, sound=0.95, glide=glide, vibrato=1.0)
    else:
      line.note(pitch, seconds, level, scoop=kind == 1, fall=kind == 2,
                vibrato=rng.choice([0.0, 1.0]))
    line.rest(rng.uniform(0.1, 0.4))


def repeated(line, notes, bpm, level):
  rng = line.rng
  value = _beat(bpm) * rng.choice([0.25, 0.5])
  pitches = [notes[int(rng.integers(len(notes)))] for _ in range(int(rng.integers(1, 4)))]
  for p in pitches:
    for _ in range(int(rng.integers(3, 7))):
      line.note(p, value, level, sound=0.45)


def chromatic(line, notes, bpm, level):
  rng = line.rng
  sweep = line.instrument.notes()
  if rng.random() < 0.5:
    sweep = sweep[::-1]
  value = rng.uniform(0.18, 0.35)
  for p in sweep:
    line.note(p, value, level, sound=rng.choice([0.92, 1.0]))


PHRASES = dict(scale=scale, arpeggio=arpeggio, melody=melody, long_tones=long_tones, run=run,
               slides=slides, repeated=repeated, chromatic=chromatic)


def compose_file(inst: Instrument, index: int):
  """One file's line: (Line, end time in seconds, list of phrase kinds played)."""
  rng = np.random.default_rng([inst.seed, index])
  line = Line(inst, rng)
  target = rng.uniform(*FILE_SECONDS)
  kinds = []
  while line.t < target:
    if len(kinds) % 3 == 0:  # a new key every three phrases
      tonic, mode = int(rng.integers(12)), str(rng.choice(list(MODES)))
    # every fourth file opens with a sweep over the whole range
    kind = "chromatic" if not kinds and index % 4 == 0 else str(rng.choice(KINDS, p=WEIGHTS))
    notes = scale_notes(inst, tonic, mode)
    PHRASES[kind](line, notes, rng.uniform(56, 144), int(rng.integers(6)))
    kinds.append(kind)
    line.rest(rng.uniform(0.3, 1.4))
  end = max(n["off"] for n in line.notes) + TAIL
  return line, end, kinds


def truth_frames(messages, n_frames: int):
  """Per-frame truth from MIDI messages (as `midi.read` returns): (times, f0 Hz, voiced).

  Frame i is at i * 4 ms; voiced while a note is on (note-on <= t < note-off); f0 includes the
  bend in force at the frame (the last pitch-wheel message at or before it, times the bend
  range and FluidSynth's 127/128).
  """
  times = np.arange(n_frames) * HOP / SAMPLE_RATE
  f0 = np.zeros(n_frames)
  bend_t, bend_v, notes, active = [0.0], [0], [], None
  for t, m in messages:
    kind = m[0] & 0xF0
    if kind == 0xE0:
      bend_t.append(t)
      bend_v.append(((m[2] << 7) | m[1]) - 8192)
    elif kind == 0x90 and m[2] > 0:
      active = (t, m[1])
    elif kind in (0x80, 0x90) and active and active[1] == m[1]:
      notes.append((active[0], t, m[1]))
      active = None
  idx = np.searchsorted(np.asarray(bend_t), times + 1e-9, side="right") - 1
  cents = np.asarray(bend_v, float)[np.maximum(idx, 0)] / 8192.0 * BEND_RANGE * 100 * BEND_SCALE
  for on, off, pitch in notes:
    m = (times >= on - 1e-9) & (times < off - 1e-9)
    f0[m] = 440.0 * 2.0 ** ((pitch - 69.0 + cents[m] / 100.0) / 12.0)
  return times, f0, f0 > 0
