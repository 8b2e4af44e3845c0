"""`make demo`'s job (CI's step count) and its HTML report, opened in headless Chromium.

Chromium and its driver are Debian's (the `browser` fixture, tests/browser.py:
installed with apt-get when missing and run as root, else the test skips).
Selenium drives the browser: the page must load with its tables, every image
decoded, every audio element's media loaded, and no console error.
"""

import json
import os

from jobs import demo
from tests import browser as browser_lib


def test_demo_runs_and_its_report_renders(tmp_path, browser):
  out = tmp_path / "demo_out"
  assert demo.main(["--output", str(out), "--steps", "30"]) == 0
  runs = sorted(os.listdir(out / "runs"))
  with open(out / "runs" / runs[-1] / "summary.json", encoding="utf-8") as f:
    stages = {s["name"]: s for s in json.load(f)["stages"]}
  assert stages["prepare:violin"]["counters"]["files_computed"] == 3
  assert stages["train:violin"]["counters"]["steps_trained"] == 30
  assert stages["transfer"]["counters"]["rendered"] == 2
  metrics = json.load(open(out / "models" / "violin" / "eval" / "metrics.json", encoding="utf-8"))
  assert metrics["step"] == 30 and metrics["spectral_loss"] > 0

  browser.get((out / "report" / "index.html").as_uri())
  assert browser_lib.wait(browser, "return document.readyState === 'complete'")
  assert browser.title.startswith("ddsp-beam run ")
  for table, rows in (("#stages", 3 + 1), ("#transfer", 2 + 1), (".files", 3 + 1)):
    assert len(browser.find_elements("css selector", f"{table} tr")) == rows, table
  assert len(browser.find_elements("css selector", "#runs tr")) >= 2
  images = browser.execute_script(
      "return Array.from(document.images).map(i => [i.src, i.complete, i.naturalWidth]);")
  assert len(images) == 1 + 1 + 2  # dataset histograms, training curve, a plot per transfer row
  assert all(complete and width > 0 for _, complete, width in images), images
  loaded = browser_lib.wait(browser, "return Array.from(document.querySelectorAll('audio'))"
                 ".every(a => a.readyState >= 1 || a.error);")
  audio = browser.execute_script(
      "return Array.from(document.querySelectorAll('audio'))"
      ".map(a => [a.currentSrc, a.readyState, a.error ? a.error.code : null, a.duration]);")
  assert loaded and len(audio) == 2 * 2, audio  # input and output of each transfer row
  assert all(ready >= 1 and error is None and duration > 2 for _, ready, error, duration in audio), audio
  errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
  assert not errors, errors
