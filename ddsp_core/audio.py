"""Audio decoding, validation and resampling.

Everything that reads a recording goes through `load_audio` (whole file) or
`read_audio_range` (a slice, for chunked pipelines). Both decode with soundfile
(libsndfile reads wav, flac, ogg/vorbis/opus and mp3), fall back to audioread
(ffmpeg) for other formats when it is installed, downmix to mono, resample with
soxr and validate the samples. Any problem raises `AudioDecodeError`, whose
message names the file and the reason.

Decoding is streamed in blocks so that memory is bounded by the *output*
(16 kHz mono float32: 230 MB per hour) and not by the input's rate and channel
count (a 2-hour 96 kHz 6-channel file would be 33 GB as float64).
"""

import atexit
import collections
import dataclasses
import hashlib
import os
import shutil
import stat
import struct
import tempfile
import threading
from typing import Optional

import numpy as np
import soundfile as sf
import soxr

CREPE_SAMPLE_RATE = 16000
# Shortest input we accept: one CREPE frame (1024 samples at 16 kHz).
MIN_DURATION_S = 1024 / CREPE_SAMPLE_RATE
# Float samples beyond this magnitude (about +12 dBFS) are treated as corrupt:
# a real mix may clip slightly above 1.0, but not by a factor of four.
MAX_ABS_SAMPLE = 4.0
# Frames per soundfile read when streaming.
_DECODE_BLOCK = 1 << 16


class AudioDecodeError(ValueError):
  """A recording could not be used; the message names the file and why."""

  def __init__(self, path, reason, kind="decode"):
    self.path = str(path)
    self.reason = reason
    self.kind = kind
    super().__init__(f"{self.path}: {reason}")


@dataclasses.dataclass(frozen=True)
class AudioInfo:
  """What a recording holds before decoding.

  Attributes:
    path: The file's path.
    sample_rate: Original sample rate in Hz.
    channels: Number of channels.
    frames: Number of sample frames (per channel).
    format: Container, e.g. 'WAV', 'FLAC', 'MP3'.
    subtype: Sample encoding, e.g. 'PCM_16', 'FLOAT'.
  """
  path: str
  sample_rate: int
  channels: int
  frames: int
  format: str
  subtype: str

  @property
  def duration_s(self) -> float:
    return self.frames / float(self.sample_rate)


def _check_wav_header(path: str, size: int) -> None:
  """Raises if a RIFF/WAVE header claims more data than the file holds.

  libsndfile silently reads what is there, so a truncated upload would pass
  unnoticed; we compare the declared `data` chunk size with the bytes present.
  Sizes of 0 or 0xFFFFFFFF (streamed writers that never filled them in) are
  accepted.
  """
  with open(path, "rb") as f:
    head = f.read(12)
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
      return
    offset = 12
    while offset + 8 <= size:
      f.seek(offset)
      chunk_id, chunk_size = struct.unpack("<4sI", f.read(8))
      if chunk_id == b"data":
        available = size - offset - 8
        if chunk_size not in (0, 0xFFFFFFFF) and chunk_size > available:
          raise AudioDecodeError(
              path, f"truncated: the WAV header declares {chunk_size} bytes "
              f"of audio but the file holds only {available}", "truncated")
        return
      offset += 8 + chunk_size + (chunk_size & 1)


