"""`make bench` section transfer_quality: does timbre transfer sound like the target instrument?

    python -m bench.transfer_quality [--model violin | --model violin=path/to/model_dir ...]
        [--corpus ../shared/corpus] [--crepe_model full] [--out bench/results/DATE-transfer-quality.md]

Every take in the shared corpus' transfer/ was rendered from MIDI (midi/transfer/<take>.mid),
so the ground truth of its transfer exists. For each take and each model (an instrument of
instruments/catalog.py):

- output: the take through the model (`pipelines.transfer.transfer_file`, the Colab's
  adjustments on), and the octave shift the transfer applied (its report row);
- reference: the take's MIDI on the instrument's programme and soundfont, transposed by that
  shift (instruments/render.py, FluidSynth);
- no transfer: the input against the reference at the input's pitch (no shift);
- another real instrument: the same MIDI, same shift, on the same programme of the other
  soundfont (FluidR3_GM <-> MuseScore_General);
- the model's ceiling (unless --no-ceiling): the reference itself through the model (adjustments
  off: it already plays in the instrument's register), i.e. how close this model's timbre gets
  when its input is the real instrument. ceiling = (d_input - d_resynth) / (d_input - d_other)
  estimates what a transfer can reach through this model (an estimate, not a bound: a transfer
  can land a little above it); a score near its ceiling says the model's own timbre limits the
  score, not the transfer of a foreign input.

Distances are `ddsp_core.timbre_distance` (MFCC 1-19 and multi-scale log-spectrogram L1) and the
score is (d_input - d_output) / (d_input - d_other): 0 = no closer than the input, 1 = as close
as another real instrument. The table (per model and take, then medians per model against the
targets: median score >= 0.6, f0 error <= 20 cents) goes to --out and to stdout.

--dry renders every model without its learned reverb (the instrument corpora are rendered dry):
a probe of what the reverb costs, not a model's quality (instruments/ship.py refuses its JSON).

--model takes a built-in name, or INSTRUMENT=PATH for any model dir or zip (INSTRUMENT names
the target: violin, flute, flute2, trumpet, tenor_saxophone), or LABEL:INSTRUMENT=PATH to
label it. Default: every installed built-in model, and the demo's model (demo_out/models/violin)
when `make demo` has run. Needs FluidSynth and the soundfonts (apt-get install -y fluidsynth
fluid-soundfont-gm musescore-general-soundfont).
"""

import argparse
import datetime
import glob
import json
import os
import shutil
import statistics
import sys
import tempfile
from typing import Dict, List, Optional, Tuple

import numpy as np
import soundfile as sf

from ddsp_core import crepe as crepe_lib

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(os.path.dirname(REPO), "shared", "corpus")
DEMO_MODEL = os.path.join(REPO, "demo_out", "models", "violin")
TARGET_SCORE, TARGET_CENTS = 0.6, 20.0
FIGURES = ("mfcc", "log_spectral_l1")


def score_take(audio_in: np.ndarray, audio_out: np.ndarray, reference: np.ndarray,
               reference_at_input_pitch: np.ndarray, other: np.ndarray) -> Dict[str, float]:
  """The measure for one (take, model): per figure d_input, d_output, d_other and score.

  Args:
    audio_in: The transfer's input, float [n] at 16 kHz.
    audio_out: The transfer's output.
    reference: The take's notes on the target instrument at the transfer's pitch.
    reference_at_input_pitch: The same at the input's pitch (for "no transfer").
    other: The same notes and pitch as `reference`, from the other soundfont.

  Returns:
    {'<figure>_input', '<figure>_output', '<figure>_other', '<figure>_score'} for each figure.
  """
  from ddsp_core import timbre_distance as td  # pylint: disable=g-import-not-at-top
  out = {}
  d_in = td.distances(audio_in, reference_at_input_pitch)
  d_out = td.distances(audio_out, reference)
  d_other = td.distances(other, reference)
  for figure in FIGURES:
    out.update({f"{figure}_input": d_in[figure], f"{figure}_output": d_out[figure],
                f"{figure}_other": d_other[figure],
                f"{figure}_score": td.transfer_score(d_in[figure], d_out[figure], d_other[figure])})
  return out


