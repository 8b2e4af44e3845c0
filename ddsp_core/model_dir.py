"""Reading model dirs: the operative gin config and the latest checkpoint.

Used by the training job (to resume), export, evaluation and timbre transfer.
Gin files found in a model dir are parsed only after checking that they bind
nothing but this project's configurables and import nothing (a model from
elsewhere must not run code or reach other modules).
"""

import os
import re
from typing import Optional, Sequence

import tensorflow as tf

from ddsp_core import model as model_lib
from ddsp_core import training

MODEL_INFO_FILE = "model.json"
STATS_FILE = "dataset_statistics.json"
ALLOWED_CONFIGURABLES = ("Autoencoder", "RnnFcDecoder", "train")
_BINDING = re.compile(r"^\s*([A-Za-z_][\w.]*)\s*=")


class ModelDirError(ValueError):
  """A model dir is missing, incomplete, corrupt or untrusted; the message says what."""


def latest_operative_config(model_dir: str) -> Optional[str]:
  if not os.path.isdir(model_dir):
    return None
  configs = [f for f in os.listdir(model_dir) if re.fullmatch(r"operative_config-\d+\.gin", f)]
  if not configs:
    return None
  return os.path.join(model_dir, max(configs, key=lambda f: int(f.split("-")[1].split(".")[0])))


def check_gin_text(text: str, source: str) -> None:
  """Refuses gin that imports modules, includes files or binds unknown configurables."""
  for number, raw in enumerate(text.splitlines(), 1):
    line = raw.split("#", 1)[0].strip()
    if line.startswith(("import ", "from ", "include ")):
      raise ModelDirError(f"{source}:{number}: gin '{line.split()[0]}' is not allowed in a model "
                          "dir (it could load code)")
    binding = _BINDING.match(line)
    if binding:  # other lines continue a multi-line value
      configurable = binding.group(1).split(".")[0]
      if configurable not in ALLOWED_CONFIGURABLES:
        raise ModelDirError(f"{source}:{number}: unknown configurable '{configurable}' "
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
