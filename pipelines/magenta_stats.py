"""`dataset_statistics.pkl` in magenta ddsp's layout, for users of the magenta Colab.

ddsp-beam's own statistics are JSON (`dataset_statistics.json`): nothing is
ever unpickled from a dataset or a model here. This module only *writes* the
pickle magenta's Colab loads: a dict with magenta's keys (`mean_pitch`,
`std_loudness_note`, ...) and, under `quantile_transform`, an object of
magenta's `ddsp.training.postprocessing.QuantileTransformer` class holding the
loudness quantiles. ddsp need not be installed to write it: the object is
pickled under that class path with the attributes magenta's transform reads
(`n_quantiles_`, `references_`, `quantiles_`, `output_distribution`).
"""

import contextlib
import pickle
import sys
import types

import numpy as np

_MODULE = "ddsp.training.postprocessing"
_CLASS = "QuantileTransformer"


class _QuantileTransformerStandIn:
  """Pickled under ddsp's class path; magenta's class is what loads it."""


_QuantileTransformerStandIn.__module__ = _MODULE
_QuantileTransformerStandIn.__name__ = _CLASS
_QuantileTransformerStandIn.__qualname__ = _CLASS


@contextlib.contextmanager
def _class_path():
  """Yields the class to pickle: ddsp's own when installed, else the stand-in
  (registered under ddsp's module path only while pickling)."""
  try:
    from ddsp.training import postprocessing  # pylint: disable=g-import-not-at-top
    yield postprocessing.QuantileTransformer
    return
  except Exception:  # pylint: disable=broad-except
    pass
  added = {}
  for name in ("ddsp", "ddsp.training", _MODULE):
    if name not in sys.modules:
      added[name] = sys.modules[name] = types.ModuleType(name)
  setattr(sys.modules[_MODULE], _CLASS, _QuantileTransformerStandIn)
  try:
    yield _QuantileTransformerStandIn
  finally:
    for name in added:
      del sys.modules[name]


def magenta_statistics_bytes(stats: dict) -> bytes:
  """Pickled magenta-layout statistics from ddsp-beam's statistics dict."""
  out = {}
  for key, value in stats.items():
    if key.startswith(("mean_", "std_", "min_", "max_")) and isinstance(value, (int, float)):
      out[key] = np.float32(value)
  quantiles = np.asarray(stats["loudness_quantiles"]["quantiles"], np.float64)
  with _class_path() as cls:
    transformer = object.__new__(cls)
    n = len(quantiles)
    transformer.__dict__.update(
        n_quantiles=n, n_quantiles_=n, output_distribution="uniform", subsample=int(1e5),
        references_=np.linspace(0.0, 1.0, n), quantiles_=quantiles[:, np.newaxis])
    out["quantile_transform"] = transformer
    return pickle.dumps(out, protocol=4)
