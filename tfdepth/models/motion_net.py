"""Motion-field network of Li et al. 2021 (Li, Gordon, Zhao, Casser, Angelova, "Unsupervised
Monocular Depth Learning in Dynamic Scenes", CoRL 2020; released code
`google-research/depth_and_motion_learning`, `object_motion_nets.py::motion_field_net`,
`add_intrinsics_head`, `create_scales`).

The network sees a pair of frames with their predicted depths stacked on the channel axis,
`[rgb_1, depth_1, rgb_2, depth_2]` (8 channels, the released model's `cascade=True` input), and
predicts the motion that maps frame-1 camera points into frame 2's camera:

  p_2 = R · p_1 + (t + δt(u, v)),

with R from three Euler angles (R = Rx·Ry·Rz, `tfdepth.geometry.euler_to_matrix`), a global camera
translation t and a residual (object) translation field δt at full resolution, indexed by frame-1
pixels. Optionally it also predicts the camera intrinsics of the pair.

Architecture (released code): seven 3×3 stride-2 ReLU convolutions (16, 32, …, 1024 channels), a
global-average-pooled bottleneck, a 1×1 convolution to 6 background-motion values (no bias), a 1×1
convolution of those to a 1×1 residual translation, refined coarse-to-fine through every encoder
level and finally the input (`_refine_motion_field`: bilinear upsampling, two 3×3 conv branches of
max(4, C) channels, a 1×1 conv to 3 added to the upsampled field). Rotation and translations are
multiplied by learned scalars (initial 0.01, kept ≥ 0.001).

Differences from the released code, on purpose:
  * Upsampling uses `keras.layers.Resizing` (bilinear, half-pixel centres); the released code uses
    `align_corners=True`.
  * Both focal lengths are fractions of the image WIDTH (released: fx of W, fy of H), so that the
    initial point (raw 0) has square pixels, fx = fy = 0.70·W, as every real camera nearly has.
    The released initial fy = 0.70·H is off by the aspect ratio: at 64×192, 44 px for a true
    ≈ 123 px (KITTI's fy = 1.92·H, the synthetic world's default), and after 250 training steps
    of `benchmarks/dynamic_learning.py` the learned fy was still 85 % off. This fixes the start
    only: with it the learned focal lengths still drift in that benchmark (README "Dynamic
    scenes": the K head predicts one K for every clip in that budget).
  * `PerVideoIntrinsics` (not a head of this network): one learned K per video, the paper's
    "intrinsics learned per video", used by `trainers.dynamic` with
    `DynamicConfig.intrinsics_videos`.
  * The principal point is squashed by a sigmoid so that it always lies in [0, W] × [0, H]
    (released: unbounded offset), and the focal fractions are clipped to
    [`INTRINSICS_MIN_FOCAL_FRACTION`, `INTRINSICS_MAX_FOCAL_FRACTION` + min] so that K is finite
    and invertible for any raw output (see `intrinsics_from_raw`).
  * The released `auto_mask` of the residual field (zero below its mean magnitude) is applied by
    the trainer (`trainers.dynamic`), per image rather than over the batch.
  * `base_channels` (default 16, the released value) scales every channel count, for small tests.
"""

import math

import keras
import tensorflow as tf

from tfdepth.errors import InvalidInputError
from tfdepth.models import _common

# object_motion_nets.py motion_field_net: Conv1..Conv7, 3x3, stride 2, ReLU, 16·2^i channels.
MOTION_NUM_LEVELS = 7
MOTION_BASE_CHANNELS = 16
MOTION_KERNEL_SIZE = 3
MOTION_STRIDE = 2
# _refine_motion_field: conv widths max(4, C) of the level being refined.
REFINE_MIN_CHANNELS = 4
# Input: RGB (3) + depth (1) per frame, two frames (`cascade=True`).
MOTION_INPUT_CHANNELS = 8
# Rotation (3 Euler angles, radians) and translation (3, metres) of the background motion.
ROTATION_SIZE = 3
TRANSLATION_SIZE = 3
# create_scales(constraint_minimum=0.001): learned scalars initialised at 0.01.
MOTION_SCALE_INIT = 0.01
MOTION_SCALE_MIN = 0.001
# add_intrinsics_head: fx = softplus(raw)·W, fy = softplus(raw)·H, cx = (offset + 0.5)·W,
# cy = (offset + 0.5)·H. tfdepth: fy = softplus(raw)·W too (square pixels at the initial point,
# see the module docstring). tfdepth bounds: offset = sigmoid(raw) − 0.5 (principal point in
# [0, W]), focal fraction clipped to at most 100 (a 0.57° field of view) plus a floor of 0.01 (a 178.9°
# field of view) so that fx, fy > 0 even where softplus underflows to 0 (tfdepth choice).
INTRINSICS_PRINCIPAL_POINT_CENTRE = 0.5
INTRINSICS_MIN_FOCAL_FRACTION = 0.01
INTRINSICS_MAX_FOCAL_FRACTION = 100.0


