"""The prepare pipeline end to end on the DirectRunner (CREPE tiny)."""

import glob
import json
import os
import pickle
import subprocess
import sys
import types

import numpy as np
import pyarrow.parquet as pq
import pytest
import soundfile as sf
import tensorflow as tf

from ddsp_core import audio as audio_lib
from ddsp_core import features as features_lib
from jobs import cli
from pipelines import examples
from pipelines import prepare
from pipelines import reports
from tests.conftest import tone

# CREPE tiny on every frame in float32: the path ddsp_core's functions compute by default.
CREPE_TINY = ["--crepe_model", "tiny", "--precision", "float32", "--f0_rate", "0"]
TINY = CREPE_TINY + ["--no_progress"]


def read_records(data_dir, split="train"):
  """{(basename, start_s): parsed example} of one split."""
  info = examples.read_dataset_info(data_dir)
  spec = examples.spec_from_info(info)
  out = {}
  for path in sorted(glob.glob(os.path.join(data_dir, f"{split}.tfrecord-*"))):
    for record in tf.data.TFRecordDataset(path):
      ex = examples.parse_example(record.numpy(), spec)
      out[(os.path.basename(ex["source_path"]), round(float(ex["start_s"]), 3))] = ex
  return out


def read_reports(data_dir):
  """The dataset's report tables, rows sorted, without the timing column (which varies)."""
  tables = {}
  for name in ("files", "windows", "errors"):
    rows = pq.read_table(os.path.join(data_dir, "reports", f"{name}.parquet")).to_pylist()
    for r in rows:
      r.pop("processing_s", None)
    tables[name] = sorted(rows, key=lambda r: (r["path"], r.get("start_s", 0)))
  return tables


def run_cli(args):
  return cli.main(["prepare"] + TINY + args)


@pytest.fixture(scope="module")
def corpus_run(tmp_path_factory, corpus):
  """Clean files and every broken file of the shared corpus, in one run."""
  out = tmp_path_factory.mktemp("prep") / "ds"
  rc = run_cli(["--input", os.path.join(corpus, "bad", "*"),
                "--input", os.path.join(corpus, "transfer", "trumpet_bb_march.wav"),
                "--input", os.path.join(corpus, "transfer", "voice_ohh_folk_44k_mp3.mp3"),
                "--output", str(out), "--eval_fraction", "0.5", "--split_by", "window",
                "--write_magenta_pickle"])
  return rc, str(out)


def test_every_input_is_accounted_for_once(corpus_run, corpus):
  rc, out = corpus_run
  assert rc == 1  # some inputs failed, the run completed
  files = pq.read_table(os.path.join(out, "reports", "files.parquet"))
  errors = pq.read_table(os.path.join(out, "reports", "errors.parquet"))
  assert files.schema.equals(reports.FILES_SCHEMA) and errors.schema.equals(reports.ERRORS_SCHEMA)
  listed = files.column("path").to_pylist() + errors.column("path").to_pylist()
  expected = glob.glob(os.path.join(corpus, "bad", "*")) + [
      os.path.join(corpus, "transfer", "trumpet_bb_march.wav"),
      os.path.join(corpus, "transfer", "voice_ohh_folk_44k_mp3.mp3")]
  assert sorted(listed) == sorted(expected)
  failed = {os.path.basename(r["path"]): r["error_type"] for r in errors.to_pylist()}
  assert failed == {"zero_bytes.wav": "empty", "f0_table_saved_as.wav": "not_audio",
                    "header_says_8s_holds_1.5s.wav": "truncated",
                    "float32_nan_block_1.5s.wav": "non_finite", "silence_3s.wav": "silent"}
  rows = {os.path.basename(r["path"]): r for r in files.to_pylist()}
  assert rows["clip_30ms.wav"]["status"] == "skipped"  # shorter than --min_secs
  assert rows["tiny_8k_8bit.wav"]["status"] == "skipped"
  trumpet = rows["trumpet_bb_march.wav"]
  assert trumpet["status"] == "ok" and trumpet["windows_train"] + trumpet["windows_eval"] == 8
  assert 0.6 < trumpet["voiced_fraction"] < 0.95
  assert 340 < trumpet["f0_min_hz"] and trumpet["f0_max_hz"] < 820  # 349-793 Hz written
  # The 2 s flute with the odd name: one window, padded at the end.
  windows = pq.read_table(os.path.join(out, "reports", "windows.parquet")).to_pylist()
  flute = [w for w in windows if "♫" in w["path"]]
  assert len(flute) == 1 and flute[0]["padded"]
  assert not any(w["padded"] for w in windows if "trumpet" in w["path"])


