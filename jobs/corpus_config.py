"""The corpus config: a TOML file naming sources, datasets, models, transfer and the output root.

    output = "out"                       # the output root (relative paths: to this file)
    beam_args = ["--direct_num_workers=2"]

    [prepare]                            # defaults of every dataset (ddsp-beam prepare's flags)
    crepe_model = "tiny"

    [datasets.violin]
    sources = ["corpus/violin/**/*.wav"]
    eval_fraction = 0.1                  # any [prepare] key, for this dataset only

    [models.violin]
    dataset = "violin"
    gin_files = ["tiny_instrument.gin"]
    steps = 300

    [transfer]
    sources = ["corpus/voice/*.wav"]
    models = ["violin"]                  # [models.*] names, built-in names (`ddsp-beam models`),
                                         # "name=path/to/model_dir_or.zip" or "name=<built-in>"

Unknown keys and wrong types are errors that name the key. TOML because
Python reads it without a dependency (`tomllib`) and it has comments and types.
"""

import dataclasses
import hashlib
import json
import os
import re
import tomllib
from typing import Any, Dict, Optional, Sequence, Tuple

from ddsp_core import builtin_models
from ddsp_core import crepe
from ddsp_core import features
from ddsp_core import training
from pipelines import examples
from pipelines import prepare
from pipelines import transfer

_NAME = re.compile(r"[A-Za-z0-9_.-]+")

# key -> (type(s), default); None default means required; OPTIONAL: None when absent (TOML has
# no null).
OPTIONAL = object()
PREPARE_KEYS = {
    "example_secs": ((int, float), 4.0), "hop_secs": ((int, float), 1.0),
    "frame_rate": (int, 250), "sample_rate": (int, 16000), "padding": (str, "same"),
    "eval_fraction": ((int, float), 0.0), "split_by": (str, "file"),
    # f0_rate 0: CREPE on every frame (at frame_rate).
    "crepe_model": (str, crepe.DEFAULT_MODEL), "precision": (str, crepe.DEFAULT_PRECISION),
    "f0_rate": (int, features.DEFAULT_F0_RATE), "skip_silent_db": ((int, float), OPTIONAL),
    "viterbi": (bool, True), "chunk_secs": (int, 20), "min_secs": ((int, float), 1.0),
    "silence_db": ((int, float), -80.0), "num_shards": (int, 0),
    "write_magenta_pickle": (bool, False),
}
MODEL_KEYS = {
    "dataset": (str, None), "gin_files": (list, ["solo_instrument.gin"]),
    "gin_params": (list, []), "steps": (int, 30000), "update_steps": (int, 0),
    "checkpoint_every": (int, 300), "keep_checkpoints": (int, 3), "log_every": (int, 50),
    "seed": (int, 0), "eval": (bool, True), "eval_crepe_model": (str, "tiny"),
}
TRANSFER_KEYS = {
    "sources": (list, None), "models": (list, None), "adjust": (bool, True),
    "threshold": ((int, float), 1.0), "quiet": ((int, float), 20.0),
    "autotune": ((int, float), 0.0), "chromatic": (bool, False),
    "pitch_shift": ((int, float), 0.0), "loudness_shift": ((int, float), 0.0),
    "sample_rate_out": ((int, str), 16000), "crepe_model": (str, crepe.DEFAULT_MODEL),
    "precision": (str, crepe.DEFAULT_PRECISION), "f0_rate": (int, features.DEFAULT_F0_RATE),
    "viterbi": (bool, True), "plots": (bool, True),
}
TOP_KEYS = ("output", "beam_args", "prepare", "datasets", "models", "transfer")


class ConfigError(ValueError):
  """The corpus config is unreadable or wrong; the message names the file and the key."""


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
  name: str
  sources: Tuple[str, ...]
  prepare: prepare.PrepareConfig
  num_shards: int = 0


@dataclasses.dataclass(frozen=True)
class ModelSpec:
  """A model to train on a dataset. `steps` is the total; `update_steps` more follow each
  change of the dataset after the model reached its steps (0: the model is kept)."""
  name: str
  dataset: str
  gin_files: Tuple[str, ...]
  gin_params: Tuple[str, ...]
  steps: int
  update_steps: int
  checkpoint_every: int
  keep_checkpoints: int
  log_every: int
  seed: int
  eval: bool
  eval_crepe_model: str

  def settings_hash(self) -> str:
    """What makes a model a different model: its gin files' text and its gin params."""
    texts = []
    for name in self.gin_files:
      with open(training.resolve_gin_file(name), encoding="utf-8") as f:
        texts.append(f.read())
    return _hash({"gin": texts, "params": list(self.gin_params)})


@dataclasses.dataclass(frozen=True)
class TransferSpec:
  sources: Tuple[str, ...]
  models: Tuple[str, ...]  # model names or name=path
  config: transfer.TransferConfig


@dataclasses.dataclass(frozen=True)
class CorpusConfig:
  path: str
  output: str
  beam_args: Tuple[str, ...]
  datasets: Dict[str, DatasetSpec]
  models: Dict[str, ModelSpec]
  transfer: Optional[TransferSpec]
  text_hash: str  # of the file's text and the overrides

  @property
  def cache_dir(self) -> str:
    return os.path.join(self.output, "cache")


