"""`make demo`'s job (10 training steps; CI's `make demo` runs 30) and its HTML report, in headless Chromium.

Chromium and its driver are Debian's (the `browser` fixture, tests/browser.py:
installed with apt-get when missing and run as root, else the test skips).
Selenium drives the browser: the page must load with its tables, every image
decoded, every audio element's media loaded, and no console error.
"""

import json
import os
import pathlib
import re
import time
import tomllib

import pyarrow as pa
import pyarrow.parquet as pq

from jobs import corpus_config
from jobs import demo
from jobs import report
from jobs import state as state_lib
from pipelines import transfer_report
from tests import browser as browser_lib
from tests.pipelines.test_transfer_report import ODD
from tests.pipelines.test_transfer_report import odd_rows

ISO_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(Z|[+-]\d\d:\d\d)")


def check_fits(driver, screenshot):
  """No horizontal overflow at 1366x768, of the page or any table; screenshots left for a look."""
  overflow = driver.execute_script(browser_lib.OVERFLOW_SCRIPT)
  driver.save_screenshot(str(screenshot))  # the top, and the transfer table when there is one
  if driver.execute_script("const t = document.getElementById('transfer');"
                           "if (t) t.scrollIntoView(); return !!t;"):
    driver.save_screenshot(str(screenshot).replace(".png", "_transfer.png"))
  assert overflow["width"] == browser_lib.WINDOW[0], overflow
  assert overflow["page"] <= 0 and all(over <= 0 for _, over in overflow["tables"]), overflow


def check_fits_and_footer(driver, screenshot):
  """`check_fits`, and the footer's time is ISO 8601 with its zone."""
  check_fits(driver, screenshot)
  written = driver.find_element("css selector", "#footer time").text
  assert ISO_TIME.fullmatch(written), written


def demo_transfer_rows() -> int:
  """Two takes through each model of demo/corpus.toml: its own and the shipped instruments."""
  with open(demo.DEMO_CONFIG, "rb") as f:
    models = tomllib.load(f)["transfer"]["models"]
  assert len(models) >= 2 and models[0] == "violin"  # the demo's model comes first
  return 2 * len(models)


def test_demo_runs_and_its_report_renders(tmp_path, browser):
  out = tmp_path / "demo_out"
  n = demo_transfer_rows()
  assert demo.main(["--output", str(out), "--steps", "10"]) == 0
  runs = sorted(os.listdir(out / "runs"))
  with open(out / "runs" / runs[-1] / "summary.json", encoding="utf-8") as f:
    stages = {s["name"]: s for s in json.load(f)["stages"]}
  assert stages["prepare:violin"]["counters"]["files_computed"] == 3
  assert stages["train:violin"]["counters"]["steps_trained"] == 10
  assert stages["transfer"]["counters"]["rendered"] == n
  metrics = json.load(open(out / "models" / "violin" / "eval" / "metrics.json", encoding="utf-8"))
  assert metrics["step"] == 10 and metrics["spectral_loss"] > 0

  browser.get((out / "report" / "index.html").as_uri())
  assert browser_lib.wait(browser, "return document.readyState === 'complete'")
  assert browser.title.startswith("ddsp-beam run ")
  for table, rows in (("#stages", 3 + 1), ("#transfer", n + 1), (".files", 3 + 1)):
    assert len(browser.find_elements("css selector", f"{table} tr")) == rows, table
  assert len(browser.find_elements("css selector", "#runs tr")) >= 2
  images = browser.execute_script(
      "return Array.from(document.images).map(i => [i.src, i.complete, i.naturalWidth]);")
  assert len(images) == 1 + 1 + n  # dataset histograms, training curve, a plot per transfer row
  assert all(complete and width > 0 for _, complete, width in images), images
  loaded = browser_lib.wait(browser, "return Array.from(document.querySelectorAll('audio'))"
                 ".every(a => a.readyState >= 1 || a.error);")
  audio = browser.execute_script(
      "return Array.from(document.querySelectorAll('audio'))"
      ".map(a => [a.currentSrc, a.readyState, a.error ? a.error.code : null, a.duration]);")
  assert loaded and len(audio) == n * 2, audio  # input and output of each transfer row
  assert all(ready >= 1 and error is None and duration > 2 for _, ready, error, duration in audio), audio
  errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
  assert not errors, errors
  check_fits_and_footer(browser, tmp_path / "demo_report.png")

  browser_lib.open_page(browser, (out / "transfer" / "index.html").as_uri())
  found = browser_lib.media(browser)
  assert len(found["audio"]) == n * 2 and all(
      ready >= 1 and error is None and duration > 2 for _, ready, error, duration in found["audio"])
  assert len(found["images"]) == n and all(done and width > 0 for _, done, width in found["images"])
  check_fits(browser, tmp_path / "demo_transfer_index.png")


def test_report_links_odd_names_and_fits_a_laptop_screen(tmp_path, browser):
  """The corpus report of a run with a transfer stage, input and output names with '#', '?', '%'."""
  root = tmp_path / f"root {ODD}"
  output, rows = odd_rows(tmp_path, root / "transfer")
  os.makedirs(os.path.join(output, "reports"))
  pq.write_table(pa.Table.from_pylist(rows, schema=transfer_report.SCHEMA),
                 os.path.join(output, "reports", "transfer.parquet"))
  transfer_report.write_index(output, rows)
  config_path = tmp_path / "corpus.toml"
  config_path.write_text(f"output = {json.dumps(str(root))}\n[transfer]\n"
                         f"sources = [{json.dumps(str(tmp_path / '*.wav'))}]\n"
                         f"models = [{json.dumps('violin=' + str(tmp_path / 'model'))}]\n")
  config = corpus_config.load_config(str(config_path))
  started = time.time()
  summary = {"run_id": "20261201T164000Z-abcdef", "config": str(config_path), "output": str(root),
             "started": started, "finished": started + 2.5, "exit_code": 1,
             "stages": [{"name": "transfer", "status": "partial", "seconds": 2.5,
                         "counters": {"inputs": 2, "rows": 2, "rendered": 2, "failed": 1},
                         "message": "", "failures": [{"error_type": rows[1]["error_type"],
                                                       "message": rows[1]["error_message"]}]}]}
  with state_lib.StateStore(str(tmp_path / "state.sqlite")) as state:
    state.begin_run(summary["run_id"], str(config_path), "hash")
    index = report.write_report(str(root / "report"), summary, {"datasets": {}, "models": {}},
                                state, config)

  browser_lib.open_page(browser, pathlib.Path(index).as_uri())
  assert browser.title == f"ddsp-beam run {summary['run_id']}"
  found = browser_lib.media(browser)
  ok, failed = rows
  assert sorted(a[0] for a in found["audio"]) == sorted(
      [ok["input_path"], ok["output_path"], failed["input_path"]]), found
  assert all(ready >= 1 and error is None for _, ready, error, _ in found["audio"]), found
  assert found["images"] == [[ok["plot_path"], True, 200]], found
  assert sorted(found["links"]) == sorted([ok["plot_path"], os.path.join(output, "index.html")])
  check_fits_and_footer(browser, tmp_path / "corpus_report.png")
  started_cell = browser.find_element("css selector", "#runs tr:nth-child(2) td:nth-child(2)").text
  assert ISO_TIME.fullmatch(started_cell), started_cell
  assert not [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
