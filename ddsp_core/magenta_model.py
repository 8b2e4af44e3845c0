"""Models trained by magenta ddsp (`ddsp_run`): their gin read as text, their weights mapped.

A magenta solo-instrument model dir holds `operative_config-<step>.gin`, a
TensorFlow checkpoint (`ckpt-<step>.*`) and, from the Colab,
`dataset_statistics.pkl`. Its gin is never executed: `parse_gin_bindings`
reads `Name.param = value` lines and reads values as Python literals only
(`ast.literal_eval`), with gin's `@references` and `%macros` kept as strings.
`settings_from_gin` accepts the architecture ddsp-beam implements (no encoder,
an RnnFcDecoder with a GRU over loudness and f0, Harmonic + FilteredNoise +
Add + trainable Reverb) and names any part it does not know.
`load_magenta_weights` reads the checkpoint tensor by tensor (no magenta, no
Keras objects) and assigns each to the matching variable of the model.
"""

import ast
import re
from typing import Any, Dict, List, Tuple

import numpy as np
import tensorflow as tf

_BINDING = re.compile(r"^([A-Za-z_][\w.]*(?:/[\w.]+)?)\s*=\s*(.*)$")
_REFERENCE = re.compile(r"@[A-Za-z_][\w.]*(?:\(\))?|%[A-Za-z_][\w.]*")
_SOLO_DAG = {"Harmonic", "FilteredNoise", "Add", "Reverb"}


class UnsupportedModelError(ValueError):
  """A magenta model ddsp-beam cannot import; the message says which part."""


def _literal(text: str, where: str):
  quoted = _REFERENCE.sub(lambda m: repr(m.group(0)), text)
  try:
    return ast.literal_eval(quoted.strip())
  except (ValueError, SyntaxError) as e:
    raise UnsupportedModelError(f"{where}: cannot read the value {text.strip()[:80]!r}") from e


def _strip_comment(line: str) -> str:
  """The line without a '#' comment (a '#' inside quotes is kept)."""
  quote = None
  for i, c in enumerate(line):
    if quote:
      quote = None if c == quote else quote
    elif c in "'\"":
      quote = c
    elif c == "#":
      return line[:i]
  return line


def parse_gin_bindings(text: str, source: str = "gin") -> Dict[str, Any]:
  """'Configurable.param' -> value (Python literals; '@ref' and '%macro' as strings).

  `import` lines and comments are ignored (nothing is executed); a binding
  continues over the next lines after a backslash or while its brackets are open.
  """
  bindings, pending = {}, None
  for raw in text.splitlines():
    line = _strip_comment(raw).rstrip()
    continued = line.endswith("\\")
    line = line[:-1] if continued else line
    if pending is None:
      line = line.strip()
      if not line or line.startswith(("import ", "from ", "include ")):
        continue
      match = _BINDING.match(line)
      if not match:
        raise UnsupportedModelError(f"{source}: cannot read the line {raw.strip()[:80]!r}")
      pending = [match.group(1), match.group(2)]
    else:
      pending[1] += "\n" + line
    depth = sum(pending[1].count(c) for c in "([{") - sum(pending[1].count(c) for c in ")]}")
    if depth <= 0 and not continued:
      key = pending[0].split("/")[-1]  # scoped bindings: the configurable's own name
      bindings[key] = _literal(pending[1], f"{source}: {pending[0]}")
      pending = None
  if pending is not None:
    raise UnsupportedModelError(f"{source}: {pending[0]}: the value does not end")
  return bindings


def _get(bindings: dict, key: str, default=None):
  """A binding under its short name (gin may write 'module.Name.param')."""
  for name, value in bindings.items():
    if name == key or name.endswith("." + key):
      return value
  return default


def _reference_name(value) -> str:
  return str(value).lstrip("@").rstrip("()").split(".")[-1] if value is not None else "None"