def _level_sizes(height, width, levels):
  """Spatial sizes of the 'same'-padded stride-2 levels: ceil(n / 2) per level."""
  sizes = []
  h, w = height, width
  for _ in range(levels):
    h, w = int(math.ceil(h / MOTION_STRIDE)), int(math.ceil(w / MOTION_STRIDE))
    sizes.append((h, w))
  return sizes


def intrinsics_from_raw(raw_focal, raw_offset, height, width):
  """Camera intrinsics K from raw network outputs, always valid (Li et al. 2021 parametrisation).

    fx = (min(softplus(a_x), 100) + 0.01)·W,   fy = (min(softplus(a_y), 100) + 0.01)·W,
    cx = (0.5 + (sigmoid(b_x) − 0.5))·W = sigmoid(b_x)·W,   cy = sigmoid(b_y)·H,

  released `add_intrinsics_head` with fy relative to the width and the bounds described in the
  module docstring. For any non-NaN input (±inf included) fx, fy ∈ [0.01·W, 100.01·W] and
  (cx, cy) ∈ [0, W] × [0, H]; raw = 0 gives fx = fy = 0.703·W (released fx), cx = 0.5·W,
  cy = 0.5·H.

  Args:
    raw_focal: (B, 2) float, raw focal outputs (x, y).
    raw_offset: (B, 2) float, raw principal-point outputs (x, y).
    height, width: image size in pixels (Python numbers or scalar tensors), the resolution K is
      expressed in.
  Returns:
    (B, 3, 3) float32 K in pixels, last row [0, 0, 1].
  Raises:
    InvalidInputError: raw inputs not (B, 2).
  """
  focal = tf.cast(tf.convert_to_tensor(raw_focal), tf.float32)
  offset = tf.cast(tf.convert_to_tensor(raw_offset), tf.float32)
  for t, name in ((focal, "raw_focal"), (offset, "raw_offset")):
    if t.shape.rank != 2 or t.shape[-1] != 2:
      raise InvalidInputError(f"{name}: expected shape (B, 2), received {t.shape}")
  size = tf.stack([tf.cast(width, tf.float32), tf.cast(height, tf.float32)])
  fraction = tf.minimum(tf.nn.softplus(focal), INTRINSICS_MAX_FOCAL_FRACTION)
  foci = (fraction + INTRINSICS_MIN_FOCAL_FRACTION) * size[0]
  centre = (INTRINSICS_PRINCIPAL_POINT_CENTRE + (tf.sigmoid(offset) - 0.5)) * size
  zeros = tf.zeros_like(foci[:, 0])
  ones = tf.ones_like(zeros)
  return tf.stack([
      tf.stack([foci[:, 0], zeros, centre[:, 0]], axis=-1),
      tf.stack([zeros, foci[:, 1], centre[:, 1]], axis=-1),
      tf.stack([zeros, zeros, ones], axis=-1)], axis=-2)


