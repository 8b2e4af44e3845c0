"""`ddsp-beam features` end to end: Parquet rows, errors table, plots, exit codes."""

import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pyarrow.parquet as pq
import pytest

from jobs import cli
from jobs import features as features_job
from tests.conftest import REPO, tone


def test_good_and_bad_files(corpus, tmp_path, write_wav):
  src = tmp_path / "in"
  src.mkdir()
  for name in ("clip_30ms.wav", "zero_bytes.wav", "f0_table_saved_as.wav", "silence_3s.wav"):
    shutil.copy(os.path.join(corpus, "bad", name), src / name)
  good = write_wav("in/sub dir/it's a tone.wav", tone(440, 1.0, harmonics=3))
  out = tmp_path / "out" / "features.parquet"
  rc = cli.main(["features", str(src / "**"), "-o", str(out), "--crepe_model", "tiny",
                 "--plots", str(tmp_path / "plots"), "--no_progress"])
  assert rc == 1  # some inputs failed
  table = pq.read_table(out)
  assert table.schema.equals(features_job.FEATURES_SCHEMA)
  assert set(table.column("path").to_pylist()) == {good}
  assert table.num_rows == 251
  errors = pq.read_table(str(out).replace(".parquet", ".errors.parquet")).to_pylist()
  failed = {os.path.basename(e["path"]): e["error_type"] for e in errors}
  assert failed == {"clip_30ms.wav": "too_short", "zero_bytes.wav": "empty",
                    "f0_table_saved_as.wav": "not_audio", "silence_3s.wav": "silent"}
  assert all(e["path"] in e["message"] for e in errors)
  pngs = os.listdir(tmp_path / "plots")
  assert len(pngs) == 1 and os.path.getsize(tmp_path / "plots" / pngs[0]) > 10000


def test_all_good_is_exit_0(tmp_path, write_wav):
  write_wav("a.wav", tone(300, 0.5))
  write_wav("b.flac", tone(600, 0.5), fmt="FLAC")
  out = tmp_path / "f.parquet"
  assert cli.main(["features", str(tmp_path), "-o", str(out), "--crepe_model", "tiny",
                   "--no-viterbi", "--frame_rate", "100", "--no_progress"]) == 0
  table = pq.read_table(out)
  assert table.num_rows == 2 * 51
  assert pq.read_table(str(out).replace(".parquet", ".errors.parquet")).num_rows == 0


def test_nothing_matched_is_exit_2(tmp_path, capsys):
  assert cli.main(["features", str(tmp_path / "*.wav"), "-o", str(tmp_path / "x.parquet"),
                   "--no_progress"]) == 2
  assert "no input file matches" in capsys.readouterr().err
  assert not (tmp_path / "x.parquet").exists()


def test_bad_settings_are_exit_2(tmp_path, write_wav):
  write_wav("a.wav", tone(300, 0.5))
  assert cli.main(["features", str(tmp_path), "-o", str(tmp_path / "x.parquet"),
                   "--frame_rate", "300", "--no_progress"]) == 2


def test_a_crash_leaves_the_previous_output(tmp_path, write_wav, monkeypatch):
  write_wav("a.wav", tone(300, 0.5))
  out = tmp_path / "f.parquet"
  assert cli.main(["features", str(tmp_path / "a.wav"), "-o", str(out), "--crepe_model",
                   "tiny", "--no_progress"]) == 0
  before = pq.read_table(out)

  def boom(*args, **kwargs):
    raise KeyboardInterrupt("simulated interruption mid-run")
  monkeypatch.setattr(features_job.features_lib, "compute_features", boom)
  with pytest.raises(KeyboardInterrupt):
    features_job.run_features([str(tmp_path / "a.wav")], str(out), crepe_model="tiny",
                              progress=False)
  assert pq.read_table(out).equals(before)
  assert [p for p in os.listdir(tmp_path) if p.endswith(".tmp")] == []


