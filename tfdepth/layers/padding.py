"""Padding layers."""

import numbers

import keras

from tfdepth.errors import InvalidInputError


def _normalize_padding(padding):
  """Returns ((top, bottom), (left, right)) from an int, a pair, or a pair of pairs."""
  def _is_int(v):
    return isinstance(v, numbers.Integral) and not isinstance(v, bool) and v >= 0
  if _is_int(padding):
    return ((int(padding),) * 2,) * 2
  try:
    items = tuple(padding)
  except TypeError:
    items = None
  if items is not None and len(items) == 2:
    if all(_is_int(v) for v in items):
      return ((int(items[0]),) * 2, (int(items[1]),) * 2)
    try:
      pairs = tuple(tuple(p) for p in items)
    except TypeError:
      pairs = None
    if pairs and all(len(p) == 2 and all(_is_int(v) for v in p) for p in pairs):
      return tuple((int(a), int(b)) for a, b in pairs)
  raise InvalidInputError(
      "padding must be a non-negative int, (pad_h, pad_w) or ((top, bottom), (left, right)), "
      f"got {padding!r}")


@keras.saving.register_keras_serializable(package="tfdepth")
class ReflectionPadding2D(keras.layers.Layer):
  """Reflection padding of NHWC images (mirror without repeating the edge pixel).

  Equivalent of PyTorch's ``nn.ReflectionPad2d`` used by Monodepth2's ``Conv3x3`` (Godard et al.
  2019, networks/layers.py): padding ``[a, b, c]`` by 1 gives ``[b, a, b, c, b]``.

  Args:
    padding: int, ``(pad_h, pad_w)`` or ``((top, bottom), (left, right))``; each pad must be
      smaller than the corresponding input size (a reflection cannot reach further).
  Input: ``(B, H, W, C)``; output ``(B, H + top + bottom, W + left + right, C)``, same dtype.
  """

  def __init__(self, padding=1, **kwargs):
    super().__init__(**kwargs)
    self.padding = _normalize_padding(padding)
    self.input_spec = keras.layers.InputSpec(ndim=4)

  def build(self, input_shape):
    for axis, (before, after) in zip((1, 2), self.padding):
      size = input_shape[axis]
      if size is not None and max(before, after) >= size:
        raise InvalidInputError(
            f"reflection padding {self.padding} needs pads smaller than the input size; got "
            f"size {size} on axis {axis} of input shape {tuple(input_shape)}")
    super().build(input_shape)

  def call(self, inputs):
    (top, bottom), (left, right) = self.padding
    return keras.ops.pad(inputs, [[0, 0], [top, bottom], [left, right], [0, 0]], mode="reflect")

  def compute_output_shape(self, input_shape):
    (top, bottom), (left, right) = self.padding
    h, w = input_shape[1], input_shape[2]
    return (input_shape[0], None if h is None else h + top + bottom,
            None if w is None else w + left + right, input_shape[3])

  def get_config(self):
    config = super().get_config()
    config["padding"] = [list(p) for p in self.padding]
    return config
