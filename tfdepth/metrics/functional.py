"""Depth error metrics: per-image TensorFlow functions, the NumPy reference, the offline evaluator.

Definitions (per image, over its N valid pixels i; g = GT depth, p = predicted depth, metres;
Eigen et al., NeurIPS 2014; Monodepth2 `compute_errors`; BTS / AdaBins for log10 and SILog):

  abs_rel  = mean(|g - p| / g)                                   (unitless)
  sq_rel   = mean((g - p)^2 / g)                                 (metres)
  rmse     = sqrt(mean((g - p)^2))                               (metres)
  rmse_log = sqrt(mean((ln g - ln p)^2))                         (natural-log units)
  log10    = mean(|log10 g - log10 p|)                           (log10 units)
  silog    = 100 * sqrt(mean(d^2) - mean(d)^2),  d = ln p - ln g (100 x natural-log units; the
             scale-invariant log error of Eigen et al. 2014 with lambda = 1, in the KITTI depth
             benchmark's x100 form as reported by BTS / AdaBins; tfdepth takes sqrt(max(., 0))
             so that rounding of a constant d gives 0, not NaN)
  delta_k  = mean(max(g / p, p / g) < 1.25^k), k = 1, 2, 3        (fraction in [0, 1], strict <)

The dict keys are METRIC_NAMES. The table over a dataset is the mean of the per-image values over
the images that have at least one valid pixel (not pooled over pixels).
"""

import math
from typing import Dict, List, Sequence, Tuple

import numpy as np
import tensorflow as tf

from tfdepth import errors
from tfdepth.metrics import protocol as protocol_lib

# delta accuracy threshold base (Eigen et al. 2014 / Ladicky et al. 2014): max(g/p, p/g) < 1.25^k.
DELTA_THRESHOLD_BASE = 1.25
# SILog is reported x100 (KITTI depth prediction benchmark; BTS `compute_errors`).
SILOG_SCALE = 100.0

METRIC_NAMES = ("abs_rel", "sq_rel", "rmse", "rmse_log", "log10", "silog",
                "delta1", "delta2", "delta3")
"""Keys of the metric dicts, in table order."""

LOWER_IS_BETTER = {name: not name.startswith("delta") for name in METRIC_NAMES}
"""Direction of each metric (True: lower is better)."""

DISPLAY_NAMES = {
    "abs_rel": "AbsRel", "sq_rel": "SqRel", "rmse": "RMSE", "rmse_log": "RMSElog",
    "log10": "log10", "silog": "SILog", "delta1": "δ<1.25", "delta2": "δ<1.25²",
    "delta3": "δ<1.25³",
}
"""Column headers used by `format_table`."""

NUM_VALID_KEY = "num_valid"
"""Extra key of `compute_depth_errors`: (B,) float32 number of valid pixels per image."""


# ---------------------------------------------------------------------------------------------
# Input checks.


