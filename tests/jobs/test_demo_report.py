"""`make demo`'s job (CI's step count) and its HTML report, opened in headless Chromium.

Chromium and its driver are Debian's (`chromium`, `chromium-driver`); the test
installs them with apt-get when they are missing and it runs as root, and
skips (saying why) otherwise. Selenium drives the browser: the page must load
with its tables, every image decoded, every audio element's media loaded, and
no console error.
"""

import json
import os
import shutil
import subprocess
import time

import pytest

from jobs import demo

BROWSER_FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--no-first-run", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--disable-quic")


def _browser_binaries():
  found = shutil.which("chromium"), shutil.which("chromedriver")
  if all(found):
    return found
  if os.geteuid() != 0 or not shutil.which("apt-get"):
    pytest.skip("chromium and chromium-driver are not installed (apt-get install chromium "
                "chromium-driver, as root)")
  install = ["apt-get", "install", "-y", "--no-install-recommends", "chromium", "chromium-driver"]
  env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
  if subprocess.run(install, capture_output=True, env=env, check=False).returncode != 0:
    subprocess.run(["apt-get", "update"], capture_output=True, env=env, check=False)
    done = subprocess.run(install, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
      pytest.fail(f"could not install chromium: {done.stderr[-2000:]}")
  return shutil.which("chromium"), shutil.which("chromedriver")


@pytest.fixture
def browser():
  from selenium import webdriver  # pylint: disable=g-import-not-at-top
  from selenium.webdriver.chrome.service import Service  # pylint: disable=g-import-not-at-top
  chromium, chromedriver = _browser_binaries()
  options = webdriver.ChromeOptions()
  options.binary_location = chromium
  for flag in BROWSER_FLAGS:
    options.add_argument(flag)
  options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
  driver = webdriver.Chrome(service=Service(chromedriver), options=options)
  yield driver
  driver.quit()


def _wait(driver, script, timeout=30):
  deadline = time.time() + timeout
  while True:
    value = driver.execute_script(script)
    if value or time.time() > deadline:
      return value
    time.sleep(0.2)


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
  assert _wait(browser, "return document.readyState === 'complete'")
  assert browser.title.startswith("ddsp-beam run ")
  for table, rows in (("#stages", 3 + 1), ("#transfer", 2 + 1), (".files", 3 + 1)):
    assert len(browser.find_elements("css selector", f"{table} tr")) == rows, table
  assert len(browser.find_elements("css selector", "#runs tr")) >= 2
  images = browser.execute_script(
      "return Array.from(document.images).map(i => [i.src, i.complete, i.naturalWidth]);")
  assert len(images) == 1 + 1 + 2  # dataset histograms, training curve, a plot per transfer row
  assert all(complete and width > 0 for _, complete, width in images), images
  loaded = _wait(browser, "return Array.from(document.querySelectorAll('audio'))"
                 ".every(a => a.readyState >= 1 || a.error);")
  audio = browser.execute_script(
      "return Array.from(document.querySelectorAll('audio'))"
      ".map(a => [a.currentSrc, a.readyState, a.error ? a.error.code : null, a.duration]);")
  assert loaded and len(audio) == 2 * 2, audio  # input and output of each transfer row
  assert all(ready >= 1 and error is None and duration > 2 for _, ready, error, duration in audio), audio
  errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
  assert not errors, errors
