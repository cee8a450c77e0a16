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

A third replacement is for speed alone: a 1x1 ``DepthwiseConv2D`` that only multiplies by one
scalar (the same kernel value for every channel, no bias or a zero bias, no activation), e.g.
FastDepth's sigmoid head ``x max_depth`` (`tfdepth.models.heads`, a frozen depthwise conv so that
tensorflow-model-optimization can quantise it), becomes `ScalarMultiply` (TFLite ``MUL`` with a
scalar constant: bit-identical, x * k). XNNPACK's depthwise kernels tile channels (16-32 per
vector), so on the one-channel 224x224 depth map the depthwise conv wastes most of each vector;
its ``MUL`` is a plain streaming loop. Measured on the export benchmark's trained FastDepth 224x224
(1 thread pinned to one core, CPU time, median of 300 interleaved runs): int8 (float tail)
8.06 -> 7.81 ms, float32 18.05 -> 17.92 ms.

`tflite_friendly(model)` clones a functional model with those layers replaced by
`SliceReflectionPadding2D` / `DepthToSpaceUpsampling2D` / `ScalarMultiply` (bit-identical
outputs, same weights: every other layer is reused, not copied). `export.tflite` applies it
before converting.

`split_concat_convs(model)` (opt-in: ``export.tflite.convert_to_tflite(...,
split_concat_convs=True)``; see `export.tflite` for what the TF 2.21 quantiser then leaves in
float) splits every
convolution over a channel concatenation into one convolution per concatenated input plus an
``ADD``: the same values up to float summation order, so that each input keeps its own int8
scale (an int8 ``CONCATENATION`` has one scale for all its inputs). See its docstring for the
Monodepth2 numbers.
"""

import numbers

import keras
import numpy as np
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


@keras.saving.register_keras_serializable(package="tfdepth")
class ScalarMultiply(keras.layers.Layer):
  """``inputs * scale`` for a Python float ``scale``: TFLite ``MUL`` by a scalar constant.

  The replacement of a scalar 1x1 ``DepthwiseConv2D`` (`scalar_depthwise_scale`): the same
  product x * k per element (a zero bias adds nothing), lowered to an op that XNNPACK runs as a
  streaming loop on any number of channels.
  """

  def __init__(self, scale=1.0, **kwargs):
    super().__init__(**kwargs)
    if isinstance(scale, bool) or not isinstance(scale, numbers.Real):
      raise InvalidInputError(f"scale must be a real number, got {scale!r}")
    self.scale = float(scale)

  def call(self, inputs):
    return inputs * tf.constant(self.scale, inputs.dtype)

  def compute_output_shape(self, input_shape):
    return input_shape

  def get_config(self):
    config = super().get_config()
    config["scale"] = self.scale
    return config


@keras.saving.register_keras_serializable(package="tfdepth")
class ShiftedELU(keras.layers.Layer):
  """``elu(x, alpha) + alpha``: an ELU whose floor is 0 instead of -alpha (`shift_elu_outputs`).

  Lowered to TFLite ``ELU`` (``alpha`` = 1) + ``ADD`` of a scalar constant.

  Args:
    alpha: positive float, the ELU's alpha (Clevert et al. 2016; Keras' ``"elu"`` activation: 1).
  """

  def __init__(self, alpha=1.0, **kwargs):
    super().__init__(**kwargs)
    if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real) or not alpha > 0:
      raise InvalidInputError(f"alpha must be a positive real number, got {alpha!r}")
    self.alpha = float(alpha)

  def call(self, inputs):
    alpha = tf.constant(self.alpha, inputs.dtype)
    return keras.ops.elu(inputs, self.alpha) + alpha

  def compute_output_shape(self, input_shape):
    return input_shape

  def get_config(self):
    config = super().get_config()
    config["alpha"] = self.alpha
    return config


def scalar_depthwise_scale(layer):
  """``k`` when ``layer`` is a built 1x1 ``DepthwiseConv2D`` computing ``x * k`` (one kernel value
  for all channels, depth multiplier 1, stride / dilation 1, no bias or an all-zero bias, linear
  activation), else None. Its weights are read now: the rewrite is for conversion."""
  if (type(layer) is not keras.layers.DepthwiseConv2D  # pylint: disable=unidiomatic-typecheck
      or not layer.built or tuple(layer.kernel_size) != (1, 1) or layer.depth_multiplier != 1
      or tuple(layer.strides) != (1, 1) or tuple(layer.dilation_rate) != (1, 1)
      or layer.activation not in (None, keras.activations.linear)):
    return None
  kernel = keras.ops.convert_to_numpy(layer.kernel)
  if kernel.size == 0 or not (kernel == kernel.flat[0]).all():
    return None
  if layer.use_bias and keras.ops.convert_to_numpy(layer.bias).any():
    return None
  return float(kernel.flat[0])


def _replacement(layer):
  """The TFLite-friendly twin of ``layer``, or None if it is kept."""
  scale = scalar_depthwise_scale(layer)
  if scale is not None:
    return ScalarMultiply(scale, name=f"{layer.name}_mul")
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
  """``model`` with ReflectionPadding2D / nearest UpSampling2D / scalar 1x1 depthwise convs
  replaced by exact equivalents.

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


