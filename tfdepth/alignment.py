"""Scale alignment of relative depth predictions to metric references (numpy, eager).

Self-supervised monocular models (Monodepth2, Godard et al. 2019) predict depth up to an unknown
global scale; relative models trained on mixed data (MiDaS, Ranftl et al., TPAMI 2020) predict
disparity up to an unknown scale **and shift**. Given a few pixels of known metric depth (a sparse
LiDAR / stereo map, or points typed in by hand), these functions fit the missing parameters:

* `align_median`: depth' = ratio · depth with ratio = median(ref) / median(pred) over the pixels
  where both are valid -- the per-image median scaling of the KITTI evaluation (Zhou et al. 2017,
  Monodepth2 `evaluate_depth.py`; numpy's median, mean of the two middle values).
* `align_scale_shift`: least squares in **disparity** space, MiDaS eq. (4):
  (s, t) = argmin Σ (s · 1/pred + t − 1/ref)², solved in closed form (2×2 normal equations);
  depth' = 1 / (s / pred + t). Aligned disparities at or below 1 / `max_depth` are clamped to
  it (depth' = max_depth) so the result is positive and finite. A fitted scale s <= 0 would
  reverse (or flatten) the prediction's depth order, so it is refused with `InvalidInputError`
  rather than returned as "metric" depth (see `align_scale_shift`).

Each returns an `AlignmentResult`: the aligned `(H, W)` float32 depth in metres (0 where the
prediction was invalid), the fitted parameters and the number of reference points. After alignment
the depth is **metric** (its scale is the reference's); `AlignmentResult.to_metadata()` records that.
"""

import dataclasses

import numpy as np

from tfdepth.errors import InvalidInputError

METHOD_NONE = "none"
METHOD_MEDIAN = "median"
METHOD_SCALE_SHIFT = "scale_shift"
METHODS = (METHOD_NONE, METHOD_MEDIAN, METHOD_SCALE_SHIFT)

# Fewest reference points: the median needs one, a scale and a shift need two distinct disparities.
MIN_POINTS = {METHOD_MEDIAN: 1, METHOD_SCALE_SHIFT: 2}
# Far clamp (metres) of the scale-and-shift result: Monodepth2's max_depth (disp_to_depth, 100 m).
DEFAULT_MAX_DEPTH = 100.0
# Relative determinant below which the 2×2 normal equations count as singular (all reference
# disparities equal up to float64 round-off: variance / mean² below this).
SINGULAR_RELATIVE_TOLERANCE = 1e-12

DEPTH_TYPE_METRIC = "metric"
DEPTH_TYPE_RELATIVE = "relative"


@dataclasses.dataclass(frozen=True)
class AlignmentResult:
  """Aligned depth and the fitted parameters.

  Attributes:
    depth: `(H, W)` float32 metres (metric after a successful alignment; 0 = invalid).
    method: one of `METHODS`.
    scale: multiplier (of depth for "median", of disparity for "scale_shift").
    shift: disparity offset in 1/m ("scale_shift"), 0 otherwise.
    num_points: reference pixels used.
    rms_residual: root-mean-square residual over the reference pixels, in the fitted space
      (metres for "median", 1/m for "scale_shift").
  """
  depth: np.ndarray
  method: str
  scale: float
  shift: float
  num_points: int
  rms_residual: float

  @property
  def depth_type(self):
    """"metric" once aligned to a metric reference; None for "none" (unchanged, the model's)."""
    return None if self.method == METHOD_NONE else DEPTH_TYPE_METRIC

  def to_metadata(self):
    """JSON-serialisable dict of everything except the depth map."""
    return {"method": self.method, "scale": float(self.scale), "shift": float(self.shift),
            "num_points": int(self.num_points), "rms_residual": float(self.rms_residual),
            "depth_type": self.depth_type}


def _as_2d(x, name):
  a = np.asarray(x)
  if a.ndim == 3 and a.shape[-1] == 1:
    a = a[..., 0]
  if a.ndim != 2:
    raise InvalidInputError(f"{name} must have shape (H, W) or (H, W, 1), received {a.shape}")
  return a.astype(np.float64)


