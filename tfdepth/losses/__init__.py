"""Supervised and self-supervised depth losses: pure functions plus Keras `Loss` wrappers.

Pure functions take `(pred, target, mask=None, ...)` NHWC float tensors and return either a
per-pixel map `(B, H, W, 1)` or a per-image loss `(B,)` float32 (docs/DESIGN.md). Ground-truth depth
uses 0 for invalid pixels. Everything runs eagerly, in `tf.function` and under `jit_compile=True`
with an unknown batch size, except `unet_weight_map` (a `tf.numpy_function`; use it in `tf.data`).

Modules:
  depth         Eigen SI-log, BTS SILog, berHu, L1/L2, Eigen–Fergus gradient, MegaDepth gradient.
  ordinal       DORN ordinal regression, SID classification, Chen et al. 2016 ranking loss.
  photometric   Monodepth2 SSIM, photometric error, minimum reprojection, auto-masking.
  smoothness    Monodepth2 edge-aware smoothness.
  segmentation  U-Net border weight map and weighted cross-entropy.
  motion        Li et al. 2021 motion regularisers and occlusion-aware consistency terms.
  geometric3d   Mahjourian et al. 2018 3D point-cloud alignment (projective-association ICP).
  wrappers      keras.losses.Loss classes for `model.compile`.
"""

from tfdepth.losses.depth import berhu_loss
from tfdepth.losses.depth import eigen_pairwise_loss
from tfdepth.losses.depth import gradient_loss
from tfdepth.losses.depth import gradient_matching_loss
from tfdepth.losses.depth import l1_loss
from tfdepth.losses.depth import l2_loss
from tfdepth.losses.depth import scale_invariant_log_loss
from tfdepth.losses.depth import silog_bts_loss
from tfdepth.losses.geometric3d import geometric3d_loss
from tfdepth.losses.geometric3d import geometric3d_residuals
from tfdepth.losses.motion import depth_consistency
from tfdepth.losses.motion import group_smoothness
from tfdepth.losses.motion import l1_2_sparsity
from tfdepth.losses.motion import li_frame_mask
from tfdepth.losses.motion import motion_cycle_consistency
from tfdepth.losses.motion import normalize_motion_map
from tfdepth.losses.motion import occlusion_aware_photometric_consistency
from tfdepth.losses.motion import weighted_ssim
from tfdepth.losses.ordinal import ordinal_regression_loss
from tfdepth.losses.ordinal import ranking_loss
from tfdepth.losses.ordinal import sample_ranking_pairs
from tfdepth.losses.ordinal import sid_cross_entropy
from tfdepth.losses.photometric import automask
from tfdepth.losses.photometric import min_reprojection
from tfdepth.losses.photometric import photometric_error
from tfdepth.losses.photometric import ssim
from tfdepth.losses.photometric import ssim_loss_map
from tfdepth.losses.segmentation import border_weighted_cross_entropy
from tfdepth.losses.segmentation import unet_weight_map
from tfdepth.losses.segmentation import unet_weight_map_numpy
from tfdepth.losses.smoothness import edge_aware_smoothness
from tfdepth.losses.wrappers import BerHuLoss
from tfdepth.losses.wrappers import GradientLoss
from tfdepth.losses.wrappers import GradientMatchingLoss
from tfdepth.losses.wrappers import MaskedL1Loss
from tfdepth.losses.wrappers import MaskedL2Loss
from tfdepth.losses.wrappers import OrdinalRegressionLoss
from tfdepth.losses.wrappers import ScaleInvariantLogLoss
from tfdepth.losses.wrappers import SIDCrossEntropy
from tfdepth.losses.wrappers import SILogLoss

__all__ = [
    "BerHuLoss", "GradientLoss", "GradientMatchingLoss", "MaskedL1Loss", "MaskedL2Loss",
    "OrdinalRegressionLoss", "SIDCrossEntropy", "SILogLoss", "ScaleInvariantLogLoss", "automask",
    "berhu_loss", "border_weighted_cross_entropy", "depth_consistency",
    "edge_aware_smoothness", "eigen_pairwise_loss", "geometric3d_loss", "geometric3d_residuals",
    "gradient_loss", "gradient_matching_loss",
    "group_smoothness", "l1_2_sparsity", "l1_loss", "l2_loss", "li_frame_mask", "min_reprojection",
    "motion_cycle_consistency", "normalize_motion_map", "occlusion_aware_photometric_consistency",
    "ordinal_regression_loss", "photometric_error", "ranking_loss",
    "sample_ranking_pairs", "scale_invariant_log_loss", "sid_cross_entropy", "silog_bts_loss",
    "ssim", "ssim_loss_map", "unet_weight_map", "unet_weight_map_numpy", "weighted_ssim",
]
