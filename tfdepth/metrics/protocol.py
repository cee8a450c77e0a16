"""Evaluation protocols for KITTI, NYU Depth v2 and the synthetic datasets.

A protocol fixes everything that changes a published depth number besides the network: the
ground-truth depth range, the image crop, and how the prediction is scaled before the errors are
computed. The constants below are those of the reference evaluations:

* KITTI Eigen split: Eigen et al., "Depth Map Prediction from a Single Image using a Multi-Scale
  Deep Network", NeurIPS 2014, with the crop of Garg et al., "Unsupervised CNN for Single View
  Depth Estimation: Geometry to the Rescue", ECCV 2016, exactly as coded in Monodepth2's
  `evaluate_depth.py` (Godard et al., "Digging Into Self-Supervised Monocular Depth Estimation",
  ICCV 2019).
* NYU Depth v2: the Eigen et al. 2014 crop and the 1e-3..10 m range as coded in BTS
  (Lee et al. 2019, `bts_eval.py`) and AdaBins (Bhat et al., CVPR 2021).

Order of operations (Monodepth2 `evaluate_depth.py`, kept identical in the offline evaluator
`tfdepth.metrics.evaluate_predictions` and the streaming Keras metrics):

1. mask = `evaluation_mask(gt, protocol)`: `min_depth < gt < max_depth` (strict) and the crop;
2. the prediction is multiplied by `fixed_scale` (stereo models: ×5.4);
3. with `median_scaling`, per image, by `median(gt[mask]) / median(pred[mask])`;
4. with `clamp_after_scaling`, clamped to `[min_depth, max_depth]`;
5. errors per image on the masked pixels, then the mean over images.

Masks here are boolean; `(B, H, W, 1)` float32 masks of the design contract convert with
`tf.cast(mask, tf.float32)`.
"""

import dataclasses
import math
from typing import Optional, Tuple, Union

import numpy as np
import tensorflow as tf

from tfdepth import errors

# Depth range of the KITTI Eigen-split evaluation (Eigen et al. 2014; Monodepth2
# `evaluate_depth.py`: MIN_DEPTH = 1e-3, MAX_DEPTH = 80), metres.
KITTI_MIN_DEPTH = 1e-3
KITTI_MAX_DEPTH = 80.0
# Depth range of the NYU Depth v2 evaluation (BTS `bts_eval.py` / AdaBins `evaluate.py`:
# min_depth_eval = 1e-3, max_depth_eval = 10), metres.
NYU_MIN_DEPTH = 1e-3
NYU_MAX_DEPTH = 10.0
# Garg et al. 2016 crop as fractions of (H, W): rows [top, bottom), cols [left, right); Monodepth2
# `evaluate_depth.py` (`crop = np.array([0.40810811 * gt_height, 0.99189189 * gt_height,
# 0.03594771 * gt_width, 0.96405229 * gt_width]).astype(np.int32)`).
GARG_CROP_FRACTIONS = (0.40810811, 0.99189189, 0.03594771, 0.96405229)
# Eigen et al. 2014 crop as fractions of (H, W), same order (BTS `bts_eval.py`, `--eigen_crop`).
EIGEN_CROP_FRACTIONS = (0.3324324, 0.91351351, 0.0359477, 0.96405229)
# NYU Depth v2 evaluation crop (Eigen et al. 2014; BTS `eval_mask[45:471, 41:601] = 1`):
# rows [45, 471), cols [41, 601) of the 480x640 image.
NYU_EVAL_CROP = (45, 471, 41, 601)
# Image size (H, W) on which NYU_EVAL_CROP is defined (NYU Depth v2 Kinect frames).
NYU_IMAGE_SIZE = (480, 640)
# Stereo-trained models predict depth for a 0.1 baseline; KITTI's is 0.54 m: x5.4 (Monodepth2
# `evaluate_depth.py`, STEREO_SCALE_FACTOR = 5.4).
STEREO_SCALE_FACTOR = 5.4

