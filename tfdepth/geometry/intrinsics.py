"""Pinhole intrinsics: construction, resizing/cropping/flipping, scale pyramids, disparity maps.

`K` is `(..., 3, 3)` float32 in pixels of the resolution the image has:

    K = [[fx, s,  cx],
         [0,  fy, cy],
         [0,  0,  1 ]]

(skew `s` is 0 for every dataset tfdepth ships but is carried through correctly).

Pixel-centre conventions (`pixel_centers=` argument):

* `"integer"` (tfdepth's convention, see `tfdepth.geometry`): integer coordinates are pixel
  centres, u = 0 is the centre of the leftmost pixel, the image spans [-0.5, W - 0.5]. A resize by
  `s` maps u -> (u + 0.5)·s - 0.5, a horizontal flip maps u -> W - 1 - u.
* `"monodepth2"` (corner origin / half-pixel convention, what Monodepth2 effectively assumes when it
  multiplies normalised intrinsics by the image size): a resize is a plain multiplication
  u -> u·s, a flip is u -> W - u. Monodepth2's KITTI K has cx = 0.5·W, which this flip leaves
  unchanged; Monodepth2 itself never changes K when it flips. Use it to match Monodepth2 numbers.

The two differ by half a pixel in the principal point; with warping always done at one resolution
and one K, both are self-consistent, but mixing them shifts projections by up to 0.5 px.
"""

import numpy as np
import tensorflow as tf

from tfdepth.errors import InvalidInputError
from tfdepth.geometry import _checks

# Monodepth2 (Godard et al. 2019), datasets/kitti_dataset.py: KITTI intrinsics normalised by the
# image size (fx / W, fy / H, cx / W, cy / H), "approximately the same for all images".
KITTI_NORMALIZED_FX = 0.58
KITTI_NORMALIZED_FY = 1.92
KITTI_NORMALIZED_CX = 0.5
KITTI_NORMALIZED_CY = 0.5
KITTI_NORMALIZED_INTRINSICS = np.array(
    [[KITTI_NORMALIZED_FX, 0.0, KITTI_NORMALIZED_CX],
     [0.0, KITTI_NORMALIZED_FY, KITTI_NORMALIZED_CY],
     [0.0, 0.0, 1.0]], dtype=np.float32)
KITTI_NORMALIZED_INTRINSICS.flags.writeable = False

# Monodepth2 options.py: --min_depth 0.1, --max_depth 100 (metres) used by layers.disp_to_depth.
MONODEPTH2_MIN_DEPTH = 0.1
MONODEPTH2_MAX_DEPTH = 100.0

# Pixel-centre conventions accepted by the `pixel_centers` arguments (see the module docstring).
PIXEL_CENTERS_INTEGER = "integer"
PIXEL_CENTERS_MONODEPTH2 = "monodepth2"
PIXEL_CENTER_CONVENTIONS = (PIXEL_CENTERS_INTEGER, PIXEL_CENTERS_MONODEPTH2)

# Offset between the two conventions: with integer centres, pixel u covers [u - 0.5, u + 0.5].
_HALF_PIXEL = 0.5

_K_SHAPE = "(..., 3, 3)"


def _check_k(intrinsics, name="intrinsics"):
  k = _checks.to_float_tensor(intrinsics, name)
  _checks.check_trailing_dims(k, (3, 3), name, _K_SHAPE)
  return k


def _check_convention(pixel_centers):
  if pixel_centers not in PIXEL_CENTER_CONVENTIONS:
    raise InvalidInputError(
        f"pixel_centers must be one of {PIXEL_CENTER_CONVENTIONS}, got {pixel_centers!r}.")


def _affine_rows(k, a_x, b_x, a_y, b_y):
  """Returns A @ K for the pixel-space map u' = a_x·u + b_x, v' = a_y·v + b_y.

  Rows of K map the camera ray to (u, v, 1), so an affine change of pixel coordinates is a
  left-multiplication: row0' = a_x·row0 + b_x·row2, row1' = a_y·row1 + b_y·row2.
  """
  row0, row1, row2 = tf.unstack(k, axis=-2)
  dtype = k.dtype
  a_x, b_x, a_y, b_y = (tf.cast(tf.convert_to_tensor(t), dtype)[..., tf.newaxis]
                        for t in (a_x, b_x, a_y, b_y))
  return tf.stack([a_x * row0 + b_x * row2, a_y * row1 + b_y * row2,
                   row2 + tf.zeros_like(a_x * row0)], axis=-2)


