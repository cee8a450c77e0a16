"""Pinhole camera: pixel grids, back-projection, projection, bilinear sampling, view synthesis.

Conventions (see `tfdepth.geometry`): NHWC, pixel coordinates `(u, v)` with integer values at pixel
centres, camera frame x right / y down / z forward, depth = z in metres, K `(B, 3, 3)` in pixels of
the tensor's resolution with last row [0, 0, 1], poses `(B, 4, 4)` named `a_from_b`.

All products with K and poses are written as explicit multiply-adds rather than `matmul`/`einsum`:
on Ampere+ GPUs TensorFlow runs float32 matmuls in TF32 (10-bit mantissa, relative error up to
2^-11) by default, which could move reprojected coordinates by tenths of a pixel at KITTI widths.
"""

import tensorflow as tf

from tfdepth.errors import InvalidInputError
from tfdepth.geometry import _checks

# Monodepth2 (Godard et al. 2019), layers.Project3D: pix = cam[:2] / (cam[2] + eps), eps = 1e-7.
PROJECTION_EPS = 1e-7
# warp_image: a reprojected point counts as in front of the source camera only if z > this (m);
# the same eps as the projection, so every valid point has a well-defined projection.
MIN_SOURCE_Z = PROJECTION_EPS
# warp_image: slack (pixels) of its in-image test. Float32 reprojection of a pixel that should land
# exactly on the border (identity pose, or row 0 under a pure horizontal stereo baseline) is off by
# a few ulp (ulp(1241) = 1.2e-4 px) plus the eps shift u·1e-7/z (1.2e-3 px at u = 1241, z = 0.1 m);
# without slack whole border rows would flicker invalid. The sample itself is still clamped.
WARP_VALID_TOLERANCE = 1e-2


def pixel_grid(height, width, dtype=tf.float32):
  """Pixel-centre coordinates `(H, W, 2)`: `grid[v, u] = (u, v)`, integers are pixel centres.

  Args:
    height, width: Python ints or scalar integer tensors (dynamic shapes are fine).
    dtype: floating dtype of the result.
  """
  for v, n in ((height, "height"), (width, "width")):
    if isinstance(v, (int, float)) and (v <= 0 or int(v) != v):
      raise InvalidInputError(f"{n} must be a positive integer, got {v!r}.")
  u = tf.cast(tf.range(width), dtype)
  v = tf.cast(tf.range(height), dtype)
  uu, vv = tf.meshgrid(u, v, indexing="xy")
  return tf.stack([uu, vv], axis=-1)


def _check_depth(depth, name="depth"):
  d = _checks.to_float_tensor(depth, name)
  _checks.check_rank(d, 4, name, "(B, H, W, 1)")
  _checks.check_trailing_dims(d, (1,), name, "(B, H, W, 1)")
  return d


def _check_batched_k(intrinsics, dtype, name="intrinsics"):
  k = _checks.to_float_tensor(intrinsics, name, dtype)
  _checks.check_rank(k, 3, name, "(B, 3, 3)")
  _checks.check_trailing_dims(k, (3, 3), name, "(B, 3, 3)")
  return k


def _expand_batched(m, rank):
  """(B, r, c) -> (B, 1, ..., 1, r, c) to broadcast against a rank-`rank` (B, ..., 3) tensor."""
  for _ in range(rank - 2):
    m = m[:, tf.newaxis]
  return m


def _apply_affine(m, points, rows):
  """Rows `rows` of m @ [x, y, z, 1] (or m @ [x, y, z] for 3 columns), as explicit products.

  m: (B, R, C) with C in {3, 4}; points: (B, ..., 3). Returns a list of (B, ...) tensors.
  """
  m = _expand_batched(m, points.shape.rank)
  x, y, z = tf.unstack(points, axis=-1)
  out = []
  for i in rows:
    r = m[..., i, 0] * x + m[..., i, 1] * y + m[..., i, 2] * z
    if m.shape[-1] == 4:
      r = r + m[..., i, 3]
    out.append(r)
  return out


def backproject(depth, intrinsics):
  """Camera-frame points depth · K⁻¹ [u, v, 1]ᵀ at every pixel centre.

  Args:
    depth: `(B, H, W, 1)` float z-depth, metres (0 gives the camera centre).
    intrinsics: `(B, 3, 3)` pixels of this resolution, last row [0, 0, 1].

  Returns:
    `(B, H, W, 3)` points (x right, y down, z forward), metres, dtype of `depth`.
  """
  d = _check_depth(depth)
  k = _check_batched_k(intrinsics, d.dtype)
  _checks.check_same_dim(d, 0, k, 0, "depth", "intrinsics")
  shape = tf.shape(d)
  grid = pixel_grid(shape[1], shape[2], d.dtype)[tf.newaxis]  # (1, H, W, 2)
  k = k[:, tf.newaxis, tf.newaxis]  # (B, 1, 1, 3, 3)
  fx, fy, skew = k[..., 0, 0], k[..., 1, 1], k[..., 0, 1]
  cx, cy = k[..., 0, 2], k[..., 1, 2]
  # K⁻¹ [u, v, 1] by back-substitution (fewer roundings than multiplying by a K⁻¹ matrix).
  y = (grid[..., 1] - cy) / fy
  x = (grid[..., 0] - cx - skew * y) / fx
  rays = tf.stack([x, y, tf.ones_like(x)], axis=-1)
  return d * rays