def check_depth_inputs(gt, pred, mask=None, name="compute_depth_errors"):
  """Validates a (B, H, W, 1) GT / prediction pair; returns them as float32 tensors.

  Always (eagerly and while tracing): static shapes must be rank 4 with one channel and equal
  (where known), else `tfdepth.errors.InvalidInputError` naming both shapes.
  Eagerly only (cheap host reductions): NaN in gt, NaN/inf or negative values in pred raise
  `InvalidInputError` naming the offending value. In a `tf.function` the same value checks run
  as `tf.debugging` assertions (`tf.errors.InvalidArgumentError` at run time); under
  `jit_compile=True` XLA ignores Assert ops (it logs "Ignoring Assert operator"), so only the
  static checks apply there.
  """
  gt = tf.convert_to_tensor(gt)
  pred = tf.convert_to_tensor(pred)
  if gt.dtype.is_integer or gt.dtype == tf.bool:
    raise errors.InvalidInputError(
        f"{name}: gt must be floating-point depth in metres, got dtype {gt.dtype.name}.")
  gt = tf.cast(gt, tf.float32)
  pred = tf.cast(pred, tf.float32)
  for label, t in (("gt", gt), ("pred", pred)):
    if t.shape.rank is not None and (t.shape.rank != 4 or t.shape[-1] not in (1, None)):
      raise errors.InvalidInputError(
          f"{name}: {label} must have shape (B, H, W, 1), got {tuple(t.shape)}.")
  if not gt.shape.is_compatible_with(pred.shape):
    raise errors.InvalidInputError(
        f"{name}: gt and pred must have the same shape, got gt {tuple(gt.shape)} and pred "
        f"{tuple(pred.shape)}.")
  if mask is not None:
    mask = tf.convert_to_tensor(mask)
    if not mask.shape.is_compatible_with(gt.shape):
      raise errors.InvalidInputError(
          f"{name}: mask must have gt's shape {tuple(gt.shape)}, got {tuple(mask.shape)}.")
    mask = tf.cast(mask, tf.bool)
  if tf.executing_eagerly():
    if not np.array_equal(tf.shape(gt).numpy(), tf.shape(pred).numpy()):
      raise errors.InvalidInputError(
          f"{name}: gt and pred must have the same shape, got gt {tuple(gt.shape)} and pred "
          f"{tuple(pred.shape)}.")
    gt_np = gt.numpy()
    pred_np = pred.numpy()
    if np.isnan(gt_np).any():
      raise errors.InvalidInputError(
          f"{name}: gt contains NaN ({int(np.isnan(gt_np).sum())} values, first at index "
          f"{tuple(int(i) for i in np.argwhere(np.isnan(gt_np))[0])}); use 0 for invalid pixels.")
    if not np.isfinite(pred_np).all():
      bad = np.argwhere(~np.isfinite(pred_np))[0]
      raise errors.InvalidInputError(
          f"{name}: pred must be finite, got {pred_np[tuple(bad)]} at index "
          f"{tuple(int(i) for i in bad)}.")
    if (pred_np < 0).any():
      bad = np.argwhere(pred_np < 0)[0]
      raise errors.InvalidInputError(
          f"{name}: pred depth must be >= 0 metres, got {pred_np[tuple(bad)]} at index "
          f"{tuple(int(i) for i in bad)}.")
  else:
    checks = [
        tf.debugging.assert_equal(tf.reduce_any(tf.math.is_nan(gt)), False,
                                  message=f"{name}: gt contains NaN; use 0 for invalid pixels"),
        tf.debugging.assert_equal(tf.reduce_all(tf.math.is_finite(pred)), True,
                                  message=f"{name}: pred must be finite"),
        tf.debugging.assert_non_negative(pred, message=f"{name}: pred depth must be >= 0"),
    ]
    with tf.control_dependencies(checks):
      gt = tf.identity(gt)
      pred = tf.identity(pred)
  return gt, pred, mask


# ---------------------------------------------------------------------------------------------
# TensorFlow, per image.


def _per_image_sum(x):
  return tf.reduce_sum(x, axis=[1, 2, 3])


