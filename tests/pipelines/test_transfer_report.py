"""The transfer index.html in headless Chromium: odd file names play, and it fits a laptop screen.

Names with '#', '?', '%' and spaces are URL syntax unless quoted: the page
must still load every player and decode every plot, and link the files by
their real names. The table must fit a 1366x768 window (tests/browser.py);
a screenshot is left in the test's tmp dir.
"""

import os
import pathlib

import numpy as np
import pytest
import soundfile as sf

from pipelines import transfer_report
from tests import browser as browser_lib
from tests.conftest import tone

ODD = "a #1 ?q %25 x"  # '%25' unquoted would be read as '%'


def write_png(path, seed=0):
  """A small real PNG (a matplotlib figure, 200x200 px)."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  os.makedirs(os.path.dirname(path), exist_ok=True)
  fig, ax = plt.subplots(figsize=(2, 2))
  ax.plot(np.random.default_rng(seed).standard_normal(50))
  fig.savefig(path, dpi=100)
  plt.close(fig)
  return path


def write_tone(path, seconds=1.0):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  sf.write(path, tone(330.0, seconds), 16000)
  return path


def odd_rows(tmp_path, output=None):
  """Report rows whose input, output and plot paths have '#', '?', '%' and spaces in folders and
  names; one ok row and one failed row with a long message. Returns (output dir, rows)."""
  output = str(output or tmp_path / f"out {ODD}")
  long_dir = os.path.join(str(tmp_path), f"in {ODD}", "a rather long folder name for recordings",
                          "session 2026-12-01 take 3")
  ok_input = write_tone(os.path.join(long_dir, f"voice {ODD}.wav"))
  bad_input = write_tone(os.path.join(long_dir, f"voice {ODD} 2.wav"))
  common = {"model": "violin", "sample_rate_in": 16000, "duration_s": 1.0}
  rows = [
      transfer_report.normalise({
          **common, "input_path": ok_input, "status": "ok", "sample_rate_out": 16000,
          "output_path": write_tone(os.path.join(output, "violin", f"voice {ODD}.wav")),
          "plot_path": write_png(os.path.join(output, "plots", "violin", f"voice {ODD}.png")),
          "f0_error_cents_median": 12.3, "loudness_l1_db": 1.25, "octave_shift": 0}),
      transfer_report.normalise({
          **common, "input_path": bad_input, "status": "failed", "stage": "synthesis",
          "error_type": "ResourceExhaustedError",
          "error_message": f"{bad_input} -> violin: " + "out of memory while rendering " * 8}),
  ]
  return output, rows


def test_relative_urls_are_quoted(tmp_path):
  base = str(tmp_path / "out")
  assert transfer_report.relative_url(str(tmp_path / "in #1" / "a?b %25.wav"), base) == (
      "../in%20%231/a%3Fb%20%2525.wav")
  assert transfer_report.relative_url("gs://bucket/a b.wav", base) == "gs://bucket/a b.wav"
  assert transfer_report.relative_url(None, base) is None


def test_index_plays_odd_names_and_fits_a_laptop_screen(tmp_path, browser):
  output, rows = odd_rows(tmp_path)
  index = transfer_report.write_index(output, rows)
  browser_lib.open_page(browser, pathlib.Path(index).as_uri())
  assert browser.title == "ddsp-beam transfer"
  found = browser_lib.media(browser)
  ok, failed = rows
  assert sorted(a[0] for a in found["audio"]) == sorted(
      [ok["input_path"], ok["output_path"], failed["input_path"]]), found
  for src, ready, error, duration in found["audio"]:
    assert ready >= 1 and error is None and duration == pytest.approx(1.0, abs=0.01), (src, ready)
  assert found["images"] == [[ok["plot_path"], True, 200]], found
  assert found["links"] == [ok["plot_path"]], found  # the thumbnail opens the full plot

  overflow = browser.execute_script(browser_lib.OVERFLOW_SCRIPT)
  browser.save_screenshot(str(tmp_path / "transfer_index.png"))
  assert overflow["width"] == browser_lib.WINDOW[0], overflow
  assert overflow["page"] <= 0, overflow
  assert all(over <= 0 for _, over in overflow["tables"]), overflow
  rows_px = browser.execute_script(
      "return Array.from(document.querySelectorAll('#transfer tr')).slice(1)"
      ".map(r => r.getBoundingClientRect().height);")
  assert len(rows_px) == 2 and max(rows_px) < 160, rows_px  # no 260 px rows
  assert not [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
