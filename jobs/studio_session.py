"""The studio's work without its web page: takes, a model menu, renders, a batch section.

One take is decoded and analysed once (per model convention); every change of
a control re-runs only the Colab's adjustments, the synthesis and the
measurement of the output, with the functions `ddsp-beam transfer` runs
(`pipelines.transfer.adjust_for`, `synthesize`, `measure`). The measurement
(CREPE on the output, for its f0 error) costs many times the synthesis, so a
render can leave it for later (`render(..., measure=False)`, then `measure`):
the page plays the output first and shows its figures when they are ready.
`jobs.studio` puts a Gradio page in front of this; tests and benches drive it
directly.
"""

import collections
import dataclasses
import hashlib
import os
import re
import tempfile
import threading
import time
from typing import Dict, List, Optional, Sequence

import numpy as np

from ddsp_core import archive
from ddsp_core import audio as audio_lib
from ddsp_core import builtin_models
from ddsp_core import crepe as crepe_lib
from ddsp_core import features as features_lib
from ddsp_core import plotting
from pipelines import transfer as transfer_lib
from pipelines import transfer_conventions as conventions_lib

DEFAULT_MAX_TAKE_MINUTES = 10.0
MAX_TAKES = 4  # analysed takes kept in memory (LRU); a take of 10 minutes is ~40 MB
MAX_PENDING = 8  # owners (page sessions) whose latest render awaits its measurement (output held)

# The Colab's controls: (minimum, maximum, step, default).
CONTROLS = {
    "threshold": (0.0, 2.0, 0.01, 1.0),
    "quiet": (0.0, 60.0, 1.0, 20.0),
    "autotune": (0.0, 1.0, 0.01, 0.0),
    "pitch_shift": (-2.0, 2.0, 1.0, 0.0),
    "loudness_shift": (-20.0, 20.0, 1.0, 0.0),
}


class StudioError(ValueError):
  """What the page shows instead of a result: names the file and the reason."""


class RenderGone(StudioError):
  """A render's measurement was asked for after it was measured or replaced."""


@dataclasses.dataclass
class Take:
  """One decoded recording and its analyses (`Conventions.analysis` -> features)."""
  key: str
  path: str
  name: str
  audio: np.ndarray  # float32 [n_samples] at 16 kHz
  duration_s: float
  sample_rate: int
  analyses: Dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class Render:
  """One render of a take through a model (its figures None until it is measured)."""
  wav_path: str
  spectrogram_png: str
  f0_error_cents: Optional[float]  # None: not measured yet, or no confident output frame
  loudness_l1_db: Optional[float]  # None: not measured yet
  octave_shift: int
  seconds_features: float  # 0 when the take's features were cached
  seconds_render: float  # adjustments + synthesis
  duration_s: float
  seconds_measure: Optional[float] = None  # the output's CREPE and loudness; None until measured

  @property
  def measured(self) -> bool:
    return self.seconds_measure is not None


def _digest(path: str) -> str:
  h = hashlib.sha256()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      h.update(block)
  return h.hexdigest()[:16]


def _is_model_dir(path: str) -> bool:
  return os.path.isdir(path) and os.path.isfile(os.path.join(path, "checkpoint"))


def find_models(dirs: Sequence[str]) -> Dict[str, str]:
  """Name -> path of the models in `--models` dirs: each a model dir, or a folder of
  model dirs and model zips (named after the folder or zip)."""
  found = {}
  for d in dirs:
    if not os.path.isdir(d):
      raise StudioError(f"--models {d}: not a folder")
    candidates = [d] if _is_model_dir(d) else [
        os.path.join(d, n) for n in sorted(os.listdir(d))
        if _is_model_dir(os.path.join(d, n)) or n.lower().endswith(".zip")]
    for path in candidates:
      name = os.path.splitext(os.path.basename(os.path.normpath(path)))[0]
      found[name if name not in found else f"{name}~{len(found)}"] = path
  return found


def control_config(adjust: bool = True, threshold: float = 1.0, quiet: float = 20.0,
                   autotune: float = 0.0, chromatic: bool = False, pitch_shift: float = 0.0,
                   loudness_shift: float = 0.0, **crepe) -> transfer_lib.TransferConfig:
  """The page's controls as the `TransferConfig` that `ddsp-beam transfer` takes."""
  return transfer_lib.TransferConfig(
      adjust=bool(adjust), threshold=float(threshold), quiet=float(quiet),
      autotune=float(autotune), chromatic=bool(chromatic), pitch_shift=float(pitch_shift),
      loudness_shift=float(loudness_shift), **crepe)


