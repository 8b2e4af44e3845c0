"""Built-in instrument models: the Colab's menu (violin, flute, flute2, trumpet, tenor_saxophone).

Each shipped model is an exported ddsp-beam model dir inside the package,
`ddsp_core/instruments/<name>/`, with a model card: `card.json` (read by `read_card`, the
fields in `CARD_FIELDS`) and `MODEL.md` (the same, for people; `write_card` writes both).
Only the models installed in this copy are offered: a name is resolved when its dir holds a
model (an operative config and a checkpoint index) and a card.

Wherever a model is accepted (`ddsp-beam transfer --model`, `[transfer] models` of a corpus
config), a value is, in this order: an existing model dir or zip; NAME=PATH; a built-in name.
Anything else fails with a message that lists the built-in models (`UnknownModelError`).
"""

import json
import os
import re
from typing import Dict, List, Optional, Tuple

BUILTIN_NAMES = ("violin", "flute", "flute2", "trumpet", "tenor_saxophone")
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "instruments")
CARD_FILE, CARD_MARKDOWN = "card.json", "MODEL.md"
# field -> JSON type(s) a card must hold (None allowed where a figure is not measured yet)
CARD_FIELDS = {
    "name": (str,), "instrument": (str,), "data": (dict,), "architecture": (dict,),
    "training": (dict,), "eval": (dict,), "transfer_quality": (dict, type(None)),
    "licence": (str,),
}


class UnknownModelError(ValueError):
  """A model argument names no model dir, zip, NAME=PATH or installed built-in model."""


class ModelCardError(ValueError):
  """A model card is missing, unreadable or lacks a field; the message says which."""


def _root(root: Optional[str]) -> str:
  return ROOT if root is None else root


def _is_model_dir(path: str) -> bool:
  if not os.path.isdir(path):
    return False
  names = os.listdir(path)
  return ("checkpoint" in names and CARD_FILE in names
          and any(re.fullmatch(r"operative_config-\d+\.gin", n) for n in names))


def installed(root: Optional[str] = None) -> Dict[str, str]:
  """Built-in name -> model dir, for the models this copy ships (in BUILTIN_NAMES order)."""
  base = _root(root)
  return {n: os.path.join(base, n) for n in BUILTIN_NAMES if _is_model_dir(os.path.join(base, n))}


def listing(root: Optional[str] = None) -> str:
  """'violin, flute', or 'none; the names are ...' (for error messages)."""
  names = list(installed(root))
  return ", ".join(names) if names else f"none; the names are {', '.join(BUILTIN_NAMES)}"


def resolve_model_arg(value: str, root: Optional[str] = None) -> Optional[Tuple[str, str]]:
  """(name, model dir) when `value` is a built-in name; None when it is a path or NAME=PATH.

  Args:
    value: A `--model` argument or a `[transfer] models` entry.
    root: The built-in models' folder (default: the package's).

  Raises:
    UnknownModelError: `value` is neither an existing path, a URL, NAME=PATH nor an installed
      built-in name; the message lists the installed built-in models.
  """
  if "://" in value or os.path.exists(value) or "=" in value:
    return None
  models = installed(root)
  if value in models:
    return value, models[value]
  if value in BUILTIN_NAMES:
    raise UnknownModelError(f"model {value!r}: that built-in model is not installed in this copy "
                            f"(built-in models in this copy: {listing(root)})")
  raise UnknownModelError(f"model {value!r} is neither a model dir or zip, NAME=PATH, nor a "
                          f"built-in model (built-in models in this copy: {listing(root)})")


def read_card(model_dir: str) -> dict:
  """The model card (`card.json`) of a model dir, checked for every field of CARD_FIELDS."""
  path = os.path.join(model_dir, CARD_FILE)
  try:
    with open(path, encoding="utf-8") as f:
      card = json.load(f)
  except OSError as e:
    raise ModelCardError(f"{path}: cannot read the model card ({e.strerror or e})") from e
  except ValueError as e:
    raise ModelCardError(f"{path}: not valid JSON ({e})") from e
  return check_card(card, path)


def check_card(card, source: str) -> dict:
  """`card` when it is an object holding every field of CARD_FIELDS with its type."""
  if not isinstance(card, dict):
    raise ModelCardError(f"{source}: a model card is a JSON object")
  for field, types in CARD_FIELDS.items():
    if field not in card:
      raise ModelCardError(f"{source}: field '{field}' is missing")
    if not isinstance(card[field], types):
      names = " or ".join("null" if t is type(None) else t.__name__ for t in types)
      raise ModelCardError(f"{source}: field '{field}' must be {names}")
  return card


def _figure(value) -> str:
  if isinstance(value, float):
    return f"{value:.4g}"
  if isinstance(value, dict):
    return ", ".join(f"{k} {_figure(v)}" for k, v in value.items())
  if isinstance(value, list):
    return "; ".join(_figure(v) for v in value)
  return "not measured" if value is None else str(value)


def card_markdown(card: dict) -> str:
  """MODEL.md text of a card: a heading, then one section per field."""
  lines = [f"# {card['name']}: {card['instrument']}", ""]
  for field in CARD_FIELDS:
    if field in ("name", "instrument"):
      continue
    value = card[field]
    lines.append(f"## {field.replace('_', ' ').capitalize()}")
    lines.append("")
    if isinstance(value, dict):
      lines += [f"- {k}: {_figure(v)}" for k, v in value.items()]
    else:
      lines.append(_figure(value))
    lines.append("")
  return "\n".join(lines)


def write_card(model_dir: str, card: dict) -> None:
  """Checks `card`, then writes card.json and MODEL.md into `model_dir` (each renamed into
  place, so a reader sees a whole file)."""
  check_card(card, os.path.join(model_dir, CARD_FILE))
  os.makedirs(model_dir, exist_ok=True)
  for name, text in ((CARD_FILE, json.dumps(card, indent=1) + "\n"),
                     (CARD_MARKDOWN, card_markdown(card))):
    path = os.path.join(model_dir, name)
    with open(path + ".tmp", "w", encoding="utf-8") as f:
      f.write(text)
    os.replace(path + ".tmp", path)


def summary_lines(root: Optional[str] = None) -> List[str]:
  """`ddsp-beam models`: one block per installed built-in model, from its card."""
  models = installed(root)
  if not models:
    return [f"no built-in models are installed in this copy (the names are "
            f"{', '.join(BUILTIN_NAMES)}); a model dir, zip or NAME=PATH works wherever a model "
            "is accepted"]
  lines = []
  for name, path in models.items():
    card = read_card(path)
    arch, training = card["architecture"], card["training"]
    lines += [f"{name}: {card['instrument']} ({path})",
              f"  data: {_figure(card['data'])}",
              f"  architecture: {_figure(arch)}",
              f"  training: {_figure(training)}",
              f"  eval: {_figure(card['eval'])}",
              f"  transfer quality: {_figure(card['transfer_quality'])}",
              f"  licence: {card['licence']}"]
  return lines
