"""Keras `Loss` wrappers of the supervised depth losses, for `model.compile(loss=...)`.

`y_true` is ground-truth depth (B, H, W, 1) in metres with 0 = invalid, so the mask is
`y_true > 0`; `y_pred` is the predicted depth (B, H, W, 1) (or logits (B, H, W, K) for the
ordinal / classification losses). `call` returns per-image values (B,); Keras applies the
reduction (default "sum_over_batch_size": the mean over images, also per replica under
`tf.distribute`). Every wrapper is registered as serializable in package "tfdepth" and round-trips
`get_config()`.
"""

import keras
import numpy as np

from tfdepth.errors import InvalidInputError
from tfdepth.losses import _common
from tfdepth.losses import depth
from tfdepth.losses import ordinal


class _DepthLoss(keras.losses.Loss):
  """Base class: subclasses set `_fn` and `_params` (attribute names forwarded to `_fn`)."""

  _params = ()

  def call(self, y_true, y_pred):
    return type(self)._fn(y_pred, y_true, None, **{p: getattr(self, p) for p in self._params})

  def get_config(self):
    config = super().get_config()
    config.update({p: getattr(self, p) for p in self._params})
    return config


@keras.saving.register_keras_serializable(package="tfdepth")
class ScaleInvariantLogLoss(_DepthLoss):
  """Eigen et al. 2014 scale-invariant log loss (`tfdepth.losses.scale_invariant_log_loss`)."""

  _fn = staticmethod(depth.scale_invariant_log_loss)
  _params = ("variance_focus",)

  def __init__(self, variance_focus=depth.EIGEN_VARIANCE_FOCUS, name="scale_invariant_log_loss",
               **kwargs):
    super().__init__(name=name, **kwargs)
    self.variance_focus = _common.check_fraction(variance_focus, "variance_focus")


@keras.saving.register_keras_serializable(package="tfdepth")
class SILogLoss(_DepthLoss):
  """BTS / AdaBins SILog loss 10·sqrt(mean d² − 0.85·mean(d)²) (`tfdepth.losses.silog_bts_loss`)."""

  _fn = staticmethod(depth.silog_bts_loss)
  _params = ("variance_focus", "scale")

  def __init__(self, variance_focus=depth.BTS_VARIANCE_FOCUS, scale=depth.BTS_SCALE, name="silog_loss",
               **kwargs):
    super().__init__(name=name, **kwargs)
    self.variance_focus = _common.check_fraction(variance_focus, "variance_focus")
    self.scale = _common.check_positive(scale, "scale")


@keras.saving.register_keras_serializable(package="tfdepth")
class BerHuLoss(_DepthLoss):
  """Laina et al. 2016 reverse Huber loss (`tfdepth.losses.berhu_loss`); c is per batch (per replica)."""

  _fn = staticmethod(depth.berhu_loss)
  _params = ("threshold_fraction",)

  def __init__(self, threshold_fraction=depth.BERHU_THRESHOLD_FRACTION, name="berhu_loss", **kwargs):
    super().__init__(name=name, **kwargs)
    frac = _common.check_fraction(threshold_fraction, "threshold_fraction")
    if frac <= 0.0:
      raise InvalidInputError(
          f"threshold_fraction: expected a number in (0, 1], received {threshold_fraction!r}")
    self.threshold_fraction = frac


@keras.saving.register_keras_serializable(package="tfdepth")
class MaskedL1Loss(_DepthLoss):
  """Mean |pred − gt| over valid pixels (`tfdepth.losses.l1_loss`)."""

  _fn = staticmethod(depth.l1_loss)

  def __init__(self, name="masked_l1_loss", **kwargs):
    super().__init__(name=name, **kwargs)


@keras.saving.register_keras_serializable(package="tfdepth")
class MaskedL2Loss(_DepthLoss):
  """Mean (pred − gt)² over valid pixels (`tfdepth.losses.l2_loss`)."""

  _fn = staticmethod(depth.l2_loss)

  def __init__(self, name="masked_l2_loss", **kwargs):
    super().__init__(name=name, **kwargs)


@keras.saving.register_keras_serializable(package="tfdepth")
class GradientLoss(_DepthLoss):
  """Eigen & Fergus 2015 log-depth gradient term (`tfdepth.losses.gradient_loss`)."""

  _fn = staticmethod(depth.gradient_loss)

  def __init__(self, name="gradient_loss", **kwargs):
    super().__init__(name=name, **kwargs)


@keras.saving.register_keras_serializable(package="tfdepth")
class GradientMatchingLoss(_DepthLoss):
  """MegaDepth multi-scale gradient matching (`tfdepth.losses.gradient_matching_loss`)."""

  _fn = staticmethod(depth.gradient_matching_loss)
  _params = ("num_scales",)

  def __init__(self, num_scales=depth.MEGADEPTH_NUM_SCALES, name="gradient_matching_loss", **kwargs):
    super().__init__(name=name, **kwargs)
    if not isinstance(num_scales, int) or isinstance(num_scales, bool) or num_scales < 1:
      raise InvalidInputError(f"num_scales: expected an integer >= 1, received {num_scales!r}")
    self.num_scales = num_scales


def _edges_list(edges):
  """Validates K + 1 increasing edges and returns them as a JSON-friendly list of floats."""
  arr = np.asarray(edges, dtype=np.float64)
  if arr.ndim != 1 or arr.size < 2 or not np.all(np.isfinite(arr)) or not np.all(np.diff(arr) > 0):
    raise InvalidInputError(
        f"edges: expected a 1-D sequence of at least 2 finite increasing depths, received {edges!r}")
  return [float(e) for e in arr]


class _LogitsLoss(keras.losses.Loss):
  """y_pred = logits (B, H, W, K), y_true = depth (B, H, W, 1); K + 1 edges in the config."""

  def __init__(self, edges, name, **kwargs):
    super().__init__(name=name, **kwargs)
    self.edges = _edges_list(edges)

  def call(self, y_true, y_pred):
    return type(self)._fn(y_pred, y_true, self.edges)

  def get_config(self):
    config = super().get_config()
    config["edges"] = list(self.edges)
    return config


@keras.saving.register_keras_serializable(package="tfdepth")
class OrdinalRegressionLoss(_LogitsLoss):
  """DORN ordinal regression loss (`tfdepth.losses.ordinal_regression_loss`).

  Args:
    edges: K + 1 increasing depth thresholds in metres (e.g. `tfdepth.geometry.sid_edges(...)`,
      converted to a list); the model outputs K logits.
  """

  _fn = staticmethod(ordinal.ordinal_regression_loss)

  def __init__(self, edges, name="ordinal_regression_loss", **kwargs):
    super().__init__(edges, name=name, **kwargs)


@keras.saving.register_keras_serializable(package="tfdepth")
class SIDCrossEntropy(_LogitsLoss):
  """Softmax cross-entropy over K depth bins (`tfdepth.losses.sid_cross_entropy`).

  Args:
    edges: K + 1 increasing depth thresholds in metres; the model outputs K logits.
  """

  _fn = staticmethod(ordinal.sid_cross_entropy)

  def __init__(self, edges, name="sid_cross_entropy", **kwargs):
    super().__init__(edges, name=name, **kwargs)
