"""The corpus job's HTML report: `<output>/report/index.html`, static files only.

What ran and what it did (stages, times, work counters), the last runs, each
dataset (counts, histograms of f0 and loudness and of the windows' voiced
fraction, per-file table, errors, added and removed inputs), each model
(training curve, eval metrics) and the transfer table with audio players and
plots. Images are PNGs in the report folder; audio is linked relatively, so
the page works from disk. The folder is built beside the old one and swapped
in with one rename.
"""

import datetime
import glob
import os
import tempfile
from typing import Dict, List, Optional

import jinja2
import numpy as np
import pyarrow.parquet as pq

from ddsp_core import features as features_lib
from ddsp_core import plotting
from jobs.corpus import read_json
from pipelines import examples
from pipelines import publish
from pipelines import reports
from pipelines import transfer_report

TEMPLATES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "templates")
MAX_WINDOWS = 2000  # windows sampled for the feature histograms


def sample_features(data_dir: str, info: dict, max_windows: int = MAX_WINDOWS) -> Dict[str, np.ndarray]:
  """f0_hz, f0_confidence and loudness_db of up to `max_windows` windows, concatenated."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  spec = examples.spec_from_info(info)
  files = sorted(glob.glob(os.path.join(data_dir, "*.tfrecord-*")))
  out = {k: [] for k in features_lib.FEATURE_KEYS}
  if not files:
    return {k: np.zeros(0, np.float32) for k in out}
  parse = {k: tf.io.FixedLenFeature([spec.n_frames], tf.float32) for k in out}
  ds = tf.data.TFRecordDataset(files).take(max_windows).map(
      lambda r: tf.io.parse_single_example(r, parse))
  for record in ds.as_numpy_iterator():
    for k in out:
      out[k].append(record[k])
  return {k: np.concatenate(v) if v else np.zeros(0, np.float32) for k, v in out.items()}


def plot_dataset(values: Dict[str, np.ndarray], windows_voiced: np.ndarray, path: str,
                 title: str) -> str:
  """Histograms: f0 (MIDI, voiced frames), loudness (dB, all frames), voiced fraction per window."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, axes = plt.subplots(1, 3, figsize=(12, 3))
  voiced = values["f0_confidence"] >= reports.VOICED_CONFIDENCE
  midi = features_lib.hz_to_midi(values["f0_hz"][voiced & (values["f0_hz"] > 0)])
  for ax, data, label in ((axes[0], midi, "f0 (MIDI), voiced frames"),
                          (axes[1], values["loudness_db"], "loudness (dB), all frames"),
                          (axes[2], windows_voiced, "voiced fraction per window")):
    if len(data):
      ax.hist(data, bins=60, color="#4477aa")
    ax.set_xlabel(label)
  axes[0].set_ylabel("count")
  return plotting.save_figure(fig, path, title, dpi=80)


