"""`ddsp-beam import-model`: a magenta ddsp model (dir or Colab zip) -> a ddsp-beam model dir.

    ddsp-beam import-model magenta_model.zip -o models/violin [--trust_pickle]

Reads the magenta model's operative gin as text (`ddsp_core.magenta_model`),
builds the same architecture in ddsp-beam, copies the checkpoint's weights,
and writes a model dir that `transfer`, `export` and `train` (fine-tuning)
accept: operative_config-<step>.gin, ckpt-<step> (the weights with a fresh
optimizer state at the magenta step), model.json (with where it came from and
the padding of the features it was trained on, which transfer feeds it) and,
only with `--trust_pickle`, dataset_statistics.json converted from magenta's
dataset_statistics.pkl through the restricted unpickler. The output is written
beside its final place and renamed into it.
"""

import dataclasses
import glob
import json
import os
import re
import shutil
import tempfile
from typing import Optional

from ddsp_core import archive
from ddsp_core import magenta_model
from ddsp_core import model_dir as model_dir_lib
from ddsp_core import safe_pickle
from ddsp_core import training
from ddsp_core.version import __version__
from pipelines import publish

STATS_PICKLE = "dataset_statistics.pkl"


@dataclasses.dataclass
class ImportResult:
  model_dir: str
  step: int
  weights: int
  n_parameters: int
  statistics: str  # 'converted', 'not read (no --trust_pickle)' or 'none in the model'


def _find_model_dir(root: str) -> str:
  """The folder under `root` (itself or below) that holds operative_config-*.gin."""
  configs = sorted(glob.glob(os.path.join(root, "**", "operative_config-*.gin"), recursive=True))
  folders = sorted({os.path.dirname(c) for c in configs})
  if not folders:
    raise magenta_model.UnsupportedModelError(
        f"{root}: no operative_config-<step>.gin (not a magenta model dir)")
  if len(folders) > 1:
    raise magenta_model.UnsupportedModelError(f"{root}: several model dirs inside: {folders}")
  return folders[0]


def _latest_checkpoint(folder: str) -> str:
  indexes = glob.glob(os.path.join(folder, "ckpt-*.index"))
  steps = sorted(int(m.group(1)) for m in (re.search(r"ckpt-(\d+)\.index$", i) for i in indexes) if m)
  if not steps:
    raise magenta_model.UnsupportedModelError(f"{folder}: no checkpoint (ckpt-<step>.index)")
  return os.path.join(folder, f"ckpt-{steps[-1]}")


def dataset_padding(bindings) -> str:
  """The framing of the features a magenta model was trained on, from its operative gin.

  magenta's record providers (`TFRecordProvider` and its subclasses) take
  `centered`, default False: 'same', as `ddsp_prepare_tfrecord` without
  --center writes; no other magenta configurable has a `centered` parameter.
  """
  centered = magenta_model._get(bindings, "centered", False)  # pylint: disable=protected-access
  return "center" if centered else "same"


def build_from_magenta_config(config: str, scratch: str):
  """ddsp-beam's model of a magenta operative config (fresh weights), and the config's bindings.

  The config is read as text (`ddsp_core.magenta_model`), never executed; the
  equivalent ddsp-beam gin is written to `scratch` and parsed.
  """
  with open(config, encoding="utf-8") as f:
    bindings = magenta_model.parse_gin_bindings(f.read(), os.path.basename(config))
  settings = magenta_model.settings_from_gin(bindings, os.path.basename(config))
  gin_path = os.path.join(scratch, "imported.gin")
  with open(gin_path, "w", encoding="utf-8") as f:
    f.write(magenta_model.gin_text(settings))
  return model_dir_lib.build_model(None, [gin_path]), bindings


def import_model(source: str, output: str, trust_pickle: bool = False,
                 cache_dir: Optional[str] = None) -> ImportResult:
  """Imports a magenta model dir or zip into the ddsp-beam model dir `output`."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  with tempfile.TemporaryDirectory(dir=cache_dir) as scratch:
    if os.path.isfile(source):
      root = archive.extract_zip(source, os.path.join(scratch, "zip"))
    elif os.path.isdir(source):
      root = source
    else:
      raise FileNotFoundError(f"{source}: no such model dir or zip")
    folder = _find_model_dir(root)
    config = model_dir_lib.latest_operative_config(folder) or sorted(
        glob.glob(os.path.join(folder, "operative_config-*.gin")))[-1]
    model, bindings = build_from_magenta_config(config, scratch)
    checkpoint = _latest_checkpoint(folder)
    step = int(checkpoint.rsplit("-", 1)[1])
    weights = magenta_model.load_magenta_weights(model, checkpoint)
    optimizer = training.Adam(model.trainable_variables)
    optimizer.iterations.assign(step)  # fine-tuning continues the step count

    output = os.path.abspath(output)
    os.makedirs(os.path.dirname(output), exist_ok=True)
    staging = tempfile.mkdtemp(prefix=f".{os.path.basename(output)}.staging-",
                               dir=os.path.dirname(output))
    try:
      tf.train.CheckpointManager(tf.train.Checkpoint(model=model, optimizer=optimizer), staging,
                                 max_to_keep=1, checkpoint_name="ckpt").save(checkpoint_number=step)
      import gin  # pylint: disable=g-import-not-at-top
      with open(os.path.join(staging, f"operative_config-{step}.gin"), "w", encoding="utf-8") as f:
        f.write(gin.config_str())
      statistics = "none in the model"
      pickle_path = os.path.join(folder, STATS_PICKLE)
      if os.path.exists(pickle_path):
        if trust_pickle:
          stats = safe_pickle.read_magenta_statistics(pickle_path, trust_pickle=True)
          with open(os.path.join(staging, model_dir_lib.STATS_FILE), "w", encoding="utf-8") as f:
            json.dump(stats, f, indent=1)
          statistics = "converted"
        else:
          statistics = "not read (no --trust_pickle)"
      info = {"format": "ddsp-beam-model", "ddsp_beam_version": __version__,
              "sample_rate": model.sample_rate, "frame_rate": model.frame_rate,
              "n_parameters": model.n_parameters, "gin_files": [f"operative_config-{step}.gin"],
              "dataset": {"padding": dataset_padding(bindings)},
              "imported_from": {"format": "magenta-ddsp", "source": os.path.abspath(source),
                                "checkpoint": os.path.basename(checkpoint),
                                "operative_config": os.path.basename(config),
                                "statistics": statistics}}
      with open(os.path.join(staging, model_dir_lib.MODEL_INFO_FILE), "w", encoding="utf-8") as f:
        json.dump(info, f, indent=1)
      publish.replace_directory(staging, output)
    except BaseException:
      shutil.rmtree(staging, ignore_errors=True)
      raise
  return ImportResult(output, step, weights, model.n_parameters, statistics)
