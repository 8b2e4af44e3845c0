"""Batch timbre transfer: every input file through every model, as a Beam pipeline.

Per input file (decoded once, analysed once per model convention) and per
model: the Colab's adjustments toward the model's dataset statistics
(`ddsp_core.adjust`), synthesis of the whole file in seamless pieces
(`ddsp_core.render`), a 16-bit WAV at `<output>/<model>/<relative input
path>.wav`, and a measurement of the output (f0 and loudness recomputed from
the generated audio, compared with the adjusted targets). One report row per
(file, model), failures included.

Each model is fed features the way it was trained, at its frame rate and
framed with its dataset's padding, and its audio is taken at its own sample
rate (`pipelines.transfer_conventions`).

`transfer_file` is the whole per-file step; the single-file command calls it
directly, the pipeline calls it in a DoFn whose `setup` loads the models once.
"""

import dataclasses
import hashlib
import io
import json
import os
import re
import sys
import tempfile
import time
import uuid
from typing import Dict, List, Optional, Sequence

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import soundfile as sf
from apache_beam.metrics import Metrics

from ddsp_core import adjust as adjust_lib
from ddsp_core import archive
from ddsp_core import audio as audio_lib
from ddsp_core import builtin_models
from ddsp_core import crepe as crepe_lib
from ddsp_core import features as features_lib
from ddsp_core import model_dir as model_dir_lib
from ddsp_core import render as render_lib
from pipelines import inputs
from pipelines import publish
from pipelines import runner
from pipelines import transfer_conventions as conventions_lib
from pipelines import transfer_report

NAMESPACE = runner.NAMESPACE
DEFAULT_CACHE = os.path.join(os.path.expanduser("~"), ".cache", "ddsp-beam", "models")


@dataclasses.dataclass(frozen=True)
class TransferConfig:
  adjust: bool = True
  threshold: float = 1.0
  quiet: float = 20.0
  autotune: float = 0.0
  chromatic: bool = False
  pitch_shift: float = 0.0
  loudness_shift: float = 0.0
  sample_rate_out: Optional[int] = 16000  # None: the input's own rate
  crepe_model: str = crepe_lib.DEFAULT_MODEL
  precision: str = crepe_lib.DEFAULT_PRECISION
  # CREPE's frames per second, interpolated onto each model's frame grid; None: at that rate.
  f0_rate: Optional[int] = features_lib.DEFAULT_F0_RATE
  viterbi: bool = True
  plots: bool = False
  cache_dir: str = DEFAULT_CACHE

  def __post_init__(self):
    if not -2.0 <= self.pitch_shift <= 2.0:
      raise ValueError("pitch_shift must be within -2..2 octaves")
    if not -20.0 <= self.loudness_shift <= 20.0:
      raise ValueError("loudness_shift must be within -20..20 dB")
    if not 0.0 <= self.autotune <= 1.0:
      raise ValueError("autotune must be within 0..1")


def parse_model_arg(value: str):
  """'name=path', 'path' (named after the folder or zip) or a built-in name -> (name, path)."""
  builtin = builtin_models.resolve_model_arg(value)  # raises, listing them, for unknown names
  if builtin:
    return builtin
  if "=" in value and not os.path.exists(value):
    name, path = value.split("=", 1)
  else:
    path = value
    name = os.path.splitext(os.path.basename(os.path.normpath(value)))[0]
  if not re.fullmatch(r"[\w.-]+", name) or name in (".", ".."):
    raise ValueError(f"model name {name!r}: use letters, digits, '.', '_' or '-'")
  return name, path


def safe_relative_path(relative: str) -> str:
  """A relative output path that stays inside the output root, with safe characters."""
  parts = []
  for part in relative.replace("\\", "/").split("/"):
    if part in ("", ".", ".."):
      continue
    safe = "".join(c if (c.isalnum() or c in "-_.") else "_" for c in part).lstrip(".")
    parts.append(safe or "_")
  return os.path.join(*parts) if parts else "_"


