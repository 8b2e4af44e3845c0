"""Resolving input patterns to files, with Beam's FileSystems.

Local paths, `gs://` (with the gcp extra) and any other filesystem Beam knows
work the same way. A pattern names exactly what it matches (a `.csv` matched
by `corpus/**` is an input, and will be reported as "not audio"); a plain
directory stands for every audio file below it.
"""

import contextlib
import glob
import os
import shutil
import tempfile
from typing import Iterable, List

from apache_beam.io.filesystems import FileSystems

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif",
                    ".aiff", ".m4a", ".aac", ".wma", ".w64", ".rf64", ".caf")
_GLOB_CHARS = "*?["


def is_audio_name(path: str) -> bool:
  return path.lower().endswith(AUDIO_EXTENSIONS)


def expand_inputs(patterns: Iterable[str]) -> List[str]:
  """Files matched by glob patterns or directories, sorted and de-duplicated.

  Args:
    patterns: Glob patterns (`**` crosses directories), file paths or
      directories.

  Returns:
    Sorted list of paths.
  """
  found = set()
  for pattern in patterns:
    pattern = os.path.expanduser(pattern)
    if not any(c in pattern for c in _GLOB_CHARS) and os.path.isdir(pattern):
      found.update(p for p in _match(os.path.join(pattern, "**")) if is_audio_name(p))
    elif not any(c in pattern for c in _GLOB_CHARS) and "://" not in pattern:
      found.add(pattern)  # a plain path: reported later if it is missing
    else:
      found.update(_match(pattern))
      if is_local(pattern):
        # Beam's match lists files only; a folder named like audio is reported, not skipped.
        found.update(p for p in glob.glob(pattern, recursive=True)
                     if os.path.isdir(p) and is_audio_name(p))
  return sorted(found)


def _match(pattern: str) -> List[str]:
  result = FileSystems.match([pattern])[0]
  return [m.path for m in result.metadata_list]


def is_local(path: str) -> bool:
  return "://" not in path


@contextlib.contextmanager
def local_copy(path: str):
  """Yields a local path for `path`: itself when local, else a temporary copy.

  Remote inputs (`gs://`, `s3://`, ... with the matching Beam extra installed)
  are copied through Beam's FileSystems, so the decoders can seek in them.
  """
  if is_local(path):
    yield path
    return
  suffix = os.path.splitext(path)[1]
  fd, tmp = tempfile.mkstemp(prefix="ddsp-beam-", suffix=suffix)
  try:
    with os.fdopen(fd, "wb") as out, FileSystems.open(path) as src:
      shutil.copyfileobj(src, out, 1 << 20)
    yield tmp
  finally:
    os.remove(tmp)
