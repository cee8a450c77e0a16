"""DORN and a DeepLab-v2-style depth classifier.

DORN: H. Fu, M. Gong, C. Wang, K. Batmanghelich, D. Tao, "Deep Ordinal Regression Network for
Monocular Depth Estimation", CVPR 2018 (Sec. 3.1 network, Fig. 2/3 scene understanding module,
Sec. 3.3 ordinal regression). Depth-as-classification: Y. Cao, Z. Wu, C. Shen, "Estimating Depth
from Monocular Images as Classification Using Deep Fully Convolutional Residual Networks",
IEEE TCSVT 2017, on DeepLab v2 (L.-C. Chen et al., "DeepLab", TPAMI 2017: dilated ResNet +
ASPP-L, whose branches are summed).

Both use a dilated ResNet (output stride 8) and decode depth with the layers of
:mod:`tfdepth.layers.discretization` (bin edges from :mod:`tfdepth.geometry`). Input float32 RGB
in [0, 1], normalised inside ((x - 0.45) / 0.225). Random initialisation.
"""

from tfdepth.errors import InvalidInputError
from tfdepth.layers import BinsToDepth
from tfdepth.layers import OrdinalToDepth
from tfdepth.models import _common
from tfdepth.models import encoders

import keras

# Dense feature extractor: dilated ResNet-101 at output stride 8 (DORN Sec. 3.1; DeepLab v2).
DORN_NUM_LAYERS = 101
DORN_OUTPUT_STRIDE = 8
# ASPP dilation rates of DORN's scene understanding module (Fu et al. 2018, Sec. 3.1: 6, 12, 18)
# and its channel widths (512 per branch, 2048 after fusion; DORN Fig. 3 / released prototxt).
DORN_ASPP_RATES = (6, 12, 18)
DORN_BRANCH_FILTERS = 512
DORN_FUSE_FILTERS = 2048
# Full-image encoder (DORN Fig. 3): average pooling, FC to 512, 1x1 conv, copied to every pixel.
# DORN's pooling kernel is fixed for its input size; we pool to a fixed 4x4 grid so the FC has
# the same size at any input (our choice, not a published value).
FULL_IMAGE_GRID = 4
FULL_IMAGE_FEATURES = 512
DORN_DROPOUT_RATE = 0.5  # dropout before the FC and after fusion (DORN prototxt; our default)
# Depth range: KITTI evaluation cap 80 m and floor 1e-3 m; with DORN's shift (ξ = 1 - α) the
# SID runs on [1, 81) and is shifted back. K = 80 is our default, not a verified paper value:
# set num_bins for your dataset.
DEFAULT_MIN_DEPTH = 1e-3
DEFAULT_MAX_DEPTH = 80.0
DORN_NUM_BINS = 80
# DeepLab v2 ASPP-L rates (Chen et al. 2017, Sec. 3.3) and the 71-class, 80 m SID setup of the
# depth classifier (task specification; Cao et al. 2017 use log-spaced bins).
SID_CLASSIFIER_RATES = (6, 12, 18, 24)
SID_CLASSIFIER_NUM_CLASSES = 71


def _check_depth_range(min_depth, max_depth, num_bins):
  for value, arg in ((min_depth, "min_depth"), (max_depth, "max_depth")):
    _common.check_positive(value, arg)
  if not min_depth < max_depth:
    raise InvalidInputError(
        f"need min_depth < max_depth (metres), got min_depth={min_depth!r}, "
        f"max_depth={max_depth!r}")
  if isinstance(num_bins, bool) or not isinstance(num_bins, int) or num_bins < 2:
    raise InvalidInputError(f"num_bins must be an int >= 2, got {num_bins!r}")


