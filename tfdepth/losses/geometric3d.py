"""3D geometric point-cloud alignment loss of Mahjourian, Wicke, Angelova, "Unsupervised Learning of
Depth and Ego-Motion from Monocular Video Using 3D Geometric Constraints", CVPR 2018 (Sec. 3.3).

The paper back-projects the depths of two consecutive frames to point clouds Q_s, Q_t, moves Q_s
into frame t with the estimated motion, runs ICP (closest points) between the moved cloud and Q_t,
and penalises the ICP result: L_3D = ||T' − I||_1 + ||r||_1, with T' the best-fit correction
transform and r the residuals of the matched points after applying T'. ICP there is a
non-differentiable op whose outputs are used as (approximate) gradients.

What `geometric3d_loss` implements instead (one step of point-to-point ICP with **projective data
association**, the correspondence search of KinectFusion, Newcombe et al. 2011, and of Blais &
Levine 1995):

1. Q_s = D_s·K⁻¹[u, v, 1] at every source pixel, Q_t likewise (K in pixels, integer pixel
   centres, `tfdepth.geometry.backproject`).
2. Q̂_s = R·Q_s + t (+ an optional per-pixel translation field, Li et al. 2021 object motion),
   i.e. `target_from_source` applied to the source cloud.
3. Correspondence of each moved point = the target cloud bilinearly sampled at the point's
   projection into the target image (`tfdepth.geometry.bilinear_sample`). By default the
   association (the projected coordinates) carries no gradient, as ICP correspondences are fixed
   within an iteration; the gradient reaches the source depth and the motion through Q̂_s and the
   target depth through the sampled target cloud.
4. Point residual r = Q_t(proj(Q̂_s)) − Q̂_s; loss = mean over valid source pixels of
   ||r||_1 = |r_x| + |r_y| + |r_z| (metres), per image.

Not implemented: the closest-point search in 3D (projective association replaces it) and the
transform residual ||T' − I||_1 (no best-fit correction transform is solved for; the point
residuals are taken at the current motion, i.e. T' = I). The paper's principled masks are kept:
a source pixel counts only where its moved point projects inside the target image (the validity
of the bilinear sampler, [0, W − 1] × [0, H − 1]) in front of the target camera, its source depth
is valid (finite, > 0) and all target pixels its bilinear sample uses have valid depth.
"""

import tensorflow as tf

from tfdepth.errors import InvalidInputError
from tfdepth.losses import _common

# A moved point counts as in front of the target camera if its z exceeds this (metres): the
# projection eps of Monodepth2 (`tfdepth.geometry.PROJECTION_EPS` = 1e-7), so every valid point has
# a well-defined projection.
MIN_TARGET_Z = 1e-7
# Bilinear weights of a sample sum to 1 up to float32 rounding (a few ulp); the sampled
# target-depth validity must exceed 1 − this for every neighbour with a non-zero weight to be valid.
# A neighbour with weight below 1e-4 may then be invalid: its (zero-depth) point shifts the sample
# by at most 1e-4·|Q_t|, far below depth-network errors.
VALID_SAMPLE_TOLERANCE = 1e-4


def _depth(x, name):
  x = _common.to_float(x, name)
  _common.check_rank(x, 4, name, channels=1)
  return x


def _valid_depth(depth):
  return tf.cast(tf.math.is_finite(depth) & (depth > 0.0), tf.float32)