def output_relative_paths(paths: Sequence[str]) -> Dict[str, str]:
  """Input path -> '<relative path>.wav' under each model's folder.

  Relative to the inputs' common folder; unique even when sanitising
  characters makes two names equal.
  """
  local = [p for p in paths if inputs.is_local(p)]
  base = os.path.commonpath([os.path.dirname(os.path.abspath(p)) for p in local]) if local else ""
  out, used = {}, set()
  for path in sorted(paths):
    rel = (os.path.relpath(os.path.abspath(path), base) if inputs.is_local(path)
           else path.split("://", 1)[1])
    candidate = safe_relative_path(rel) + ".wav"
    stem, n = candidate[:-4], 1
    while candidate in used:
      n += 1
      candidate = f"{stem}~{n}.wav"
    used.add(candidate)
    out[path] = candidate
  return out


def resolve_model(path: str, cache_dir: str = DEFAULT_CACHE) -> str:
  """A model dir path; zips are checked and extracted into the cache first."""
  if os.path.isfile(path) and path.lower().endswith(".zip"):
    return archive.extract_zip(path, cache_dir)
  return path


_LOADED = {}


def load_model_once(name: str, path: str, cache_dir: str = DEFAULT_CACHE) -> "LoadedModel":
  """A `LoadedModel`, loaded once per process while its files are unchanged.

  Runners that set a DoFn up for every bundle (Beam's DaskRunner) would
  otherwise load every model again for every file.
  """
  markers = ([os.path.join(path, "checkpoint"), os.path.join(path, model_dir_lib.MODEL_INFO_FILE)]
             if os.path.isdir(path) else [path])
  stamps = []
  for marker in markers:
    try:
      stamps.append(os.stat(marker).st_mtime_ns)
    except OSError:
      stamps.append(None)
  key = (name, os.path.abspath(path), tuple(stamps), cache_dir)
  if key not in _LOADED:
    if len(_LOADED) >= 8:
      _LOADED.clear()
    _LOADED[key] = LoadedModel(name, path, cache_dir)
  return _LOADED[key]


class LoadedModel:
  """A model ready to render: weights, renderer, conventions and dataset statistics."""

  def __init__(self, name: str, path: str, cache_dir: str = DEFAULT_CACHE):
    self.name = name
    self.path = resolve_model(path, cache_dir)
    self.model = model_dir_lib.load_model(self.path)
    self.conventions = conventions_lib.model_conventions(self.path, self.model)
    self.renderer = render_lib.Renderer(self.model)
    stats_path = os.path.join(self.path, model_dir_lib.STATS_FILE)
    self.stats = None
    if os.path.exists(stats_path):
      with open(stats_path, encoding="utf-8") as f:
        self.stats = json.load(f)


def _summary(f0_hz, loudness_db, confidence=None):
  voiced = f0_hz > 0 if confidence is None else (confidence >= 0.5) & (f0_hz > 0)
  return (float(np.median(f0_hz[voiced])) if np.any(voiced) else None,
          float(np.mean(loudness_db)) if len(loudness_db) else None)


def write_wav(path: str, audio: np.ndarray, sample_rate: int) -> None:
  """16-bit WAV, encoded in memory and written by Python, so that a storage error is
  reported as itself ('No space left on device'), not as libsndfile's 'System error'."""
  buffer = io.BytesIO()
  sf.write(buffer, np.clip(audio, -1.0, 1.0), sample_rate, subtype="PCM_16", format="WAV")
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with publish.atomic_file(path) as tmp:
    with open(tmp, "wb") as f:
      f.write(buffer.getbuffer())


def adjust_for(model: LoadedModel, features: dict, config: TransferConfig) -> dict:
  """The Colab's adjustments of an input's features toward `model`'s dataset statistics."""
  return adjust_lib.adjust_features(
      features, model.stats, config.adjust, config.threshold, config.quiet, config.autotune,
      config.chromatic, config.pitch_shift, config.loudness_shift)


