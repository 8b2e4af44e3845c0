"""Decoding, validation and resampling of real and generated files."""

import os
import shutil
import struct
import subprocess

import numpy as np
import pytest
import soundfile as sf

from ddsp_core import audio
from tests.conftest import tone

BAD_EXPECTED = {
    "zero_bytes.wav": "empty",
    "f0_table_saved_as.wav": "not_audio",
    "header_says_8s_holds_1.5s.wav": "truncated",
    "float32_nan_block_1.5s.wav": "non_finite",
    "clip_30ms.wav": "too_short",
    "silence_3s.wav": "silent",
}


@pytest.mark.parametrize("name,kind", sorted(BAD_EXPECTED.items()))
def test_shared_bad_files_raise_clear_errors(corpus, name, kind):
  path = os.path.join(corpus, "bad", name)
  with pytest.raises(audio.AudioDecodeError) as err:
    audio.load_audio(path)
  assert err.value.kind == kind
  assert path in str(err.value)  # the message names the file
  assert err.value.reason in str(err.value)


def test_shared_valid_odd_files_decode(corpus):
  unicode_name = [n for n in os.listdir(os.path.join(corpus, "bad")) if "♫" in n][0]
  x, info = audio.load_audio(os.path.join(corpus, "bad", unicode_name))
  assert info.duration_s == pytest.approx(2.0)
  assert len(x) == 32000 and np.max(np.abs(x)) > 0.05
  y, info = audio.load_audio(os.path.join(corpus, "bad", "tiny_8k_8bit.wav"))
  assert info.sample_rate == 8000 and info.subtype == "PCM_U8"
  assert len(y) == 8000  # 0.5 s resampled to 16 kHz


def test_flac_and_mp3_match_the_wav(corpus):
  wav, _ = audio.load_audio(os.path.join(corpus, "transfer", "voice_ohh_folk.wav"))
  for name in ("voice_ohh_folk_44k_flac.flac", "voice_ohh_folk_44k_mp3.mp3"):
    x, info = audio.load_audio(os.path.join(corpus, "transfer", name))
    assert info.sample_rate == 44100 and info.channels == 2
    assert abs(len(x) - len(wav)) <= 2
    n = min(len(x), len(wav))
    # Same render, aligned to the sample: the residual is far below the signal.
    residual = np.sqrt(np.mean((x[:n] - wav[:n]) ** 2)) / np.sqrt(np.mean(wav[:n] ** 2))
    assert residual < (0.05 if name.endswith(".flac") else 0.2), name


@pytest.mark.parametrize("subtype", ["PCM_U8", "PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE"])
def test_sample_formats(write_wav, subtype):
  x = tone(440, 0.5, 16000, 0.5)
  path = write_wav(f"t_{subtype}.wav", x, 16000, subtype)
  y, info = audio.load_audio(path)
  assert info.subtype == subtype
  tolerance = 0.01 if subtype == "PCM_U8" else 1e-4
  np.testing.assert_allclose(y, x, atol=tolerance)


@pytest.mark.parametrize("rate", [8000, 22050, 44100, 96000])
def test_any_rate_is_resampled_keeping_pitch(write_wav, rate):
  path = write_wav(f"r{rate}.wav", tone(330, 1.0, rate, 0.5), rate)
  y, _ = audio.load_audio(path)
  assert len(y) == 16000
  spectrum = np.abs(np.fft.rfft(y * np.hanning(len(y))))
  assert np.argmax(spectrum) == pytest.approx(330, abs=1)  # 1 Hz bins


def test_six_channels_are_downmixed(write_wav):
  x = tone(440, 0.5)
  multi = np.stack([x * (i % 2) for i in range(6)], axis=1)  # 3 of 6 channels carry it
  y, info = audio.load_audio(write_wav("six.wav", multi))
  assert info.channels == 6
  np.testing.assert_allclose(y, x * 0.5, atol=1e-4)


def test_non_finite_and_out_of_range_samples(write_wav):
  x = tone(440, 0.5)
  inf = x.copy()
  inf[4000] = np.inf
  with pytest.raises(audio.AudioDecodeError, match=r"non-finite .* 0\.250 s"):
    audio.load_audio(write_wav("inf.wav", inf, subtype="FLOAT"))
  with pytest.raises(audio.AudioDecodeError, match="far outside"):
    audio.load_audio(write_wav("loud.wav", x * 100, subtype="FLOAT"))
  # Slightly over full scale is a plausible float mix, not an error.
  y, _ = audio.load_audio(write_wav("hot.wav", x * 2.5, subtype="FLOAT"))
  assert np.max(np.abs(y)) == pytest.approx(1.25, rel=1e-3)


def test_text_and_random_bytes_are_not_audio(tmp_path):
  for name, payload in (("notes.wav", b"time_s,f0_hz\n0.0,440\n" * 50),
                        ("noise.mp3", np.random.default_rng(0).bytes(5000))):
    path = tmp_path / name
    path.write_bytes(payload)
    with pytest.raises(audio.AudioDecodeError) as err:
      audio.load_audio(str(path))
    assert err.value.kind in ("not_audio", "corrupt", "too_short")
    assert name in str(err.value)


def test_directory_named_like_audio(tmp_path):
  (tmp_path / "take.wav").mkdir()
  with pytest.raises(audio.AudioDecodeError, match="directory"):
    audio.load_audio(str(tmp_path / "take.wav"))


