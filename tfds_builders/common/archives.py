"""Archive extraction that refuses to write outside the target directory.

`zipfile` and `tarfile` follow member names such as `../../etc/x` or `/abs/path` (and tar links
pointing outside). `safe_extract` checks every member before writing anything: an absolute name, a
name that resolves outside `target_dir`, a link, or a device/FIFO member raises
`UnsafeArchiveError` naming the archive and the member.
"""

import os
import tarfile
import zipfile

from tfds_builders.common import errors

ZIP_SUFFIXES = (".zip",)
TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")


def _inside(target_real: str, name: str) -> bool:
  if os.path.isabs(name) or name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
    return False
  destination = os.path.realpath(os.path.join(target_real, name))
  return destination == target_real or destination.startswith(target_real + os.sep)


def _unsafe(archive, member, why):
  raise errors.UnsafeArchiveError(
      f"Refusing to extract {archive!r}: member {member!r} {why}. Nothing was extracted; "
      "obtain the archive from its official source.")


def safe_extract(archive_path, target_dir) -> str:
  """Extracts a zip or tar archive into `target_dir` after checking every member.

  Args:
    archive_path: a local `.zip` or `.tar[.gz|.bz2|.xz]` file.
    target_dir: directory to extract into (created if needed).

  Returns:
    `target_dir` as a string.

  Raises:
    MissingFileError: the archive does not exist.
    UnsafeArchiveError: a member is absolute, escapes `target_dir`, is a link or a special file.
    InvalidInputError: the suffix is not a supported archive type.
  """
  archive_path, target_dir = os.fspath(archive_path), os.fspath(target_dir)
  if not os.path.isfile(archive_path):
    raise errors.MissingFileError(f"Archive not found: {archive_path!r}.")
  os.makedirs(target_dir, exist_ok=True)
  target_real = os.path.realpath(target_dir)
  lower = archive_path.lower()
  if lower.endswith(ZIP_SUFFIXES):
    with zipfile.ZipFile(archive_path) as archive:
      for info in archive.infolist():
        if not _inside(target_real, info.filename):
          _unsafe(archive_path, info.filename, f"would be written outside {target_dir!r}")
        mode = info.external_attr >> 16
        if mode and (mode & 0o170000) == 0o120000:  # S_IFLNK stored by Unix zip tools.
          _unsafe(archive_path, info.filename, "is a symbolic link")
      archive.extractall(target_dir)
  elif lower.endswith(TAR_SUFFIXES):
    with tarfile.open(archive_path) as archive:
      members = archive.getmembers()
      for member in members:
        if not _inside(target_real, member.name):
          _unsafe(archive_path, member.name, f"would be written outside {target_dir!r}")
        if member.issym() or member.islnk():
          _unsafe(archive_path, member.name, f"is a link (to {member.linkname!r})")
        if not (member.isfile() or member.isdir()):
          _unsafe(archive_path, member.name, "is a device, FIFO or other special file")
      archive.extractall(target_dir, members=members, filter="data")
  else:
    raise errors.InvalidInputError(
        f"{archive_path!r} is not a supported archive; expected one of "
        f"{ZIP_SUFFIXES + TAR_SUFFIXES}.")
  return target_dir
