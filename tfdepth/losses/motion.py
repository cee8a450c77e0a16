"""Motion-field regularisers and consistency losses of Li et al. 2021, "Unsupervised Monocular Depth
Learning in Dynamic Scenes" (CoRL 2020), following their released code
(`google-research/depth_and_motion_learning`: `losses/regularizers.py`, `consistency_losses.py`,
`transform_depth_map.py`, `losses/loss_aggregator.py`).

Differences from the released code, on purpose:
  * Values are per image `(B,)` (the released code reduces over the batch too; the batch mean of
    ours is their scalar).
  * The occlusion test keeps pixels whose projected depth is ≤ (not <) the sampled depth of the other
    frame, so an exact tie (e.g. identical frames) counts as visible.
  * The loss weights and the final ×2 of the released aggregator (`self._losses[k] *= w * 2`), and its
    0.5 factor on the SSIM term, belong to the trainer, not to these functions.

Frame naming: "frame 1" is `image` / the frame whose depth was transformed, "frame 2" the other one.
`coords` (B, H, W, 2) are the (u, v) pixel positions in frame 2 of frame 1's pixels and
`projected_depth` (B, H, W, 1) their z in frame 2's camera, e.g. from
`tfdepth.geometry.reproject_coords(depth1, frame2_from_frame1, K)`.
"""

import numpy as np
import tensorflow as tf

from tfdepth.errors import InvalidInputError
from tfdepth.losses import _common

# regularizers.py `sqrt_sparsity`: mean + 1e-24 in the denominator.
SPARSITY_EPS = 1e-24
# regularizers.py `l1smoothness`: sqrt(1e-24 + dx² + dy²).
SMOOTHNESS_EPS = 1e-24
# regularizers.py `normalize_motion_map`: sqrt(3·mean(motion²) + 1e-12).
NORMALIZE_EPS = 1e-12
NORMALIZE_CHANNELS = 3.0
# consistency_losses.py `motion_field_consistency_loss`: 1e-24 in both normalisations.
CYCLE_EPS = 1e-24
# consistency_losses.py `rgbd_consistency_loss`: weighted_ssim(..., c1=float('inf'), c2=9e-6).
LI_SSIM_C1 = float("inf")
LI_SSIM_C2 = 9e-6
# consistency_losses.py `weighted_ssim(weight_epsilon=0.01)`.
LI_SSIM_WEIGHT_EPS = 0.01
# consistency_losses.py: depth_error_second_moment = _weighted_average(...) + 1e-4, and
# `_weighted_average(..., epsilon=1.0)` adds 1 to the sum of weights.
DEPTH_PROXIMITY_EPS = 1e-4
WEIGHTED_AVERAGE_EPS = 1.0


def _field(x, name):
  x = _common.to_float(x, name)
  _common.check_rank(x, 4, name)
  return x


def l1_2_sparsity(field):
  """L1/2 sparsity regulariser of Li et al. 2021 (Eq. 6; released `sqrt_sparsity`), per image.

  R = mean(2·ā·sqrt(1 + |f| / ā)), ā = mean over (H, W) of |f| per image and channel, held constant
  (stop-gradient) as in the released code. For |f| ≪ ā it behaves like |f| + 2ā (L1), for |f| ≫ ā
  like sqrt(|f|) (L1/2). An all-zero field gives 0 with a zero gradient.

  Args:
    field: (B, H, W, C) float motion field (e.g. the residual translation, metres).
  Returns:
    (B,) float32.
  """
  f = _field(field, "field")
  abs_f = tf.abs(f)
  mean = tf.stop_gradient(tf.reduce_mean(abs_f, axis=[1, 2], keepdims=True))
  return _common.image_mean(2.0 * mean * tf.sqrt(abs_f / (mean + SPARSITY_EPS) + 1.0))


def group_smoothness(field, wrap_around=True):
  """Group (L2-over-directions, L1-over-pixels) smoothness of Li et al. 2021 (released `l1smoothness`).

  R = mean over pixels and channels of sqrt(1e-24 + (f − roll(f, 1, H))² + (f − roll(f, 1, W))²).
  With `wrap_around` the differences wrap across the borders (tf.roll), imposing continuity
  across the image boundary; without it the first row and column (whose differences wrap) are
  dropped. The released aggregator wraps exactly when the sparsity ("motion_drift") weight is 0.

  Args:
    field: (B, H, W, C) float motion field.
    wrap_around: see above.
  Returns:
    (B,) float32.
  """
  f = _field(field, "field")
  dx = f - tf.roll(f, 1, axis=1)
  dy = f - tf.roll(f, 1, axis=2)
  if not wrap_around:
    dx = dx[:, 1:, 1:, :]
    dy = dy[:, 1:, 1:, :]
  return _common.image_mean(tf.sqrt(SMOOTHNESS_EPS + tf.square(dx) + tf.square(dy)))


