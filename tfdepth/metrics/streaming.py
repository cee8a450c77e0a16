"""Streaming Keras metrics for depth: per-image errors averaged over images.

Every metric reduces each image to one value (definitions in `tfdepth.metrics.functional`), then
accumulates two scalars: `total` = sum over images of the per-image value and `count` = number of
images with at least one valid pixel (optionally weighted). `result() = total / count`, the mean
over images of the KITTI / NYU protocols (Eigen et al. 2014; Monodepth2 `evaluate_depth.py`),
not the pixel-pooled value. Both variables are Keras metric variables (`synchronization=ON_READ`,
`aggregation=SUM`), so under `tf.distribute` the replicas' sums add up on read and the result over
N replicas equals the single-device result.

Known limitation (TensorFlow, not tfdepth): `MirroredStrategy` over *logical* CPU devices together
with `jit_compile=True` fails for every Keras metric ("Trying to access resource ... located in
device CPU:1 from device CPU:0", tensorflow.org/xla/known_issues); mirrored without XLA and XLA on
one device are tested.

Each `update_state` applies, in the reference order (see `tfdepth.metrics.protocol`): the protocol
mask (`min_depth < gt < max_depth`, crop), the fixed scale, per-image median scaling, the clamp,
then the errors. Images without valid pixels are skipped (no NaN).
"""

from typing import List, Optional

import keras
import tensorflow as tf

from tfdepth import errors
from tfdepth.metrics import functional
from tfdepth.metrics import protocol as protocol_lib

# Smallest depth (metres) inverted when resizing a prediction as disparity, so a zero depth gives
# a large finite disparity instead of inf (tfdepth guard; the prediction is clamped afterwards).
RESIZE_MIN_DEPTH = 1e-6