def transform_points(points, a_from_b):
  """Points expressed in frame b -> frame a: p_a = R p_b + t.

  Args:
    points: `(B, ..., 3)` (usually `(B, H, W, 3)`), metres, known rank.
    a_from_b: `(B, 4, 4)` rigid transform (last row ignored).

  Returns:
    Same shape and dtype as `points`.
  """
  p = _checks.to_float_tensor(points, "points")
  _checks.check_min_rank(p, 2, "points", "(B, ..., 3)")
  if p.shape.rank is None:
    raise InvalidInputError(f"points must have a known rank, got shape {p.shape}.")
  _checks.check_trailing_dims(p, (3,), "points", "(B, ..., 3)")
  m = _checks.to_float_tensor(a_from_b, "a_from_b", p.dtype)
  _checks.check_rank(m, 3, "a_from_b", "(B, 4, 4)")
  _checks.check_trailing_dims(m, (4, 4), "a_from_b", "(B, 4, 4)")
  _checks.check_same_dim(p, 0, m, 0, "points", "a_from_b")
  return tf.stack(_apply_affine(m, p, range(3)), axis=-1)


def project(points, intrinsics):
  """Perspective projection of camera-frame points, dividing by (z + 1e-7) as Monodepth2.

  Args:
    points: `(B, H, W, 3)` camera-frame points, metres.
    intrinsics: `(B, 3, 3)` pixels of the target resolution, last row [0, 0, 1].

  Returns:
    `(coords, z)`: coords `(B, H, W, 2)` = (u, v) pixels, z `(B, H, W, 1)` metres. Points behind
    the camera (z < 0) get mirrored coordinates; callers mask them with z (see `warp_image`).
  """
  p = _checks.to_float_tensor(points, "points")
  _checks.check_rank(p, 4, "points", "(B, H, W, 3)")
  _checks.check_trailing_dims(p, (3,), "points", "(B, H, W, 3)")
  k = _check_batched_k(intrinsics, p.dtype)
  _checks.check_same_dim(p, 0, k, 0, "points", "intrinsics")
  uh, vh = _apply_affine(k, p, range(2))
  z = p[..., 2]
  denom = z + PROJECTION_EPS
  return tf.stack([uh / denom, vh / denom], axis=-1), z[..., tf.newaxis]


