"""Shared helpers of `tfdepth.losses`: input checks, masks and NaN-free reductions.

Every helper works eagerly, inside `tf.function` and under XLA (`jit_compile=True`) with an unknown
batch size: shape checks look only at static ranks / channel counts, never at the batch dimension.
"""

import numpy as np
import tensorflow as tf

from tfdepth.errors import InvalidInputError

# Smallest depth (metres) fed to `log`: predictions below it are clamped so that log(0) = -inf
# never appears. 1e-6 m is far below any sensor or network output range (KITTI min depth is
# 1e-3 m in the evaluation protocol of Eigen et al. 2014 / Monodepth2), so valid values are untouched.
LOG_DEPTH_FLOOR = 1e-6

# Below this value `safe_sqrt` returns 0 with a zero gradient instead of sqrt's infinite slope at 0
# (a NaN once multiplied by the zero upstream gradient of a perfect prediction). 1e-12 is far below
# the float32 resolution of any loss value we take roots of (they are O(1e-4) or larger).
SQRT_FLOOR = 1e-12


def to_float(x, name):
  """Converts `x` to a float32 tensor (losses always compute in float32, also under mixed precision)."""
  try:
    x = tf.convert_to_tensor(x)
  except (TypeError, ValueError) as e:
    raise InvalidInputError(f"{name}: expected a numeric tensor, received {x!r} ({e})") from e
  if not (x.dtype.is_floating or x.dtype.is_integer or x.dtype == tf.bool):
    raise InvalidInputError(f"{name}: expected a float tensor, received dtype {x.dtype.name}")
  return tf.cast(x, tf.float32)


def check_rank(x, rank, name, channels=None):
  """Raises InvalidInputError unless `x` has static rank `rank` (and `channels` in the last axis)."""
  if x.shape.rank is None:
    raise InvalidInputError(f"{name}: expected a tensor of known rank {rank}, received unknown rank")
  if x.shape.rank != rank:
    raise InvalidInputError(
        f"{name}: expected a rank-{rank} tensor (rank 4 = (B, H, W, C)), received shape {x.shape}")
  if channels is not None and x.shape[-1] is not None and x.shape[-1] != channels:
    raise InvalidInputError(
        f"{name}: expected {channels} channel(s) in the last axis, received shape {x.shape}")


def check_same_hw(a, b, name_a, name_b):
  """Raises InvalidInputError when the static (H, W) of two NHWC tensors are known and differ."""
  for axis in (1, 2):
    sa, sb = a.shape[axis], b.shape[axis]
    if sa is not None and sb is not None and sa != sb:
      raise InvalidInputError(
          f"{name_a} has shape {a.shape} and {name_b} has shape {b.shape}: expected the same "
          "height and width")


def check_same_shape(a, b, name_a, name_b):
  """Raises InvalidInputError when the static shapes of `a` and `b` are incompatible."""
  if not a.shape.is_compatible_with(b.shape):
    raise InvalidInputError(
        f"{name_a} has shape {a.shape} and {name_b} has shape {b.shape}: expected equal shapes")


def depth_inputs(pred, target, mask, pred_name="pred", target_name="target"):
  """Validates a (pred, target, mask) depth triple and neutralises its invalid pixels.

  A pixel is valid where `target` is finite and > 0 **and** `mask` (if given) is > 0. At every other
  pixel both returned `pred` and `target` are replaced by 1.0 with `tf.where` (the "double where"
  pattern), so whatever they held there -- NaN, ±inf, 0, negatives -- never enters the loss
  arithmetic: the value is finite and the gradient with respect to the caller's `pred` (and
  `target`) is exactly 0 at invalid pixels. Multiplying by `valid` alone is not enough: inf·0 = NaN in
  the value, and 0·NaN = NaN in the backward pass of the op that saw the non-finite entry.
  A non-finite `pred` at a *valid* pixel is left alone (it is a real error and shows up as NaN/inf).

  Args:
    pred: (B, H, W, 1) predicted depth (metres).
    target: (B, H, W, 1) ground-truth depth (metres); 0 (and NaN / ±inf) = invalid (DESIGN.md).
    mask: None or (B, H, W, 1) {0, 1} mask (float or bool).
  Returns:
    (pred, target, valid): (B, H, W, 1) float32 tensors; `valid` is 1 where the pixel is valid, 0
    elsewhere; `pred` and `target` equal the inputs where valid and 1.0 elsewhere.
  """
  pred = to_float(pred, pred_name)
  target = to_float(target, target_name)
  check_rank(pred, 4, pred_name, channels=1)
  check_rank(target, 4, target_name, channels=1)
  check_same_shape(pred, target, pred_name, target_name)
  ok = (target > 0.0) & tf.math.is_finite(target)
  if mask is not None:
    mask = to_float(mask, "mask")
    check_rank(mask, 4, "mask", channels=1)
    check_same_shape(mask, target, "mask", target_name)
    ok = ok & (mask > 0.0)
  pred = tf.where(ok, pred, 1.0)
  target = tf.where(ok, target, 1.0)
  return pred, target, tf.cast(ok, tf.float32)