def normalize_motion_map(residual_motion, motion):
  """residual / sqrt(3·mean(motion²) + 1e-12), means per image (released `normalize_motion_map`).

  Args:
    residual_motion: (B, H, W, 3) float residual translation field.
    motion: (B, H, W, 3) float total translation field.
  Returns:
    (B, H, W, 3) float32, the input of `group_smoothness` / `l1_2_sparsity` in the released model.
  """
  r = _field(residual_motion, "residual_motion")
  m = _field(motion, "motion")
  norm = tf.reduce_mean(tf.square(m), axis=[1, 2, 3], keepdims=True) * NORMALIZE_CHANNELS
  return r / tf.sqrt(norm + NORMALIZE_EPS)


def _rotation_matrix(rot, name):
  rot = _common.to_float(rot, name)
  if rot.shape.rank == 3 and rot.shape[-2:] == (3, 3):
    return rot
  if rot.shape.rank == 2 and rot.shape[-1] == 3:
    from tfdepth.geometry import pose  # pylint: disable=g-import-not-at-top
    return pose.euler_to_matrix(rot)
  raise InvalidInputError(
      f"{name}: expected (B, 3, 3) rotation matrices or (B, 3) Euler angles (R = Rx·Ry·Rz, Li et "
      f"al. 2021), received shape {rot.shape}")


def _translation_field(t, name):
  t = _common.to_float(t, name)
  if t.shape.rank == 2 and t.shape[-1] == 3:
    return t[:, None, None, :]
  _common.check_rank(t, 4, name, channels=3)
  return t


def motion_cycle_consistency(rot_fwd, trans_fwd, rot_bwd, trans_bwd, mask=None, coords=None):
  """Motion cycle-consistency of Li et al. 2021 (released `motion_field_consistency_loss`), per image.

  Composes the backward motion followed by the forward one as the released code does
  (`combine(R_bwd, t_bwd, R_fwd, t_fwd)`): R = R_fwd·R_bwd, t = R_fwd·t_bwd + t_fwd, and
    rotation_error = mean((R − I)²) / (1e-24 + mean((R_fwd − I)²) + mean((R_bwd − I)²)),
    translation_error = mean over pixels of m·|t|² / (1e-24 + |t_fwd|² + |t_bwd|²),
  with 3×3 means and the pixel mean over all H·W pixels (not only the masked ones), as released.
  Both are 0 for exactly inverse motions (R_bwd = R_fwdᵀ, t_bwd = −R_fwdᵀ t_fwd).

  Args:
    rot_fwd, rot_bwd: (B, 3, 3) rotation matrices, or (B, 3) angles (converted with
      `tfdepth.geometry.euler_to_matrix`, R = Rx·Ry·Rz as in the released code).
    trans_fwd: (B, 3) or (B, H, W, 3) forward translation (field), metres.
    trans_bwd: (B, 3) or (B, H, W, 3) backward translation field, already at the forward-warped
      positions, or (with `coords`) at its own pixels.
    mask: optional (B, H, W, 1) float weights (released: in-frame and not occluded).
    coords: optional (B, H, W, 2) (u, v) positions of frame-1 pixels in frame 2; if given,
      `trans_bwd` is bilinearly resampled there with a stop-gradient on `coords` (released).
  Returns:
    (rotation_error, translation_error): two (B,) float32 tensors.
  Raises:
    InvalidInputError: wrong shapes.
  """
  r_fwd = _rotation_matrix(rot_fwd, "rot_fwd")
  r_bwd = _rotation_matrix(rot_bwd, "rot_bwd")
  t_fwd = _translation_field(trans_fwd, "trans_fwd")
  t_bwd = _translation_field(trans_bwd, "trans_bwd")
  if coords is not None:
    from tfdepth.geometry import camera  # pylint: disable=g-import-not-at-top
    t_bwd, _ = camera.bilinear_sample(t_bwd, tf.stop_gradient(_common.to_float(coords, "coords")))
  eye = tf.eye(3)
  r_unit = tf.matmul(r_fwd, r_bwd)
  rot_error = tf.reduce_mean(tf.square(r_unit - eye), axis=[1, 2])
  rot_scale = (tf.reduce_mean(tf.square(r_fwd - eye), axis=[1, 2])
               + tf.reduce_mean(tf.square(r_bwd - eye), axis=[1, 2]))
  rotation_error = rot_error / (CYCLE_EPS + rot_scale)

  # R_fwd · t_bwd for every pixel: (B, 1, 1, 3, 3) @ (B, H, W, 3, 1).
  t_zero = tf.linalg.matvec(r_fwd[:, None, None], t_bwd) + t_fwd

  def sq_norm(x):
    return tf.reduce_sum(tf.square(x), axis=-1, keepdims=True)

  ratio = sq_norm(t_zero) / (CYCLE_EPS + sq_norm(t_fwd) + sq_norm(t_bwd))
  if mask is not None:
    mask = _common.to_float(mask, "mask")
    _common.check_rank(mask, 4, "mask", channels=1)
    ratio = tf.math.multiply_no_nan(ratio, mask)
  return rotation_error, _common.image_mean(ratio)


