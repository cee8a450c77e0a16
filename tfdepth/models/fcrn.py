"""FCRN: fully convolutional residual network with up-projections (Laina, Rupprecht, Belagiannis,
Tombari, Navab 2016, "Deeper Depth Prediction with Fully Convolutional Residual Networks", 3DV;
reference code github.com/iro-cp/FCRN-DepthPrediction, tensorflow/models/fcrn.py).

ResNet-50 (to res5c, stride 32) -> 1x1 conv 1024 + BN -> four up-projection blocks
(1024 -> 512 -> 256 -> 128 -> 64 channels, each x2) -> dropout -> 3x3 conv to 1 channel. The paper
predicts at half the input resolution (128x160 for 228x304 input); here a parameter-free
bilinear x2 upsampling returns full resolution (set ``full_resolution=False`` for the paper's).

Up-convolution: the paper's "unpooling (each value at the top-left of its 2x2 block, zeros
elsewhere) + 5x5 'same' conv" (Fig. 2), computed fast as four interleaved 3x3/3x2/2x3/2x2
convolutions, is exactly a stride-2 ``Conv2DTranspose`` with a 5x5 kernel and "valid" padding
(output 2n + 3) cropped by ((2, 1), (2, 1)) to 2n: output pixel (i, j) sums input (p, q) times
transposed-conv kernel entry (i + 2 - 2p, j + 2 - 2q), which is the 5x5 conv of the top-left
unpooled map with the spatially flipped kernel (cross-correlation weight W[a, b] = K[4 - a, 4 - b]).
The same 25 weights per channel pair as the paper's conv, as stock, serialisable layers
(``Cropping2D`` carries no weights). ``padding="same"`` would instead crop ((1, 2), (1, 2)), i.e.
unpool to the BOTTOM-RIGHT of each block, which is not the paper's function.
"""

from tfdepth.models import _common
from tfdepth.models import encoders
from tfdepth.models import heads

# Laina et al. 2016, Fig. 2 / Table 1: 1x1 conv to 1024 channels after res5c, then up-projection
# blocks halving the channels.
FCRN_BRIDGE_FILTERS = 1024
FCRN_UP_FILTERS = (512, 256, 128, 64)
# Up-convolution kernel (unpool + 5x5 conv, Laina et al. 2016 Sec. 3.1) and the 3x3 conv that
# follows the up-convolution in the main branch of the up-projection (Fig. 2 c/d; the projection
# branch is the up-convolution alone); also the prediction conv.
UPCONV_KERNEL_SIZE = 5
UPPROJ_CONV_KERNEL_SIZE = 3
# Crop of the "valid" stride-2 transposed 5x5 conv (2n + 3 -> 2n) that puts every input value at
# the top-left of its 2x2 block (Laina et al. 2016, Fig. 2): (k - 1) // 2 = 2 rows/cols before,
# 1 after (see the module docstring).
UPCONV_CROP = ((2, 1), (2, 1))
# Dropout before the prediction conv (the 'drop' layer before 'ConvPred' in fcrn.py; its keep
# probability is fed at run time). 0.5 is our default rate, not a published figure.
FCRN_DROPOUT_RATE = 0.5
# Published configuration: ResNet-50.
FCRN_NUM_LAYERS = 50


def up_convolution(x, layers, filters, name):
  """Laina et al. 2016 up-convolution: top-left unpooling x2 + 5x5 conv, ``(B, 2H, 2W, filters)``.

  ``Conv2DTranspose(5, strides=2, padding="valid")`` (layer ``name``) + ``Cropping2D`` by
  `UPCONV_CROP` (layer ``{name}_crop``); see the module docstring for the kernel correspondence.
  """
  x = layers.Conv2DTranspose(filters, UPCONV_KERNEL_SIZE, strides=2, padding="valid",
                             use_bias=False, name=name)(x)
  return layers.Cropping2D(UPCONV_CROP, name=f"{name}_crop")(x)


def _upconv_bn(x, layers, filters, name, relu):
  x = up_convolution(x, layers, filters, f"{name}_upconv")
  x = layers.BatchNormalization(momentum=_common.BN_MOMENTUM, epsilon=_common.BN_EPSILON,
                                name=f"{name}_upconv_bn")(x)
  if relu:
    x = layers.ReLU(name=f"{name}_upconv_relu")(x)
  return x


