"""Typed errors of the TFDS builders.

`tfds_builders` stands alone (it imports nothing from `tfdepth`), so it has its own small error
hierarchy; the classes subclass the matching built-in exceptions so callers can catch
`FileNotFoundError` / `ValueError` without importing this module. Every message names the received
file or value and says what was expected or what to do.
"""


class BuilderError(Exception):
  """Base class of the builders' own errors."""


class MissingFileError(BuilderError, FileNotFoundError):
  """A file the builder needs is absent (for manual downloads the message repeats the instructions)."""


class CorruptFileError(BuilderError, ValueError):
  """A file exists but its content does not have the expected format, shape or range."""


class InvalidInputError(BuilderError, ValueError):
  """An argument or a line of a split file has the wrong type, shape or value."""


class UnsafeArchiveError(BuilderError, ValueError):
  """An archive member would be written outside the extraction directory (path traversal)."""
