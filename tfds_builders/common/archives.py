"""Archive extraction that refuses to write outside the target directory.

`zipfile` and `tarfile` follow member names such as `../../etc/x` or `/abs/path` (and tar links
pointing outside). `safe_extract` checks every member before writing anything: an absolute name, a
name that resolves outside `target_dir`, a link, or a device/FIFO member raises
`UnsafeArchiveError` naming the archive and the member.

All file access goes through `tf.io.gfile` (the archive is read as a `GFile` object, members are
written with `GFile`), so the archive and the target may be on any filesystem TensorFlow knows
(local paths, `gs://`, `ram://`, ...). Only regular files and folders are written.
"""

import gzip
import lzma
import os
import posixpath
import shutil
import tarfile
import zipfile
import zlib

import tensorflow as tf

from tfds_builders.common import errors

ZIP_SUFFIXES = (".zip",)
TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")
# Bytes copied per read when writing a member (members of the KITTI drive zips are PNGs and scans
# of about 1 MB or less).
_COPY_CHUNK_BYTES = 1 << 20
# What a damaged or truncated archive raises while it is listed or read (tar reads the
# compression stream through gzip / bz2 / lzma); also a plain OSError without an errno, which is
# what bz2 raises for a damaged block ("Invalid data stream").
_READ_ERRORS = (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error, lzma.LZMAError,
                gzip.BadGzipFile)


def is_local(path) -> bool:
  """Whether `path` is a path of the local filesystem (no `scheme://` prefix)."""
  return "://" not in str(path)


def _inside(target: str, name: str) -> bool:
  """Whether member `name` lands inside `target` (resolving links already there, if local)."""
  if os.path.isabs(name) or name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
    return False
  if is_local(target):
    target_real = os.path.realpath(target)
    destination = os.path.realpath(os.path.join(target_real, name))
    return destination == target_real or destination.startswith(target_real + os.sep)
  normal = posixpath.normpath(name.replace("\\", "/"))
  return normal != ".." and not normal.startswith("../")


def _destination(target: str, name: str) -> str:
  return posixpath.join(target, posixpath.normpath(name))


def _unsafe(archive, member, why):
  raise errors.UnsafeArchiveError(
      f"Refusing to extract {archive!r}: member {member!r} {why}. Nothing was extracted; "
      "obtain the archive from its official source.")


def _write_member(source, destination: str) -> None:
  tf.io.gfile.makedirs(posixpath.dirname(destination))
  with tf.io.gfile.GFile(destination, "wb") as target:
    shutil.copyfileobj(source, target, _COPY_CHUNK_BYTES)


def _extract_zip(stream, archive_path: str, target_dir: str) -> None:
  with zipfile.ZipFile(stream) as archive:
    infos = archive.infolist()
    for info in infos:
      if not _inside(target_dir, info.filename):
        _unsafe(archive_path, info.filename, f"would be written outside {target_dir!r}")
      mode = info.external_attr >> 16
      if mode and (mode & 0o170000) == 0o120000:  # S_IFLNK stored by Unix zip tools.
        _unsafe(archive_path, info.filename, "is a symbolic link")
    for info in infos:
      destination = _destination(target_dir, info.filename)
      if info.is_dir():
        tf.io.gfile.makedirs(destination)
        continue
      with archive.open(info) as source:
        _write_member(source, destination)


def _extract_tar(stream, archive_path: str, target_dir: str) -> None:
  with tarfile.open(fileobj=stream, mode="r:*") as archive:
    members = archive.getmembers()
    for member in members:
      if not _inside(target_dir, member.name):
        _unsafe(archive_path, member.name, f"would be written outside {target_dir!r}")
      if member.issym() or member.islnk():
        _unsafe(archive_path, member.name, f"is a link (to {member.linkname!r})")
      if not (member.isfile() or member.isdir()):
        _unsafe(archive_path, member.name, "is a device, FIFO or other special file")
    for member in members:
      destination = _destination(target_dir, member.name)
      if member.isdir():
        tf.io.gfile.makedirs(destination)
        continue
      with archive.extractfile(member) as source:
        _write_member(source, destination)
    # Reads the compressed stream to its end: gzip checks its CRC-32 and length only there (a
    # damaged .tar.gz otherwise extracts wrong bytes silently); bz2 / xz check their blocks.
    while archive.fileobj.read(_COPY_CHUNK_BYTES):
      pass


def safe_extract(archive_path, target_dir) -> str:
  """Extracts a zip or tar archive into `target_dir` after checking every member.

  Args:
    archive_path: a `.zip` or `.tar[.gz|.bz2|.xz]` file (any `tf.io.gfile` path).
    target_dir: directory to extract into (created if needed; any `tf.io.gfile` path).

  Returns:
    `target_dir` as a string.

  Raises:
    MissingFileError: the archive does not exist.
    UnsafeArchiveError: a member is absolute, escapes `target_dir`, is a link or a special file.
    CorruptFileError: the archive is damaged or truncated (what was written so far stays).
    InvalidInputError: the suffix is not a supported archive type.
  """
  archive_path, target_dir = str(archive_path), str(target_dir)
  if not tf.io.gfile.exists(archive_path) or tf.io.gfile.isdir(archive_path):
    raise errors.MissingFileError(f"Archive not found: {archive_path!r}.")
  lower = archive_path.lower()
  if lower.endswith(ZIP_SUFFIXES):
    extract = _extract_zip
  elif lower.endswith(TAR_SUFFIXES):
    extract = _extract_tar
  else:
    raise errors.InvalidInputError(
        f"{archive_path!r} is not a supported archive; expected one of "
        f"{ZIP_SUFFIXES + TAR_SUFFIXES}.")
  tf.io.gfile.makedirs(target_dir)
  with tf.io.gfile.GFile(archive_path, "rb") as stream:
    try:
      extract(stream, archive_path, target_dir)
    except (*_READ_ERRORS, OSError) as e:
      if not isinstance(e, _READ_ERRORS) and e.errno is not None:
        raise   # a filesystem error (no space, permission, ...), not a damaged archive
      raise errors.CorruptFileError(
          f"{archive_path!r} ({tf.io.gfile.stat(archive_path).length} bytes) is not a readable "
          f"{'zip' if extract is _extract_zip else 'tar'} archive ({type(e).__name__}: {e}); it "
          "is probably truncated or damaged: re-download it.") from None
  return target_dir