# Layers that act on every channel alone (the same map per channel): padding a concatenation
# equals concatenating the padded inputs, so `split_concat_convs` looks through them.
_CHANNELWISE_PADS = (ReflectionPadding2D, keras.layers.ZeroPadding2D)


def _producer(tensor):
  """``(layer, node input tensors)`` of the node that computed a symbolic ``tensor``."""
  history = getattr(tensor, "_keras_history", None)
  if history is None:
    return None, []
  layer, node_index = history.operation, history.node_index
  return layer, list(layer._inbound_nodes[node_index].input_tensors)  # pylint: disable=protected-access


def _channel_concat_inputs(tensor):
  """``(pads, inputs)`` when ``tensor`` is a channel ``Concatenate`` of several inputs followed
  by channel-wise paddings (``pads``, input side first), else ``None``."""
  pads = []
  layer, inputs = _producer(tensor)
  while isinstance(layer, _CHANNELWISE_PADS) and len(inputs) == 1:
    pads.insert(0, layer)
    layer, inputs = _producer(inputs[0])
  if (isinstance(layer, keras.layers.Concatenate) and layer.axis in (-1, 3) and len(inputs) > 1
      and all(len(x.shape) == 4 for x in inputs)):
    return pads, inputs
  return None


def _splittable(layer):
  return (type(layer) is keras.layers.Conv2D  # pylint: disable=unidiomatic-typecheck
          and layer.groups == 1 and layer.data_format == "channels_last")


def _split_conv(conv, pads, inputs):
  """``conv(pads(concat(inputs)))`` as ``sum_i conv_i(pads(inputs_i))`` (+ bias, activation)."""
  kernel = keras.ops.convert_to_numpy(conv.kernel)
  bias = keras.ops.convert_to_numpy(conv.bias) if conv.use_bias else None
  config = conv.get_config()
  parts, start = [], 0
  for i, x in enumerate(inputs):
    channels = int(x.shape[-1])
    for pad in pads:
      x = pad(x)
    part = keras.layers.Conv2D.from_config({
        **config, "name": f"{conv.name}_split{i}", "activation": None,
        "use_bias": conv.use_bias and i == 0, "kernel_initializer": "zeros",
        "bias_initializer": "zeros"})
    y = part(x)
    part.set_weights([kernel[..., start:start + channels, :]]
                     + ([bias] if conv.use_bias and i == 0 else []))
    parts.append(y)
    start += channels
  y = keras.layers.Add(name=f"{conv.name}_split_sum")(parts)
  if conv.activation is not None and conv.activation is not keras.activations.linear:
    y = keras.layers.Activation(conv.activation, name=f"{conv.name}_split_act")(y)
  return y


def _model_nodes(model):
  """The nodes of a functional ``model``'s own graph (a layer shared with another model also
  has that model's nodes), nested functional models included."""
  for nodes in getattr(model, "_nodes_by_depth", {}).values():
    for node in nodes:
      if node.operation is not model and hasattr(node.operation, "_nodes_by_depth"):
        yield from _model_nodes(node.operation)
      yield node


def count_split_concat_convs(model):
  """Number of ``Conv2D`` calls of a functional ``model`` that `split_concat_convs` splits."""
  return sum(1 for node in _model_nodes(model)
             if _splittable(node.operation) and node.input_tensors
             and _channel_concat_inputs(node.input_tensors[0]) is not None)


