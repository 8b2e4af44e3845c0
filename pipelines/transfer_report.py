"""The transfer report: its Parquet schema, output measurements and the HTML index."""

import html
import os
from typing import List, Optional
from urllib.parse import quote

import numpy as np
import pyarrow as pa

from ddsp_core.features import hz_to_midi
from pipelines import publish

SCHEMA = pa.schema([
    pa.field("input_path", pa.string(), nullable=False),
    pa.field("model", pa.string(), nullable=False),
    pa.field("status", pa.string(), nullable=False),  # 'ok' or 'failed'
    pa.field("stage", pa.string()),  # where it failed
    pa.field("error_type", pa.string()),
    pa.field("error_message", pa.string()),
    pa.field("output_path", pa.string()),
    pa.field("plot_path", pa.string()),
    pa.field("duration_s", pa.float64()),
    pa.field("sample_rate_in", pa.int32()),
    pa.field("sample_rate_out", pa.int32()),
    # Settings used.
    pa.field("adjust", pa.bool_()),
    pa.field("threshold", pa.float64()),
    pa.field("quiet", pa.float64()),
    pa.field("autotune", pa.float64()),
    pa.field("chromatic", pa.bool_()),
    pa.field("pitch_shift", pa.float64()),
    pa.field("loudness_shift", pa.float64()),
    pa.field("crepe_model", pa.string()),
    pa.field("has_statistics", pa.bool_()),
    pa.field("octave_shift", pa.int32()),
    pa.field("tuning_factor", pa.float64()),
    # Summaries: input, adjusted targets, output.
    pa.field("f0_input_median_hz", pa.float64()),
    pa.field("loudness_input_mean_db", pa.float64()),
    pa.field("f0_adjusted_median_hz", pa.float64()),
    pa.field("loudness_adjusted_mean_db", pa.float64()),
    pa.field("f0_output_median_hz", pa.float64()),
    pa.field("loudness_output_mean_db", pa.float64()),
    # The output against its targets.
    pa.field("f0_error_cents_median", pa.float64()),
    pa.field("f0_scored_frames", pa.int64()),
    pa.field("loudness_l1_db", pa.float64()),
    # Time per stage.
    pa.field("seconds_features", pa.float64()),
    pa.field("seconds_synthesis", pa.float64()),
    pa.field("seconds_measure", pa.float64()),
])


def settings_columns(config) -> dict:
  return {"adjust": config.adjust, "threshold": config.threshold, "quiet": config.quiet,
          "autotune": config.autotune, "chromatic": config.chromatic,
          "pitch_shift": config.pitch_shift, "loudness_shift": config.loudness_shift,
          "crepe_model": config.crepe_model}


def compare(adjusted: dict, measured: dict) -> dict:
  """The generated audio's f0 and loudness against the adjusted targets.

  f0 error: median |cents| over note-on frames (of the targets) where the
  output's pitch is confident (>= 0.5). Loudness: mean |dB| over all frames.
  """
  n = min(len(adjusted["f0_hz"]), len(measured["f0_hz"]))
  target_f0, out_f0 = adjusted["f0_hz"][:n], measured["f0_hz"][:n]
  scored = adjusted["mask_on"][:n] & (measured["f0_confidence"][:n] >= 0.5) & (target_f0 > 0)
  cents = 100.0 * np.abs(hz_to_midi(out_f0[scored]) - hz_to_midi(target_f0[scored]))
  return {"f0_error_cents_median": float(np.median(cents)) if len(cents) else None,
          "f0_scored_frames": int(np.sum(scored)),
          "loudness_l1_db": float(np.mean(np.abs(adjusted["loudness_db"][:n] -
                                                 measured["loudness_db"][:n])))}


def normalise(row: dict) -> dict:
  """Every schema column present (None where not applicable), numpy scalars as Python."""
  out = {}
  for field in SCHEMA:
    value = row.get(field.name)
    if isinstance(value, np.generic):
      value = value.item()
    out[field.name] = value
  return out


