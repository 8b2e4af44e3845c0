"""instruments/ship.py: a trained corpus-job model dir becomes a built-in model with its card."""

import json
import os

import pytest

from ddsp_core import builtin_models
from ddsp_core import model_dir as model_dir_lib
from instruments import ship
from tests.ddsp_core.test_builtin_models import untrained_model_dir


def corpus_job_output(root, name="violin", step=0, runs=((0, 40.0),)):
  """instruments/out/<name> as the corpus job leaves it, and the corpus' manifest."""
  out = root / "out" / name
  model = out / "models" / name
  model.mkdir(parents=True)
  untrained_model_dir(model)
  (model / "model.json").write_text(json.dumps({
      "gin_files": ["tiny_instrument.gin"], "n_parameters": 1234, "sample_rate": 16000,
      "frame_rate": 250, "data": "/abs/path/elsewhere",
      "dataset": {"crepe_model": "cascade", "example_secs": 4.0}}))
  (model / "corpus_model.json").write_text(json.dumps({"name": name, "settings_hash": "h"}))
  (model / "eval").mkdir()
  (model / "eval" / "metrics.json").write_text(json.dumps(
      {"step": step, "spectral_loss": 7.5, "loudness_l1_db": 3.0, "f0_l1_midi": 0.2}))
  datasets = out / "datasets" / name
  datasets.mkdir(parents=True)
  (datasets / "dataset.json").write_text(json.dumps({
      "counts": {"windows_train": 600, "windows_eval": 60}, "wall_seconds": 99.0,
      "crepe_model": "cascade", "precision": "bfloat16", "f0_rate": 100}))
  for i, (before, seconds) in enumerate(runs):
    run = out / "runs" / f"run{i}"
    run.mkdir(parents=True)
    (run / "summary.json").write_text(json.dumps({"run_id": f"run{i}", "stages": [
        {"name": f"prepare:{name}", "seconds": 9.0, "counters": {}},
        {"name": f"train:{name}", "seconds": seconds,
         "counters": {"step_before": before, "step": step, "steps_trained": step - before or 1}}]}))
  corpus = root / "corpus" / name
  corpus.mkdir(parents=True)
  (corpus / "manifest.json").write_text(json.dumps({
      "seed": 4001, "soundfont": "FluidR3_GM.sf2", "debian_package": "fluid-soundfont-gm",
      "package_version": "3.1", "program": 40, "fluidsynth": "2.3.1", "recipe_hash": "abc",
      "n_files": 20, "total_seconds": 663.5, "midi_range": [55, 96]}))
  return str(root / "out"), str(root / "corpus")


def test_ship_makes_a_builtin_model_with_its_card_and_restore_resumes(tmp_path):
  out, corpus = corpus_job_output(tmp_path)
  dest = str(tmp_path / "builtin")
  quality = tmp_path / "quality.json"
  quality.write_text(json.dumps({"crepe_model": "cascade", "summaries": [
      {"model": "violin", "instrument": "violin", "takes": 5, "mfcc_score": 0.42,
       "f0_error_cents": 9.0, "targets_met": False}]}))
  path = ship.ship("violin", out_root=out, dest_root=dest, corpus_root=corpus,
                   quality=str(quality))
  assert builtin_models.installed(dest) == {"violin": path}
  card = builtin_models.read_card(path)
  assert card["data"]["seconds"] == 663.5 and card["data"]["train_windows"] == 600
  assert card["data"]["f0_labels"] == "CREPE cascade, bfloat16, f0 at 100 frames/s"
  assert card["data"]["prepare_wall_s"] == 99.0
  assert card["training"]["steps"] == 0 and card["training"]["wall_s"] == 40.0
  assert card["training"]["batch_size"] == 16  # as the operative config binds it
  assert card["training"]["learning_rate"] == pytest.approx(3e-4)
  assert card["eval"]["spectral_loss"] == 7.5
  reverb = card["architecture"]["reverb"]  # untrained: the initial response, about 1e-6 per tap
  assert reverb["reverb_length"] == 1000 and reverb["wet_to_dry_energy"] < 1e-6
  assert card["transfer_quality"]["mfcc_score"] == 0.42
  assert os.path.exists(os.path.join(path, "MODEL.md"))
  with open(os.path.join(path, "model.json"), encoding="utf-8") as f:
    assert "/abs/path" not in f.read()  # no path of the machine that trained it
  assert sorted(n for n in os.listdir(path) if n.startswith("ckpt-")) == [
      "ckpt-0.data-00000-of-00001", "ckpt-0.index"]
  model_dir_lib.load_model(path)  # the shipped copy restores on its own

  # Shipping again at the same step keeps the measured quality; a card's runs are not doubled.
  card2 = builtin_models.read_card(ship.ship("violin", out_root=out, dest_root=dest,
                                             corpus_root=corpus))
  assert card2["transfer_quality"] == card["transfer_quality"]
  assert len(card2["training"]["runs"]) == 1

  # --restore fills an empty corpus-job model dir, never one that holds a checkpoint.
  assert ship.restore("violin", out_root=out, dest_root=dest) is None
  fresh = tmp_path / "fresh"
  target = ship.restore("violin", out_root=str(fresh), dest_root=dest)
  assert target == str(fresh / "violin" / "models" / "violin")
  model_dir_lib.load_model(target)
  assert json.loads((fresh / "violin" / "models" / "violin" / "corpus_model.json")
                    .read_text())["settings_hash"] == "h"  # the corpus job resumes, not restarts