def make_intrinsics(fx, fy, cx, cy, skew=0.0, dtype=tf.float32):
  """Builds K from focal lengths and principal point (all in pixels).

  Args:
    fx, fy, cx, cy: scalars or tensors of a common broadcastable shape `(...)`, pixels.
    skew: K[0, 1], pixels (default 0).
    dtype: floating dtype of the result.

  Returns:
    `(..., 3, 3)` tensor [[fx, skew, cx], [0, fy, cy], [0, 0, 1]].
  """
  vals = [_checks.to_float_tensor(v, n, dtype)
          for v, n in ((fx, "fx"), (fy, "fy"), (cx, "cx"), (cy, "cy"), (skew, "skew"))]
  # Broadcast statically (keeps known shapes) by adding zeros of the common shape.
  zero = tf.zeros_like(vals[0] + vals[1] + vals[2] + vals[3] + vals[4])
  fx, fy, cx, cy, skew = (v + zero for v in vals)
  one = tf.ones_like(fx)
  return tf.stack([tf.stack([fx, skew, cx], -1),
                   tf.stack([zero, fy, cy], -1),
                   tf.stack([zero, zero, one], -1)], axis=-2)


def split_intrinsics(intrinsics):
  """Returns `(fx, fy, cx, cy)`, each of shape `(...)`, from K `(..., 3, 3)` (pixels)."""
  k = _check_k(intrinsics)
  return k[..., 0, 0], k[..., 1, 1], k[..., 0, 2], k[..., 1, 2]


def invert_intrinsics(intrinsics):
  """Closed-form inverse of an upper-triangular K whose last row is [0, 0, 1].

  Args:
    intrinsics: `(..., 3, 3)` float, pixels.

  Returns:
    `(..., 3, 3)` K⁻¹ = [[1/fx, -s/(fx·fy), (s·cy - cx·fy)/(fx·fy)], [0, 1/fy, -cy/fy], [0, 0, 1]].
    Exact algebra (no LU), cheaper than `tf.linalg.inv` and XLA-friendly.
  """
  k = _check_k(intrinsics)
  fx, fy = k[..., 0, 0], k[..., 1, 1]
  s, cx, cy = k[..., 0, 1], k[..., 0, 2], k[..., 1, 2]
  zero = tf.zeros_like(fx)
  one = tf.ones_like(fx)
  return tf.stack([
      tf.stack([1.0 / fx, -s / (fx * fy), (s * cy - cx * fy) / (fx * fy)], -1),
      tf.stack([zero, 1.0 / fy, -cy / fy], -1),
      tf.stack([zero, zero, one], -1)], axis=-2)


def scale_intrinsics(intrinsics, scale_x, scale_y, pixel_centers=PIXEL_CENTERS_INTEGER):
  """Intrinsics of the image resized by `(scale_x, scale_y)` (new size / old size).

  Args:
    intrinsics: `(..., 3, 3)` float, pixels of the original image.
    scale_x, scale_y: positive scalars or tensors broadcastable to `(...)`.
    pixel_centers: `"integer"` (default; cx' = (cx + 0.5)·sx - 0.5, exact for integer pixel
      centres and resizes with half-pixel centres such as `tf.image.resize`) or `"monodepth2"`
      (cx' = cx·sx, Monodepth2's multiply). fx, fy and skew are multiplied in both.

  Returns:
    `(..., 3, 3)` intrinsics in pixels of the resized image.
  """
  _check_convention(pixel_centers)
  k = _check_k(intrinsics)
  for v, n in ((scale_x, "scale_x"), (scale_y, "scale_y")):
    if isinstance(v, (int, float)) and not v > 0:
      raise InvalidInputError(f"{n} must be > 0, got {v!r}.")
  sx = tf.cast(scale_x, k.dtype)
  sy = tf.cast(scale_y, k.dtype)
  if pixel_centers == PIXEL_CENTERS_INTEGER:
    bx, by = _HALF_PIXEL * sx - _HALF_PIXEL, _HALF_PIXEL * sy - _HALF_PIXEL
  else:
    bx, by = tf.zeros_like(sx), tf.zeros_like(sy)
  return _affine_rows(k, sx, bx, sy, by)


def resize_intrinsics(intrinsics, from_hw, to_hw, pixel_centers=PIXEL_CENTERS_INTEGER):
  """Intrinsics after resizing an image from `from_hw` = (H, W) to `to_hw` = (H', W').

  Sizes may be Python ints or integer tensors (dynamic shapes). See `scale_intrinsics` for
  `pixel_centers`.
  """
  def _hw(x, name):
    if not tf.is_tensor(x):
      if len(x) != 2 or any(isinstance(v, (int, float)) and v <= 0 for v in x):
        raise InvalidInputError(f"{name} must be a positive (height, width) pair, got {x!r}.")
    x = tf.cast(tf.convert_to_tensor(x), tf.float32)
    return x[0], x[1]
  fh, fw = _hw(from_hw, "from_hw")
  th, tw = _hw(to_hw, "to_hw")
  return scale_intrinsics(intrinsics, tw / fw, th / fh, pixel_centers=pixel_centers)


