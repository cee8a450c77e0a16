"""Eigen et al.'s multi-scale networks.

:func:`build_eigen2014`: Eigen, Puhrsch, Fergus 2014, "Depth Map Prediction from a Single Image
using a Multi-Scale Deep Network", NIPS: a global coarse network (AlexNet-like convs + two fully
connected layers whose output is the 1/4-resolution depth map) refined by a fine network (9x9/2 conv + pool,
concatenated with the coarse map, two 5x5 convs). Both predict log depth (trained with the
scale-invariant log loss).

:func:`build_eigen2015`: Eigen, Fergus 2015, "Predicting Depth, Surface Normals and Semantic
Labels with a Common Multi-Scale Convolutional Architecture", ICCV (VGG-16 version, Fig. 1).

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



# --- Eigen & Fergus 2015 ----------------------------------------------------------------------
# Scale 1: VGG-16 convolutions (Simonyan & Zisserman 2015, config D): (filters, convs) per block,
# each block followed by 2x2 max-pooling (stride 32 in total).
VGG16_BLOCKS = ((64, 2), (128, 2), (256, 3), (512, 3), (512, 3))
# Scale 1 ends in two fully connected layers; the second outputs 64 feature maps at 1/16 of the
# input, upsampled x4 to the 1/4-resolution scale 2 (Eigen & Fergus 2015, Fig. 1, Sec. 3.1).
EIGEN2015_SCALE1_FEATURES = 64
EIGEN2015_SCALE1_STRIDE = 16
# Scale 2 (1/4 resolution): conv 9x9/2, 96 + pool; concat scale 1; three 5x5x64 convs; 5x5 to
# the task's channels. Scale 3 (1/2 resolution): conv 9x9/2, 64; concat scale 2 (x2); two 5x5x64
# convs; 5x5 to the task's channels (Fig. 1).
EIGEN2015_SCALE2_FIRST = (96, 9, 2)
EIGEN2015_SCALE3_FIRST = (64, 9, 2)
EIGEN2015_HIDDEN = 64
EIGEN2015_KERNEL = 5
EIGEN2015_SCALE2_CONVS = 3
EIGEN2015_SCALE3_CONVS = 2
EIGEN2015_TASKS = ("depth", "normals", "labels")
# NYU Depth v2 40-class labelling (Gupta et al. 2013), one of the paper's label sets (4/13/40).
EIGEN2015_NUM_CLASSES = 40


def _check_tasks(tasks):
  try:
    values = tuple(tasks)
  except TypeError:
    values = None
  if (not values or isinstance(tasks, str) or len(set(values)) != len(values)
      or any(t not in EIGEN2015_TASKS for t in values)):
    raise InvalidInputError(
        f"tasks must be a non-empty sequence of distinct names from {EIGEN2015_TASKS}, "
        f"got {tasks!r}")
  return values


def build_eigen2015(input_shape=(224, 288, 3), tasks=EIGEN2015_TASKS,
                    num_classes=EIGEN2015_NUM_CLASSES, fc_units=EIGEN_FC_UNITS,
                    dropout_rate=EIGEN_DROPOUT_RATE, name="eigen2015"):
  """Builds Eigen & Fergus 2015's three-scale network for depth, normals and/or labels.

  Scale 1 (VGG-16 convs + 2 FC layers) is shared by all tasks; scales 2 and 3 are per task (as
  in the paper for depth vs normals; the paper's label network additionally takes depth and
  normals as inputs, which this builder does not do).

  Args:
    input_shape: ``(H, W, 3)``, H and W multiples of 32.
    tasks: subset of ``("depth", "normals", "labels")``.
    num_classes: number of semantic classes (labels task).
    fc_units: hidden FC width of scale 1 (paper 4096).
    dropout_rate: dropout after the hidden FC, in [0, 1).
    name: model name and layer-name prefix.
  Returns:
    Model: float32 RGB ``(B, H, W, 3)`` in [0, 1] -> dict with, per task,
    ``"log_depth"`` ``(B, H, W, 1)`` log(metres) and ``"depth"`` = exp(log_depth) metres;
    ``"normals"`` ``(B, H, W, 3)`` unit vectors (camera frame); ``"label_logits"``
    ``(B, H, W, num_classes)``. Scale-3 outputs (H/2) are upsampled bilinearly x2.
  Raises:
    InvalidInputError: bad shape, tasks, ``num_classes``, ``fc_units`` or dropout.
  """
  _common.check_name(name)
  h, w, c = _common.check_input_shape(input_shape)
  tasks = _check_tasks(tasks)
  for value, arg in ((num_classes, "num_classes"), (fc_units, "fc_units")):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
      raise InvalidInputError(f"{arg} must be a positive int, got {value!r}")
  _common.check_unit_interval(dropout_rate, "dropout_rate")
  layers = keras.layers
  inputs = keras.Input((h, w, c), name=f"{name}_image")
  x0 = encoders.normalize_image(
      inputs, layers, 1.0 / encoders.MONODEPTH2_IMAGE_STD,
      -encoders.MONODEPTH2_IMAGE_MEAN / encoders.MONODEPTH2_IMAGE_STD, f"{name}_normalize")
  # Scale 1 (shared).
  x = x0
  for b, (filters, n) in enumerate(VGG16_BLOCKS, start=1):
    for i in range(1, n + 1):
      x = layers.Conv2D(filters, 3, padding="same", activation="relu",
                        name=f"{name}_scale1_block{b}_conv{i}")(x)
    x = layers.MaxPooling2D(2, name=f"{name}_scale1_block{b}_pool")(x)
  sh, sw = h // EIGEN2015_SCALE1_STRIDE, w // EIGEN2015_SCALE1_STRIDE
  x = layers.Flatten(name=f"{name}_scale1_flatten")(x)
  x = layers.Dense(fc_units, activation="relu", name=f"{name}_scale1_fc1")(x)
  x = layers.Dropout(dropout_rate, name=f"{name}_scale1_dropout")(x)
  x = layers.Dense(sh * sw * EIGEN2015_SCALE1_FEATURES, activation="relu",
                   name=f"{name}_scale1_fc2")(x)
  x = layers.Reshape((sh, sw, EIGEN2015_SCALE1_FEATURES), name=f"{name}_scale1_reshape")(x)
  scale1 = layers.UpSampling2D(4, interpolation="bilinear", name=f"{name}_scale1_up")(x)
  outputs = {}
  for task in tasks:
    channels = {"depth": 1, "normals": 3, "labels": num_classes}[task]
    p = f"{name}_{task}"
    filters, kernel, stride = EIGEN2015_SCALE2_FIRST
    y = layers.Conv2D(filters, kernel, strides=stride, padding="same", activation="relu",
                      name=f"{p}_scale2_conv1")(x0)
    y = layers.MaxPooling2D(2, name=f"{p}_scale2_pool")(y)
    y = layers.Concatenate(name=f"{p}_scale2_concat")([y, scale1])
    for i in range(2, 2 + EIGEN2015_SCALE2_CONVS):
      y = layers.Conv2D(EIGEN2015_HIDDEN, EIGEN2015_KERNEL, padding="same", activation="relu",
                        name=f"{p}_scale2_conv{i}")(y)
    y = layers.Conv2D(channels, EIGEN2015_KERNEL, padding="same", name=f"{p}_scale2_out")(y)
    y = layers.UpSampling2D(2, interpolation="bilinear", name=f"{p}_scale2_up")(y)
    filters, kernel, stride = EIGEN2015_SCALE3_FIRST
    z = layers.Conv2D(filters, kernel, strides=stride, padding="same", activation="relu",
                      name=f"{p}_scale3_conv1")(x0)
    z = layers.Concatenate(name=f"{p}_scale3_concat")([z, y])
    for i in range(2, 2 + EIGEN2015_SCALE3_CONVS):
      z = layers.Conv2D(EIGEN2015_HIDDEN, EIGEN2015_KERNEL, padding="same", activation="relu",
                        name=f"{p}_scale3_conv{i}")(z)
    z = layers.Conv2D(channels, EIGEN2015_KERNEL, padding="same", name=f"{p}_scale3_out")(z)
    z = layers.UpSampling2D(2, interpolation="bilinear", name=f"{p}_up")(z)
    if task == "depth":
      outputs["log_depth"] = layers.Activation("linear", name=f"{name}_log_depth")(z)
      outputs["depth"] = layers.Activation("exponential", name=f"{name}_depth")(z)
    elif task == "normals":
      outputs["normals"] = layers.UnitNormalization(axis=-1, name=f"{name}_normals")(z)
    else:
      outputs["label_logits"] = layers.Activation("linear", name=f"{name}_label_logits")(z)
  return keras.Model(inputs, outputs, name=name)


__all__ = ["build_eigen2014", "build_eigen2015"]
