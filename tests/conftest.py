"""Shared test set-up: paths to the shared corpus, tiny audio makers, slow marks."""

import csv
import os
import shutil
import subprocess

import numpy as np
import pytest
import soundfile as sf

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.environ.get("DDSP_BEAM_SHARED", os.path.join(os.path.dirname(REPO), "shared"))
CORPUS = os.path.join(SHARED, "corpus")
DEMO_CORPUS = os.path.join(REPO, "demo", "corpus")
FIXTURES = os.path.join(REPO, "tests", "fixtures")


def pytest_addoption(parser):
  parser.addoption("--run-slow", action="store_true", help="also run tests marked slow")


def pytest_configure(config):
  config.addinivalue_line("markers", "slow: long-running; only with --run-slow")


def pytest_collection_modifyitems(config, items):
  if config.getoption("--run-slow"):
    return
  skip = pytest.mark.skip(reason="slow: run with --run-slow (make test-all)")
  for item in items:
    if "slow" in item.keywords:
      item.add_marker(skip)


@pytest.fixture(scope="session")
def corpus():
  if not os.path.isdir(CORPUS):
    pytest.skip(f"shared corpus not found at {CORPUS} (set DDSP_BEAM_SHARED)")
  return CORPUS


def corpus_truth(path):
  """A corpus truth CSV: f0 (Hz) [n_frames] and which frames are scored (voiced, weight > 0)."""
  with open(path, encoding="utf-8") as f:
    rows = list(csv.DictReader(f))
  f0 = np.array([float(r["f0_hz"]) for r in rows])
  voiced = np.array([r["voiced"] == "1" for r in rows])
  weight = np.array([float(r["weight"]) for r in rows])
  return f0, voiced & (weight > 0)


def raw_pitch_accuracy(f0_hz, truth_hz, scored):
  """Share of the scored frames whose f0 is within 50 cents of the truth."""
  cents = 1200 * np.abs(np.log2(np.maximum(f0_hz[scored], 1e-3) / truth_hz[scored]))
  return np.mean(cents <= 50)


def tone(freq_hz=440.0, seconds=1.0, sample_rate=16000, amplitude=0.5, harmonics=1):
  """A harmonic tone with 1/k amplitudes, float32 mono."""
  t = np.arange(int(seconds * sample_rate)) / sample_rate
  x = sum(np.sin(2 * np.pi * freq_hz * k * t) / k for k in range(1, harmonics + 1))
  return (amplitude * x / np.max(np.abs(x))).astype(np.float32)


@pytest.fixture
def write_wav(tmp_path):
  """Writes audio with soundfile and returns its path."""
  def _write(name, data, sample_rate=16000, subtype=None, fmt=None):
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), data, sample_rate, subtype=subtype, format=fmt)
    return str(path)
  return _write


def mount_tmpfs(path, size: str) -> bool:
  """Mounts a tmpfs of `size` (e.g. '3m') at `path` to simulate a full disk; False if it cannot."""
  if os.geteuid() != 0 or not shutil.which("mount"):
    return False
  path.mkdir()
  return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                        capture_output=True, check=False).returncode == 0


@pytest.fixture(scope="session")
def dask_cluster():
  """A Dask cluster on this machine: a scheduler and 2 worker processes over TCP on loopback."""
  distributed = pytest.importorskip("distributed")
  with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                host="127.0.0.1", dashboard_address=None) as cluster:
    yield cluster


@pytest.fixture
def browser():
  """Headless Chromium at 1366x768 driven by selenium (tests/browser.py); skips without one."""
  from tests import browser as browser_lib  # pylint: disable=g-import-not-at-top
  driver = browser_lib.start_browser()
  yield driver
  driver.quit()