def _frame_hw(frame_shape, coords):
  """(H2, W2) as float32 scalars: from `frame_shape`, or coords' own (H, W) when it is None."""
  if frame_shape is None:
    return tf.cast(tf.shape(coords)[1], tf.float32), tf.cast(tf.shape(coords)[2], tf.float32)
  if isinstance(frame_shape, tf.Tensor):
    hw = frame_shape
    if not hw.dtype.is_integer or hw.shape.rank != 1 or hw.shape[0] != 2:
      raise InvalidInputError(
          f"frame_shape: expected (H2, W2) as 2 integers, received a {hw.dtype.name} tensor of "
          f"shape {hw.shape}")
    hw = tf.cast(hw, tf.float32)
    return hw[0], hw[1]
  try:
    h2, w2 = frame_shape
  except (TypeError, ValueError) as e:
    raise InvalidInputError(f"frame_shape: expected (H2, W2) as 2 positive integers, received "
                            f"{frame_shape!r}") from e
  for v in (h2, w2):
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
      raise InvalidInputError(f"frame_shape: expected (H2, W2) as 2 positive integers, received "
                              f"{frame_shape!r}")
  return tf.constant(float(h2)), tf.constant(float(w2))


def li_frame_mask(coords, projected_depth, frame_shape=None):
  """Released `_clamp_and_filter_result` mask: 0 ≤ u < W2 − 1, 0 ≤ v < H2 − 1 (strict), z > 0, finite.

  Args:
    coords: (B, H, W, 2) float (u, v) in pixels of the frame they point into (frame 2, of size
      (H2, W2)), one per frame-1 pixel.
    projected_depth: (B, H, W, 1) float z in frame 2's camera, metres.
    frame_shape: (H2, W2) of frame 2 in pixels: two positive Python ints or an integer (2,) tensor
      (e.g. `tf.shape(other_depth)[1:3]`). Default None: frame 2 has frame 1's size (H, W).
  Returns:
    (B, H, W, 1) float32 in {0, 1}.
  Raises:
    InvalidInputError: `frame_shape` is not two positive integers.
  """
  h, w = _frame_hw(frame_shape, coords)
  u, v = coords[..., 0:1], coords[..., 1:2]
  ok = ((u >= 0.0) & (u < w - 1.0) & (v >= 0.0) & (v < h - 1.0) & (projected_depth > 0.0)
        & tf.math.is_finite(u) & tf.math.is_finite(v))
  return tf.cast(ok, tf.float32)


