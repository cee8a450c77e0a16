"""Monodepth2 depth and pose networks (Godard, Mac Aodha, Firman, Brostow 2019, "Digging Into
Self-Supervised Monocular Depth Estimation", ICCV; reference code github.com/nianticlabs/
monodepth2, networks/depth_decoder.py, pose_decoder.py, resnet_encoder.py).

Both take float32 RGB in [0, 1] and normalise inside with ``(x - 0.45) / 0.225`` (as the
reference ResnetEncoder does). Random initialisation (the paper starts from ImageNet weights;
nothing is downloaded here).
"""

import math
import numbers

import keras

from tfdepth.errors import InvalidInputError
from tfdepth.geometry import MONODEPTH2_MAX_DEPTH
from tfdepth.geometry import MONODEPTH2_MIN_DEPTH
from tfdepth.geometry import disp_to_depth
from tfdepth.layers import ReflectionPadding2D
from tfdepth.layers import reflection_pad
from tfdepth.models import _common
from tfdepth.models import encoders

# Decoder channels at scales 0..4 (num_ch_dec in DepthDecoder, Monodepth2).
DEPTH_DECODER_CHANNELS = (16, 32, 64, 128, 256)
# Output scales the decoder can produce: scale s has resolution (H / 2^s, W / 2^s); the
# reference trains with scales range(4).
MAX_DISP_SCALE = 4
# Kernel size and reflection padding of Monodepth2's Conv3x3 (networks/layers.py).
DECODER_KERNEL_SIZE = 3
DECODER_REFLECT_PAD = 1
# PoseDecoder (Monodepth2 networks/pose_decoder.py): squeeze to 256 channels, two 3x3 convs of
# 256, a 1x1 conv to 6 values per predicted transform (axis-angle 3 + translation 3).
POSE_DECODER_CHANNELS = 256
POSE_PARAMS_PER_FRAME = 6
# The pose decoder multiplies its spatially averaged output by 0.01 (PoseDecoder.forward).
POSE_OUTPUT_SCALE = 0.01
AXIS_ANGLE_SIZE = 3
# Reflection padding by 1 needs >= 2 pixels at stride 32, so the depth net needs H, W >= 64.
MIN_DEPTH_NET_SIZE = 64
# Initialisation of the decoder convs. Monodepth2's DepthDecoder / PoseDecoder never re-initialise
# their nn.Conv2d layers, so they have PyTorch's default `Conv2d.reset_parameters`: kernel
# kaiming_uniform_(a=sqrt(5)) = U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (variance 1/(3·fan_in)) and bias
# U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in = k·k·C_in. Keras' default glorot_uniform has
# variance 2/(fan_in + fan_out): 3x PyTorch's for square convs and 5.6x for the 16 -> 1 sigmoid
# heads. From random init that made the sigmoid disparity saturate (to 1 or 0, i.e. a constant
# depth of min_depth or max_depth) within ~20 Adam steps on the synthetic street, after which
# the sigmoid passes no gradient (benchmarks/monodepth2_learning.py, issue 5).
# VarianceScaling(scale=1/3, fan_in, uniform) has limit sqrt(3·scale/fan_in) = 1/sqrt(fan_in).
TORCH_CONV_KERNEL_INIT_SCALE = 1.0 / 3.0
# What the decoder heads predict (`build_monodepth2_depth_net(output=...)`):
#   "disparity": Monodepth2's sigmoid disparity `disp_s` in (0, 1), converted to metres with
#     `disp_to_depth` (0.1..100 m); at initialisation (sigmoid ~ 0.5) that is ~0.2 m everywhere.
#   "depth": depth in metres `depth_s` = softplus(conv), unbounded (Li et al. 2021 released
#     `depth_prediction_nets.depth_prediction_resnet18unet`: "a softplus activation to generate
#     positive depths ... the network predicts depth rather than disparity"); ~0.7 m at init.
HEAD_OUTPUTS = {"disparity": ("disp", "sigmoid"), "depth": ("depth", "softplus")}
DISPARITY_OUTPUT = "disparity"
DEPTH_OUTPUT = "depth"