class Studio:
  """Models, analysed takes and renders for one studio server (thread-safe)."""

  def __init__(self, model_dirs: Sequence[str] = (), work_dir: Optional[str] = None,
               max_take_minutes: float = DEFAULT_MAX_TAKE_MINUTES,
               cache_dir: str = transfer_lib.DEFAULT_CACHE,
               crepe_model: str = crepe_lib.DEFAULT_MODEL,
               precision: str = crepe_lib.DEFAULT_PRECISION,
               f0_rate: Optional[int] = features_lib.DEFAULT_F0_RATE):
    self.models = dict(builtin_models.installed())
    self.models.update(find_models(model_dirs))
    self.work_dir = work_dir or tempfile.mkdtemp(prefix="ddsp-beam-studio-")
    self.max_take_s = 60.0 * max_take_minutes
    self.cache_dir = cache_dir
    # The analysis settings of every render (TransferConfig fields), as `transfer`'s flags.
    self.crepe_settings = {"crepe_model": crepe_model, "precision": precision,
                           "f0_rate": f0_rate or None}
    self._crepe = None
    self._takes = collections.OrderedDict()
    self._pending = collections.OrderedDict()  # owner -> (wav path, what `measure` needs)
    self._lock = threading.Lock()
    self._renders = 0

  # -- models -------------------------------------------------------------

  def model_names(self) -> List[str]:
    return list(self.models)

  def loaded(self, name: str) -> transfer_lib.LoadedModel:
    if name not in self.models:
      raise StudioError(f"model {name!r} is not in the menu ({', '.join(self.models) or 'none'})")
    try:
      return transfer_lib.load_model_once(name, self.models[name], self.cache_dir)
    except Exception as e:  # pylint: disable=broad-except  # TF, gin and zip errors alike
      raise StudioError(f"model {name} ({self.models[name]}): {e}") from e

  def add_model_zip(self, path: str, display_name: Optional[str] = None) -> str:
    """Checks and extracts an uploaded model zip (as `transfer` does), loads it once and adds it
    to the menu; returns its menu name. Raises `StudioError` saying why a zip is refused."""
    stem = os.path.splitext(os.path.basename(display_name or path))[0]
    name = re.sub(r"[^\w.-]", "_", stem) or "uploaded"
    try:
      model_path = archive.extract_zip(path, self.cache_dir)
    except (archive.UnsafeArchiveError, OSError) as e:
      raise StudioError(f"model zip {display_name or path}: {e}") from e
    if not _is_model_dir(model_path):
      raise StudioError(f"model zip {display_name or path}: holds no model dir (no 'checkpoint' "
                        "file); make one with `ddsp-beam export MODEL_DIR --zip`")
    base, n = name, 1
    while name in self.models and self.models[name] != model_path:
      n += 1
      name = f"{base}~{n}"
    self.models[name] = model_path
    try:
      self.loaded(name)
    except StudioError:
      del self.models[name]
      raise
    return name

  # -- takes --------------------------------------------------------------

  def load_take(self, path: str, display_name: Optional[str] = None) -> Take:
    """Decodes a recording (any rate; wav/flac/ogg/mp3) at 16 kHz, once per file content.

    Raises:
      StudioError: not audio, too short, silent, or longer than the studio's limit.
    """
    name = display_name or os.path.basename(path)
    if not path or not os.path.isfile(path):
      raise StudioError("no take: record one or upload an audio file")
    key = _digest(path)
    with self._lock:
      if key in self._takes:
        self._takes.move_to_end(key)
        return self._takes[key]
    try:
      info = audio_lib.audio_info(path)
      if info.duration_s > self.max_take_s:
        raise StudioError(
            f"{name}: {info.duration_s / 60:.1f} minutes, over this studio's limit of "
            f"{self.max_take_s / 60:g} minutes; transfer long recordings with "
            f"`ddsp-beam transfer {name} --model NAME -o out.wav` (or raise --max_take_minutes)")
      audio, info = audio_lib.load_audio(path, conventions_lib.ANALYSIS_SAMPLE_RATE)
    except audio_lib.AudioDecodeError as e:
      raise StudioError(f"{name}: {e.reason}") from e
    take = Take(key, path, name, np.asarray(audio, np.float32), info.duration_s,
                info.sample_rate)
    with self._lock:
      self._takes[key] = take
      while len(self._takes) > MAX_TAKES:
        self._takes.popitem(last=False)
    return take

  def take(self, key: str) -> Take:
    with self._lock:
      if key not in self._takes:
        raise StudioError("no take: record one or upload an audio file")
      return self._takes[key]

  def _crepe_model(self):
    if self._crepe is None:
      self._crepe = crepe_lib.get_model(self.crepe_settings["crepe_model"],
                                        self.crepe_settings["precision"])
    return self._crepe

  def features(self, take: Take, model_name: str, config: transfer_lib.TransferConfig) -> dict:
    """{'features', 'seconds', 'cached'}: the take's analysis in the model's convention."""
    model = self.loaded(model_name)
    cached = model.conventions.analysis in take.analyses
    analysis = conventions_lib.input_features(take.audio, model.conventions, config.viterbi,
                                              self._crepe_model(), take.analyses,
                                              f0_rate=config.f0_rate)
    return dict(analysis, cached=cached)

  def features_plot(self, take: Take, model_name: str) -> str:
    """PNG of the take's loudness, f0 (MIDI) and confidence, as the Colab plots them."""
    model = self.loaded(model_name)
    analysis = self.features(take, model_name, control_config(**self.crepe_settings))
    path = os.path.join(self.work_dir, f"features-{take.key}-{model.conventions.frame_rate}.png")
    if not os.path.exists(path):
      plotting.plot_features(analysis["features"], path, frame_rate=model.conventions.frame_rate,
                             title=take.name)
    return path

  # -- renders ------------------------------------------------------------

  def render(self, take: Take, model_name: str, config: transfer_lib.TransferConfig,
             measure: bool = True, owner: str = "") -> Render:
    """Adjusts the take's cached features, synthesizes (piecewise: memory is bounded by the
    renderer's piece, not the take) and writes WAV and spectrograms; measures the output's f0
    error and loudness L1 too, or with `measure=False` leaves that to `measure(render, owner)`.

    Each owner (a page session) has at most one render awaiting its measurement, its latest:
    a newer render of the same owner replaces it; other owners' renders do not.
    """
    model = self.loaded(model_name)
    analysis = self.features(take, model_name, config)
    started = time.time()
    adjusted = transfer_lib.adjust_for(model, analysis["features"], config)
    out = transfer_lib.synthesize(model, adjusted, len(take.audio))
    seconds_render = time.time() - started
    with self._lock:
      self._renders += 1
      n = self._renders
    stem = f"{os.path.splitext(take.name)[0][:40]}-{model_name}-{n}"
    stem = re.sub(r"[^\w.-]", "_", stem)
    wav = os.path.join(self.work_dir, stem + ".wav")
    rate = model.conventions.sample_rate
    transfer_lib.write_wav(wav, out, rate)
    out16 = audio_lib.resample(out, rate, conventions_lib.ANALYSIS_SAMPLE_RATE)
    png = plotting.plot_spectrograms(take.audio, out16, os.path.join(self.work_dir, stem + ".png"),
                                     sample_rate=conventions_lib.ANALYSIS_SAMPLE_RATE,
                                     labels=(take.name, f"{model_name} output"))
    result = Render(wav, png, None, None, int(adjusted["octave_shift"]),
                    0.0 if analysis["cached"] else analysis["seconds"], seconds_render,
                    len(out) / rate)
    if measure:
      return self._measured(result, model, out, adjusted, config)
    with self._lock:
      self._pending[owner] = (wav, model, out, adjusted, config)
      self._pending.move_to_end(owner)
      while len(self._pending) > MAX_PENDING:
        self._pending.popitem(last=False)
    return result

  def measure(self, result: Render, owner: str = "") -> Render:
    """`result` with the output's f0 error and loudness L1 (CREPE and loudness of the output
    against the adjusted targets, as the transfer report's).

    Raises:
      RenderGone: `result` is not its owner's render awaiting measurement (measured already,
        or replaced by a newer render of that owner, or its owner was the least recently seen
        of more than MAX_PENDING).
    """
    if result.measured:
      return result
    with self._lock:
      pending = self._pending.get(owner)
      if pending is None or pending[0] != result.wav_path:
        raise RenderGone("that render was measured or replaced by a newer one: render again")
      del self._pending[owner]
    return self._measured(result, *pending[1:])

  def _measured(self, result: Render, model, out, adjusted, config) -> Render:
    started = time.time()
    _, _, comparison = transfer_lib.measure(model, out, adjusted, config, self._crepe_model())
    return dataclasses.replace(result, f0_error_cents=comparison["f0_error_cents_median"],
                               loudness_l1_db=comparison["loudness_l1_db"],
                               seconds_measure=time.time() - started)

  # -- "Add to batch" -----------------------------------------------------

  def batch_section(self, model_name: str, config: transfer_lib.TransferConfig) -> str:
    """The page's settings as a corpus config's `[transfer]` section (TOML)."""
    if model_name in builtin_models.installed():
      entry = model_name
    else:
      entry = f"{model_name}={os.path.abspath(self.models[model_name])}"
    values = [("sources", '["recordings/*.wav"]  # your corpus: files, folders or globs'),
              ("models", f"[{_toml_string(entry)}]"), ("adjust", _toml(config.adjust)),
              ("threshold", _toml(config.threshold)), ("quiet", _toml(config.quiet)),
              ("autotune", _toml(config.autotune)), ("chromatic", _toml(config.chromatic)),
              ("pitch_shift", _toml(config.pitch_shift)),
              ("loudness_shift", _toml(config.loudness_shift)),
              ("crepe_model", _toml_string(config.crepe_model)),
              ("precision", _toml_string(config.precision)),
              ("f0_rate", str(int(config.f0_rate or 0)))]  # 0: CREPE on every frame
    lines = ["# Tuned in ddsp-beam studio: add to a corpus config and run `ddsp-beam run`.",
             "[transfer]"] + [f"{k} = {v}" for k, v in values]
    return "\n".join(lines) + "\n"


def _toml(value) -> str:
  if isinstance(value, bool):
    return "true" if value else "false"
  return repr(float(value))


def _toml_string(value: str) -> str:
  return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