def crop_intrinsics(intrinsics, top, left):
  """Intrinsics after cropping `top` rows and `left` columns: cx -= left, cy -= top.

  Identical in both pixel-centre conventions. `top`, `left` are pixel counts (scalars or tensors
  broadcastable to `(...)`).
  """
  k = _check_k(intrinsics)
  top = tf.cast(top, k.dtype)
  left = tf.cast(left, k.dtype)
  one = tf.ones_like(top + left)
  return _affine_rows(k, one, -left, one, -top)


def flip_intrinsics_horizontal(intrinsics, width, pixel_centers=PIXEL_CENTERS_INTEGER):
  """Intrinsics of the horizontally flipped image (camera of the mirrored scene).

  A flipped image is what a camera with the same fx, fy sees of the scene mirrored in x, so fx stays
  positive and only the principal point (and the sign of the skew) changes:

  * `"integer"` (default): u -> W - 1 - u, so cx' = W - 1 - cx.
  * `"monodepth2"` (corner origin, the issue's rule): u -> W - u, so cx' = W - cx (Monodepth2's
    cx = 0.5·W is a fixed point of this rule, which is why Monodepth2 does not touch K on flips).

  Args:
    intrinsics: `(..., 3, 3)` float, pixels.
    width: image width W in pixels (int or scalar tensor).
    pixel_centers: `"integer"` or `"monodepth2"`.
  """
  _check_convention(pixel_centers)
  k = _check_k(intrinsics)
  if isinstance(width, (int, float)) and width <= 0:
    raise InvalidInputError(f"width must be > 0, got {width!r}.")
  w = tf.cast(width, k.dtype)
  offset = w - 1.0 if pixel_centers == PIXEL_CENTERS_INTEGER else w
  fx, s, cx = k[..., 0, 0], k[..., 0, 1], k[..., 0, 2]
  row0 = tf.stack([fx, -s, offset - cx], axis=-1)
  return tf.concat([row0[..., tf.newaxis, :], k[..., 1:, :]], axis=-2)


def intrinsics_pyramid(intrinsics, num_scales, pixel_centers=PIXEL_CENTERS_MONODEPTH2):
  """Per-scale intrinsics `[K_0, ..., K_{num_scales-1}]` for images downsampled by 2^s.

  By default K_s has fx, fy, cx, cy (and skew) divided by 2^s, exactly as Monodepth2
  (`K[0, :] *= width // 2**scale` on the normalised K) and as `docs/DESIGN.md` specifies. With
  `pixel_centers="integer"` the principal point is mapped exactly for integer pixel centres:
  cx_s = (cx + 0.5) / 2^s - 0.5 (differs from the default by 0.5 - 0.5 / 2^s px).

  Args:
    intrinsics: `(..., 3, 3)` float, pixels of scale 0.
    num_scales: Python int >= 1.

  Returns:
    list of `num_scales` tensors `(..., 3, 3)`.
  """
  if not isinstance(num_scales, int) or isinstance(num_scales, bool) or num_scales < 1:
    raise InvalidInputError(f"num_scales must be a positive int, got {num_scales!r}.")
  k = _check_k(intrinsics)
  return [scale_intrinsics(k, 0.5 ** s, 0.5 ** s, pixel_centers=pixel_centers)
          for s in range(num_scales)]


def normalize_intrinsics(intrinsics, height, width):
  """Divides row 0 of K by W and row 1 by H (fx/W, s/W, cx/W, fy/H, cy/H), as Monodepth2.

  The normalised K is resolution independent in the `"monodepth2"` (corner-origin) convention;
  `denormalize_intrinsics` inverts it exactly.
  """
  k = _check_k(intrinsics)
  h = tf.cast(height, k.dtype)
  w = tf.cast(width, k.dtype)
  zero = tf.zeros_like(h + w)
  return _affine_rows(k, 1.0 / w, zero, 1.0 / h, zero)


def denormalize_intrinsics(normalized_intrinsics, height, width):
  """Pixel K for an (H, W) image from normalised K: row 0 times W, row 1 times H (Monodepth2).

  `denormalize_intrinsics(KITTI_NORMALIZED_INTRINSICS, 192, 640)` is Monodepth2's K at 640×192
  (fx = 371.2, fy = 368.64, cx = 320, cy = 96).
  """
  k = _check_k(normalized_intrinsics, "normalized_intrinsics")
  h = tf.cast(height, k.dtype)
  w = tf.cast(width, k.dtype)
  zero = tf.zeros_like(h + w)
  return _affine_rows(k, w, zero, h, zero)


