"""Safe extraction of model archives (zip).

Refuses absolute paths, `..` components, links, more than `max_files`
entries and more than `max_bytes` once expanded (a zip bomb), before writing
anything. Extraction goes to a temporary folder renamed into place, so a
failure leaves nothing half-extracted; the folder is named by the archive's
content, so when another process extracted the same archive first, its
folder is the result (several workers load one model at once).
"""

import hashlib
import os
import shutil
import stat
import tempfile
import zipfile

MAX_FILES = 1000
MAX_BYTES = 2 << 30  # 2 GiB


class UnsafeArchiveError(ValueError):
  pass


def check_zip(path: str, max_files: int = MAX_FILES, max_bytes: int = MAX_BYTES):
  """Returns the archive's entries, or raises `UnsafeArchiveError` saying why not."""
  try:
    archive = zipfile.ZipFile(path)
  except (zipfile.BadZipFile, OSError) as e:
    raise UnsafeArchiveError(f"{path}: not a readable zip archive ({e})") from e
  with archive:
    infos = archive.infolist()
  if len(infos) > max_files:
    raise UnsafeArchiveError(f"{path}: {len(infos)} entries, more than the limit of {max_files}")
  total = 0
  for info in infos:
    name = info.filename
    parts = name.replace("\\", "/").split("/")
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
      raise UnsafeArchiveError(f"{path}: entry {name!r} has an absolute path")
    if ".." in parts:
      raise UnsafeArchiveError(f"{path}: entry {name!r} leaves the archive's folder ('..')")
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
      raise UnsafeArchiveError(f"{path}: entry {name!r} is a symbolic link")
    total += info.file_size
    if total > max_bytes:
      raise UnsafeArchiveError(f"{path}: expands to more than {max_bytes} bytes")
  return infos


def extract_zip(path: str, cache_dir: str, max_files: int = MAX_FILES,
                max_bytes: int = MAX_BYTES) -> str:
  """Extracts a checked zip into `cache_dir/<sha256>/` (once) and returns that folder.

  A zip holding one top-level folder (a zipped model dir) yields that folder.
  """
  with open(path, "rb") as f:
    digest = hashlib.sha256(f.read()).hexdigest()[:16]
  dest = os.path.join(cache_dir, digest)
  if not os.path.isdir(dest):
    infos = check_zip(path, max_files, max_bytes)
    os.makedirs(cache_dir, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{digest}.", dir=cache_dir)
    try:
      with zipfile.ZipFile(path) as archive:
        written = 0
        for info in infos:
          target = os.path.realpath(os.path.join(tmp, info.filename))
          if not target.startswith(os.path.realpath(tmp) + os.sep):
            raise UnsafeArchiveError(f"{path}: entry {info.filename!r} leaves the archive's folder")
          if info.is_dir():
            os.makedirs(target, exist_ok=True)
            continue
          os.makedirs(os.path.dirname(target), exist_ok=True)
          with archive.open(info) as src, open(target, "wb") as out:
            while True:
              block = src.read(1 << 20)
              if not block:
                break
              written += len(block)
              if written > max_bytes:  # sizes in the header can lie
                raise UnsafeArchiveError(f"{path}: expands to more than {max_bytes} bytes")
              out.write(block)
      try:
        os.rename(tmp, dest)
      except OSError:
        if not os.path.isdir(dest):
          raise
        shutil.rmtree(tmp, ignore_errors=True)  # renamed there complete: the same content
    except BaseException:
      shutil.rmtree(tmp, ignore_errors=True)
      raise
  entries = os.listdir(dest)
  if len(entries) == 1 and os.path.isdir(os.path.join(dest, entries[0])):
    return os.path.join(dest, entries[0])
  return dest