def _hash(value) -> str:
  return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _check_keys(table: dict, known, where: str, source: str) -> None:
  if not isinstance(table, dict):
    raise ConfigError(f"{source}: '{where}' must be a table")
  for key in table:
    if key not in known:
      raise ConfigError(f"{source}: unknown key '{where + '.' if where else ''}{key}' "
                        f"(known here: {', '.join(sorted(known))})")


def _typed(table: dict, spec: dict, where: str, source: str) -> Dict[str, Any]:
  _check_keys(table, spec, where, source)
  out = {}
  for key, (types, default) in spec.items():
    if key not in table:
      if default is None:
        raise ConfigError(f"{source}: '{where}.{key}' is required")
      out[key] = None if default is OPTIONAL else default
      continue
    value = table[key]
    if isinstance(value, bool) and bool not in (types if isinstance(types, tuple) else (types,)):
      raise ConfigError(f"{source}: '{where}.{key}' must be {_type_name(types)}, not a boolean")
    if not isinstance(value, types):
      raise ConfigError(f"{source}: '{where}.{key}' must be {_type_name(types)}, "
                        f"not {type(value).__name__} ({value!r})")
    if isinstance(value, list) and not all(isinstance(v, str) for v in value):
      raise ConfigError(f"{source}: '{where}.{key}' must be a list of strings")
    out[key] = value
  return out


def _type_name(types) -> str:
  types = types if isinstance(types, tuple) else (types,)
  names = {int: "a number", float: "a number", str: "a string", bool: "true or false",
           list: "a list of strings"}
  return " or ".join(sorted({names[t] for t in types}))


def _resolve(base: str, pattern: str) -> str:
  pattern = os.path.expanduser(pattern)
  if "://" in pattern or os.path.isabs(pattern):
    return pattern
  return os.path.normpath(os.path.join(base, pattern))


def _set_dotted(table: dict, dotted: str, value) -> None:
  keys = dotted.split(".")
  for key in keys[:-1]:
    table = table.setdefault(key, {})
    if not isinstance(table, dict):
      raise ConfigError(f"--set {dotted}: '{key}' is not a table")
  table[keys[-1]] = value


def parse_override(text: str):
  """'models.violin.steps=30' -> ('models.violin.steps', 30); the value is read as TOML."""
  if "=" not in text:
    raise ConfigError(f"--set {text!r}: use KEY=VALUE, e.g. models.violin.steps=30")
  key, raw = (part.strip() for part in text.split("=", 1))
  try:
    value = tomllib.loads(f"v = {raw}")["v"]
  except tomllib.TOMLDecodeError:
    value = raw  # a bare string
  return key, value


def load_config(path: str, overrides: Sequence[str] = ()) -> CorpusConfig:
  """Reads and checks a corpus config; `overrides` are 'dotted.key=value' strings."""
  path = os.path.abspath(path)
  try:
    with open(path, "rb") as f:
      raw_text = f.read()
    table = tomllib.loads(raw_text.decode("utf-8"))
  except OSError as e:
    raise ConfigError(f"{path}: cannot read the corpus config ({e.strerror or e})") from e
  except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
    raise ConfigError(f"{path}: not valid TOML ({e})") from e
  for override in overrides:
    _set_dotted(table, *parse_override(override))
  base = os.path.dirname(path)
  _check_keys(table, TOP_KEYS, "", path)
  if "output" not in table or not isinstance(table["output"], str):
    raise ConfigError(f"{path}: 'output' (the output root folder) is required")
  beam_args = table.get("beam_args", [])
  if not isinstance(beam_args, list) or not all(isinstance(a, str) for a in beam_args):
    raise ConfigError(f"{path}: 'beam_args' must be a list of strings")
  defaults = _typed(table.get("prepare", {}), PREPARE_KEYS, "prepare", path)
  datasets = {}
  for name, ds in table.get("datasets", {}).items():
    where = f"datasets.{name}"
    _check_name(name, where, path)
    if not isinstance(ds, dict):
      raise ConfigError(f"{path}: '{where}' must be a table")
    if not isinstance(ds.get("sources"), list) or not ds["sources"]:
      raise ConfigError(f"{path}: '{where}.sources' (a list of glob patterns) is required")
    settings = dict(defaults)
    settings.update(_typed({k: v for k, v in ds.items() if k != "sources"},
                           {k: (t, OPTIONAL if settings[k] is None else settings[k])
                            for k, (t, _) in PREPARE_KEYS.items()}, where, path))
    sources = tuple(_resolve(base, s) for s in _typed(
        {"sources": ds["sources"]}, {"sources": (list, None)}, where, path)["sources"])
    datasets[name] = DatasetSpec(name, sources, _prepare_config(settings, where, path),
                                 settings["num_shards"])
  models = {}
  for name, m in table.get("models", {}).items():
    where = f"models.{name}"
    _check_name(name, where, path)
    settings = _typed(m, MODEL_KEYS, where, path)
    if settings["dataset"] not in datasets:
      raise ConfigError(f"{path}: '{where}.dataset' = {settings['dataset']!r} is not one of the "
                        f"[datasets] ({', '.join(datasets) or 'none'})")
    gin_files = tuple(_resolve(base, g) if os.path.exists(_resolve(base, g)) else g
                      for g in settings["gin_files"])
    for g in gin_files:
      try:
        training.resolve_gin_file(g)
      except FileNotFoundError as e:
        raise ConfigError(f"{path}: '{where}.gin_files': {e}") from e
    if settings["steps"] < 1 or settings["update_steps"] < 0:
      raise ConfigError(f"{path}: '{where}.steps' must be >= 1 and update_steps >= 0")
    models[name] = ModelSpec(name=name, **dict(settings, gin_files=gin_files,
                                               gin_params=tuple(settings["gin_params"])))
  transfer_spec = None
  if "transfer" in table:
    settings = _typed(table["transfer"], TRANSFER_KEYS, "transfer", path)
    entries, builtin = [], builtin_models.installed()
    for entry in settings["models"]:
      if entry in models:  # a [models] name wins over a built-in one
        entries.append(entry)
      elif "=" in entry:
        entries.append(_resolve_named(base, entry, builtin, path))
      elif entry in builtin:
        entries.append(f"{entry}={builtin[entry]}")
      else:
        raise ConfigError(f"{path}: 'transfer.models' entry {entry!r} is neither one of the "
                          f"[models], NAME=PATH nor a built-in model (built-in models in "
                          f"this copy: {builtin_models.listing()})")
    transfer_spec = TransferSpec(
        sources=tuple(_resolve(base, s) for s in settings["sources"]),
        models=tuple(entries),
        config=_transfer_config(settings, path))
  return CorpusConfig(
      path=path, output=_resolve(base, table["output"]), beam_args=tuple(beam_args),
      datasets=datasets, models=models, transfer=transfer_spec,
      text_hash=_hash([raw_text.decode("utf-8"), list(overrides)]))