def synthesize(model: LoadedModel, adjusted: dict, n_input: int) -> np.ndarray:
  """Audio [n_samples] at the model's rate, as long as `n_input` samples at 16 kHz."""
  out = model.renderer.render(adjusted["f0_hz"], adjusted["loudness_db"])
  return out[:conventions_lib.output_samples(n_input, model.conventions.sample_rate)]


def measure(model: LoadedModel, out: np.ndarray, adjusted: dict, config: TransferConfig,
            crepe_model):
  """(output at 16 kHz, its features, `transfer_report.compare` of them with the targets)."""
  conv = model.conventions
  out16 = audio_lib.resample(out, conv.sample_rate, conventions_lib.ANALYSIS_SAMPLE_RATE)
  measured = conventions_lib.compute_features(out16, conv, config.viterbi, crepe_model,
                                              f0_rate=config.f0_rate)
  return out16, measured, transfer_report.compare(adjusted, measured)


def transfer_file(path: str, models: Sequence[LoadedModel], config: TransferConfig,
                  outputs: Dict[str, str], crepe_model=None, plots_dir: Optional[str] = None,
                  protected: Sequence[str] = ()) -> List[dict]:
  """Transfers one recording through every model; one report row per model.

  The input is decoded once; its features are computed once per convention
  (frame rate, padding) among the models, each model rendering at its own rate.

  Args:
    path: Input audio path.
    models: Loaded models.
    config: Adjustment and output settings.
    outputs: Model name -> output WAV path for this input.
    crepe_model: A built `CrepeModel` or `CascadeModel` (else one is built per process).
    plots_dir: Folder for PNGs, or None.
    protected: Paths that must never be written (the inputs).

  Returns:
    Report rows (see `transfer_report.SCHEMA`).
  """
  rows = []
  base = {"input_path": path, **transfer_report.settings_columns(config)}
  crepe_model = crepe_model or crepe_lib.get_model(config.crepe_model, config.precision)
  started = time.time()
  try:
    with inputs.local_copy(path) as local:
      audio, info = audio_lib.load_audio(local, conventions_lib.ANALYSIS_SAMPLE_RATE)
      audio = np.asarray(audio, np.float32)
  except audio_lib.AudioDecodeError as e:
    message = str(e).replace(getattr(e, "path", path), path)
    return [dict(base, model=m.name, status="failed", stage="decode", error_type=e.kind,
                 error_message=message, output_path=None) for m in models]
  seconds_decode = time.time() - started
  protected = {os.path.realpath(p) for p in protected} | {os.path.realpath(path)}
  analyses = {}
  for m in models:
    conv = m.conventions
    row = dict(base, model=m.name, duration_s=info.duration_s, sample_rate_in=info.sample_rate)
    stage = "features"
    try:
      analysis = conventions_lib.input_features(audio, conv, config.viterbi, crepe_model,
                                                analyses, f0_rate=config.f0_rate)
      feats = analysis["features"]
      row["seconds_features"] = seconds_decode + analysis["seconds"]
      row["f0_input_median_hz"], row["loudness_input_mean_db"] = _summary(
          feats["f0_hz"], feats["loudness_db"], feats["f0_confidence"])
      stage = "adjust"
      adjusted = adjust_for(m, feats, config)
      row.update(octave_shift=adjusted["octave_shift"], tuning_factor=adjusted["tuning_factor"],
                 has_statistics=m.stats is not None)
      row["f0_adjusted_median_hz"], row["loudness_adjusted_mean_db"] = _summary(
          adjusted["f0_hz"], adjusted["loudness_db"], adjusted["f0_confidence"])
      stage = "synthesize"
      t0 = time.time()
      out = synthesize(m, adjusted, len(audio))
      row["seconds_synthesis"] = time.time() - t0
      stage = "measure"
      t0 = time.time()
      out16, measured, comparison = measure(m, out, adjusted, config, crepe_model)
      row.update(comparison)
      row["f0_output_median_hz"], row["loudness_output_mean_db"] = _summary(
          measured["f0_hz"], measured["loudness_db"], measured["f0_confidence"])
      row["seconds_measure"] = time.time() - t0
      stage = "write"
      dest = outputs[m.name]
      if os.path.realpath(dest) in protected:
        raise ValueError(f"refusing to overwrite an input: {dest}")
      rate = config.sample_rate_out or info.sample_rate
      write_wav(dest, audio_lib.resample(out, conv.sample_rate, rate), rate)
      row.update(status="ok", output_path=dest, sample_rate_out=rate)
      if plots_dir:
        stage = "plot"
        from ddsp_core import plotting  # pylint: disable=g-import-not-at-top
        png = os.path.join(plots_dir, m.name, os.path.basename(dest)[:-4] + ".png")
        os.makedirs(os.path.dirname(png), exist_ok=True)
        plotting.plot_transfer(feats, adjusted, measured, audio, out16, png,
                               frame_rate=conv.frame_rate,
                               sample_rate=conventions_lib.ANALYSIS_SAMPLE_RATE,
                               title=f"{os.path.basename(path)} -> {m.name}")
        row["plot_path"] = png
    except Exception as e:  # pylint: disable=broad-except  # one bad pair must not stop the run
      row.update(status="failed", stage=stage, error_type=type(e).__name__,
                 error_message=f"{path} -> {m.name}: {e}", output_path=None)
    rows.append(row)
  return rows