def _valid_pairs(pred_depth, ref_depth, mask, min_points, method):
  pred = _as_2d(pred_depth, "pred_depth")
  ref = _as_2d(ref_depth, "ref_depth")
  if pred.shape != ref.shape:
    raise InvalidInputError(f"ref_depth must have the prediction's shape {pred.shape}, received "
                            f"{ref.shape}")
  valid = np.isfinite(pred) & (pred > 0) & np.isfinite(ref) & (ref > 0)
  if mask is not None:
    m = _as_2d(mask, "mask")
    if m.shape != pred.shape:
      raise InvalidInputError(f"mask must have shape {pred.shape}, received {m.shape}")
    valid &= m > 0
  n = int(valid.sum())
  if n < min_points:
    raise InvalidInputError(f"{method} alignment needs at least {min_points} pixels with valid "
                            f"prediction and reference depth (> 0), received {n}")
  return pred, ref, valid, n


def align_median(pred_depth, ref_depth, mask=None):
  """Median scaling: ratio = median(ref[valid]) / median(pred[valid]).

  Args:
    pred_depth: `(H, W)` or `(H, W, 1)` relative depth (> 0 valid).
    ref_depth: same shape, metric reference in metres; 0 = unknown (sparse).
    mask: optional same-shape mask; pixels with mask <= 0 are not used.
  Returns:
    `AlignmentResult` with `depth = ratio · pred` (invalid prediction pixels stay 0).
  Raises:
    InvalidInputError: shape mismatch or no valid reference pixel.
  """
  pred, ref, valid, n = _valid_pairs(pred_depth, ref_depth, mask, MIN_POINTS[METHOD_MEDIAN],
                                     METHOD_MEDIAN)
  ratio = float(np.median(ref[valid]) / np.median(pred[valid]))
  ok = np.isfinite(pred) & (pred > 0)
  out = np.where(ok, pred * ratio, 0.0)
  residual = float(np.sqrt(np.mean((out[valid] - ref[valid]) ** 2)))
  return AlignmentResult(out.astype(np.float32), METHOD_MEDIAN, ratio, 0.0, n, residual)


def fit_scale_shift(x, y):
  """Least-squares (s, t) minimising Σ (s·x + t − y)² (closed form, float64).

  Args:
    x, y: 1-D arrays of equal length >= 2.
  Returns:
    `(s, t)` floats.
  Raises:
    InvalidInputError: fewer than 2 points or all `x` equal (singular normal equations).
  """
  x = np.asarray(x, np.float64).ravel()
  y = np.asarray(y, np.float64).ravel()
  if x.shape != y.shape or x.size < MIN_POINTS[METHOD_SCALE_SHIFT]:
    raise InvalidInputError(f"fit_scale_shift needs two 1-D arrays of equal length >= 2, received "
                            f"{x.shape} and {y.shape}")
  n = float(x.size)
  # Normal equations [[Σx², Σx], [Σx, n]] [s, t]ᵀ = [Σxy, Σy]ᵀ, written with centred moments
  # (fewer cancellations): s = cov(x, y) / var(x), t = ȳ − s·x̄.
  mx, my = x.mean(), y.mean()
  var = np.mean((x - mx) ** 2)
  if not var > SINGULAR_RELATIVE_TOLERANCE * max(mx * mx, np.finfo(np.float64).tiny):
    raise InvalidInputError(f"scale-and-shift alignment needs reference pixels with different "
                            f"predicted disparities; all {int(n)} are {mx!r}")
  s = float(np.mean((x - mx) * (y - my)) / var)
  return s, float(my - s * mx)


