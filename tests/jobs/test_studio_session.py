"""The studio's work without its page: takes, errors, the menu, renders, "Add to batch"."""

import os
import shutil
import zipfile

import numpy as np
import pytest
import soundfile as sf

from ddsp_core import builtin_models
from jobs import corpus_config
from jobs import studio_session
from tests.conftest import tone


@pytest.fixture(scope="module")
def studio(tmp_path_factory):
  if "violin" not in builtin_models.installed():
    pytest.fail("the shipped violin is missing from ddsp_core/instruments")
  return studio_session.Studio(work_dir=str(tmp_path_factory.mktemp("studio")),
                               cache_dir=str(tmp_path_factory.mktemp("models")))


@pytest.mark.parametrize("name, reason", [
    ("f0_table_saved_as.wav", "not a recognised audio file"),
    ("silence_3s.wav", "digital silence"),
    ("clip_30ms.wav", "too short"),
    ("zero_bytes.wav", "empty file"),
])
def test_a_bad_take_names_the_file_and_the_reason(studio, corpus, name, reason):
  with pytest.raises(studio_session.StudioError) as e:
    studio.load_take(os.path.join(corpus, "bad", name))
  assert name in str(e.value) and reason in str(e.value)


def test_a_take_over_the_limit_is_sent_to_ddsp_beam_transfer(tmp_path, write_wav):
  short = studio_session.Studio(work_dir=str(tmp_path), max_take_minutes=0.05)  # 3 s
  path = write_wav("long.wav", tone(seconds=4.0))
  with pytest.raises(studio_session.StudioError) as e:
    short.load_take(path)
  assert "long.wav" in str(e.value) and "ddsp-beam transfer" in str(e.value)
  assert short.load_take(write_wav("short.wav", tone(seconds=2.0))).duration_s == 2.0


def test_a_take_is_decoded_once_per_content(studio, write_wav):
  path = write_wav("a.wav", tone(seconds=1.0, sample_rate=44100), sample_rate=44100)
  first = studio.load_take(path)
  assert first.sample_rate == 44100 and len(first.audio) == 16000  # at 16 kHz
  assert studio.load_take(path) is first


def test_a_render_follows_the_take_and_reuses_its_features(studio, write_wav):
  # An A4 with harmonics: the violin's output must sound at the adjusted pitch.
  take = studio.load_take(write_wav("a4.wav", tone(440.0, seconds=2.0, harmonics=6)))
  config = studio_session.control_config(**studio.crepe_settings)
  first = studio.render(take, "violin", config)
  assert first.seconds_features > 0
  assert first.f0_error_cents is not None and first.f0_error_cents < 50
  audio, rate = sf.read(first.wav_path)
  assert rate == 16000 and abs(len(audio) / rate - 2.0) < 0.01
  assert np.sqrt(np.mean(audio ** 2)) > 1e-3
  louder = studio.render(take, "violin", studio_session.control_config(
      loudness_shift=10.0, **studio.crepe_settings))
  assert louder.seconds_features == 0  # the take's features were cached
  assert louder.wav_path != first.wav_path
  assert os.path.getsize(louder.spectrogram_png) > 1000


def test_a_render_plays_first_and_is_measured_after(studio, write_wav):
  """The page's order: the output (and its spectrograms) without the output's CREPE, then the
  figures, the same as a render measured at once."""
  take = studio.load_take(write_wav("a4.wav", tone(440.0, seconds=2.0, harmonics=6)))
  config = studio_session.control_config(**studio.crepe_settings)
  at_once = studio.render(take, "violin", config)
  quick = studio.render(take, "violin", config, measure=False)
  assert not quick.measured and quick.f0_error_cents is None and quick.loudness_l1_db is None
  assert os.path.getsize(quick.wav_path) > 1000 and os.path.getsize(quick.spectrogram_png) > 1000
  np.testing.assert_allclose(sf.read(quick.wav_path)[0], sf.read(at_once.wav_path)[0],
                             atol=1.5 / 32768)  # the same synthesis (16-bit WAVs)
  measured = studio.measure(quick)
  assert measured.measured and measured.seconds_measure > 0 and measured.wav_path == quick.wav_path
  assert measured.f0_error_cents == pytest.approx(at_once.f0_error_cents)
  assert measured.loudness_l1_db == pytest.approx(at_once.loudness_l1_db)
  assert studio.measure(measured) is measured  # nothing to do twice
  with pytest.raises(studio_session.RenderGone):
    studio.measure(quick)  # measured already (the page's second queued measure lands here)
  # One render awaits its measurement per owner (page session): a newer one of the same owner
  # replaces it, another owner's does not.
  old = studio.render(take, "violin", config, measure=False, owner="a")
  mine = studio.render(take, "violin", config, measure=False, owner="b")
  newer = studio.render(take, "violin", config, measure=False, owner="a")
  with pytest.raises(studio_session.RenderGone, match="render again"):
    studio.measure(old, owner="a")
  assert studio.measure(mine, owner="b").measured
  assert studio.measure(newer, owner="a").measured
  with pytest.raises(studio_session.RenderGone):
    studio.measure(newer, owner="b")  # not b's