class TransferFn(beam.DoFn):
  """Loads the models once per worker and transfers each input file."""

  def __init__(self, config: TransferConfig, model_paths: Dict[str, str], outputs: Dict[str, Dict],
               plots_dir: Optional[str], protected: Sequence[str]):
    super().__init__()
    self.config = config
    self.model_paths = model_paths
    self.outputs = outputs
    self.plots_dir = plots_dir
    self.protected = list(protected)
    self.ok = Metrics.counter(NAMESPACE, "transfers_ok")
    self.failed = Metrics.counter(NAMESPACE, "transfers_failed")
    self.models = None
    self.crepe = None

  def setup(self):
    self.crepe = crepe_lib.get_model(self.config.crepe_model, self.config.precision)
    self.models = [load_model_once(name, path, self.config.cache_dir)
                   for name, path in self.model_paths.items()]

  def process(self, element):
    """`element`: an input path (through every model) or (path, [model names])."""
    path, names = (element, None) if isinstance(element, str) else element
    models = [m for m in self.models if names is None or m.name in names]
    rows = transfer_file(path, models, self.config, self.outputs[path], self.crepe,
                         self.plots_dir, self.protected)
    for row in rows:
      (self.ok if row["status"] == "ok" else self.failed).inc()
      print(f"[transfer] {os.path.basename(path)} -> {row['model']}: {row['status']}",
            file=sys.stderr, flush=True)
      yield transfer_report.normalise(row)


def build_transfer(pipeline: beam.Pipeline, work: Sequence, config: TransferConfig,
                   model_paths: Dict[str, str], outputs: Dict[str, Dict[str, str]],
                   plots_dir: Optional[str], protected: Sequence[str]):
  """Adds the transfer to `pipeline`; returns the PCollection of report rows.

  Args:
    pipeline: The Beam pipeline.
    work: Input paths (each through every model) or (path, [model names]).
    config: A `TransferConfig`.
    model_paths: Model name -> model dir or zip.
    outputs: Input path -> model name -> output WAV path.
    plots_dir: Folder for PNGs, or None.
    protected: Paths never to write (the inputs).
  """
  return (pipeline
          | "Inputs" >> beam.Create(list(work))
          | "Reshuffle" >> beam.Reshuffle()
          | "Transfer" >> beam.ParDo(TransferFn(config, model_paths, outputs, plots_dir,
                                                protected)))