def audio_info(path: str) -> AudioInfo:
  """Reads a recording's header.

  Args:
    path: Local path of an audio file.

  Returns:
    An `AudioInfo`.

  Raises:
    AudioDecodeError: missing, empty, unreadable, truncated or not audio.
  """
  path = os.fspath(path)
  if os.path.isdir(path):
    raise AudioDecodeError(path, "is a directory, not an audio file", "not_audio")
  try:
    st = os.stat(path)
  except OSError as e:
    raise AudioDecodeError(path, f"cannot be read ({e.strerror})", "unreadable") from e
  if not stat.S_ISREG(st.st_mode):  # a FIFO or device would block or never end
    raise AudioDecodeError(path, "not a regular file (a pipe, socket or device)", "not_audio")
  size = st.st_size
  if size == 0:
    raise AudioDecodeError(path, "empty file (0 bytes)", "empty")
  if not os.access(path, os.R_OK):
    raise AudioDecodeError(path, "cannot be read (permission denied)", "unreadable")
  try:
    info = sf.info(path)
  except (sf.LibsndfileError, RuntimeError) as e:
    fallback = _audioread_info(path)
    if fallback is None:
      raise AudioDecodeError(
          path, f"not a recognised audio file ({_libsndfile_reason(e)})",
          "not_audio") from e
    return fallback
  except OSError as e:
    raise AudioDecodeError(path, f"cannot be read ({e})", "unreadable") from e
  _check_wav_header(path, size)
  if info.frames <= 0 or info.samplerate <= 0 or info.channels <= 0:
    raise AudioDecodeError(path, "holds no audio frames", "empty")
  return AudioInfo(path=path, sample_rate=int(info.samplerate),
                   channels=int(info.channels), frames=int(info.frames),
                   format=str(info.format), subtype=str(info.subtype))


def _libsndfile_reason(e: Exception) -> str:
  msg = str(e)
  return msg.split(": ", 1)[-1] if ": " in msg else msg


def _audioread_info(path: str) -> Optional[AudioInfo]:
  """Header through audioread (ffmpeg), or None when it is absent or fails."""
  try:
    import audioread  # pylint: disable=g-import-not-at-top
    with audioread.audio_open(path) as f:
      frames = int(round(f.duration * f.samplerate))
      if frames <= 0:
        return None
      return AudioInfo(path=path, sample_rate=int(f.samplerate),
                       channels=int(f.channels), frames=frames,
                       format="AUDIOREAD", subtype="PCM_16")
  except Exception:  # pylint: disable=broad-except
    return None


def _validate_block(path: str, block: np.ndarray, start_frame: int,
                    sample_rate: int) -> None:
  if not np.all(np.isfinite(block)):
    bad = int(np.flatnonzero(~np.isfinite(block).all(axis=-1) if block.ndim > 1
                             else ~np.isfinite(block))[0]) + start_frame
    raise AudioDecodeError(
        path, f"non-finite samples (NaN or Inf) from {bad / sample_rate:.3f} s",
        "non_finite")
  peak = float(np.max(np.abs(block))) if block.size else 0.0
  if peak > MAX_ABS_SAMPLE:
    raise AudioDecodeError(
        path, f"sample values far outside [-1, 1] (peak {peak:.3g}); "
        "the file is corrupt or not normalised", "out_of_range")


class _Resampler:
  """Streaming mono downmix + soxr resampling."""

  def __init__(self, in_rate: int, out_rate: int):
    self._stream = (None if in_rate == out_rate else
                    soxr.ResampleStream(in_rate, out_rate, 1, dtype="float32",
                                        quality="HQ"))

  def __call__(self, block: np.ndarray, last: bool) -> np.ndarray:
    mono = block.mean(axis=1) if block.ndim == 2 else block
    mono = np.ascontiguousarray(mono, dtype=np.float32)
    if self._stream is None:
      return mono
    return self._stream.resample_chunk(mono, last=last)


def read_audio_range(path: str, start_s: float = 0.0,
                     duration_s: Optional[float] = None,
                     sample_rate: int = CREPE_SAMPLE_RATE,
                     info: Optional[AudioInfo] = None) -> np.ndarray:
  """Decodes part of a file as mono float32 at `sample_rate`.

  Formats that only ffmpeg reads (audioread fallback) are decoded once per
  process into a temporary file (see `_DecodedFiles`), so reading a file in n
  ranges costs one decode, not n.

  Args:
    path: Audio file path.
    start_s: Start time in seconds (in the original file).
    duration_s: Seconds to read; None reads to the end.
    sample_rate: Output sample rate in Hz.
    info: The file's `AudioInfo` if already known.

  Returns:
    float32 array [n_samples], n_samples = round(duration * sample_rate)
    (shorter at the end of the file).

  Raises:
    AudioDecodeError: on any decoding or validation problem.
  """
  path = os.fspath(path)
  info = info or audio_info(path)
  if info.format == "AUDIOREAD":
    f, decoded = _DECODED.open(path)
    with f:  # ffmpeg's frame count is exact, its header's duration an estimate
      return _read_frames(path, f, decoded, start_s, duration_s, sample_rate)
  try:
    f = sf.SoundFile(path)
  except (sf.LibsndfileError, RuntimeError, OSError) as e:
    raise AudioDecodeError(path, f"truncated or corrupt audio data near {start_s:.2f} s "
                           f"({_libsndfile_reason(e)})", "corrupt") from e
  with f:
    return _read_frames(path, f, info, start_s, duration_s, sample_rate)