def parse_model(value: str) -> Tuple[str, str, str]:
  """'violin' | 'violin=PATH' | 'LABEL:violin=PATH' -> (label, instrument, path)."""
  from ddsp_core import builtin_models  # pylint: disable=g-import-not-at-top
  from instruments.catalog import INSTRUMENTS  # pylint: disable=g-import-not-at-top
  if "=" not in value:
    resolved = builtin_models.resolve_model_arg(value)
    if resolved is None:
      raise ValueError(f"--model {value!r}: give INSTRUMENT=PATH for a model dir or zip")
    return value, value, resolved[1]
  head, path = value.split("=", 1)
  label, instrument = head.split(":", 1) if ":" in head else (head, head)
  if instrument not in INSTRUMENTS:
    raise ValueError(f"--model {value!r}: the instrument must be one of {', '.join(INSTRUMENTS)}")
  return label, instrument, path


def default_models() -> List[str]:
  from ddsp_core import builtin_models  # pylint: disable=g-import-not-at-top
  models = list(builtin_models.installed())
  if os.path.isdir(DEMO_MODEL):
    models.append(f"demo_tiny:violin={DEMO_MODEL}")
  return models


class References:
  """Renders of a take's MIDI, once per (take, soundfont, programme, semitones)."""

  def __init__(self, corpus: str):
    self.corpus = corpus
    self.cache = {}

  def get(self, take: str, soundfont: str, program: int, semitones: int) -> np.ndarray:
    from instruments import render  # pylint: disable=g-import-not-at-top
    key = (take, soundfont, program, semitones)
    if key not in self.cache:
      render.check_tools(soundfont)
      self.cache[key] = render.render_retargeted(
          os.path.join(self.corpus, "midi", "transfer", take + ".mid"), soundfont, program,
          semitones=semitones)
    return self.cache[key]


def resynthesis_figures(loaded, reference: np.ndarray, scored: Dict[str, float],
                        crepe_model: str, work: str) -> Dict[str, float]:
  """The model's ceiling for one take: the reference through the model, adjustments off.

  Args:
    loaded: The model (`pipelines.transfer.LoadedModel`).
    reference: The take's notes on the target instrument at the transfer's pitch.
    scored: `score_take`'s figures for the take (their d_input and d_other are reused).
    crepe_model: CREPE of the transfer.
    work: A scratch folder.

  Returns:
    {'<figure>_resynth', '<figure>_ceiling'}: the distance of that resynthesis to the
    reference, and the score it would give as a transfer's output.
  """
  from ddsp_core import timbre_distance as td  # pylint: disable=g-import-not-at-top
  from pipelines import transfer  # pylint: disable=g-import-not-at-top
  ref_wav = os.path.join(work, "reference.wav")
  out_wav = os.path.join(work, "resynthesis.wav")
  sf.write(ref_wav, reference, 16000, subtype="FLOAT")
  row = transfer.transfer_file(ref_wav, [loaded], transfer.TransferConfig(
      crepe_model=crepe_model, adjust=False), {loaded.name: out_wav})[0]
  if row["status"] != "ok":
    raise RuntimeError(f"resynthesis of the reference failed: {row.get('error_message')}")
  d_resynth = td.distances(sf.read(out_wav)[0], reference)
  out = {}
  for figure in FIGURES:
    out[f"{figure}_resynth"] = d_resynth[figure]
    out[f"{figure}_ceiling"] = td.transfer_score(scored[f"{figure}_input"], d_resynth[figure],
                                                 scored[f"{figure}_other"])
  return out