def test_records_parse_with_magentas_spec(corpus_run):
  _, out = corpus_run
  info = json.load(open(os.path.join(out, "dataset.json")))
  assert info["n_frames"] == 1000 and info["n_samples"] == 64000 and not info["centered"]
  magenta_spec = {
      "audio": tf.io.FixedLenFeature([64000], tf.float32),
      "f0_hz": tf.io.FixedLenFeature([1000], tf.float32),
      "f0_confidence": tf.io.FixedLenFeature([1000], tf.float32),
      "loudness_db": tf.io.FixedLenFeature([1000], tf.float32),
  }
  total = 0
  for split in ("train", "eval"):
    files = glob.glob(os.path.join(out, f"{split}.tfrecord-*-of-*"))
    assert files, split
    ds = tf.data.TFRecordDataset(files).map(lambda r: tf.io.parse_single_example(r, magenta_spec))
    n = sum(1 for _ in ds)
    assert n == info["counts"][f"windows_{split}"]
    total += n
  assert total == 8 + 10 + 1  # trumpet 11.9 s, voice 13.1 s, flute 2 s (padded)
  assert os.path.exists(os.path.join(out, "_SUCCESS"))


def test_statistics_keys(corpus_run):
  _, out = corpus_run
  stats = json.load(open(os.path.join(out, "dataset_statistics.json")))
  for name in ("pitch", "loudness", "power", "pitch_note", "loudness_note", "power_note"):
    for stat in ("mean", "std", "min", "max", "mean_max", "mean_min"):
      assert np.isfinite(stats[f"{stat}_{name}"]), f"{stat}_{name}"
  # Padding frames (f0 = 0, MIDI 0) are not counted; CREPE's lowest bin is MIDI 24.
  assert stats["min_pitch"] > 20
  assert stats["min_loudness_note"] >= stats["min_loudness"]
  q = stats["loudness_quantiles"]["quantiles"]
  assert len(q) >= 1000 and np.all(np.diff(q) >= 0)
  assert q[0] == pytest.approx(stats["min_loudness_note"])
  assert q[-1] == pytest.approx(stats["max_loudness_note"])


def test_records_equal_direct_features(tmp_path, corpus):
  """What the pipeline writes is what ddsp_core computes for the same audio,
  here with 5 s chunks, so windows cross chunk borders."""
  src = os.path.join(corpus, "transfer", "trumpet_bb_march.wav")
  out = tmp_path / "ds"
  assert run_cli(["--input", src, "--output", str(out), "--chunk_secs", "5"]) == 0
  records = read_records(str(out))
  audio, _ = audio_lib.load_audio(src)
  whole = features_lib.compute_features(audio, model="tiny", padding="same")
  assert len(records) == 8
  for (_, start_s), ex in records.items():
    s, f = int(start_s * 16000), int(start_s * 250)
    np.testing.assert_array_equal(ex["audio"], audio[s:s + 64000])
    np.testing.assert_allclose(ex["loudness_db"], whole["loudness_db"][f:f + 1000], atol=1e-4)
    np.testing.assert_allclose(ex["f0_confidence"], whole["f0_confidence"][f:f + 1000], atol=1e-4)
    voiced = whole["f0_confidence"][f:f + 1000] > 0.3
    np.testing.assert_allclose(ex["f0_hz"][voiced], whole["f0_hz"][f:f + 1000][voiced], rtol=1e-4)


def test_chunked_equals_unchunked_at_another_rate(tmp_path, corpus):
  """A 44.1 kHz file (resampled in every chunk) with 48 kHz `audio`."""
  src = os.path.join(corpus, "transfer", "voice_ohh_folk_44k_flac.flac")
  runs = {}
  for chunk in (4, 60):
    out = tmp_path / f"c{chunk}"
    assert run_cli(["--input", src, "--output", str(out), "--chunk_secs", str(chunk),
                    "--sample_rate", "48000"]) == 0
    runs[chunk] = read_records(str(out))
  assert runs[4].keys() == runs[60].keys() and len(runs[4]) == 10
  for key, ex in runs[4].items():
    ref = runs[60][key]
    assert ex["audio"].shape == (192000,) and ex["audio_16k"].shape == (64000,)
    for name in ("audio", "audio_16k", "loudness_db", "f0_confidence"):
      np.testing.assert_allclose(ex[name], ref[name], atol=2e-3, err_msg=f"{key} {name}")
    voiced = ref["f0_confidence"] > 0.3
    np.testing.assert_allclose(ex["f0_hz"][voiced], ref["f0_hz"][voiced], rtol=1e-3)