class DepthErrorMetric(keras.metrics.Metric):
  """Base class: mean over images of one per-image depth error.

  Args:
    min_depth, max_depth: metres; GT mask `min_depth < gt < max_depth` (strict) and clamp range.
    crop: "garg", "eigen", "nyu" or None (`tfdepth.metrics.crop_mask`).
    median_scaling: per-image median scaling of the prediction.
    fixed_scale: constant the prediction is multiplied by first (e.g. 5.4 for stereo), or None.
    clamp_after_scaling: clamp the scaled prediction to [min_depth, max_depth].
    filter_gt_range: False masks only `gt > 0` (KITTI benchmark protocol).
    resize_pred_as_disparity: if the prediction's (H, W) differs from the GT's, resize 1/pred
      bilinearly (half-pixel centres, no antialias) to the GT size and invert; otherwise a size
      mismatch raises InvalidInputError.
    name, dtype: as keras.metrics.Metric.

  update_state(y_true, y_pred, sample_weight=None):
    y_true: (B, H, W, 1) GT depth in metres, 0 = invalid. y_pred: (B, H, W, 1) predicted depth in
    metres (or (B, h, w, 1) with resize_pred_as_disparity). sample_weight: None; per-image weights
    (B,) or (B, 1) (the image's value counts with that weight; shape () or (1,) weighs every
    image alike; another length raises InvalidInputError, or fails a tf.debugging assertion in
    a graph when the sizes are only known at run time); or a (B, H, W, 1) pixel mask
    (non-zero = evaluate) combined with the protocol mask. Input checks: see
    `tfdepth.metrics.functional.check_depth_inputs` (typed errors eagerly and for static shapes;
    tf.debugging assertions in graphs; none under XLA).
  """

  metric_key = None  # a key of functional.METRIC_NAMES, set by subclasses

  def __init__(self, min_depth=protocol_lib.KITTI_MIN_DEPTH, max_depth=protocol_lib.KITTI_MAX_DEPTH,
               crop=None, median_scaling=False, fixed_scale=None, clamp_after_scaling=True,
               filter_gt_range=True, resize_pred_as_disparity=False, name=None, dtype=None,
               **kwargs):
    super().__init__(name=name or self.metric_key, dtype=dtype, **kwargs)
    # Validates every argument with typed errors naming the value.
    self._protocol = protocol_lib.EvalProtocol(
        name=self.name, min_depth=min_depth, max_depth=max_depth, crop=crop,
        median_scaling=median_scaling, fixed_scale=fixed_scale,
        clamp_after_scaling=clamp_after_scaling, filter_gt_range=filter_gt_range)
    if not isinstance(resize_pred_as_disparity, bool):
      raise errors.InvalidInputError(
          f"resize_pred_as_disparity must be a bool, got {resize_pred_as_disparity!r}.")
    self.resize_pred_as_disparity = resize_pred_as_disparity
    self.total = self.add_variable(shape=(), initializer="zeros", name="total")
    self.count = self.add_variable(shape=(), initializer="zeros", name="count")

  @property
  def protocol(self) -> protocol_lib.EvalProtocol:
    """The EvalProtocol this metric applies (named after the metric)."""
    return self._protocol

  @classmethod
  def from_protocol(cls, protocol, **kwargs):
    """The metric configured by an EvalProtocol or preset name; kwargs go to the constructor."""
    p = protocol_lib.get_protocol(protocol)
    return cls(min_depth=p.min_depth, max_depth=p.max_depth, crop=p.crop,
               median_scaling=p.median_scaling, fixed_scale=p.fixed_scale,
               clamp_after_scaling=p.clamp_after_scaling, filter_gt_range=p.filter_gt_range,
               **kwargs)

  def _maybe_resize(self, y_true, y_pred):
    """y_pred resized as disparity to y_true's (H, W) when they differ (resize_pred_as_disparity).

    Static sizes decide when both are fully known. Otherwise (e.g. a `tf.function` whose
    input_signature has None spatial dims: `TensorShape([None, None]) == TensorShape([None,
    None])` is True, so static equality proves nothing) the choice is made at run time with
    `tf.cond` on the dynamic shapes, so the result equals the eager one.
    """
    if not self.resize_pred_as_disparity:
      return y_pred
    true_hw = y_true.shape[1:3]
    pred_hw = y_pred.shape[1:3]
    static = true_hw.is_fully_defined() and pred_hw.is_fully_defined()
    if static and true_hw == pred_hw:
      return y_pred
    # The prediction's values are checked before the resize (which floors them at
    # RESIZE_MIN_DEPTH and spreads them over their neighbours), as they are at GT size.
    _, y_pred, _ = functional.check_depth_inputs(tf.zeros_like(y_pred, tf.float32), y_pred,
                                                 name=self.name)
    size = list(true_hw) if static else tf.shape(y_true)[1:3]

    def resized():
      disp = 1.0 / tf.maximum(y_pred, RESIZE_MIN_DEPTH)
      disp = tf.image.resize(disp, size, method="bilinear", antialias=False)
      return 1.0 / disp

    if static:
      return resized()
    same = tf.reduce_all(tf.equal(tf.shape(y_true)[1:3], tf.shape(y_pred)[1:3]))
    return tf.cond(same, lambda: y_pred, resized)

  def _per_image_weight(self, sample_weight, gt):
    """(B,) weights from a (B,) / (B, 1) sample_weight (or one weight for all, shape () / (1,)).

    A length other than B (or 1) raises InvalidInputError when both sizes are static, and fails
    a `tf.debugging.assert_equal` (InvalidArgumentError, "one weight per image") at run time in a
    graph (not under XLA, which drops Assert ops).
    """
    if sample_weight.shape.rank == 2 and sample_weight.shape[1] not in (1, None):
      raise errors.InvalidInputError(
          f"{self.name}: a per-image sample_weight must have shape (B,) or (B, 1), got "
          f"{tuple(sample_weight.shape)}.")
    weight = tf.reshape(sample_weight, [-1])
    num, batch = weight.shape[0], gt.shape[0]
    message = (f"{self.name}: sample_weight must hold one weight per image (B,) / (B, 1) or a "
               "single weight")
    if num is not None and batch is not None:
      if num not in (1, batch):
        raise errors.InvalidInputError(
            f"{message}; got {num} weights (shape {tuple(sample_weight.shape)}) for a batch of "
            f"{batch} images (y_true {tuple(gt.shape)}).")
      return weight
    num_t, batch_t = tf.size(weight), tf.shape(gt)[0]
    check = tf.debugging.assert_equal(
        tf.logical_or(tf.equal(num_t, batch_t), tf.equal(num_t, 1)), True,
        message=f"{message}; the number of weights differs from the batch size (y_true's "
        "first dimension)")
    with tf.control_dependencies([check]):
      return tf.identity(weight)

  def update_state(self, y_true, y_pred, sample_weight=None):
    y_true = tf.convert_to_tensor(y_true)
    y_pred = tf.convert_to_tensor(y_pred)
    for label, t in (("y_true", y_true), ("y_pred", y_pred)):
      if t.shape.rank is not None and t.shape.rank != 4:
        raise errors.InvalidInputError(
            f"{self.name}: {label} must have shape (B, H, W, 1), got {tuple(t.shape)}.")
    y_pred = self._maybe_resize(y_true, y_pred)
    gt, pred, _ = functional.check_depth_inputs(y_true, y_pred, name=self.name)
    mask = protocol_lib.evaluation_mask(gt, self._protocol)
    image_weight = None
    if sample_weight is not None:
      sample_weight = tf.cast(tf.convert_to_tensor(sample_weight), tf.float32)
      if sample_weight.shape.rank == 4:
        if not sample_weight.shape.is_compatible_with(gt.shape):
          raise errors.InvalidInputError(
              f"{self.name}: a pixel sample_weight must have y_true's shape {tuple(gt.shape)}, "
              f"got {tuple(sample_weight.shape)}.")
        mask = mask & (sample_weight != 0)
      elif sample_weight.shape.rank is not None and sample_weight.shape.rank <= 2:
        image_weight = self._per_image_weight(sample_weight, gt)
      else:
        raise errors.InvalidInputError(
            f"{self.name}: sample_weight must be per image (B,) / (B, 1) or a (B, H, W, 1) pixel "
            f"mask, got shape {tuple(sample_weight.shape)}.")
    pred, _ = functional.scale_and_clamp(gt, pred, mask, self._protocol)
    per_image = functional.compute_depth_errors(gt, pred, mask, metrics=(self.metric_key,),
                                                check_inputs=False)
    weight = tf.cast(per_image[functional.NUM_VALID_KEY] > 0, tf.float32)
    if image_weight is not None:
      weight = weight * tf.broadcast_to(image_weight, tf.shape(weight))
    values = tf.cast(per_image[self.metric_key], self.dtype)
    weight = tf.cast(weight, self.dtype)
    self.total.assign_add(tf.reduce_sum(values * weight))
    self.count.assign_add(tf.reduce_sum(weight))

  def result(self):
    return tf.math.divide_no_nan(self.total, self.count)

  def get_config(self):
    config = super().get_config()
    p = self._protocol
    config.update({
        "min_depth": p.min_depth,
        "max_depth": p.max_depth,
        "crop": p.crop,
        "median_scaling": p.median_scaling,
        "fixed_scale": p.fixed_scale,
        "clamp_after_scaling": p.clamp_after_scaling,
        "filter_gt_range": p.filter_gt_range,
        "resize_pred_as_disparity": self.resize_pred_as_disparity,
    })
    return config