CROPS = ("garg", "eigen", "nyu")
"""Names accepted by `crop_mask` and `EvalProtocol.crop` (besides None)."""


@dataclasses.dataclass(frozen=True)
class EvalProtocol:
  """An evaluation protocol (see the module docstring for the order of operations).

  Attributes:
    name: registry name, e.g. "kitti_eigen_mono".
    min_depth: metres; GT pixels must satisfy `gt > min_depth` (strict) and the prediction is
      clamped to at least this value (Monodepth2 MIN_DEPTH).
    max_depth: metres; GT pixels must satisfy `gt < max_depth` (strict) and the prediction is
      clamped to at most this value (Monodepth2 MAX_DEPTH).
    crop: "garg", "eigen", "nyu" or None (see `crop_mask`).
    median_scaling: per-image median scaling (monocular, scale-ambiguous models).
    fixed_scale: a constant the prediction is multiplied by first (STEREO_SCALE_FACTOR for
      stereo-trained models), or None.
    clamp_after_scaling: clamp the (scaled) prediction to [min_depth, max_depth].
    filter_gt_range: tfdepth extension (default True). When False the GT mask is only
      `0 < gt < inf` (the KITTI `eigen_benchmark` protocol: "mask = gt > 0, no range filter"),
      while `min_depth`/`max_depth` still clamp the prediction as Monodepth2 does for every split.
  """
  name: str
  min_depth: float
  max_depth: float
  crop: Optional[str] = None
  median_scaling: bool = False
  fixed_scale: Optional[float] = None
  clamp_after_scaling: bool = True
  filter_gt_range: bool = True

  def __post_init__(self):
    if not isinstance(self.name, str) or not self.name:
      raise errors.InvalidInputError(
          f"EvalProtocol.name must be a non-empty string, got {self.name!r}.")
    for field in ("min_depth", "max_depth"):
      value = getattr(self, field)
      if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise errors.InvalidInputError(
            f"EvalProtocol.{field} must be a number (metres), got {value!r}.")
    if not 0.0 <= self.min_depth < self.max_depth:
      raise errors.InvalidInputError(
          f"EvalProtocol needs 0 <= min_depth < max_depth, got min_depth={self.min_depth!r}, "
          f"max_depth={self.max_depth!r}.")
    if self.crop is not None and self.crop not in CROPS:
      raise errors.InvalidInputError(
          f"EvalProtocol.crop must be one of {CROPS} or None, got {self.crop!r}.")
    if self.fixed_scale is not None and (
        isinstance(self.fixed_scale, bool) or not isinstance(self.fixed_scale, (int, float))
        or not math.isfinite(self.fixed_scale) or self.fixed_scale <= 0):
      raise errors.InvalidInputError(
          f"EvalProtocol.fixed_scale must be a finite number > 0 or None, got "
          f"{self.fixed_scale!r}.")
    for field in ("median_scaling", "clamp_after_scaling", "filter_gt_range"):
      if not isinstance(getattr(self, field), bool):
        raise errors.InvalidInputError(
            f"EvalProtocol.{field} must be a bool, got {getattr(self, field)!r}.")

  def describe(self):
    """One-line human description, e.g. 'depth 0.001-80 m, garg crop, median scaling'."""
    if self.filter_gt_range:
      parts = [f"gt in ({self.min_depth:g}, {self.max_depth:g}) m"]
    else:
      parts = ["gt > 0"]
    parts.append(f"{self.crop} crop" if self.crop else "no crop")
    if self.fixed_scale is not None:
      parts.append(f"x{self.fixed_scale:g}")
    if self.median_scaling:
      parts.append("per-image median scaling")
    if self.clamp_after_scaling:
      parts.append(f"pred clamped to [{self.min_depth:g}, {self.max_depth:g}]")
    return ", ".join(parts)


