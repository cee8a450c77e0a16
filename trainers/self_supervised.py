"""Self-supervised monocular depth from video: Monodepth2 and its segmentation-guided variant.

`SelfSupervisedDepthModel` trains a depth network and a separate pose network with `model.fit` on
batches of `tfdepth.data.video.make_self_supervised_dataset` (Godard, Mac Aodha, Firman, Brostow,
"Digging Into Self-Supervised Monocular Depth Estimation", ICCV 2019; reference code
github.com/nianticlabs/monodepth2 `trainer.py`). Conventions (docs/reference-conventions.md):

* Frames {0, -1, +1}: the target is t (index 1 of `frames` (B, 3, H, W, 3), order [t-1, t, t+1]).
  The pose net sees each pair in temporal order: for source -1 it gets (source, target) and its
  transform is inverted, for +1 it gets (target, source) (`trainer.predict_poses`). The resulting
  pose is `source_from_target` (it maps target-camera points into the source camera).
* Networks see the colour-jittered `frames_aug`; the losses use the un-jittered `frames`.
* Full-resolution multi-scale (`use_full_res_multiscale`): each scale's sigmoid disparity is
  upsampled to the input size (bilinear, half-pixel centres, no antialias), converted to depth with
  `disp_to_depth` (0.1 / 100), and the sources are warped and compared at full resolution.
* Per-pixel minimum reprojection over the sources (`use_min_reprojection`; otherwise their mean),
  auto-masking (`use_automask`: identity errors + 1e-5 Gaussian tie-break noise, concatenated
  first).
* Edge-aware smoothness of the mean-normalised sigmoid disparity at its native scale against the
  target resized to that scale, weighted `smoothness_weight / 2^s`.
* Per-scale loss L_s = w_p·L_p,s + w_smooth·L_smooth,s / 2^s (+ w_sup·L_sup,s); total = mean over
  scales (+ w_seg·L_seg for the segmentation-guided variant; + regularisers).
* Semi-supervised (Kuznietsov, Stückler, Leibe, CVPR 2017): with `sparse_depth` in the batch and
  `supervised_weight > 0`, a masked L1 (or berHu) term between each scale's full-resolution depth
  and the sparse depth is added to that scale's loss.
* Segmentation-guided (`segmentation_weight > 0`, network with `seg_logits`): total
  μ·L_p + λ·L_s + α·L_b where μ is the auto-mask, λ = 1e-3, α = 5e-4 and L_b the border-weighted
  cross-entropy (Ronneberger et al. 2015, Eq. 1) of the segmentation head.

Logged terms (un-weighted, each the global-batch mean): `photometric_loss` = mean_s L_p,s,
`smoothness_loss` = mean_s L_smooth,s / 2^s, `supervised_loss`, `segmentation_loss`; so
`loss = w_p·photometric + w_smooth·smoothness + w_sup·supervised + w_seg·segmentation`
(+ w_3d·geometric3d: the optional Mahjourian et al. 2018 3D point-cloud alignment loss,
`geometric3d_term`, for which the depth net also runs on the two temporal sources).

Distribution / precision / non-finite handling mirror `trainers.supervised.SupervisedDepthModel`:
per-image losses go through `_global_batch_mean` (sum / global batch), `optimizer.scale_loss`,
no update at all on a non-finite step (`apply_if_finite`), gradient clipping of the global
gradient (`clip_across_replicas`) and `NonFiniteLossCheck` in every `fit`. Note that Keras
`BatchNormalization` normalises with per-replica statistics under a strategy, as in any Keras
model, unless `train.synchronized_batchnorm` makes them cross-replica
(`tfdepth.models.synchronize_batchnorm`); then N replicas compute the step of one device.

Stereo (Monodepth2 "S" / "MS", `use_stereo`): the stereo partner of the target, frame id "s"
(`STEREO_FRAME_ID`), is one more source, warped with the fixed, known transform of the batch
(`target_from_stereo`, inverted to `source_from_target`; Monodepth2 `inputs["stereo_T"]`)
instead of a predicted pose, and enters the per-pixel minimum reprojection and the auto-mask (its un-warped
identity error too) exactly as the temporal sources; source order -1, +1, "s" (Monodepth2
`frame_ids[1:]`). `use_temporal_frames=False` is the S mode: frames t-1, t+1 are not used and no
pose net is built (`pose_net=None`). Stereo-trained depth is in units of the 0.1 training baseline:
`eval_protocol` evaluates S / MS without median scaling and multiplies depth by
`STEREO_SCALE_FACTOR` = 5.4. Shared-encoder pose variant: not implemented (separate pose net only,
Monodepth2's default).
"""

import dataclasses
import os
from typing import Mapping, Tuple

import keras
import numpy as np
import tensorflow as tf

from tfdepth import geometry
from tfdepth import losses as losses_lib
from tfdepth import models
from tfdepth.data import augment
from tfdepth.errors import ConfigError, InvalidInputError
from trainers.supervised import GuardedFitMixin
from trainers.supervised import MultiWorkerFitMixin
from trainers.supervised import step_logs
from trainers.supervised import TERM_SUFFIX
from trainers.supervised import TOTAL_LOSS_NAME
from trainers.supervised import _global_batch_mean
from trainers.supervised import _num_replicas
from trainers.supervised import all_finite
from trainers.supervised import apply_if_finite
from trainers.supervised import clip_across_replicas
from trainers.supervised import forward_state
from trainers.supervised import mark_non_finite
from trainers.supervised import restore_unless_finite
from trainers.supervised import step_is_finite
from trainers.supervised import update_metrics_if

# Monodepth2 `options.py`: frame_ids [0, -1, 1], scales [0, 1, 2, 3], min/max depth 0.1/100,
# disparity_smoothness 1e-3, learning rate 1e-4, batch 12, 20 epochs with x0.1 at epoch 15.
MONODEPTH2_FRAME_IDS = (0, -1, 1)
MONODEPTH2_SCALES = (0, 1, 2, 3)
MONODEPTH2_SMOOTHNESS_WEIGHT = 1e-3
MONODEPTH2_LEARNING_RATE = 1e-4
# Weight of the photometric term (μ in Godard et al. 2019, Eq. 7 is the auto-mask; its scalar
# weight is 1).
PHOTOMETRIC_WEIGHT = 1.0
# Segmentation-guided variant (issue 5): L = μ·L_p + λ·L_s + α·L_b with λ = 1e-3 (= Monodepth2's
# smoothness weight) and α = 5e-4 for the border-weighted cross-entropy.
SEGDEPTH_SMOOTHNESS_WEIGHT = 1e-3
SEGDEPTH_SEGMENTATION_WEIGHT = 5e-4
# Semi-supervised term (Kuznietsov et al. 2017 use berHu on sparse LiDAR). tfdepth's default
# weight for L1 in metres: 1e-2 brings a ~5 m error to the ~0.1 magnitude of the photometric term
# (tfdepth choice, not from the paper).
SEMI_SUPERVISED_WEIGHT = 1e-2
SUPERVISED_LOSSES = ("l1", "berhu")
# Optional Mahjourian et al. 2018 3D point-cloud alignment term (`tfdepth.losses.geometric3d_loss`):
# off by default (tfdepth choice: not part of Monodepth2).
GEOMETRIC3D_WEIGHT = 0.0
# Index of the target frame t in `frames` [t-1, t, t+1] and of each source id.
TARGET_INDEX = 1
SOURCE_INDEX = {-1: 0, 1: 2}
# Monodepth2 frame id of the stereo partner (`trainer.py`: `if self.opt.use_stereo:
# self.opt.frame_ids.append("s")`); it comes after the temporal sources.
STEREO_FRAME_ID = "s"
# Monodepth2 `evaluate_depth.py`: STEREO_SCALE_FACTOR = 5.4, the KITTI baseline 0.54 m over the 0.1
# of `stereo_T` used in training (`tfdepth.metrics.STEREO_SCALE_FACTOR`, the same value).
STEREO_SCALE_FACTOR = 5.4
# Cityscapes ignore value of `seg_labels` (tfdepth.data.video.CITYSCAPES_IGNORE_ID).
SEG_IGNORE_LABEL = 255
# KITTI: training clips come from `kitti_depth/eigen_zhou` (no depth); the depth evaluation uses the
# Eigen test split of `kitti_depth/eigen` (Monodepth2 `evaluate_depth.py --eval_split eigen`).
KITTI_ZHOU_PREFIX = "kitti_depth/eigen_zhou"
KITTI_EVAL_TFDS_NAME = "kitti_depth/eigen"
ATE_KEY = "ate_3frame"
# Pose evaluation as in the literature: ATE over 5-frame snippets (Zhou, Brown, Snavely, Lowe,
# "Unsupervised Learning of Depth and Ego-Motion from Video", CVPR 2017, Sec. 4.3; Monodepth2
# `evaluate_pose.py` `track_length = 5`: pairwise poses of consecutive frames chained over every
# snippet, stride 1).
ATE_SNIPPET_LENGTH = 5
ATE_SNIPPET_KEY = "ate_5frame"
# tfdepth-eval on the synthetic world: this many sequences of ATE_SNIPPET_LENGTH frames, rendered
# around frame t of the first test clips (~20 s of rendering at 64x192 on one CPU core; tfdepth
# choice).
POSE_EVAL_NUM_SEQUENCES = 32


