"""Headless Chromium for the report tests, driven by selenium.

Chromium and its driver are Debian's (`chromium`, `chromium-driver`):
installed with apt-get when they are missing and the tests run as root, else
the test skips, saying why. The window is a laptop screen (1366x768), so a
report that needs a wider window shows as horizontal overflow.
"""

import os
import shutil
import subprocess
import time

import pytest

WINDOW = (1366, 768)
BROWSER_FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--no-first-run", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--disable-quic", "--hide-scrollbars",
                 f"--window-size={WINDOW[0]},{WINDOW[1]}")

# Horizontal overflow of the page and of each table, in CSS pixels (0 when it fits).
OVERFLOW_SCRIPT = """
const width = window.innerWidth;
return {page: document.documentElement.scrollWidth - width, width: width,
        tables: Array.from(document.querySelectorAll('table')).map(t => [
            t.id || t.className, Math.max(t.getBoundingClientRect().right - width,
                                          t.scrollWidth - t.clientWidth)])};
"""


def browser_binaries():
  """(chromium, chromedriver) paths, installing Debian's packages when possible."""
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


def start_browser(extra_flags=(), performance_log: bool = False):
  """A headless Chromium (selenium WebDriver) logging the console; quit() it when done.

  Args:
    extra_flags: More command-line flags (e.g. a fake microphone).
    performance_log: Also log the DevTools network events (`driver.get_log("performance")`).
  """
  from selenium import webdriver  # pylint: disable=g-import-not-at-top
  from selenium.webdriver.chrome.service import Service  # pylint: disable=g-import-not-at-top
  chromium, chromedriver = browser_binaries()
  options = webdriver.ChromeOptions()
  options.binary_location = chromium
  for flag in BROWSER_FLAGS + tuple(extra_flags):
    options.add_argument(flag)
  logs = {"browser": "ALL", **({"performance": "ALL"} if performance_log else {})}
  options.set_capability("goog:loggingPrefs", logs)
  return webdriver.Chrome(service=Service(chromedriver), options=options)


def wait(driver, script, timeout=30):
  """Runs `script` until it returns a true value or `timeout` seconds pass; its last value."""
  deadline = time.time() + timeout
  while True:
    value = driver.execute_script(script)
    if value or time.time() > deadline:
      return value
    time.sleep(0.2)


def open_page(driver, uri: str) -> None:
  """Loads a page (`pathlib.Path.as_uri()`) and waits for it and its audio elements' metadata."""
  driver.get(uri)
  assert wait(driver, "return document.readyState === 'complete'")
  wait(driver, "return Array.from(document.querySelectorAll('audio'))"
       ".every(a => a.readyState >= 1 || a.error);")


def media(driver) -> dict:
  """Every image ([src, complete, naturalWidth]) and audio element ([src, readyState, error code,
  duration]) of the page, src as the file path it resolves to."""
  return driver.execute_script("""
    const path = u => decodeURIComponent(new URL(u).pathname);
    return {
      images: Array.from(document.images).map(i => [path(i.src), i.complete, i.naturalWidth]),
      audio: Array.from(document.querySelectorAll('audio')).map(a => [
          path(a.currentSrc || a.src), a.readyState, a.error ? a.error.code : null, a.duration]),
      links: Array.from(document.querySelectorAll('a[href]')).filter(
          a => a.protocol === 'file:').map(a => path(a.href))};
  """)