# Supervised / metric-depth models on the KITTI Eigen split (Garg crop, 1e-3..80 m).
KITTI_EIGEN = EvalProtocol("kitti_eigen", KITTI_MIN_DEPTH, KITTI_MAX_DEPTH, crop="garg")
# Monocular self-supervised models: per-image median scaling (Zhou et al. 2017; Monodepth2).
KITTI_EIGEN_MONO = EvalProtocol("kitti_eigen_mono", KITTI_MIN_DEPTH, KITTI_MAX_DEPTH,
                                crop="garg", median_scaling=True)
# Stereo-trained models: fixed x5.4, no median scaling (Monodepth2 `--eval_stereo`).
KITTI_EIGEN_STEREO = EvalProtocol("kitti_eigen_stereo", KITTI_MIN_DEPTH, KITTI_MAX_DEPTH,
                                  crop="garg", fixed_scale=STEREO_SCALE_FACTOR)
# Improved (annotated) ground truth of Uhrig et al. 2017, Monodepth2 `eigen_benchmark`: mask
# gt > 0, no crop, no range filter; the prediction is still clamped to [1e-3, 80].
KITTI_BENCHMARK = EvalProtocol("kitti_benchmark", KITTI_MIN_DEPTH, KITTI_MAX_DEPTH, crop=None,
                               filter_gt_range=False)
# NYU Depth v2 (Eigen crop on 480x640, 1e-3..10 m; BTS / AdaBins).
NYU = EvalProtocol("nyu", NYU_MIN_DEPTH, NYU_MAX_DEPTH, crop="nyu")
# tfdepth's synthetic datasets (no crop, KITTI / NYU depth ranges).
SYNTHETIC_STREET = EvalProtocol("synthetic_street", KITTI_MIN_DEPTH, KITTI_MAX_DEPTH)
SYNTHETIC_INDOOR = EvalProtocol("synthetic_indoor", NYU_MIN_DEPTH, NYU_MAX_DEPTH)

PROTOCOLS = {p.name: p for p in (KITTI_EIGEN, KITTI_EIGEN_MONO, KITTI_EIGEN_STEREO,
                                 KITTI_BENCHMARK, NYU, SYNTHETIC_STREET, SYNTHETIC_INDOOR)}
"""Registry of the preset protocols by name."""


def get_protocol(name: Union[str, EvalProtocol]) -> EvalProtocol:
  """Returns the preset protocol called `name` (case-insensitive); an EvalProtocol passes through.

  Raises:
    tfdepth.errors.ConfigError: unknown name (the message lists the known ones).
    TypeError: `name` is neither a string nor an EvalProtocol.
  """
  if isinstance(name, EvalProtocol):
    return name
  if not isinstance(name, str):
    raise TypeError(f"protocol must be a name (str) or an EvalProtocol, got {name!r} "
                    f"of type {type(name).__name__}.")
  key = name.strip().lower()
  if key not in PROTOCOLS:
    raise errors.ConfigError(
        f"Unknown evaluation protocol {name!r}; expected one of {sorted(PROTOCOLS)}.")
  return PROTOCOLS[key]


def _check_size(height, width):
  for label, value in (("height", height), ("width", width)):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
      raise errors.InvalidInputError(
          f"crop {label} must be a positive int (pixels), got {value!r}.")


