"""Photometric (reprojection) losses of Monodepth2 (Godard et al. 2019): SSIM, per-pixel minimum
reprojection and auto-masking.

All images are float32 NHWC in [0, 1] (docs/DESIGN.md). Error maps are `(B, H, W, 1)`.
Matches the released Monodepth2 code (`layers.py` `SSIM`, `trainer.py` `compute_reprojection_loss`
and `compute_losses`), see docs/reference-conventions.md "Losses (Monodepth2)".
"""

import tensorflow as tf

from tfdepth.errors import InvalidInputError
from tfdepth.losses import _common

# Monodepth2 `layers.SSIM`: C1 = 0.01², C2 = 0.03² (Wang et al. 2004 with L = 1, K1 = 0.01,
# K2 = 0.03), 3×3 average-pooling window, reflection padding by 1.
SSIM_C1 = 0.01 ** 2
SSIM_C2 = 0.03 ** 2
SSIM_WINDOW = 3
# Monodepth2 `trainer.compute_reprojection_loss`: 0.85·SSIM + 0.15·L1 (Godard et al. 2017, Eq. 2).
PHOTOMETRIC_ALPHA = 0.85
# Monodepth2 `trainer.compute_losses`: identity reprojection loss += randn · 0.00001 (tie-break).
AUTOMASK_NOISE_SCALE = 1e-5


def _image(x, name):
  x = _common.to_float(x, name)
  _common.check_rank(x, 4, name)
  return x


def ssim(x, y):
  """Per-pixel, per-channel SSIM map as in Monodepth2 (Godard et al. 2019, `layers.SSIM`).

  Reflection padding by 1 (mirror without repeating the edge pixel), 3×3 average pooling, biased
  (population) variances, C1 = 0.01², C2 = 0.03².

  Args:
    x: (B, H, W, C) float image in [0, 1], H, W >= 2.
    y: (B, H, W, C) float image in [0, 1].
  Returns:
    (B, H, W, C) float32 SSIM in [−1, 1]; SSIM(x, x) = 1.
  Raises:
    InvalidInputError: ranks != 4 or mismatched shapes.
  """
  x = _image(x, "x")
  y = _image(y, "y")
  _common.check_same_shape(x, y, "x", "y")
  pad = SSIM_WINDOW // 2
  paddings = [[0, 0], [pad, pad], [pad, pad], [0, 0]]
  x = tf.pad(x, paddings, mode="REFLECT")
  y = tf.pad(y, paddings, mode="REFLECT")

  def pool(z):
    return tf.nn.avg_pool2d(z, SSIM_WINDOW, 1, "VALID")

  mu_x = pool(x)
  mu_y = pool(y)
  sigma_x = pool(x * x) - mu_x * mu_x
  sigma_y = pool(y * y) - mu_y * mu_y
  sigma_xy = pool(x * y) - mu_x * mu_y
  numerator = (2.0 * mu_x * mu_y + SSIM_C1) * (2.0 * sigma_xy + SSIM_C2)
  denominator = (mu_x * mu_x + mu_y * mu_y + SSIM_C1) * (sigma_x + sigma_y + SSIM_C2)
  return numerator / denominator


def ssim_loss_map(x, y):
  """Monodepth2's SSIM loss: clip((1 − SSIM(x, y)) / 2, 0, 1), (B, H, W, C) float32."""
  return tf.clip_by_value((1.0 - ssim(x, y)) / 2.0, 0.0, 1.0)


def photometric_error(pred, target, alpha=PHOTOMETRIC_ALPHA):
  """Per-pixel reprojection error of Monodepth2 (`compute_reprojection_loss`).

  e = α·mean_c(SSIM loss) + (1 − α)·mean_c |target − pred| (channel means first).

  Args:
    pred: (B, H, W, C) float image in [0, 1] (a warped source frame).
    target: (B, H, W, C) float image in [0, 1].
    alpha: SSIM weight in [0, 1] (Monodepth2: 0.85).
  Returns:
    (B, H, W, 1) float32 error, 0 for identical images.
  Raises:
    InvalidInputError: ranks != 4, mismatched shapes, alpha outside [0, 1].
  """
  alpha = _common.check_fraction(alpha, "alpha")
  pred = _image(pred, "pred")
  target = _image(target, "target")
  _common.check_same_shape(pred, target, "pred", "target")
  l1 = tf.reduce_mean(tf.abs(target - pred), axis=-1, keepdims=True)
  if alpha == 0.0:
    return l1
  ssim_term = tf.reduce_mean(ssim_loss_map(pred, target), axis=-1, keepdims=True)
  return alpha * ssim_term + (1.0 - alpha) * l1