def bilinear_sample(image, coords, valid_tolerance=0.0):
  """Bilinear sampling at pixel coordinates with border padding.

  The sample position is clamped to [0, W-1] × [0, H-1] (PyTorch `grid_sample(padding_mode=
  "border")`, Monodepth2), then interpolated from its four neighbours with gathers and weights, so
  the result is differentiable w.r.t. `image` and `coords` (the coordinate gradient is 0 where
  clamped). Integer coordinates reproduce pixels exactly (`bilinear_sample(x, pixel_grid) == x`
  bit for bit). Runs under `jit_compile=True`.

  Args:
    image: `(B, H, W, C)` float.
    coords: `(B, H', W', 2)` float (u, v) pixels.
    valid_tolerance: pixels of slack for `valid` (default 0: exactly [0, W-1] × [0, H-1]).

  Returns:
    `(sampled, valid)`: sampled `(B, H', W', C)` in the image's dtype; valid `(B, H', W', 1)`
    float32, 1 where the unclamped coordinate lies in [-tol, W-1+tol] × [-tol, H-1+tol] (inclusive;
    tol = `valid_tolerance`).
  """
  img = _checks.to_float_tensor(image, "image")
  _checks.check_rank(img, 4, "image", "(B, H, W, C)")
  xy = _checks.to_float_tensor(coords, "coords")
  _checks.check_rank(xy, 4, "coords", "(B, H', W', 2)")
  _checks.check_trailing_dims(xy, (2,), "coords", "(B, H', W', 2)")
  _checks.check_same_dim(img, 0, xy, 0, "image", "coords")

  shape = tf.shape(img)
  b, h, w, c = shape[0], shape[1], shape[2], shape[3]
  cdt = xy.dtype
  u_max = tf.cast(w - 1, cdt)
  v_max = tf.cast(h - 1, cdt)
  u, v = xy[..., 0], xy[..., 1]
  tol = tf.cast(valid_tolerance, cdt)
  valid = (u >= -tol) & (u <= u_max + tol) & (v >= -tol) & (v <= v_max + tol)

  uc = tf.clip_by_value(u, tf.zeros_like(u_max), u_max)
  vc = tf.clip_by_value(v, tf.zeros_like(v_max), v_max)
  # Left/top neighbour, at most W-2 / H-2: a sample exactly on the last column then uses the cell
  # to its left with weight 1 on the border pixel, so its coordinate gradient is the inward
  # one-sided difference instead of 0. Floor has zero gradient: d(du)/du = 1.
  u0f = tf.maximum(tf.minimum(tf.floor(uc), u_max - 1.0), 0.0)
  v0f = tf.maximum(tf.minimum(tf.floor(vc), v_max - 1.0), 0.0)
  du = uc - u0f
  dv = vc - v0f
  # The integer clips only matter for non-finite coordinates (keep gathers in range).
  u0 = tf.clip_by_value(tf.cast(u0f, tf.int32), 0, w - 1)
  v0 = tf.clip_by_value(tf.cast(v0f, tf.int32), 0, h - 1)
  u1 = tf.minimum(u0 + 1, w - 1)
  v1 = tf.minimum(v0 + 1, h - 1)

  index = tf.stack([v0 * w + u0, v0 * w + u1, v1 * w + u0, v1 * w + u1], axis=-1)
  flat_image = tf.reshape(img, tf.stack([b, h * w, c]))
  gathered = tf.gather(flat_image, tf.reshape(index, tf.stack([b, -1])), batch_dims=1)
  gathered = tf.reshape(gathered, tf.concat([tf.shape(index), [c]], axis=0))  # (B,H',W',4,C)

  weights = tf.stack([(1.0 - du) * (1.0 - dv), du * (1.0 - dv), (1.0 - du) * dv, du * dv],
                     axis=-1)
  weights = tf.cast(weights, img.dtype)[..., tf.newaxis]
  sampled = tf.reduce_sum(gathered * weights, axis=-2)
  sampled.set_shape(xy.shape[:-1].concatenate(img.shape[-1:]))
  return sampled, tf.cast(valid, tf.float32)[..., tf.newaxis]


def reproject_coords(target_depth, source_from_target, intrinsics, source_intrinsics=None):
  """Where each target pixel lands in the source image.

  Back-projects `target_depth` with `intrinsics`, moves the points into the source frame with
  `source_from_target` and projects them with `source_intrinsics` (default: `intrinsics`).

  Args:
    target_depth: `(B, H, W, 1)` metres.
    source_from_target: `(B, 4, 4)`, p_source = source_from_target @ p_target.
    intrinsics: `(B, 3, 3)` target camera, pixels of (H, W).
    source_intrinsics: `(B, 3, 3)` source camera in pixels of the source image, or None.

  Returns:
    `(coords, z)`: coords `(B, H, W, 2)` (u, v) in source pixels; z `(B, H, W, 1)` depth of the
    point in the source camera (metres).
  """
  points = backproject(target_depth, intrinsics)
  points = transform_points(points, source_from_target)
  return project(points, intrinsics if source_intrinsics is None else source_intrinsics)


def warp_image(source_image, target_depth, source_from_target, intrinsics,
               source_intrinsics=None, valid_tolerance=WARP_VALID_TOLERANCE):
  """View synthesis: the source image resampled into the target view (Monodepth2's warp).

  Args:
    source_image: `(B, Hs, Ws, C)` float (images in [0, 1]).
    target_depth: `(B, H, W, 1)` target z-depth, metres.
    source_from_target: `(B, 4, 4)` pose.
    intrinsics: `(B, 3, 3)` target K (pixels of H, W).
    source_intrinsics: `(B, 3, 3)` source K (pixels of Hs, Ws); defaults to `intrinsics`.
    valid_tolerance: slack in pixels of the in-image test (`WARP_VALID_TOLERANCE`, see there).

  Returns:
    `(warped, valid)`: warped `(B, H, W, C)` (border padding); valid `(B, H, W, 1)` float32, 1 where
    the reprojection lands inside [0, Ws-1] × [0, Hs-1] (± valid_tolerance) and in front of the
    source camera (z > MIN_SOURCE_Z). With the identity pose and equal K the warp returns the
    source up to the Monodepth2 eps, which moves coordinates by u·1e-7/z px, and float32 rounding
    (bit exact when all products are exact and z + 1e-7 rounds to z, e.g. z >= 2 m).
  """
  coords, z = reproject_coords(target_depth, source_from_target, intrinsics, source_intrinsics)
  warped, valid = bilinear_sample(source_image, coords, valid_tolerance=valid_tolerance)
  in_front = tf.cast(z > MIN_SOURCE_Z, tf.float32)
  return warped, valid * in_front
