"""Conversion-time rewrites: same values, ops that TFLite's int8 / XNNPACK kernels run fast.

Two layers of the model zoo lower to TFLite ops that XNNPACK (the default CPU delegate of
LiteRT) does not take, so the converted graph falls apart into many delegate partitions with slow
reference kernels in between, for float32 and most of all for int8:

* ``tfdepth.layers.ReflectionPadding2D`` (Monodepth2's Conv3x3, Godard et al. 2019) lowers to
  ``MIRROR_PAD``: no XNNPACK kernel; the reference int8 kernel was the largest single cost of the
  Monodepth2-R18 int8 model (measured CPU time per 192x640 image, 1 thread: 152 ms -> 58 ms once
  the padding is written as slices + concatenation; float32 274 ms -> 183 ms).
* ``keras.layers.UpSampling2D(interpolation="nearest")`` lowers (Keras 3, TF backend) to
  ``RESHAPE`` + ``TILE`` + ``RESHAPE``: ``TILE`` has no XNNPACK kernel. Nearest x s upsampling is
  exactly ``depth_to_space(concat([x] * s * s, channels), s)``: ``DEPTH_TO_SPACE`` output pixel
  (s*h + i, s*w + j, c) reads input channel (i*s + j)*C + c = copy (i*s + j) of x[h, w, c].

With both rewrites the float32 Monodepth2-R18 graph is one XNNPACK partition (22 before; int8: 2
instead of 23) and takes 185 ms (int8: 56 ms, 3.3x faster; before: 274 ms and 152 ms, 1.8x).

`tflite_friendly(model)` clones a functional model with those layers replaced by
`SliceReflectionPadding2D` / `DepthToSpaceUpsampling2D` (bit-identical outputs, same weights:
every other layer is reused, not copied). `export.tflite` applies it before converting.
"""

import numbers

import keras
import tensorflow as tf

from tfdepth.errors import InvalidInputError
from tfdepth.layers import ReflectionPadding2D
from tfdepth.layers import reflection_slices

NEAREST = "nearest"


@keras.saving.register_keras_serializable(package="tfdepth")
class SliceReflectionPadding2D(ReflectionPadding2D):
  """Reflection padding of NHWC tensors by slicing and concatenation (no ``MIRROR_PAD``).

  Same values, padding argument, output shape and config as `tfdepth.layers.ReflectionPadding2D`
  (mirror without repeating the edge pixel, PyTorch ``nn.ReflectionPad2d``), computed as the
  concatenation of one-row slices (`tfdepth.layers.reflection_slices`), rows first, then columns.
  Needs static H and W.
  """

  def __init__(self, padding=((1, 1), (1, 1)), **kwargs):
    super().__init__(padding, **kwargs)

  def build(self, input_shape):
    for axis, (before, after) in zip((1, 2), self.padding):
      size = input_shape[axis]
      if size is None or max(before, after) >= size:
        raise InvalidInputError(
            f"SliceReflectionPadding2D needs a static size larger than the pads {self.padding} "
            f"on axis {axis}, got input shape {tuple(input_shape)}")
    super().build(input_shape)

  @staticmethod
  def _pad_axis(x, axis, before, after):
    if before == 0 and after == 0:
      return x
    size = x.shape[axis]

    def rows(start, stop):  # one-row slices so that every slice has a positive stride
      if (start, stop) == (0, size):
        return x
      index = [slice(None)] * 4
      index[axis] = slice(start, stop)
      return x[tuple(index)]

    # The indices come from `tfdepth.layers.reflection_slices`, shared with the stock-layer
    # `tfdepth.layers.reflection_pad` of the tf_keras twins (export.qat).
    return tf.concat([rows(*r) for r in reflection_slices(size, before, after)], axis=axis)

  def call(self, inputs):
    (top, bottom), (left, right) = self.padding
    return self._pad_axis(self._pad_axis(inputs, 1, top, bottom), 2, left, right)


@keras.saving.register_keras_serializable(package="tfdepth")
class DepthToSpaceUpsampling2D(keras.layers.Layer):
  """Nearest-neighbour x ``size`` upsampling as ``depth_to_space(concat([x] * size^2), size)``.

  Same values as ``keras.layers.UpSampling2D(size, interpolation="nearest")`` (each input pixel
  becomes a size x size block), lowered to ``CONCATENATION`` + ``DEPTH_TO_SPACE``, which XNNPACK
  runs in float32 and int8 (the concatenated copies share one quantisation scale: no
  requantisation).

  Args:
    size: positive int, the upsampling factor of both H and W.
  Input ``(B, H, W, C)``; output ``(B, size*H, size*W, C)``.
  """

  def __init__(self, size=2, **kwargs):
    super().__init__(**kwargs)
    if isinstance(size, bool) or not isinstance(size, numbers.Integral) or size < 1:
      raise InvalidInputError(f"size must be a positive int, got {size!r}")
    self.size = int(size)

  def call(self, inputs):
    if self.size == 1:
      return inputs
    copies = tf.concat([inputs] * (self.size * self.size), axis=-1)
    return tf.nn.depth_to_space(copies, self.size)

  def compute_output_shape(self, input_shape):
    s = self.size
    return (input_shape[0], None if input_shape[1] is None else s * input_shape[1],
            None if input_shape[2] is None else s * input_shape[2], input_shape[3])

  def get_config(self):
    config = super().get_config()
    config["size"] = self.size
    return config


def _replacement(layer):
  """The TFLite-friendly twin of ``layer``, or None if it is kept."""
  # Not the subclass SliceReflectionPadding2D itself (already the friendly form).
  if isinstance(layer, ReflectionPadding2D) and not isinstance(layer, SliceReflectionPadding2D):
    return SliceReflectionPadding2D(layer.padding, name=f"{layer.name}_slices")
  if (isinstance(layer, keras.layers.UpSampling2D) and layer.interpolation == NEAREST
      and layer.data_format == "channels_last" and layer.size[0] == layer.size[1]):
    return DepthToSpaceUpsampling2D(int(layer.size[0]), name=f"{layer.name}_d2s")
  return None


def count_rewritable(model):
  """Number of layers of ``model`` (nested models included) that `tflite_friendly` replaces."""
  layers = model._flatten_layers()  # pylint: disable=protected-access
  return sum(_replacement(layer) is not None for layer in layers)


def tflite_friendly(model):
  """``model`` with ReflectionPadding2D / nearest UpSampling2D replaced by exact equivalents.

  Args:
    model: a Keras 3 model. Functional models (nested ones too) are cloned with the replaced
      layers; every other layer is the same object (shared weights, nothing copied).
  Returns:
    ``model`` itself when nothing is replaceable or it is not functional (a subclassed model
    cannot be re-wired), else the clone: same inputs, outputs and values.
  """
  if not count_rewritable(model):
    return model

  def clone_layer(layer):
    new = _replacement(layer)
    return layer if new is None else new

  try:
    return keras.models.clone_model(model, clone_function=clone_layer, recursive=True)
  except (ValueError, TypeError):  # subclassed model: no graph to re-wire, convert as it is
    return model
