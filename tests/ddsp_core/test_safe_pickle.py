"""magenta's statistics pickle: only with trust, and even then restricted."""

import os
import pickle

import numpy as np
import pytest

from ddsp_core import safe_pickle
from pipelines import magenta_stats


class Evil:
  def __reduce__(self):
    return (os.system, ("touch /tmp/ddsp_beam_pwned",))


def test_round_trip_of_a_magenta_layout_pickle(tmp_path):
  stats = {"mean_pitch": 70.5, "std_loudness": 9.0,
           "loudness_quantiles": {"quantiles": list(np.linspace(-60, -5, 1001))}}
  path = tmp_path / "dataset_statistics.pkl"
  path.write_bytes(magenta_stats.magenta_statistics_bytes(stats))
  with pytest.raises(safe_pickle.UntrustedPickleError, match="--trust_pickle"):
    safe_pickle.read_magenta_statistics(str(path))
  out = safe_pickle.read_magenta_statistics(str(path), trust_pickle=True)
  assert out["mean_pitch"] == pytest.approx(70.5) and out["std_loudness"] == pytest.approx(9.0)
  np.testing.assert_allclose(out["loudness_quantiles"]["quantiles"], np.linspace(-60, -5, 1001))


def test_code_in_a_pickle_is_refused_even_when_trusted(tmp_path):
  path = tmp_path / "evil.pkl"
  path.write_bytes(pickle.dumps({"mean_pitch": 1.0, "x": Evil()}))
  with pytest.raises(safe_pickle.UntrustedPickleError, match="posix.system|os.system"):
    safe_pickle.read_magenta_statistics(str(path), trust_pickle=True)
  assert not os.path.exists("/tmp/ddsp_beam_pwned")


MAGENTA_PY = os.path.expanduser("~/.magenta-ddsp-venv/bin/python")


@pytest.mark.skipif(not os.path.exists(MAGENTA_PY), reason="magenta side venv not built")
def test_a_pickle_written_by_magenta_itself(tmp_path):
  import subprocess  # pylint: disable=g-import-not-at-top
  path = tmp_path / "dataset_statistics.pkl"
  code = ("import pickle, sys, numpy as np\n"
          "from ddsp.training import postprocessing\n"
          "ld = np.random.default_rng(0).normal(-30, 8, (4, 1000))\n"
          "qt = postprocessing.fit_quantile_transform(ld, ld > -40)\n"
          "stats = {'mean_pitch': np.float64(65.2), 'quantile_transform': qt}\n"
          "pickle.dump(stats, open(sys.argv[1], 'wb'))\n")
  subprocess.run([MAGENTA_PY, "-c", code, str(path)], check=True, capture_output=True,
                 env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
  out = safe_pickle.read_magenta_statistics(str(path), trust_pickle=True)
  assert out["mean_pitch"] == pytest.approx(65.2)
  q = out["loudness_quantiles"]["quantiles"]
  assert len(q) == 1000 and np.all(np.diff(q) >= 0) and -45 < np.median(q) < -15
