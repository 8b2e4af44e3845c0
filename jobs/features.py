"""`ddsp-beam features`: per-frame f0, confidence and loudness of files into Parquet."""

import dataclasses
import os
import time
from typing import List, Optional, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ddsp_core import audio as audio_lib
from ddsp_core import crepe as crepe_lib
from ddsp_core import features as features_lib
from ddsp_core import framing
from pipelines import inputs
from pipelines import publish
from pipelines import reports

FEATURES_SCHEMA = pa.schema([
    pa.field("path", pa.string(), nullable=False),
    pa.field("frame", pa.int32(), nullable=False),
    pa.field("time_s", pa.float64(), nullable=False),
    pa.field("f0_hz", pa.float32(), nullable=False),
    pa.field("f0_confidence", pa.float32(), nullable=False),
    pa.field("loudness_db", pa.float32(), nullable=False),
])

# The same errors table as the pipelines write.
ERRORS_SCHEMA = reports.ERRORS_SCHEMA


@dataclasses.dataclass
class FeaturesResult:
  output: str
  errors_output: str
  files_ok: List[str]
  errors: List[dict]
  frames: int
  audio_seconds: float
  wall_seconds: float

  @property
  def exit_code(self) -> int:
    return 1 if self.errors else 0


def errors_path_for(output: str) -> str:
  root, _ = os.path.splitext(output)
  return root + ".errors.parquet"


def _plot_name(path: str) -> str:
  safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in os.path.basename(path))
  return safe + ".png"


def run_features(patterns: Sequence[str], output: str, crepe_model: str = crepe_lib.DEFAULT_MODEL,
                 frame_rate: int = 250, viterbi: bool = True, padding: str = "center",
                 precision: str = crepe_lib.DEFAULT_PRECISION, plots_dir: Optional[str] = None,
                 progress: bool = True,
                 f0_rate: Optional[int] = features_lib.DEFAULT_F0_RATE,
                 skip_silent_db: Optional[float] = None) -> FeaturesResult:
  """Computes features of every matched file; bad files are listed, not fatal.

  Args:
    patterns: Glob patterns, paths or directories.
    output: Parquet path for per-frame features (schema `FEATURES_SCHEMA`);
      failures go to `<output stem>.errors.parquet` (`ERRORS_SCHEMA`).
    crepe_model: CREPE model, a capacity, 'cascade' or 'cascade-octave'.
    frame_rate: Frames per second.
    viterbi: Viterbi-smooth f0.
    padding: 'center' (frame i centred at i / frame_rate s) or 'same'.
    precision: CREPE precision, 'float32' or 'bfloat16'.
    plots_dir: If set, one PNG per file is written there.
    f0_rate: Run CREPE at this rate and interpolate (None: at frame_rate; the
      default, 100, with the octave-guided cascade in bfloat16, is the measured default path).
    progress: Show a progress bar on stderr.
    skip_silent_db: CREPE only on frames louder than this (A-weighted dB); the
      others get f0 0 and confidence 0 (None: every frame).

  Returns:
    A `FeaturesResult`.

  Raises:
    ValueError: no file matched, or bad settings.
  """
  framing.check_padding(padding)
  framing.hop_size(audio_lib.CREPE_SAMPLE_RATE, frame_rate)
  paths = inputs.expand_inputs(patterns)
  if not paths:
    raise ValueError(f"no input file matches {list(patterns)}")
  net = crepe_lib.get_model(crepe_model, precision)
  if plots_dir:
    os.makedirs(plots_dir, exist_ok=True)
  errors, ok = [], []
  frames_total, seconds_total = 0, 0.0
  start_time = time.time()
  bar = None
  if progress:
    from tqdm import tqdm  # pylint: disable=g-import-not-at-top
    bar = tqdm(total=len(paths), unit="file", desc="features", dynamic_ncols=True)
  errors_output = errors_path_for(output)
  with publish.atomic_file(output) as tmp_out:
    with pq.ParquetWriter(tmp_out, FEATURES_SCHEMA) as writer:
      for path in paths:
        stage = "decode"
        try:
          audio, _ = audio_lib.load_audio(path)
          stage = "features"
          feats = features_lib.compute_features(
              audio, frame_rate=frame_rate, viterbi=viterbi, padding=padding,
              crepe_model=net, f0_rate=f0_rate, skip_silent_db=skip_silent_db)
          n = len(feats["f0_hz"])
          writer.write_table(pa.table({
              "path": pa.array([path] * n, pa.string()),
              "frame": np.arange(n, dtype=np.int32),
              "time_s": framing.frame_times(n, frame_rate),
              "f0_hz": feats["f0_hz"],
              "f0_confidence": feats["f0_confidence"],
              "loudness_db": feats["loudness_db"],
          }, schema=FEATURES_SCHEMA))
          if plots_dir:
            stage = "plot"
            from ddsp_core import plotting  # pylint: disable=g-import-not-at-top
            plotting.plot_features(feats, os.path.join(plots_dir, _plot_name(path)),
                                   frame_rate, title=os.path.basename(path))
          ok.append(path)
          frames_total += n
          seconds_total += len(audio) / audio_lib.CREPE_SAMPLE_RATE
        except audio_lib.AudioDecodeError as e:
          errors.append({"path": path, "stage": stage, "error_type": e.kind,
                         "message": str(e)})
        except Exception as e:  # pylint: disable=broad-except
          errors.append({"path": path, "stage": stage, "error_type": type(e).__name__,
                         "message": f"{path}: {e}"})
        if bar is not None:
          elapsed = max(time.time() - start_time, 1e-9)
          bar.set_postfix(failed=len(errors), audio_s_per_s=f"{seconds_total / elapsed:.2f}")
          bar.update(1)
  if bar is not None:
    bar.close()
  with publish.atomic_file(errors_output) as tmp_err:
    pq.write_table(pa.Table.from_pylist(errors, schema=ERRORS_SCHEMA), tmp_err)
  return FeaturesResult(output, errors_output, ok, errors, frames_total,
                        seconds_total, time.time() - start_time)