def read_training_curve(model_dir: str) -> Dict[int, float]:
  """step -> loss from the model dir's TensorBoard summaries (the last value of a step wins)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from tensorflow.core.util import event_pb2  # pylint: disable=g-import-not-at-top
  curve = {}
  for events in sorted(glob.glob(os.path.join(model_dir, "summaries", "train", "events.*"))):
    try:
      for record in tf.data.TFRecordDataset(events).as_numpy_iterator():
        event = event_pb2.Event.FromString(record)
        for value in event.summary.value:
          if value.tag == "loss":
            curve[int(event.step)] = float(tf.make_ndarray(value.tensor))
    except tf.errors.DataLossError:
      pass  # a file cut short by a killed run: keep what was read
  return curve


def plot_curve(curve: Dict[int, float], path: str, title: str) -> str:
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, ax = plt.subplots(figsize=(6, 3))
  steps = sorted(curve)
  ax.plot(steps, [curve[s] for s in steps], marker=".", color="#aa3377")
  ax.set_xlabel("step")
  ax.set_ylabel("training loss")
  return plotting.save_figure(fig, path, title, dpi=80)


def _dataset_section(name: str, root: str, staging: str, details: dict) -> dict:
  out_dir = os.path.join(root, "datasets", name)
  section = {"name": name, "output": out_dir, "info": None, "files": [], "errors": [],
             "changes": (details or {}).get("changes", {}), "plot": None}
  if not os.path.exists(os.path.join(out_dir, "_SUCCESS")):
    return section
  info = read_json(os.path.join(out_dir, examples.DATASET_INFO_FILE))
  section["info"] = info
  section["files"] = pq.read_table(os.path.join(out_dir, "reports", "files.parquet")).to_pylist()
  section["files"].sort(key=lambda r: r["path"])
  section["errors"] = pq.read_table(os.path.join(out_dir, "reports", "errors.parquet")).to_pylist()
  windows = pq.read_table(os.path.join(out_dir, "reports", "windows.parquet"),
                          columns=["voiced_fraction"]).column(0).to_numpy()
  values = sample_features(out_dir, info)
  voiced = values["f0_confidence"] >= reports.VOICED_CONFIDENCE
  section["voiced_fraction"] = float(np.mean(voiced)) if len(voiced) else None
  section["sampled_frames"] = int(len(voiced))
  section["plot"] = f"datasets/{name}.png"
  os.makedirs(os.path.join(staging, "datasets"), exist_ok=True)
  plot_dataset(values, windows, os.path.join(staging, section["plot"]), f"dataset {name}")
  return section


def _model_section(name: str, root: str, staging: str, details: dict) -> dict:
  model_dir = os.path.join(root, "models", name)
  section = {"name": name, "model_dir": model_dir, "details": details or {}, "plot": None,
             "metrics": read_json(os.path.join(model_dir, "eval", "metrics.json")),
             "info": read_json(os.path.join(model_dir, "model.json"))}
  curve = read_training_curve(model_dir) if os.path.isdir(model_dir) else {}
  if curve:
    section["plot"] = f"models/{name}.png"
    os.makedirs(os.path.join(staging, "models"), exist_ok=True)
    plot_curve(curve, os.path.join(staging, section["plot"]), f"model {name}")
    section["last_loss"] = curve[max(curve)]
  return section


def _transfer_section(root: str, report_dir: str) -> Optional[dict]:
  table = os.path.join(root, "transfer", "reports", "transfer.parquet")
  if not os.path.exists(table):
    return None
  rows = pq.read_table(table).to_pylist()
  for r in rows:
    r["input_src"] = transfer_report.relative_url(r["input_path"], report_dir)
    r["output_src"] = transfer_report.relative_url(r["output_path"], report_dir)
    r["plot_src"] = transfer_report.relative_url(r["plot_path"], report_dir)
  return {"rows": rows, "output": os.path.join(root, "transfer"),
          "index": transfer_report.relative_url(os.path.join(root, "transfer", "index.html"),
                                                report_dir)}


def _fmt_time(t: Optional[float]) -> str:
  """Unix time as ISO 8601 in the local zone, with its offset: '2026-12-01T16:40:00+00:00'."""
  if not t:
    return ""
  return datetime.datetime.fromtimestamp(t).astimezone().isoformat(timespec="seconds")


def write_report(report_dir: str, summary: dict, details: dict, state, config) -> str:
  """Renders the report of a run into `report_dir` (replaced as a whole); returns index.html."""
  root = config.output
  report_dir = os.path.abspath(report_dir)
  parent = os.path.dirname(report_dir)
  os.makedirs(parent, exist_ok=True)
  staging = tempfile.mkdtemp(prefix=f".{os.path.basename(report_dir)}.staging-", dir=parent)
  try:
    runs: List[dict] = state.last_runs(20)
    for r in runs:
      if r["run_id"] == summary["run_id"]:  # this run: not yet closed in the store
        r.update(finished=summary["finished"], exit_code=summary["exit_code"],
                 status={0: "ok", 1: "partial"}.get(summary["exit_code"], "failed"))
      r["started_text"] = _fmt_time(r["started"])
      r["seconds"] = (r["finished"] - r["started"]) if r["finished"] else None
    context = {
        "summary": summary, "started": _fmt_time(summary["started"]),
        "finished": _fmt_time(summary["finished"]),
        "seconds": summary["finished"] - summary["started"], "runs": runs,
        "stages": summary["stages"],
        "datasets": [_dataset_section(n, root, staging, details["datasets"].get(n))
                     for n in config.datasets],
        "models": [_model_section(n, root, staging, details["models"].get(n))
                   for n in config.models],
        "transfer": _transfer_section(root, report_dir) if config.transfer else None,
    }
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES),
                             autoescape=True, undefined=jinja2.StrictUndefined)
    env.filters["num"] = lambda v, fmt=".2f": "" if v is None else format(v, fmt)
    env.filters["url"] = transfer_report.url_path  # a report-relative file path as a link
    html = env.get_template("report.html.j2").render(**context)
    with open(os.path.join(staging, "index.html"), "w", encoding="utf-8") as f:
      f.write(html)
    publish.replace_directory(staging, report_dir)
  except BaseException:
    publish.remove_tree(staging)
    raise
  return os.path.join(report_dir, "index.html")
