"""Reading magenta's `dataset_statistics.pkl`, only when the user trusts it, and even then restricted.

A pickle can run any code when loaded. ddsp-beam never unpickles data from a
model or dataset unless the caller passes `trust_pickle=True` (the
`--trust_pickle` flag), and even then the unpickler only builds numpy arrays
and scalars, plain containers, and magenta's `QuantileTransformer` (as a
plain record of its fields). Anything else is refused, naming the global.
"""

import io
import pickle
from typing import Any

import numpy as np

_ALLOWED = {
    ("builtins", "dict"), ("builtins", "list"), ("builtins", "tuple"), ("builtins", "float"),
    ("builtins", "int"), ("builtins", "str"), ("builtins", "bool"), ("builtins", "complex"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy", "float32"), ("numpy", "float64"),
    ("numpy", "int64"), ("numpy", "int32"), ("numpy", "bool_"),
    ("numpy.core.multiarray", "_reconstruct"), ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "scalar"),
}
_QUANTILE_TRANSFORMER = ("ddsp.training.postprocessing", "QuantileTransformer")


class UntrustedPickleError(ValueError):
  pass


class QuantileTransformerFields:
  """magenta's QuantileTransformer as data: its fields, no behaviour."""

  def __setstate__(self, state):
    self.__dict__.update({k: v for k, v in state.items()
                          if k in ("n_quantiles", "n_quantiles_", "output_distribution",
                                   "subsample", "references_", "quantiles_")})


class _Discarded:
  """Stands for a random generator's state (magenta pickles one): built, then ignored."""

  def __init__(self, *args, **kwargs):
    del args, kwargs

  def __setstate__(self, state):
    del state


def _discard(*args, **kwargs):
  del args, kwargs
  return _Discarded()


class _RestrictedUnpickler(pickle.Unpickler):

  def find_class(self, module, name):
    if (module, name) == _QUANTILE_TRANSFORMER:
      return QuantileTransformerFields
    if module == "numpy.random" or module.startswith("numpy.random."):
      return _Discarded if name[:1].isupper() else _discard
    if (module, name) in _ALLOWED:
      return super().find_class(module, name)
    raise pickle.UnpicklingError(f"refusing to load global {module}.{name} from a pickle "
                                 "(only numpy arrays, numbers, containers and magenta's "
                                 "QuantileTransformer fields are allowed)")


def load_restricted(data: bytes) -> Any:
  """Unpickles with the allow-list above (raises `pickle.UnpicklingError` otherwise)."""
  return _RestrictedUnpickler(io.BytesIO(data)).load()


def read_magenta_statistics(path: str, trust_pickle: bool = False) -> dict:
  """magenta's `dataset_statistics.pkl` -> ddsp-beam's statistics dict (JSON-ready).

  Args:
    path: The pickle file.
    trust_pickle: Must be True (the user's explicit `--trust_pickle`).

  Returns:
    Dict with magenta's scalar keys (`mean_pitch`, ...) as floats and
    `loudness_quantiles` from the quantile transformer.

  Raises:
    UntrustedPickleError: without `trust_pickle`, or when the content is refused.
  """
  if not trust_pickle:
    raise UntrustedPickleError(f"{path}: reading a pickle can run code; pass --trust_pickle if "
                               "you trust where this file came from")
  with open(path, "rb") as f:
    try:
      raw = load_restricted(f.read())
    except pickle.UnpicklingError as e:
      raise UntrustedPickleError(f"{path}: {e}") from e
  if not isinstance(raw, dict):
    raise UntrustedPickleError(f"{path}: expected a dict of statistics, got {type(raw).__name__}")
  stats = {k: float(v) for k, v in raw.items()
           if k.startswith(("mean_", "std_", "min_", "max_")) and np.ndim(v) == 0}
  qt = raw.get("quantile_transform")
  if isinstance(qt, QuantileTransformerFields) and hasattr(qt, "quantiles_"):
    quantiles = np.asarray(qt.quantiles_, np.float64).ravel()
    stats["loudness_quantiles"] = {
        "description": "from magenta's QuantileTransformer (note-on loudness_db)",
        "references": np.linspace(0.0, 1.0, len(quantiles)).tolist(),
        "quantiles": quantiles.tolist()}
  return stats
