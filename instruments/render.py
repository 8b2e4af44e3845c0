"""Renders the instrument training corpora: seeded MIDI -> FluidSynth -> 16 kHz mono WAV + f0 truth.

    python -m instruments.render [violin flute ...] [--out instruments/corpus] [--if-missing]

For each instrument (instruments/catalog.py), files of about 30 s (instruments/phrases.py) are
composed until the corpus holds at least --minutes of audio, then each file is
  1. written as MIDI (type 0, one channel): <out>/<name>/midi/<name>_NNN.mid;
  2. rendered by FluidSynth from the Debian soundfont at 48 kHz float (no reverb, no chorus);
  3. mixed to mono, resampled to 16 kHz (soxr, very high quality) and cut at the MIDI's end;
and the whole corpus is then scaled by one gain (its loudest sample at -3 dBFS, so pp stays
quieter than ff across files) and written as 16-bit PCM with seeded TPDF dither:
<out>/<name>/audio/<name>_NNN.wav, with per-frame truth <out>/<name>/truth/<name>_NNN.csv
(time_s,f0_hz,voiced at 250 frames/s: frame i at i * 4 ms, the MIDI notes and bends),
manifest.json (recipe, tools, soundfont, per-file sha256) and COPYING.soundfonts.

The output depends only on the code, FluidSynth's and the soundfont's versions: rendering twice
gives the same bytes. The corpus folder is replaced atomically. --if-missing skips an
instrument whose manifest already records the same recipe (hash of every MIDI file and the
render settings). FluidSynth is a development-time tool: install it with
`apt-get install -y fluidsynth fluid-soundfont-gm musescore-general-soundfont`.
"""

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
import soundfile as sf
import soxr

from instruments import midi, phrases
from instruments.catalog import APT_PACKAGES, INSTRUMENTS, SOUNDFONTS
from pipelines import prepare_cache
from pipelines import publish

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUT = os.path.join(HERE, "corpus")
RENDER_RATE = 48000
PEAK_DBFS = -3.0
MIN_MINUTES = 11.0
FLUIDSYNTH = ["fluidsynth", "-ni", "-q", "-C", "0", "-R", "0", "-g", "0.5", "-r", str(RENDER_RATE),
              "-O", "float", "-T", "wav", "-o", "synth.dynamic-sample-loading=1"]


def check_tools(soundfont: str) -> None:
  """Exits with the apt-get line when FluidSynth or the soundfont is missing."""
  missing = [] if shutil.which("fluidsynth") else ["fluidsynth"]
  if not os.path.exists(SOUNDFONTS[soundfont]["path"]):
    missing.append(SOUNDFONTS[soundfont]["path"])
  if missing:
    sys.exit(f"missing: {', '.join(missing)}; install with: apt-get install -y "
             f"{' '.join(APT_PACKAGES)}")


def package_version(package: str) -> str:
  try:
    out = subprocess.run(["dpkg-query", "-W", "-f=${Version}", package], capture_output=True,
                         text=True, check=False).stdout.strip()
  except OSError:
    out = ""
  return out or "unknown"


def render_midi(midi_path: str, soundfont: str, seconds: float, tmp: str) -> np.ndarray:
  """FluidSynth render of a MIDI file -> float64 mono at 16 kHz, exactly `seconds` long."""
  raw = os.path.join(tmp, os.path.basename(midi_path) + ".wav")
  proc = subprocess.run(FLUIDSYNTH + ["-F", raw, SOUNDFONTS[soundfont]["path"], midi_path],
                        capture_output=True, text=True, check=False)
  if proc.returncode != 0:
    raise RuntimeError(f"fluidsynth failed on {midi_path}: {proc.stderr[-2000:]}")
  y, rate = sf.read(raw, dtype="float64", always_2d=True)
  os.remove(raw)
  y = soxr.resample(y.mean(axis=1), rate, phrases.SAMPLE_RATE, quality="VHQ")
  n = int(round(seconds * phrases.SAMPLE_RATE))
  return np.pad(y[:n], (0, max(n - len(y), 0)))