@keras.saving.register_keras_serializable(package="tfdepth")
class LearnedMotionScale(keras.layers.Layer):
  """Multiplies its input by one learned scalar kept ≥ `minimum` (released `create_scales`).

  The released code applies the constraint relu(x − min) + min after each update; here the
  forward pass uses max(scale, minimum), which gives the same values whenever the variable has
  been constrained and keeps the layer independent of the optimizer.

  Args:
    initial: initial value of the scalar (released: 0.01).
    minimum: lower bound (released: 0.001).
  """

  def __init__(self, initial=MOTION_SCALE_INIT, minimum=MOTION_SCALE_MIN, **kwargs):
    super().__init__(**kwargs)
    initial = _common.check_positive(initial, "initial")
    minimum = _common.check_positive(minimum, "minimum")
    if initial < minimum:
      raise InvalidInputError(
          f"initial expected >= minimum={minimum}, received initial={initial}")
    self.initial = initial
    self.minimum = minimum

  def build(self, input_shape):
    self.scale = self.add_weight(
        name="scale", shape=(), initializer=keras.initializers.Constant(self.initial),
        constraint=keras.constraints.NonNeg(), trainable=True)
    super().build(input_shape)

  def call(self, inputs):
    return inputs * tf.cast(tf.maximum(self.scale, self.minimum), inputs.dtype)

  def compute_output_shape(self, input_shape):
    return input_shape

  def get_config(self):
    return {**super().get_config(), "initial": self.initial, "minimum": self.minimum}


@keras.saving.register_keras_serializable(package="tfdepth")
class IntrinsicsFromRaw(keras.layers.Layer):
  """Keras wrapper of `intrinsics_from_raw`: (B, 1, 1, 2) focal and offset maps -> K (B, 3, 3).

  Args:
    height, width: image size in pixels (positive ints).
  """

  def __init__(self, height, width, **kwargs):
    # float32 whatever the global policy: K in pixels needs float32 (see PerVideoIntrinsics), and
    # a bfloat16 compute dtype would round the raw inputs on the way in.
    kwargs.setdefault("dtype", INTRINSICS_DTYPE)
    super().__init__(**kwargs)
    for v, n in ((height, "height"), (width, "width")):
      if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
        raise InvalidInputError(f"{n} expected a positive int, received {v!r}")
    self.height = height
    self.width = width

  def call(self, raw_focal, raw_offset):
    focal = tf.reshape(tf.cast(raw_focal, tf.float32), [-1, 2])
    offset = tf.reshape(tf.cast(raw_offset, tf.float32), [-1, 2])
    return intrinsics_from_raw(focal, offset, self.height, self.width)

  def compute_output_shape(self, raw_focal_shape, raw_offset_shape):
    return (raw_focal_shape[0], 3, 3)

  def get_config(self):
    return {**super().get_config(), "height": self.height, "width": self.width}


# PerVideoIntrinsics: K = intrinsics_from_raw(gain · raw). Adam moves a variable by about the
# learning rate per step whatever its gradient's scale, so a gain g lets a per-video focal length
# change by up to ~0.72·g·lr in log per step (d log softplus(z) / dz = 0.72 at z = 0): at Li et
# al.'s lr 2e-4 and g = 50, ~0.7 % per step. A per-video K is a single variable that every batch
# of its video updates, unlike the motion net's intrinsics head, whose output moves through
# ~10^7 weights; without the gain it could move by at most ~4 % in 300 steps (tfdepth choice,
# README "Dynamic scenes").
PER_VIDEO_INTRINSICS_GAIN = 50.0
# Dtype policy of the intrinsics layers (`PerVideoIntrinsics`, `IntrinsicsFromRaw` and the motion
# net's intrinsics head convs) under any global policy: bfloat16 keeps 8 bits of mantissa, i.e.
# steps of 4 px at fx ~ 1000 px, and the raw values pass through softplus / sigmoid and a
# multiplication by the image size (tfdepth choice).
INTRINSICS_DTYPE = "float32"


