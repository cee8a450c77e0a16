"""The manual directory of a builder, with a typed error instead of TFDS's AssertionError.

`tfds.download.DownloadManager.manual_dir` raises a bare `AssertionError` when the manual
directory is not set, does not exist or is empty (tensorflow_datasets 4.9.10), before a builder can
check anything itself. `manual_dir` turns that into `MissingFileError` naming the directory and
repeating the builder's `MANUAL_DOWNLOAD_INSTRUCTIONS`, or into None for builders whose manual
files are optional (they download what is missing).
"""

from typing import Optional

from etils import epath

from tfds_builders.common import errors


def manual_dir(dl_manager, instructions: str, required: bool = True) -> Optional[epath.Path]:
  """`dl_manager.manual_dir`, or `MissingFileError` (None if not `required`) when unusable.

  Args:
    dl_manager: the `tfds.download.DownloadManager` handed to `_split_generators`.
    instructions: the builder's `MANUAL_DOWNLOAD_INSTRUCTIONS`, repeated in the error.
    required: False for builders that can download instead: return None rather than raise.

  Returns:
    The manual directory (it exists and is not empty), or None.

  Raises:
    MissingFileError: the directory is not set, does not exist or is empty, and `required`.
  """
  try:
    return epath.Path(dl_manager.manual_dir)
  except AssertionError:
    if not required:
      return None
  # TFDS keeps the configured path in `_manual_dir` (None when no manual directory is enabled).
  path = getattr(dl_manager, "_manual_dir", None)
  if not path:
    state = "is not set"
  elif not epath.Path(path).exists():
    state = "does not exist"
  else:
    state = "is empty"
  raise errors.MissingFileError(
      f"Manual directory {str(path) if path else '<none>'!r} {state}; this dataset needs "
      f"files downloaded by hand (pass --manual_dir= to `tfds build`, or "
      f"DownloadConfig(manual_dir=...)).\n{instructions}")