@keras.saving.register_keras_serializable(package="tfdepth")
class AbsRel(DepthErrorMetric):
  """Mean over images of mean(|g - p| / g) (Eigen et al. 2014), unitless. Lower is better."""
  metric_key = "abs_rel"


@keras.saving.register_keras_serializable(package="tfdepth")
class SqRel(DepthErrorMetric):
  """Mean over images of mean((g - p)^2 / g) (Eigen et al. 2014), metres. Lower is better."""
  metric_key = "sq_rel"


@keras.saving.register_keras_serializable(package="tfdepth")
class RMSE(DepthErrorMetric):
  """Mean over images of sqrt(mean((g - p)^2)) (Eigen et al. 2014), metres. Lower is better."""
  metric_key = "rmse"


@keras.saving.register_keras_serializable(package="tfdepth")
class RMSELog(DepthErrorMetric):
  """Mean over images of sqrt(mean((ln g - ln p)^2)) (Eigen et al. 2014). Lower is better."""
  metric_key = "rmse_log"


@keras.saving.register_keras_serializable(package="tfdepth")
class Log10(DepthErrorMetric):
  """Mean over images of mean(|log10 g - log10 p|) (BTS, AdaBins). Lower is better."""
  metric_key = "log10"


@keras.saving.register_keras_serializable(package="tfdepth")
class SILog(DepthErrorMetric):
  """Mean over images of 100 sqrt(mean(d^2) - mean(d)^2), d = ln p - ln g (Eigen et al. 2014,
  lambda = 1, x100 as the KITTI benchmark / BTS). Lower is better."""
  metric_key = "silog"