def split_concat_convs(model):
  """``model`` with every convolution of a channel concatenation split per concatenated input.

  ``Conv2D(pad(concat([a, b])))`` becomes ``Conv2D_a(pad(a)) + Conv2D_b(pad(b))`` (the kernel
  split along its input channels, the bias and activation once, after the ``ADD``; ``pad`` any
  channel-wise padding, e.g. Monodepth2's reflection padding), the same function up to float
  summation order (~1e-7 relative), the same multiply-adds, one ``ADD`` more and one
  ``CONCATENATION`` less per split convolution.

  Why (full-integer TFLite): an int8 ``CONCATENATION`` has ONE scale for all its inputs and its
  output (the MLIR quantiser's same-scale constraint; XNNPACK's and LiteRT's int8 kernels copy
  bytes), so concatenating a wide-range tensor with a narrow one quantises the narrow one with the
  wide one's step, and the quantiser propagates that step back to the narrow tensor's producer.
  Monodepth2's decoder concatenates its ELU features (calibrated up to 1854 on the export
  benchmark's trained R18 at 192x640) with the encoder's skips (|x| < 19): the encoder's
  layer1 / layer2 outputs got int8 steps of 2.24 and 7.27 for values of standard deviation 1.1
  and 1.5 (per-tensor RMSE / std 0.50 and 0.89 in `tf.lite.experimental.QuantizationDebugger`,
  ~0.02 elsewhere), and those tensors also feed the encoder's next stage. Split, each input of
  the convolution keeps its own calibrated scale; the ``ADD`` requantises the partial outputs,
  which have one range (the convolution's output). Monodepth2 int8 AbsRel 0.2073 -> 0.1925
  (Keras 0.1793); see `export.tflite` for the encoder ops the TF 2.21 quantiser then leaves in
  float, which is why the conversion does not split by default.

  Args:
    model: a Keras 3 functional model (nested functional models are rewritten too).
  Returns:
    ``model`` itself when nothing is split (or it is not functional), else a clone with new
    split ``Conv2D`` / ``Add`` layers (weights copied from the model at call time); every other
    layer is the same object.
  """
  if not count_split_concat_convs(model):
    return model

  def call(layer, *args, **kwargs):
    if _splittable(layer) and args and not kwargs:
      found = _channel_concat_inputs(args[0])
      if found is not None:
        return _split_conv(layer, *found)
    return layer(*args, **kwargs)

  try:
    return keras.models.clone_model(model, clone_function=lambda layer: layer,
                                    call_function=call, recursive=True)
  except (ValueError, TypeError):  # subclassed model: convert as it is
    return model


# Layers that map a constant input to the same constant (each output value is a copy of an input
# value): an ELU output shifted by alpha stays shifted by alpha through them.
_VALUE_COPYING = (ReflectionPadding2D, DepthToSpaceUpsampling2D)


def _elu_alpha(layer):
  """The alpha of an ELU layer (``Activation("elu")`` or ``keras.layers.ELU``), else None."""
  if type(layer) is keras.layers.Activation and layer.activation is keras.activations.elu:  # pylint: disable=unidiomatic-typecheck
    return 1.0
  if type(layer) is keras.layers.ELU:  # pylint: disable=unidiomatic-typecheck
    return float(layer.alpha)
  return None


def _copies_values(layer):
  return isinstance(layer, _VALUE_COPYING) or (
      isinstance(layer, keras.layers.UpSampling2D) and layer.interpolation == NEAREST)


def _foldable_conv(layer):
  return (type(layer) is keras.layers.Conv2D  # pylint: disable=unidiomatic-typecheck
          and layer.padding == "valid" and layer.use_bias and layer.groups == 1
          and layer.data_format == "channels_last")


