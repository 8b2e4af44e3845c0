"""Atomic publishing of local outputs: readers see the old result or the new one, never half."""

import contextlib
import os
import shutil
import tempfile


@contextlib.contextmanager
def atomic_file(path: str):
  """Yields a temporary path next to `path`; renames it over `path` on success.

  On an exception the temporary file is removed and `path` is untouched.
  """
  directory = os.path.dirname(os.path.abspath(path)) or "."
  os.makedirs(directory, exist_ok=True)
  fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp",
                             dir=directory)
  os.close(fd)
  try:
    yield tmp
    os.replace(tmp, path)
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)


def replace_directory(staged: str, final: str) -> None:
  """Moves a finished `staged` directory to `final`, replacing what was there.

  The old directory is first renamed aside and deleted only after the new one
  is in place, so a crash leaves either the old or the new output (and at
  worst a `.old-*` folder to clean up), never a mix.
  """
  final = os.path.abspath(final)
  old = None
  if os.path.exists(final):
    old = tempfile.mkdtemp(prefix=f".{os.path.basename(final)}.old-",
                           dir=os.path.dirname(final))
    os.rmdir(old)
    os.rename(final, old)
  os.rename(staged, final)
  if old:
    shutil.rmtree(old, ignore_errors=True)


def remove_tree(path: str) -> None:
  """Deletes a staging folder, ignoring what is already gone."""
  shutil.rmtree(path, ignore_errors=True)