def measure(models: List[str], corpus: str, crepe_model: str, work: str,
            ceiling: bool = True, dry: bool = False) -> List[dict]:
  """One row per (model, take): the figures, the octave shift and the transfer's f0 error (and,
  with `ceiling`, the model's resynthesis of the reference: `resynthesis_figures`)."""
  from instruments.catalog import INSTRUMENTS  # pylint: disable=g-import-not-at-top
  from pipelines import transfer  # pylint: disable=g-import-not-at-top
  takes = sorted(glob.glob(os.path.join(corpus, "transfer", "*.wav")))
  if not takes:
    raise FileNotFoundError(f"no takes in {os.path.join(corpus, 'transfer')}")
  refs = References(corpus)
  config = transfer.TransferConfig(crepe_model=crepe_model)
  rows = []
  for value in models:
    label, instrument, path = parse_model(value)
    inst = INSTRUMENTS[instrument]
    loaded = transfer.LoadedModel(label, path)
    if dry:
      loaded.model.reverb_ir = None  # the renderer then returns the dry signal
    for take_path in takes:
      take = os.path.splitext(os.path.basename(take_path))[0]
      out_wav = os.path.join(work, label, take + ".wav")
      row = transfer.transfer_file(take_path, [loaded], config, {label: out_wav})[0]
      base = dict(model=label, instrument=instrument, take=take, status=row["status"],
                  path=os.path.abspath(path))
      if row["status"] != "ok":
        rows.append(dict(base, error=row.get("error_message")))
        print(f"[transfer_quality] {label} {take}: FAILED {row.get('error_message')}", flush=True)
        continue
      shift = int(row["octave_shift"]) + int(round(config.pitch_shift))
      semis = 12 * shift
      audio_in = sf.read(take_path)[0]
      audio_out = sf.read(out_wav)[0]
      reference = refs.get(take, inst.soundfont, inst.program, semis)
      at_input_pitch = refs.get(take, inst.soundfont, inst.program, 0)
      other = refs.get(take, inst.other, inst.program, semis)
      figures = score_take(audio_in, audio_out, reference, at_input_pitch, other)
      if ceiling:
        figures.update(resynthesis_figures(loaded, reference, figures, crepe_model, work))
      rows.append(dict(base, octave_shift=shift, f0_error_cents=row["f0_error_cents_median"],
                       **figures))
      print(f"[transfer_quality] {label} {take}: shift {shift:+d}, MFCC score "
            f"{figures['mfcc_score']:.2f}, log-spectral score "
            f"{figures['log_spectral_l1_score']:.2f}, f0 error {row['f0_error_cents_median']}"
            + (f", MFCC ceiling {figures['mfcc_ceiling']:.2f}" if ceiling else ""), flush=True)
  return rows


def _f(value, digits=2) -> str:
  if value is None or (isinstance(value, float) and not np.isfinite(value)):
    return "n/a"
  return f"{value:.{digits}f}"


def _median(values) -> Optional[float]:
  values = [v for v in values if v is not None and np.isfinite(v)]  # None: not measured
  return statistics.median(values) if values else None


def summarize(rows: List[dict]) -> List[dict]:
  """Per model: the medians over its takes (MFCC and log-spectral scores, f0 error, cents) and
  whether they meet the targets; what a model card keeps (instruments/ship.py)."""
  out = []
  for model in dict.fromkeys(r["model"] for r in rows):
    ok = [r for r in rows if r["model"] == model and r["status"] == "ok"]
    score = _median(r["mfcc_score"] for r in ok)
    cents = _median(r["f0_error_cents"] for r in ok)
    out.append({
        "model": model, "instrument": next(r["instrument"] for r in rows if r["model"] == model),
        "takes": len(ok), "failed": sum(r["status"] != "ok" for r in rows if r["model"] == model),
        "mfcc_score": score, "log_spectral_l1_score": _median(r["log_spectral_l1_score"] for r in ok),
        "f0_error_cents": cents,
        "mfcc_ceiling": _median(r.get("mfcc_ceiling") for r in ok),
        "log_spectral_l1_ceiling": _median(r.get("log_spectral_l1_ceiling") for r in ok),
        "path": next(r.get("path") for r in rows if r["model"] == model),
        "targets_met": bool(score is not None and score >= TARGET_SCORE and cents is not None
                            and cents <= TARGET_CENTS)})
  return out


