"""The corpus job (`ddsp-beam run`): incremental reruns, kill -9 at each stage, the lock, bad inputs.

A tiny corpus: 4-second clips of the demo violin recordings (the dataset) and
3-second clips of the demo voice and trumpet (transfer inputs); CREPE tiny,
1-second windows, a tiny model trained for a few steps.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pyarrow.parquet as pq
import pytest
import soundfile as sf

from jobs import cli
from jobs import corpus
from jobs import state as state_lib
from tests.conftest import DEMO_CORPUS, REPO
from tests.pipelines.test_prepare import read_records

CONFIG = """
output = {out}
[prepare]
crepe_model = "tiny"
example_secs = 1.0
[datasets.violin]
sources = [{violin}]
[models.violin]
dataset = "violin"
gin_files = ["tiny_instrument.gin"]
gin_params = ["train.batch_size = 4"]
steps = 6
update_steps = 2
checkpoint_every = 2
log_every = 2
eval = false
[transfer]
sources = [{transfer}]
models = ["violin"]
crepe_model = "tiny"
plots = false
"""


def _clip(src, dest, start_s, seconds):
  audio, rate = sf.read(src, dtype="float32")
  os.makedirs(os.path.dirname(dest), exist_ok=True)
  sf.write(dest, audio[int(start_s * rate):int((start_s + seconds) * rate)], rate)


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
  """violin/{a,b,c}.wav, spare/d.wav (for adding later), transfer/{trumpet,voice}.wav."""
  root = tmp_path_factory.mktemp("clips")
  violins = sorted(os.listdir(os.path.join(DEMO_CORPUS, "violin")))
  for name, src in zip("abc", violins, strict=True):
    _clip(os.path.join(DEMO_CORPUS, "violin", src), str(root / "violin" / f"{name}.wav"), 2, 4)
  _clip(os.path.join(DEMO_CORPUS, "violin", violins[0]), str(root / "spare" / "d.wav"), 10, 4)
  for name in ("trumpet_bb_march", "voice_ohh_folk"):
    _clip(os.path.join(DEMO_CORPUS, "transfer", name + ".wav"),
          str(root / "transfer" / f"{name.split('_')[0]}.wav"), 1, 3)
  return root


@pytest.fixture(scope="module")
def reference(tmp_path_factory, clips):
  """The published outputs of one uninterrupted DirectRunner run of the corpus."""
  config, _, out = _config(tmp_path_factory.mktemp("reference"), clips)
  assert corpus.run_corpus(config).exit_code == 0
  return _published(out)


def _config(tmp_path, clips, name="corpus.toml", out="out"):
  corpus_dir = tmp_path / "corpus"
  if not corpus_dir.exists():
    shutil.copytree(clips / "violin", corpus_dir / "violin")
    shutil.copytree(clips / "transfer", corpus_dir / "transfer")
  path = tmp_path / name
  path.write_text(CONFIG.format(out=json.dumps(str(tmp_path / out)),
                                violin=json.dumps(str(corpus_dir / "violin" / "*.wav")),
                                transfer=json.dumps(str(corpus_dir / "transfer" / "*.wav"))),
                  encoding="utf-8")
  return str(path), corpus_dir, tmp_path / out


def _stages(result):
  return {s.name: s for s in result.stages}


def _published(out):
  """What readers see: records, report rows (without timings) and transfer rows."""
  data = os.path.join(out, "datasets", "violin")
  records = read_records(data)
  files = pq.read_table(os.path.join(data, "reports", "files.parquet")).to_pylist()
  windows = pq.read_table(os.path.join(data, "reports", "windows.parquet")).to_pylist()
  rows = pq.read_table(os.path.join(out, "transfer", "reports", "transfer.parquet")).to_pylist()
  name = os.path.basename  # by file name: runs in other dirs are compared with one another
  return {
      "records": {k: np.concatenate([ex["audio"], ex["f0_hz"], ex["f0_confidence"],
                                     ex["loudness_db"]]) for k, ex in records.items()},
      "files": sorted((name(f["path"]), f["status"], f["sha256"], f["windows_train"])
                      for f in files),
      "windows": sorted((name(w["path"]), w["start_s"], w["split"]) for w in windows),
      "transfer": sorted((name(r["input_path"]), r["model"], r["status"], os.path.relpath(
          r["output_path"], out)) for r in rows),
  }


def _assert_same(a, b):
  """Published outputs equal (features to float tolerance)."""
  assert a["records"].keys() == b["records"].keys()
  for key, values in a["records"].items():
    np.testing.assert_allclose(values, b["records"][key], atol=1e-5, err_msg=str(key))
  for key in ("files", "windows", "transfer"):
    assert a[key] == b[key], key


def test_reruns_do_only_what_changed(tmp_path, clips):
  config, corpus_dir, out = _config(tmp_path, clips)
  first = corpus.run_corpus(config)
  assert first.exit_code == 0
  s = _stages(first)
  assert s["prepare:violin"].counters["files_computed"] == 3
  assert s["prepare:violin"].counters["chunks_computed"] == 3
  assert s["train:violin"].counters["steps_trained"] == 6
  assert s["transfer"].counters["rendered"] == 2
  before = _published(out)
  assert len(before["records"]) == 3 * 4  # 4-second clips, 1-second windows, 1-second hop

  # The same corpus again: no feature extraction, no training, no rendering; same outputs.
  second = corpus.run_corpus(config)
  assert second.exit_code == 0
  s = _stages(second)
  assert s["prepare:violin"].status == "unchanged"
  assert s["prepare:violin"].counters["files_computed"] == 0
  assert s["prepare:violin"].counters["chunks_computed"] == 0
  assert s["train:violin"].counters["steps_trained"] == 0
  assert s["transfer"].counters == dict(s["transfer"].counters, rendered=0, reused=2)
  _assert_same(_published(out), before)
  report = open(second.report, encoding="utf-8").read()
  assert "files_computed=0" in report and "steps_trained=0" in report and "rendered=0" in report

  # One new recording: only it is analysed, the dataset is rebuilt, the model fine-tunes
  # (update_steps), so transfer renders again with the new weights.
  shutil.copy(clips / "spare" / "d.wav", corpus_dir / "violin" / "d.wav")
  third = corpus.run_corpus(config)
  assert third.exit_code == 0
  s = _stages(third)
  prep = s["prepare:violin"].counters
  assert (prep["new"], prep["files_computed"], prep["files_cached"]) == (1, 1, 3)
  assert prep["chunks_computed"] == 1
  assert s["train:violin"].counters["steps_trained"] == 2
  assert s["transfer"].counters["rendered"] == 2
  after = _published(out)
  assert len(after["records"]) == 4 * 4
  assert set(before["windows"]) < set(after["windows"])

  # A removed and a renamed recording: noted, nothing analysed (the renamed one is replayed
  # from the cache under its new name).
  os.remove(corpus_dir / "violin" / "b.wav")
  os.rename(corpus_dir / "violin" / "c.wav", corpus_dir / "violin" / "e.wav")
  fourth = corpus.run_corpus(config)
  assert fourth.exit_code == 0
  prep = _stages(fourth)["prepare:violin"].counters
  assert (prep["removed"], prep["new"], prep["files_computed"], prep["files_cached"]) == (2, 1, 0, 3)
  records = read_records(str(out / "datasets" / "violin"))
  assert len(records) == 3 * 4
  sources = {os.path.basename(ex["source_path"]) for ex in records.values()}
  assert sources == {"a.wav", "d.wav", "e.wav"}

  status = corpus.corpus_status(config)
  assert status["datasets"]["violin"] | {"inputs": 3, "processed": 3, "pending": 0,
                                          "failed": 0, "removed": 2} == status["datasets"]["violin"]
  assert status["models"]["violin"]["step"] == 10  # 6 + 2 updates of 2 steps
  assert [r["status"] for r in status["runs"]] == ["ok"] * 4
  assert "dataset violin: 3 inputs: 3 processed, 0 pending" in corpus.format_status(status)


def _run_until(config, marker, timeout=600):
  """Starts `ddsp-beam run` and kill -9s it (and its group) when stderr shows `marker`."""
  proc = subprocess.Popen([sys.executable, "-m", "jobs.cli", "run", config], cwd=REPO,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                          start_new_session=True)
  deadline = time.time() + timeout
  seen = []
  for line in proc.stderr:
    seen.append(line)
    if marker(line):
      os.killpg(proc.pid, signal.SIGKILL)
      proc.wait()
      return proc.returncode, seen
    assert time.time() < deadline, "".join(seen[-20:])
  proc.wait()
  pytest.fail(f"the run ended (exit {proc.returncode}) before the kill point:\n"
              + "".join(seen[-30:]))


def test_kill_9_during_each_stage_then_rerun(tmp_path, clips, reference):
  config, _, out = _config(tmp_path, clips)

  # Killed while analysing recordings: nothing is published.
  rc, _ = _run_until(config, lambda line: line.startswith("[prepare]") and " chunk " in line)
  assert rc == -signal.SIGKILL
  assert not os.path.exists(out / "datasets" / "violin")
  # Killed while training: the dataset is published, transfer not yet.
  rc, seen = _run_until(config, lambda line: line.startswith("[train] step 4/"))  # ckpt-2 saved
  assert any("did not finish" in line for line in seen), "".join(seen)  # the dead run noticed
  assert os.path.exists(out / "datasets" / "violin" / "_SUCCESS")
  assert not os.path.exists(out / "transfer")
  # Killed while transferring (after the first row): the training resumed and finished.
  rc, seen = _run_until(config, lambda line: line.startswith("[transfer]") and ": ok" in line)
  assert any("resuming from ckpt-" in line for line in seen), "".join(seen)
  assert not os.path.exists(out / "transfer" / "_SUCCESS")
  # The next run completes: the same published outputs as the uninterrupted run.
  assert cli.main(["run", config]) == 0
  finished = _published(out)
  assert len(finished["records"]) == len(reference["records"]) == 3 * 4
  _assert_same(finished, reference)
  assert corpus.checkpoint_step(str(out / "models" / "violin")) == 6
  with state_lib.StateStore(str(out / "state.sqlite")) as store:
    assert [r["status"] for r in store.last_runs()] == ["ok", "died", "died", "died"]
  assert not [p for p in os.listdir(out / "datasets") if p.startswith(".")]  # leftovers cleaned


def test_one_run_per_output_root(tmp_path, clips):
  config, _, out = _config(tmp_path, clips)
  os.makedirs(out)
  holder = subprocess.Popen(
      [sys.executable, "-c", "import fasteners, sys, time; "
       f"lock = fasteners.InterProcessLock({str(out / 'run.lock')!r}); lock.acquire(); "
       "print('locked', flush=True); time.sleep(120)"], stdout=subprocess.PIPE, text=True)
  try:
    assert holder.stdout.readline().strip() == "locked"
    with pytest.raises(state_lib.LockedError, match="another run is in progress"):
      corpus.run_corpus(config)
    assert cli.main(["run", config]) == 2
  finally:
    holder.kill()
    holder.wait()
  with state_lib.RunLock(str(out)):  # a dead holder's lock is free again
    pass


def test_broken_inputs_are_listed_every_run(tmp_path, clips, capsys):
  config, corpus_dir, out = _config(tmp_path, clips)
  (corpus_dir / "violin" / "empty.wav").write_bytes(b"")
  (corpus_dir / "transfer" / "notes.wav").write_text("not audio", encoding="utf-8")
  for _ in range(2):  # the second run does no work but reports them again
    assert cli.main(["run", config]) == 1
    err = capsys.readouterr().err
    assert "FAILED [empty]" in err and "empty.wav" in err
    assert "FAILED [not_audio]" in err and "notes.wav" in err
  summary_dir = sorted(os.listdir(out / "runs"))[-1]
  with open(out / "runs" / summary_dir / "summary.json", encoding="utf-8") as f:
    stages = {s["name"]: s for s in json.load(f)["stages"]}
  assert stages["prepare:violin"]["counters"]["files_computed"] == 0  # kept, not retried
  assert stages["transfer"]["counters"]["rendered"] == 0
  errors = pq.read_table(out / "datasets" / "violin" / "reports" / "errors.parquet").to_pylist()
  assert [os.path.basename(e["path"]) for e in errors] == ["empty.wav"]
  rows = pq.read_table(out / "transfer" / "reports" / "transfer.parquet").to_pylist()
  assert sorted((os.path.basename(r["input_path"]), r["status"]) for r in rows) == [
      ("notes.wav", "failed"), ("trumpet.wav", "ok"), ("voice.wav", "ok")]
  report = open(out / "report" / "index.html", encoding="utf-8").read()
  assert "empty.wav" in report and "notes.wav" in report
  np.testing.assert_equal(corpus.corpus_status(config)["datasets"]["violin"]["failed"], 1)


def test_the_corpus_job_on_dask(tmp_path, clips, dask_cluster, reference):
  """Prepare and transfer on a Dask cluster (training stays here): the DirectRunner's outputs."""
  config, _, out = _config(tmp_path, clips)
  result = corpus.run_corpus(config, ["--runner=dask",
                                      f"--dask_address={dask_cluster.scheduler_address}"])
  assert result.exit_code == 0
  s = _stages(result)
  assert s["prepare:violin"].counters["files_computed"] == 3
  assert s["prepare:violin"].counters["chunks_computed"] == 3
  assert s["transfer"].counters["rendered"] == 2
  # Transfer rows as (input, model, status): the trained weights may differ in the last bits.
  published, expected = ({**p, "transfer": [r[:3] for r in p["transfer"]]}
                         for p in (_published(out), reference))
  _assert_same(published, expected)