def _consistency_inputs(other_image, other_depth, coords, projected_depth, mask):
  """Samples frame 2 at `coords`; returns (sampled_rgb or None, sampled_depth, z, in_frame, closer,
  validity), all (B, H, W, ·) float32."""
  from tfdepth.geometry import camera  # pylint: disable=g-import-not-at-top
  other_depth = _field(other_depth, "other_depth")
  _common.check_rank(other_depth, 4, "other_depth", channels=1)
  coords = _field(coords, "coords")
  _common.check_rank(coords, 4, "coords", channels=2)
  projected_depth = _field(projected_depth, "projected_depth")
  _common.check_rank(projected_depth, 4, "projected_depth", channels=1)
  _common.check_same_hw(coords, projected_depth, "coords", "projected_depth")
  # Non-finite coordinates (z = 0) become 0 as in the released code; they are masked out anyway.
  safe_coords = tf.where(tf.math.is_finite(coords), coords, 0.0)
  # Frame 2 may have another size than frame 1 (coords' grid): the bounds are frame 2's.
  in_frame = li_frame_mask(coords, projected_depth, frame_shape=tf.shape(other_depth)[1:3])
  if other_image is None:
    sampled_rgb = None
    sampled_depth, _ = camera.bilinear_sample(other_depth, safe_coords)
  else:
    _common.check_same_hw(other_image, other_depth, "other_image", "other_depth")
    num_channels = other_image.shape[-1]
    if num_channels is None:
      raise InvalidInputError(
          f"other_image: expected a known channel count, received shape {other_image.shape}")
    sampled, _ = camera.bilinear_sample(tf.concat([other_image, other_depth], axis=-1), safe_coords)
    sampled_rgb, sampled_depth = sampled[..., :num_channels], sampled[..., num_channels:]
  z = tf.where(in_frame > 0.0, projected_depth, 0.0)
  closer = in_frame * tf.cast(z <= sampled_depth, tf.float32)
  validity = tf.ones_like(in_frame)
  if mask is not None:
    validity = _common.to_float(mask, "mask")
    _common.check_rank(validity, 4, "mask", channels=1)
    _common.check_same_hw(validity, coords, "mask", "coords")
  return sampled_rgb, sampled_depth, z, in_frame, closer, validity


def depth_consistency(other_depth, coords, projected_depth, mask=None):
  """Occlusion-aware depth consistency of Li et al. 2021 (released `depth_error`), per image.

  mean over pixels of |D2(coords) − z|·closer·mask, where closer = in frame 2 (`li_frame_mask`
  with frame 2's size (H2, W2)) and not occluded (z ≤ D2(coords)), D2 bilinearly sampled (border
  clamp). 0 for a consistent pair. Frame 2 may have a different size than frame 1.

  Args:
    other_depth: (B, H2, W2, 1) float depth of frame 2, metres.
    coords: (B, H, W, 2) float positions of frame-1 pixels in frame 2.
    projected_depth: (B, H, W, 1) float z of frame-1 points in frame 2's camera, metres.
    mask: optional (B, H, W, 1) float validity mask.
  Returns:
    (B,) float32, metres (mean over all H·W pixels, as released).
  """
  _, sampled_depth, z, _, closer, validity = _consistency_inputs(
      None, other_depth, coords, projected_depth, mask)
  diff = tf.abs(sampled_depth - z) * validity
  return _common.image_mean(tf.math.multiply_no_nan(diff, closer))


def weighted_ssim(x, y, weight, c1=LI_SSIM_C1, c2=LI_SSIM_C2, weight_epsilon=LI_SSIM_WEIGHT_EPS):
  """Weighted SSIM of the released code (`consistency_losses.weighted_ssim`), VALID 3×3 windows.

  Moments are weighted averages over 3×3 windows with weights `weight + weight_epsilon`; c1 = inf
  drops the luminance term and c2 = inf the contrast-structure term.

  Args:
    x, y: (B, H, W, C) float images.
    weight: (B, H, W, 1) float per-pixel weights.
    c1, c2: SSIM constants (released consistency loss: inf, 9e-6).
    weight_epsilon: regulariser of the weights.
  Returns:
    (loss, pooled_weight): loss = clip((1 − SSIM)/2, 0, 1), (B, H − 2, W − 2, C); pooled_weight
    (B, H − 2, W − 2, 1), the 3×3 average of `weight`.
  Raises:
    InvalidInputError: both c1 and c2 infinite (the SSIM would be identically 1).
  """
  if c1 == float("inf") and c2 == float("inf"):
    raise InvalidInputError(f"c1 and c2: expected at most one infinite constant, received c1={c1}, c2={c2}")

  def pool(z):
    return tf.nn.avg_pool2d(z, 3, 1, "VALID")

  pooled_weight = pool(weight)
  weight_plus_eps = weight + weight_epsilon
  inv_pooled = 1.0 / (pooled_weight + weight_epsilon)

  def wpool(z):
    return pool(z * weight_plus_eps) * inv_pooled

  mu_x = wpool(x)
  mu_y = wpool(y)
  sigma_x = wpool(x * x) - mu_x * mu_x
  sigma_y = wpool(y * y) - mu_y * mu_y
  sigma_xy = wpool(x * y) - mu_x * mu_y
  if c1 == float("inf"):
    num = 2.0 * sigma_xy + c2
    den = sigma_x + sigma_y + c2
  elif c2 == float("inf"):
    num = 2.0 * mu_x * mu_y + c1
    den = mu_x * mu_x + mu_y * mu_y + c1
  else:
    num = (2.0 * mu_x * mu_y + c1) * (2.0 * sigma_xy + c2)
    den = (mu_x * mu_x + mu_y * mu_y + c1) * (sigma_x + sigma_y + c2)
  return tf.clip_by_value((1.0 - num / den) / 2.0, 0.0, 1.0), pooled_weight