def _check_scales(scales):
  try:
    values = tuple(scales)
  except TypeError:
    values = None
  if (not values or len(set(values)) != len(values) or not all(
      isinstance(s, numbers.Integral) and not isinstance(s, bool) and 0 <= s <= MAX_DISP_SCALE
      for s in values)):
    raise InvalidInputError(
        f"scales must be a non-empty sequence of distinct ints in [0, {MAX_DISP_SCALE}], "
        f"got {scales!r}")
  return tuple(int(s) for s in values)


def _initializers(layers):
  """The ``initializers`` module of the Keras library that ``layers`` belongs to."""
  if layers is not None and layers.__name__.split(".")[0] == "tf_keras":
    import tf_keras  # pylint: disable=g-import-not-at-top
    return tf_keras.initializers
  return keras.initializers


def _is_keras3(layers):
  return layers is None or layers.__name__.split(".")[0] == "keras"


def torch_conv_initializers(kernel_size, in_channels, layers=None):
  """`(kernel_initializer, bias_initializer)` of PyTorch's default `nn.Conv2d` init.

  Both are U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with fan_in = kernel_size² · in_channels (see
  `TORCH_CONV_KERNEL_INIT_SCALE`); stock Keras initializers, so models stay serialisable.

  Args:
    kernel_size: int, square kernel side.
    in_channels: int, input channels of the conv.
    layers: ``None`` / ``keras.layers`` (Keras 3 initializers) or ``tf_keras.layers``
      (tf_keras initializers, for the tf_keras twin of a model).
  Raises:
    InvalidInputError: non-positive sizes.
  """
  for arg_name, value in (("kernel_size", kernel_size), ("in_channels", in_channels)):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
      raise InvalidInputError(f"{arg_name} expected a positive int, received {value!r}")
  bound = 1.0 / math.sqrt(kernel_size * kernel_size * in_channels)
  initializers = _initializers(layers)
  return (initializers.VarianceScaling(TORCH_CONV_KERNEL_INIT_SCALE, "fan_in", "uniform"),
          initializers.RandomUniform(-bound, bound))


def torch_conv2d(x, filters, kernel_size, name, layers=None, **kwargs):
  """`layers.Conv2D(filters, kernel_size, name=name, **kwargs)(x)` with PyTorch's default
  initialisation (`torch_conv_initializers`); the conv Monodepth2's decoders are made of.
  ``layers``: ``None`` (``keras.layers``) or ``tf_keras.layers``."""
  layers, _, _ = _common.model_api(layers)
  kernel_init, bias_init = torch_conv_initializers(kernel_size, int(x.shape[-1]), layers)
  return layers.Conv2D(filters, kernel_size, kernel_initializer=kernel_init,
                       bias_initializer=bias_init, name=name, **kwargs)(x)


def _conv3x3(x, filters, name, activation, layers, dtype=None):
  """Monodepth2 Conv3x3 (reflection pad 1, 3x3 conv with bias) + ELU / sigmoid.

  Keras 3: the `ReflectionPadding2D` layer (saved models and tests rely on it). tf_keras twin:
  the same values from stock ``Cropping2D`` + ``Concatenate`` (`tfdepth.layers.reflection_pad`),
  which carry no weights, so both models have the same weight list.

  ``dtype``: dtype policy of all three layers (``None``: the global policy). ``"float32"`` makes
  the whole head compute in float32 under mixed precision (the conv casts its bfloat16 input
  up, exactly), not only its activation.
  """
  if _is_keras3(layers):
    x = ReflectionPadding2D(DECODER_REFLECT_PAD, name=f"{name}_pad", dtype=dtype)(x)
  else:
    x = reflection_pad(x, layers, DECODER_REFLECT_PAD, f"{name}_pad", dtype=dtype)
  x = torch_conv2d(x, filters, DECODER_KERNEL_SIZE, f"{name}_conv", layers, padding="valid",
                   dtype=dtype)
  return layers.Activation(activation, name=f"{name}_{activation}", dtype=dtype)(x)