def _read_frames(path: str, f: sf.SoundFile, info: AudioInfo, start_s: float,
                 duration_s: Optional[float], sample_rate: int) -> np.ndarray:
  """Streams [start_s, start_s + duration_s) of an open file through validation and resampling."""
  start = int(round(start_s * info.sample_rate))
  stop = (info.frames if duration_s is None else
          min(info.frames, start + int(round(duration_s * info.sample_rate))))
  resample = _Resampler(info.sample_rate, sample_rate)
  pieces = []
  position = start
  try:
    if start:
      f.seek(start)
    while position < stop:
      n = min(_DECODE_BLOCK, stop - position)
      block = f.read(n, dtype="float32", always_2d=True)
      if block.shape[0] == 0:
        break
      _validate_block(path, block, position, info.sample_rate)
      position += block.shape[0]
      pieces.append(resample(block, last=position >= stop))
    if resample._stream is not None and position < stop:  # pylint: disable=protected-access
      pieces.append(resample(np.zeros((0, info.channels), np.float32), last=True))
  except AudioDecodeError:
    raise
  except (sf.LibsndfileError, RuntimeError, OSError) as e:
    raise AudioDecodeError(
        path, f"truncated or corrupt audio data near {position / info.sample_rate:.2f} s "
        f"({_libsndfile_reason(e)})", "corrupt") from e
  # More than 10 ms missing: the header promised audio the file does not hold.
  if stop - position > info.sample_rate // 100:
    raise AudioDecodeError(
        path, f"truncated: header announces {info.frames} frames, only "
        f"{position} could be decoded", "truncated")
  return np.concatenate(pieces) if pieces else np.zeros(0, np.float32)


class _DecodedFiles:
  """ffmpeg's decodes (audioread), kept as raw 16-bit PCM in a private temporary folder.

  An m4a read in n ranges (validation, then each chunk with its context) was
  decoded whole n times; here it is decoded once per process, streamed to disk
  (memory stays one audioread buffer), and each range is a seek in the PCM. Entries
  are keyed by the file's content (SHA-256), so a changed file, or a new temporary
  copy of a remote one, is never confused with another; the least recently
  used are deleted beyond `max_files`, and the folder when the process exits.
  """

  def __init__(self, max_files: int = 4):
    self.max_files = max_files
    self._lock = threading.Lock()
    self._entries = collections.OrderedDict()  # sha256 -> AudioInfo of the PCM file
    self._digests = {}  # (device, inode, size, mtime_ns) -> sha256
    self._folder = None

  def open(self, path: str):
    """(an open soundfile of the decoded PCM, its AudioInfo); decodes on first use."""
    digest = self._digest(path)
    with self._lock:
      entry = self._entries.get(digest)
      if entry is None:  # decoding under the lock: two threads never decode one file twice
        if self._folder is None:
          self._folder = tempfile.mkdtemp(prefix="ddsp-beam-decoded-")
          atexit.register(self.clear)
        entry = _decode_to_pcm(path, self._folder)
        self._entries[digest] = entry
        while len(self._entries) > self.max_files:
          _, old = self._entries.popitem(last=False)
          os.remove(old.path)  # a reader that has it open keeps reading it
      self._entries.move_to_end(digest)
      f = sf.SoundFile(entry.path, "r", entry.sample_rate, entry.channels, "PCM_16",
                       "LITTLE", "RAW")
      return f, entry

  def _digest(self, path: str) -> str:
    st = os.stat(path)
    key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
    digest = self._digests.get(key)
    if digest is None:
      sha = hashlib.sha256()
      with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
          sha.update(block)
      digest = sha.hexdigest()
      if len(self._digests) > 4096:  # temporary copies of remote files each add one
        self._digests.clear()
      self._digests[key] = digest
    return digest

  def clear(self) -> None:
    """Deletes every decoded file and the folder."""
    with self._lock:
      self._entries.clear()
      if self._folder is not None:
        shutil.rmtree(self._folder, ignore_errors=True)
        self._folder = None