def test_the_command_lines_crepe_default_is_the_librarys():
  from ddsp_core import crepe  # pylint: disable=g-import-not-at-top
  from ddsp_core import features  # pylint: disable=g-import-not-at-top
  from pipelines import prepare, transfer  # pylint: disable=g-import-not-at-top
  assert cli.CREPE_DEFAULT == crepe.DEFAULT_MODEL and cli.CREPE_CHOICES == list(crepe.MODELS)
  assert (cli.PRECISION_DEFAULT, cli.F0_RATE_DEFAULT) == (crepe.DEFAULT_PRECISION,
                                                          features.DEFAULT_F0_RATE)
  for config in (prepare.PrepareConfig(), transfer.TransferConfig()):
    assert (config.crepe_model, config.precision, config.f0_rate) == ("cascade-octave", "bfloat16", 100)
  crepe.check_installed(crepe.DEFAULT_MODEL)  # installed with ddsp-beam itself


def _features_in_a_subprocess(tmp_path, wav, *flags):
  """stderr of `python -m jobs.cli [flags] features WAV` as a user runs it (exit 0 asserted)."""
  env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}  # a user's default
  env["TF_ENABLE_ONEDNN_OPTS"] = "1"  # where oneDNN is off by default, its start-up lines need it
  done = subprocess.run([sys.executable, "-m", "jobs.cli", *flags, "features", wav,
                         "-o", str(tmp_path / "f.parquet"), "--crepe_model", "tiny", "--no_progress"],
                        cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
  assert done.returncode == 0, done.stderr
  return done.stderr


def test_tensorflows_start_up_lines_only_with_verbose(tmp_path, write_wav):
  """TF's C++ lines (`I0000 ... oneDNN custom operations are on`, `E0000 ...`) read as errors."""
  wav = write_wav("a.wav", tone(300, 0.5))
  quiet = _features_in_a_subprocess(tmp_path, wav)
  assert not re.search(r"^[IWEF]\d{4} |oneDNN|absl::InitializeLog", quiet, re.M), quiet
  verbose = _features_in_a_subprocess(tmp_path, wav, "--verbose")
  assert re.search(r"^I\d{4} .*oneDNN custom operations are on", verbose, re.M), verbose


def test_skip_silent_db_gives_silent_frames_no_pitch(tmp_path, write_wav):
  # 0.5 s of digital silence, then a tone. Without the lever CREPE reads the silence (a sigmoid
  # of its biases: confidence above 0); with it, frames well inside the silence hold f0 0 and
  # confidence 0 (the mask is loudness over CREPE's window at the f0 rate, so frames near the
  # onset are interpolated), and frames well inside the tone what the run without it reads.
  write_wav("a.wav", np.concatenate([np.zeros(8000, np.float32), tone(300, 1.0)]))
  tables = {}
  for name, extra in (("every", []), ("skip", ["--skip_silent_db", "-70"])):
    out = tmp_path / f"{name}.parquet"
    assert cli.main(["features", str(tmp_path / "a.wav"), "-o", str(out), "--crepe_model", "tiny",
                     "--no_progress"] + extra) == 0
    tables[name] = {k: np.array(v) for k, v in pq.read_table(out).to_pydict().items()}
  t = tables["skip"]["time_s"]
  silence, sounding = t < 0.4, (t > 0.7) & (t < 1.4)
  assert silence.sum() == 100 and np.all(tables["every"]["f0_confidence"][silence] > 0)
  assert not np.any(tables["skip"]["f0_hz"][silence])
  assert not np.any(tables["skip"]["f0_confidence"][silence])
  np.testing.assert_allclose(tables["skip"]["f0_hz"][sounding],
                             tables["every"]["f0_hz"][sounding], rtol=1e-3)


def test_prepare_passes_skip_silent_db_to_its_config(tmp_path, monkeypatch):
  from pipelines import prepare  # pylint: disable=g-import-not-at-top
  seen = []

  def fake_run(inputs, output, config, *args, **kwargs):
    seen.append(config)
    raise prepare.PipelineFailed("stop here")
  monkeypatch.setattr(prepare, "run_prepare", fake_run)
  for extra, expected in (([], None), (["--skip_silent_db", "-70"], -70.0)):
    cli.main(["prepare", "--input", str(tmp_path), "--output", str(tmp_path / "out")] + extra)
    assert seen[-1].skip_silent_db == expected