def _check_output(output):
  if output not in HEAD_OUTPUTS:
    raise InvalidInputError(f"output expected one of {sorted(HEAD_OUTPUTS)}, received {output!r}")
  return HEAD_OUTPUTS[output]


def depth_decoder(features, scales=(0, 1, 2, 3), name="depth_decoder", layers=None,
                  output=DISPARITY_OUTPUT):
  """Monodepth2 DepthDecoder over a ResNet pyramid.

  Args:
    features: dict ``{"s2", "s4", "s8", "s16", "s32"}`` of encoder features.
    scales: which maps to output.
    name: layer name prefix.
    layers: ``None`` / ``keras.layers`` or ``tf_keras.layers`` (the namespace the features were
      built with); see `build_monodepth2_depth_net`.
    output: ``"disparity"`` (Monodepth2) or ``"depth"`` (Li et al. 2021), see `HEAD_OUTPUTS`.
  Returns:
    ``{"disp_s": (B, H / 2^s, W / 2^s, 1)}`` sigmoid outputs in (0, 1) (Monodepth2's disparity
    parameterisation: convert with disp_to_depth, min 0.1, max 100), or for ``output="depth"``
    ``{"depth_s": ...}`` softplus depth in metres (> 0).
  """
  layers, _, _ = _common.model_api(layers)
  key, activation = _check_output(output)
  enc = [features[k] for k in ("s2", "s4", "s8", "s16", "s32")]
  x = enc[-1]
  outputs = {}
  for i in range(MAX_DISP_SCALE, -1, -1):
    x = _conv3x3(x, DEPTH_DECODER_CHANNELS[i], f"{name}_upconv{i}_0", "elu", layers)
    x = layers.UpSampling2D(2, interpolation="nearest", name=f"{name}_up{i}")(x)
    if i > 0:
      x = layers.Concatenate(name=f"{name}_skip{i}")([x, enc[i - 1]])
    x = _conv3x3(x, DEPTH_DECODER_CHANNELS[i], f"{name}_upconv{i}_1", "elu", layers)
    if i in scales:
      # Softplus depth head (pad, conv and activation) in float32 under mixed precision:
      # bfloat16 keeps 8 bits of mantissa, i.e. steps of 0.125 m at 30 m.
      outputs[f"{key}_{i}"] = _conv3x3(x, 1, f"{name}_dispconv{i}", activation, layers,
                                       "float32" if output == DEPTH_OUTPUT else None)
  return {f"{key}_{s}": outputs[f"{key}_{s}"] for s in sorted(scales)}


