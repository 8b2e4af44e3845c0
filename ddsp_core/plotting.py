"""Feature plots like the magenta Colab's: loudness, f0 and confidence over time."""

import warnings
from typing import Dict, Optional

import numpy as np


def save_figure(fig, path: str, title: Optional[str], dpi: int) -> str:
  """Lays out `fig`, writes it to `path` as PNG and closes it; returns `path`."""
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  if title:
    fig.suptitle(title)
  with warnings.catch_warnings():
    # File names may hold characters (CJK, symbols) the bundled font lacks.
    warnings.filterwarnings("ignore", message="Glyph .* missing from font")
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
  plt.close(fig)
  return path


def plot_features(features: Dict[str, np.ndarray], path: str, frame_rate: int = 250,
                  title: Optional[str] = None, f0_adjusted_hz: Optional[np.ndarray] = None) -> str:
  """Writes a PNG with three stacked panels.

  Args:
    features: 'loudness_db', 'f0_hz' and 'f0_confidence', float arrays [n_frames].
    path: PNG path to write.
    frame_rate: Frames per second, for the time axis.
    title: Figure title (e.g. the input file name).
    f0_adjusted_hz: Optional second f0 curve (e.g. after transfer adjustments).

  Returns:
    `path`.
  """
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  from ddsp_core.features import hz_to_midi  # pylint: disable=g-import-not-at-top

  n = len(features["f0_hz"])
  t = np.arange(n) / frame_rate
  fig, axes = plt.subplots(3, 1, figsize=(10, 7), sharex=True)
  axes[0].plot(t, features["loudness_db"], color="tab:blue", lw=1)
  axes[0].set_ylabel("loudness (dB)")
  midi = hz_to_midi(features["f0_hz"])
  axes[1].plot(t, np.where(midi > 0, midi, np.nan), color="tab:orange", lw=1, label="f0")
  if f0_adjusted_hz is not None:
    adj = hz_to_midi(f0_adjusted_hz)
    axes[1].plot(t, np.where(adj > 0, adj, np.nan), color="tab:green", lw=1, label="adjusted")
    axes[1].legend(loc="upper right")
  axes[1].set_ylabel("f0 (MIDI)")
  axes[2].plot(t, features["f0_confidence"], color="tab:red", lw=1)
  axes[2].set_ylabel("f0 confidence")
  axes[2].set_ylim(-0.02, 1.02)
  axes[2].set_xlabel("time (s)")
  for ax in axes:
    ax.grid(alpha=0.3)
  return save_figure(fig, path, title, dpi=80)


def plot_transfer(features, adjusted, measured, audio_in, audio_out, path: str,
                  frame_rate: int = 250, sample_rate: int = 16000, title: Optional[str] = None) -> str:
  """PNG of a transfer: loudness and f0 (input, adjusted, output), note mask, spectrograms.

  Args:
    features: Input 'f0_hz', 'loudness_db', 'f0_confidence' [n_frames].
    adjusted: Adjusted 'f0_hz', 'loudness_db', 'mask_on' [n_frames].
    measured: The output's 'f0_hz', 'loudness_db' [n_frames].
    audio_in: Input audio (16 kHz).
    audio_out: Output audio (16 kHz).
    path: PNG path.
    frame_rate: Frames per second.
    sample_rate: Audio rate.
    title: Figure title.

  Returns:
    `path`.
  """
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  from ddsp_core.features import hz_to_midi  # pylint: disable=g-import-not-at-top

  def midi(f0):
    m = hz_to_midi(f0)
    return np.where(m > 0, m, np.nan)
  t = np.arange(len(features["f0_hz"])) / frame_rate
  n = len(t)
  fig, axes = plt.subplots(5, 1, figsize=(11, 11), sharex=True)
  axes[0].plot(t, features["loudness_db"], lw=1, label="input")
  axes[0].plot(t, adjusted["loudness_db"][:n], lw=1, label="adjusted")
  axes[0].plot(t, measured["loudness_db"][:n], lw=1, alpha=0.7, label="output")
  axes[0].set_ylabel("loudness (dB)")
  axes[1].plot(t, midi(features["f0_hz"]), lw=1, label="input")
  axes[1].plot(t, midi(adjusted["f0_hz"][:n]), lw=1, label="adjusted")
  axes[1].plot(t, midi(measured["f0_hz"][:n]), lw=1, alpha=0.7, label="output")
  axes[1].set_ylabel("f0 (MIDI)")
  axes[2].fill_between(t, 0, adjusted["mask_on"][:n].astype(float), step="mid", alpha=0.5)
  axes[2].set_ylabel("note on")
  for ax, audio, name in ((axes[3], audio_in, "input"), (axes[4], audio_out, "output")):
    ax.specgram(audio, NFFT=512, Fs=sample_rate, noverlap=384, cmap="magma")
    ax.set_ylabel(f"{name} (Hz)")
  axes[4].set_xlabel("time (s)")
  for ax in axes[:2]:
    ax.legend(loc="upper right", fontsize=8)
  return save_figure(fig, path, title, dpi=70)


def plot_spectrograms(audio_in: np.ndarray, audio_out: np.ndarray, path: str,
                      sample_rate: int = 16000, labels=("input", "output")) -> str:
  """PNG of two spectrograms one above the other (the Colab's comparison), on one time axis.

  Args:
    audio_in: Input audio [n_samples] at `sample_rate`.
    audio_out: Output audio [n_samples] at `sample_rate`.
    path: PNG path.
    sample_rate: Hz.
    labels: Titles of the two panels.

  Returns:
    `path`.
  """
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, axes = plt.subplots(2, 1, figsize=(10, 5), sharex=True)
  for ax, audio, label in zip(axes, (audio_in, audio_out), labels, strict=True):
    ax.specgram(np.asarray(audio, np.float32), NFFT=512, Fs=sample_rate, noverlap=384,
                cmap="magma")
    ax.set_ylabel("Hz")
    ax.set_title(label, fontsize=10)
  axes[1].set_xlabel("time (s)")
  return save_figure(fig, path, None, dpi=80)