def shiftable_elus(model):
  """The ELUs of a functional ``model`` that `shift_elu_outputs` shifts, and the bias folds.

  An ELU (alpha a, called once in the model) qualifies when every path from its output reaches
  a ``Conv2D`` (valid padding, with bias, called once in the model) through value-copying layers
  only (reflection padding, nearest upsampling, channel concatenation), and none of those
  tensors is a model output.

  Returns:
    ``(elus, folds)``: ``elus`` ``{layer: alpha}``; ``folds`` ``{conv layer: [(start, stop,
    alpha)]}``, the input channels of each such convolution that carry a shifted ELU output.
  """
  nodes = list(_model_nodes(model))
  consumers = {}
  for node in nodes:
    for position, tensor in enumerate(node.input_tensors):
      consumers.setdefault(id(tensor), []).append((node, position))
  outputs = {id(t) for t in model.outputs}
  calls = {}
  for node in nodes:
    calls[id(node.operation)] = calls.get(id(node.operation), 0) + 1
  elus, folds = {}, {}
  for node in nodes:
    alpha = _elu_alpha(node.operation)
    if alpha is None or calls[id(node.operation)] != 1:
      continue
    out = node.output_tensors[0]
    todo, found, ok = [(out, 0, int(out.shape[-1]))], [], True
    while todo and ok:
      tensor, start, stop = todo.pop()
      if id(tensor) in outputs or id(tensor) not in consumers:
        ok = False
        break
      for consumer, position in consumers[id(tensor)]:
        layer = consumer.operation
        if _copies_values(layer):
          todo.append((consumer.output_tensors[0], start, stop))
        elif isinstance(layer, keras.layers.Concatenate) and layer.axis in (-1, 3):
          offset = sum(int(x.shape[-1]) for x in consumer.input_tensors[:position])
          todo.append((consumer.output_tensors[0], offset + start, offset + stop))
        elif _foldable_conv(layer) and calls[id(layer)] == 1:
          found.append((layer, start, stop, alpha))
        else:
          ok = False
          break
    if ok:
      elus[node.operation] = alpha
      for layer, start, stop, a in found:
        folds.setdefault(layer, []).append((start, stop, a))
  return elus, folds


def shift_elu_outputs(model):
  """``model`` with each shiftable ELU's output moved up by alpha, folded into the next convs.

  ``conv(copy(elu(x)))`` becomes ``conv'(copy(elu(x) + alpha))`` with ``conv'`` the same kernel
  and ``bias' = bias - alpha * sum(kernel[:, :, elu channels, :])`` over its taps and the input
  channels that carry the ELU (`shiftable_elus`): the same function (up to float rounding:
  1.6e-5 relative on the 64x64 test Monodepth2, whose decoder activations reach ~10^3), because reflection padding, nearest upsampling and concatenation copy values
  and a valid convolution sees the shift at every tap.

  Why (full-integer TFLite): an int8 tensor represents 0 exactly but not -1. Calibrated over
  [-1, M], an ELU output has step (M + 1) / 255; its saturated values (-1, the most common value
  of a decoder ELU: 17-67 % of the inputs below -8 on the export benchmark's Monodepth2-R18) round
  to one grid point up to half a step away, and for M > 254 (step > 1; up to 1854 there) to 0:
  every saturated input is +1 off, the same way, and the next convolution sums those errors
  into a bias. Shifted, the floor is 0: exact. Measured on that Monodepth2 (192x640, 64
  synthetic street test images, uint8 input; Keras AbsRel 0.1793, delta1 0.8317): int8 AbsRel
  0.1826 -> 0.1717, delta1 0.6863 -> 0.7881, pixels within 1.25x of the float model 0.54 ->
  0.86, depth scale vs float 0.814 -> 0.896; latency unchanged (CPU time, 1 thread: 48.9 /
  46.1 ms). `export.tflite` applies it to ``tflite_int8`` conversions; `export.float_tail`
  keeps the shift's ``ADD`` in float next to the float ``ELU``.

  Args:
    model: a Keras 3 functional model.
  Returns:
    ``model`` itself when no ELU qualifies (or it is not functional), else a clone in which the
    ELUs are `ShiftedELU` layers and the folded convolutions new ``Conv2D`` layers (weights
    copied from the model at call time, biases folded); every other layer is the same object.
  """
  try:
    elus, folds = shiftable_elus(model)
  except (AttributeError, TypeError):  # subclassed model: no graph to analyse
    return model
  if not elus:
    return model

  def call(layer, *args, **kwargs):
    if layer in elus:
      return ShiftedELU(elus[layer], name=f"{layer.name}_shifted")(*args, **kwargs)
    if layer in folds:
      kernel, bias = (keras.ops.convert_to_numpy(w) for w in (layer.kernel, layer.bias))
      bias = bias.astype(np.float64)
      for start, stop, alpha in folds[layer]:
        bias -= alpha * kernel[:, :, start:stop, :].astype(np.float64).sum(axis=(0, 1, 2))
      conv = keras.layers.Conv2D.from_config({**layer.get_config(),
                                               "name": f"{layer.name}_unshift"})
      y = conv(*args, **kwargs)
      conv.set_weights([kernel, bias.astype(kernel.dtype)])
      return y
    return layer(*args, **kwargs)

  try:
    return keras.models.clone_model(model, clone_function=lambda layer: layer,
                                    call_function=call, recursive=True)
  except (ValueError, TypeError):  # subclassed model: convert as it is
    return model
