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


def reflection_slices(size, before, after):
  """Row (or column) ranges whose concatenation is a reflection padding along one axis.

  Reflection padding by ``before`` / ``after`` (mirror without repeating the edge pixel, PyTorch
  ``nn.ReflectionPad2d``; Monodepth2's Conv3x3, Godard et al. 2019) is the concatenation of input
  rows ``before, ..., 1``, the whole input, then rows ``size-2, ..., size-1-after``. This is the
  one statement of those indices: `reflection_pad` (stock Keras layers, for the tf_keras twin of
  a model) and ``export.rewrite.SliceReflectionPadding2D`` (TF slices, for TFLite) both use it.

  Args:
    size: int, static length of the padded axis.
    before, after: non-negative ints, each smaller than ``size``.
  Returns:
    List of ``(start, stop)`` half-open ranges (one row each, or ``(0, size)`` for the whole
    input), in concatenation order.
  Raises:
    InvalidInputError: unknown size, or a pad that does not fit.
  """
  if (isinstance(size, bool) or not isinstance(size, numbers.Integral)
      or not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) and v >= 0
                 for v in (before, after)) or max(before, after) >= size):
    raise InvalidInputError(
        f"reflection padding ({before!r}, {after!r}) needs a static axis size larger than both "
        f"pads, got size {size!r}")
  size, before, after = int(size), int(before), int(after)
  return ([(i, i + 1) for i in range(before, 0, -1)] + [(0, size)]
          + [(size - 2 - i, size - 1 - i) for i in range(after)])


def reflection_pad(x, layers, padding, name, dtype=None):
  """Reflection padding of an NHWC tensor built from stock layers (``Cropping2D`` +
  ``Concatenate``) of the namespace ``layers``: no custom layer, so a ``tf_keras`` model with it
  can be quantised by tensorflow-model-optimization (whose registry passes ``Cropping2D`` through
  and quantises ``Concatenate``), and it converts to TFLite ``STRIDED_SLICE`` + ``CONCATENATION``.

  Same values as `ReflectionPadding2D` (pure copies: bit-identical). Rows are padded first, then
  columns of the row-padded tensor (`reflection_slices`).

  Args:
    x: symbolic tensor ``(B, H, W, C)`` with static H and W.
    layers: ``keras.layers`` or ``tf_keras.layers``.
    padding: int, ``(pad_h, pad_w)`` or ``((top, bottom), (left, right))``, each pad smaller
      than the input size along its axis.
    name: layer-name prefix; the output's layer is named ``name`` (a ``Concatenate``, or the
      input's own layer when all pads are 0).
    dtype: dtype policy of the created layers (``None``: the global policy).
  Returns:
    Tensor ``(B, H + top + bottom, W + left + right, C)``, same dtype.
  Raises:
    InvalidInputError: bad padding, unknown H / W or a pad that does not fit.
  """
  pads = _normalize_padding(padding)
  for axis, (before, after) in ((1, pads[0]), (2, pads[1])):
    if before == 0 and after == 0:
      continue
    size = x.shape[axis]
    ranges = reflection_slices(size, before, after)
    kind = "rows" if axis == 1 else "cols"
    parts = []
    for k, (start, stop) in enumerate(ranges):
      if (start, stop) == (0, size):
        parts.append(x)
        continue
      crop = ((start, size - stop), (0, 0)) if axis == 1 else ((0, 0), (start, size - stop))
      parts.append(layers.Cropping2D(crop, name=f"{name}_{kind}{k}", dtype=dtype)(x))
    last = axis == 2 or pads[1] == (0, 0)
    x = layers.Concatenate(axis=axis, name=name if last else f"{name}_rows", dtype=dtype)(parts)
  return x