def compute_depth_errors(gt, pred, mask=None, metrics=METRIC_NAMES,
                         check_inputs=True) -> Dict[str, tf.Tensor]:
  """Per-image depth errors in TensorFlow (eager, tf.function, jit_compile, unknown batch size).

  Args:
    gt: (B, H, W, 1) float ground-truth depth in metres, 0 = invalid.
    pred: (B, H, W, 1) float predicted depth in metres, > 0 at the valid pixels (already scaled
      and clamped as the protocol wants, see `tfdepth.metrics.protocol`).
    mask: (B, H, W, 1) bool / {0, 1} pixels to evaluate, or None for `0 < gt < inf`. Pixels
      with gt <= 0, gt = +inf or pred <= 0 are never evaluated, whatever the mask says (their
      logs and ratios are undefined or infinite); +inf GT is "no measurement", as in
      `tfdepth.metrics.evaluation_mask` (`0 < gt < inf`), while NaN GT raises (see
      `check_depth_inputs`).
    metrics: subset of METRIC_NAMES to compute.
    check_inputs: run `check_depth_inputs` (see there for what is checked eagerly vs in graph).

  Returns:
    dict: each requested name -> (B,) float32 per-image value (definitions in the module
    docstring), plus NUM_VALID_KEY -> (B,) float32 number of valid pixels. An image without valid
    pixels gets 0 for every metric (never NaN) and num_valid 0; exclude it from averages, as
    `mean_over_images` does.
  """
  unknown = [m for m in metrics if m not in METRIC_NAMES]
  if unknown or isinstance(metrics, str):
    raise errors.InvalidInputError(
        f"compute_depth_errors: unknown metrics {unknown or metrics!r}; expected a subset of "
        f"{METRIC_NAMES}.")
  if check_inputs:
    gt, pred, mask = check_depth_inputs(gt, pred, mask)
  else:
    gt = tf.cast(gt, tf.float32)
    pred = tf.cast(pred, tf.float32)
    mask = None if mask is None else tf.cast(mask, tf.bool)
  # gt < inf drops +inf GT (a missing measurement, as evaluation_mask treats it); without it an
  # infinite GT pixel turns abs_rel / rmse / the log errors into NaN or inf.
  valid = (gt > 0) & (gt < math.inf) & (pred > 0)
  if mask is not None:
    valid = valid & mask
  valid_f = tf.cast(valid, tf.float32)
  ones = tf.ones_like(gt)
  # Invalid pixels are replaced by 1 before any division / log so that nothing non-finite is
  # produced (0 * NaN would be NaN), then zeroed by valid_f.
  g = tf.where(valid, gt, ones)
  p = tf.where(valid, pred, ones)
  num_valid = _per_image_sum(valid_f)
  denom = tf.maximum(num_valid, 1.0)

  def mean(x):
    return _per_image_sum(x * valid_f) / denom

  out = {}
  diff = g - p
  if "abs_rel" in metrics:
    out["abs_rel"] = mean(tf.abs(diff) / g)
  if "sq_rel" in metrics:
    out["sq_rel"] = mean(tf.square(diff) / g)
  if "rmse" in metrics:
    out["rmse"] = tf.sqrt(mean(tf.square(diff)))
  needs_log = any(m in metrics for m in ("rmse_log", "log10", "silog"))
  if needs_log:
    log_diff = tf.math.log(p) - tf.math.log(g)  # ln p - ln g
    if "rmse_log" in metrics:
      out["rmse_log"] = tf.sqrt(mean(tf.square(log_diff)))
    if "log10" in metrics:
      out["log10"] = mean(tf.abs(log_diff)) / math.log(10.0)
    if "silog" in metrics:
      # Centred two-pass form: mean((d - mean d)^2) == mean(d^2) - mean(d)^2 exactly in real
      # arithmetic, without float32 cancellation.
      mean_d = mean(log_diff)
      centred = (log_diff - tf.reshape(mean_d, [-1, 1, 1, 1])) * valid_f
      variance = _per_image_sum(tf.square(centred)) / denom
      out["silog"] = SILOG_SCALE * tf.sqrt(tf.maximum(variance, 0.0))
  deltas = [k for k in (1, 2, 3) if f"delta{k}" in metrics]
  if deltas:
    ratio = tf.maximum(g / p, p / g)
    for k in deltas:
      out[f"delta{k}"] = mean(tf.cast(ratio < DELTA_THRESHOLD_BASE ** k, tf.float32))
  out[NUM_VALID_KEY] = num_valid
  return out