@dataclasses.dataclass(frozen=True)
class SelfSupervisedConfig:
  """Loss weights and switches of `SelfSupervisedDepthModel` (Monodepth2 defaults).

  Attributes:
    scales: disparity scales used by the losses (subset of the depth net's outputs).
    min_depth, max_depth: metres of `disp_to_depth` (Monodepth2: 0.1, 100).
    photometric_weight: weight of the photometric term (1).
    ssim_weight: α of the photometric error 0.85·SSIM + 0.15·L1.
    smoothness_weight: λ; the scale-s term is weighted λ / 2^s (Monodepth2: 1e-3).
    supervised_weight: weight of the semi-supervised sparse-depth term (0 = off).
    supervised_loss: "l1" (masked mean |d - d*|, metres) or "berhu" (Laina et al. 2016; its
      threshold is a per-replica batch statistic).
    segmentation_weight: α of the border-weighted cross-entropy (0 = off).
    geometric3d_weight: weight of the Mahjourian et al. 2018 3D point-cloud alignment loss between
      the target's scale-0 depth and each temporal source's depth (the depth net is also run on
      the sources; metres; 0 = off).
    use_automask: Monodepth2 auto-masking of stationary pixels.
    use_min_reprojection: per-pixel minimum over sources (else their mean).
    use_full_res_multiscale: warp at input resolution for every scale (else at each scale).
    use_border_weights: weight the segmentation cross-entropy with `seg_weights` (else 1).
    automask_noise_scale: std of the identity-error tie-break noise (Monodepth2: 1e-5).
    use_stereo: add the stereo partner "s" as a source warped with the batch's known
      `target_from_stereo` (Monodepth2 `--use_stereo`; needs `stereo_image` in the batch).
    use_temporal_frames: use frames t-1, t+1 with the pose net (Monodepth2 frame_ids [0, -1, 1]);
      False with `use_stereo` is the stereo-only S mode (`--frame_ids 0 --use_stereo`, no pose net).
      At least one of the two must be True. `frame_ids` gives the resulting Monodepth2 frame set.
  """
  scales: Tuple[int, ...] = MONODEPTH2_SCALES
  min_depth: float = geometry.MONODEPTH2_MIN_DEPTH
  max_depth: float = geometry.MONODEPTH2_MAX_DEPTH
  photometric_weight: float = PHOTOMETRIC_WEIGHT
  ssim_weight: float = losses_lib.photometric.PHOTOMETRIC_ALPHA
  smoothness_weight: float = MONODEPTH2_SMOOTHNESS_WEIGHT
  supervised_weight: float = 0.0
  supervised_loss: str = "l1"
  segmentation_weight: float = 0.0
  geometric3d_weight: float = GEOMETRIC3D_WEIGHT
  use_automask: bool = True
  use_min_reprojection: bool = True
  use_full_res_multiscale: bool = True
  use_border_weights: bool = True
  automask_noise_scale: float = losses_lib.photometric.AUTOMASK_NOISE_SCALE
  use_stereo: bool = False
  use_temporal_frames: bool = True

  def __post_init__(self):
    scales = tuple(self.scales)
    if not scales or any(not isinstance(s, int) or isinstance(s, bool) or s < 0 for s in scales):
      raise InvalidInputError(
          f"scales expected a non-empty tuple of non-negative ints, received {self.scales!r}")
    object.__setattr__(self, "scales", scales)
    if not 0 < self.min_depth < self.max_depth:
      raise InvalidInputError(f"expected 0 < min_depth < max_depth, received "
                              f"{self.min_depth!r}, {self.max_depth!r}")
    for name in ("photometric_weight", "smoothness_weight", "supervised_weight",
                 "segmentation_weight", "automask_noise_scale", "geometric3d_weight"):
      value = getattr(self, name)
      if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise InvalidInputError(f"{name} expected a number >= 0, received {value!r}")
    if not 0.0 <= self.ssim_weight <= 1.0:
      raise InvalidInputError(f"ssim_weight expected in [0, 1], received {self.ssim_weight!r}")
    if self.supervised_loss not in SUPERVISED_LOSSES:
      raise InvalidInputError(f"supervised_loss expected one of {SUPERVISED_LOSSES}, received "
                              f"{self.supervised_loss!r}")
    for name in ("use_automask", "use_min_reprojection", "use_full_res_multiscale",
                 "use_border_weights", "use_stereo", "use_temporal_frames"):
      if not isinstance(getattr(self, name), bool):
        raise InvalidInputError(f"{name} expected a bool, received {getattr(self, name)!r}")
    if self.geometric3d_weight > 0 and not self.use_temporal_frames:
      raise InvalidInputError(
          "geometric3d_weight > 0 needs the temporal sources (use_temporal_frames=True), received "
          f"geometric3d_weight={self.geometric3d_weight!r}, use_temporal_frames=False")
    if not (self.use_stereo or self.use_temporal_frames):
      raise InvalidInputError(
          "expected use_temporal_frames and/or use_stereo to be True (no source frame otherwise), "
          f"received use_temporal_frames={self.use_temporal_frames!r}, "
          f"use_stereo={self.use_stereo!r}")

  @property
  def frame_ids(self):
    """Monodepth2 frame set: (0, -1, 1) M, (0, -1, 1, "s") MS, (0, "s") S."""
    temporal = tuple(SOURCE_INDEX) if self.use_temporal_frames else ()
    return (0,) + temporal + ((STEREO_FRAME_ID,) if self.use_stereo else ())

  def to_dict(self):
    d = dataclasses.asdict(self)
    d["scales"] = list(self.scales)
    return d

  @classmethod
  def from_dict(cls, d):
    d = dict(d)
    if "scales" in d:
      d["scales"] = tuple(d["scales"])
    return cls(**d)


# ----------------------------------------------------------------------------- pure loss pieces
def source_from_target_pose(axis_angle, translation, frame_id):
  """Monodepth2 `transformation_from_parameters` for a pose-net output of the pair in temporal order.

  Args:
    axis_angle, translation: `(B, 3)` pose-net outputs for the pair (earlier, later).
    frame_id: -1 (source before target: the net saw (source, target), the transform is inverted)
      or +1 (the net saw (target, source)).
  Returns:
    `(B, 4, 4)` float32 `source_from_target`.
  """
  if frame_id not in SOURCE_INDEX:
    raise InvalidInputError(f"frame_id expected -1 or 1, received {frame_id!r}")
  return geometry.pose_from_axis_angle_translation(
      tf.cast(axis_angle, tf.float32), tf.cast(translation, tf.float32), invert=frame_id < 0)


def frame_order(frame_id):
  """Sort key of source ids in Monodepth2's order -1, +1, "s" (ints and "s" do not compare)."""
  return (1, 0) if frame_id == STEREO_FRAME_ID else (0, frame_id)


def stereo_source_from_target(target_from_stereo):
  """`source_from_target` `(B, 4, 4)` float32 of the stereo source: the inverse of the batch's
  `target_from_stereo` (for a pure x translation +-b: -+b; Monodepth2's `stereo_T`)."""
  return geometry.invert_pose(tf.cast(target_from_stereo, tf.float32))


def source_images(frames, source_from_target, stereo_image=None):
  """`{frame_id: (B, H, W, 3)}` of every source in `source_from_target`, in `frame_order`.

  Args:
    frames: `(B, 3, H, W, 3)` [t-1, t, t+1].
    source_from_target: dict keyed by the sources to use: -1, 1 and/or "s".
    stereo_image: `(B, H, W, 3)` stereo partner of t; needed when "s" is a source.
  Raises:
    InvalidInputError: unknown source id, or "s" without `stereo_image`.
  """
  out = {}
  for f in sorted(source_from_target, key=frame_order):
    if f == STEREO_FRAME_ID:
      if stereo_image is None:
        raise InvalidInputError(
            'source "s" (stereo) needs stereo_image (B, H, W, 3), received None')
      out[f] = tf.cast(stereo_image, tf.float32)
    elif f in SOURCE_INDEX:
      out[f] = frames[:, SOURCE_INDEX[f]]
    else:
      raise InvalidInputError(
          f"source frame ids expected among (-1, 1, {STEREO_FRAME_ID!r}), received {f!r}")
  return out