def geometric3d_residuals(source_depth, target_depth, target_from_source, intrinsics,
                          translation_field=None, differentiable_association=False):
  """Point residuals of the projective-association ICP step (see the module docstring).

  Args:
    source_depth: (B, H, W, 1) float z-depth of the source frame, metres (<= 0 or non-finite =
      invalid).
    target_depth: (B, H, W, 1) float z-depth of the target frame, metres (same convention).
    target_from_source: (B, 4, 4) float rigid motion, p_target = M @ p_source (metres).
    intrinsics: (B, 3, 3) float K in pixels of (H, W), shared by both frames.
    translation_field: optional (B, H, W, 3) float per-source-pixel translation (metres, target
      camera axes) added after the rigid motion (Li et al. 2021's residual object motion).
    differentiable_association: also differentiate through the projected coordinates (the
      bilinear weights); default False (ICP: correspondences fixed within an iteration).
  Returns:
    (residual, valid): residual (B, H, W, 3) float32 = Q_t(proj(Q̂_s)) − Q̂_s at each source
    pixel (0 where invalid), metres; valid (B, H, W, 1) float32 in {0, 1}.
  Raises:
    InvalidInputError: wrong ranks / channel counts / mismatched sizes.
  """
  from tfdepth import geometry  # pylint: disable=g-import-not-at-top
  source_depth = _depth(source_depth, "source_depth")
  target_depth = _depth(target_depth, "target_depth")
  _common.check_same_shape(source_depth, target_depth, "source_depth", "target_depth")
  pose = _common.to_float(target_from_source, "target_from_source")
  if pose.shape.rank != 3 or pose.shape[-2:] != (4, 4):
    raise InvalidInputError(
        f"target_from_source: expected shape (B, 4, 4), received {pose.shape}")
  k = _common.to_float(intrinsics, "intrinsics")
  if k.shape.rank != 3 or k.shape[-2:] != (3, 3):
    raise InvalidInputError(f"intrinsics: expected shape (B, 3, 3), received {k.shape}")

  source_ok = _valid_depth(source_depth)
  target_ok = _valid_depth(target_depth)
  # Invalid depths become 0 (the camera centre) so that no inf/NaN enters the clouds.
  source_depth = tf.where(source_ok > 0.0, source_depth, 0.0)
  target_depth = tf.where(target_ok > 0.0, target_depth, 0.0)
  source_cloud = geometry.backproject(source_depth, k)
  target_cloud = geometry.backproject(target_depth, k)
  moved = geometry.transform_points(source_cloud, pose)
  if translation_field is not None:
    field = _common.to_float(translation_field, "translation_field")
    _common.check_rank(field, 4, "translation_field", channels=3)
    _common.check_same_hw(field, source_depth, "translation_field", "source_depth")
    moved = moved + field
  coords, z = geometry.project(moved, k)
  in_front = tf.cast(z > MIN_TARGET_Z, tf.float32)
  # Points at or behind the camera have meaningless (possibly non-finite) coordinates.
  coords = tf.where(tf.math.is_finite(coords) & (in_front > 0.0), coords, 0.0)
  if not differentiable_association:
    coords = tf.stop_gradient(coords)
  sampled, inside = geometry.bilinear_sample(tf.concat([target_cloud, target_ok], axis=-1), coords)
  matched, matched_ok = sampled[..., :3], sampled[..., 3:]
  valid = (inside * in_front * source_ok
           * tf.cast(matched_ok > 1.0 - VALID_SAMPLE_TOLERANCE, tf.float32))
  residual = tf.where(valid > 0.0, matched - moved, 0.0)
  return residual, valid


def geometric3d_loss(source_depth, target_depth, target_from_source, intrinsics,
                     translation_field=None, mask=None, differentiable_association=False):
  """Mahjourian et al. 2018 3D point-cloud alignment loss (projective-association ICP residual).

  loss = Σ_valid ||Q_t(proj(Q̂_s)) − Q̂_s||_1 / #valid per image, 0 for an image without a valid
  pixel (see the module docstring for what differs from the paper). Zero for the true depths and
  the true motion of a static scene.

  Args:
    source_depth, target_depth, target_from_source, intrinsics, translation_field,
      differentiable_association: as `geometric3d_residuals`.
    mask: optional (B, H, W, 1) float {0, 1} extra mask on the source pixels (e.g. occlusion).
  Returns:
    (B,) float32, metres.
  """
  residual, valid = geometric3d_residuals(source_depth, target_depth, target_from_source,
                                          intrinsics, translation_field,
                                          differentiable_association)
  if mask is not None:
    mask = _common.to_float(mask, "mask")
    _common.check_rank(mask, 4, "mask", channels=1)
    _common.check_same_hw(mask, valid, "mask", "source_depth")
    valid = valid * tf.cast(mask > 0.0, tf.float32)
  l1 = tf.reduce_sum(tf.abs(residual), axis=-1, keepdims=True)
  return _common.masked_image_mean(l1, valid)
