"""Transfer results kept by content, and a transfer output folder published as a whole.

A transfer row is determined by the input's content, the model (its weights,
operative config and dataset statistics) and the transfer settings; its key
hashes the three. Rendered rows are kept under

    <cache>/<key[:2]>/<key>/output.wav, plot.png, row.json   (row.json last: complete)

so a later run renders only rows whose input, model or settings changed.
`publish_transfer` then builds the output folder from the cache (hard links,
or copies across devices) with the report and index.html, and swaps it in
with one rename: readers see the previous set of outputs or the new one.
"""

import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
from typing import Dict, List, Optional, Sequence, Tuple

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.metrics import Metrics

from ddsp_core import model_dir as model_dir_lib
from ddsp_core.version import __version__
from pipelines import publish
from pipelines import runner
from pipelines import transfer
from pipelines import transfer_conventions
from pipelines import transfer_report


def settings_hash(config: transfer.TransferConfig) -> str:
  settings = {k: v for k, v in dataclasses.asdict(config).items() if k != "cache_dir"}
  settings["ddsp_beam_version"] = __version__
  return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


def model_fingerprint(model_dir: str) -> str:
  """Hash of what a model renders with: latest checkpoint, operative config, statistics,
  and the padding of the features it is fed (model.json)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  latest = tf.train.latest_checkpoint(model_dir)
  config = model_dir_lib.latest_operative_config(model_dir)
  if latest is None or config is None:
    raise model_dir_lib.ModelDirError(f"{model_dir}: no checkpoint or operative config")
  prefix = os.path.basename(latest) + "."
  names = sorted(f for f in os.listdir(model_dir) if f.startswith(prefix))
  names += [os.path.basename(config), model_dir_lib.STATS_FILE]
  digest = hashlib.sha256(f"padding={transfer_conventions.model_padding(model_dir)}\0".encode())
  for name in names:
    path = os.path.join(model_dir, name)
    if os.path.exists(path):
      digest.update(name.encode() + b"\0")
      with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
          digest.update(block)
  return digest.hexdigest()[:16]


def pair_key(input_sha: Optional[str], model_fp: str, settings: str) -> Optional[str]:
  """The cache key of one (input, model) row; None when the input's content is unknown."""
  if not input_sha:
    return None
  return hashlib.sha256(f"{input_sha}:{model_fp}:{settings}".encode()).hexdigest()[:32]


@dataclasses.dataclass(frozen=True)
class TransferCache:
  root: str

  def entry(self, key: str) -> str:
    return os.path.join(self.root, key[:2], key)

  def complete(self, key: Optional[str]) -> bool:
    return bool(key) and os.path.exists(os.path.join(self.entry(key), "row.json"))

  def read_row(self, key: str) -> dict:
    with open(os.path.join(self.entry(key), "row.json"), encoding="utf-8") as f:
      return json.load(f)


class CommitTransfer(beam.DoFn):
  """Moves a rendered row's WAV and plot into its cache entry and writes row.json last;
  then writes {"key", "row"} to `rows_dir` for the driver (see `transfer.WriteRowJson`)."""

  def __init__(self, cache: TransferCache, keys: Dict[Tuple[str, str], Optional[str]],
               rows_dir: str):
    super().__init__()
    self.cache = cache
    self.keys = keys
    self.rows_dir = rows_dir
    self.rendered = Metrics.counter(runner.NAMESPACE, "transfers_rendered")

  def process(self, row):
    self.rendered.inc()
    key = self.keys.get((row["input_path"], row["model"]))
    kept = dict(row)
    # Another input of the same content may commit this key at the same time: its files are
    # its own (`work_outputs`), rendered from the same content, model and settings: the last
    # replace of each file wins, and either is the row's output.
    if key is not None:  # else the content is unknown (unreadable input): reported, not kept
      entry = self.cache.entry(key)
      os.makedirs(entry, exist_ok=True)
      for column, name in (("output_path", "output.wav"), ("plot_path", "plot.png")):
        if row.get(column):
          os.replace(row[column], os.path.join(entry, name))
          kept[column] = name
      with publish.atomic_file(os.path.join(entry, "row.json")) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
          json.dump(kept, f)
    yield from transfer.WriteRowJson(self.rows_dir).process({"key": key, "row": kept,
                                                              "input_path": row["input_path"],
                                                              "model": row["model"]})