def _error_stack(errors, name):
  if isinstance(errors, tf.Tensor):
    raise InvalidInputError(
        f"{name}: expected a list of (B, H, W, 1) error maps, received a single tensor of shape "
        f"{errors.shape}; wrap it in a list")
  errors = list(errors)
  if not errors:
    raise InvalidInputError(f"{name}: expected at least one (B, H, W, 1) error map, received []")
  out = []
  for i, e in enumerate(errors):
    e = _common.to_float(e, f"{name}[{i}]")
    _common.check_rank(e, 4, f"{name}[{i}]", channels=1)
    _common.check_same_shape(e, out[0] if out else e, f"{name}[{i}]", f"{name}[0]")
    out.append(e)
  return tf.concat(out, axis=-1)


def min_reprojection(errors):
  """Per-pixel minimum over reprojection errors (Monodepth2, Godard et al. 2019, Eq. 4).

  Args:
    errors: non-empty list of (B, H, W, 1) float error maps (one per source frame).
  Returns:
    min_error: (B, H, W, 1) float32; argmin: (B, H, W, 1) int32 index into `errors` (the first
    index wins ties). The gradient flows only into the selected map (as with `torch.min`).
  Raises:
    InvalidInputError: empty list, a bare tensor, wrong ranks or mismatched shapes.
  """
  stack = _error_stack(errors, "errors")
  return _min_and_argmin(stack)


def _min_and_argmin(stack):
  """Minimum over the last axis and its first index; like `torch.min(dim)`, the gradient goes only
  to the selected entry (tf.reduce_min would split it between ties)."""
  argmin = tf.argmin(stack, axis=-1, output_type=tf.int32)
  one_hot = tf.one_hot(argmin, tf.shape(stack)[-1], dtype=stack.dtype)
  min_error = tf.reduce_sum(tf.where(one_hot > 0.0, stack, 0.0), axis=-1, keepdims=True)
  return min_error, argmin[..., None]


def automask(reprojection_errors, identity_errors, seed=0, noise_scale=AUTOMASK_NOISE_SCALE):
  """Monodepth2 auto-masking (Godard et al. 2019, Sec. 3.3 "Auto-masking stationary pixels").

  Identity errors (unwarped sources vs target) get Gaussian tie-break noise · `noise_scale` and are
  concatenated *before* the reprojection errors; the per-pixel minimum over all of them is the loss
  to optimise, and a pixel is kept (mask 1) where a warped prediction attains the minimum (an
  exact tie goes to the identity error, as `torch.min` returns the first index).

  Args:
    reprojection_errors: non-empty list of (B, H, W, 1) errors of the warped sources.
    identity_errors: non-empty list of (B, H, W, 1) errors of the unwarped sources.
    seed: int or shape-(2,) integer tensor for `tf.random.stateless_normal`: the noise is a
      deterministic function of the seed (pass a step-dependent seed during training); XLA lowers
      the stateless RNG differently from the eager kernel, so the two draw different noise.
    noise_scale: standard deviation of the tie-break noise (Monodepth2: 1e-5); 0 disables it.
  Returns:
    min_error: (B, H, W, 1) float32 combined minimum; mask: (B, H, W, 1) float32 in {0, 1}
    (1 = a warped prediction wins). No gradient flows into the identity errors through the noise.
  Raises:
    InvalidInputError: empty lists, wrong ranks, mismatched shapes, negative noise_scale.
  """
  scale = float(noise_scale)
  if not scale >= 0.0:
    raise InvalidInputError(f"noise_scale: expected a number >= 0, received {noise_scale!r}")
  reprojection = _error_stack(reprojection_errors, "reprojection_errors")
  identity = _error_stack(identity_errors, "identity_errors")
  _common.check_same_hw(reprojection, identity, "reprojection_errors", "identity_errors")
  num_identity = identity.shape[-1]
  if scale > 0.0:
    noise = tf.random.stateless_normal(tf.shape(identity), seed=_common.stateless_seed(seed))
    identity = identity + scale * noise
  combined = tf.concat([identity, reprojection], axis=-1)
  min_error, idx = _min_and_argmin(combined)
  mask = tf.cast(idx >= num_identity, tf.float32)
  return min_error, mask
