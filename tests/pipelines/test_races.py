"""Workers racing on the transfer cache: two inputs of one content rendered and committed at once."""

import os

import numpy as np
import soundfile as sf

from pipelines import publish
from pipelines import transfer
from pipelines import transfer_cache
from tests import racing
from tests.conftest import tone

ROUNDS = 6
MODEL = "violin"


def _render_and_commit(round_, worker, barrier, paths, key, root):
  """One worker's part of a round: render its input to its work file, then commit it.

  Both inputs have one content, so one cache key; like two pipeline workers,
  each writes the WAV where `work_outputs` says, then (once both have
  rendered) both commits run at once.
  """
  base = os.path.join(root, str(round_))
  keys = {(p, MODEL): key for p in paths}
  outputs = transfer_cache.work_outputs({p: [MODEL] for p in paths}, keys, os.path.join(base, "work"))
  path = paths[worker]
  dest = outputs[path][MODEL]
  with publish.atomic_file(dest) as tmp:  # as the transfer writes its output
    sf.write(tmp, tone(330.0, 1.0), 16000, subtype="PCM_16", format="WAV")
  barrier.wait(racing.BARRIER_TIMEOUT_S)
  cache = transfer_cache.TransferCache(os.path.join(base, "cache"))
  row = {"input_path": path, "model": MODEL, "status": "ok", "output_path": dest,
         "plot_path": None}
  list(transfer_cache.CommitTransfer(cache, keys, os.path.join(base, "rows")).process(row))
  return dest


def test_two_inputs_of_one_content_commit_at_once(tmp_path):
  audio = tone(220.0, 1.0)
  paths = []
  for name in ("a.wav", "copy_of_a.wav"):
    path = str(tmp_path / "in" / name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    sf.write(path, audio, 16000)
    paths.append(path)
  key = transfer_cache.pair_key("same-sha", "model-fp", "settings")
  root = str(tmp_path / "runs")

  results = racing.race(_render_and_commit, (paths, key, root), workers=2, rounds=ROUNDS)
  errors, failed_rounds = racing.failures(results)
  assert not errors, f"{len(failed_rounds)} of {ROUNDS} rounds failed:\n" + "\n".join(errors)
  rendered, _ = sf.read(os.path.join(root, "0", "cache", key[:2], key, "output.wav"),
                        dtype="int16")
  assert len(rendered) == 16000
  for r in range(ROUNDS):
    base = os.path.join(root, str(r))
    assert len({v for _, v in results[r].values()}) == 2  # a work file each
    cache = transfer_cache.TransferCache(os.path.join(base, "cache"))
    assert cache.complete(key)
    rows = transfer.read_row_files(os.path.join(base, "rows"))
    assert sorted(row["input_path"] for row in rows) == paths
    published = transfer_cache.publish_transfer(
        os.path.join(base, "out"), [(key, row["input_path"], row["row"]) for row in rows],
        paths, cache)
    assert sorted(row["input_path"] for row in published) == paths
    for row in published:  # both complete, the same audio
      out, rate = sf.read(row["output_path"], dtype="int16")
      assert rate == 16000 and np.array_equal(out, rendered), row
