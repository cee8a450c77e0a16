"""Helpers shared by the model builders: argument validation and the layers namespace.

Builders that take a ``layers`` namespace (``keras.layers`` by default, or ``tf_keras.layers``
for quantisation-aware training with tensorflow-model-optimization) build the same graph from
stock layers of either library; :func:`model_api` returns the matching ``Input``/``Model`` pair.
"""

import importlib
import numbers

import keras

from tfdepth.errors import InvalidInputError

# Encoders downsample 5 times by 2 (ResNet, MobileNet v1/v2: stride 32 at the deepest level), so
# every decoder that upsamples back by 2 at each level needs H and W divisible by 2**5.
STRIDE_MULTIPLE = 32

# Batch-norm hyper-parameters of the PyTorch reference implementations (FastDepth, Monodepth2,
# torchvision ResNet) expressed in Keras terms: torch momentum 0.1 == Keras momentum 0.9,
# torch eps default 1e-5 (torch.nn.BatchNorm2d documentation).
BN_MOMENTUM = 0.9
BN_EPSILON = 1e-5


def model_api(layers):
  """Returns ``(layers, Input, Model)`` for a layers namespace.

  Args:
    layers: ``None`` (means ``keras.layers``), ``keras.layers`` or ``tf_keras.layers``.
  Returns:
    The namespace and the ``Input`` function and ``Model`` class of the same library.
  Raises:
    InvalidInputError: if ``layers`` is not a Keras layers namespace.
  """
  if layers is None:
    return keras.layers, keras.Input, keras.Model
  package = getattr(layers, "__name__", "").split(".")[0]
  if package not in ("keras", "tf_keras") or not hasattr(layers, "Conv2D"):
    raise InvalidInputError(
        f"layers must be keras.layers or tf_keras.layers, got {layers!r}")
  module = importlib.import_module(package)
  return layers, module.Input, module.Model


def check_input_shape(input_shape, channels=3, multiple=STRIDE_MULTIPLE, arg="input_shape"):
  """Validates an ``(H, W, C)`` input shape and returns it as a tuple of ints.

  Args:
    input_shape: sequence ``(H, W, C)``; H and W positive ints divisible by ``multiple``.
    channels: expected C (``None`` accepts any positive C).
    multiple: H and W must be multiples of this (1 disables the check).
    arg: argument name used in error messages.
  Raises:
    InvalidInputError: naming the received value and what was expected.
  """
  try:
    shape = tuple(input_shape)
  except TypeError:
    raise InvalidInputError(
        f"{arg} must be a sequence (H, W, C), got {input_shape!r}") from None
  if len(shape) != 3 or not all(
      isinstance(d, numbers.Integral) and not isinstance(d, bool) and d > 0 for d in shape):
    raise InvalidInputError(
        f"{arg} must be (H, W, C) with positive integers, got {input_shape!r}")
  h, w, c = (int(d) for d in shape)
  if h % multiple or w % multiple:
    raise InvalidInputError(
        f"{arg} H and W must be multiples of {multiple}, got H={h}, W={w}")
  if channels is not None and c != channels:
    raise InvalidInputError(f"{arg} must have {channels} channels, got C={c} in {input_shape!r}")
  return h, w, c


def check_choice(value, choices, arg):
  """Raises InvalidInputError unless ``value`` is one of ``choices``; returns ``value``."""
  if isinstance(value, bool) or value not in choices:
    raise InvalidInputError(f"{arg} must be one of {tuple(choices)}, got {value!r}")
  return value


def check_positive(value, arg, allow_none=False):
  """Raises InvalidInputError unless ``value`` is a finite positive real; returns float."""
  if value is None and allow_none:
    return None
  if (isinstance(value, bool) or not isinstance(value, numbers.Real) or not value > 0
      or value == float("inf")):
    raise InvalidInputError(f"{arg} must be a finite positive number, got {value!r}")
  return float(value)


def check_depth_range(min_depth, max_depth):
  """Raises InvalidInputError unless ``0 < min_depth < max_depth`` are finite reals (metres, e.g.
  Monodepth2's ``disp_to_depth`` range); returns them as floats."""
  min_depth = check_positive(min_depth, "min_depth")
  max_depth = check_positive(max_depth, "max_depth")
  if not min_depth < max_depth:
    raise InvalidInputError(
        f"expected 0 < min_depth < max_depth (metres), received min_depth, max_depth = "
        f"{min_depth!r}, {max_depth!r}")
  return min_depth, max_depth


def check_name(name):
  """Model names prefix every layer name; they must be non-empty strings."""
  if not isinstance(name, str) or not name:
    raise InvalidInputError(f"name must be a non-empty string, got {name!r}")
  return name


def scaled_channels(channels, width_multiplier):
  """Channel count scaled by a width multiplier, as Keras' MobileNet does (``int(c * alpha)``).

  At least 1. Encoder and decoder use this same rounding, so additive skips always match.
  """
  return max(1, int(channels * width_multiplier))


def check_unit_interval(value, arg):
  """Raises InvalidInputError unless ``0 <= value < 1`` (e.g. a dropout rate); returns float."""
  if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 <= value < 1:
    raise InvalidInputError(f"{arg} must be a number in [0, 1), got {value!r}")
  return float(value)


def synchronize_batchnorm(model, synchronized=True):
  """Switches every Keras 3 ``BatchNormalization`` in ``model`` to cross-replica statistics.

  With ``synchronized=True`` a training step under a ``tf.distribute`` strategy normalises with
  the mean and variance of the *global* batch (all-reduced over replicas, as PyTorch's
  ``SyncBatchNorm``), so N replicas of B/N images compute the same function as one device with
  B images. Without a strategy the same formula runs on the local batch. The attribute is read at
  call time and saved in ``get_config``; nested models are visited.

  Args:
    model: a built ``keras.Model`` (Keras 3, TensorFlow backend).
    synchronized: bool.
  Returns:
    The number of BatchNormalization layers switched.
  Raises:
    InvalidInputError: if ``model`` is not a Keras 3 model or ``synchronized`` is not a bool.
  """
  if not isinstance(model, keras.Model):
    raise InvalidInputError(f"synchronize_batchnorm expected a keras.Model, received "
                            f"{type(model).__name__}")
  if not isinstance(synchronized, bool):
    raise InvalidInputError(f"synchronized must be a bool, received {synchronized!r}")
  count = 0
  for layer in model._flatten_layers(include_self=False):  # pylint: disable=protected-access
    if isinstance(layer, keras.layers.BatchNormalization):
      layer.synchronized = synchronized
      count += 1
  return count