def crop_bounds(height: int, width: int, crop: Optional[str]) -> Tuple[int, int, int, int]:
  """Integer crop window `(top, bottom, left, right)`: rows [top, bottom), cols [left, right).

  "garg" / "eigen": `int(fraction * size)` (truncation toward zero, in float64), exactly as the
  reference `np.array([...]).astype(np.int32)`; for 375x1242 Garg gives (153, 371, 44, 1197).
  "nyu": NYU_EVAL_CROP (45, 471, 41, 601) on 480x640. tfdepth extension: on another size the
  window is scaled with integer floor division (`45 * H // 480`, ...), which is exact at 480x640.
  None: the whole image.

  Raises:
    tfdepth.errors.InvalidInputError: non-positive size or unknown crop name.
  """
  _check_size(height, width)
  height, width = int(height), int(width)
  if crop is None:
    return (0, height, 0, width)
  if crop in ("garg", "eigen"):
    fractions = GARG_CROP_FRACTIONS if crop == "garg" else EIGEN_CROP_FRACTIONS
    top, bottom = (int(f * height) for f in fractions[:2])
    left, right = (int(f * width) for f in fractions[2:])
    return (top, bottom, left, right)
  if crop == "nyu":
    ref_h, ref_w = NYU_IMAGE_SIZE
    top, bottom, left, right = NYU_EVAL_CROP
    return (top * height // ref_h, bottom * height // ref_h,
            left * width // ref_w, right * width // ref_w)
  raise errors.InvalidInputError(f"crop must be one of {CROPS} or None, got {crop!r}.")


def crop_mask(height: int, width: int, crop: Optional[str]) -> np.ndarray:
  """Boolean `(height, width)` NumPy mask, True inside the crop window of `crop_bounds`."""
  top, bottom, left, right = crop_bounds(height, width, crop)
  mask = np.zeros((int(height), int(width)), dtype=bool)
  mask[top:bottom, left:right] = True
  return mask


def _spatial_axes(rank):
  """(row_axis, col_axis) of a depth map: (1, 2) for (B, H, W, 1), the last two otherwise."""
  if rank == 4:
    return 1, 2
  if rank in (2, 3):
    return rank - 2, rank - 1
  raise errors.InvalidInputError(
      f"depth must have shape (H, W), (B, H, W) or (B, H, W, 1), got rank {rank}.")


def _crop_mask_tf(gt, crop):
  """tf.bool mask broadcastable to `gt` (rank 2, 3 or 4), True inside the crop window."""
  rank = gt.shape.rank
  row_axis, col_axis = _spatial_axes(rank)
  static_h, static_w = gt.shape[row_axis], gt.shape[col_axis]
  if static_h is not None and static_w is not None:
    height, width = static_h, static_w
    bounds = crop_bounds(height, width, crop)
  else:
    # Dynamic size: the same truncation as `crop_bounds`, in float64 (exact like Python floats)
    # and integer floor division for NYU.
    height = tf.shape(gt)[row_axis]
    width = tf.shape(gt)[col_axis]
    if crop == "nyu":
      top, bottom, left, right = NYU_EVAL_CROP
      ref_h, ref_w = NYU_IMAGE_SIZE
      bounds = (top * height // ref_h, bottom * height // ref_h,
                left * width // ref_w, right * width // ref_w)
    else:
      fractions = GARG_CROP_FRACTIONS if crop == "garg" else EIGEN_CROP_FRACTIONS
      h64, w64 = tf.cast(height, tf.float64), tf.cast(width, tf.float64)
      bounds = tuple(tf.cast(tf.math.floor(f * s), tf.int32)
                     for f, s in zip(fractions, (h64, h64, w64, w64)))
  # Built from aranges rather than a (H, W) constant: no large constants in graphs / SavedModels.
  # Built from aranges rather than an (H, W) constant: no large constants in graphs/SavedModels.
  rows = tf.range(height)
  cols = tf.range(width)
  row_in = (rows >= bounds[0]) & (rows < bounds[1])
  col_in = (cols >= bounds[2]) & (cols < bounds[3])
  mask = row_in[:, None] & col_in[None, :]
  if rank == 4:
    mask = mask[None, :, :, None]
  return mask


def evaluation_mask(gt, protocol):
  """Boolean mask of the GT pixels that a protocol evaluates.

  `min_depth < gt < max_depth` (strict, as Monodepth2 / BTS), or `0 < gt < inf` when
  `protocol.filter_gt_range` is False, and inside the protocol's crop. NaN GT is never valid.

  Args:
    gt: ground-truth depth in metres, 0 = invalid; NumPy array or tf.Tensor of shape (H, W),
      (B, H, W) or (B, H, W, 1) (the crop uses axes 1, 2 for rank 4, the last two otherwise).
    protocol: an EvalProtocol or a preset name.

  Returns:
    bool array (NumPy for NumPy input, tf.bool tensor for tensor input) of gt's shape.
  """
  protocol = get_protocol(protocol)
  if tf.is_tensor(gt) or isinstance(gt, tf.Variable):
    gt = tf.convert_to_tensor(gt)
    if protocol.filter_gt_range:
      mask = (gt > protocol.min_depth) & (gt < protocol.max_depth)
    else:
      mask = (gt > 0) & (gt < math.inf)
    if protocol.crop is not None:
      mask = mask & _crop_mask_tf(gt, protocol.crop)
    return mask
  gt = np.asarray(gt)
  row_axis, col_axis = _spatial_axes(gt.ndim)
  with np.errstate(invalid="ignore"):
    if protocol.filter_gt_range:
      mask = (gt > protocol.min_depth) & (gt < protocol.max_depth)
    else:
      mask = (gt > 0) & (gt < np.inf)
  if protocol.crop is not None:
    crop = crop_mask(gt.shape[row_axis], gt.shape[col_axis], protocol.crop)
    if gt.ndim == 4:
      crop = crop[None, :, :, None]
    mask &= crop
  return mask


# Bit pattern of +inf in float32: every non-negative finite float32 has a smaller int32 pattern
# (IEEE 754 binary32 orders non-negative floats like their bit patterns).
_FLOAT32_INF_BITS = 0x7F800000
# Bisection steps over [0, 0x7F800000]: ceil(log2(0x7F800001)) = 31.
_SELECT_STEPS = 31


def _masked_order_statistics_tf(values, mask, ranks):
  """Exact k-th smallest of `values[b][mask[b]]` for each rank column, without sorting.

  Binary search on the float32 bit pattern (order-preserving for values >= 0): 31 counting passes
  instead of an O(N log N) sort (tf.sort of 4x375x1242 depths took 0.5 s on CPU, 3x this).
  values: (B, N) float32 >= 0; mask: (B, N) bool; ranks: (B,) int32 0-based rank, < the
  image's count (else the result is +inf). Returns (kth, next): (B,) float32, the rank-th
  smallest and the (rank+1)-th smallest (equal to kth when tied; +inf when there is none).
  """
  bits = tf.bitcast(values, tf.int32)
  # Invalid entries (and NaN, whose patterns exceed +inf) are never counted.
  invalid = tf.constant(np.iinfo(np.int32).max, tf.int32)
  bits = tf.where(mask, bits, invalid)
  lo = tf.zeros_like(ranks)
  hi = tf.fill(tf.shape(ranks), tf.constant(_FLOAT32_INF_BITS, tf.int32))

  def body(lo, hi):
    mid = lo + (hi - lo) // 2
    count = tf.reduce_sum(tf.cast(bits <= mid[:, None], tf.int32), axis=-1)
    enough = count > ranks  # at least rank + 1 values <= mid: the answer is <= mid
    return tf.where(enough, lo, mid + 1), tf.where(enough, mid, hi)

  _, kth = tf.while_loop(lambda lo, hi: True, body, (lo, hi), maximum_iterations=_SELECT_STEPS)
  # The next order statistic: kth again if more than rank + 1 values are <= kth, else the
  # smallest value above kth (two passes instead of a second search).
  at_most = tf.reduce_sum(tf.cast(bits <= kth[:, None], tf.int32), axis=-1)
  above = tf.reduce_min(tf.where(bits > kth[:, None], bits, invalid), axis=-1)
  nxt = tf.where(at_most > ranks + 1, kth, tf.minimum(above, _FLOAT32_INF_BITS))
  return tf.bitcast(kth, tf.float32), tf.bitcast(nxt, tf.float32)


def _masked_median_tf(values, mask):
  """Per-image median of `values[mask]` (values >= 0): (B, ...) -> (B,) float32.

  The usual median: the mean of the two middle values for an even count (as `np.median`).
  Images without valid entries get 0. Negative values must not occur (depths; checked by the
  callers' input checks).
  """
  batch = tf.shape(values)[0]
  flat = tf.reshape(tf.cast(values, tf.float32), [batch, -1])
  flat_mask = tf.reshape(mask, [batch, -1])
  count = tf.reduce_sum(tf.cast(flat_mask, tf.int32), axis=-1)
  lower_rank = tf.maximum((count - 1) // 2, 0)
  # Clamp the sign bit away so that -0.0 (and any stray negative) counts as +0.0.
  lower, nxt = _masked_order_statistics_tf(tf.maximum(flat, 0.0), flat_mask, lower_rank)
  upper = tf.where(count % 2 == 0, nxt, lower)  # even count: the two middle values
  median = 0.5 * lower + 0.5 * upper
  return tf.where(count > 0, median, tf.zeros_like(median))


def median_scale(pred, gt, mask, min_depth=KITTI_MIN_DEPTH, max_depth=KITTI_MAX_DEPTH,
                 clamp=True):
  """Per-image median scaling (Zhou et al., CVPR 2017; Monodepth2 `evaluate_depth.py`).

  ratio_b = median(gt_b[mask_b]) / median(pred_b[mask_b]) with the usual median (mean of the two
  middle values, as `np.median`), pred_b *= ratio_b, then (with `clamp`) the scaled prediction is
  clamped to [min_depth, max_depth] -- clamp after scaling, as the reference.

  Args:
    pred: predicted depth (metres up to scale), NumPy or tf.Tensor, (H, W) for a single image or
      (B, ...) for a batch (the tensor path always treats axis 0 as the batch).
    gt: ground-truth depth, same shape as pred.
    mask: bool, same shape; the pixels the medians are taken over.
    min_depth, max_depth: clamp range in metres (the protocol's).
    clamp: whether to clamp after scaling.

  Returns:
    (scaled_pred, ratio): scaled_pred has pred's shape; ratio is a float for a NumPy (H, W) input,
    (B,) for a NumPy batch or a tensor. Images without valid pixels (or a zero median prediction)
    get ratio 1 (their prediction is only clamped).
  """
  if tf.is_tensor(pred) or tf.is_tensor(gt) or tf.is_tensor(mask):
    pred = tf.convert_to_tensor(pred)
    gt = tf.cast(gt, pred.dtype)
    mask = tf.cast(mask, tf.bool)
    gt_med = _masked_median_tf(gt, mask)
    pred_med = _masked_median_tf(pred, mask)
    ok = pred_med > 0
    ratio = tf.where(ok, gt_med / tf.where(ok, pred_med, tf.ones_like(pred_med)),
                     tf.ones_like(pred_med))
    ratio = tf.where(gt_med > 0, ratio, tf.ones_like(ratio))
    rank = pred.shape.rank
    scaled = pred * tf.reshape(ratio, [-1] + [1] * (rank - 1))
    if clamp:
      scaled = tf.clip_by_value(scaled, min_depth, max_depth)
    return scaled, ratio
  pred = np.asarray(pred)
  gt = np.asarray(gt)
  mask = np.asarray(mask, dtype=bool)
  if not pred.shape == gt.shape == mask.shape:
    raise errors.InvalidInputError(
        f"median_scale needs pred, gt and mask of one shape, got {pred.shape}, {gt.shape}, "
        f"{mask.shape}.")
  single = pred.ndim == 2
  batch_pred = pred[None] if single else pred
  batch_gt = gt[None] if single else gt
  batch_mask = mask[None] if single else mask
  ratios = np.ones(batch_pred.shape[0], dtype=np.float64)
  for b in range(batch_pred.shape[0]):
    if batch_mask[b].any():
      pred_med = np.median(batch_pred[b][batch_mask[b]])
      gt_med = np.median(batch_gt[b][batch_mask[b]])
      if pred_med > 0 and gt_med > 0:
        ratios[b] = gt_med / pred_med
  scaled = batch_pred * ratios.reshape([-1] + [1] * (batch_pred.ndim - 1)).astype(
      batch_pred.dtype if np.issubdtype(batch_pred.dtype, np.floating) else np.float64)
  if clamp:
    scaled = np.clip(scaled, min_depth, max_depth)
  if single:
    return scaled[0], float(ratios[0])
  return scaled, ratios