def settings_from_gin(bindings: Dict[str, Any], source: str = "gin") -> Dict[str, Any]:
  """ddsp-beam's gin settings for a magenta model, or `UnsupportedModelError` naming the part."""
  def unsupported(part, value, expected):
    raise UnsupportedModelError(
        f"{source}: unsupported {part} ({value!r}; ddsp-beam imports {expected}). ddsp-beam "
        "implements magenta's solo-instrument autoencoder: no encoder, an RnnFcDecoder with a "
        "GRU over ('ld_scaled', 'f0_scaled'), Harmonic + FilteredNoise + Add + trainable Reverb")

  encoder = _get(bindings, "Autoencoder.encoder")
  if encoder not in (None, "None"):
    unsupported("encoder", encoder, "no encoder")
  decoder = _reference_name(_get(bindings, "Autoencoder.decoder", "@RnnFcDecoder()"))
  if decoder != "RnnFcDecoder":
    unsupported("decoder", decoder, "RnnFcDecoder")
  preprocessor = _reference_name(
      _get(bindings, "Autoencoder.preprocessor", "@F0LoudnessPreprocessor()"))
  if preprocessor != "F0LoudnessPreprocessor":
    unsupported("preprocessor", preprocessor, "F0LoudnessPreprocessor")
  rnn_type = _get(bindings, "RnnFcDecoder.rnn_type", "gru")
  if rnn_type != "gru":
    unsupported("RnnFcDecoder.rnn_type", rnn_type, "'gru'")
  input_keys = tuple(_get(bindings, "RnnFcDecoder.input_keys", ("ld_scaled", "f0_scaled", "z")))
  if input_keys != ("ld_scaled", "f0_scaled"):
    unsupported("RnnFcDecoder.input_keys", input_keys, "('ld_scaled', 'f0_scaled')")
  splits = dict(_get(bindings, "RnnFcDecoder.output_splits", ()))
  if list(splits) != ["amps", "harmonic_distribution", "noise_magnitudes"]:
    unsupported("RnnFcDecoder.output_splits", tuple(splits),
                "amps, harmonic_distribution and noise_magnitudes")
  dag = _get(bindings, "ProcessorGroup.dag", [])
  processors = [_reference_name(step[0]) for step in dag]
  if not set(processors) <= _SOLO_DAG or not {"Harmonic", "FilteredNoise"} <= set(processors):
    unsupported("ProcessorGroup.dag", processors, "Harmonic, FilteredNoise, Add, Reverb")
  for key, expected in (("Harmonic.scale_fn", "@core.exp_sigmoid"),
                        ("FilteredNoise.scale_fn", "@core.exp_sigmoid")):
    value = _get(bindings, key, expected)
    if _reference_name(value) != "exp_sigmoid":
      unsupported(key, value, expected)
  for key, expected in (("Harmonic.amp_resample_method", "window"),
                        ("Harmonic.normalize_below_nyquist", True),
                        ("FilteredNoise.window_size", 0), ("Reverb.add_dry", True)):
    value = _get(bindings, key, expected)
    if value != expected:
      unsupported(key, value, repr(expected))
  reverb = "Reverb" in processors
  if reverb and not _get(bindings, "Reverb.trainable", False):
    unsupported("Reverb.trainable", False, "a trainable reverb (its impulse response a weight)")
  sample_rate = int(_get(bindings, "Harmonic.sample_rate", 16000))
  n_samples = int(_get(bindings, "Harmonic.n_samples", 64000))
  time_steps = int(_get(bindings, "F0LoudnessPreprocessor.time_steps", 1000))
  if n_samples % time_steps:
    unsupported("Harmonic.n_samples / F0LoudnessPreprocessor.time_steps",
                (n_samples, time_steps), "a whole number of samples per frame")
  hop = n_samples // time_steps
  return {
      "Autoencoder.sample_rate": sample_rate,
      "Autoencoder.frame_rate": sample_rate // hop,
      "Autoencoder.reverb_length": int(_get(bindings, "Reverb.reverb_length", 48000)) if reverb else 0,
      "Autoencoder.noise_window_size": 0,
      "Autoencoder.noise_initial_bias": float(_get(bindings, "FilteredNoise.initial_bias", -5.0)),
      "RnnFcDecoder.rnn_channels": int(_get(bindings, "RnnFcDecoder.rnn_channels", 512)),
      "RnnFcDecoder.ch": int(_get(bindings, "RnnFcDecoder.ch", 512)),
      "RnnFcDecoder.layers_per_stack": int(_get(bindings, "RnnFcDecoder.layers_per_stack", 3)),
      "RnnFcDecoder.n_harmonics": int(splits["harmonic_distribution"]),
      "RnnFcDecoder.n_noise_magnitudes": int(splits["noise_magnitudes"]),
  }


