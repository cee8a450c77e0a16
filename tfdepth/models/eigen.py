"""Eigen, Puhrsch, Fergus 2014, "Depth Map Prediction from a Single Image using a Multi-Scale
Deep Network", NIPS: a global coarse network (AlexNet-like convs + two fully connected layers
whose output is the 1/4-resolution depth map) refined by a fine network (9x9/2 conv + pool,
concatenated with the coarse map, two 5x5 convs). Both predict log depth (trained with the
scale-invariant log loss).

Deliberate differences: inputs of any multiple-of-32 size (paper 304x228, output 74x55) with
"same" padding, so the maps are exactly (H/4, W/4); normalisation (x - 0.45) / 0.225 inside.
"""

import keras

from tfdepth.errors import InvalidInputError

from tfdepth.models import _common
from tfdepth.models import encoders

# Coarse network (Eigen et al. 2014, Fig. 1): (filters, kernel, stride, max-pool 2x2 after).
EIGEN_COARSE_CONVS = ((96, 11, 4, True), (256, 5, 1, True), (384, 3, 1, False),
                      (384, 3, 1, False), (256, 3, 1, True))
EIGEN_FC_UNITS = 4096  # coarse 6 (Fig. 1)
EIGEN_DROPOUT_RATE = 0.5  # dropout in coarse 6 (Sec. 3.1, "dropout ... in the fully connected")
# Output resolution: 1/4 of the input (74x55 for 304x228, Fig. 1).
EIGEN_OUTPUT_STRIDE = 4
# Fine network (Fig. 1): fine 1 = 9x9 conv stride 2, 63 filters + 2x2 max-pool; fine 2 = 5x5 conv,
# 64 filters (input: the 63 maps + the coarse output); fine 3 = 5x5 conv to 1 channel.
EIGEN_FINE1 = (63, 9, 2)
EIGEN_FINE2 = (64, 5)
EIGEN_FINE3_KERNEL = 5


def build_eigen2014(input_shape=(224, 288, 3), fc_units=EIGEN_FC_UNITS,
                    dropout_rate=EIGEN_DROPOUT_RATE, name="eigen2014"):
  """Builds Eigen et al. 2014's coarse + fine network.

  Args:
    input_shape: ``(H, W, 3)``, H and W multiples of 32.
    fc_units: width of the coarse network's hidden fully connected layer (paper 4096).
    dropout_rate: in [0, 1).
    name: model name and layer-name prefix.
  Returns:
    Model: float32 RGB ``(B, H, W, 3)`` in [0, 1] -> ``{"coarse_log_depth": (B, H/4, W/4, 1),
    "log_depth": (B, H/4, W/4, 1), "depth": (B, H, W, 1)}`` float32; log depths in log(metres),
    ``depth`` = exp of the bilinear x4 upsampled fine log depth (metres, > 0).
  Raises:
    InvalidInputError: bad shape, ``fc_units`` or ``dropout_rate``.
  """
  _common.check_name(name)
  h, w, c = _common.check_input_shape(input_shape)
  if isinstance(fc_units, bool) or not isinstance(fc_units, int) or fc_units < 1:
    raise InvalidInputError(f"fc_units must be a positive int, got {fc_units!r}")
  _common.check_unit_interval(dropout_rate, "dropout_rate")
  layers = keras.layers
  inputs = keras.Input((h, w, c), name=f"{name}_image")
  x0 = encoders.normalize_image(
      inputs, layers, 1.0 / encoders.MONODEPTH2_IMAGE_STD,
      -encoders.MONODEPTH2_IMAGE_MEAN / encoders.MONODEPTH2_IMAGE_STD, f"{name}_normalize")
  # Coarse (global) network.
  x = x0
  for i, (filters, kernel, stride, pool) in enumerate(EIGEN_COARSE_CONVS, start=1):
    x = layers.Conv2D(filters, kernel, strides=stride, padding="same", activation="relu",
                      name=f"{name}_coarse{i}")(x)
    if pool:
      x = layers.MaxPooling2D(2, name=f"{name}_coarse{i}_pool")(x)
  oh, ow = h // EIGEN_OUTPUT_STRIDE, w // EIGEN_OUTPUT_STRIDE
  x = layers.Flatten(name=f"{name}_coarse_flatten")(x)
  x = layers.Dense(fc_units, activation="relu", name=f"{name}_coarse6")(x)
  x = layers.Dropout(dropout_rate, name=f"{name}_coarse6_dropout")(x)
  x = layers.Dense(oh * ow, name=f"{name}_coarse7")(x)
  coarse = layers.Reshape((oh, ow, 1), name=f"{name}_coarse_log_depth")(x)
  # Fine (local) network.
  filters, kernel, stride = EIGEN_FINE1
  y = layers.Conv2D(filters, kernel, strides=stride, padding="same", activation="relu",
                    name=f"{name}_fine1")(x0)
  y = layers.MaxPooling2D(2, name=f"{name}_fine1_pool")(y)
  y = layers.Concatenate(name=f"{name}_fine_concat")([y, coarse])
  y = layers.Conv2D(EIGEN_FINE2[0], EIGEN_FINE2[1], padding="same", activation="relu",
                    name=f"{name}_fine2")(y)
  fine = layers.Conv2D(1, EIGEN_FINE3_KERNEL, padding="same", name=f"{name}_log_depth")(y)
  z = layers.UpSampling2D(EIGEN_OUTPUT_STRIDE, interpolation="bilinear",
                          name=f"{name}_upsample")(fine)
  depth = layers.Activation("exponential", name=f"{name}_depth")(z)
  return keras.Model(inputs, {"coarse_log_depth": coarse, "log_depth": fine, "depth": depth},
                     name=name)


__all__ = ["build_eigen2014"]