def test_missing_file(tmp_path):
  with pytest.raises(audio.AudioDecodeError, match="cannot be read"):
    audio.load_audio(str(tmp_path / "nope.wav"))


def test_truncated_generated_wav(write_wav):
  path = write_wav("full.wav", tone(440, 1.0))
  data = open(path, "rb").read()
  with open(path, "wb") as f:
    f.write(data[: len(data) // 2])  # header still says 1 s
  with pytest.raises(audio.AudioDecodeError, match="truncated"):
    audio.load_audio(path)


@pytest.mark.parametrize("riff_size", [None, 0xFFFFFFFF])
def test_streaming_writer_sizes_are_accepted(write_wav, riff_size):
  """A WAV whose data size (and RIFF size) is 0xFFFFFFFF, as a writer to a pipe leaves it,
  decodes to all of its samples: not 'truncated', not refused."""
  x = tone(440, 0.5)
  path = write_wav("pipe.wav", x)
  expected = sf.read(path, dtype="float32")[0]
  data = bytearray(open(path, "rb").read())
  pos = data.find(b"data")
  data[pos + 4:pos + 8] = struct.pack("<I", 0xFFFFFFFF)
  if riff_size is not None:
    data[4:8] = struct.pack("<I", riff_size)
  open(path, "wb").write(bytes(data))
  y, info = audio.load_audio(path)
  assert (info.frames, info.sample_rate, info.format) == (8000, 16000, "WAV")
  np.testing.assert_array_equal(y, expected)


def test_read_audio_range_matches_whole_decode(write_wav):
  x = tone(220, 3.0, harmonics=4)
  path = write_wav("long.wav", x)
  part = audio.read_audio_range(path, 1.25, 0.5)
  np.testing.assert_allclose(part, x[20000:28000], atol=1e-4)
  tail = audio.read_audio_range(path, 2.5, 10.0)
  assert len(tail) == 8000


def test_long_file_streams_in_blocks(write_wav):
  """Several decode blocks: the result equals a one-shot soundfile read."""
  x = np.random.default_rng(1).uniform(-0.5, 0.5, 16000 * 10).astype(np.float32)
  path = write_wav("noise.wav", x, subtype="FLOAT")
  y, _ = audio.load_audio(path)
  np.testing.assert_array_equal(y, sf.read(path, dtype="float32")[0])


def _encode_m4a(write_wav, tmp_path, x, sample_rate, name="take"):
  """x (mono or [n, channels]) as AAC in MP4 by ffmpeg: a format libsndfile does not read."""
  pytest.importorskip("audioread")
  if not shutil.which("ffmpeg"):
    pytest.skip("ffmpeg not installed")
  src = write_wav(f"{name}_src.wav", x, sample_rate)
  path = str(tmp_path / f"{name}.m4a")
  subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-i", src, "-c:a", "aac",
                  "-b:a", "96k", path], check=True)
  return path


def test_m4a_read_in_chunks_is_decoded_once(write_wav, tmp_path, monkeypatch):
  """Validation plus one read per chunk, as the prepare pipeline reads: ffmpeg decodes the
  file once (not once per read, which was quadratic in the length), and the chunks hold
  exactly the samples of a whole read and of ffmpeg's own output."""
  import audioread  # pylint: disable=g-import-not-at-top
  x = np.stack([tone(330, 12.0, 22050, harmonics=3), tone(495, 12.0, 22050)], axis=1)
  path = _encode_m4a(write_wav, tmp_path, x, 22050)
  opened = []
  real_open = audioread.audio_open
  monkeypatch.setattr(audioread, "audio_open",
                      lambda *a, **k: opened.append(a[0]) or real_open(*a, **k))
  info = audio.audio_info(path)
  assert info.format == "AUDIOREAD" and info.channels == 2  # the fallback, not libsndfile
  rate = info.sample_rate
  for t in range(0, 12, 2):  # validation, as PlanChunks does
    audio.read_audio_range(path, t, 2.0, 16000, info)
  chunks = [audio.read_audio_range(path, t, 1.0, rate, info) for t in range(13)]
  whole = audio.read_audio_range(path, 0.0, None, rate, info)
  assert len(opened) <= 2  # the header, then one decode (none if an earlier test decoded it)
  with real_open(path) as f:
    pcm = np.frombuffer(b"".join(f), "<i2").reshape(-1, 2).astype(np.float32) / 32768.0
  np.testing.assert_array_equal(whole, pcm.mean(axis=1))
  np.testing.assert_array_equal(np.concatenate(chunks), whole)
  part = audio.read_audio_range(path, 2.5, 3.0, 16000, info)
  assert len(part) == 48000


def test_decoded_files_are_few_and_removed(write_wav, tmp_path):
  decoded = audio._DecodedFiles(max_files=1)  # pylint: disable=protected-access
  first = _encode_m4a(write_wav, tmp_path, tone(330, 2.0), 16000, "a")
  second = _encode_m4a(write_wav, tmp_path, tone(440, 2.0), 16000, "b")
  f, entry = decoded.open(first)
  f.close()
  folder = os.path.dirname(entry.path)
  assert entry.channels == 1 and entry.frames >= 32000
  f, entry = decoded.open(second)
  f.close()
  assert os.listdir(folder) == [os.path.basename(entry.path)]  # the older one deleted
  decoded.clear()
  assert not os.path.exists(folder)