def occlusion_aware_photometric_consistency(image, other_image, other_depth, coords, projected_depth,
                                            mask=None):
  """Occlusion-aware RGB + SSIM (+ depth) consistency of Li et al. 2021 (released
  `rgbd_consistency_loss`), per image.

  Frame 2's image and depth are sampled at `coords`; a pixel counts where it is in frame 2
  (`li_frame_mask` with frame 2's size (H2, W2), which may differ from frame 1's) and frame 1's transformed depth is not behind frame 2's surface
  (`projected_depth ≤ sampled depth`). Then
    rgb_error = mean over pixels and channels of |I2(coords) − I1|·closer·mask,
    depth_error = `depth_consistency`,
    ssim_error = mean(weighted_ssim(I2(coords), I1, w)·pool(w)) with the depth-proximity weight
      w = s / ((D2(coords) − z)² + s)·in_frame·mask, s = weighted mean of (D2(coords) − z)² over
      the non-occluded pixels + 1e-4 (stop-gradient), c1 = inf, c2 = 9e-6.
  Apply the model's weights (rgb 1.0, ssim 3.0 × 0.5, see docs/reference-conventions.md) and the
  ×2 of the released aggregator in the trainer.

  Args:
    image: (B, H, W, C) float frame 1 in [0, 1].
    other_image: (B, H2, W2, C) float frame 2 in [0, 1].
    other_depth: (B, H2, W2, 1) float depth of frame 2, metres (the released model stops its gradient).
    coords: (B, H, W, 2) float positions of frame-1 pixels in frame 2.
    projected_depth: (B, H, W, 1) float z of frame-1 points in frame 2's camera, metres.
    mask: optional (B, H, W, 1) float validity mask.
  Returns:
    dict of (B,) float32 "rgb_error", "ssim_error", "depth_error" and the (B, H, W, 1) maps
    "closer_mask" (in frame and not occluded) and "depth_proximity_weight".
  """
  image = _field(image, "image")
  other_image = _field(other_image, "other_image")
  sampled_rgb, sampled_depth, z, in_frame, closer, validity = _consistency_inputs(
      other_image, other_depth, coords, projected_depth, mask)
  _common.check_same_shape(image, sampled_rgb, "image", "other_image sampled at coords")
  depth_diff = sampled_depth - z
  depth_error = _common.image_mean(tf.math.multiply_no_nan(tf.abs(depth_diff) * validity, closer))
  rgb_diff = tf.abs(sampled_rgb - image) * validity
  rgb_error = _common.image_mean(tf.math.multiply_no_nan(rgb_diff, closer))

  sq = tf.square(depth_diff)
  weighted_sum = tf.reduce_sum(sq * closer, axis=[1, 2], keepdims=True)
  second_moment = weighted_sum / (tf.reduce_sum(closer, axis=[1, 2], keepdims=True)
                                  + WEIGHTED_AVERAGE_EPS) + DEPTH_PROXIMITY_EPS
  proximity = tf.math.multiply_no_nan(second_moment / (sq + second_moment), in_frame) * validity
  proximity = tf.stop_gradient(proximity)
  ssim_map, pooled = weighted_ssim(sampled_rgb, image, proximity)
  ssim_error = _common.image_mean(tf.math.multiply_no_nan(ssim_map, pooled))
  return {
      "rgb_error": rgb_error,
      "ssim_error": ssim_error,
      "depth_error": depth_error,
      "closer_mask": closer,
      "depth_proximity_weight": proximity,
  }
