"""Segmentation-guided Monodepth2 network and a disparity-to-depth layer for self-supervised models.

`build_segdepth_net` adds a semantic segmentation head on the *shared* Monodepth2 depth decoder
(the full-resolution decoder feature, `upconv0_1`, 16 channels): the depth and segmentation tasks
share encoder and decoder, so the segmentation loss shapes the decoder features at object borders
(the segmentation-guided self-supervised depth idea of e.g. Guizilini et al., ICLR 2020, and
Klingner et al., ECCV 2020, here in its simplest form: one shared decoder, one extra head).

`with_depth_output` wraps a Monodepth2-style depth net (sigmoid `disp_s` outputs) into an inference
model that also returns metric-free depth `"depth"` (Monodepth2 `disp_to_depth`, 0.1..100).
"""

import keras

from tfdepth.errors import InvalidInputError
from tfdepth.geometry import MONODEPTH2_MAX_DEPTH
from tfdepth.geometry import MONODEPTH2_MIN_DEPTH
from tfdepth.geometry import disp_to_depth
from tfdepth.layers import ReflectionPadding2D
from tfdepth.models import _common
from tfdepth.models import monodepth2

# Cityscapes train ids (Cordts et al. 2016): 19 evaluated classes.
DEFAULT_NUM_CLASSES = 19
# Segmentation head: reflection-padded 3x3 conv + ELU at the decoder width of scale 0 (16, Monodepth2
# DepthDecoder num_ch_dec[0]), then a 3x3 conv to the class logits (same Conv3x3 as the disp heads).
SEG_HEAD_CHANNELS = monodepth2.DEPTH_DECODER_CHANNELS[0]
# Name of the shared full-resolution decoder feature inside `build_monodepth2_depth_net`.
_SHARED_FEATURE = "{name}_decoder_upconv0_1_elu"


@keras.saving.register_keras_serializable(package="tfdepth")
class DispToDepth(keras.layers.Layer):
  """Monodepth2 sigmoid disparity -> depth (Godard et al. 2019, `layers.disp_to_depth`).

  Input `(B, H, W, 1)` sigmoid output in (0, 1); output `(B, H, W, 1)` depth in
  [min_depth, max_depth] (the units of the training scale; metres after median scaling).
  """

  def __init__(self, min_depth=MONODEPTH2_MIN_DEPTH, max_depth=MONODEPTH2_MAX_DEPTH, **kwargs):
    super().__init__(**kwargs)
    self.min_depth, self.max_depth = _common.check_depth_range(min_depth, max_depth)

  def call(self, disp):
    return disp_to_depth(disp, self.min_depth, self.max_depth)[1]

  def compute_output_shape(self, input_shape):
    return input_shape

  def get_config(self):
    return {**super().get_config(), "min_depth": self.min_depth, "max_depth": self.max_depth}


def build_segdepth_net(input_shape=(192, 640, 3), num_layers=18, scales=(0, 1, 2, 3),
                       num_classes=DEFAULT_NUM_CLASSES, name="segdepth"):
  """Monodepth2 depth net plus a segmentation head on its shared decoder.

  Args:
    input_shape: `(H, W, 3)`, H, W multiples of 32 and >= 64.
    num_layers: ResNet depth (18, 34, 50).
    scales: disparity output scales (subset of 0..4; 0 is always built for the shared feature).
    num_classes: number of segmentation classes (Cityscapes train ids: 19).
    name: model name and layer-name prefix.
  Returns:
    Model: float32 RGB `(B, H, W, 3)` in [0, 1] -> `{"disp_s": (B, H/2^s, W/2^s, 1)` sigmoid,
    `"seg_logits": (B, H, W, num_classes)` float logits}`.
  Raises:
    InvalidInputError: bad shape, num_layers, scales or num_classes.
  """
  if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
    raise InvalidInputError(f"num_classes expected an int >= 2, received {num_classes!r}")
  _common.check_name(name)
  depth = monodepth2.build_monodepth2_depth_net(input_shape, num_layers, scales, name=name)
  feature = depth.get_layer(_SHARED_FEATURE.format(name=name)).output
  x = ReflectionPadding2D(monodepth2.DECODER_REFLECT_PAD, name=f"{name}_seg_pad0")(feature)
  # PyTorch-default init like the decoder it extends (monodepth2.TORCH_CONV_KERNEL_INIT_SCALE).
  x = monodepth2.torch_conv2d(x, SEG_HEAD_CHANNELS, monodepth2.DECODER_KERNEL_SIZE,
                              f"{name}_seg_conv0")
  x = keras.layers.Activation("elu", name=f"{name}_seg_elu0")(x)
  x = ReflectionPadding2D(monodepth2.DECODER_REFLECT_PAD, name=f"{name}_seg_pad1")(x)
  logits = monodepth2.torch_conv2d(x, num_classes, monodepth2.DECODER_KERNEL_SIZE,
                                   f"{name}_seg_logits")
  outputs = dict(depth.output)
  outputs["seg_logits"] = logits
  return keras.Model(depth.input, outputs, name=name)


def with_depth_output(depth_net, min_depth=MONODEPTH2_MIN_DEPTH, max_depth=MONODEPTH2_MAX_DEPTH,
                      name=None):
  """Inference model: the outputs of `depth_net` plus `"depth"` = DispToDepth(disp_0) `(B,H,W,1)`.

  Shares the weights (and variables) of `depth_net`.
  """
  outputs = depth_net.output
  if not isinstance(outputs, dict) or "disp_0" not in outputs:
    raise InvalidInputError(
        f"with_depth_output expected a net with a 'disp_0' output, received {type(outputs)}")
  name = name or f"{depth_net.name}_inference"
  out = {k: keras.layers.Identity(name=f"{name}_{k}")(v) for k, v in outputs.items()}
  out["depth"] = DispToDepth(min_depth, max_depth, name=f"{name}_depth")(outputs["disp_0"])
  return keras.Model(depth_net.input, out, name=name)


__all__ = ["DEFAULT_NUM_CLASSES", "DispToDepth", "build_segdepth_net", "with_depth_output"]
