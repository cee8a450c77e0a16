"""KITTI / NYU depth evaluation: protocols, per-image error functions, streaming Keras metrics.

* `protocol`: cited constants, `EvalProtocol` and its presets, crops, masks, median scaling.
* `functional`: `compute_depth_errors` (TensorFlow, per image), `compute_depth_errors_numpy`
  (the NumPy reference), `evaluate_predictions` (offline evaluator), `format_table`.
* `streaming`: `keras.metrics.Metric` subclasses averaging per-image errors over images.

Metric definitions and units are in `tfdepth.metrics.functional`; the order of operations of a
protocol is in `tfdepth.metrics.protocol`.
"""

from tfdepth.metrics.functional import (DELTA_THRESHOLD_BASE, DISPLAY_NAMES, LOWER_IS_BETTER,
                                        METRIC_NAMES, NUM_VALID_KEY, SILOG_SCALE,
                                        check_depth_inputs, compute_depth_errors,
                                        compute_depth_errors_numpy, evaluate_predictions,
                                        format_table, mean_over_images, resize_bilinear_numpy,
                                        scale_and_clamp)
from tfdepth.metrics.protocol import (CROPS, EIGEN_CROP_FRACTIONS, GARG_CROP_FRACTIONS,
                                      KITTI_BENCHMARK, KITTI_EIGEN, KITTI_EIGEN_MONO,
                                      KITTI_EIGEN_STEREO, KITTI_MAX_DEPTH, KITTI_MIN_DEPTH, NYU,
                                      NYU_EVAL_CROP, NYU_IMAGE_SIZE, NYU_MAX_DEPTH, NYU_MIN_DEPTH,
                                      PROTOCOLS, STEREO_SCALE_FACTOR, SYNTHETIC_INDOOR,
                                      SYNTHETIC_STREET, EvalProtocol, crop_bounds, crop_mask,
                                      evaluation_mask, get_protocol, median_scale)
from tfdepth.metrics.streaming import (RMSE, SILog, AbsRel, DeltaAccuracy, DepthErrorMetric,
                                       Log10, RMSELog, SqRel, metric_by_name, standard_metrics)

__all__ = [
    "AbsRel", "CROPS", "DELTA_THRESHOLD_BASE", "DISPLAY_NAMES", "DeltaAccuracy",
    "DepthErrorMetric", "EIGEN_CROP_FRACTIONS", "EvalProtocol", "GARG_CROP_FRACTIONS",
    "KITTI_BENCHMARK", "KITTI_EIGEN", "KITTI_EIGEN_MONO", "KITTI_EIGEN_STEREO", "KITTI_MAX_DEPTH",
    "KITTI_MIN_DEPTH", "LOWER_IS_BETTER", "Log10", "METRIC_NAMES", "NUM_VALID_KEY", "NYU",
    "NYU_EVAL_CROP", "NYU_IMAGE_SIZE", "NYU_MAX_DEPTH", "NYU_MIN_DEPTH", "PROTOCOLS", "RMSE",
    "RMSELog", "SILOG_SCALE", "SILog", "STEREO_SCALE_FACTOR", "SYNTHETIC_INDOOR",
    "SYNTHETIC_STREET", "SqRel", "check_depth_inputs", "compute_depth_errors",
    "compute_depth_errors_numpy", "crop_bounds", "crop_mask", "evaluate_predictions",
    "evaluation_mask", "format_table", "get_protocol", "mean_over_images", "median_scale",
    "metric_by_name", "resize_bilinear_numpy", "scale_and_clamp", "standard_metrics",
]