def row_file_name(input_path: str, model: str) -> str:
  return hashlib.sha1(f"{input_path}\0{model}".encode("utf-8")).hexdigest() + ".json"


class WriteRowJson(beam.DoFn):
  """Writes each report row to `<directory>/<hash of input and model>.json`.

  The report is assembled from these files where the pipeline was started: a
  sink that every runner runs (Beam's file sinks need side inputs, which the
  DaskRunner cannot give), and a row written twice is still one file.
  """

  def __init__(self, directory: str):
    super().__init__()
    self.directory = directory

  def process(self, row):
    os.makedirs(self.directory, exist_ok=True)
    with publish.atomic_file(os.path.join(self.directory, row_file_name(
        row["input_path"], row["model"]))) as tmp:
      with open(tmp, "w", encoding="utf-8") as f:
        json.dump(row, f)
    yield row["input_path"]


def read_row_files(directory: str) -> List[dict]:
  rows = []
  if os.path.isdir(directory):
    for name in sorted(os.listdir(directory)):
      if name.endswith(".json"):
        with open(os.path.join(directory, name), encoding="utf-8") as f:
          rows.append(json.load(f))
  return rows


@dataclasses.dataclass
class TransferResult:
  output: str
  rows: List[dict]

  @property
  def failed(self) -> List[dict]:
    return [r for r in self.rows if r["status"] != "ok"]

  @property
  def exit_code(self) -> int:
    return 1 if self.failed else 0


def run_transfer(patterns: Sequence[str], models: Sequence[str], output: str,
                 config: TransferConfig, beam_args: Sequence[str] = ()) -> TransferResult:
  """Runs the transfer pipeline; WAVs under output/<model>/, report in output/reports/."""
  paths = inputs.expand_inputs(patterns)
  if not paths:
    raise ValueError(f"no input file matches {list(patterns)}")
  named = dict(parse_model_arg(m) for m in models)
  if not named:
    raise ValueError("give at least one --model")
  for path in named.values():  # fail fast, before any work, on a bad model
    model_dir_lib.load_model(resolve_model(path, config.cache_dir))
  output = os.path.abspath(output)
  rel = output_relative_paths(paths)
  outputs = {p: {name: os.path.join(output, name, rel[p]) for name in named} for p in paths}
  plots_dir = os.path.join(output, "plots") if config.plots else None
  os.makedirs(output, exist_ok=True)
  staging = tempfile.mkdtemp(prefix=f".reports.staging-{uuid.uuid4().hex[:6]}-", dir=output)
  try:
    rows_dir = os.path.join(staging, "rows")
    with runner.beam_session(beam_args) as args:
      pipeline = beam.Pipeline(options=runner.pipeline_options(args))
      _ = (build_transfer(pipeline, paths, config, named, outputs, plots_dir, paths)
           | "Rows" >> beam.ParDo(WriteRowJson(rows_dir)))
      runner.run_and_wait(pipeline)
    rows = sorted(read_row_files(rows_dir), key=lambda r: (r["input_path"], r["model"]))
    pq.write_table(pa.Table.from_pylist(rows, schema=transfer_report.SCHEMA),
                   os.path.join(staging, "transfer.parquet"))
    publish.remove_tree(rows_dir)
    publish.replace_directory(staging, os.path.join(output, "reports"))
  except BaseException:
    publish.remove_tree(staging)
    raise
  transfer_report.write_index(output, rows)
  return TransferResult(output, rows)


def transfer_single(path: str, model: str, output_wav: str, config: TransferConfig) -> dict:
  """One file through one model, with the pipeline's per-file code; returns the report row."""
  name, model_path = parse_model_arg(model)
  loaded = LoadedModel(name, model_path, config.cache_dir)
  row = transfer_file(path, [loaded], config, {name: os.path.abspath(output_wav)},
                      protected=[path])[0]
  return transfer_report.normalise(row)


def read_report(output: str) -> pa.Table:
  return pq.read_table(os.path.join(output, "reports", "transfer.parquet"))