def work_outputs(pairs: Dict[str, List[str]], keys: Dict[Tuple[str, str], Optional[str]],
                 work_dir: str) -> Dict[str, Dict[str, str]]:
  """Input path -> model name -> the WAV it is rendered to, one file per (input, model).

  Inputs of the same content share a cache key, and may be rendered at once
  by two workers: each has a work file of its own (numbered by input), so one
  commit never moves away the file that the other is writing or committing.
  """
  return {path: {name: os.path.join(work_dir, name, f"{keys[(path, name)] or 'nokey'}.{i}.wav")
                 for name in names} for i, (path, names) in enumerate(sorted(pairs.items()))}


def render_pairs(pairs: Dict[str, List[str]], keys: Dict[Tuple[str, str], Optional[str]],
                 model_paths: Dict[str, str], config: transfer.TransferConfig,
                 cache: TransferCache, work_dir: str, protected: Sequence[str],
                 beam_args: Sequence[str] = ()) -> Tuple[List[Tuple[Optional[str], dict]], dict]:
  """Renders the (input, models) pairs not in the cache, keeping each in the cache as it is done.

  Returns:
    ([(key, row)] of the rendered rows, the pipeline's counters).
  """
  if not pairs:
    return [], {}
  outputs = work_outputs(pairs, keys, work_dir)
  plots_dir = os.path.join(work_dir, "plots") if config.plots else None
  rows_dir = os.path.join(work_dir, "rows")
  pipeline = beam.Pipeline(options=runner.pipeline_options(beam_args))
  _ = (transfer.build_transfer(pipeline, sorted(pairs.items()), config, model_paths, outputs,
                               plots_dir, protected)
       | "Commit" >> beam.ParDo(CommitTransfer(cache, keys, rows_dir)))
  result = runner.run_and_wait(pipeline, "the transfer pipeline")
  rendered = [(r["key"], r["row"]) for r in transfer.read_row_files(rows_dir)]
  return rendered, runner.counters(result)


def published_row(row: dict, path: str, output_wav: Optional[str], plot: Optional[str]) -> dict:
  """A kept row under the input's current path and its published file names."""
  out = dict(row, input_path=path, output_path=output_wav if row.get("output_path") else None,
             plot_path=plot if row.get("plot_path") else None)
  if row.get("error_message") and row["input_path"] != path:
    out["error_message"] = row["error_message"].replace(row["input_path"], path)
  return transfer_report.normalise(out)


def publish_transfer(output: str, rows: Sequence[Tuple[Optional[str], str, dict]],
                     paths: Sequence[str], cache: TransferCache) -> List[dict]:
  """Builds `output` (WAVs, plots, reports/transfer.parquet, index.html, _SUCCESS) and swaps it in.

  Args:
    output: The published transfer folder.
    rows: (cache key or None, input path, row) for every (input, model) of this run; a
      kept row may have been made for a file of the same content at another path.
    paths: The run's input paths (for output names relative to their common folder).
    cache: Where the kept rows' files are.

  Returns:
    The published report rows.
  """
  output = os.path.abspath(output)
  parent = os.path.dirname(output)
  os.makedirs(parent, exist_ok=True)
  staging = tempfile.mkdtemp(prefix=f".{os.path.basename(output)}.staging-", dir=parent)
  try:
    rel = transfer.output_relative_paths(paths)
    final_rows, index_rows = [], []
    for key, path, row in sorted(rows, key=lambda kpr: (kpr[1], kpr[2]["model"])):
      model = row["model"]
      wav = os.path.join(model, rel[path])
      png = os.path.join("plots", model, rel[path][:-4] + ".png")
      for column, name, target in (("output_path", "output.wav", wav),
                                   ("plot_path", "plot.png", png)):
        if key and row.get(column):
          _link(os.path.join(cache.entry(key), name), os.path.join(staging, target))
      final_rows.append(published_row(row, path, os.path.join(output, wav),
                                      os.path.join(output, png)))
      index_rows.append(published_row(row, path, os.path.join(staging, wav),
                                      os.path.join(staging, png)))
    os.makedirs(os.path.join(staging, "reports"))
    pq.write_table(pa.Table.from_pylist(final_rows, schema=transfer_report.SCHEMA),
                   os.path.join(staging, "reports", "transfer.parquet"))
    # Staging is a sibling of `output`: links to inputs outside it are the same from both.
    transfer_report.write_index(staging, index_rows)
    open(os.path.join(staging, "_SUCCESS"), "w", encoding="utf-8").close()
    publish.replace_directory(staging, output)
  except BaseException:
    publish.remove_tree(staging)
    raise
  return final_rows


def _link(source: str, dest: str) -> None:
  os.makedirs(os.path.dirname(dest), exist_ok=True)
  try:
    os.link(source, dest)
  except OSError:
    shutil.copy2(source, dest)