def _resolve_named(base: str, entry: str, builtin: Dict[str, str], source: str) -> str:
  """'name=path' (relative to the config), or 'name=<built-in name>' when no such path exists
  (a second name for a shipped model, e.g. beside a [models] model of the same instrument)."""
  name, model_path = entry.split("=", 1)
  resolved = _resolve(base, model_path)
  if not os.path.exists(resolved) and model_path in builtin:
    return f"{name}={builtin[model_path]}"
  if not os.path.exists(resolved) and model_path in builtin_models.BUILTIN_NAMES:
    raise ConfigError(f"{source}: 'transfer.models' entry {entry!r}: the built-in model {model_path!r} is "
                      f"not installed in this copy (built-in models in this copy: "
                      f"{builtin_models.listing()})")
  return f"{name}={resolved}"


def _check_name(name: str, where: str, source: str) -> None:
  if not _NAME.fullmatch(name) or name in (".", ".."):
    raise ConfigError(f"{source}: '{where}': names use letters, digits, '.', '_' and '-'")


def _prepare_config(s: dict, where: str, source: str) -> prepare.PrepareConfig:
  try:
    return prepare.PrepareConfig(
        window=examples.WindowSpec(sample_rate=s["sample_rate"], frame_rate=s["frame_rate"],
                                   example_secs=float(s["example_secs"]),
                                   hop_secs=float(s["hop_secs"]), padding=s["padding"]),
        crepe_model=s["crepe_model"], viterbi=s["viterbi"], precision=s["precision"],
        f0_rate=s["f0_rate"] or None, eval_fraction=float(s["eval_fraction"]),
        skip_silent_db=None if s["skip_silent_db"] is None else float(s["skip_silent_db"]),
        split_by=s["split_by"], chunk_secs=s["chunk_secs"], min_secs=float(s["min_secs"]),
        silence_db=float(s["silence_db"]), write_magenta_pickle=s["write_magenta_pickle"],
        progress=True)
  except (ValueError, FileNotFoundError) as e:
    raise ConfigError(f"{source}: '{where}': {e}") from e


def _transfer_config(s: dict, source: str) -> transfer.TransferConfig:
  rate = s["sample_rate_out"]
  if isinstance(rate, str) and rate != "input":
    raise ConfigError(f"{source}: 'transfer.sample_rate_out' must be a number or \"input\"")
  try:
    return transfer.TransferConfig(
        adjust=s["adjust"], threshold=float(s["threshold"]), quiet=float(s["quiet"]),
        autotune=float(s["autotune"]), chromatic=s["chromatic"],
        pitch_shift=float(s["pitch_shift"]), loudness_shift=float(s["loudness_shift"]),
        sample_rate_out=None if rate == "input" else int(rate), crepe_model=s["crepe_model"],
        precision=s["precision"], f0_rate=s["f0_rate"] or None, viterbi=s["viterbi"],
        plots=s["plots"])
  except ValueError as e:
    raise ConfigError(f"{source}: 'transfer': {e}") from e
