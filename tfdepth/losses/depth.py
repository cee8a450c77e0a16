"""Supervised depth losses: scale-invariant log, SILog (BTS), berHu, L1/L2, gradient terms.

Conventions (docs/DESIGN.md): `pred` and `target` are z-depth in metres, float32 `(B, H, W, 1)`;
ground truth uses 0 for invalid pixels, so a pixel counts only where `target` is finite and > 0
**and** the optional `mask` `(B, H, W, 1)` is 1. Invalid pixels may hold anything (NaN, ±inf) in
`pred` or `target`: `_common.depth_inputs` replaces them before any arithmetic, so they add nothing
to the value and their gradient is exactly 0. Every function returns a per-image loss `(B,)` float32
(the mean over that image's valid pixels); an image without valid pixels gets loss 0 with a finite
(zero) gradient. Predictions are clamped at `LOG_DEPTH_FLOOR` before any logarithm.
"""

import tensorflow as tf

from tfdepth.errors import InvalidInputError
from tfdepth.losses import _common

# Eigen et al. 2014, "Depth Map Prediction from a Single Image using a Multi-Scale Deep Network",
# Eq. 4: training uses λ = 0.5 ("an average of the ... and the scale-invariant error").
EIGEN_VARIANCE_FOCUS = 0.5
# Lee et al. 2019 (BTS), `bts/pytorch/bts_main.py` `--variance_focus` default 0.85 and
# `silog_loss.forward`: sqrt(mean d² − λ mean(d)²) · 10. AdaBins (Bhat et al. 2021) uses the same.
BTS_VARIANCE_FOCUS = 0.85
BTS_SCALE = 10.0
# Laina et al. 2016, "Deeper Depth Prediction with Fully Convolutional Residual Networks", Sec. 3.2:
# c = 1/5 · max_i |ỹ_i − y_i| over all pixels of the batch.
BERHU_THRESHOLD_FRACTION = 0.2
# Li & Snavely 2018, "MegaDepth", Sec. 4.1: gradient matching term over 4 scales.
MEGADEPTH_NUM_SCALES = 4
# MegaDepth released code (`models/networks.py`, `JointLoss.GradientLoss`): differences between
# pixels two apart (|R[i] − R[i+2]|), and each coarser scale takes every 2nd pixel
# (`prediction[:, ::2, ::2]`).
MEGADEPTH_GRADIENT_STEP = 2
MEGADEPTH_SCALE_STRIDE = 2


def _log_difference(pred, target, mask):
  """d = log pred − log target on valid pixels (0 elsewhere), and the valid mask."""
  pred, target, valid = _common.depth_inputs(pred, target, mask)
  d = (_common.safe_log_pred(pred) - _common.safe_log_target(target, valid)) * valid
  return d, valid


def _si_moments(pred, target, mask):
  """Per image: mean(d²), mean(d) over valid pixels, and the valid count."""
  d, valid = _log_difference(pred, target, mask)
  mean_d2 = _common.masked_image_mean(tf.square(d), valid)
  mean_d = _common.masked_image_mean(d, valid)
  return mean_d2, mean_d


def scale_invariant_log_loss(pred, target, mask=None, variance_focus=EIGEN_VARIANCE_FOCUS):
  """Scale-invariant log loss of Eigen et al. 2014 (Eq. 4), per image.

  L = mean(d²) − λ·mean(d)², d_i = log pred_i − log target_i over the valid pixels. λ = 1 gives the
  fully scale-invariant error (Eq. 1–3; invariant to pred → s·pred), λ = 0 the plain squared log
  error.

  Args:
    pred: (B, H, W, 1) float predicted depth, metres (> 0; clamped at LOG_DEPTH_FLOOR).
    target: (B, H, W, 1) float ground-truth depth, metres, 0 = invalid.
    mask: optional (B, H, W, 1) {0, 1} mask of pixels to use (ANDed with target > 0).
    variance_focus: λ ∈ [0, 1].
  Returns:
    (B,) float32 loss (unitless, squared log-metres); 0 for images without valid pixels.
  Raises:
    InvalidInputError: wrong ranks/shapes, or λ outside [0, 1].
  """
  lam = _common.check_fraction(variance_focus, "variance_focus")
  mean_d2, mean_d = _si_moments(pred, target, mask)
  return mean_d2 - lam * tf.square(mean_d)