def _features(inputs, num_layers, name):
  x = encoders.normalize_image(
      inputs, keras.layers, 1.0 / encoders.MONODEPTH2_IMAGE_STD,
      -encoders.MONODEPTH2_IMAGE_MEAN / encoders.MONODEPTH2_IMAGE_STD, f"{name}_normalize")
  feats = encoders.resnet_features(x, keras.layers, num_layers, DORN_OUTPUT_STRIDE,
                                   f"{name}_encoder")
  return feats[f"s{DORN_OUTPUT_STRIDE}"]


def build_dorn(input_shape=(256, 352, 3), num_layers=DORN_NUM_LAYERS, num_bins=DORN_NUM_BINS,
               min_depth=DEFAULT_MIN_DEPTH, max_depth=DEFAULT_MAX_DEPTH, discretization="sid",
               dropout_rate=DORN_DROPOUT_RATE, width_multiplier=1.0, name="dorn"):
  """Builds DORN (Fu et al. 2018).

  Dilated ResNet (stride 8) -> scene understanding module [full-image encoder; ASPP 3x3 branches
  at rates 6, 12, 18; a 1x1 branch; each branch followed by a 1x1 conv, 512 channels] ->
  concatenation -> 1x1 conv 2048 -> 1x1 conv to K ordinal logits -> bilinear x8 to input size.

  Args:
    input_shape: ``(H, W, 3)``, H, W multiples of 32 (paper KITTI crops 385x513).
    num_layers: ResNet depth (paper 101; 18/34/50 for small experiments).
    num_bins: K ordinal thresholds / depth bins.
    min_depth, max_depth: metres; range of the discretisation.
    discretization: ``"sid"`` (DORN, with its shift ξ) or ``"uniform"``.
    dropout_rate: in [0, 1).
    width_multiplier: scales the scene-understanding module's widths (512, 2048; 1.0 = paper).
    name: model name and layer-name prefix.
  Returns:
    Model: float32 ``(B, H, W, 3)`` in [0, 1] -> ``{"ordinal_logits": (B, H, W, K) float32
    (sigmoid = P(l > k); train with an ordinal loss), "depth": (B, H, W, 1) float32 metres
    (DORN decoding, not differentiable)}``.
  Raises:
    InvalidInputError: bad shape, ``num_layers``, range, ``num_bins`` or discretisation.
  """
  _common.check_name(name)
  h, w, c = _common.check_input_shape(input_shape)
  encoders.check_resnet_args(num_layers)
  _check_depth_range(min_depth, max_depth, num_bins)
  _common.check_unit_interval(dropout_rate, "dropout_rate")
  width_multiplier = _common.check_positive(width_multiplier, "width_multiplier")
  branch_filters = _common.scaled_channels(DORN_BRANCH_FILTERS, width_multiplier)
  global_features = _common.scaled_channels(FULL_IMAGE_FEATURES, width_multiplier)
  fuse_filters = _common.scaled_channels(DORN_FUSE_FILTERS, width_multiplier)
  decoder = OrdinalToDepth(min_depth, max_depth, num_bins, discretization, shift=True,
                           name=f"{name}_depth")  # validates the discretisation first
  layers = keras.layers
  inputs = keras.Input((h, w, c), name=f"{name}_image")
  x = _features(inputs, num_layers, name)
  fh, fw = h // DORN_OUTPUT_STRIDE, w // DORN_OUTPUT_STRIDE
  # Full-image encoder.
  g = layers.AveragePooling2D((fh // FULL_IMAGE_GRID, fw // FULL_IMAGE_GRID),
                              name=f"{name}_global_pool")(x)
  g = layers.Dropout(dropout_rate, name=f"{name}_global_dropout")(g)
  g = layers.Flatten(name=f"{name}_global_flatten")(g)
  g = layers.Dense(global_features, activation="relu", name=f"{name}_global_fc")(g)
  g = layers.Reshape((1, 1, global_features), name=f"{name}_global_reshape")(g)
  g = layers.Conv2D(branch_filters, 1, activation="relu", name=f"{name}_global_conv")(g)
  g = layers.UpSampling2D((fh, fw), interpolation="nearest", name=f"{name}_global_copy")(g)
  branches = [g]
  # 1x1 branch and ASPP branches, each followed by a 1x1 conv.
  for rate in (None,) + DORN_ASPP_RATES:
    tag = "conv1x1" if rate is None else f"aspp{rate}"
    b = layers.Conv2D(branch_filters, 1 if rate is None else 3, padding="same",
                      dilation_rate=rate or 1, activation="relu", name=f"{name}_{tag}_a")(x)
    b = layers.Conv2D(branch_filters, 1, activation="relu", name=f"{name}_{tag}_b")(b)
    branches.append(b)
  x = layers.Concatenate(name=f"{name}_concat")(branches)
  x = layers.Dropout(dropout_rate, name=f"{name}_concat_dropout")(x)
  x = layers.Conv2D(fuse_filters, 1, activation="relu", name=f"{name}_fuse")(x)
  x = layers.Dropout(dropout_rate, name=f"{name}_fuse_dropout")(x)
  x = layers.Conv2D(num_bins, 1, name=f"{name}_ordinal_conv")(x)
  logits = layers.UpSampling2D(DORN_OUTPUT_STRIDE, interpolation="bilinear",
                               name=f"{name}_ordinal_logits")(x)
  return keras.Model(inputs, {"ordinal_logits": logits, "depth": decoder(logits)}, name=name)


def build_sid_classifier(input_shape=(256, 352, 3), num_layers=DORN_NUM_LAYERS,
                         num_classes=SID_CLASSIFIER_NUM_CLASSES, min_depth=DEFAULT_MIN_DEPTH,
                         max_depth=DEFAULT_MAX_DEPTH, decoding="argmax",
                         name="sid_classifier"):
  """Depth as classification over SID bins on DeepLab v2 (Cao et al. 2017; Chen et al. 2017).

  Dilated ResNet (stride 8) -> ASPP-L: four 3x3 convs (rates 6, 12, 18, 24) straight to
  ``num_classes`` logits, summed -> bilinear x8 to input size.

  Args:
    input_shape: ``(H, W, 3)``, H, W multiples of 32.
    num_layers: ResNet depth (DeepLab v2: 101).
    num_classes: K depth bins (71).
    min_depth, max_depth: metres (1e-3, 80); SID edges with DORN's shift.
    decoding: ``"argmax"`` (centre of the arg-max bin) or ``"expectation"`` (softmax-weighted
      mean of the bin centres, differentiable).
    name: model name and layer-name prefix.
  Returns:
    Model: float32 ``(B, H, W, 3)`` in [0, 1] -> ``{"logits": (B, H, W, K) float32,
    "depth": (B, H, W, 1) float32 metres}``.
  Raises:
    InvalidInputError: bad shape, ``num_layers``, range, ``num_classes`` or ``decoding``.
  """
  _common.check_name(name)
  h, w, c = _common.check_input_shape(input_shape)
  encoders.check_resnet_args(num_layers)
  _check_depth_range(min_depth, max_depth, num_classes)
  decoder = BinsToDepth(min_depth, max_depth, num_classes, "sid", shift=True, decoding=decoding,
                        name=f"{name}_depth")
  layers = keras.layers
  inputs = keras.Input((h, w, c), name=f"{name}_image")
  x = _features(inputs, num_layers, name)
  branches = [layers.Conv2D(num_classes, 3, padding="same", dilation_rate=rate,
                            name=f"{name}_aspp{rate}")(x) for rate in SID_CLASSIFIER_RATES]
  x = layers.Add(name=f"{name}_aspp_sum")(branches)
  logits = layers.UpSampling2D(DORN_OUTPUT_STRIDE, interpolation="bilinear",
                               name=f"{name}_logits")(x)
  return keras.Model(inputs, {"logits": logits, "depth": decoder(logits)}, name=name)


__all__ = ["build_dorn", "build_sid_classifier"]
