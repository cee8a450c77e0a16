"""Depth networks and encoders as functional builders (see docs/DESIGN.md).

Each builder ``build_xxx(input_shape=..., name="xxx", **options) -> keras.Model`` names every
layer ``f"{name}_..."`` and returns a dict of outputs. :func:`get_model` looks builders up by
name in :data:`MODEL_BUILDERS`.
"""

from tfdepth.errors import ConfigError
from tfdepth.models.encoders import build_mobilenet_v1_encoder
from tfdepth.models.fastdepth import build_fastdepth

MODEL_BUILDERS = {
    "fastdepth": build_fastdepth,
}


def get_model(name, /, **kwargs):
  """Builds the model registered as ``name`` with ``kwargs`` passed to its builder.

  Raises:
    ConfigError: if ``name`` is not a key of :data:`MODEL_BUILDERS`.
  """
  if not isinstance(name, str) or name not in MODEL_BUILDERS:
    raise ConfigError(f"unknown model {name!r}; expected one of {sorted(MODEL_BUILDERS)}")
  return MODEL_BUILDERS[name](**kwargs)


__all__ = ["MODEL_BUILDERS", "get_model", "build_fastdepth", "build_mobilenet_v1_encoder"]