def build_monodepth2_depth_net(input_shape=(192, 640, 3), num_layers=18, scales=(0, 1, 2, 3),
                               name="monodepth2_depth", layers=None, output=DISPARITY_OUTPUT):
  """Monodepth2 depth network: ResNet encoder + depth decoder (Godard et al. 2019, Table 6).

  Decoder: five stages of [reflection-padded 3x3 conv + ELU, nearest x2 upsampling,
  concatenation with the encoder feature at that stride (none at full resolution), 3x3 conv +
  ELU], sigmoid 3x3 disparity heads at the requested scales.

  Args:
    input_shape: ``(H, W, 3)``, H and W multiples of 32 and >= 64 (paper: 192x640 on KITTI).
    num_layers: ResNet depth, 18 (paper), 34 or 50.
    scales: output scales, subset of 0..4 (paper: 0, 1, 2, 3).
    name: model name and layer-name prefix.
    layers: ``None`` (``keras.layers``, the default Keras 3 model) or ``tf_keras.layers``: the
      tf_keras twin for quantisation-aware training (tensorflow-model-optimization, `export.qat`),
      the same graph from stock layers only (reflection padding as ``Cropping2D`` +
      ``Concatenate``, `tfdepth.layers.reflection_pad`) with the same weight list, so
      ``twin.set_weights(model.get_weights())`` gives the same outputs.
    output: ``"disparity"`` (Monodepth2's sigmoid heads) or ``"depth"`` (softplus heads in
      metres, the head of Li et al. 2021's released depth net; `HEAD_OUTPUTS`). The layers and
      weights are the same either way.
  Returns:
    Model (``keras.Model``, or ``tf_keras.Model`` for ``tf_keras.layers``): float32 RGB
    ``(B, H, W, 3)`` in [0, 1] -> ``{"disp_s": (B, H/2^s, W/2^s, 1)}`` float32 sigmoid outputs
    in (0, 1), or ``{"depth_s": ...}`` metres for ``output="depth"``.
  Raises:
    InvalidInputError: bad shape, ``num_layers``, ``scales``, ``layers`` or ``output``.
  """
  layers, input_fn, model_cls = _common.model_api(layers)
  _common.check_name(name)
  shape = _common.check_input_shape(input_shape)
  if min(shape[:2]) < MIN_DEPTH_NET_SIZE:
    raise InvalidInputError(
        f"input_shape H and W must be >= {MIN_DEPTH_NET_SIZE} (reflection padding of the 1/32 "
        f"feature map), got {input_shape!r}")
  encoders.check_resnet_args(num_layers)
  scales = _check_scales(scales)
  _check_output(output)
  inputs = input_fn(shape=shape, name=f"{name}_image")
  x = encoders.normalize_image(
      inputs, layers, 1.0 / encoders.MONODEPTH2_IMAGE_STD,
      -encoders.MONODEPTH2_IMAGE_MEAN / encoders.MONODEPTH2_IMAGE_STD, f"{name}_normalize")
  feats = encoders.resnet_features(x, layers, num_layers, 32, f"{name}_encoder")
  return model_cls(inputs, depth_decoder(feats, scales, f"{name}_decoder", layers, output),
                   name=name)