def url_path(relative: str) -> str:
  """A relative file path as a URL path: '#', '?', '%', spaces... percent-quoted, '/' kept.

  A browser reads '#' as a fragment, '?' as a query and '%xx' as an escape;
  quoted, a file name is only a file name.
  """
  return quote(relative.replace(os.sep, "/"), safe="/")


def relative_url(path: Optional[str], base_dir: str) -> Optional[str]:
  """A local file as a URL relative to `base_dir` (a page there links it); a URL as it is."""
  if not path:
    return None
  if "://" in path:
    return path
  return url_path(os.path.relpath(os.path.abspath(path), base_dir))


# Laid out for a laptop screen (1366 px): long paths and messages wrap, players
# are narrower than Chromium's 300 px default and the plot is a thumbnail that
# links to the full image.
INDEX_STYLE = (
    "body{font-family:sans-serif;margin:1em}table{border-collapse:collapse;max-width:100%}"
    "td,th{border:1px solid #ccc;padding:3px 5px;font-size:13px;vertical-align:top;"
    "text-align:left}th{background:#f4f4f4}.failed{background:#fee}.num{text-align:right}"
    ".path,.message{overflow-wrap:anywhere}.path{min-width:14em}"
    "audio{display:block;width:240px;height:32px;margin-top:2px}"
    "img.thumb{display:block;width:64px;height:64px;object-fit:contain;border:1px solid #ccc}")


def write_index(output: str, rows: List[dict]) -> str:
  """`output/index.html`: every row with players for input and output (static, relative links)."""
  def num(value, fmt):
    return "" if value is None else format(value, fmt)

  def attr(url):
    return html.escape(url or "", quote=True)

  def player(path):
    return f"<audio controls preload='metadata' src='{attr(relative_url(path, output))}'></audio>"
  lines = ["<!doctype html>", "<html lang='en'><head><meta charset='utf-8'>"
           "<title>ddsp-beam transfer</title>", f"<style>{INDEX_STYLE}</style></head><body>",
           f"<h1>Timbre transfer: {len(rows)} file/model pairs</h1>",
           "<table id='transfer'><tr><th>input</th><th>model</th><th>status</th>"
           "<th>output</th><th>f0 error (cents)</th><th>loudness L1 (dB)</th>"
           "<th>octave shift</th><th>plot</th></tr>"]
  for r in rows:
    ok = r["status"] == "ok"
    output_audio = player(r["output_path"]) if r.get("output_path") else ""
    plot = ""
    if r.get("plot_path"):
      src = attr(relative_url(r["plot_path"], output))
      plot = (f"<a href='{src}'><img class='thumb' src='{src}' "
              f"alt='plot of {html.escape(r['input_path'])}' title='open the full plot'></a>")
    start = (f"<tr class='{'ok' if ok else 'failed'}'><td class='path'>"
             f"{html.escape(r['input_path'])}{player(r['input_path'])}</td>"
             f"<td>{html.escape(r['model'])}</td>")
    if not ok:  # the message spans the columns a failed row has nothing for
      message = html.escape(str(r.get("error_message") or "failed"))
      lines.append(f"{start}<td class='message' colspan='6'>{message}</td></tr>")
      continue
    lines.append(
        f"{start}<td>ok</td><td>{output_audio}</td>"
        f"<td class='num'>{num(r.get('f0_error_cents_median'), '.1f')}</td>"
        f"<td class='num'>{num(r.get('loudness_l1_db'), '.2f')}</td>"
        f"<td class='num'>{num(r.get('octave_shift'), 'd')}</td><td>{plot}</td></tr>")
  lines.append("</table></body></html>")
  path = os.path.join(output, "index.html")
  with publish.atomic_file(path) as tmp:
    with open(tmp, "w", encoding="utf-8") as f:
      f.write("\n".join(lines) + "\n")
  return path
