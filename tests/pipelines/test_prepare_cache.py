"""prepare --cache_dir: recordings are analysed once and replayed, under any name, bit for bit."""

import glob
import dataclasses
import json
import os
import shutil

import numpy as np
import pytest
import soundfile as sf

from ddsp_core import audio as audio_lib
from pipelines import examples
from pipelines import prepare
from pipelines import prepare_cache
from tests.conftest import tone
from tests.pipelines.test_prepare import read_records, read_reports

CONFIG = prepare.PrepareConfig(
    window=examples.WindowSpec(example_secs=1.0), crepe_model="tiny", progress=False)


def test_cache_replays_what_it_computed(tmp_path, write_wav):
  write_wav("in/a.wav", tone(220.0, 2.5))
  write_wav("in/b.wav", tone(330.0, 2.5, harmonics=3))
  (tmp_path / "in" / "empty.wav").write_bytes(b"")
  cache = str(tmp_path / "cache")
  pattern = [str(tmp_path / "in" / "*.wav")]

  first = prepare.run_prepare(pattern, str(tmp_path / "one"), CONFIG, cache_dir=cache)
  assert first.counters["chunks_computed"] == 2 and "files_cached" not in first.counters
  assert first.exit_code == 1  # the empty file
  second = prepare.run_prepare(pattern, str(tmp_path / "two"), CONFIG, cache_dir=cache)
  assert second.counters["files_cached"] == 3 and "chunks_computed" not in second.counters
  one, two = read_records(str(tmp_path / "one")), read_records(str(tmp_path / "two"))
  assert one.keys() == two.keys() and len(one) == 2 * 2
  for key, ex in one.items():
    for feature in ("audio", "f0_hz", "f0_confidence", "loudness_db"):
      assert (ex[feature] == two[key][feature]).all(), (key, feature)
  assert read_reports(str(tmp_path / "one")) == read_reports(str(tmp_path / "two"))
  stats = [open(os.path.join(tmp_path, d, "dataset_statistics.json"), encoding="utf-8").read()
           for d in ("one", "two")]
  assert stats[0] == stats[1]

  # Renamed: replayed under the new path; an entry missing a chunk is computed again.
  os.rename(tmp_path / "in" / "a.wav", tmp_path / "in" / "renamed.wav")
  b_sha = prepare_cache.sha256_file(str(tmp_path / "in" / "b.wav"))
  entry = prepare_cache.PrepareCache.for_config(cache, CONFIG).entry(b_sha)
  os.remove(glob.glob(os.path.join(entry, "chunk-*.npz"))[0])
  third = prepare.run_prepare(pattern, str(tmp_path / "three"), CONFIG, cache_dir=cache)
  assert third.counters["files_cached"] == 2 and third.counters["chunks_computed"] == 1
  records = read_records(str(tmp_path / "three"))
  assert sorted({k[0] for k in records}) == ["b.wav", "renamed.wav"]
  renamed = [ex for k, ex in records.items() if k[0] == "renamed.wav"]
  assert all(ex["source_path"].endswith("renamed.wav") for ex in renamed)
  assert (renamed[0]["audio"] == one[("a.wav", 0.0)]["audio"]).all()

  # Other settings: other entries.
  other = prepare.PrepareConfig(window=examples.WindowSpec(example_secs=2.0), crepe_model="tiny",
                                progress=False)
  assert prepare_cache.settings_key(other) != prepare_cache.settings_key(CONFIG)
  skipping = dataclasses.replace(CONFIG, skip_silent_db=-70.0)  # silent frames hold other f0
  assert prepare_cache.settings_key(skipping) != prepare_cache.settings_key(CONFIG)
  shutil.rmtree(cache)


def test_a_killed_run_resumes_from_the_chunks_it_finished(tmp_path, write_wav):
  """Chunks kept before their file was complete (a killed run) are reused, not computed again;
  a chunk that is missing, torn, of another plan or of other samples is computed again."""
  write_wav("in/a.wav", tone(220.0, 2.5))
  write_wav("in/b.wav", tone(330.0, 3.5, harmonics=3))
  cache_dir = str(tmp_path / "cache")
  config = dataclasses.replace(CONFIG, chunk_secs=1)
  cache = prepare_cache.PrepareCache.for_config(cache_dir, config)
  pattern = [str(tmp_path / "in" / "*.wav")]
  first = prepare.run_prepare(pattern, str(tmp_path / "one"), config, cache_dir=cache_dir)
  assert first.exit_code == 0 and first.counters["chunks_computed"] == 3 + 4
  # As a run killed after its chunks and before the files' rows: no entry is complete.
  a_sha, b_sha = (prepare_cache.sha256_file(str(tmp_path / "in" / n)) for n in ("a.wav", "b.wav"))
  for sha, chunks in ((a_sha, 3), (b_sha, 4)):
    os.remove(os.path.join(cache.entry(sha), "file.json"))
    assert not cache.complete(sha) and len(cache.read_chunks(sha)) == chunks
  b_chunk = os.path.join(cache.entry(b_sha), "chunk-{:05d}.npz").format
  os.remove(b_chunk(1))  # never written
  open(b_chunk(2), "wb").close()  # torn (a zero-length file after a crash)
  with np.load(b_chunk(3)) as arrays:  # computed from other samples
    kept = dict(arrays)
  meta = json.loads(str(kept["meta"]))
  kept["meta"] = np.array(json.dumps(dict(meta, audio_digest="0" * 64)))
  with open(b_chunk(3), "wb") as f:
    np.savez(f, **kept)
  os.rename(tmp_path / "in" / "a.wav", tmp_path / "in" / "renamed.wav")
  second = prepare.run_prepare(pattern, str(tmp_path / "two"), config, cache_dir=cache_dir)
  assert second.exit_code == 0 and "files_cached" not in second.counters
  assert second.counters["chunks_cached"] == 3 + 1 and second.counters["chunks_computed"] == 3
  one, two = read_records(str(tmp_path / "one")), read_records(str(tmp_path / "two"))
  assert sorted(two) == sorted((("renamed.wav" if n == "a.wav" else n), t) for n, t in one)
  for (name, start), ex in two.items():
    kept = one[("a.wav" if name == "renamed.wav" else name, start)]
    assert ex["source_path"].endswith(name)
    for feature in ("audio", "f0_hz", "f0_confidence", "loudness_db"):
      assert (ex[feature] == kept[feature]).all(), (name, start, feature)
  reports_one, reports_two = read_reports(str(tmp_path / "one")), read_reports(str(tmp_path / "two"))

  def rows(table, rename=False):
    out = [dict(r, path=os.path.basename(r["path"])) for r in table]
    for r in out:
      r["path"] = "a.wav" if rename and r["path"] == "renamed.wav" else r["path"]
      r.pop("processing_s", None)  # this run's time: less where chunks were reused
    return sorted(out, key=lambda r: (r["path"], r.get("start_s", 0.0)))
  for table in ("files", "windows"):
    assert rows(reports_two[table], rename=True) == rows(reports_one[table]), table
  stats = [json.load(open(os.path.join(tmp_path, d, "dataset_statistics.json"), encoding="utf-8"))
           for d in ("one", "two")]
  assert _close(stats[0], stats[1])  # to rounding: the files combine in another order (the rename)
  assert cache.complete(a_sha) and cache.complete(b_sha)  # completed by the second run
  third = prepare.run_prepare(pattern, str(tmp_path / "three"), config, cache_dir=cache_dir)
  assert third.counters["files_cached"] == 2 and "chunks_cached" not in third.counters