def test_silent_windows_are_dropped_and_short_files_padded(tmp_path, write_wav):
  x = np.zeros(16000 * 12, np.float32)
  x[:16000 * 2] = tone(440, 2.0, harmonics=3)  # 2 s of tone, then 10 s of digital silence
  write_wav("in/tone_then_silence.wav", x)
  write_wav("in/short.wav", tone(300, 1.5, harmonics=2))
  write_wav("in/too_short.wav", tone(300, 0.5))
  out = tmp_path / "ds"
  assert run_cli(["--input", str(tmp_path / "in"), "--output", str(out)]) == 0
  rows = {os.path.basename(r["path"]): r for r in
          pq.read_table(out / "reports" / "files.parquet").to_pylist()}
  # Windows start at 0..8 s; only those at 0 and 1 s reach into the tone.
  assert rows["tone_then_silence.wav"]["windows_train"] == 2
  assert rows["tone_then_silence.wav"]["windows_dropped_silent"] == 7
  assert rows["short.wav"]["windows_train"] == 1
  assert rows["too_short.wav"]["status"] == "skipped"
  info = json.load(open(out / "dataset.json"))
  assert info["counts"]["windows_dropped_silent"] == 7
  records = read_records(str(out))
  short = records[("short.wav", 0.0)]
  assert np.all(short["audio"][24000:] == 0) and np.any(short["audio"][:24000])
  assert np.all(short["loudness_db"][380:] == -80.0)


def test_split_by_file_keeps_recordings_together(tmp_path, write_wav):
  for i in range(6):
    write_wav(f"in/take{i}.wav", tone(200 + 50 * i, 5.0, harmonics=3))
  out = tmp_path / "ds"
  assert run_cli(["--input", str(tmp_path / "in"), "--output", str(out),
                  "--eval_fraction", "0.5", "--no-viterbi"]) == 0
  windows = pq.read_table(out / "reports" / "windows.parquet").to_pylist()
  by_file = {}
  for w in windows:
    by_file.setdefault(w["path"], set()).add(w["split"])
  assert all(len(s) == 1 for s in by_file.values())
  assert {"train", "eval"} == set().union(*by_file.values())


def test_rerun_replaces_output_and_failure_keeps_it(tmp_path, write_wav):
  write_wav("in/a.wav", tone(300, 5.0, harmonics=2))
  out = tmp_path / "ds"
  assert run_cli(["--input", str(tmp_path / "in"), "--output", str(out)]) == 0
  (out / "stale.tfrecord-00000-of-00001").write_bytes(b"from an older run")
  write_wav("in/b.wav", tone(400, 5.0, harmonics=2))
  assert run_cli(["--input", str(tmp_path / "in"), "--output", str(out)]) == 0
  assert not (out / "stale.tfrecord-00000-of-00001").exists()
  assert len(read_records(str(out))) == 4
  before = sorted(os.listdir(out))
  # A run that fails (an unknown runner) publishes nothing and keeps the last output.
  assert run_cli(["--input", str(tmp_path / "in"), "--output", str(out),
                  "--runner", "NoSuchRunner"]) == 2
  assert sorted(os.listdir(out)) == before
  assert [p for p in os.listdir(tmp_path) if "staging" in p] == []


def test_config_validation():
  with pytest.raises(ValueError, match="multiple of hop_secs"):
    prepare.PrepareConfig(window=examples.WindowSpec(hop_secs=3.0), chunk_secs=20)
  with pytest.raises(ValueError, match="frame_rate"):
    examples.WindowSpec(example_secs=4.001)


def test_window_starts():
  spec = examples.WindowSpec()
  assert examples.window_starts(6.5, spec, 1.0) == ([0.0, 1.0, 2.0], False)
  assert examples.window_starts(4.0, spec, 1.0) == ([0.0], False)
  assert examples.window_starts(2.0, spec, 1.0) == ([0.0], True)
  assert examples.window_starts(0.5, spec, 1.0) == ([], False)


def test_split_is_deterministic():
  assert prepare.split_of("abc", 0.5) == prepare.split_of("abc", 0.5)
  fractions = [prepare.split_of(str(i), 0.2) for i in range(2000)]
  assert 0.15 < fractions.count("eval") / 2000 < 0.25


class _FakeQuantileTransformer:
  """Stands in for magenta's class when the test unpickles our own output."""