def align_scale_shift(pred_depth, ref_depth, mask=None, max_depth=DEFAULT_MAX_DEPTH):
  """Least-squares scale and shift in disparity space (MiDaS, Ranftl et al. 2020, eq. 4).

  Args:
    pred_depth: `(H, W)` or `(H, W, 1)` relative depth (> 0 valid); its disparity 1/pred is fitted.
    ref_depth: same shape, metric reference in metres; 0 = unknown.
    mask: optional same-shape mask of pixels to use.
    max_depth: metres; aligned disparities below 1/max_depth are clamped to it.
  Returns:
    `AlignmentResult` with `scale` s > 0 (dimensionless), `shift` t (1/m) and
    `depth = 1 / max(s / pred + t, 1 / max_depth)` (0 where the prediction is invalid).
  Raises:
    InvalidInputError: shape mismatch, fewer than 2 reference pixels, all reference pixels with
      the same predicted disparity, `max_depth <= 0`, or a fitted scale s <= 0. A non-positive s
      means the references disagree with the prediction's depth order (farther predicted pixels
      would come out nearer): typically `pred_depth` is a disparity / inverse-depth map rather
      than depth, or the few reference points are noisy. Nothing is silently changed: convert the
      prediction to depth, or use median scaling (`align_median`, method "median"), which only
      rescales and never reorders.
  """
  if isinstance(max_depth, bool) or not isinstance(max_depth, (int, float)) or not max_depth > 0:
    raise InvalidInputError(f"max_depth must be a positive number of metres, got {max_depth!r}")
  pred, ref, valid, n = _valid_pairs(pred_depth, ref_depth, mask,
                                     MIN_POINTS[METHOD_SCALE_SHIFT], METHOD_SCALE_SHIFT)
  x, y = 1.0 / pred[valid], 1.0 / ref[valid]
  s, t = fit_scale_shift(x, y)
  if not s > 0.0:
    raise InvalidInputError(
        f"scale-and-shift alignment fitted a disparity scale s = {s!r} (shift t = {t!r} 1/m) from "
        f"{n} reference pixels; expected s > 0, since s <= 0 reverses or flattens the predicted "
        "depth order. Check that pred_depth is depth and not disparity (inverse depth), or use "
        f"median scaling (method {METHOD_MEDIAN!r})")
  residual = float(np.sqrt(np.mean((s * x + t - y) ** 2)))
  ok = np.isfinite(pred) & (pred > 0)
  disp = np.where(ok, s / np.where(ok, pred, 1.0) + t, 0.0)
  disp = np.maximum(disp, 1.0 / max_depth)
  out = np.where(ok, 1.0 / disp, 0.0)
  return AlignmentResult(out.astype(np.float32), METHOD_SCALE_SHIFT, s, t, n, residual)


def sparse_depth_from_points(points, height, width):
  """A sparse reference depth map from a few known depths.

  Args:
    points: iterable of `(u, v, depth_m)`: integer pixel column u, row v (pixel centres,
      docs/DESIGN.md) and a positive depth in metres.
    height, width: map size in pixels.
  Returns:
    `(height, width)` float32 metres, 0 except at the given pixels.
  Raises:
    InvalidInputError: a point outside the image, a non-integer pixel or a non-positive depth.
  """
  for v, n in ((height, "height"), (width, "width")):
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v <= 0:
      raise InvalidInputError(f"{n} must be a positive int, got {v!r}")
  out = np.zeros((height, width), np.float32)
  for p in points:
    if len(p) != 3:
      raise InvalidInputError(f"each point must be (u, v, depth_m), received {p!r}")
    u, v, d = p
    if float(u) != int(u) or float(v) != int(v) or not 0 <= u < width or not 0 <= v < height:
      raise InvalidInputError(f"point {p!r}: (u, v) must be integer pixels with 0 <= u < {width} "
                              f"and 0 <= v < {height}")
    if not (np.isfinite(d) and d > 0):
      raise InvalidInputError(f"point {p!r}: depth must be a positive number of metres")
    out[int(v), int(u)] = d
  return out


def align(pred_depth, ref_depth, method, mask=None, max_depth=DEFAULT_MAX_DEPTH):
  """Dispatches to `align_median` / `align_scale_shift`; "none" returns the prediction as is."""
  if method == METHOD_MEDIAN:
    return align_median(pred_depth, ref_depth, mask)
  if method == METHOD_SCALE_SHIFT:
    return align_scale_shift(pred_depth, ref_depth, mask, max_depth)
  if method == METHOD_NONE:
    pred = _as_2d(pred_depth, "pred_depth")
    return AlignmentResult(pred.astype(np.float32), METHOD_NONE, 1.0, 0.0, 0, 0.0)
  raise InvalidInputError(f"alignment method must be one of {METHODS}, received {method!r}")


__all__ = ["AlignmentResult", "align", "align_median", "align_scale_shift", "fit_scale_shift",
           "sparse_depth_from_points", "METHODS", "METHOD_NONE", "METHOD_MEDIAN",
           "METHOD_SCALE_SHIFT", "DEPTH_TYPE_METRIC", "DEPTH_TYPE_RELATIVE"]