def pose_pair(target, source, frame_id):
  """The pose-net input `(B, H, W, 6)`: the two frames concatenated in temporal order."""
  if frame_id not in SOURCE_INDEX:
    raise InvalidInputError(f"frame_id expected -1 or 1, received {frame_id!r}")
  pair = (source, target) if frame_id < 0 else (target, source)
  return tf.concat(pair, axis=-1)


def warp_sources(sources, depth, source_from_target, intrinsics):
  """Warps every source into the target view.

  Args:
    sources: `{frame_id: (B, H, W, 3)}` float32 [0, 1].
    depth: `(B, H, W, 1)` target depth.
    source_from_target: `{frame_id: (B, 4, 4)}`.
    intrinsics: `(B, 3, 3)` pixels of (H, W).
  Returns:
    `{frame_id: (warped (B, H, W, 3), valid (B, H, W, 1))}`.
  """
  return {f: geometry.warp_image(img, depth, source_from_target[f], intrinsics)
          for f, img in sources.items()}


def photometric_loss_map(target, sources, warped, config, seed=0):
  """Monodepth2's per-pixel photometric loss and auto-mask for one scale.

  Args:
    target: `(B, H, W, 3)` float32 [0, 1].
    sources: `{frame_id: (B, H, W, 3)}` un-warped sources (identity errors).
    warped: `{frame_id: (B, H, W, 3)}` warped sources.
    config: `SelfSupervisedConfig`.
    seed: stateless seed of the tie-break noise.
  Returns:
    `(loss (B, H, W, 1), mask (B, H, W, 1))`; mask is 1 where a warped source wins (all ones
    without auto-masking).
  """
  ids = sorted(warped, key=frame_order)
  reprojection = [losses_lib.photometric_error(warped[f], target, config.ssim_weight) for f in ids]
  if not config.use_min_reprojection:
    reprojection = [tf.add_n(reprojection) / float(len(reprojection))]
  if config.use_automask:
    identity = [losses_lib.photometric_error(sources[f], target, config.ssim_weight) for f in ids]
    if not config.use_min_reprojection:
      identity = [tf.add_n(identity) / float(len(identity))]
    return losses_lib.automask(reprojection, identity, seed=seed,
                               noise_scale=config.automask_noise_scale)
  loss, _ = losses_lib.min_reprojection(reprojection)
  return loss, tf.ones_like(loss)


def _resize(x, size, antialias=False):
  return tf.image.resize(x, size, method="bilinear", antialias=antialias)