def safe_log_pred(pred):
  """log of a predicted depth, clamped at LOG_DEPTH_FLOOR (finite value and gradient at 0)."""
  return tf.math.log(tf.maximum(pred, LOG_DEPTH_FLOOR))


def safe_log_target(target, valid):
  """log of ground truth where `valid`, 0 elsewhere (no log(0); zero gradient at invalid pixels)."""
  return tf.where(valid > 0.0, tf.math.log(tf.where(valid > 0.0, target, 1.0)), 0.0)


def safe_sqrt(x):
  """sqrt(x) for x > SQRT_FLOOR, else 0 (value and gradient), so sqrt(0) never yields NaN gradients."""
  positive = x > SQRT_FLOOR
  return tf.where(positive, tf.sqrt(tf.where(positive, x, 1.0)), 0.0)


def masked_image_mean(values, weights):
  """Per-image weighted mean sum(values·w) / sum(w) over all non-batch axes; 0 where sum(w) = 0.

  Args:
    values: (B, ...) float32, finite wherever `weights` is nonzero. Values at zero-weight entries are
      replaced by 0 first, so inf/NaN there cannot leak into the returned **value**. This does not
      protect the **gradient**: the backward pass of the op that produced a non-finite entry
      multiplies its (zero) upstream gradient by a non-finite local derivative, giving NaN. Callers
      must therefore replace invalid inputs *before* computing `values` (e.g. `depth_inputs`, or
      `tf.where(ok, x, safe)` on the inputs).
    weights: broadcastable to `values`, float32 >= 0.
  Returns:
    (B,) float32.
  """
  weights = tf.broadcast_to(weights, tf.shape(values))
  values = tf.where(weights > 0.0, values, 0.0)
  axes = list(range(1, values.shape.rank))
  return tf.math.divide_no_nan(tf.reduce_sum(values * weights, axis=axes),
                               tf.reduce_sum(weights, axis=axes))


def image_mean(values):
  """Per-image mean over all non-batch axes: (B, ...) -> (B,)."""
  return tf.reduce_mean(values, axis=list(range(1, values.shape.rank)))


def check_fraction(value, name, low=0.0, high=1.0):
  """Raises InvalidInputError unless low <= value <= high (a Python number)."""
  try:
    v = float(value)
  except (TypeError, ValueError) as e:
    raise InvalidInputError(f"{name}: expected a number in [{low}, {high}], received {value!r}") from e
  if not low <= v <= high:
    raise InvalidInputError(f"{name}: expected a number in [{low}, {high}], received {value!r}")
  return v


def check_positive(value, name):
  """Raises InvalidInputError unless value > 0 (a Python number)."""
  try:
    v = float(value)
  except (TypeError, ValueError) as e:
    raise InvalidInputError(f"{name}: expected a positive number, received {value!r}") from e
  if not v > 0.0:
    raise InvalidInputError(f"{name}: expected a positive number, received {value!r}")
  return v


def stateless_seed(seed):
  """A seed for `tf.random.stateless_*`: int -> [seed, 0]; shape-(2,) integer tensors pass through."""
  if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
    return tf.constant([int(seed), 0], tf.int32)
  try:
    seed_t = tf.convert_to_tensor(seed)
  except (TypeError, ValueError) as e:
    raise InvalidInputError(f"seed: expected an int or a shape-(2,) integer tensor, received {seed!r}") from e
  if not seed_t.dtype.is_integer or seed_t.shape.rank != 1 or seed_t.shape[0] != 2:
    raise InvalidInputError(f"seed: expected an int or a shape-(2,) integer tensor, received {seed!r}")
  return tf.cast(seed_t, tf.int32)