@keras.saving.register_keras_serializable(package="tfdepth")
class DeltaAccuracy(DepthErrorMetric):
  """Mean over images of the fraction of pixels with max(g/p, p/g) < 1.25^power (strict).

  Args:
    power: 1, 2 or 3 (Eigen et al. 2014). The default name is f"delta{power}".
    other args: see DepthErrorMetric.
  """

  def __init__(self, power=1, name=None, **kwargs):
    if isinstance(power, bool) or power not in (1, 2, 3):
      raise errors.InvalidInputError(f"DeltaAccuracy power must be 1, 2 or 3, got {power!r}.")
    self.power = int(power)
    self.metric_key = f"delta{self.power}"
    super().__init__(name=name, **kwargs)

  def get_config(self):
    config = super().get_config()
    config["power"] = self.power
    return config


def standard_metrics(protocol, prefix: str = "", **kwargs) -> List[DepthErrorMetric]:
  """The full table for a protocol: AbsRel, SqRel, RMSE, RMSELog, Log10, SILog, delta 1..3.

  Args:
    protocol: EvalProtocol or preset name (e.g. "kitti_eigen_mono").
    prefix: prepended to the default names (e.g. "kitti_" -> "kitti_abs_rel").
    **kwargs: passed to every constructor (e.g. resize_pred_as_disparity=True, dtype).

  Returns:
    list of 9 fresh metrics named prefix + functional.METRIC_NAMES.
  """
  protocol = protocol_lib.get_protocol(protocol)
  classes = (AbsRel, SqRel, RMSE, RMSELog, Log10, SILog)
  metrics: List[DepthErrorMetric] = [
      cls.from_protocol(protocol, name=prefix + cls.metric_key, **kwargs) for cls in classes]
  metrics += [DeltaAccuracy.from_protocol(protocol, power=k, name=f"{prefix}delta{k}", **kwargs)
              for k in (1, 2, 3)]
  return metrics


def metric_by_name(name: str, protocol: Optional[object] = None, **kwargs) -> DepthErrorMetric:
  """One metric by its key in functional.METRIC_NAMES (e.g. "abs_rel", "delta2")."""
  classes = {"abs_rel": AbsRel, "sq_rel": SqRel, "rmse": RMSE, "rmse_log": RMSELog,
             "log10": Log10, "silog": SILog}
  if name in classes:
    cls, extra = classes[name], {}
  elif name in ("delta1", "delta2", "delta3"):
    cls, extra = DeltaAccuracy, {"power": int(name[-1])}
  else:
    raise errors.ConfigError(
        f"Unknown depth metric {name!r}; expected one of {functional.METRIC_NAMES}.")
  if protocol is None:
    return cls(**extra, **kwargs)
  return cls.from_protocol(protocol, **extra, **kwargs)