def render_retargeted(midi_path: str, soundfont: str, program: int, bank: int = 0,
                      semitones: int = 0) -> np.ndarray:
  """Another MIDI file's performance played on `program` of `soundfont`, transposed by
  `semitones`: float64 mono at 16 kHz, as long as the MIDI file (its last event)."""
  messages, end = midi.read(midi_path)
  events = midi.retarget(messages, semitones, program, bank)
  with tempfile.TemporaryDirectory() as tmp:
    path = os.path.join(tmp, "retargeted.mid")
    midi.write(path, events, end)
    return render_midi(path, soundfont, end, tmp)


def to_pcm16(y: np.ndarray, gain: float, rng: np.random.Generator) -> np.ndarray:
  """Scaled, TPDF-dithered (+-1 LSB, seeded) 16-bit samples."""
  dither = rng.random(len(y)) - rng.random(len(y))
  return np.clip(np.round(y * gain * 32767.0 + dither), -32768, 32767).astype(np.int16)


def compose_corpus(name: str, minutes: float):
  """[(stem, MIDI bytes, seconds, phrase kinds)] until `minutes` of audio."""
  inst = INSTRUMENTS[name]
  files, total, index = [], 0.0, 0
  while total < minutes * 60.0:
    line, end, kinds = phrases.compose_file(inst, index)
    files.append((f"{name}_{index:03d}", midi.encode(phrases.to_events(line), end, name), end,
                  kinds))
    total += end
    index += 1
  return files


def recipe_hash(files, soundfont: str) -> str:
  h = hashlib.sha256(json.dumps([FLUIDSYNTH, RENDER_RATE, PEAK_DBFS, phrases.SAMPLE_RATE,
                                 SOUNDFONTS[soundfont]["path"],
                                 package_version(SOUNDFONTS[soundfont]["package"]),
                                 package_version("fluidsynth")]).encode())
  for stem, data, _, _ in files:
    h.update(stem.encode() + b"\0" + data)
  return h.hexdigest()[:16]