def validate_intrinsics(intrinsics):
  """Checks K `(..., 3, 3)`: finite, fx > 0, fy > 0, last row [0, 0, 1]; returns K unchanged.

  Eagerly (values known) it raises `InvalidInputError` naming the offending value. Inside a graph
  (`tf.data` map, `tf.function`) it adds `tf.debugging.Assert` ops that raise
  `tf.errors.InvalidArgumentError` with the same message and the values at run time (ignored under
  XLA). Shape/dtype problems raise `InvalidInputError` at trace time in both modes.
  """
  k = _check_k(intrinsics)
  fx, fy = k[..., 0, 0], k[..., 1, 1]
  last = k[..., 2, :]
  expected_last = tf.constant([0.0, 0.0, 1.0], k.dtype)
  if tf.executing_eagerly():
    kn = k.numpy()
    if not np.all(np.isfinite(kn)):
      raise InvalidInputError(f"intrinsics must be finite, got {kn.tolist()}.")
    fxn, fyn = kn[..., 0, 0], kn[..., 1, 1]
    if np.any(fxn <= 0) or np.any(fyn <= 0):
      raise InvalidInputError(
          f"intrinsics must have focal lengths fx > 0 and fy > 0 (pixels), got fx={fxn.tolist()}, "
          f"fy={fyn.tolist()}.")
    if not np.all(kn[..., 2, :] == np.array([0.0, 0.0, 1.0])):
      raise InvalidInputError(
          f"intrinsics must have last row [0, 0, 1], got {kn[..., 2, :].tolist()}.")
    return k
  checks = [
      tf.debugging.Assert(tf.reduce_all(tf.math.is_finite(k)),
                          ["intrinsics must be finite, got", k], summarize=64),
      tf.debugging.Assert(tf.reduce_all(fx > 0) & tf.reduce_all(fy > 0),
                          ["intrinsics must have fx > 0 and fy > 0 (pixels), got fx =", fx,
                           "fy =", fy], summarize=64),
      tf.debugging.Assert(tf.reduce_all(tf.equal(last, expected_last)),
                          ["intrinsics must have last row [0, 0, 1], got", last], summarize=64),
  ]
  with tf.control_dependencies(checks):
    return tf.identity(k)


def _check_depth_range(min_depth, max_depth):
  if isinstance(min_depth, (int, float)) and isinstance(max_depth, (int, float)):
    if not 0 < min_depth < max_depth:
      raise InvalidInputError(
          f"need 0 < min_depth < max_depth (metres), got min_depth={min_depth!r}, "
          f"max_depth={max_depth!r}.")


def disp_to_depth(sigmoid_disp, min_depth=MONODEPTH2_MIN_DEPTH, max_depth=MONODEPTH2_MAX_DEPTH):
  """Monodepth2's `layers.disp_to_depth`: sigmoid output -> (scaled disparity, depth).

  scaled_disp = 1/max_depth + (1/min_depth - 1/max_depth)·sigmoid_disp, depth = 1/scaled_disp.

  Args:
    sigmoid_disp: any shape (usually `(B, H, W, 1)`), values in [0, 1].
    min_depth, max_depth: metres (Monodepth2: 0.1 and 100).

  Returns:
    `(scaled_disp, depth)`: same shape and dtype; scaled_disp in 1/m, depth in metres in
    [min_depth, max_depth].
  """
  _check_depth_range(min_depth, max_depth)
  x = _checks.to_float_tensor(sigmoid_disp, "sigmoid_disp")
  min_disp = 1.0 / tf.cast(max_depth, x.dtype)
  max_disp = 1.0 / tf.cast(min_depth, x.dtype)
  scaled = min_disp + (max_disp - min_disp) * x
  return scaled, 1.0 / scaled


def depth_to_disp(depth, min_depth=MONODEPTH2_MIN_DEPTH, max_depth=MONODEPTH2_MAX_DEPTH):
  """Inverse of `disp_to_depth`: depth (m) -> the sigmoid-space value that produces it.

  sigmoid_disp = (1/depth - 1/max_depth) / (1/min_depth - 1/max_depth); in [0, 1] for depths in
  [min_depth, max_depth]. Same shape and dtype as `depth`.
  """
  _check_depth_range(min_depth, max_depth)
  d = _checks.to_float_tensor(depth, "depth")
  min_disp = 1.0 / tf.cast(max_depth, d.dtype)
  max_disp = 1.0 / tf.cast(min_depth, d.dtype)
  return (1.0 / d - min_disp) / (max_disp - min_disp)
