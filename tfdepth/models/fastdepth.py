"""FastDepth (Wofk, Ma, Yang, Karaman, Sze 2019, "FastDepth: Fast Monocular Depth Estimation on
Embedded Systems", ICRA; reference code github.com/dwofk/fast-depth, ``MobileNetSkipAdd``).

MobileNet v1 encoder + NNConv5 decoder: five stages of [5x5 depthwise-separable conv -> nearest
x2 upsampling], additive skips from the encoder at strides 8, 4, 2, then a 1x1 conv head.

Built from stock layers only (no custom layers, no Lambda, no keras.ops), through a ``layers``
namespace, so that ``layers=tf_keras.layers`` gives a tf_keras twin with the same weight list
for quantisation-aware training (tensorflow-model-optimization).

Deliberate differences from the reference code:
  * The model takes float32 RGB in [0, 1] and maps it to [-1, 1] inside; the reference fed
    [0, 1] directly. With random initialisation the BN after the first conv makes this
    immaterial; to port reference weights set the ``{name}_normalize`` layer to scale 1, offset 0.
    The normalisation (and the sigmoid head's x max_depth) is a frozen 1x1 depthwise conv rather
    than ``Rescaling``, which tensorflow-model-optimization cannot quantise.
  * The head is a 1x1 conv with bias followed by ``depth_activation``; the reference head is
    ``pointwise(32, 1)`` = 1x1 conv without bias -> BatchNorm -> ReLU.
"""

from tfdepth.models import _common
from tfdepth.models import encoders
from tfdepth.models import heads

# NNConv5 decoder (Wofk et al. 2019, Sec. III-B; fast-depth models.py MobileNetSkipAdd):
# kernel 5 depthwise convs, output channels of decode_conv1..5.
DECODER_KERNEL_SIZE = 5
DECODER_FILTERS = (512, 256, 128, 64, 32)
# Additive skips: after decode stage i (1-based) and its x2 upsampling, add the encoder feature
# at that stride (MobileNetSkipAdd.forward: i==2 -> x3 (s8), i==3 -> x2 (s4), i==4 -> x1 (s2)).
SKIP_AFTER_STAGE = {2: "s8", 3: "s4", 4: "s2"}
# Nearest-neighbour upsampling factor of each NNConv5 stage (F.interpolate(scale_factor=2)).
UPSAMPLE_FACTOR = 2
DEPTH_ACTIVATIONS = ("relu", "softplus", "sigmoid")


def build_fastdepth(input_shape=(224, 224, 3), layers=None, width_multiplier=1.0,
                    depth_activation="relu", max_depth=None, name="fastdepth"):
  """Builds FastDepth (Wofk et al. 2019): MobileNet v1 + NNConv5 decoder with additive skips.

  Args:
    input_shape: ``(H, W, 3)``, H and W multiples of 32 (paper: 224x224 on NYU Depth v2).
    layers: ``keras.layers`` (default ``None``) or ``tf_keras.layers``; the model is built from
      this namespace's stock layers and ``Input``/``Model``.
    width_multiplier: alpha > 0 scaling every encoder and decoder channel count (1.0 = paper).
    depth_activation: output non-linearity: ``"relu"`` (paper), ``"softplus"``, or
      ``"sigmoid"`` (then multiplied by ``max_depth``). ``"softplus"`` cannot go through
      tensorflow-model-optimization's ``quantize_model`` (its default 8-bit registry has no
      softplus); "relu" and "sigmoid" can.
    max_depth: metres. Required for ``"sigmoid"`` (output in (0, max_depth)); optional for
      ``"relu"`` (caps the output at max_depth with ``ReLU(max_value=...)``); not allowed with
      ``"softplus"``.
    name: model name, prefix of every layer name.
  Returns:
    A functional model: input float32 RGB ``(B, H, W, 3)`` in [0, 1] ->
    ``{"depth": (B, H, W, 1) float32 metres}``; batch size unknown.
  Raises:
    InvalidInputError: bad shape, unknown activation, missing/invalid ``max_depth``, bad
      ``layers`` namespace or width multiplier.
  """
  layers, input_fn, model_cls = _common.model_api(layers)
  _common.check_name(name)
  shape = _common.check_input_shape(input_shape)
  width_multiplier = _common.check_positive(width_multiplier, "width_multiplier")
  max_depth = heads.check_depth_activation(depth_activation, max_depth, DEPTH_ACTIVATIONS)

  inputs = input_fn(shape=shape, name=f"{name}_image")
  x = encoders.normalize_image(inputs, layers, encoders.MOBILENET_INPUT_SCALE,
                              encoders.MOBILENET_INPUT_OFFSET, f"{name}_normalize")
  feats = encoders.mobilenet_v1_features(x, layers, width_multiplier, f"{name}_encoder")
  x = feats["s32"]
  for stage, filters in enumerate(DECODER_FILTERS, start=1):
    prefix = f"{name}_decoder{stage}"
    x = encoders.separable_bn_relu(x, layers, _common.scaled_channels(filters, width_multiplier),
                                   DECODER_KERNEL_SIZE, 1, prefix)
    x = layers.UpSampling2D(UPSAMPLE_FACTOR, interpolation="nearest", name=f"{prefix}_up")(x)
    if stage in SKIP_AFTER_STAGE:
      x = layers.Add(name=f"{prefix}_skip")([x, feats[SKIP_AFTER_STAGE[stage]]])
  x = layers.Conv2D(1, 1, name=f"{name}_head_conv")(x)
  depth = heads.depth_output(x, layers, depth_activation, max_depth, name)
  return model_cls(inputs, {"depth": depth}, name=name)


__all__ = ["build_fastdepth"]