@keras.saving.register_keras_serializable(package="tfdepth")
class PerVideoIntrinsics(keras.layers.Layer):
  """One learned K per video (Li et al. 2021's "intrinsics learned per video"), by video index.

  The layer holds raw focal (N, 2) and principal-point (N, 2) variables, initialised at 0 (K at
  raw 0: fx = fy = 0.703·W, principal point at the image centre) and maps them with
  `intrinsics_from_raw(gain · raw)`, so K is valid for any variable value.

  Args:
    num_videos: N, a positive int (1 = one global K).
    height, width: image size in pixels (positive ints) that K is expressed in.
    gain: positive multiplier of the raw variables (`PER_VIDEO_INTRINSICS_GAIN`).
  Call:
    video_index: (B,) int, values in [0, N) (InvalidArgumentError otherwise).
  Returns:
    (B, 3, 3) float32 K in pixels of (height, width).
  """

  def __init__(self, num_videos, height, width, gain=PER_VIDEO_INTRINSICS_GAIN, **kwargs):
    # float32 whatever the global policy (`INTRINSICS_DTYPE`): under mixed_bfloat16 Keras would
    # autocast the float32 variables to bfloat16 inside `call`, and the gain amplifies that
    # rounding (fx off by ~2 px at 64x192).
    kwargs.setdefault("dtype", INTRINSICS_DTYPE)
    super().__init__(**kwargs)
    for v, n in ((num_videos, "num_videos"), (height, "height"), (width, "width")):
      if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
        raise InvalidInputError(f"{n} expected a positive int, received {v!r}")
    self.num_videos = num_videos
    self.height = height
    self.width = width
    self.gain = _common.check_positive(gain, "gain")
    self.raw_focal = self.add_weight(name="raw_focal", shape=(num_videos, 2),
                                     initializer="zeros", trainable=True)
    self.raw_offset = self.add_weight(name="raw_offset", shape=(num_videos, 2),
                                      initializer="zeros", trainable=True)
    self.built = True   # the variables do not depend on the input

  def call(self, video_index):
    index = tf.cast(video_index, tf.int32)
    if index.shape.rank != 1:
      raise InvalidInputError(f"video_index: expected shape (B,), received {index.shape}")
    message = f"video_index expected values in [0, {self.num_videos})"
    tf.debugging.assert_less(index, self.num_videos, message=message)
    tf.debugging.assert_non_negative(index, message=message)
    focal = tf.gather(tf.cast(self.raw_focal, tf.float32), index) * self.gain
    offset = tf.gather(tf.cast(self.raw_offset, tf.float32), index) * self.gain
    return intrinsics_from_raw(focal, offset, self.height, self.width)

  def compute_output_shape(self, input_shape):
    return (input_shape[0], 3, 3)

  def get_config(self):
    return {**super().get_config(), "num_videos": self.num_videos, "height": self.height,
            "width": self.width, "gain": self.gain}


def _conv(filters, kernel, name, activation="relu", strides=1, use_bias=True, dtype=None):
  return keras.layers.Conv2D(filters, kernel, strides=strides, padding="same",
                             activation=activation, use_bias=use_bias, name=name, dtype=dtype)


def _refine(field, layer, size, name):
  """Released `_refine_motion_field`: upsample `field` to `layer`'s size and add a correction."""
  channels = max(REFINE_MIN_CHANNELS, int(layer.shape[-1]))
  up = keras.layers.Resizing(size[0], size[1], interpolation="bilinear", name=f"{name}_up")(field)
  x = keras.layers.Concatenate(name=f"{name}_concat")([up, layer])
  a = _conv(channels, MOTION_KERNEL_SIZE, f"{name}_conv_a")(x)
  b = _conv(channels, MOTION_KERNEL_SIZE, f"{name}_conv_b0")(x)
  b = _conv(channels, MOTION_KERNEL_SIZE, f"{name}_conv_b1")(b)
  ab = keras.layers.Concatenate(name=f"{name}_branches")([a, b])
  delta = _conv(int(field.shape[-1]), 1, f"{name}_delta", activation=None, use_bias=False)(ab)
  return keras.layers.Add(name=f"{name}_add")([up, delta])


