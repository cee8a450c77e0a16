"""Rigid transforms: rotations from axis-angle / Euler angles, 4x4 poses, inversion, composition.

Poses are `(..., 4, 4)` matrices [[R, t], [0, 1]] acting on homogeneous column vectors and named by
direction: `a_from_b` maps a point expressed in frame b into frame a, `p_a = a_from_b @ p_b`
(`docs/DESIGN.md`). Rotations are `(..., 3, 3)`; angles are radians, translations metres.
"""

import tensorflow as tf

from tfdepth.errors import InvalidInputError
from tfdepth.geometry import _checks

# Monodepth2 (Godard et al. 2019), layers.rot_from_axisangle: axis = vec / (angle + 1e-7).
AXIS_ANGLE_EPS = 1e-7

# matrix_to_axis_angle: below this angle (rad) θ/sin θ uses its Taylor series 1 + θ²/6 (the next
# term θ⁴·7/360 is < 1e-17 here, far below float32 resolution); above it the ratio is exact.
_SMALL_ANGLE = 1e-3
# matrix_to_axis_angle: for cos θ below this (θ > 2π/3) the axis is read from the symmetric part
# R + Rᵀ, which stays well conditioned as θ -> π where the skew part vanishes.
_LARGE_ANGLE_COS = -0.5


def _safe_norm(v, axis=-1, keepdims=False):
  """Euclidean norm with gradient 0 (not NaN) at v = 0 (PyTorch's `norm` subgradient)."""
  sq = tf.reduce_sum(tf.square(v), axis=axis, keepdims=keepdims)
  positive = sq > 0
  return tf.where(positive, tf.sqrt(tf.where(positive, sq, tf.ones_like(sq))), tf.zeros_like(sq))


def _matvec(m, v):
  """m @ v for (..., 3, 3) and (..., 3) as explicit products (no TF32 matmul on GPUs)."""
  return tf.reduce_sum(m * v[..., tf.newaxis, :], axis=-1)


def _matmul(a, b):
  """a @ b for (..., n, n) matrices as explicit products (no TF32 matmul on GPUs)."""
  return tf.reduce_sum(a[..., :, :, tf.newaxis] * b[..., tf.newaxis, :, :], axis=-2)


def _stack_matrix(rows):
  """rows: 3 lists of 3 tensors of shape (...) -> (..., 3, 3)."""
  return tf.stack([tf.stack(r, axis=-1) for r in rows], axis=-2)


def axis_angle_to_matrix(axis_angle):
  """Rotation matrix from an axis-angle vector by Rodrigues' formula (Monodepth2).

  angle = |v|, axis = v / (|v| + 1e-7) exactly as Monodepth2's `rot_from_axisangle`, and
  R = cos θ·I + sin θ·[a]× + (1 - cos θ)·a·aᵀ. At v = 0 the result is I and the gradient is finite
  (0, like Monodepth2 under PyTorch, whose `norm` has subgradient 0 at the origin).

  Args:
    axis_angle: `(..., 3)` float, radians.

  Returns:
    `(..., 3, 3)` rotation matrices, same dtype.
  """
  v = _checks.to_float_tensor(axis_angle, "axis_angle")
  _checks.check_trailing_dims(v, (3,), "axis_angle", "(..., 3)")
  angle = _safe_norm(v, keepdims=True)
  axis = v / (angle + AXIS_ANGLE_EPS)
  angle = angle[..., 0]
  ca, sa = tf.cos(angle), tf.sin(angle)
  c = 1.0 - ca
  x, y, z = tf.unstack(axis, axis=-1)
  xs, ys, zs = x * sa, y * sa, z * sa
  xc, yc, zc = x * c, y * c, z * c
  xyc, yzc, zxc = x * yc, y * zc, z * xc
  return _stack_matrix([[x * xc + ca, xyc - zs, zxc + ys],
                        [xyc + zs, y * yc + ca, yzc - xs],
                        [zxc - ys, yzc + xs, z * zc + ca]])