def build_monodepth2_pose_net(input_shape=(192, 640, 3), num_layers=18, num_input_frames=2,
                              name="monodepth2_pose"):
  """Monodepth2 separate pose network: multi-image ResNet encoder + pose decoder.

  The N frames are concatenated along channels in temporal order (as Monodepth2 does with
  ``torch.cat(pose_inputs, 1)``) and enter one ResNet whose first conv takes 3N channels. The
  decoder: 1x1 squeeze conv (256) + ReLU, 3x3 conv (256) + ReLU, 3x3 conv (256) + ReLU, 1x1 conv
  to 6(N-1), spatial mean, x 0.01.

  Args:
    input_shape: ``(H, W, 3)`` of ONE frame; H, W multiples of 32.
    num_layers: ResNet depth, 18 (paper), 34 or 50.
    num_input_frames: N >= 2 frames stacked on the channel axis.
    name: model name and layer-name prefix.
  Returns:
    Model: float32 ``(B, H, W, 3N)`` in [0, 1] -> ``{"axis_angle", "translation"}`` float32,
    each ``(B, 3)`` for N = 2 and ``(B, N - 1, 3)`` for N > 2. Axis-angle in radians,
    translation in the (scale-ambiguous) units of the depth network. The reference inverts the
    transform when the source frame precedes the target; that is the caller's job.
  Raises:
    InvalidInputError: bad shape, ``num_layers`` or ``num_input_frames``.
  """
  _common.check_name(name)
  h, w, _ = _common.check_input_shape(input_shape)
  encoders.check_resnet_args(num_layers)
  if (isinstance(num_input_frames, bool) or not isinstance(num_input_frames, numbers.Integral)
      or num_input_frames < 2):
    raise InvalidInputError(f"num_input_frames must be an int >= 2, got {num_input_frames!r}")
  n = int(num_input_frames)
  inputs = keras.Input(shape=(h, w, 3 * n), name=f"{name}_frames")
  x = encoders.normalize_image(
      inputs, keras.layers, 1.0 / encoders.MONODEPTH2_IMAGE_STD,
      -encoders.MONODEPTH2_IMAGE_MEAN / encoders.MONODEPTH2_IMAGE_STD, f"{name}_normalize")
  x = encoders.resnet_features(x, keras.layers, num_layers, 32, f"{name}_encoder")["s32"]
  layers = keras.layers
  x = torch_conv2d(x, POSE_DECODER_CHANNELS, 1, f"{name}_squeeze", activation="relu")
  x = torch_conv2d(x, POSE_DECODER_CHANNELS, 3, f"{name}_pose0", padding="same",
                   activation="relu")
  x = torch_conv2d(x, POSE_DECODER_CHANNELS, 3, f"{name}_pose1", padding="same",
                   activation="relu")
  x = torch_conv2d(x, POSE_PARAMS_PER_FRAME * (n - 1), 1, f"{name}_pose2")
  x = layers.GlobalAveragePooling2D(name=f"{name}_mean")(x)
  x = layers.Rescaling(POSE_OUTPUT_SCALE, name=f"{name}_scale")(x)
  # (B, 6(N-1)) -> (B, N-1, 6) -> split the last axis into 3 + 3 with stock layers (no Lambda).
  x = layers.Reshape((n - 1, POSE_PARAMS_PER_FRAME), name=f"{name}_reshape")(x)
  x = layers.Permute((2, 1), name=f"{name}_to_params_first")(x)  # (B, 6, N-1)
  rest = POSE_PARAMS_PER_FRAME - AXIS_ANGLE_SIZE
  outputs = {}
  for key, crop in (("axis_angle", (0, rest)), ("translation", (AXIS_ANGLE_SIZE, 0))):
    y = layers.Cropping1D(crop, name=f"{name}_{key}_crop")(x)  # (B, 3, N-1)
    y = layers.Permute((2, 1), name=f"{name}_{key}_frames_first")(y)  # (B, N-1, 3)
    if n == 2:
      y = layers.Reshape((3,), name=f"{name}_{key}")(y)
    outputs[key] = y
  return keras.Model(inputs, outputs, name=name)


@keras.saving.register_keras_serializable(package="tfdepth")
def sigmoid_disp_to_depth(sigmoid_disp, min_depth=MONODEPTH2_MIN_DEPTH,
                          max_depth=MONODEPTH2_MAX_DEPTH):
  """Depth (m) of a sigmoid disparity: `tfdepth.geometry.disp_to_depth(d, min, max)[1]`.

  A module-level function (not a ``lambda``) so that the ``Lambda`` layer of
  `build_monodepth2_depth_model` is serialised by reference, in Keras 3 and in tf_keras
  (tfmot's ``quantize_apply`` clones layers through their configs), and registered with Keras 3
  (``"tfdepth>sigmoid_disp_to_depth"``) so that a saved ``.keras`` model reloads, in safe mode
  too. TF ops only.
  """
  return disp_to_depth(sigmoid_disp, min_depth, max_depth)[1]


# Model-name suffix of `build_monodepth2_depth_model` (its layers keep the depth net's names).
INFERENCE_SUFFIX = "_inference"


