"""Typed errors raised by tfdepth. Each message names the received value and what was expected."""


class TfdepthError(Exception):
  """Base class of tfdepth's own errors."""


class InvalidInputError(TfdepthError, ValueError):
  """An argument has the wrong shape, dtype, range or value."""


class NonFiniteError(TfdepthError, FloatingPointError):
  """A tensor that must be finite contains NaN or inf (for example a training loss)."""


class ConfigError(TfdepthError, KeyError):
  """An experiment name or config override is unknown or has the wrong type."""

  def __str__(self):  # KeyError quotes its message; keep it readable.
    return str(self.args[0]) if self.args else ""


class DataError(TfdepthError, IOError):
  """A data file is missing, truncated or corrupt."""