def test_magenta_pickle_layout(corpus_run, monkeypatch):
  _, out = corpus_run
  module = types.ModuleType("ddsp.training.postprocessing")
  module.QuantileTransformer = _FakeQuantileTransformer
  for name in ("ddsp", "ddsp.training"):
    monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
  monkeypatch.setitem(sys.modules, "ddsp.training.postprocessing", module)
  with open(os.path.join(out, "dataset_statistics.pkl"), "rb") as f:
    stats = pickle.load(f)  # our own output, in a test
  ours = json.load(open(os.path.join(out, "dataset_statistics.json")))
  for key in ("mean_pitch", "std_pitch", "mean_loudness_note", "mean_max_power", "min_pitch_note"):
    assert stats[key] == pytest.approx(ours[key], rel=1e-5)
  qt = stats["quantile_transform"]
  assert isinstance(qt, _FakeQuantileTransformer)
  assert qt.quantiles_.shape == (1001, 1) and qt.references_.shape == (1001,)


MAGENTA_PY = os.path.expanduser("~/.magenta-ddsp-venv/bin/python")


@pytest.mark.skipif(not os.path.exists(MAGENTA_PY), reason="magenta side venv not built")
def test_magenta_can_load_and_use_the_pickle(corpus_run):
  _, out = corpus_run
  code = ("import pickle, numpy as np, sys; s = pickle.load(open(sys.argv[1], 'rb')); "
          "qt = s['quantile_transform']; print(qt.transform(np.array([[-200.0], [0.0], [200.0]])).ravel())")
  proc = subprocess.run([MAGENTA_PY, "-c", code, os.path.join(out, "dataset_statistics.pkl")],
                        capture_output=True, text=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
  assert proc.returncode == 0, proc.stderr[-2000:]
  values = [float(v) for v in proc.stdout.strip().strip("[]").split()]
  assert values[0] == 0.0 and values[2] == 1.0 and 0.0 < values[1] < 1.0


@pytest.mark.parametrize("f0_rate,relpath,crepe_model,seconds", [
    (100, "range/barisax_c_minor_blues.wav", "tiny", None),
    (100, "range/barisax_c_minor_blues.wav", "cascade-octave", 9),
    (50, "train/flute/flute_bb_thirds.wav", "tiny", None)])
def test_chunked_equals_unchunked_with_crepe_at_a_lower_rate(tmp_path, corpus, f0_rate, relpath,
                                                            crepe_model, seconds):
  """The Viterbi context is 500 CREPE frames: 5 s at 100 frames/s, 10 s at 50, more than the
  3 s a chunk decoded on each side, so the path, and f0, differed near chunk edges (measured:
  2 voiced frames of this saxophone at 100, 4 of this flute at 50). Each chunk now decodes
  the context that the rate needs. The octave-guided cascade's routing (a 40 ms grid on
  absolute time, the 40 ms around each call) holds too (on the take's first 9 s, to keep the
  test short)."""
  src = os.path.join(corpus, relpath)
  if seconds:
    x, _ = audio_lib.load_audio(src)  # 16 kHz
    src = str(tmp_path / "excerpt.wav")
    sf.write(src, x[:seconds * 16000], 16000, subtype="FLOAT")
  runs = {}
  for chunk in (4, 60):
    out = tmp_path / f"c{chunk}"
    assert run_cli(["--input", src, "--output", str(out), "--chunk_secs", str(chunk),
                    "--f0_rate", str(f0_rate), "--crepe_model", crepe_model]) == 0
    runs[chunk] = read_records(str(out))
  assert runs[4].keys() == runs[60].keys() and len(runs[4]) >= (seconds - 3 if seconds else 10)
  for key, ex in runs[4].items():
    ref = runs[60][key]
    for name in ("audio", "loudness_db", "f0_confidence"):
      np.testing.assert_allclose(ex[name], ref[name], atol=2e-3, err_msg=f"{key} {name}")
    voiced = ref["f0_confidence"] > 0.3
    np.testing.assert_allclose(ex["f0_hz"][voiced], ref["f0_hz"][voiced], rtol=1e-3,
                               err_msg=f"{key} f0_hz")


def test_context_covers_the_viterbi_context_at_any_crepe_rate():
  assert prepare.context_secs(prepare.PrepareConfig(f0_rate=None)) == prepare.CONTEXT_SECS == 3
  assert prepare.context_secs(prepare.PrepareConfig(f0_rate=125)) == 5
  assert prepare.context_secs(prepare.PrepareConfig(f0_rate=100)) == 6
  assert prepare.context_secs(prepare.PrepareConfig(f0_rate=50)) == 11
  assert prepare.context_secs(prepare.PrepareConfig(f0_rate=50, viterbi=False)) == 3