def silog_bts_loss(pred, target, mask=None, variance_focus=BTS_VARIANCE_FOCUS, scale=BTS_SCALE):
  """SILog loss of BTS (Lee et al. 2019) / AdaBins (Bhat et al. 2021), per image.

  L = scale · sqrt(mean(d²) − λ·mean(d)²), d = log pred − log target over valid pixels. The square
  root is NaN-safe: it is 0 with a zero gradient where its argument is below `SQRT_FLOOR` (a perfect
  prediction or an image without valid pixels). Note that BTS reduces over the whole batch at once;
  here the value is per image (the mean over images is what Keras reports).

  Args:
    pred: (B, H, W, 1) float predicted depth, metres.
    target: (B, H, W, 1) float ground-truth depth, metres, 0 = invalid.
    mask: optional (B, H, W, 1) {0, 1} mask.
    variance_focus: λ ∈ [0, 1] (BTS: 0.85).
    scale: positive multiplier (BTS: 10).
  Returns:
    (B,) float32 loss.
  Raises:
    InvalidInputError: wrong ranks/shapes, λ outside [0, 1] or scale <= 0.
  """
  lam = _common.check_fraction(variance_focus, "variance_focus")
  scale = _common.check_positive(scale, "scale")
  mean_d2, mean_d = _si_moments(pred, target, mask)
  return scale * _common.safe_sqrt(mean_d2 - lam * tf.square(mean_d))


def eigen_pairwise_loss(pred, target, mask=None):
  """Pairwise scale-invariant error of Eigen et al. 2014 (Eq. 3), per image.

  D = 1/(2n²) Σ_{i,j} ((log y_i − log y_j) − (log y*_i − log y*_j))² over valid pixel pairs.
  Expanding the square, Σ_{i,j} (d_i − d_j)² = 2n Σ d_i² − 2 (Σ d_i)², which is how it is evaluated
  here (O(n) instead of O(n²) memory); it therefore equals `scale_invariant_log_loss` with λ = 1.

  Args:
    pred: (B, H, W, 1) float predicted depth, metres.
    target: (B, H, W, 1) float ground-truth depth, metres, 0 = invalid.
    mask: optional (B, H, W, 1) {0, 1} mask.
  Returns:
    (B,) float32 loss; 0 for images without valid pixels.
  """
  d, valid = _log_difference(pred, target, mask)
  n = tf.reduce_sum(valid, axis=[1, 2, 3])
  sum_d = tf.reduce_sum(d, axis=[1, 2, 3])
  sum_d2 = tf.reduce_sum(tf.square(d), axis=[1, 2, 3])
  pair_sum = 2.0 * n * sum_d2 - 2.0 * tf.square(sum_d)
  return tf.math.divide_no_nan(pair_sum, 2.0 * tf.square(n))


def berhu_loss(pred, target, mask=None, threshold_fraction=BERHU_THRESHOLD_FRACTION):
  """Reverse Huber (berHu) loss of Laina et al. 2016 (Eq. 1), per image.

  B(r) = |r| if |r| <= c, else (r² + c²) / (2c), with r = pred − target and
  c = threshold_fraction · max |r| over all valid pixels **of the batch** (Laina et al. 2016, Sec.
  3.2). c is treated as a constant (no gradient flows through the max), as in common
  implementations. If c = 0 (perfect prediction) every pixel is in the L1 branch and the loss is 0.

  Args:
    pred: (B, H, W, 1) float predicted depth, metres.
    target: (B, H, W, 1) float ground-truth depth, metres, 0 = invalid.
    mask: optional (B, H, W, 1) {0, 1} mask.
    threshold_fraction: fraction of the batch max residual used as c, in (0, 1].
  Returns:
    (B,) float32 loss in metres (the mean of B over valid pixels).
  Raises:
    InvalidInputError: wrong ranks/shapes or threshold_fraction outside (0, 1].
  """
  frac = _common.check_fraction(threshold_fraction, "threshold_fraction")
  if frac <= 0.0:
    raise InvalidInputError(
        f"threshold_fraction: expected a number in (0, 1], received {threshold_fraction!r}")
  pred, target, valid = _common.depth_inputs(pred, target, mask)
  # Invalid pixels hold pred = target = 1 (depth_inputs), so r = 0 there and max r is finite.
  r = tf.abs(pred - target) * valid
  c = tf.stop_gradient(frac * tf.reduce_max(r))
  safe_c = tf.where(c > 0.0, c, 1.0)
  quadratic = (tf.square(r) + tf.square(c)) / (2.0 * safe_c)
  per_pixel = tf.where(r <= c, r, quadratic)
  return _common.masked_image_mean(per_pixel, valid)


def l1_loss(pred, target, mask=None):
  """Masked mean absolute error |pred − target| per image.

  Args:
    pred: (B, H, W, 1) float predicted depth, metres.
    target: (B, H, W, 1) float ground-truth depth, metres, 0 = invalid.
    mask: optional (B, H, W, 1) {0, 1} mask.
  Returns:
    (B,) float32 loss, metres.
  """
  pred, target, valid = _common.depth_inputs(pred, target, mask)
  return _common.masked_image_mean(tf.abs(pred - target), valid)