def gin_text(settings: Dict[str, Any]) -> str:
  """ddsp-beam gin for `settings_from_gin`'s output."""
  lines = ["# Imported from a magenta ddsp model (ddsp-beam import-model).",
           "Autoencoder.decoder = @RnnFcDecoder()"]
  lines += [f"{key} = {value!r}" for key, value in settings.items()]
  return "\n".join(lines) + "\n"


def _magenta_keys(model) -> List[Tuple[str, tf.Variable, Any]]:
  """(magenta checkpoint key, our variable, transform of the tensor) for every weight."""
  d = model.decoder
  out = []

  def stack(prefix, ours):
    for k, (dense, norm) in enumerate(zip(ours.dense, ours.norm, strict=True)):
      base = f"model/decoder/{prefix}/layer_with_weights-{k}"
      out.extend([(f"{base}/layer_with_weights-0/kernel", dense.kernel, None),
                  (f"{base}/layer_with_weights-0/bias", dense.bias, None),
                  (f"{base}/layer_with_weights-1/gamma", norm.gamma, None),
                  (f"{base}/layer_with_weights-1/beta", norm.beta, None)])
  for i, ours in enumerate(d.input_stacks):
    stack(f"input_stacks/{i}", ours)
  stack("out_stack", d.output_stack)
  cell = "model/decoder/rnn/rnn/cell"
  out += [(f"{cell}/kernel", d.rnn.input_kernel.kernel, None),
          (f"{cell}/recurrent_kernel", d.rnn.recurrent_kernel.kernel, None),
          (f"{cell}/bias", d.rnn.input_kernel.bias, lambda b: b[0]),  # Keras: [input; recurrent]
          (f"{cell}/bias", d.rnn.recurrent_kernel.bias, lambda b: b[1]),
          ("model/decoder/dense_out/kernel", d.output_dense.kernel, None),
          ("model/decoder/dense_out/bias", d.output_dense.bias, None)]
  if model.reverb_ir is not None:
    out.append(("model/processor_group/reverb/ir", model.reverb_ir, None))
  return out


def load_magenta_weights(model, checkpoint_prefix: str) -> int:
  """Assigns the weights of a magenta checkpoint to `model`; returns the number of tensors read.

  Raises:
    UnsupportedModelError: a weight is missing or has another shape (the
      message names it), or the checkpoint holds decoder weights not mapped.
  """
  reader = tf.train.load_checkpoint(checkpoint_prefix)
  available = {k.replace("/.ATTRIBUTES/VARIABLE_VALUE", ""): k
               for k in reader.get_variable_to_shape_map()}
  used = set()
  for key, variable, transform in _magenta_keys(model):
    if key not in available:
      near = sorted(k for k in available if k.split("/")[:3] == key.split("/")[:3])[:5]
      raise UnsupportedModelError(f"{checkpoint_prefix}: no weight '{key}' in the checkpoint "
                                  f"(similar: {near or 'none'})")
    value = reader.get_tensor(available[key])
    value = np.asarray(transform(value) if transform else value)
    if tuple(value.shape) != tuple(variable.shape):
      raise UnsupportedModelError(f"{checkpoint_prefix}: weight '{key}' has shape "
                                  f"{tuple(value.shape)}, the model expects {tuple(variable.shape)}")
    variable.assign(value.astype(np.float32))
    used.add(key)
  left = sorted(k for k in available if k.startswith("model/") and k not in used and
                "OPTIMIZER_SLOT" not in k)
  if left:
    raise UnsupportedModelError(f"{checkpoint_prefix}: weights of unknown parts: {left[:5]}")
  return len(used)
