"""Our adjustments against magenta's own functions, run in the magenta side venv.

Skipped when that venv (bench/make_magenta_venv.sh) is absent.
"""

import json
import os
import subprocess

import numpy as np
import pytest

from ddsp_core import adjust
from ddsp_core import notes

MAGENTA_PY = os.path.expanduser(os.environ.get("MAGENTA_VENV", "~/.magenta-ddsp-venv")) + "/bin/python"

SCRIPT = r"""
import json, sys, types
import numpy as np
google = types.ModuleType("google"); colab = types.ModuleType("google.colab")
colab.files = types.SimpleNamespace(download=None); colab.output = None
sys.modules.update({"google.colab": colab})
import google as g; g.colab = colab
from ddsp.colab import colab_utils
from ddsp.training import postprocessing
d = np.load(sys.argv[1])
mask, value = postprocessing.detect_notes(d["loudness"], d["confidence"], note_threshold=1.0)
_, matched = postprocessing.fit_quantile_transform(
    d["loudness"], mask, inv_quantile=postprocessing.fit_quantile_transform(
        d["target_loudness"], np.ones_like(d["target_loudness"], bool)))
tf_ = colab_utils.get_tuning_factor(d["midi"], d["confidence"], mask)
at_scale = colab_utils.auto_tune(d["midi"], tf_, mask, amount=0.7)
at_chrom = colab_utils.auto_tune(d["midi"], tf_, mask, amount=0.7, chromatic=True)
print(json.dumps({"mask": np.asarray(mask).ravel().tolist(), "value": np.asarray(value).ravel().tolist(),
                  "matched": np.asarray(matched).ravel().tolist(), "tuning": float(tf_),
                  "auto_scale": np.asarray(at_scale).ravel().tolist(),
                  "auto_chromatic": np.asarray(at_chrom).ravel().tolist()}))
"""


@pytest.mark.skipif(not os.path.exists(MAGENTA_PY), reason="magenta side venv not built")
def test_adjustments_match_magenta(tmp_path):
  rng = np.random.default_rng(0)
  n = 600
  t = np.arange(n)
  loudness = np.where((t // 60) % 2 == 0, -25.0, -65.0) + rng.normal(0, 2, n)
  confidence = np.clip(np.where(loudness > -45, 0.9, 0.2) + rng.normal(0, 0.05, n), 0, 1)
  midi = 62.2 + np.repeat(rng.choice([0, 2, 4, 5, 7, 9], n // 30), 30) + rng.normal(0, 0.05, n)
  target = rng.normal(-20, 6, 3000)
  data = tmp_path / "in.npz"
  np.savez(data, loudness=loudness, confidence=confidence, midi=midi, target_loudness=target)
  proc = subprocess.run([MAGENTA_PY, "-c", SCRIPT, str(data)], capture_output=True, text=True,
                        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"), timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  theirs = json.loads(proc.stdout.strip().splitlines()[-1])
  mask, value = notes.detect_notes(loudness, confidence)
  np.testing.assert_array_equal(mask, theirs["mask"])
  np.testing.assert_allclose(value, theirs["value"], rtol=1e-4, atol=1e-5)
  target_q = np.maximum.accumulate(np.percentile(target, np.linspace(0, 100, 1000)))
  matched = adjust.match_loudness(loudness, mask, target_q)
  np.testing.assert_allclose(matched, theirs["matched"], atol=0.05)
  tuning = adjust.tuning_factor(midi, confidence, mask)
  assert tuning == pytest.approx(theirs["tuning"], abs=1e-9)
  np.testing.assert_allclose(adjust.auto_tune(midi, tuning, mask, 0.7), theirs["auto_scale"],
                             atol=1e-9)
  np.testing.assert_allclose(adjust.auto_tune(midi, tuning, mask, 0.7, chromatic=True),
                             theirs["auto_chromatic"], atol=1e-9)
