"""Output heads shared by the depth networks (stock layers only, tf_keras-compatible)."""

from tfdepth.errors import InvalidInputError
from tfdepth.models import _common
from tfdepth.models import encoders

# Non-linearities mapping a head's raw output to metric depth.
DEPTH_ACTIVATIONS = ("relu", "softplus", "sigmoid", "linear")


def check_depth_activation(activation, max_depth, choices=DEPTH_ACTIVATIONS):
  """Validates ``activation`` / ``max_depth`` (metres); returns ``max_depth`` as float or None.

  ``"sigmoid"`` needs ``max_depth``; ``"relu"`` accepts it as a cap; ``"softplus"`` and
  ``"linear"`` take none.
  """
  _common.check_choice(activation, choices, "depth_activation")
  max_depth = _common.check_positive(max_depth, "max_depth", allow_none=True)
  if activation == "sigmoid" and max_depth is None:
    raise InvalidInputError(
        "depth_activation='sigmoid' needs max_depth (metres), got max_depth=None")
  if activation in ("softplus", "linear") and max_depth is not None:
    raise InvalidInputError(
        f"depth_activation={activation!r} takes no max_depth, got max_depth={max_depth!r}")
  return max_depth


def depth_output(x, layers, activation, max_depth, name):
  """Applies the depth non-linearity; the returned tensor's layer is named ``{name}_depth``.

  ``relu`` -> ``ReLU(max_value=max_depth)``; ``softplus``; ``sigmoid`` -> sigmoid x max_depth
  (frozen 1x1 depthwise conv, quantisable); ``linear`` -> identity (``Activation("linear")``).
  """
  if activation == "relu":
    return layers.ReLU(max_value=max_depth, name=f"{name}_depth")(x)
  if activation in ("softplus", "linear"):
    return layers.Activation(activation, name=f"{name}_depth")(x)
  x = layers.Activation("sigmoid", name=f"{name}_sigmoid")(x)
  return encoders.fixed_affine(x, layers, max_depth, None, f"{name}_depth")