def build_monodepth2_depth_model(input_shape=(192, 640, 3), num_layers=18,
                                 min_depth=MONODEPTH2_MIN_DEPTH, max_depth=MONODEPTH2_MAX_DEPTH,
                                 name="monodepth2_depth", layers=None, output=DISPARITY_OUTPUT):
  """Inference / export model: the scale-0 depth net + Monodepth2's ``disp_to_depth``.

  The depth net of `build_monodepth2_depth_net` with ``scales=(0,)`` (the coarser heads are only
  used by the training loss) and a ``Lambda`` computing depth in metres from ``disp_0``
  (``1 / (1/max + (1/min - 1/max)·sigmoid)``, Godard et al. 2019), which converts to TFLite
  ``MUL`` / ``ADD`` / ``DIV``. Layer names are those of the training net with the same ``name``,
  so a trained net's weights copy over by name (`copy_weights_by_name`). With
  ``layers=tf_keras.layers`` it builds the tf_keras twin used by QAT (`export.qat`).

  Args:
    input_shape: ``(H, W, 3)``, multiples of 32, >= 64.
    num_layers: ResNet depth (18 = Monodepth2-R18).
    min_depth, max_depth: metres (Monodepth2: 0.1 and 100).
    name: layer-name prefix, that of the trained depth net (``"segdepth"`` for the
      segmentation-guided net, whose depth branch has the same layers).
    layers: ``None`` (Keras 3) or ``tf_keras.layers``.
    output: the training net's head (`HEAD_OUTPUTS`): for ``"depth"`` (softplus metres, as the
      depth net of `trainers.dynamic`) the head is the output itself and ``min_depth`` /
      ``max_depth`` are unused.
  Returns:
    Model float32 ``(B, H, W, 3)`` in [0, 1] -> ``{"depth": (B, H, W, 1)}`` metres in
    ``[min_depth, max_depth]`` (> 0 for ``output="depth"``).
  Raises:
    InvalidInputError: bad shape, ``num_layers``, ``layers`` or ``output``, or a depth range
      that is not ``0 < min_depth < max_depth`` (finite), checked for either ``output``.
  """
  layers_ns, _, model_cls = _common.model_api(layers)
  min_depth, max_depth = _common.check_depth_range(min_depth, max_depth)
  net = build_monodepth2_depth_net(input_shape, num_layers, scales=(0,), name=name,
                                   layers=layers, output=output)
  # ``net.input`` (one tensor, not the list ``net.inputs``): the model's input structure is then
  # a single tensor, as callers pass it (a list makes Keras warn on every call).
  if output == DEPTH_OUTPUT:
    return model_cls(net.input, {"depth": net.output["depth_0"]},
                     name=f"{name}{INFERENCE_SUFFIX}")
  depth = layers_ns.Lambda(sigmoid_disp_to_depth, name=f"{name}_to_depth",
                           arguments={"min_depth": min_depth,
                                      "max_depth": max_depth})(net.output["disp_0"])
  return model_cls(net.input, {"depth": depth}, name=f"{name}{INFERENCE_SUFFIX}")


def copy_weights_by_name(source, target):
  """Copies the weights of every layer of ``target`` that has weights from ``source``'s layer of
  the same name (e.g. a trained 4-scale depth net into `build_monodepth2_depth_model`).

  Raises:
    InvalidInputError: a layer of ``target`` with weights is missing from ``source`` or has
      other shapes.
  """
  for layer in target.layers:
    weights = layer.get_weights()
    if not weights:
      continue
    try:
      src = source.get_layer(layer.name).get_weights()
    except ValueError:
      raise InvalidInputError(f"layer {layer.name!r} of {target.name!r} has no counterpart in "
                              f"{source.name!r}") from None
    if [w.shape for w in src] != [w.shape for w in weights]:
      raise InvalidInputError(
          f"layer {layer.name!r}: {source.name!r} has weight shapes {[w.shape for w in src]}, "
          f"{target.name!r} expects {[w.shape for w in weights]}")
    layer.set_weights(src)


__all__ = [
    "DEPTH_OUTPUT", "DISPARITY_OUTPUT", "HEAD_OUTPUTS", "TORCH_CONV_KERNEL_INIT_SCALE",
    "build_monodepth2_depth_model", "build_monodepth2_depth_net",
    "build_monodepth2_pose_net", "copy_weights_by_name", "sigmoid_disp_to_depth",
    "depth_decoder", "torch_conv2d", "torch_conv_initializers",
]