def matrix_to_axis_angle(rotation):
  """Axis-angle vector `(..., 3)` (radians, angle in [0, π]) of rotation matrices `(..., 3, 3)`.

  Inverse of `axis_angle_to_matrix` for angles in [0, π) (at exactly π either of ±π·axis is
  returned). θ = atan2(|w|/2, (tr R - 1)/2) with w = (R21 - R12, R02 - R20, R10 - R01); for θ ≤ 2π/3
  v = θ/(2 sin θ)·w (Taylor series near 0, finite gradient at R = I), otherwise the axis comes from
  the symmetric part (R + Rᵀ)/2 - cos θ·I = (1 - cos θ)·a·aᵀ, signed by w.
  """
  r = _checks.to_float_tensor(rotation, "rotation")
  _checks.check_trailing_dims(r, (3, 3), "rotation", "(..., 3, 3)")
  w = tf.stack([r[..., 2, 1] - r[..., 1, 2], r[..., 0, 2] - r[..., 2, 0],
                r[..., 1, 0] - r[..., 0, 1]], axis=-1)
  cos = (tf.linalg.trace(r) - 1.0) / 2.0
  sin = _safe_norm(w) / 2.0
  theta = tf.atan2(sin, cos)

  # Small/medium angles: v = θ / (2 sin θ) · w.
  small = theta < _SMALL_ANGLE
  safe_theta = tf.where(small, tf.ones_like(theta), theta)
  ratio = tf.where(small, 1.0 + tf.square(theta) / 6.0, safe_theta / tf.sin(safe_theta))
  v_skew = 0.5 * ratio[..., tf.newaxis] * w

  # Large angles: a·aᵀ from the symmetric part; take the column with the largest diagonal.
  large = cos < _LARGE_ANGLE_COS
  one_minus_cos = tf.where(large, 1.0 - cos, tf.ones_like(cos))
  sym = 0.5 * (r + tf.linalg.matrix_transpose(r)) - cos[..., tf.newaxis, tf.newaxis] * tf.eye(
      3, dtype=r.dtype)
  aat = sym / one_minus_cos[..., tf.newaxis, tf.newaxis]
  diag = tf.linalg.diag_part(aat)
  pick = tf.one_hot(tf.argmax(diag, axis=-1), 3, dtype=r.dtype)
  column = tf.reduce_sum(aat * pick[..., tf.newaxis, :], axis=-1)
  pivot = tf.reduce_sum(diag * pick, axis=-1)
  # The largest diagonal of a·aᵀ is >= 1/3 (|a| = 1), so the pivot is safely positive.
  pivot = tf.where(large, pivot, tf.ones_like(pivot))
  axis = column / tf.sqrt(pivot)[..., tf.newaxis]
  sign = tf.where(tf.reduce_sum(axis * w, axis=-1) < 0, -tf.ones_like(cos), tf.ones_like(cos))
  v_sym = (sign * theta)[..., tf.newaxis] * axis

  return tf.where(large[..., tf.newaxis], v_sym, v_skew)


def euler_to_matrix(angles):
  """Rotation R = Rx(a_x)·Ry(a_y)·Rz(a_z) from angles `(..., 3)` = (a_x, a_y, a_z), radians.

  The order of Li et al. 2021 ("Unsupervised Monocular Depth Learning in Dynamic Scenes") released
  code, `depth_and_motion_learning/transform_utils.py::matrix_from_angles` (struct2depth's
  `_euler2mat`): right-handed elementary rotations, Rx = [[1, 0, 0], [0, c, -s], [0, s, c]] etc.

  Returns:
    `(..., 3, 3)`, same dtype.
  """
  a = _checks.to_float_tensor(angles, "angles")
  _checks.check_trailing_dims(a, (3,), "angles", "(..., 3)")
  sx, sy, sz = tf.unstack(tf.sin(a), axis=-1)
  cx, cy, cz = tf.unstack(tf.cos(a), axis=-1)
  # Rx·Ry·Rz multiplied out.
  return _stack_matrix([
      [cy * cz, -cy * sz, sy],
      [cx * sz + sx * sy * cz, cx * cz - sx * sy * sz, -sx * cy],
      [sx * sz - cx * sy * cz, sx * cz + cx * sy * sz, cx * cy]])