def test_ship_refuses_what_it_cannot_ship(tmp_path):
  with pytest.raises(ValueError, match="unknown instrument 'cello'"):
    ship.ship("cello", out_root=str(tmp_path))
  with pytest.raises(FileNotFoundError, match="no checkpoint"):
    ship.ship("flute", out_root=str(tmp_path), dest_root=str(tmp_path / "b"))
  assert not os.path.exists(tmp_path / "b" / "flute")
  assert ship.main(["cello"]) == 2


def test_card_only_records_the_quality_of_an_installed_model(tmp_path):
  out, corpus = corpus_job_output(tmp_path)
  dest = str(tmp_path / "builtin")
  path = ship.ship("violin", out_root=out, dest_root=dest, corpus_root=corpus)
  before = builtin_models.read_card(path)
  weights = (tmp_path / "builtin" / "violin" / "ckpt-0.index").read_bytes()
  assert before["transfer_quality"] is None
  quality = tmp_path / "quality.json"
  quality.write_text(json.dumps({"crepe_model": "cascade", "summaries": [
      {"model": "violin", "instrument": "violin", "takes": 5, "mfcc_score": 0.61,
       "f0_error_cents": 4.0, "targets_met": True}]}))
  assert ship.record_quality("violin", str(quality), dest_root=dest) == path
  after = builtin_models.read_card(path)
  assert after["transfer_quality"]["mfcc_score"] == 0.61
  assert after["transfer_quality"]["source"] == "quality.json"
  assert {k: v for k, v in after.items() if k != "transfer_quality"} == \
      {k: v for k, v in before.items() if k != "transfer_quality"}
  assert "- mfcc_score: 0.61" in (tmp_path / "builtin" / "violin" / "MODEL.md").read_text()
  assert (tmp_path / "builtin" / "violin" / "ckpt-0.index").read_bytes() == weights
  with pytest.raises(FileNotFoundError, match="flute: not installed"):
    ship.record_quality("flute", str(quality), dest_root=dest)
  with pytest.raises(ValueError, match="no summary for model 'violin'"):
    quality.write_text(json.dumps({"crepe_model": "cascade", "summaries": []}))
    ship.record_quality("violin", str(quality), dest_root=dest)
  assert ship.main(["violin", "--card-only"]) == 2  # needs --quality
  assert ship.main(["violin", "--card-only", "--restore", "--quality", str(quality)]) == 2
  # Medians measured on another model dir, or as another instrument, are refused.
  quality.write_text(json.dumps({"crepe_model": "cascade", "summaries": [
      {"model": "violin", "instrument": "violin", "path": str(tmp_path / "elsewhere"),
       "mfcc_score": 0.9}]}))
  with pytest.raises(ValueError, match="measured at .*elsewhere"):
    ship.record_quality("violin", str(quality), dest_root=dest)
  quality.write_text(json.dumps({"crepe_model": "cascade", "summaries": [
      {"model": "violin", "instrument": "flute", "mfcc_score": 0.9}]}))
  with pytest.raises(ValueError, match="measured as a flute"):
    ship.record_quality("violin", str(quality), dest_root=dest)
  quality.write_text(json.dumps({"crepe_model": "cascade", "summaries": [
      {"model": "violin", "instrument": "violin", "path": path, "mfcc_score": 0.7}]}))
  recorded = builtin_models.read_card(ship.record_quality("violin", str(quality), dest_root=dest))
  assert recorded["transfer_quality"]["mfcc_score"] == 0.7
  assert "path" not in recorded["transfer_quality"]  # no machine path in a card
  quality.write_text(json.dumps({"crepe_model": "cascade", "dry": True, "summaries": [
      {"model": "violin", "instrument": "violin", "path": path, "mfcc_score": 0.8}]}))
  with pytest.raises(ValueError, match="--dry"):
    ship.record_quality("violin", str(quality), dest_root=dest)


@pytest.mark.parametrize("reverb_length", [0, 2000])
def test_reverb_summary_reads_the_learned_response(tmp_path, reverb_length):
  import numpy as np  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  model = model_dir_lib.build_model(None, ["tiny_instrument.gin"], [
      "RnnFcDecoder.rnn_channels = 16", "RnnFcDecoder.ch = 8", "RnnFcDecoder.n_harmonics = 8",
      "RnnFcDecoder.n_noise_magnitudes = 8", f"Autoencoder.reverb_length = {reverb_length}"])
  model(tf.zeros([1, 250]), tf.zeros([1, 250]))
  if reverb_length:
    ir = np.zeros(reverb_length, np.float32)
    ir[0] = 5.0  # the dry tap: ignored by synth.reverb, so not counted
    ir[1:1601] = 0.5  # wet energy 1600 * 0.25 = 400 (400x the dry path's)
    model.reverb_ir.assign(ir)
  tf.train.CheckpointManager(tf.train.Checkpoint(model=model), str(tmp_path), 1,
                             checkpoint_name="ckpt").save(checkpoint_number=7)
  summary = ship.reverb_summary(str(tmp_path), 7)
  if not reverb_length:
    assert summary == {"reverb_length": 0}
    return
  # 1% of the energy (20 dB down) remains from sample 1585 on: 4 of the 1600 taps.
  assert summary == {"reverb_length": 2000, "wet_to_dry_energy": 400.0,
                     "decay_20db_s": round(1585 / 16000, 3)}
