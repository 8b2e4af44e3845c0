"""A small Standard MIDI File writer and reader (type 0, one channel), without dependencies.

Events are `(time_s, order, message)`: `message` is the raw channel message (bytes), `order`
breaks ties at one instant (note-offs first, then controllers and bends, then note-ons), so a
legato note-off and the next note-on at the same tick stay monophonic.

The files use one fixed tempo (120 BPM, 960 ticks per beat: 0.52 ms per tick); musical tempo
lives in the event times. Reading follows any tempo map, so files written elsewhere (the shared
corpus' MIDI) read correctly too.
"""

import struct
from typing import Iterable, List, Sequence, Tuple

TPB = 960
TEMPO_US = 500000  # microseconds per beat
SECONDS_PER_TICK = TEMPO_US / 1e6 / TPB

OFF, CONTROL, ON = 0, 1, 2  # `order` of events at the same instant
Event = Tuple[float, int, bytes]


def note_on(note: int, velocity: int, channel: int = 0) -> bytes:
  return bytes([0x90 | channel, note, velocity])


def note_off(note: int, channel: int = 0) -> bytes:
  return bytes([0x80 | channel, note, 0])


def control(number: int, value: int, channel: int = 0) -> bytes:
  return bytes([0xB0 | channel, number, value])


def program(number: int, channel: int = 0) -> bytes:
  return bytes([0xC0 | channel, number])


def pitch_bend(value: int, channel: int = 0) -> bytes:
  """`value` -8192..8191 (0 = centre)."""
  v = min(max(int(value), -8192), 8191) + 8192
  return bytes([0xE0 | channel, v & 0x7F, v >> 7])


def bend_range_rpn(semitones: int, channel: int = 0) -> List[bytes]:
  """RPN 0 (pitch-bend sensitivity) set to whole semitones, then the RPN closed."""
  return [control(c, v, channel) for c, v in ((101, 0), (100, 0), (6, semitones), (38, 0),
                                              (101, 127), (100, 127))]


def _vlq(n: int) -> bytes:
  out = [n & 0x7F]
  n >>= 7
  while n:
    out.append(0x80 | (n & 0x7F))
    n >>= 7
  return bytes(reversed(out))


def encode(events: Iterable[Event], end_s: float, name: str = "") -> bytes:
  """The bytes of a type-0 SMF holding `events`; the track ends at `end_s` (release tails
  are rendered up to there: an inert controller marks it, as FluidSynth stops at the last
  event)."""
  track = bytearray()
  if name:
    data = name.encode("ascii", "replace")
    track += b"\x00\xff\x03" + _vlq(len(data)) + data
  track += b"\x00\xff\x51\x03" + TEMPO_US.to_bytes(3, "big")
  last = 0
  ordered = sorted(events, key=lambda e: (round(e[0] / SECONDS_PER_TICK), e[1]))
  for time_s, _, message in ordered:
    tick = max(int(round(time_s / SECONDS_PER_TICK)), last)
    track += _vlq(tick - last) + message
    last = tick
  end = max(int(round(end_s / SECONDS_PER_TICK)), last)
  track += _vlq(end - last) + control(110, 0)
  track += b"\x00\xff\x2f\x00"
  header = b"MThd" + struct.pack(">IHHH", 6, 0, 1, TPB)
  return header + b"MTrk" + struct.pack(">I", len(track)) + bytes(track)


def write(path: str, events: Iterable[Event], end_s: float, name: str = "") -> None:
  with open(path, "wb") as f:
    f.write(encode(events, end_s, name))


def _channel_length(status: int) -> int:
  return 1 if (status & 0xF0) in (0xC0, 0xD0) else 2


def read(path: str) -> Tuple[List[Tuple[float, bytes]], float]:
  """Channel messages of every track merged, as (time_s, message), and the end time (s)."""
  with open(path, "rb") as f:
    data = f.read()
  if data[:4] != b"MThd":
    raise ValueError(f"{path}: not a Standard MIDI File")
  _, _, n_tracks, division = struct.unpack(">IHHH", data[4:14])
  if division & 0x8000:
    raise ValueError(f"{path}: SMPTE time division is not supported")
  pos = 8 + struct.unpack(">I", data[4:8])[0]
  raw = []  # (tick, track index, sequence, kind, payload)
  for track_index in range(n_tracks):
    if data[pos:pos + 4] != b"MTrk":
      raise ValueError(f"{path}: bad track header")
    length = struct.unpack(">I", data[pos + 4:pos + 8])[0]
    p, end, tick, status = pos + 8, pos + 8 + length, 0, 0
    while p < end:
      delta, p = _read_vlq(data, p)
      tick += delta
      if data[p] == 0xFF:
        kind, p = data[p + 1], p + 2
        size, p = _read_vlq(data, p)
        raw.append((tick, track_index, len(raw), "meta", (kind, data[p:p + size])))
        p += size
      elif data[p] in (0xF0, 0xF7):
        size, p = _read_vlq(data, p + 1)
        p += size
      else:
        if data[p] & 0x80:
          status, p = data[p], p + 1  # else running status
        n = _channel_length(status)
        raw.append((tick, track_index, len(raw), "channel", bytes([status]) + data[p:p + n]))
        p += n
    pos = end
  raw.sort(key=lambda r: (r[0], r[2]))
  out, tempo, last_tick, seconds = [], 500000, 0, 0.0
  for tick, _, _, kind, payload in raw:
    seconds += (tick - last_tick) * tempo / 1e6 / division
    last_tick = tick
    if kind == "meta":
      if payload[0] == 0x51:
        tempo = int.from_bytes(payload[1], "big")
    else:
      out.append((seconds, payload))
  return out, seconds


def _read_vlq(data: bytes, p: int) -> Tuple[int, int]:
  value = 0
  while True:
    byte = data[p]
    p += 1
    value = (value << 7) | (byte & 0x7F)
    if byte < 0x80:
      return value, p


def retarget(messages: Sequence[Tuple[float, bytes]], semitones: int, program_number: int,
             bank: int = 0) -> List[Event]:
  """The same performance on another GM programme, transposed by whole semitones.

  Programme changes and bank selects are replaced by `program_number`/`bank`; note numbers move
  by `semitones` (pitch bends, relative to the note, are kept).
  """
  events: List[Event] = [(0.0, CONTROL, control(0, bank)), (0.0, CONTROL, control(32, 0)),
                         (0.0, CONTROL, program(program_number))]
  for time_s, message in messages:
    kind = message[0] & 0xF0
    if kind == 0xC0 or (kind == 0xB0 and message[1] in (0, 32)):
      continue
    if kind in (0x80, 0x90):
      note = message[1] + semitones
      if not 0 <= note <= 127:
        raise ValueError(f"transposing by {semitones} semitones leaves the MIDI range")
      is_on = kind == 0x90 and message[2] > 0
      events.append((time_s, ON if is_on else OFF, bytes([message[0], note, message[2]])))
    else:
      events.append((time_s, CONTROL, message))
  return events