def build_motion_net(input_shape=(128, 416, MOTION_INPUT_CHANNELS), learn_intrinsics=False,
                     base_channels=MOTION_BASE_CHANNELS, name="motion_net"):
  """Li et al. 2021 motion-field network (released `motion_field_net`).

  Args:
    input_shape: (H, W, 8): `[rgb_1 (3, [0, 1]), depth_1 (1, metres), rgb_2, depth_2]` stacked on
      channels (released input size 128×416). Any positive H, W.
    learn_intrinsics: add the intrinsics head (`"intrinsics"` output).
    base_channels: channels of the first level (released 16; level i has base·2^i).
    name: model name and layer-name prefix.
  Returns:
    keras.Model (B, H, W, 8) float32 -> dict of float32:
      "rotation" (B, 3) Euler angles (radians, R = Rx·Ry·Rz) of frame2_from_frame1;
      "translation" (B, 3) camera translation (metres, in frame-2 camera axes);
      "residual_translation" (B, H, W, 3) object translation field at frame-1 pixels (metres);
      with `learn_intrinsics`, "intrinsics" (B, 3, 3) K in pixels of (H, W)
      (`intrinsics_from_raw`).
  Raises:
    InvalidInputError: bad shape, channel count or `base_channels`.
  """
  _common.check_name(name)
  h, w, _ = _common.check_input_shape(input_shape, channels=MOTION_INPUT_CHANNELS, multiple=1)
  if isinstance(base_channels, bool) or not isinstance(base_channels, int) or base_channels <= 0:
    raise InvalidInputError(f"base_channels expected a positive int, received {base_channels!r}")
  if not isinstance(learn_intrinsics, bool):
    raise InvalidInputError(f"learn_intrinsics expected a bool, received {learn_intrinsics!r}")
  inputs = keras.Input(shape=(h, w, MOTION_INPUT_CHANNELS), name=f"{name}_pair")
  levels = []
  x = inputs
  for i in range(MOTION_NUM_LEVELS):
    x = _conv(base_channels * 2 ** i, MOTION_KERNEL_SIZE, f"{name}_conv{i + 1}",
              strides=MOTION_STRIDE)(x)
    levels.append(x)
  sizes = _level_sizes(h, w, MOTION_NUM_LEVELS)
  bottleneck = keras.layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}_bottleneck")(x)
  # One 1x1 conv to 6 values without bias, split as two 3-channel convs (identical maps).
  rotation = _conv(ROTATION_SIZE, 1, f"{name}_rotation", activation=None, use_bias=False)(
      bottleneck)
  translation = _conv(TRANSLATION_SIZE, 1, f"{name}_background_translation", activation=None,
                      use_bias=False)(bottleneck)
  background = keras.layers.Concatenate(name=f"{name}_background_motion")([rotation, translation])
  residual = _conv(TRANSLATION_SIZE, 1, f"{name}_unrefined_residual", activation=None)(background)
  for i in range(MOTION_NUM_LEVELS - 1, -1, -1):
    residual = _refine(residual, levels[i], sizes[i], f"{name}_refine{i + 1}")
  residual = _refine(residual, inputs, (h, w), f"{name}_refine0")

  rot_scale = LearnedMotionScale(name=f"{name}_rotation_scale")
  trans_scale = LearnedMotionScale(name=f"{name}_translation_scale")
  outputs = {
      "rotation": rot_scale(keras.layers.Flatten(name=f"{name}_rotation_flat")(rotation)),
      "translation": trans_scale(
          keras.layers.Flatten(name=f"{name}_translation_flat")(translation)),
      "residual_translation": trans_scale(residual),
  }
  if learn_intrinsics:
    # float32 head (`INTRINSICS_DTYPE`): its 1x1 convs cast the bfloat16 bottleneck up exactly.
    focal = _conv(2, 1, f"{name}_intrinsics_focal", activation=None,
                  dtype=INTRINSICS_DTYPE)(bottleneck)
    offset = _conv(2, 1, f"{name}_intrinsics_offset", activation=None, use_bias=False,
                   dtype=INTRINSICS_DTYPE)(bottleneck)
    outputs["intrinsics"] = IntrinsicsFromRaw(h, w, name=f"{name}_intrinsics")(focal, offset)
  return keras.Model(inputs, outputs, name=name)


__all__ = [
    "INTRINSICS_DTYPE", "INTRINSICS_MAX_FOCAL_FRACTION", "INTRINSICS_MIN_FOCAL_FRACTION", "IntrinsicsFromRaw",
    "LearnedMotionScale", "MOTION_BASE_CHANNELS", "MOTION_INPUT_CHANNELS",
    "PER_VIDEO_INTRINSICS_GAIN", "PerVideoIntrinsics", "build_motion_net", "intrinsics_from_raw",
]