def up_projection(x, layers, filters, name):
  """Up-projection block (Laina et al. 2016, Fig. 2 c/d): x2 resolution, ``filters`` channels.

  branch 1: up-conv + BN + ReLU -> 3x3 conv + BN; branch 2: up-conv + BN; sum; ReLU.
  """
  a = _upconv_bn(x, layers, filters, f"{name}_branch1", relu=True)
  a = encoders.conv_bn(a, layers, filters, UPPROJ_CONV_KERNEL_SIZE, 1, 1, None,
                       f"{name}_branch1_conv")
  b = _upconv_bn(x, layers, filters, f"{name}_branch2", relu=False)
  x = layers.Add(name=f"{name}_add")([a, b])
  return layers.ReLU(name=f"{name}_relu")(x)


def build_fcrn(input_shape=(224, 320, 3), num_layers=FCRN_NUM_LAYERS, depth_activation="linear",
               max_depth=None, full_resolution=True, dropout_rate=FCRN_DROPOUT_RATE,
               width_multiplier=1.0, layers=None, name="fcrn"):
  """Builds FCRN (Laina et al. 2016) with fast up-projections.

  Args:
    input_shape: ``(H, W, 3)``, H, W multiples of 32 (paper: 228x304 NYU crops; we need
      multiples of 32, e.g. 224x320).
    num_layers: ResNet encoder depth (paper: 50; 18/34/101 also accepted).
    depth_activation: ``"linear"`` (paper: raw regression trained with berHu), ``"relu"``,
      ``"softplus"`` or ``"sigmoid"`` (x ``max_depth``).
    max_depth: metres, see :func:`tfdepth.models.heads.check_depth_activation`.
    full_resolution: if True (default) bilinear x2 upsampling to (H, W); else the paper's
      (H/2, W/2) output.
    dropout_rate: dropout before the prediction conv, in [0, 1).
    width_multiplier: scales the decoder's channel counts (1.0 = paper; small values for tests).
    layers: ``keras.layers`` (default) or ``tf_keras.layers``.
    name: model name and layer-name prefix.
  Returns:
    Model: float32 RGB ``(B, H, W, 3)`` in [0, 1] -> ``{"depth": (B, H, W, 1)}`` float32 metres
    (``(B, H/2, W/2, 1)`` if not ``full_resolution``). Normalisation inside: (x - 0.45) / 0.225.
  Raises:
    InvalidInputError: bad shape, ``num_layers``, activation, ``max_depth`` or dropout rate.
  """
  layers, input_fn, model_cls = _common.model_api(layers)
  _common.check_name(name)
  shape = _common.check_input_shape(input_shape)
  encoders.check_resnet_args(num_layers)
  max_depth = heads.check_depth_activation(depth_activation, max_depth)
  _common.check_unit_interval(dropout_rate, "dropout_rate")
  width_multiplier = _common.check_positive(width_multiplier, "width_multiplier")
  inputs = input_fn(shape=shape, name=f"{name}_image")
  x = encoders.normalize_image(
      inputs, layers, 1.0 / encoders.MONODEPTH2_IMAGE_STD,
      -encoders.MONODEPTH2_IMAGE_MEAN / encoders.MONODEPTH2_IMAGE_STD, f"{name}_normalize")
  x = encoders.resnet_features(x, layers, num_layers, 32, f"{name}_encoder")["s32"]
  x = encoders.conv_bn(x, layers, _common.scaled_channels(FCRN_BRIDGE_FILTERS, width_multiplier),
                       1, 1, 1, None, f"{name}_bridge")
  for i, filters in enumerate(FCRN_UP_FILTERS, start=1):
    x = up_projection(x, layers, _common.scaled_channels(filters, width_multiplier),
                      f"{name}_up{i}")
  x = layers.Dropout(dropout_rate, name=f"{name}_dropout")(x)
  x = layers.Conv2D(1, UPPROJ_CONV_KERNEL_SIZE, padding="same", name=f"{name}_pred")(x)
  if full_resolution:
    x = layers.UpSampling2D(2, interpolation="bilinear", name=f"{name}_upsample")(x)
  depth = heads.depth_output(x, layers, depth_activation, max_depth, name)
  return model_cls(inputs, {"depth": depth}, name=name)


__all__ = ["build_fcrn", "up_convolution", "up_projection"]