def _close(a, b, rtol=1e-12) -> bool:
  """Equal structures whose numbers agree to `rtol`."""
  if isinstance(a, dict):
    return isinstance(b, dict) and a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
  if isinstance(a, list):
    return isinstance(b, list) and len(a) == len(b) and all(map(_close, a, b))
  if isinstance(a, (int, float)) and not isinstance(a, bool):
    return bool(np.isclose(a, b, rtol=rtol, atol=0))
  return a == b


@pytest.mark.parametrize("when", ["planning", "chunk read", "after the chunks"])
def test_a_file_changed_while_prepared_is_reported_not_cached(tmp_path, write_wav, monkeypatch,
                                                              when):
  """A recording rewritten mid-run (in this process, at a fixed point) is an error, not an entry."""
  a = write_wav("in/a.wav", tone(220.0, 2.5))
  write_wav("in/b.wav", tone(330.0, 2.5, harmonics=3))
  planned_sha = prepare_cache.sha256_file(a)
  rewritten = []

  def rewrite():  # another tone of the same length and format: it decodes fine
    if not rewritten:
      rewritten.append(when)
      sf.write(a, tone(440.0, 2.5, harmonics=2), 16000)

  if when == "planning":  # the first read validating a.wav, after it was hashed
    read = audio_lib.read_audio_range

    def hooked_read(path, *args, **kwargs):
      if path == a:
        rewrite()
      return read(path, *args, **kwargs)
    monkeypatch.setattr(audio_lib, "read_audio_range", hooked_read)
  else:
    compute = prepare.ComputeChunkFeatures.process

    def hooked_compute(self, task):
      if task.path == a and when == "chunk read":
        rewrite()
      yield from compute(self, task)
      if task.path == a and when == "after the chunks":
        rewrite()
    monkeypatch.setattr(prepare.ComputeChunkFeatures, "process", hooked_compute)

  cache_dir = str(tmp_path / "cache")
  cache = prepare_cache.PrepareCache.for_config(cache_dir, CONFIG)
  pattern = [str(tmp_path / "in" / "*.wav")]
  first = prepare.run_prepare(pattern, str(tmp_path / "one"), CONFIG, cache_dir=cache_dir)
  assert rewritten == [when]
  new_sha = prepare_cache.sha256_file(a)
  assert new_sha != planned_sha
  assert first.exit_code == 1
  assert [(e["path"], e["error_type"]) for e in first.errors] == [(a, "changed")]
  assert "changed while being prepared" in first.errors[0]["message"]
  tables = read_reports(str(tmp_path / "one"))
  assert [os.path.basename(r["path"]) for r in tables["files"]] == ["b.wav"]
  # Nothing kept under the planned hash (nor under the new one, never planned).
  assert not cache.complete(planned_sha) and cache.read_chunks(planned_sha) == []
  assert not cache.complete(new_sha)
  if when != "after the chunks":  # read after the change: none of its windows is in the dataset
    assert {k[0] for k in read_records(str(tmp_path / "one"))} == {"b.wav"}

  monkeypatch.undo()  # the file is stable now: prepared normally, then replayed
  second = prepare.run_prepare(pattern, str(tmp_path / "two"), CONFIG, cache_dir=cache_dir)
  assert second.exit_code == 0 and second.errors == []
  assert second.counters["files_cached"] == 1 and second.counters["chunks_computed"] == 1
  files = {os.path.basename(r["path"]): r for r in read_reports(str(tmp_path / "two"))["files"]}
  assert files["a.wav"]["sha256"] == new_sha and files["a.wav"]["status"] == "ok"
  assert cache.complete(new_sha) and not cache.complete(planned_sha)
  assert sorted(k for k in read_records(str(tmp_path / "two"))) == [
      ("a.wav", 0.0), ("a.wav", 1.0), ("b.wav", 0.0), ("b.wav", 1.0)]