def mean_over_images(per_image: Dict[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
  """Scalar table from `compute_depth_errors`: the mean over images with num_valid > 0.

  Returns 0 for every metric when no image has a valid pixel (never NaN), and NUM_VALID_KEY ->
  the number of images averaged (float32 scalar).
  """
  weight = tf.cast(per_image[NUM_VALID_KEY] > 0, tf.float32)
  count = tf.reduce_sum(weight)
  out = {k: tf.reduce_sum(v * weight) / tf.maximum(count, 1.0)
         for k, v in per_image.items() if k != NUM_VALID_KEY}
  out[NUM_VALID_KEY] = count
  return out


def scale_and_clamp(gt, pred, mask, protocol):
  """Applies a protocol's fixed scale, median scaling and clamp to a (B, H, W, 1) prediction.

  Returns (pred, ratio): ratio is (B,) float32, the median-scaling ratio (1 without it).
  """
  protocol = protocol_lib.get_protocol(protocol)
  pred = tf.cast(pred, tf.float32)
  if protocol.fixed_scale is not None:
    pred = pred * protocol.fixed_scale
  batch = tf.shape(pred)[0]
  ratio = tf.ones([batch], tf.float32)
  if protocol.median_scaling:
    pred, ratio = protocol_lib.median_scale(pred, tf.cast(gt, tf.float32), mask, clamp=False)
  if protocol.clamp_after_scaling:
    pred = tf.clip_by_value(pred, protocol.min_depth, protocol.max_depth)
  return pred, ratio


# ---------------------------------------------------------------------------------------------
# NumPy reference and the offline evaluator.


def compute_depth_errors_numpy(gt, pred) -> Dict[str, float]:
  """Reference errors of one image in NumPy float64 (Monodepth2 `compute_errors` + BTS log10/SILog).

  Args:
    gt: ground-truth depth in metres at the valid pixels only (any shape; flattened), all > 0.
    pred: predicted depth at the same pixels, all > 0.

  Returns:
    dict METRIC_NAMES -> float (definitions in the module docstring).

  Raises:
    tfdepth.errors.InvalidInputError: integer or bool gt (e.g. raw KITTI uint16 PNG values,
      metres x 256: divide by 256 first), shape mismatch, no pixels, or non-positive /
      non-finite values (the reference would return NaN / inf).
  """
  _check_float_gt(np.asarray(gt), "compute_depth_errors_numpy: gt")
  gt = np.asarray(gt, dtype=np.float64).ravel()
  pred = np.asarray(pred, dtype=np.float64).ravel()
  if gt.shape != pred.shape:
    raise errors.InvalidInputError(
        f"compute_depth_errors_numpy: gt and pred must have the same number of pixels, got "
        f"{gt.size} and {pred.size}.")
  if gt.size == 0:
    raise errors.InvalidInputError(
        "compute_depth_errors_numpy: got 0 pixels; expected at least one valid pixel.")
  for label, v in (("gt", gt), ("pred", pred)):
    bad = ~(np.isfinite(v) & (v > 0))
    if bad.any():
      raise errors.InvalidInputError(
          f"compute_depth_errors_numpy: {label} must be finite and > 0 at the evaluated pixels, "
          f"got {v[bad][0]!r} at flat index {int(np.argmax(bad))}.")
  thresh = np.maximum(gt / pred, pred / gt)
  d = np.log(pred) - np.log(gt)
  silog_var = np.mean(d ** 2) - np.mean(d) ** 2
  return {
      "abs_rel": float(np.mean(np.abs(gt - pred) / gt)),
      "sq_rel": float(np.mean((gt - pred) ** 2 / gt)),
      "rmse": float(np.sqrt(np.mean((gt - pred) ** 2))),
      "rmse_log": float(np.sqrt(np.mean((np.log(gt) - np.log(pred)) ** 2))),
      "log10": float(np.mean(np.abs(np.log10(pred) - np.log10(gt)))),
      "silog": float(SILOG_SCALE * np.sqrt(max(silog_var, 0.0))),
      "delta1": float(np.mean(thresh < DELTA_THRESHOLD_BASE)),
      "delta2": float(np.mean(thresh < DELTA_THRESHOLD_BASE ** 2)),
      "delta3": float(np.mean(thresh < DELTA_THRESHOLD_BASE ** 3)),
  }


def _resize_axis_weights(in_size, out_size):
  """Half-pixel-centre bilinear taps along one axis (OpenCV INTER_LINEAR / tf.image.resize).

  Source coordinate of output pixel o: s = (o + 0.5) * in / out - 0.5, clamped to [0, in - 1].
  """
  scale = in_size / out_size
  src = (np.arange(out_size, dtype=np.float64) + 0.5) * scale - 0.5
  src = np.clip(src, 0.0, in_size - 1)
  lo = np.floor(src).astype(np.int64)
  hi = np.minimum(lo + 1, in_size - 1)
  frac = src - lo
  return lo, hi, frac


def resize_bilinear_numpy(image, out_height, out_width):
  """Bilinear resize of a (H, W) array with half-pixel centres, no antialiasing (float64).

  Matches `tf.image.resize(..., method="bilinear", antialias=False)` and OpenCV's
  `cv2.resize(..., interpolation=cv2.INTER_LINEAR)` used by Monodepth2's evaluator.
  """
  image = np.asarray(image, dtype=np.float64)
  if image.ndim != 2:
    raise errors.InvalidInputError(
        f"resize_bilinear_numpy expects a (H, W) array, got shape {image.shape}.")
  in_h, in_w = image.shape
  if (in_h, in_w) == (out_height, out_width):
    return image.copy()
  r_lo, r_hi, r_frac = _resize_axis_weights(in_h, out_height)
  c_lo, c_hi, c_frac = _resize_axis_weights(in_w, out_width)
  rows = image[r_lo] * (1.0 - r_frac)[:, None] + image[r_hi] * r_frac[:, None]
  return rows[:, c_lo] * (1.0 - c_frac)[None, :] + rows[:, c_hi] * c_frac[None, :]


def _check_float_gt(array, label):
  """Raises InvalidInputError unless `array` (NumPy) holds floating-point depth in metres.

  Integer and bool GT are refused as by `check_depth_inputs`: they are almost always raw stored
  values (KITTI's uint16 depth PNGs hold metres x 256) that would be scored as metres.
  """
  if np.issubdtype(array.dtype, np.integer) or array.dtype == np.bool_:
    raise errors.InvalidInputError(
        f"{label} must be floating-point depth in metres, got dtype {array.dtype} (raw stored "
        "values? KITTI PNG depth is metres x 256); convert to float metres first.")


def _as_2d(array, label, index):
  array = np.asarray(array)
  if label == "gts":
    _check_float_gt(array, f"evaluate_predictions: {label}[{index}]")
  if array.ndim == 3 and array.shape[-1] == 1:
    array = array[..., 0]
  if array.ndim != 2:
    raise errors.InvalidInputError(
        f"evaluate_predictions: {label}[{index}] must have shape (H, W) or (H, W, 1), got "
        f"{array.shape}.")
  if not np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.complexfloating):
    raise errors.InvalidInputError(
        f"evaluate_predictions: {label}[{index}] must be real depth in metres, got dtype "
        f"{array.dtype}.")
  return array


def evaluate_predictions(gts: Sequence[np.ndarray], preds: Sequence[np.ndarray], protocol,
                         resize_as_disparity: bool = True
                         ) -> Tuple[Dict[str, float], List[Dict[str, float]]]:
  """Offline KITTI / NYU evaluator in NumPy (Monodepth2 `evaluate_depth.py` order of operations).

  For each image: the predicted depth is resized to the GT size as disparity (1 / depth,
  bilinear with half-pixel centres, no antialias) and inverted back to depth; the protocol mask
  (`evaluation_mask`) selects the pixels; the prediction is multiplied by the fixed scale, by the
  per-image median ratio, clamped to [min_depth, max_depth]; the errors of
  `compute_depth_errors_numpy` are computed; the table is the mean over images. Everything runs
  in float64 (Monodepth2 runs in float32; the difference is at float32 rounding level).

  Args:
    gts: N ground-truth depth maps in metres (0 = invalid), floating point, each (H_i, W_i) or
      (H_i, W_i, 1); a list (sizes may differ) or an (N, H, W) array.
    preds: N predicted depth maps in metres (any positive size; typically network size), > 0.
    protocol: EvalProtocol or preset name.
    resize_as_disparity: resize 1/pred (the reference). False resizes depth directly.

  Returns:
    (table, per_image): table maps METRIC_NAMES -> mean over the images that have at least one
    valid pixel, plus NUM_VALID_KEY -> number of such images; per_image is a list of N dicts with
    the per-image metrics (NaN for an image without valid pixels), NUM_VALID_KEY (its pixel count)
    and "scale" (the median-scaling ratio times the fixed scale; 1.0 without scaling).

  Raises:
    tfdepth.errors.InvalidInputError: different numbers of GTs and predictions, bad shapes, an
      integer / bool GT (as `check_depth_inputs`), NaN in a GT, non-finite or non-positive
      predictions, or no image with a valid pixel.
  """
  protocol = protocol_lib.get_protocol(protocol)
  if len(gts) != len(preds):
    raise errors.InvalidInputError(
        f"evaluate_predictions: got {len(gts)} ground truths but {len(preds)} predictions.")
  if len(gts) == 0:
    raise errors.InvalidInputError("evaluate_predictions: got 0 images; expected at least one.")
  per_image = []
  for i, (gt, pred) in enumerate(zip(gts, preds)):
    gt = _as_2d(gt, "gts", i).astype(np.float64)
    pred = _as_2d(pred, "preds", i).astype(np.float64)
    if np.isnan(gt).any():
      raise errors.InvalidInputError(
          f"evaluate_predictions: gts[{i}] contains NaN ({int(np.isnan(gt).sum())} values); "
          "use 0 for invalid pixels.")
    bad = ~(np.isfinite(pred) & (pred > 0))
    if bad.any():
      raise errors.InvalidInputError(
          f"evaluate_predictions: preds[{i}] must be finite and > 0 metres, got "
          f"{pred[bad][0]!r} at index {tuple(int(j) for j in np.argwhere(bad)[0])}.")
    height, width = gt.shape
    if pred.shape != gt.shape:
      if resize_as_disparity:
        pred = 1.0 / resize_bilinear_numpy(1.0 / pred, height, width)
      else:
        pred = resize_bilinear_numpy(pred, height, width)
    mask = protocol_lib.evaluation_mask(gt, protocol)
    num_valid = int(mask.sum())
    if num_valid == 0:
      entry = {name: math.nan for name in METRIC_NAMES}
      entry.update({NUM_VALID_KEY: 0, "scale": math.nan})
      per_image.append(entry)
      continue
    gt_v = gt[mask]
    pred_v = pred[mask]
    scale = 1.0
    if protocol.fixed_scale is not None:
      pred_v = pred_v * protocol.fixed_scale
      scale *= protocol.fixed_scale
    if protocol.median_scaling:
      ratio = np.median(gt_v) / np.median(pred_v)
      pred_v = pred_v * ratio
      scale *= float(ratio)
    if protocol.clamp_after_scaling:
      pred_v = np.clip(pred_v, protocol.min_depth, protocol.max_depth)
    entry = compute_depth_errors_numpy(gt_v, pred_v)
    entry.update({NUM_VALID_KEY: num_valid, "scale": scale})
    per_image.append(entry)
  valid = [e for e in per_image if e[NUM_VALID_KEY] > 0]
  if not valid:
    raise errors.InvalidInputError(
        f"evaluate_predictions: none of the {len(per_image)} images has a valid pixel under "
        f"protocol {protocol.name!r} ({protocol.describe()}).")
  table = {name: float(np.mean([e[name] for e in valid])) for name in METRIC_NAMES}
  table[NUM_VALID_KEY] = len(valid)
  return table, per_image


def format_table(table: Dict[str, float], protocol, digits: int = 3) -> str:
  """Markdown table of a metrics dict (Monodepth2 prints 3 decimals).

  Args:
    table: METRIC_NAMES (any subset) -> float, e.g. from `evaluate_predictions` or
      `{m.name: float(m.result()) for m in standard_metrics(...)}`; NUM_VALID_KEY, if present,
      is reported as the image count.
    protocol: EvalProtocol or preset name (printed above the table).
    digits: decimals.

  Returns:
    A string: a bold protocol line, a blank line, a header row with ↓ / ↑ markers, the
    alignment row and the value row.
  """
  protocol = protocol_lib.get_protocol(protocol)
  names = [n for n in METRIC_NAMES if n in table]
  unknown = [k for k in table if k not in METRIC_NAMES and k != NUM_VALID_KEY]
  if unknown or not names:
    raise errors.InvalidInputError(
        f"format_table: table keys must be a non-empty subset of {METRIC_NAMES} (and "
        f"{NUM_VALID_KEY!r}), got {sorted(table)}.")
  title = f"**{protocol.name}** ({protocol.describe()})"
  if NUM_VALID_KEY in table:
    title += f", {int(table[NUM_VALID_KEY])} images"
  header = "| " + " | ".join(
      f"{DISPLAY_NAMES[n]} {'↓' if LOWER_IS_BETTER[n] else '↑'}" for n in names) + " |"
  align = "|" + "|".join("---:" for _ in names) + "|"
  values = "| " + " | ".join(f"{float(table[n]):.{digits}f}" for n in names) + " |"
  return "\n".join([title, "", header, align, values]) + "\n"