def table(rows: List[dict], crepe_model: str, dry: bool = False) -> str:
  """The markdown report: per (model, take), then medians per model against the targets."""
  lines = [f"# Transfer quality, {datetime.date.today().isoformat()}", ""]
  if dry:
    lines += ["**Rendered without the models' learned reverb (--dry).**", ""]
  lines += [
           "Distances to the real instrument's render of each take's MIDI "
           "(`ddsp_core/timbre_distance.py`); score = (d_input - d_output) / (d_input - d_other): "
           "0 = no closer than the input, 1 = as close as the same instrument from the other "
           f"soundfont. Transfer with the Colab's adjustments, CREPE {crepe_model}; f0 error is "
           "the transfer report's median |f0 error| of the output (cents).", "",
           "| model | take | octave shift | MFCC in | MFCC out | MFCC other | MFCC score "
           "| log-spec in | log-spec out | log-spec other | log-spec score | f0 error (cents) "
           "| MFCC resynth | MFCC ceiling |",
           "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
  for r in rows:
    if r["status"] != "ok":
      lines.append(f"| {r['model']} | {r['take']} | failed: {r.get('error')} |" + " |" * 11)
      continue
    lines.append(
        f"| {r['model']} | {r['take']} | {r['octave_shift']:+d} | {_f(r['mfcc_input'], 1)} | "
        f"{_f(r['mfcc_output'], 1)} | {_f(r['mfcc_other'], 1)} | {_f(r['mfcc_score'])} | "
        f"{_f(r['log_spectral_l1_input'], 3)} | {_f(r['log_spectral_l1_output'], 3)} | "
        f"{_f(r['log_spectral_l1_other'], 3)} | {_f(r['log_spectral_l1_score'])} | "
        f"{_f(r['f0_error_cents'], 1)} | {_f(r.get('mfcc_resynth'), 1)} | "
        f"{_f(r.get('mfcc_ceiling'))} |")
  lines += ["", "| model | instrument | takes | median MFCC score | median log-spec score "
            f"| median f0 error (cents) | median MFCC ceiling "
            f"| targets (score >= {TARGET_SCORE}, f0 <= {TARGET_CENTS:g}) |",
            "|---|---|---:|---:|---:|---:|---:|---|"]
  for s in summarize(rows):
    shortfall = ([f"score {_f(s['mfcc_score'])} < {TARGET_SCORE}"]
                 if s["mfcc_score"] is None or s["mfcc_score"] < TARGET_SCORE else []) + (
        [f"f0 {_f(s['f0_error_cents'], 1)} > {TARGET_CENTS:g}"]
        if s["f0_error_cents"] is None or s["f0_error_cents"] > TARGET_CENTS else [])
    lines.append(f"| {s['model']} | {s['instrument']} | {s['takes']} | {_f(s['mfcc_score'])} | "
                 f"{_f(s['log_spectral_l1_score'])} | {_f(s['f0_error_cents'], 1)} | "
                 f"{_f(s.get('mfcc_ceiling'))} | "
                 f"{'met' if s['targets_met'] else 'not met: ' + ', '.join(shortfall)} |")
  return "\n".join(lines) + "\n"


def main(argv=None) -> int:
  ap = argparse.ArgumentParser(description=__doc__,
                               formatter_class=argparse.RawDescriptionHelpFormatter)
  ap.add_argument("--model", action="append", default=None,
                  help="built-in name, INSTRUMENT=PATH or LABEL:INSTRUMENT=PATH; repeatable")
  ap.add_argument("--corpus", default=CORPUS, help="the shared corpus (transfer/ and midi/)")
  ap.add_argument("--crepe_model", default=crepe_lib.DEFAULT_MODEL,
                  help="CREPE capacity of the transfers (default: transfer's own default)")
  ap.add_argument("--dry", action="store_true",
                  help="render without the models' learned reverb (a probe, not for model cards)")
  ap.add_argument("--no-ceiling", dest="ceiling", action="store_false",
                  help="skip the model's resynthesis of each reference (half the time)")
  ap.add_argument("--out", default=os.path.join(
      REPO, "bench", "results", f"{datetime.date.today().isoformat()}-transfer-quality.md"))
  args = ap.parse_args(argv)
  if shutil.which("fluidsynth") is None:
    print("section transfer_quality skipped: needs FluidSynth and the soundfonts (apt-get "
          "install -y fluidsynth fluid-soundfont-gm musescore-general-soundfont)")
    return 0
  models = args.model or default_models()
  if not models:
    print("section transfer_quality skipped: no built-in model is installed and demo_out has no "
          "model (run `make demo`, or pass --model INSTRUMENT=PATH)")
    return 0
  sys.path.insert(0, REPO)  # instruments/ is a development folder, not an installed package
  with tempfile.TemporaryDirectory() as work:
    rows = measure(models, args.corpus, args.crepe_model, work, ceiling=args.ceiling,
                   dry=args.dry)
  text = table(rows, args.crepe_model, dry=args.dry)
  print("\n" + text)
  from pipelines import publish  # pylint: disable=g-import-not-at-top
  with publish.atomic_file(args.out) as tmp:
    with open(tmp, "w", encoding="utf-8") as f:
      f.write(text)
  json_path = os.path.splitext(args.out)[0] + ".json"  # read by instruments/ship.py --quality
  with publish.atomic_file(json_path) as tmp:
    with open(tmp, "w", encoding="utf-8") as f:
      json.dump({"date": datetime.date.today().isoformat(), "crepe_model": args.crepe_model,
                 "dry": args.dry,
                 "targets": {"score": TARGET_SCORE, "f0_error_cents": TARGET_CENTS},
                 "summaries": summarize(rows), "rows": rows}, f, indent=1, default=float)
  print(f"written to {args.out} and {json_path}")
  return 0 if all(r["status"] == "ok" for r in rows) else 1


if __name__ == "__main__":
  sys.exit(main())