def l2_loss(pred, target, mask=None):
  """Masked mean squared error (pred − target)² per image.

  Args:
    pred: (B, H, W, 1) float predicted depth, metres.
    target: (B, H, W, 1) float ground-truth depth, metres, 0 = invalid.
    mask: optional (B, H, W, 1) {0, 1} mask.
  Returns:
    (B,) float32 loss, square metres.
  """
  pred, target, valid = _common.depth_inputs(pred, target, mask)
  return _common.masked_image_mean(tf.square(pred - target), valid)


def _pair_differences(d, valid, step, axis):
  """Differences d[i + step] − d[i] along `axis` (1 = rows, 2 = cols) and their pair masks."""
  if axis == 1:
    diff = d[:, step:, :, :] - d[:, :-step, :, :]
    pair = valid[:, step:, :, :] * valid[:, :-step, :, :]
  else:
    diff = d[:, :, step:, :] - d[:, :, :-step, :]
    pair = valid[:, :, step:, :] * valid[:, :, :-step, :]
  return diff * pair, pair


def gradient_loss(pred, target, mask=None):
  """Log-depth gradient matching term of Eigen & Fergus 2015 (Eq. 2), per image.

  L = 1/n Σ_i [(∇x d_i)² + (∇y d_i)²], d = log pred − log target, forward differences
  (d[u+1] − d[u]); a difference counts only where both of its pixels are valid, and n is the
  number of valid pixels of the image.

  Args:
    pred: (B, H, W, 1) float predicted depth, metres.
    target: (B, H, W, 1) float ground-truth depth, metres, 0 = invalid.
    mask: optional (B, H, W, 1) {0, 1} mask.
  Returns:
    (B,) float32 loss; 0 for images without valid pixels.
  """
  d, valid = _log_difference(pred, target, mask)
  dx, _ = _pair_differences(d, valid, 1, axis=2)
  dy, _ = _pair_differences(d, valid, 1, axis=1)
  total = tf.reduce_sum(tf.square(dx), axis=[1, 2, 3]) + tf.reduce_sum(tf.square(dy), axis=[1, 2, 3])
  return tf.math.divide_no_nan(total, tf.reduce_sum(valid, axis=[1, 2, 3]))


def gradient_matching_loss(pred, target, mask=None, num_scales=MEGADEPTH_NUM_SCALES):
  """Multi-scale scale-invariant gradient matching of MegaDepth (Li & Snavely 2018, Eq. 3), per image.

  L = Σ_k 1/n_k Σ_i (|∇x R_i^k| + |∇y R_i^k|), R = log pred − log target. Following the released
  code, ∇ is the difference of pixels two apart (R[i + 2] − R[i]), counted only where both pixels are
  valid; scale k takes every 2^k-th pixel (strided subsampling of pred, target and mask); n_k is the
  number of valid pixels at scale k. The per-scale terms are summed.

  Args:
    pred: (B, H, W, 1) float predicted depth, metres.
    target: (B, H, W, 1) float ground-truth depth, metres, 0 = invalid.
    mask: optional (B, H, W, 1) {0, 1} mask.
    num_scales: number of scales >= 1 (MegaDepth: 4).
  Returns:
    (B,) float32 loss.
  Raises:
    InvalidInputError: wrong ranks/shapes or num_scales < 1.
  """
  if not isinstance(num_scales, int) or isinstance(num_scales, bool) or num_scales < 1:
    raise InvalidInputError(f"num_scales: expected an integer >= 1, received {num_scales!r}")
  d, valid = _log_difference(pred, target, mask)
  total = tf.zeros_like(d[:, 0, 0, 0])
  for k in range(num_scales):
    stride = MEGADEPTH_SCALE_STRIDE ** k
    d_k = d[:, ::stride, ::stride, :]
    v_k = valid[:, ::stride, ::stride, :]
    dx, _ = _pair_differences(d_k, v_k, MEGADEPTH_GRADIENT_STEP, axis=2)
    dy, _ = _pair_differences(d_k, v_k, MEGADEPTH_GRADIENT_STEP, axis=1)
    # |x| has gradient sign(x) = 0 at x = 0 in TensorFlow: finite everywhere.
    term = tf.reduce_sum(tf.abs(dx), axis=[1, 2, 3]) + tf.reduce_sum(tf.abs(dy), axis=[1, 2, 3])
    total += tf.math.divide_no_nan(term, tf.reduce_sum(v_k, axis=[1, 2, 3]))
  return total
