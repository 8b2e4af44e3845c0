"""TFRecords across the two projects: magenta's in our training, ours in magenta's reader.

tests/fixtures/magenta_prepare.tfrecord holds 4 records (1-second windows) written by
magenta's `ddsp_prepare_tfrecord` (ddsp 3.7.0, side venv from
bench/make_magenta_venv.sh) for ../shared/corpus/transfer/trumpet_bb_march.wav:
`ddsp_prepare_tfrecord --input_audio_filepatterns=... --output_tfrecord_path=... --num_shards=1
--example_secs=1 --hop_secs=1`, the first 4 of its 20 records copied unchanged.
"""

import json
import os
import subprocess

import pytest

from jobs import cli
from tests.conftest import FIXTURES

MAGENTA_PY = os.path.expanduser("~/.magenta-ddsp-venv/bin/python")


def test_training_reads_magenta_written_records(tmp_path):
  model_dir = tmp_path / "m"
  rc = cli.main(["train", "--data", os.path.join(FIXTURES, "magenta_prepare.tfrecord"),
                 "--example_secs", "1", "--model_dir", str(model_dir),
                 "--gin_file", "tiny_instrument.gin", "--gin_param", "train.batch_size = 2",
                 "--gin_param", "train.shuffle_buffer = 4", "--steps", "2", "--no_progress"])
  assert rc == 0
  info = json.load(open(model_dir / "model.json"))
  assert info["dataset"]["example_secs"] == 1.0 and info["dataset"]["padding"] == "same"
  assert (model_dir / "ckpt-2.index").exists()
  assert not (model_dir / "dataset_statistics.json").exists()  # magenta writes none


def test_a_folder_without_dataset_json_is_a_clear_error(tmp_path, capsys):
  rc = cli.main(["train", "--data", str(tmp_path), "--model_dir", str(tmp_path / "m"),
                 "--steps", "1", "--no_progress"])
  assert rc == 2
  assert "no readable dataset.json" in capsys.readouterr().err


@pytest.mark.skipif(not os.path.exists(MAGENTA_PY), reason="magenta side venv not built")
def test_magentas_provider_reads_our_records(tmp_path, corpus):
  out = tmp_path / "ds"
  assert cli.main(["prepare", "--input", os.path.join(corpus, "transfer", "trumpet_bb_march.wav"),
                   "--output", str(out), "--crepe_model", "tiny", "--no_progress"]) == 0
  code = ("import sys\n"
          "from ddsp.training.data import TFRecordProvider\n"
          "ds = TFRecordProvider(sys.argv[1]).get_dataset(shuffle=False)\n"
          "rows = [(int(b['audio'].shape[0]), int(b['f0_hz'].shape[0]), int(b['loudness_db'].shape[0]))"
          " for b in ds]\n"
          "print(len(rows), sorted(set(rows)))\n")
  proc = subprocess.run([MAGENTA_PY, "-c", code, str(out / "train.tfrecord-*")],
                        capture_output=True, text=True, timeout=300,
                        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert proc.stdout.strip().splitlines()[-1] == "8 [(64000, 1000, 1000)]"
