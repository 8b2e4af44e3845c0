"""Reading model dirs: the operative gin config and the latest checkpoint.

Used by the training job (to resume), export, evaluation and timbre transfer.
Gin files found in a model dir are parsed only after checking that they bind
nothing but this project's configurables and import nothing (a model from
elsewhere must not run code or reach other modules).
"""

import os
import re
import tokenize
from typing import NamedTuple, Optional, Sequence

from gin import config_parser
import tensorflow as tf

from ddsp_core import model as model_lib
from ddsp_core import training

MODEL_INFO_FILE = "model.json"
STATS_FILE = "dataset_statistics.json"
ALLOWED_CONFIGURABLES = ("Autoencoder", "RnnFcDecoder", "train")


class ModelDirError(ValueError):
  """A model dir is missing, incomplete, corrupt or untrusted; the message says what."""


def latest_operative_config(model_dir: str) -> Optional[str]:
  if not os.path.isdir(model_dir):
    return None
  configs = [f for f in os.listdir(model_dir) if re.fullmatch(r"operative_config-\d+\.gin", f)]
  if not configs:
    return None
  return os.path.join(model_dir, max(configs, key=lambda f: int(f.split("-")[1].split(".")[0])))


class _Reference(NamedTuple):
  """`@name` or `@name()` in a gin value, as parsed (nothing is looked up)."""
  name: str  # scopes included, e.g. 'scope/RnnFcDecoder'
  evaluate: bool


class _Macro(NamedTuple):
  """`%name` in a gin value."""
  name: str


class _RecordingDelegate(config_parser.ParserDelegate):
  """Turns references and macros into plain values, so parsing runs and imports nothing."""

  def configurable_reference(self, scoped_configurable_name, evaluate):
    return _Reference(scoped_configurable_name, evaluate)

  def macro(self, macro_name):
    return _Macro(macro_name)


def _nested(value):
  """Every value inside `value` (lists, tuples, dicts: keys and values), itself included."""
  yield value
  if isinstance(value, dict):
    for k, v in value.items():
      yield from _nested(k)
      yield from _nested(v)
  elif isinstance(value, (list, tuple)) and not isinstance(value, (_Reference, _Macro)):
    for v in value:
      yield from _nested(v)


def _refusal(source: str, location, what: str) -> ModelDirError:
  line = (location.line_content or "").strip()
  return ModelDirError(f"{source}:{location.line_num}: {what} (line: {line!r})")


def _check_selector(scope: str, selector: str, source: str, location) -> None:
  if scope:
    raise _refusal(source, location, f"scoped gin binding '{scope}/{selector}' is not allowed in "
                   "a model dir (ddsp-beam's configs use no scopes)")
  if selector not in ALLOWED_CONFIGURABLES:
    head = selector.split(".")[0]  # 'os' of 'os.system': the unknown part
    raise _refusal(source, location, f"unknown configurable "
                   f"'{selector if head in ALLOWED_CONFIGURABLES else head}' "
                   f"(allowed: {', '.join(ALLOWED_CONFIGURABLES)})")


def _parse_statements(text: str, source: str) -> list:
  """gin's statements in `text`, parsed only; a syntax error is a ModelDirError naming its line."""
  try:
    return list(config_parser.ConfigParser(text, _RecordingDelegate()))
  except tokenize.TokenError as e:  # e.g. a bracket left open: (message, (line, column))
    raise ModelDirError(f"{source}:{e.args[1][0]}: gin syntax error: {e.args[0]}") from e
  except (SyntaxError, ValueError) as e:  # gin's own errors carry the line (SyntaxError.lineno)
    raise ModelDirError(f"{source}:{getattr(e, 'lineno', None) or '?'}: gin syntax error: "
                        f"{e.args[0] if e.args else e}") from e


def check_gin_text(text: str, source: str) -> None:
  """Refuses gin that imports modules, includes files or binds unknown configurables.

  The text is read by gin's own parser, statement by statement, so a binding
  is seen as gin will see it whatever its whitespace or line breaks; nothing
  is bound or imported. Allowed: unscoped bindings of ALLOWED_CONFIGURABLES
  whose values are literals or references to ALLOWED_CONFIGURABLES.
  """
  for statement in _parse_statements(text, source):
    if isinstance(statement, config_parser.ImportStatement):
      keyword = "from" if statement.is_from else "import"
      raise _refusal(source, statement.location,
                     f"gin '{keyword}' is not allowed in a model dir (it could load code)")
    if isinstance(statement, config_parser.IncludeStatement):
      raise _refusal(source, statement.location,
                     "gin 'include' is not allowed in a model dir (it could read other files)")
    if isinstance(statement, config_parser.BlockDeclaration):
      _check_selector(statement.scope, statement.selector, source, statement.location)
      continue  # its bindings follow as statements of their own
    if not statement.arg_name:  # `name = value` defines a macro
      raise _refusal(source, statement.location,
                     f"gin macro '{statement.selector}' is not allowed in a model dir")
    _check_selector(statement.scope, statement.selector, source, statement.location)
    for value in _nested(statement.value):
      if isinstance(value, _Macro):
        raise _refusal(source, statement.location,
                       f"gin macro reference '%{value.name}' is not allowed in a model dir")
      if isinstance(value, _Reference):
        scope, _, name = value.name.rpartition("/")
        if scope or name not in ALLOWED_CONFIGURABLES:
          raise _refusal(source, statement.location,
                         f"reference to unknown or scoped configurable '@{value.name}' "
                         f"(allowed: {', '.join(ALLOWED_CONFIGURABLES)})")


def build_model(model_dir: Optional[str] = None, gin_files: Sequence[str] = (),
                gin_params: Sequence[str] = ()) -> model_lib.Autoencoder:
  """Parses gin (the model dir's operative config, else the given files) and builds the model."""
  config = latest_operative_config(model_dir) if model_dir else None
  if config:
    with open(config, encoding="utf-8") as f:
      check_gin_text(f.read(), config)
    training.parse_gin([config], gin_params)
  else:
    training.parse_gin(gin_files or ["solo_instrument.gin"], gin_params)
  return model_lib.Autoencoder()


def restore(model_dir: str, model, optimizer=None) -> Optional[str]:
  """Restores the latest checkpoint; returns its path (None when there is none)."""
  ckpt = tf.train.Checkpoint(model=model, **({"optimizer": optimizer} if optimizer else {}))
  latest = tf.train.latest_checkpoint(model_dir)
  if latest is None:
    return None
  try:
    status = ckpt.restore(latest)
    status.assert_existing_objects_matched()
    if optimizer is None:
      status.expect_partial()  # the optimizer's slots are not needed to synthesize
  except Exception as e:  # pylint: disable=broad-except
    raise ModelDirError(f"{model_dir}: checkpoint {os.path.basename(latest)} cannot be restored "
                        f"into this model ({type(e).__name__}: {str(e)[:300]})") from e
  return latest


def load_model(model_dir: str) -> model_lib.Autoencoder:
  """A trained model from its dir (operative config + latest checkpoint)."""
  if not os.path.isdir(model_dir):
    raise ModelDirError(f"{model_dir}: no such model dir")
  if latest_operative_config(model_dir) is None:
    raise ModelDirError(f"{model_dir}: no operative_config-<step>.gin (not a trained model dir)")
  model = build_model(model_dir)
  if restore(model_dir, model) is None:
    raise ModelDirError(f"{model_dir}: no checkpoint (the 'checkpoint' file or ckpt-* are missing)")
  return model