def test_uploaded_zips_are_checked(studio, tmp_path):
  evil = tmp_path / "evil.zip"
  with zipfile.ZipFile(evil, "w") as z:
    z.writestr("../escape.txt", "x")
  with pytest.raises(studio_session.StudioError, match=r"evil\.zip.*leaves the archive's folder"):
    studio.add_model_zip(str(evil))
  corrupt = tmp_path / "corrupt.zip"
  corrupt.write_bytes(b"PK\x03\x04 not really")
  with pytest.raises(studio_session.StudioError, match="not a readable zip"):
    studio.add_model_zip(str(corrupt))
  empty = tmp_path / "notes.zip"
  with zipfile.ZipFile(empty, "w") as z:
    z.writestr("README.txt", "no model here")
  with pytest.raises(studio_session.StudioError, match="holds no model dir"):
    studio.add_model_zip(str(empty))
  assert "evil" not in studio.model_names() and "notes" not in studio.model_names()


def test_models_dirs_join_the_menu(tmp_path):
  violin = builtin_models.installed()["violin"]
  shutil.copytree(violin, tmp_path / "mine" / "cello")
  (tmp_path / "mine" / "flute.zip").write_bytes(b"")
  (tmp_path / "mine" / "notes.txt").write_text("not a model")
  models = studio_session.find_models([str(tmp_path / "mine")])
  assert models == {"cello": str(tmp_path / "mine" / "cello"),
                    "flute": str(tmp_path / "mine" / "flute.zip")}
  assert studio_session.find_models([violin]) == {"violin": violin}
  with pytest.raises(studio_session.StudioError, match="not a folder"):
    studio_session.find_models([str(tmp_path / "missing")])


def test_add_to_batch_is_a_transfer_section_the_corpus_job_reads(studio, tmp_path):
  config = studio_session.control_config(
      adjust=False, threshold=1.5, quiet=30, autotune=0.5, chromatic=True, pitch_shift=-1,
      loudness_shift=6, **studio.crepe_settings)
  section = studio.batch_section("violin", config)
  path = tmp_path / "corpus.toml"
  path.write_text('output = "out"\n' + section, encoding="utf-8")
  loaded = corpus_config.load_config(str(path))
  for field in ("adjust", "threshold", "quiet", "autotune", "chromatic", "pitch_shift",
                "loudness_shift", "crepe_model", "precision", "f0_rate", "viterbi"):
    assert getattr(loaded.transfer.config, field) == getattr(config, field), field
  assert loaded.transfer.models == (f"violin={builtin_models.installed()['violin']}",)
  assert loaded.transfer.sources == (str(tmp_path / "recordings" / "*.wav"),)


def test_the_readme_shows_a_screenshot_under_300_kb():
  from tests.conftest import REPO  # pylint: disable=g-import-not-at-top
  png = os.path.join(REPO, "docs", "studio.png")
  with open(os.path.join(REPO, "README.md"), encoding="utf-8") as f:
    assert "(docs/studio.png)" in f.read()
  with open(png, "rb") as f:
    assert f.read(8) == b"\x89PNG\r\n\x1a\n"
  assert os.path.getsize(png) < 300_000