def pose_from_rotation_translation(rotation, translation):
  """[[R, t], [0, 1]] `(..., 4, 4)` from R `(..., 3, 3)` and t `(..., 3)` (metres)."""
  r = _checks.to_float_tensor(rotation, "rotation")
  t = _checks.to_float_tensor(translation, "translation", r.dtype)
  _checks.check_trailing_dims(r, (3, 3), "rotation", "(..., 3, 3)")
  _checks.check_trailing_dims(t, (3,), "translation", "(..., 3)")
  top = tf.concat([r + tf.zeros_like(t[..., tf.newaxis]), t[..., tf.newaxis] +
                   tf.zeros_like(r[..., :1])], axis=-1)
  bottom = tf.zeros_like(top[..., :1, :]) + tf.constant([0.0, 0.0, 0.0, 1.0], r.dtype)
  return tf.concat([top, bottom], axis=-2)


def pose_from_axis_angle_translation(axis_angle, translation, invert=False):
  """Monodepth2's `transformation_from_parameters` with `(..., 3)` inputs.

  M = [[R, t], [0, 1]], or with `invert=True` M = [[Rᵀ, -Rᵀt], [0, 1]] (the inverse), which
  Monodepth2 uses when the source frame precedes the target (the pose net saw (source, target)).

  Args:
    axis_angle: `(..., 3)` radians (see `axis_angle_to_matrix`).
    translation: `(..., 3)` metres.
    invert: Python bool.

  Returns:
    `(..., 4, 4)` pose.
  """
  r = axis_angle_to_matrix(axis_angle)
  t = _checks.to_float_tensor(translation, "translation", r.dtype)
  _checks.check_trailing_dims(t, (3,), "translation", "(..., 3)")
  if invert:
    r = tf.linalg.matrix_transpose(r)
    t = -_matvec(r, t)
  return pose_from_rotation_translation(r, t)


def _check_pose(pose, name):
  p = _checks.to_float_tensor(pose, name)
  _checks.check_trailing_dims(p, (4, 4), name, "(..., 4, 4)")
  return p


def invert_pose(a_from_b):
  """b_from_a = [[Rᵀ, -Rᵀt], [0, 1]] for a rigid `a_from_b` = [[R, t], [0, 1]] `(..., 4, 4)`.

  Closed form (exact for rigid transforms, no LU); the last row of the input is ignored.
  """
  p = _check_pose(a_from_b, "a_from_b")
  rt = tf.linalg.matrix_transpose(p[..., :3, :3])
  return pose_from_rotation_translation(rt, -_matvec(rt, p[..., :3, 3]))


def compose_poses(a_from_b, b_from_c):
  """a_from_c = a_from_b @ b_from_c, `(..., 4, 4)` (broadcasting batch dims).

  Computed as explicit float32 products: on Ampere+ GPUs `tf.matmul` would use TF32.
  """
  p = _check_pose(a_from_b, "a_from_b")
  q = _check_pose(b_from_c, "b_from_c")
  return _matmul(p, tf.cast(q, p.dtype))


def identity_pose(batch_size, dtype=tf.float32):
  """`(batch_size, 4, 4)` identity poses; `batch_size` may be a Python int or a scalar tensor."""
  if isinstance(batch_size, int) and batch_size < 0:
    raise InvalidInputError(f"batch_size must be >= 0, got {batch_size!r}.")
  return tf.tile(tf.eye(4, dtype=dtype)[tf.newaxis], tf.stack([batch_size, 1, 1]))