def render_instrument(name: str, out: str, minutes: float = MIN_MINUTES,
                      if_missing: bool = False) -> dict:
  """Renders one corpus into <out>/<name>/ (replaced atomically); returns its manifest."""
  inst = INSTRUMENTS[name]
  files = compose_corpus(name, minutes)
  recipe = recipe_hash(files, inst.soundfont)
  final = os.path.join(out, name)
  manifest_path = os.path.join(final, "manifest.json")
  if if_missing and os.path.exists(manifest_path):
    with open(manifest_path, encoding="utf-8") as f:
      manifest = json.load(f)
    if manifest.get("recipe_hash") == recipe:
      print(f"[instruments] {name}: up to date ({manifest['total_seconds'] / 60:.1f} min)")
      return manifest
  check_tools(inst.soundfont)
  started = time.time()
  os.makedirs(out, exist_ok=True)
  staging = tempfile.mkdtemp(prefix=f".{name}.staging-", dir=out)
  os.chmod(staging, 0o755)  # mkdtemp makes it private; the corpus is not
  try:
    for sub in ("midi", "audio", "truth"):
      os.makedirs(os.path.join(staging, sub))
    audio = []
    for stem, data, seconds, _ in files:
      path = os.path.join(staging, "midi", stem + ".mid")
      with open(path, "wb") as f:
        f.write(data)
      audio.append(render_midi(path, inst.soundfont, seconds, staging))
    peak = max(float(np.max(np.abs(y))) for y in audio)
    gain = 10.0 ** (PEAK_DBFS / 20.0) / peak
    rng = np.random.default_rng([inst.seed, 16])
    rows = []
    for (stem, _, _, kinds), y in zip(files, audio, strict=True):
      wav = os.path.join(staging, "audio", stem + ".wav")
      sf.write(wav, to_pcm16(y, gain, rng), phrases.SAMPLE_RATE, subtype="PCM_16")
      messages, _ = midi.read(os.path.join(staging, "midi", stem + ".mid"))
      times, f0, voiced = phrases.truth_frames(messages, 1 + len(y) // phrases.HOP)
      with open(os.path.join(staging, "truth", stem + ".csv"), "w", encoding="utf-8") as f:
        f.write("time_s,f0_hz,voiced\n")
        f.writelines(f"{t:.3f},{hz:.4f},{int(v)}\n" for t, hz, v in zip(times, f0, voiced, strict=True))
      rows.append(dict(audio=f"audio/{stem}.wav", midi=f"midi/{stem}.mid",
                       truth=f"truth/{stem}.csv", seconds=round(len(y) / phrases.SAMPLE_RATE, 3),
                       voiced_seconds=round(float(voiced.mean()) * len(y) / phrases.SAMPLE_RATE, 2),
                       f0_min_hz=round(float(f0[voiced].min()), 2),
                       f0_max_hz=round(float(f0[voiced].max()), 2), phrases=kinds,
                       sha256=prepare_cache.sha256_file(wav)))
    shutil.copyfile(os.path.join(HERE, "COPYING.soundfonts"),
                    os.path.join(staging, "COPYING.soundfonts"))
    sfinfo = SOUNDFONTS[inst.soundfont]
    manifest = dict(
        instrument=name, label=inst.label, recipe_hash=recipe, seed=inst.seed,
        soundfont=os.path.basename(sfinfo["path"]), debian_package=sfinfo["package"],
        package_version=package_version(sfinfo["package"]), bank=inst.bank,
        program=inst.program, midi_range=[inst.low, inst.high], avoided_notes=list(inst.avoid),
        bend_range_semitones=phrases.BEND_RANGE, fluidsynth=package_version("fluidsynth"),
        render=" ".join(FLUIDSYNTH), render_rate=RENDER_RATE, sample_rate=phrases.SAMPLE_RATE,
        gain=round(gain, 6), peak_dbfs=PEAK_DBFS, files=rows, n_files=len(rows),
        total_seconds=round(sum(r["seconds"] for r in rows), 2),
        licence="MIT (soundfont samples; notices in COPYING.soundfonts)")
    with open(os.path.join(staging, "manifest.json"), "w", encoding="utf-8") as f:
      json.dump(manifest, f, indent=1)
      f.write("\n")
    publish.replace_directory(staging, final)
  except BaseException:
    publish.remove_tree(staging)
    raise
  print(f"[instruments] {name}: {len(rows)} files, {manifest['total_seconds'] / 60:.1f} min, "
        f"rendered in {time.time() - started:.0f} s -> {final}", flush=True)
  return manifest


def main(argv=None) -> int:
  ap = argparse.ArgumentParser(description=__doc__,
                               formatter_class=argparse.RawDescriptionHelpFormatter)
  ap.add_argument("names", nargs="*", help=f"instruments (default all: {', '.join(INSTRUMENTS)})")
  ap.add_argument("--out", default=DEFAULT_OUT, help="corpus root (default instruments/corpus)")
  ap.add_argument("--minutes", type=float, default=MIN_MINUTES,
                  help="at least this much audio per instrument")
  ap.add_argument("--if-missing", action="store_true",
                  help="skip corpora whose manifest records the same recipe")
  args = ap.parse_args(argv)
  unknown = [n for n in args.names if n not in INSTRUMENTS]
  if unknown:
    ap.error(f"unknown instrument(s) {', '.join(unknown)}; known: {', '.join(INSTRUMENTS)}")
  for name in args.names or list(INSTRUMENTS):
    render_instrument(name, os.path.abspath(args.out), args.minutes, args.if_missing)
  return 0


if __name__ == "__main__":
  sys.exit(main())