def _decode_to_pcm(path: str, folder: str) -> AudioInfo:
  """Decodes a file with audioread (ffmpeg) to little-endian 16-bit PCM in `folder`."""
  import audioread  # pylint: disable=g-import-not-at-top
  fd, pcm_path = tempfile.mkstemp(dir=folder, suffix=".pcm")
  size = 0
  try:
    with os.fdopen(fd, "wb") as out, audioread.audio_open(path) as f:
      channels, rate = int(f.channels), int(f.samplerate)
      for buf in f:
        out.write(buf)
        size += len(buf)
  except Exception as e:  # pylint: disable=broad-except
    os.remove(pcm_path)
    raise AudioDecodeError(path, f"could not be decoded by ffmpeg ({e})", "corrupt") from e
  frames = size // (2 * channels)
  if frames == 0:
    os.remove(pcm_path)
    raise AudioDecodeError(path, "holds no audio frames", "empty")
  return AudioInfo(path=pcm_path, sample_rate=rate, channels=channels, frames=frames,
                   format="RAW", subtype="PCM_16")


_DECODED = _DecodedFiles()


def load_audio(path: str, sample_rate: int = CREPE_SAMPLE_RATE,
               min_duration_s: float = MIN_DURATION_S,
               reject_silence: bool = True):
  """Decodes a whole recording to mono float32 at `sample_rate`.

  Args:
    path: Audio file path.
    sample_rate: Output sample rate in Hz.
    min_duration_s: Shorter files are rejected ("too short").
    reject_silence: Reject files that are entirely digital silence.

  Returns:
    (audio, info): float32 array [n_samples] and the file's `AudioInfo`.

  Raises:
    AudioDecodeError: empty, not audio, truncated, non-finite samples, too
      short, silent or otherwise undecodable.
  """
  info = audio_info(path)
  check_duration(info, min_duration_s)
  audio = read_audio_range(path, 0.0, None, sample_rate, info)
  if reject_silence:
    check_not_silent(path, audio)
  return audio, info


def check_duration(info: AudioInfo, min_duration_s: float = MIN_DURATION_S) -> None:
  """Raises `AudioDecodeError` ("too short") below `min_duration_s`."""
  if info.duration_s < min_duration_s:
    raise AudioDecodeError(
        info.path, f"too short: {info.duration_s * 1000:.0f} ms, the minimum is "
        f"{min_duration_s * 1000:.0f} ms", "too_short")


def check_not_silent(path: str, audio: np.ndarray) -> None:
  """Raises `AudioDecodeError` ("silent") when every sample is exactly zero."""
  if not np.any(audio):
    raise AudioDecodeError(path, "digital silence: every sample is zero", "silent")


def resample(audio: np.ndarray, in_rate: int, out_rate: int) -> np.ndarray:
  """Resamples mono float audio with soxr (high quality).

  Args:
    audio: float array [n_samples].
    in_rate: Input sample rate in Hz.
    out_rate: Output sample rate in Hz.

  Returns:
    float32 array [round(n_samples * out_rate / in_rate)].
  """
  if in_rate == out_rate:
    return np.asarray(audio, np.float32)
  return soxr.resample(np.asarray(audio, np.float32), in_rate, out_rate,
                       quality="HQ").astype(np.float32)