def _downsample(image, scale):
  """`image` (B, H, W, C) reduced by 2^scale: 2^s x 2^s box average (area filter, the antialiased
  resize of Monodepth2's PIL image pyramid for factors of 2) when H and W divide, else an
  antialiased bilinear resize. The box filter is XLA-compatible (ScaleAndTranslate is not)."""
  if scale == 0:
    return image
  f = 2 ** scale
  h, w = image.shape[1], image.shape[2]
  if h is not None and w is not None and h % f == 0 and w % f == 0:
    return tf.nn.avg_pool2d(image, f, f, "VALID")
  return _resize(image, tf.shape(image)[1:3] // f, antialias=True)


def geometric3d_term(disp, source_depths, source_from_target, intrinsics, config):
  """Mahjourian et al. 2018 3D alignment loss of the target against its temporal sources, (B,).

  Each source's cloud (`source_depths[f]`, metres) is moved into the target camera with
  `inv(source_from_target[f])` and compared with the target's cloud by projective association
  (`tfdepth.losses.geometric3d_loss`, which documents what differs from the paper); the result is
  the mean over the sources present in both dicts (the stereo partner "s" has no predicted depth
  unless given).

  Args:
    disp: `(B, h, w, 1)` Monodepth2 sigmoid disparity of the target at its finest scale; upsampled
      to the sources' (H, W) as in the full-resolution multi-scale (bilinear, half-pixel centres).
    source_depths: `{frame_id: (B, H, W, 1)}` metres.
    source_from_target: `{frame_id: (B, 4, 4)}`.
    intrinsics: `(B, 3, 3)` pixels of (H, W).
    config: `SelfSupervisedConfig` (min/max depth).
  Raises:
    InvalidInputError: no source has both a depth and a pose.
  """
  ids = sorted((f for f in source_depths if f in source_from_target), key=frame_order)
  if not ids:
    raise InvalidInputError(
        f"geometric3d needs a source with both a depth and a pose; received depths for "
        f"{sorted(source_depths, key=frame_order)} and poses for "
        f"{sorted(source_from_target, key=frame_order)}")
  first = tf.cast(source_depths[ids[0]], tf.float32)
  disp = _resize(tf.cast(disp, tf.float32), tf.shape(first)[1:3])
  _, target_depth = geometry.disp_to_depth(disp, config.min_depth, config.max_depth)
  values = [losses_lib.geometric3d_loss(tf.cast(source_depths[f], tf.float32), target_depth,
                                        geometry.invert_pose(source_from_target[f]), intrinsics)
            for f in ids]
  return tf.add_n(values) / float(len(values))


def self_supervised_losses(frames, intrinsics, disps, source_from_target, config, seed=0,
                           sparse_depth=None, seg_logits=None, seg_labels=None, seg_weights=None,
                           stereo_image=None, source_depths=None):
  """All loss terms of one batch, per image.

  Args:
    frames: `(B, 3, H, W, 3)` float32 [0, 1] un-jittered frames [t-1, t, t+1].
    intrinsics: `(B, 3, 3)` pixels of (H, W).
    disps: `{scale: (B, H/2^s, W/2^s, 1)}` Monodepth2 sigmoid disparities (or `{"disp_s": ...}`).
    source_from_target: `{-1: (B, 4, 4), 1: (B, 4, 4)}`.
    config: `SelfSupervisedConfig`.
    seed: int or `(2,)` int tensor; scale s uses fold_in(seed, s) for the auto-mask noise.
    sparse_depth: optional `(B, H, W, 1)` metres, 0 = no return.
    seg_logits, seg_labels, seg_weights: optional `(B, H, W, C)`, `(B, H, W, 1)` int (255 =
      ignore), `(B, H, W, 1)` float.
    stereo_image: `(B, H, W, 3)` [0, 1] un-jittered stereo partner, used when
      `source_from_target` has the key "s" (the sources are the keys of `source_from_target`).
    source_depths: optional `{frame_id: (B, H, W, 1)}` predicted source depths (metres); with
      `config.geometric3d_weight > 0` they give the "geometric3d" term (`geometric3d_term`, target
      depth of the finest scale in `config.scales`).
  Returns:
    dict of `(B,)` float32: "photometric", "smoothness" (already divided by 2^s and averaged over
    scales), optionally "supervised", "segmentation" and "geometric3d"; plus "automask" `(B, H, W, 1)` of scale 0
    (or the first scale) for inspection.
  """
  frames = tf.cast(frames, tf.float32)
  intrinsics = tf.cast(intrinsics, tf.float32)
  if frames.shape.rank != 5 or frames.shape[1] != 3 or frames.shape[-1] != 3:
    raise InvalidInputError(f"frames expected shape (B, 3, H, W, 3), received {frames.shape}")
  disps = {(int(k.split("_")[1]) if isinstance(k, str) else int(k)): v for k, v in disps.items()}
  missing = [s for s in config.scales if s not in disps]
  if missing:
    raise InvalidInputError(
        f"disps lacks scales {missing}; config.scales={config.scales}, received {sorted(disps)}")
  h, w = frames.shape[2], frames.shape[3]
  if h is None or w is None:
    h, w = tf.shape(frames)[2], tf.shape(frames)[3]
  full_size = tf.stack([h, w]) if isinstance(h, tf.Tensor) else [h, w]
  target = frames[:, TARGET_INDEX]
  sources = source_images(frames, source_from_target, stereo_image)
  seed = tf.cast(tf.convert_to_tensor(seed), tf.int64)
  if seed.shape.rank == 0:
    seed = tf.stack([seed, tf.constant(0, tf.int64)])
  k_pyramid = None if config.use_full_res_multiscale else geometry.intrinsics_pyramid(
      intrinsics, max(config.scales) + 1)
  photometric, smoothness, supervised = [], [], []
  first_mask = None
  for s in config.scales:
    disp = tf.cast(disps[s], tf.float32)
    scale_seed = tf.random.experimental.stateless_fold_in(seed, s)
    if config.use_full_res_multiscale:
      disp_full = _resize(disp, full_size)
      _, depth = geometry.disp_to_depth(disp_full, config.min_depth, config.max_depth)
      tgt, srcs, k = target, sources, intrinsics
    else:
      _, depth = geometry.disp_to_depth(disp, config.min_depth, config.max_depth)
      tgt = _downsample(target, s)
      srcs = {f: _downsample(x, s) for f, x in sources.items()}
      k = k_pyramid[s]
    warped = warp_sources(srcs, depth, source_from_target, k)
    loss_map, mask = photometric_loss_map(tgt, srcs, {f: v[0] for f, v in warped.items()},
                                          config, scale_seed)
    if first_mask is None:
      first_mask = mask
    photometric.append(tf.reduce_mean(loss_map, axis=[1, 2, 3]))
    color = _downsample(target, s)
    smoothness.append(losses_lib.edge_aware_smoothness(disp, color) / (2.0 ** s))
    if sparse_depth is not None and config.supervised_weight > 0:
      d_full = depth if config.use_full_res_multiscale else _resize(depth, full_size)
      sparse = tf.cast(sparse_depth, tf.float32)
      valid = tf.cast(sparse > 0.0, tf.float32)
      fn = losses_lib.l1_loss if config.supervised_loss == "l1" else losses_lib.berhu_loss
      supervised.append(fn(d_full, sparse, mask=valid))
  n = float(len(config.scales))
  out = {"photometric": tf.add_n(photometric) / n, "smoothness": tf.add_n(smoothness) / n,
         "automask": first_mask}
  if supervised:
    out["supervised"] = tf.add_n(supervised) / n
  if source_depths is not None and config.geometric3d_weight > 0:
    out["geometric3d"] = geometric3d_term(disps[min(config.scales)], source_depths,
                                          source_from_target, intrinsics, config)
  if seg_logits is not None and config.segmentation_weight > 0:
    if seg_labels is None:
      raise InvalidInputError("segmentation needs seg_labels (B, H, W, 1), received None")
    labels = tf.cast(seg_labels, tf.int32)
    valid = tf.cast(labels != SEG_IGNORE_LABEL, tf.float32)
    weights = (tf.cast(seg_weights, tf.float32)
               if (config.use_border_weights and seg_weights is not None) else tf.ones_like(valid))
    out["segmentation"] = losses_lib.border_weighted_cross_entropy(
        tf.cast(seg_logits, tf.float32), labels, weights, mask=valid)
  return out


def absolute_trajectory_error(pred_positions, gt_positions):
  """Monodepth2 / SfMLearner `compute_ate` on one snippet (numpy).

  The prediction is translated so its first position matches the ground truth, scaled by the
  least-squares factor sum(gt·pred) / sum(pred²), and the error is
  sqrt(sum ||scaled pred - gt||²) / num_frames (the reference's normalisation).

  Args:
    pred_positions, gt_positions: `(N, 3)` camera positions (metres for gt).
  Returns:
    float ATE.
  """
  pred = np.asarray(pred_positions, np.float64)
  gt = np.asarray(gt_positions, np.float64)
  if pred.shape != gt.shape or pred.ndim != 2 or pred.shape[1] != 3:
    raise InvalidInputError(
        f"expected two (N, 3) position arrays, received {pred.shape} and {gt.shape}")
  pred = pred + (gt[0] - pred[0])
  denom = np.sum(pred ** 2)
  scale = np.sum(gt * pred) / denom if denom > 0 else 0.0
  err = pred * scale - gt
  return float(np.sqrt(np.sum(err ** 2)) / gt.shape[0])


def snippet_positions(target_from_source):
  """Camera positions of frames [t-1, t, t+1] in the camera frame of t-1 (the first), `(3, 3)`.

  As Monodepth2 / SfMLearner snippets: the first camera is the origin, so `absolute_trajectory_error`
  (which aligns the first positions, then the scale about the origin) is scale invariant.

  Args:
    target_from_source: `(2, 4, 4)` for sources [t-1, t+1].
  """
  m = np.asarray(target_from_source, np.float64)
  first_from_t = np.linalg.inv(m[0])
  first_from_next = first_from_t @ m[1]
  return np.stack([np.zeros(3), first_from_t[:3, 3], first_from_next[:3, 3]])


def _check_poses(name, poses, count=None):
  """(n, 4, 4) float64 numpy from `poses`; raises InvalidInputError on another shape."""
  m = np.asarray(poses, np.float64)
  if m.ndim != 3 or m.shape[1:] != (4, 4) or (count is not None and m.shape[0] != count):
    want = "(N, 4, 4)" if count is None else f"({count}, 4, 4)"
    raise InvalidInputError(f"{name} expected shape {want}, received {m.shape}")
  return m


def relative_poses(target_from_frame):
  """Motion of each consecutive pair of a sequence from per-frame poses in one reference frame.

  Args:
    target_from_frame: `(N, 4, 4)` poses M[i] with p_ref = M[i] @ p_i (e.g. `render_clip(...,
      num_frames=N)["target_from_frame"]`, or world_from_camera).
  Returns:
    `(N - 1, 4, 4)` float64 `prev_from_next`[i] = M[i]^-1 @ M[i+1] (camera i from camera i+1).
  """
  m = _check_poses("target_from_frame", target_from_frame)
  return np.linalg.inv(m[:-1]) @ m[1:]


def chain_positions(prev_from_next):
  """Camera positions of a snippet in the camera frame of its first frame, `(L, 3)` float64.

  Position k is the translation of first_from_k = prev_from_next[0] @ ... @ prev_from_next[k-1]
  (position 0 is the origin), SfMLearner's snippet convention (first frame = origin, so
  `absolute_trajectory_error` needs no rotational alignment). Monodepth2's `dump_xyz` instead
  multiplies the next_from_prev matrices in the same order; both agree for pure translations up
  to the sign, which the least-squares scale absorbs, but only this product is a trajectory when
  the camera turns.

  Args:
    prev_from_next: `(L - 1, 4, 4)` camera i from camera i+1 (`relative_poses`).
  """
  m = _check_poses("prev_from_next", prev_from_next)
  pose = np.eye(4)
  out = [pose[:3, 3].copy()]
  for step in m:
    pose = pose @ step
    out.append(pose[:3, 3].copy())
  return np.stack(out)


def snippet_ates(pred_prev_from_next, gt_prev_from_next, snippet_length=ATE_SNIPPET_LENGTH):
  """ATE of every snippet of `snippet_length` frames of one sequence, stride 1 (numpy).

  Snippet i covers frames i .. i + snippet_length - 1; its predicted and ground-truth positions
  are `chain_positions` of its snippet_length - 1 pair motions, compared with
  `absolute_trajectory_error` (translation + least-squares scale alignment). Only full snippets
  are used (SfMLearner); Monodepth2's loop also scores the shorter tails at the sequence end.

  Args:
    pred_prev_from_next, gt_prev_from_next: `(N - 1, 4, 4)` pair motions of an N-frame sequence
      (`predict_relative_poses`, `relative_poses`); the gt translation in metres.
    snippet_length: int >= 2, at most N.
  Returns:
    `(N - snippet_length + 1,)` float64 ATE per snippet (metres of the gt).
  Raises:
    InvalidInputError: mismatched shapes, or a snippet_length out of range.
  """
  gt = _check_poses("gt_prev_from_next", gt_prev_from_next)
  pred = _check_poses("pred_prev_from_next", pred_prev_from_next, gt.shape[0])
  if (isinstance(snippet_length, bool) or not isinstance(snippet_length, (int, np.integer))
      or not 2 <= snippet_length <= gt.shape[0] + 1):
    raise InvalidInputError(f"snippet_length expected an int in [2, {gt.shape[0] + 1}] (the "
                            f"sequence has {gt.shape[0] + 1} frames), received {snippet_length!r}")
  steps = snippet_length - 1
  return np.array([
      absolute_trajectory_error(chain_positions(pred[i:i + steps]),
                                chain_positions(gt[i:i + steps]))
      for i in range(gt.shape[0] - steps + 1)])


def _pose_net_of(model):
  """The pose net of a `SelfSupervisedDepthModel`, or `model` itself when it is a pose net."""
  if isinstance(model, SelfSupervisedDepthModel):
    if model.pose_net is None:
      raise InvalidInputError("the model has no pose net (stereo-only mode, "
                              "use_temporal_frames=False): no pose to evaluate")
    return model.pose_net
  if not callable(model):
    raise InvalidInputError(f"model expected a SelfSupervisedDepthModel or a pose net "
                            f"(B, H, W, 6) -> {{'axis_angle', 'translation'}}, received "
                            f"{type(model)}")
  return model


def predict_relative_poses(pose_net, frames):
  """Pair motions of a sequence from the pose net, as the trainer predicts them.

  Each consecutive pair is fed as in `SelfSupervisedDepthModel.predict_poses` for source +1:
  target = frame i, source = frame i+1, `pose_pair` (frames i, i+1 in temporal order) and
  `source_from_target_pose(..., +1)`, which is camera i+1 from camera i (Monodepth2
  `evaluate_pose.py` feeds the same pair and keeps this transform); it is inverted to
  camera i from camera i+1.

  Args:
    pose_net: `(B, H, W, 6)` float32 -> `{"axis_angle", "translation"}` `(B, 3)`, called with
      `training=False`.
    frames: `(N, H, W, 3)` RGB of consecutive frames, uint8 or float in [0, 1].
  Returns:
    `(N - 1, 4, 4)` float64 `prev_from_next` (translation in the network's unknown scale).
  """
  f = np.asarray(frames)
  if f.ndim != 4 or f.shape[-1] != 3 or f.shape[0] < 2:
    raise InvalidInputError(f"frames expected shape (N >= 2, H, W, 3), received {f.shape}")
  f = tf.constant(f.astype(np.float32) / (255.0 if f.dtype == np.uint8 else 1.0))
  out = pose_net(pose_pair(f[:-1], f[1:], 1), training=False)
  next_from_prev = source_from_target_pose(out["axis_angle"], out["translation"], 1)
  return np.asarray(geometry.invert_pose(next_from_prev), np.float64)


def pose_snippets_ate(model, sequences, snippet_length=ATE_SNIPPET_LENGTH):
  """Pose evaluation of the literature: ATE over all `snippet_length`-frame snippets.

  Zhou et al. 2017 / Monodepth2 `evaluate_pose.py`: the pose net predicts the motion of every
  consecutive pair (t, t+1) of each sequence (`predict_relative_poses`), the motions are chained
  over every snippet of 5 frames (stride 1, `snippet_ates`), and each snippet is aligned to the
  ground truth by translation and a least-squares scale (`absolute_trajectory_error`).

  Args:
    model: a `SelfSupervisedDepthModel` (its `pose_net` is used) or a pose net `(B, H, W, 6) ->
      {"axis_angle", "translation"}`.
    sequences: iterable of dicts with "frames" `(N, H, W, 3)` (uint8 or float [0, 1]) and
      "target_from_frame" `(N, 4, 4)` ground-truth poses (p_ref = M[i] @ p_i, metres), e.g.
      `render_pose_sequences`; N >= snippet_length, may differ between sequences.
    snippet_length: frames per snippet (default `ATE_SNIPPET_LENGTH` = 5).
  Returns:
    dict: "mean", "std" (float, metres), "num_snippets" (int), "ate" `(S,)` float64 per snippet.
  Raises:
    InvalidInputError: no sequence, a missing key, or a sequence shorter than snippet_length.
  """
  pose_net = _pose_net_of(model)
  ates = []
  for n, seq in enumerate(sequences):
    missing = [k for k in ("frames", "target_from_frame") if k not in seq]
    if missing:
      raise InvalidInputError(f"sequence {n} lacks keys {missing}; received {sorted(seq)}")
    gt = relative_poses(seq["target_from_frame"])
    if gt.shape[0] + 1 != np.shape(seq["frames"])[0]:
      raise InvalidInputError(
          f"sequence {n}: {np.shape(seq['frames'])[0]} frames but {gt.shape[0] + 1} poses")
    ates.append(snippet_ates(predict_relative_poses(pose_net, seq["frames"]), gt, snippet_length))
  if not ates:
    raise InvalidInputError("sequences expected at least one sequence, received none")
  ate = np.concatenate(ates)
  return {"mean": float(ate.mean()), "std": float(ate.std()), "num_snippets": int(ate.size),
          "ate": ate}


def render_pose_sequences(scene, height, width, seed=0, split="test",
                          num_sequences=POSE_EVAL_NUM_SEQUENCES, num_frames=ATE_SNIPPET_LENGTH,
                          random_intrinsics=False, frame_interval=1.0):
  """Synthetic-world sequences with ground-truth poses for `pose_snippets_ate`.

  Sequence i is `render_clip(scene, height, width, seed, split, i, num_frames=num_frames,
  frame_interval=frame_interval)`: its frames t-1, t, t+1 are those of clip i of `split`, with
  (num_frames - 3) more frames around them (see `tfds_builders.synthetic_world.clips.render_clip`).

  Returns:
    list of dicts: "frames" `(num_frames, height, width, 3)` uint8, "target_from_frame"
    `(num_frames, 4, 4)` float32, "intrinsics" `(3, 3)` float32, "clip_id" str.
  """
  from tfds_builders.synthetic_world import clips  # pylint: disable=g-import-not-at-top
  keys = ("frames", "target_from_frame", "intrinsics", "clip_id")
  out = []
  for index in range(num_sequences):
    clip = clips.render_clip(scene, height, width, seed=seed, split=split, index=index,
                             random_intrinsics=random_intrinsics, num_frames=num_frames,
                             frame_interval=frame_interval)
    if "target_from_frame" not in clip:  # num_frames == 3: frame t is the reference
      clip["target_from_frame"] = np.stack([clip["target_from_source"][0], np.eye(4),
                                            clip["target_from_source"][1]]).astype(np.float32)
    out.append({k: clip[k] for k in keys})
  return out


def synthetic_pose_ate(model, builder_config, height, width, split="test",
                       num_sequences=POSE_EVAL_NUM_SEQUENCES, snippet_length=ATE_SNIPPET_LENGTH):
  """`pose_snippets_ate` on `render_pose_sequences` of a synthetic_world builder config.

  Args:
    model: as `pose_snippets_ate`.
    builder_config: a `SyntheticWorldConfig` (its scene, seed, random_intrinsics and
      frame_interval are used).
    height, width: the experiment's network input size (the sequences are rendered at it).
    split: split name whose clips the sequences extend (a TFDS slice like "test[:10]" is cut to
      "test").
  Returns:
    `pose_snippets_ate`'s dict.
  """
  for attr in ("scene", "seed", "random_intrinsics", "frame_interval"):
    if not hasattr(builder_config, attr):
      raise InvalidInputError(f"builder_config expected a synthetic_world config with {attr!r}, "
                              f"received {type(builder_config)}")
  sequences = render_pose_sequences(
      builder_config.scene, height, width, seed=builder_config.seed,
      split=str(split).split("[")[0], num_sequences=num_sequences, num_frames=snippet_length,
      random_intrinsics=builder_config.random_intrinsics,
      frame_interval=float(builder_config.frame_interval))
  return pose_snippets_ate(model, sequences, snippet_length)


# ----------------------------------------------------------------------------- the model
@keras.saving.register_keras_serializable(package="tfdepth")
class SelfSupervisedDepthModel(GuardedFitMixin, MultiWorkerFitMixin, keras.Model):
  """Monodepth2 trainer: depth net + separate pose net, self-supervised by view synthesis.

  Args:
    depth_net: `keras.Model`, image `(B, H, W, 3)` float32 [0, 1] -> `{"disp_s": (B, H/2^s,
      W/2^s, 1)}` sigmoid disparities for every s in `config.scales` (optionally `"seg_logits"`
      `(B, H, W, C)`), e.g. `build_monodepth2_depth_net` / `build_segdepth_net`.
    pose_net: `keras.Model`, `(B, H, W, 6)` (two frames in temporal order) -> `{"axis_angle",
      "translation"}` `(B, 3)`, e.g. `build_monodepth2_pose_net(num_input_frames=2)`; None in the
      stereo-only mode (`config.use_temporal_frames=False`), where no pose is predicted.
    config: `SelfSupervisedConfig` (or its dict).
    depth_metrics: streaming metrics updated with (batch["depth"], predicted depth) when the
      batch has ground truth (use a median-scaling protocol for monocular models).
  """

  def __init__(self, depth_net, pose_net, config=None, depth_metrics=(), **kwargs):
    super().__init__(**kwargs)
    if config is None:
      config = SelfSupervisedConfig()
    elif isinstance(config, Mapping):
      config = SelfSupervisedConfig.from_dict(config)
    if not isinstance(config, SelfSupervisedConfig):
      raise InvalidInputError(f"config expected a SelfSupervisedConfig, received {type(config)}")
    nets = (("depth_net", depth_net), ("pose_net", pose_net))
    for name, net in nets if config.use_temporal_frames else nets[:1]:
      if not isinstance(net, keras.Model):
        raise InvalidInputError(f"{name} expected a keras.Model, received {type(net)}")
    if not config.use_temporal_frames and pose_net is not None:
      raise InvalidInputError("the stereo-only mode (use_temporal_frames=False) uses no pose net; "
                              f"expected pose_net=None, received {type(pose_net)}")
    self.depth_net = depth_net
    self.pose_net = pose_net
    self.config = config
    self.term_names = ["photometric", "smoothness"]
    if config.supervised_weight > 0:
      self.term_names.append("supervised")
    if config.segmentation_weight > 0:
      self.term_names.append("segmentation")
    if config.geometric3d_weight > 0:
      self.term_names.append("geometric3d")
    self.total_tracker = keras.metrics.Mean(name=TOTAL_LOSS_NAME)
    self.term_trackers = [keras.metrics.Mean(name=n + TERM_SUFFIX) for n in self.term_names]
    self.depth_metrics = list(depth_metrics)

  @property
  def term_weights(self):
    c = self.config
    return {"photometric": c.photometric_weight, "smoothness": c.smoothness_weight,
            "supervised": c.supervised_weight, "segmentation": c.segmentation_weight,
            "geometric3d": c.geometric3d_weight}

  @property
  def metrics(self):
    return [self.total_tracker] + self.term_trackers + self.depth_metrics

  def call(self, inputs, training=False):
    """image `(B, H, W, 3)` (or a batch dict) -> depth-net outputs + `"depth"` `(B, H, W, 1)`."""
    if isinstance(inputs, Mapping):
      inputs = inputs["image"] if "image" in inputs else inputs["frames"][:, TARGET_INDEX]
    outputs = dict(self.depth_net(inputs, training=training))
    outputs = {k: tf.cast(v, tf.float32) for k, v in outputs.items()}
    _, outputs["depth"] = geometry.disp_to_depth(outputs["disp_0"], self.config.min_depth,
                                                 self.config.max_depth)
    return outputs

  def source_depths(self, batch, training=False):
    """`{-1: (B, H, W, 1), 1: ...}` scale-0 depths (metres) of the temporal sources, from the
    depth net on the frames the networks see (`frames_aug` in training, else `frames`)."""
    frames = batch.get("frames_aug", batch["frames"]) if training else batch["frames"]
    frames = tf.cast(frames, tf.float32)
    out = {}
    for f, i in SOURCE_INDEX.items():
      disp = tf.cast(self.depth_net(frames[:, i], training=training)["disp_0"], tf.float32)
      out[f] = geometry.disp_to_depth(disp, self.config.min_depth, self.config.max_depth)[1]
    return out

  def predict_poses(self, frames_aug, training=False):
    """`{frame_id: source_from_target (B, 4, 4)}` from the pose net on jittered frames (`{}` in
    the stereo-only mode)."""
    target = frames_aug[:, TARGET_INDEX]
    poses = {}
    if not self.config.use_temporal_frames:
      return poses
    for f, i in SOURCE_INDEX.items():
      out = self.pose_net(pose_pair(target, frames_aug[:, i], f), training=training)
      poses[f] = source_from_target_pose(out["axis_angle"], out["translation"], f)
    return poses

  def source_poses(self, batch, frames_aug, training=False):
    """`{frame_id: source_from_target (B, 4, 4)}` of every source of `config.frame_ids`: the pose
    net for -1 / +1, the batch's fixed `target_from_stereo` (inverted) for "s"."""
    poses = self.predict_poses(frames_aug, training=training)
    if self.config.use_stereo:
      missing = [k for k in ("stereo_image", "target_from_stereo") if k not in batch]
      if missing:
        raise InvalidInputError(
            f"use_stereo needs batch keys {missing} (make_self_supervised_dataset(stereo=True)); "
            f"received {sorted(batch)}")
      poses[STEREO_FRAME_ID] = stereo_source_from_target(batch["target_from_stereo"])
    return poses

  def visualization_outputs(self, batch):
    """TensorBoard extras (`trainers.callbacks.DepthTensorBoard` hook) at scale 0:
    `{"warped_-1", "warped_+1", "warped_s": (B, H, W, 3), "automask": (B, H, W, 1)}` for the
    sources of `config.frame_ids` the batch has ("s" only when it carries the stereo pair; the
    callback's sample batch keeps `frames` and `intrinsics` only); `{}` without them."""
    if "frames" not in batch or "intrinsics" not in batch:
      return {}
    frames = tf.cast(batch["frames"], tf.float32)
    depth = self(frames[:, TARGET_INDEX], training=False)["depth"]
    poses = self.predict_poses(frames, training=False)
    if self.config.use_stereo and "target_from_stereo" in batch and "stereo_image" in batch:
      poses[STEREO_FRAME_ID] = stereo_source_from_target(batch["target_from_stereo"])
    if not poses:
      return {}
    sources = source_images(frames, poses, batch.get("stereo_image"))
    warped = warp_sources(sources, depth, poses, tf.cast(batch["intrinsics"], tf.float32))
    target = frames[:, TARGET_INDEX]
    _, automask = photometric_loss_map(target, sources, {f: v[0] for f, v in warped.items()},
                                       self.config)
    out = {(f"warped_{f}" if f == STEREO_FRAME_ID else f"warped_{f:+d}"): v[0]
           for f, v in warped.items()}
    out["automask"] = automask
    return out

  def get_config(self):
    return {
        **super().get_config(),
        "depth_net": keras.saving.serialize_keras_object(self.depth_net),
        "pose_net": (None if self.pose_net is None
                     else keras.saving.serialize_keras_object(self.pose_net)),
        "config": self.config.to_dict(),
    }

  @classmethod
  def from_config(cls, config):
    config = dict(config)
    config["depth_net"] = keras.saving.deserialize_keras_object(config["depth_net"])
    if config.get("pose_net") is not None:
      config["pose_net"] = keras.saving.deserialize_keras_object(config["pose_net"])
    return cls(**config)

  # ----------------------------------------------------------------- steps
  @staticmethod
  def _unpack(data):
    if isinstance(data, (tuple, list)) and data and isinstance(data[0], Mapping):
      data = data[0]
    if not isinstance(data, Mapping) or "frames" not in data or "intrinsics" not in data:
      raise InvalidInputError(
          "SelfSupervisedDepthModel expected a batch dict with 'frames' (B, 3, H, W, 3) and "
          f"'intrinsics', received {type(data)} "
          f"{sorted(data) if isinstance(data, Mapping) else ''}")
    return data

  def compute_loss_terms(self, batch, outputs, poses, seed, training=False):
    """Per-replica weighted total and `{term: global-batch-mean contribution}` (float32).

    `training`: the mode in which the depth net runs on the source frames (3D loss only).
    """
    per_image = self_supervised_losses(
        batch["frames"], batch["intrinsics"],
        {s: outputs[f"disp_{s}"] for s in self.config.scales}, poses, self.config, seed=seed,
        sparse_depth=batch.get("sparse_depth"), seg_logits=outputs.get("seg_logits"),
        seg_labels=batch.get("seg_labels"), seg_weights=batch.get("seg_weights"),
        stereo_image=batch.get("stereo_image"),
        source_depths=(self.source_depths(batch, training)
                       if self.config.geometric3d_weight > 0 and self.config.use_temporal_frames
                       else None))
    terms = {}
    for name in self.term_names:
      if name not in per_image:
        raise InvalidInputError(
            f"loss term {name!r} is enabled but the batch/network lacks its inputs (supervised "
            "needs batch['sparse_depth'], segmentation needs outputs['seg_logits'] and "
            f"batch['seg_labels']); batch keys {sorted(batch)}, outputs {sorted(outputs)}")
      terms[name] = _global_batch_mean(per_image[name])
    weights = self.term_weights
    total = tf.add_n([tf.constant(weights[n], tf.float32) * v for n, v in terms.items()])
    if self.losses:
      reg = tf.add_n([tf.cast(tf.reduce_sum(l), tf.float32) for l in self.losses])
      total += reg / tf.cast(_num_replicas(), tf.float32)
    return total, terms

  def _update_trackers(self, total, terms, batch_size):
    replicas = tf.cast(_num_replicas(), tf.float32)
    self.total_tracker.update_state(total * replicas, sample_weight=batch_size)
    for tracker, name in zip(self.term_trackers, self.term_names):
      tracker.update_state(terms[name] * replicas, sample_weight=batch_size)

  def _update_metrics(self, batch, outputs, finite=None):
    """Updates the depth metrics (batches with "depth"); with `finite` only when it is True."""
    if self.depth_metrics and "depth" in batch:
      update_metrics_if(finite, self.depth_metrics, tf.cast(batch["depth"], tf.float32),
                        outputs["depth"])

  def train_step(self, data):
    batch = self._unpack(data)
    frames_aug = tf.cast(batch.get("frames_aug", batch["frames"]), tf.float32)
    batch_size = tf.shape(frames_aug)[0]
    seed = tf.stack([tf.cast(self.optimizer.iterations, tf.int64), tf.constant(1, tf.int64)])
    state = forward_state(self)
    with tf.GradientTape() as tape:
      outputs = self(frames_aug[:, TARGET_INDEX], training=True)
      poses = self.source_poses(batch, frames_aug, training=True)
      total, terms = self.compute_loss_terms(batch, outputs, poses, seed, training=True)
      scaled = self.optimizer.scale_loss(total) if hasattr(self.optimizer, "scale_loss") else total
    variables = self.trainable_variables
    grads = tape.gradient(scaled, variables)
    # A non-finite step (loss term, predicted depth or gradient, on any replica) is not applied.
    finite = step_is_finite(self.optimizer, grads, total, list(terms.values()), outputs["depth"])
    apply_if_finite(self.optimizer, clip_across_replicas(self.optimizer, grads), variables, finite)
    restore_unless_finite(state, finite)
    self._update_trackers(mark_non_finite(total, finite), terms, batch_size)
    self._update_metrics(batch, outputs, finite)
    return step_logs(self.metrics)

  def test_step(self, data):
    batch = self._unpack(data)
    frames = tf.cast(batch["frames"], tf.float32)
    outputs = self(frames[:, TARGET_INDEX], training=False)
    poses = self.source_poses(batch, frames, training=False)
    total, terms = self.compute_loss_terms(batch, outputs, poses, tf.constant([0, 2], tf.int64),
                                           training=False)
    # Non-finite: NaN loss (NonFiniteLossCheck raises a typed error), depth metrics not updated.
    finite = all_finite(total, list(terms.values()), outputs["depth"])
    self._update_trackers(mark_non_finite(total, finite), terms, tf.shape(frames)[0])
    self._update_metrics(batch, outputs, finite)
    return step_logs(self.metrics)

  def predict_step(self, data):
    if isinstance(data, Mapping):
      x = data["image"] if "image" in data else data["frames"][:, TARGET_INDEX]
    else:
      x = data[0] if isinstance(data, (tuple, list)) else data
    return self(x, training=False)


# ----------------------------------------------------------------------------- experiments
# ExperimentConfig.model.name values handled by this module (dispatched from trainers.train and
# trainers.evaluate by `is_self_supervised`).
SELF_SUPERVISED_MODELS = ("monodepth2", "segdepth")
# ExperimentConfig loss-term names -> SelfSupervisedConfig weight fields.
LOSS_TERM_FIELDS = {"photometric": "photometric_weight", "smoothness": "smoothness_weight",
                    "supervised": "supervised_weight", "segmentation": "segmentation_weight",
                    "geometric3d": "geometric3d_weight"}


def is_self_supervised(config):
  """True when `config` (an `ExperimentConfig`) is trained by this module."""
  return getattr(getattr(config, "model", None), "name", None) in SELF_SUPERVISED_MODELS


def self_supervised_config(config):
  """`SelfSupervisedConfig` from an `ExperimentConfig`.

  Loss terms are named after `LOSS_TERM_FIELDS` (their weights set the matching field); every
  term's `kwargs` may set the other fields (e.g. `losses.photometric.kwargs.use_automask=false`).
  """
  fields = {f.name for f in dataclasses.fields(SelfSupervisedConfig)}
  values = {"smoothness_weight": 0.0, "photometric_weight": 0.0}
  for term in config.losses:
    if term.name not in LOSS_TERM_FIELDS:
      raise ConfigError(f"self-supervised loss term {term.name!r} is not one of "
                        f"{sorted(LOSS_TERM_FIELDS)}")
    values[LOSS_TERM_FIELDS[term.name]] = float(term.weight)
    for key, value in dict(term.kwargs).items():
      if key not in fields:
        raise ConfigError(f"losses.{term.name}.kwargs.{key} is not a SelfSupervisedConfig field; "
                          f"valid: {sorted(fields)}")
      values[key] = tuple(value) if key == "scales" else value
  try:
    return SelfSupervisedConfig(**values)
  except InvalidInputError as e:
    raise ConfigError(str(e)) from None


def eval_protocol(config):
  """The evaluation protocol of a self-supervised experiment.

  Mono (M): the experiment's protocol with per-image median scaling. Stereo (S, MS:
  `use_stereo`): no median scaling, depth x `STEREO_SCALE_FACTOR` (Monodepth2
  `evaluate_depth.py --eval_stereo`), e.g. `kitti_eigen_stereo`.
  """
  from tfdepth import metrics  # pylint: disable=g-import-not-at-top
  base = metrics.get_protocol(config.metrics_protocol)
  if self_supervised_config(config).use_stereo:
    if base.fixed_scale == STEREO_SCALE_FACTOR and not base.median_scaling:
      return base
    return dataclasses.replace(base, name=f"{base.name}_stereo", median_scaling=False,
                               fixed_scale=STEREO_SCALE_FACTOR)
  if base.median_scaling:
    return base
  return dataclasses.replace(base, name=f"{base.name}_median", median_scaling=True)


def build_networks(config):
  """`(depth_net, pose_net)` for an experiment (model kwargs: num_layers, num_classes); pose_net
  is None in the stereo-only mode (no temporal frames)."""
  from tfdepth.models import monodepth2  # pylint: disable=g-import-not-at-top
  from tfdepth.models import segdepth  # pylint: disable=g-import-not-at-top
  kwargs = dict(config.model.kwargs)
  num_layers = int(kwargs.pop("num_layers", 18))
  num_classes = int(kwargs.pop("num_classes", segdepth.DEFAULT_NUM_CLASSES))
  if kwargs:
    raise ConfigError(f"unknown model.kwargs {sorted(kwargs)}; expected num_layers, num_classes")
  scales = self_supervised_config(config).scales
  shape = (config.data.height, config.data.width, 3)
  if config.model.name == "segdepth":
    depth = segdepth.build_segdepth_net(shape, num_layers, scales, num_classes)
  elif config.model.name == "monodepth2":
    depth = monodepth2.build_monodepth2_depth_net(shape, num_layers, scales)
  else:
    raise ConfigError(f"model.name expected one of {SELF_SUPERVISED_MODELS}, received "
                      f"{config.model.name!r}")
  if not self_supervised_config(config).use_temporal_frames:
    return depth, None
  pose = monodepth2.build_monodepth2_pose_net(shape, num_layers, num_input_frames=2)
  return depth, pose


def build_self_supervised_trainer(config, total_steps, strategy=None, with_metrics=True):
  """Builds and compiles a `SelfSupervisedDepthModel` for `config` inside `strategy.scope()`."""
  from tfdepth import metrics  # pylint: disable=g-import-not-at-top
  from trainers import common  # pylint: disable=g-import-not-at-top
  strategy = strategy or tf.distribute.get_strategy()
  common.set_precision(config.train.mixed_precision)
  keras.utils.set_random_seed(config.train.seed)
  ss_config = self_supervised_config(config)
  with strategy.scope():
    depth, pose = build_networks(config)
    if config.train.synchronized_batchnorm:
      for net in (depth, pose):
        if net is not None:   # no pose net in the stereo-only mode
          models.synchronize_batchnorm(net)
    model = SelfSupervisedDepthModel(
        depth, pose, ss_config,
        depth_metrics=metrics.standard_metrics(eval_protocol(config)) if with_metrics else (),
        name="self_supervised")
    model.compile(optimizer=common.build_optimizer(config.optimizer, total_steps),
                  jit_compile=config.train.jit_compile)
    h, w = config.data.height, config.data.width
    model(tf.zeros([1, h, w, 3]))
    model.predict_poses(tf.zeros([1, 3, h, w, 3]))
  return model


def _video_adapter(config):
  from tfdepth.data import video  # pylint: disable=g-import-not-at-top
  if config.data.tfds_name.startswith("kitti_depth"):
    return video.kitti_to_self_supervised
  return video.synthetic_world_to_self_supervised


def make_datasets(config, builder, splits=("train", "validation"), cache=True):
  """`{role: dataset}` of `make_self_supervised_dataset` for roles train / validation / test."""
  from tfdepth.data import video  # pylint: disable=g-import-not-at-top
  d, t = config.data, config.train
  ss = self_supervised_config(config)
  names = {"train": d.train_split, "validation": d.validation_split, "test": d.test_split}
  out = {}
  for role in splits:
    training = role == "train"
    out[role] = video.make_self_supervised_dataset(
        builder, split=names[role], batch_size=t.batch_size, height=d.height, width=d.width,
        training=training, seed=t.seed, augment_data=training and d.augment,
        drop_remainder=training and t.drop_remainder, shuffle_buffer=d.shuffle_buffer,
        cache=cache, adapter=_video_adapter(config), sparse_depth=ss.supervised_weight > 0,
        segmentation=ss.segmentation_weight > 0, stereo=ss.use_stereo)
  return out


def train(config, model_dir, strategy_name="default", data_dir=None, verbose=1,
          overwrite=False):
  """`tfdepth-train` for self-supervised experiments; returns `(model, History, builder)`."""
  from trainers import common  # pylint: disable=g-import-not-at-top
  return common.fit_experiment(config, model_dir, make_datasets, build_self_supervised_trainer,
                               strategy_name, data_dir, verbose, overwrite)


def predict_split(model, dataset, with_poses=True):
  """Runs the depth (and pose) nets over a self-supervised dataset.

  Returns:
    dict of numpy arrays: "gt" (N, H, W, 1), "pred" (N, H, W, 1) depth, "semantic" when present,
    and with poses "ate" (N,) 3-frame ATE per clip when the data has `target_from_source`.
  """
  gts, preds, sems, ates = [], [], [], []
  for batch in dataset:
    frames = tf.cast(batch["frames"], tf.float32)
    out = model(frames[:, TARGET_INDEX], training=False)
    preds.append(out["depth"].numpy())
    if "depth" in batch:
      gts.append(batch["depth"].numpy())
    if "semantic" in batch:
      sems.append(batch["semantic"].numpy())
    if with_poses and "target_from_source" in batch:
      poses = model.predict_poses(frames, training=False)
      pred_tfs = np.stack([geometry.invert_pose(poses[-1]).numpy(),
                           geometry.invert_pose(poses[1]).numpy()], axis=1)
      for p, g in zip(pred_tfs, batch["target_from_source"].numpy()):
        ates.append(absolute_trajectory_error(snippet_positions(p), snippet_positions(g)))
  out = {"pred": np.concatenate(preds)}
  if gts:
    out["gt"] = np.concatenate(gts)
  if sems:
    out["semantic"] = np.concatenate(sems)
  if ates:
    out["ate"] = np.asarray(ates)
  return out


def predict_images(model, dataset, height, width):
  """Depth for a supervised dataset (batch 1, native GT size): images resized to the network size.

  Returns `{"gt": list of (H_i, W_i, 1), "pred": list of (height, width, 1)}` numpy arrays;
  `evaluate_predictions` resizes the predictions to the GT size as disparity.
  """
  gts, preds = [], []
  for batch in dataset:
    image = augment.resize_images(batch["image"], height, width)
    preds.append(model(image, training=False)["depth"].numpy()[0])
    gts.append(batch["depth"].numpy()[0])
  return {"gt": gts, "pred": preds}


def evaluate(config, checkpoint, split=None, output_dir=None, data_dir=None):
  """`tfdepth-eval` for self-supervised experiments: median-scaled depth table (+ pose ATE).

  With a pose net: the 3-frame ATE of the test clips (`ATE_KEY`) and, on the synthetic world, the
  ATE over 5-frame snippets of the literature (`ATE_SNIPPET_KEY`, `synthetic_pose_ate` on
  `POSE_EVAL_NUM_SEQUENCES` sequences rendered at the experiment's size), both as
  {"mean", "std"} in metres in the extras of the metrics file.
  """
  from tfdepth import metrics  # pylint: disable=g-import-not-at-top
  from trainers import common  # pylint: disable=g-import-not-at-top
  from trainers import evaluate as evaluate_lib  # pylint: disable=g-import-not-at-top
  from tfdepth.data import make_supervised_dataset  # pylint: disable=g-import-not-at-top
  builder = (None if config.data.tfds_name.startswith(KITTI_ZHOU_PREFIX)
             else common.prepare_builder(config.data, data_dir))
  model = build_self_supervised_trainer(config, total_steps=1, with_metrics=False)
  model.load_weights(checkpoint)
  from tfdepth.data import video  # pylint: disable=g-import-not-at-top
  if config.data.tfds_name.startswith(KITTI_ZHOU_PREFIX):
    # eigen_zhou has no depth: evaluate on the Eigen test split at the GT's native size.
    split = split or config.data.test_split
    builder = common.prepare_builder(
        dataclasses.replace(config.data, tfds_name=KITTI_EVAL_TFDS_NAME), data_dir)
    result = predict_images(model, make_supervised_dataset(builder, split=split, batch_size=1),
                            config.data.height, config.data.width)
  else:
    ds = video.make_self_supervised_dataset(
        builder, split=split or config.data.test_split, batch_size=config.train.batch_size,
        height=config.data.height, width=config.data.width, adapter=_video_adapter(config))
    result = predict_split(model, ds,
                           with_poses=self_supervised_config(config).use_temporal_frames)
  if "gt" not in result:
    raise ConfigError(f"split {split or config.data.test_split!r} of {config.data.tfds_name!r} "
                      "has no ground-truth depth to evaluate")
  protocol = eval_protocol(config)
  table, per_image = metrics.evaluate_predictions([g[..., 0] for g in result["gt"]],
                                                  [p[..., 0] for p in result["pred"]], protocol)
  table = {k: float(v) for k, v in table.items()}
  extra = {"checkpoint": checkpoint, "split": split or config.data.test_split}
  if "ate" in result:
    extra[ATE_KEY] = {"mean": float(result["ate"].mean()), "std": float(result["ate"].std())}
  if (self_supervised_config(config).use_temporal_frames and builder is not None
      and config.data.tfds_name.split("/")[0] == common.SYNTHETIC_WORLD):
    ate5 = synthetic_pose_ate(model, builder.builder_config, config.data.height,
                              config.data.width, split or config.data.test_split,
                              num_sequences=POSE_EVAL_NUM_SEQUENCES)
    extra[ATE_SNIPPET_KEY] = {"mean": ate5["mean"], "std": ate5["std"],
                              "num_snippets": ate5["num_snippets"]}
  output_dir = output_dir or os.path.dirname(os.path.dirname(os.path.abspath(checkpoint)))
  md = evaluate_lib.write_tables({config.name: table}, protocol, output_dir, extra,
                                 per_image=per_image)
  print(md)
  if "ate" in result:
    print(f"3-frame ATE: {extra[ATE_KEY]['mean']:.4f} ± {extra[ATE_KEY]['std']:.4f}")
  if ATE_SNIPPET_KEY in extra:
    print(f"5-frame ATE: {extra[ATE_SNIPPET_KEY]['mean']:.4f} ± "
          f"{extra[ATE_SNIPPET_KEY]['std']:.4f} ({extra[ATE_SNIPPET_KEY]['num_snippets']} "
          "snippets)")
  return table


__all__ = [
    "MONODEPTH2_FRAME_IDS", "MONODEPTH2_LEARNING_RATE", "MONODEPTH2_SCALES",
    "MONODEPTH2_SMOOTHNESS_WEIGHT", "SEGDEPTH_SEGMENTATION_WEIGHT", "SEGDEPTH_SMOOTHNESS_WEIGHT",
    "SEMI_SUPERVISED_WEIGHT", "STEREO_FRAME_ID", "STEREO_SCALE_FACTOR", "SelfSupervisedConfig",
    "SelfSupervisedDepthModel", "frame_order", "source_images", "stereo_source_from_target",
    "ATE_SNIPPET_LENGTH", "absolute_trajectory_error", "build_networks", "chain_positions",
    "pose_snippets_ate", "predict_relative_poses", "relative_poses", "render_pose_sequences",
    "snippet_ates", "synthetic_pose_ate", "build_self_supervised_trainer",
    "eval_protocol", "evaluate", "geometric3d_term", "is_self_supervised", "predict_images", "make_datasets", "photometric_loss_map",
    "pose_pair", "predict_split", "self_supervised_config", "self_supervised_losses",
    "snippet_positions", "source_from_target_pose", "train", "warp_sources",
]
