"""Image encoders returning a feature pyramid keyed by stride.

Every builder returns a ``keras.Model`` mapping a float32 RGB image ``(B, H, W, 3)`` in [0, 1]
(the tfdepth image convention) to a dict ``{"s2": ..., "s4": ..., "s8": ..., "s16": ...,
"s32": ...}`` of NHWC float32 feature maps, ``"sN"`` having spatial size ``(H/N, W/N)``.
Normalisation happens inside the model. Weights are randomly initialised (nothing is downloaded).
The batch size is unknown (``None``); H and W must be multiples of 32.

The ``*_features`` functions apply the same layers to an existing tensor so that depth networks
(FastDepth, Monodepth2, ...) are flat functional graphs rather than nested models (flat graphs
are what tensorflow-model-optimization's quantisation-aware training supports).
"""

from tfdepth.errors import InvalidInputError
from tfdepth.models import _common

# --- MobileNet v1 (Howard et al. 2017, "MobileNets", Table 1) -------------------------------
# Stem: 3x3 conv, 32 filters, stride 2.
MOBILENET_V1_STEM_FILTERS = 32
# Depthwise-separable blocks as (pointwise filters, stride), Table 1 of Howard et al. 2017 and
# `conv_dw` list of FastDepth's imagenet/mobilenet.py (dwofk/fast-depth).
MOBILENET_V1_BLOCKS = (
    (64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
    (512, 1), (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1))
# Index (0-based, into MOBILENET_V1_BLOCKS) of the last block at each stride. FastDepth's skips
# take the outputs of mobilenet.model[1], [3], [5] (= blocks 0, 2, 4 here: strides 2, 4, 8).
MOBILENET_V1_PYRAMID = {"s2": 0, "s4": 2, "s8": 4, "s16": 10, "s32": 12}
# Keras' MobileNet preprocessing ("tf" mode of keras.applications.imagenet_utils): x*2 - 1 maps
# [0, 1] to [-1, 1].
MOBILENET_INPUT_SCALE = 2.0
MOBILENET_INPUT_OFFSET = -1.0
# Depthwise kernel size of MobileNet v1 (Howard et al. 2017, Fig. 3).
MOBILENET_KERNEL_SIZE = 3
# ReLU6 cap of MobileNet v2 (Sandler et al. 2018, Sec. 3.2 / Table 2).
RELU6_MAX = 6.0


def fixed_affine(x, layers, scale, offset, name):
  """``x * scale + offset`` (scalars) as a frozen 1x1 ``DepthwiseConv2D``, from stock layers.

  Used instead of ``layers.Rescaling`` because tensorflow-model-optimization's default 8-bit
  registry rejects ``Rescaling`` (and ``Normalization``), so a model containing one cannot go
  through ``quantize_model``. The layer has ``trainable=False`` and C kernel weights (+ C biases
  when ``offset`` is not None), initialised to the constants and saved with the model.
  """
  use_bias = offset is not None
  return layers.DepthwiseConv2D(
      1, use_bias=use_bias, trainable=False, name=name,
      depthwise_initializer=layers_initializer(layers, float(scale)),
      bias_initializer=layers_initializer(layers, float(offset) if use_bias else 0.0))(x)


def layers_initializer(layers, value):
  """A ``Constant(value)`` initializer of the library ``layers`` belongs to."""
  package = layers.__name__.split(".")[0]
  if package == "tf_keras":
    import tf_keras  # pylint: disable=g-import-not-at-top
    return tf_keras.initializers.Constant(value)
  import keras  # pylint: disable=g-import-not-at-top
  return keras.initializers.Constant(value)


def normalize_image(x, layers, scale, offset, name):
  """Maps a [0, 1] image to ``x * scale + offset`` inside the model (see :func:`fixed_affine`)."""
  return fixed_affine(x, layers, scale, offset, name)


def _bn(layers, name):
  return layers.BatchNormalization(
      momentum=_common.BN_MOMENTUM, epsilon=_common.BN_EPSILON, name=name)


def _pytorch_pad(x, layers, kernel_size, dilation, name):
  """Zero padding equal to PyTorch's symmetric ``dilation * (k - 1) // 2`` before a stride-2 op.

  For stride 2 on even sizes PyTorch's symmetric padding never reads the last bottom/right pad
  row, so it is reproduced exactly by ``((p, p - 1), (p, p - 1))`` + "valid"; Keras' "same"
  would pad bottom/right only and shift the sampling grid by one pixel.
  """
  p = dilation * (kernel_size - 1) // 2
  if p == 0:
    return x
  return layers.ZeroPadding2D(((p, p - 1), (p, p - 1)), name=f"{name}_pad")(x)


def conv_bn(x, layers, filters, kernel_size, strides=1, dilation=1, activation="relu",
            name="conv"):
  """Conv (no bias) -> BN -> optional ReLU/ReLU6, with PyTorch-style symmetric padding.

  Layer names: ``{name}_conv``, ``{name}_bn``, ``{name}_relu`` (and ``{name}_pad`` for stride 2).
  ``activation`` is ``"relu"``, ``"relu6"`` or ``None``.
  """
  if strides == 1:
    x = layers.Conv2D(filters, kernel_size, padding="same", dilation_rate=dilation,
                      use_bias=False, name=f"{name}_conv")(x)
  else:
    x = _pytorch_pad(x, layers, kernel_size, dilation, name)
    x = layers.Conv2D(filters, kernel_size, strides=strides, padding="valid",
                      dilation_rate=dilation, use_bias=False, name=f"{name}_conv")(x)
  x = _bn(layers, f"{name}_bn")(x)
  if activation == "relu":
    x = layers.ReLU(name=f"{name}_relu")(x)
  elif activation == "relu6":
    x = layers.ReLU(max_value=RELU6_MAX, name=f"{name}_relu")(x)
  return x


def conv_bn_relu(x, layers, filters, kernel_size, strides, name):
  """Conv (no bias) -> BN -> ReLU with PyTorch-style symmetric padding ``(k - 1) // 2``."""
  return conv_bn(x, layers, filters, kernel_size, strides, 1, "relu", name)


def depthwise_bn_relu(x, layers, kernel_size, strides, name, activation="relu"):
  """Depthwise conv (no bias) -> BN -> ReLU (or ReLU6), padding as in :func:`conv_bn`."""
  if strides == 1:
    x = layers.DepthwiseConv2D(kernel_size, padding="same", use_bias=False, name=f"{name}_dw")(x)
  else:
    x = _pytorch_pad(x, layers, kernel_size, 1, name)
    x = layers.DepthwiseConv2D(kernel_size, strides=strides, padding="valid", use_bias=False,
                               name=f"{name}_dw")(x)
  x = _bn(layers, f"{name}_dw_bn")(x)
  max_value = RELU6_MAX if activation == "relu6" else None
  return layers.ReLU(max_value=max_value, name=f"{name}_dw_relu")(x)


def separable_bn_relu(x, layers, filters, kernel_size, strides, name):
  """MobileNet v1 depthwise-separable block: depthwise-BN-ReLU then 1x1 conv-BN-ReLU."""
  x = depthwise_bn_relu(x, layers, kernel_size, strides, name)
  x = layers.Conv2D(filters, 1, use_bias=False, name=f"{name}_pw")(x)
  x = _bn(layers, f"{name}_pw_bn")(x)
  return layers.ReLU(name=f"{name}_pw_relu")(x)


def mobilenet_v1_features(x, layers, width_multiplier=1.0, name="mobilenet_v1"):
  """Applies the MobileNet v1 convolutional body (no pooling / classifier) to ``x``.

  Args:
    x: float32 tensor ``(B, H, W, C)`` (already normalised).
    layers: ``keras.layers`` or ``tf_keras.layers``.
    width_multiplier: MobileNet's alpha; every channel count is ``int(c * alpha)``.
    name: prefix of every layer name.
  Returns:
    Dict ``{"s2": (B,H/2,W/2,64a), "s4": (...,128a), "s8": (...,256a), "s16": (...,512a),
    "s32": (B,H/32,W/32,1024a)}``.
  """
  pyramid_at = {v: k for k, v in MOBILENET_V1_PYRAMID.items()}
  x = conv_bn_relu(x, layers, _common.scaled_channels(MOBILENET_V1_STEM_FILTERS, width_multiplier),
                   3, 2, f"{name}_conv0")
  out = {}
  for i, (filters, strides) in enumerate(MOBILENET_V1_BLOCKS):
    x = separable_bn_relu(x, layers, _common.scaled_channels(filters, width_multiplier),
                          MOBILENET_KERNEL_SIZE, strides, f"{name}_block{i + 1}")
    if i in pyramid_at:
      out[pyramid_at[i]] = x
  return out


def check_width_multiplier(width_multiplier, arg="width_multiplier"):
  return _common.check_positive(width_multiplier, arg)


def build_mobilenet_v1_encoder(input_shape=(224, 224, 3), width_multiplier=1.0, normalize=True,
                               layers=None, name="mobilenet_v1"):
  """MobileNet v1 encoder (Howard et al. 2017), the encoder of FastDepth (Wofk et al. 2019).

  Args:
    input_shape: ``(H, W, 3)``; H, W multiples of 32.
    width_multiplier: alpha > 0 scaling every channel count.
    normalize: if True, the model maps [0, 1] input to [-1, 1] (frozen 1x1 depthwise conv, see
      :func:`fixed_affine`; 6 non-trainable parameters).
    layers: ``keras.layers`` (default) or ``tf_keras.layers``.
    name: model name, prefix of every layer name.
  Returns:
    ``keras.Model``: float32 RGB ``(B, H, W, 3)`` in [0, 1] -> pyramid dict (see module doc),
    channels 64a, 128a, 256a, 512a, 1024a at strides 2..32.
  """
  layers, input_fn, model_cls = _common.model_api(layers)
  _common.check_name(name)
  shape = _common.check_input_shape(input_shape)
  width_multiplier = check_width_multiplier(width_multiplier)
  inputs = input_fn(shape=shape, name=f"{name}_image")
  x = inputs
  if normalize:
    x = normalize_image(x, layers, MOBILENET_INPUT_SCALE, MOBILENET_INPUT_OFFSET,
                        f"{name}_normalize")
  feats = mobilenet_v1_features(x, layers, width_multiplier, name)
  return model_cls(inputs, feats, name=name)



# --- ResNet (He et al. 2016, "Deep Residual Learning for Image Recognition", Table 1) ---------
# Blocks per stage (conv2_x .. conv5_x) and block type, torchvision.models.resnet.
RESNET_SPECS = {
    18: ((2, 2, 2, 2), "basic"),
    34: ((3, 4, 6, 3), "basic"),
    50: ((3, 4, 6, 3), "bottleneck"),
    101: ((3, 4, 23, 3), "bottleneck"),
}
# Stem: 7x7/2 conv with 64 filters, then 3x3/2 max-pool (He et al. 2016, Table 1).
RESNET_STEM_FILTERS = 64
RESNET_STEM_KERNEL = 7
RESNET_POOL_SIZE = 3
# Base width of the four stages; bottleneck blocks output 4x this (expansion, He et al. 2016).
RESNET_STAGE_FILTERS = (64, 128, 256, 512)
RESNET_BOTTLENECK_EXPANSION = 4
# Monodepth2's ResnetEncoder normalises (x - 0.45) / 0.225 (Godard et al. 2019, networks/
# resnet_encoder.py); as an affine map: x * (1 / 0.225) + (-0.45 / 0.225).
MONODEPTH2_IMAGE_MEAN = 0.45
MONODEPTH2_IMAGE_STD = 0.225
# Output strides: 32 (classification ResNet), or dilated 16 / 8 as in DeepLab (Chen et al. 2017)
# and DORN (Fu et al. 2018): stride-2 of the last stage(s) replaced by dilation 2 (and 4).
# Maps output_stride -> per-stage (stride, dilation) of stages 2..5 (conv2_x has stride 1).
RESNET_OUTPUT_STRIDES = {
    32: ((1, 1), (2, 1), (2, 1), (2, 1)),
    16: ((1, 1), (2, 1), (2, 1), (1, 2)),
    8: ((1, 1), (2, 1), (1, 2), (1, 4)),
}


def _basic_block(x, layers, filters, strides, dilation, first_dilation, name):
  """ResNet basic block: 3x3-BN-ReLU, 3x3-BN, + shortcut (1x1/s conv-BN if shape changes), ReLU.

  As torchvision's BasicBlock with ``dilation`` on both 3x3 convs; ``first_dilation`` is the
  dilation of the first conv (torchvision uses the previous stage's dilation in the first block of
  a dilated stage).
  """
  shortcut = x
  y = conv_bn(x, layers, filters, 3, strides, first_dilation, "relu", f"{name}_conv1")
  y = conv_bn(y, layers, filters, 3, 1, dilation, None, f"{name}_conv2")
  if strides != 1 or x.shape[-1] != filters:
    shortcut = conv_bn(x, layers, filters, 1, strides, 1, None, f"{name}_downsample")
  y = layers.Add(name=f"{name}_add")([y, shortcut])
  return layers.ReLU(name=f"{name}_out")(y)


def _bottleneck_block(x, layers, filters, strides, dilation, first_dilation, name):
  """ResNet bottleneck: 1x1 -> 3x3 (stride here, torchvision "ResNet v1.5") -> 1x1 (4x)."""
  out_filters = filters * RESNET_BOTTLENECK_EXPANSION
  shortcut = x
  y = conv_bn(x, layers, filters, 1, 1, 1, "relu", f"{name}_conv1")
  y = conv_bn(y, layers, filters, 3, strides, first_dilation, "relu", f"{name}_conv2")
  y = conv_bn(y, layers, out_filters, 1, 1, 1, None, f"{name}_conv3")
  if strides != 1 or x.shape[-1] != out_filters:
    shortcut = conv_bn(x, layers, out_filters, 1, strides, 1, None, f"{name}_downsample")
  y = layers.Add(name=f"{name}_add")([y, shortcut])
  return layers.ReLU(name=f"{name}_out")(y)


def check_resnet_args(num_layers, output_stride=32):
  _common.check_choice(num_layers, tuple(RESNET_SPECS), "num_layers")
  _common.check_choice(output_stride, tuple(RESNET_OUTPUT_STRIDES), "output_stride")


def resnet_features(x, layers, num_layers=18, output_stride=32, name="resnet"):
  """Applies a ResNet body (no pooling / classifier) to a normalised tensor ``x``.

  Args:
    x: float32 ``(B, H, W, C)``; any C (Monodepth2's pose encoder stacks 3*N channels).
    layers: ``keras.layers`` or ``tf_keras.layers``.
    num_layers: 18, 34 (basic blocks), 50 or 101 (bottleneck blocks).
    output_stride: 32, 16 or 8 (dilated last stages).
    name: layer name prefix.
  Returns:
    Dict keyed by stride: ``"s2"`` = stem conv output (64 ch; Monodepth2's first feature),
    ``"s4"`` = conv2_x, then conv3_x .. conv5_x at strides 8, 16, 32 (channels 64, 128, 256, 512
    for 18/34; 256, 512, 1024, 2048 for 50/101). With ``output_stride`` 16 or 8 the dilated stages
    stay at that stride, and each stride key holds the deepest feature at that stride (e.g.
    output_stride 8: ``"s8"`` is conv5_x, and there are no ``"s16"``/``"s32"`` keys).
  """
  check_resnet_args(num_layers, output_stride)
  blocks, kind = RESNET_SPECS[num_layers]
  block_fn = _basic_block if kind == "basic" else _bottleneck_block
  out = {}
  x = conv_bn(x, layers, RESNET_STEM_FILTERS, RESNET_STEM_KERNEL, 2, 1, "relu", f"{name}_stem")
  out["s2"] = x
  # Zero padding is equivalent to PyTorch's -inf max-pool padding here: inputs are >= 0 (ReLU).
  x = _pytorch_pad(x, layers, RESNET_POOL_SIZE, 1, f"{name}_pool")
  x = layers.MaxPooling2D(RESNET_POOL_SIZE, strides=2, name=f"{name}_pool")(x)
  stride, dilation = 4, 1
  for stage, (n, filters, (s, d)) in enumerate(
      zip(blocks, RESNET_STAGE_FILTERS, RESNET_OUTPUT_STRIDES[output_stride]), start=1):
    previous_dilation, dilation = dilation, d
    stride *= s
    for b in range(n):
      x = block_fn(x, layers, filters, s if b == 0 else 1, dilation,
                   previous_dilation if b == 0 else dilation, f"{name}_layer{stage}_block{b + 1}")
    out[f"s{stride}"] = x
  return out


def build_resnet_encoder(num_layers=18, input_shape=(192, 640, 3), output_stride=32,
                         normalize=True, layers=None, name="resnet"):
  """ResNet-18/34/50/101 encoder (He et al. 2016) as used by Monodepth2, FCRN, DORN, DeepLab.

  Args:
    num_layers: 18, 34, 50 or 101.
    input_shape: ``(H, W, C)``; H, W multiples of 32; C = 3 (RGB) or 3*N (N stacked frames,
      Monodepth2's multi-image pose encoder).
    output_stride: 32, or 16 / 8 for a dilated ResNet (DeepLab v2, Chen et al. 2017; DORN).
    normalize: apply Monodepth2's ``(x - 0.45) / 0.225`` inside the model (frozen affine layer).
    layers: ``keras.layers`` (default) or ``tf_keras.layers``.
    name: model name and layer-name prefix.
  Returns:
    ``keras.Model``: float32 ``(B, H, W, C)`` in [0, 1] -> pyramid dict (see
    :func:`resnet_features`). Random initialisation.
  Raises:
    InvalidInputError: unknown ``num_layers`` / ``output_stride``, bad shape.
  """
  layers, input_fn, model_cls = _common.model_api(layers)
  _common.check_name(name)
  check_resnet_args(num_layers, output_stride)
  shape = _common.check_input_shape(input_shape, channels=None)
  if shape[2] % 3:
    raise InvalidInputError(
        f"input_shape C must be 3 * number of RGB frames, got C={shape[2]} in {input_shape!r}")
  inputs = input_fn(shape=shape, name=f"{name}_image")
  x = inputs
  if normalize:
    x = normalize_image(x, layers, 1.0 / MONODEPTH2_IMAGE_STD,
                        -MONODEPTH2_IMAGE_MEAN / MONODEPTH2_IMAGE_STD, f"{name}_normalize")
  feats = resnet_features(x, layers, num_layers, output_stride, name)
  return model_cls(inputs, feats, name=name)


# --- MobileNet v2 (Sandler et al. 2018, "MobileNetV2", Table 2) ------------------------------
MOBILENET_V2_STEM_FILTERS = 32
# Inverted residual stages (expansion t, channels c, repeats n, first stride s), Table 2.
MOBILENET_V2_BLOCKS = (
    (1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
    (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))
# Final 1x1 conv; only widened for alpha > 1 (Sandler et al. 2018 / keras.applications).
MOBILENET_V2_LAST_FILTERS = 1280
# Channel counts are rounded to multiples of 8 (keras.applications.mobilenet_v2._make_divisible).
MOBILENET_V2_DIVISOR = 8
# Stage index (0-based, into MOBILENET_V2_BLOCKS) whose output is the pyramid level; "s32" is the
# final 1x1 conv.
MOBILENET_V2_PYRAMID = {0: "s2", 1: "s4", 2: "s8", 4: "s16"}


def make_divisible(value, divisor=MOBILENET_V2_DIVISOR):
  """Rounds to the nearest multiple of ``divisor``, never down by more than 10% (MobileNet v2)."""
  new = max(divisor, int(value + divisor / 2) // divisor * divisor)
  if new < 0.9 * value:
    new += divisor
  return new


def _inverted_residual(x, layers, expansion, filters, strides, name):
  in_channels = x.shape[-1]
  y = x
  if expansion != 1:
    y = conv_bn(y, layers, in_channels * expansion, 1, 1, 1, "relu6", f"{name}_expand")
  y = depthwise_bn_relu(y, layers, 3, strides, name, activation="relu6")
  y = conv_bn(y, layers, filters, 1, 1, 1, None, f"{name}_project")
  if strides == 1 and in_channels == filters:
    y = layers.Add(name=f"{name}_add")([x, y])
  return y


def mobilenet_v2_features(x, layers, alpha=1.0, name="mobilenet_v2"):
  """Applies the MobileNet v2 body to a normalised tensor; returns the stride pyramid.

  Channels at alpha 1: s2 16, s4 24, s8 32, s16 96, s32 1280.
  """
  x = conv_bn(x, layers, make_divisible(MOBILENET_V2_STEM_FILTERS * alpha), 3, 2, 1, "relu6",
              f"{name}_stem")
  out = {}
  index = 0
  for stage, (t, c, n, s) in enumerate(MOBILENET_V2_BLOCKS):
    for b in range(n):
      index += 1
      x = _inverted_residual(x, layers, t, make_divisible(c * alpha), s if b == 0 else 1,
                             f"{name}_block{index}")
    if stage in MOBILENET_V2_PYRAMID:
      out[MOBILENET_V2_PYRAMID[stage]] = x
  last = make_divisible(MOBILENET_V2_LAST_FILTERS * alpha) if alpha > 1.0 else \
      MOBILENET_V2_LAST_FILTERS
  out["s32"] = conv_bn(x, layers, last, 1, 1, 1, "relu6", f"{name}_last")
  return out


def build_mobilenet_v2_encoder(input_shape=(224, 224, 3), alpha=1.0, normalize=True,
                               layers=None, name="mobilenet_v2"):
  """MobileNet v2 encoder (Sandler et al. 2018), random initialisation.

  Args:
    input_shape: ``(H, W, 3)``, H and W multiples of 32.
    alpha: width multiplier > 0 (channels rounded to multiples of 8).
    normalize: map [0, 1] input to [-1, 1] inside the model (keras.applications convention).
    layers: ``keras.layers`` (default) or ``tf_keras.layers``.
    name: model name and layer-name prefix.
  Returns:
    ``keras.Model``: float32 ``(B, H, W, 3)`` in [0, 1] -> ``{"s2": 16a, "s4": 24a, "s8": 32a,
    "s16": 96a, "s32": 1280}`` channels (see :func:`mobilenet_v2_features`).
  """
  layers, input_fn, model_cls = _common.model_api(layers)
  _common.check_name(name)
  shape = _common.check_input_shape(input_shape)
  alpha = _common.check_positive(alpha, "alpha")
  inputs = input_fn(shape=shape, name=f"{name}_image")
  x = inputs
  if normalize:
    x = normalize_image(x, layers, MOBILENET_INPUT_SCALE, MOBILENET_INPUT_OFFSET,
                        f"{name}_normalize")
  return model_cls(inputs, mobilenet_v2_features(x, layers, alpha, name), name=name)


__all__ = [
    "build_mobilenet_v1_encoder", "build_mobilenet_v2_encoder", "build_resnet_encoder",
    "mobilenet_v1_features", "mobilenet_v2_features", "resnet_features",
]
