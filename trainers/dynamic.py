"""Depth in dynamic scenes: Li et al. 2021 motion fields, occlusion-aware consistency, learned K.

Li, Gordon, Zhao, Casser, Angelova, "Unsupervised Monocular Depth Learning in Dynamic Scenes",
CoRL 2020 (released code `google-research/depth_and_motion_learning`:
`depth_motion_field_model.py`, `losses/loss_aggregator.py`, `consistency_losses.py`,
`transform_depth_map.py`). `DynamicDepthModel` trains a depth network and the motion-field
network (`tfdepth.models.motion_net.build_motion_net`) with `model.fit` on batches of
`tfdepth.data.video.make_self_supervised_dataset` (`frames` (B, 3, H, W, 3) [t−1, t, t+1],
`frames_aug`, `intrinsics` (B, 3, 3); `depth` for metrics).

Per step:
* Depth of all three frames from the depth net: the Monodepth2 ResNet U-Net with softplus depth
  heads (`build_monodepth2_depth_net(output="depth")`, `depth_0` in metres), as the released
  ResNet-18 U-Net predicts depth with a softplus; a net with Monodepth2's sigmoid `disp_0` head
  is accepted too (`disp_to_depth` with config.min/max_depth). With the sigmoid head the depth
  starts at ~0.2 m everywhere (sigmoid 0.5) and in `benchmarks/dynamic_learning.py` (10
  CPU-minutes) ended at a median-scaled AbsRel of 1.87, worse than a constant; with the softplus
  head at 0.86 (README "Dynamic scenes").
* Directed pairs `PAIRS` = (t→t−1, t−1→t, t→t+1, t+1→t). The motion net sees
  `[rgb_a, depth_a, rgb_b, depth_b]` (jittered frames, predicted depths: released `cascade=True`)
  and returns b_from_a as Euler angles, a camera translation and a residual translation field at
  a's pixels. With `invert_backward_motion` (default, tfdepth choice) the background motion
  (rotation, camera translation) of the backward-in-time pairs t→t−1 and t+1→t is the exact
  inverse of the forward pair's (`invert_backward_background`), as Monodepth2's pose net sees
  frames in temporal order (Godard et al. 2019, Sec. 3); their residual fields stay the network's
  own. Released `auto_mask`: the residual is zeroed where its magnitude is below its mean
  (per image here; over the batch in the released code). Burn-in (released
  `motion_field_burnin_steps`): the residual is multiplied by clip(2·step / N − 1, 0, 1), step =
  `optimizer.iterations` (a variable, so the step has no Python side effects): zero for the first
  N/2 steps, then a linear ramp to 1 at N.
* Warp (`motion_warp_coords`): p_b = R·(D_a·K⁻¹[u, v, 1]) + t + δt(u, v), projected with K.
* Losses per directed pair (`tfdepth.losses.motion`, read their docstrings): occlusion-aware RGB L1
  and weighted SSIM (`occlusion_aware_photometric_consistency`, frame b's depth under stop-gradient,
  released `target_depth_stop_gradient`), depth consistency, rotation and translation cycle
  consistency against the reverse pair (`motion_cycle_consistency`, masked by "in frame and not
  occluded"), group smoothness + L1/2 sparsity of the normalised residual field
  (`normalize_motion_map`; smoothness wraps around exactly when the sparsity weight is 0); and the
  edge-aware smoothness of the mean-normalised disparity of each frame (released
  `joint_bilateral_smoothing`). Per-image values are the mean over the 4 directed pairs (resp. the 3
  frames), the batch mean of the released per-pair stacking.
* Total = Σ_k 2·w_k·f_k·L_k (released aggregator: `self._losses[k] *= w * 2`; f = 0.5 for SSIM,
  1 otherwise). Trackers log the un-weighted L_k (global-batch means).

Learned intrinsics (`learn_intrinsics=True`): the batch's `intrinsics` are ignored. Two modes:
* `intrinsics_videos = 0` (released): each directed pair's motion net predicts K
  (`intrinsics_from_raw`), and the clip's K is the mean over its 4 directed pairs (the released
  model averages the two directions of its pair): one K per clip, read from its images.
* `intrinsics_videos = N >= 1`: one learned K per video (`models.PerVideoIntrinsics`), selected by
  the batch's `video_index` (B,) int in [0, N) (N = 1: one global K, the index may be absent).
  For a horizontally flipped example (the pipeline's `flipped` flag) the principal point is
  mirrored (`geometry.flip_intrinsics_horizontal`), as the pipeline mirrors a known K. In
  `benchmarks/dynamic_learning.py` the motion net's head predicted one K for every clip and its
  focal lengths drifted (README "Dynamic scenes"); the per-video K is what converges there.

Distribution / precision / non-finite handling mirror `trainers.self_supervised`: per-image losses
through `_global_batch_mean`, `optimizer.scale_loss`, no update at all on a non-finite step
(`apply_if_finite`), `NonFiniteLossCheck` in every `fit`; gradient clipping is the optimizer's
`global_clipnorm` (released: 10), applied to the global gradient under any number of replicas
(`clip_across_replicas`). BatchNormalization of the depth net normalises with per-replica statistics under
`MirroredStrategy` (Keras behaviour); the motion net has no normalisation.

Optional 3D geometric loss (not in the released model; `geometric3d_weight`, default 0 = not
computed, `OPTIONAL_TERMS`): Mahjourian, Wicke, Angelova, CVPR 2018, as
`tfdepth.losses.geometric3d_loss` per directed pair: frame a's cloud moved by the full motion
(R, camera translation + residual field) against frame b's cloud by projective data association
(one point-to-point ICP step with projective correspondences; no closest-point search and no
ICP transform residual, see that module), masked where the moved point leaves frame b's image or
a depth is invalid; weighted 2·w like every term.

Evaluation (`evaluate`, `tfdepth-eval --experiment=dynamic_...`): the self-supervised protocol
(per-image median scaling, `eval_protocol`) over the test split's target frames, plus the AbsRel on
moving-object pixels (`moving_abs_rel`, each image's full-image median scale) when the data has a
`moving_mask` (synthetic_world).

Not implemented: the paper's closest-point ICP itself (see above); the released model's
randomized layer normalisation of the depth net, its multi-scale option
(`num_scales`, default 1 = what is done here), the optional segmentation mask of the residual field
(`use_mask`, default off) and its random-crop augmentation (tfdepth's video pipeline resizes,
flips and colour-jitters instead).
"""

import dataclasses
import os
from typing import Mapping

import keras
import tensorflow as tf

from tfdepth import geometry
from tfdepth import losses as losses_lib
from tfdepth import models
from tfdepth.errors import ConfigError, InvalidInputError
from tfdepth.models.monodepth2 import DEPTH_OUTPUT
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


@dataclasses.dataclass(frozen=True)
class Li2021Defaults:
  """Training constants of the released Li et al. 2021 model (`depth_motion_field_model.py`
  `DEFAULT_PARAMS`; the loss aggregator's own defaults differ, the model's set is the one trained).

  Weights are the released `loss_weights`; the aggregator multiplies each term by 2·weight and the
  SSIM term additionally by 0.5.
  """
  rgb_weight: float = 1.0                    # 'rgb_consistency'
  ssim_weight: float = 3.0                   # 'ssim'
  depth_consistency_weight: float = 0.0      # 'depth_consistency'
  depth_smoothing_weight: float = 1e-3       # 'depth_smoothing'
  rotation_cycle_weight: float = 1e-3        # 'rotation_cycle_consistency'
  translation_cycle_weight: float = 5e-2     # 'translation_cycle_consistency'
  motion_smoothing_weight: float = 1.0       # 'motion_smoothing'
  motion_sparsity_weight: float = 0.2        # 'motion_drift'
  aggregator_scale: float = 2.0              # loss_aggregator: `self._losses[k] *= w * 2`
  ssim_factor: float = 0.5                   # loss_aggregator: `0.5 * loss_endpoints['ssim_error']`
  motion_field_burnin_steps: int = 20000     # 'motion_field_burnin_steps'
  height: int = 128                          # 'image_preprocessing.image_height'
  width: int = 416                           # 'image_preprocessing.image_width'
  learning_rate: float = 2e-4                # released training setup (issue 6)
  gradient_clip_norm: float = 10.0           # released training setup (issue 6), global norm


LI2021 = Li2021Defaults()
# The depth net's head: softplus depth in metres at scale 0 (`build_monodepth2_depth_net`
# output="depth", Li et al. 2021 released `depth_prediction_resnet18unet`).
DEPTH_NET_OUTPUT = DEPTH_OUTPUT
DEPTH_HEAD_KEY = "depth_0"
# Index of the target frame t in `frames` [t−1, t, t+1].
TARGET_INDEX = 1
NUM_FRAMES = 3
# Directed pairs (a, b) into `frames`: the motion net maps frame-a points into frame b's camera.
PAIRS = ((1, 0), (0, 1), (1, 2), (2, 1))
# Position in PAIRS of each pair's reverse.
REVERSE = (1, 0, 3, 2)
NUM_PAIRS = len(PAIRS)
# Loss-term names (trackers `<name>_loss`) in order; a term's weight is `DynamicConfig.<name>_weight`.
TERM_NAMES = ("rgb", "ssim", "depth_consistency", "depth_smoothing", "rotation_cycle",
              "translation_cycle", "motion_smoothing", "motion_sparsity", "geometric3d")
# Monodepth2's auto-masking of stationary pixels in the photometric terms (`identity_automask`):
# off in the released model. Li et al.'s loss alone rewards warps that approach the identity, so
# while the motion net's camera translation is still ~0 (it starts at 0.01 x the raw output) the
# depth can drift to large values (flow -> 0) with no structure; see the README "Dynamic scenes".
IDENTITY_AUTOMASK = False
# The background motion of the backward-in-time pairs is the inverse of the forward pair's
# (`invert_backward_background`; released Li et al. 2021: False, all four directed pairs
# predicted by the network and tied only by the cycle terms, weights 1e-3 and 5e-2). A network
# that cannot yet tell (a, b) from (b, a) outputs the same motion for both, so it can only learn
# what a motion and its inverse have in common: in a probe with `benchmarks/dynamic_learning.py`
# settings (li2021_automask, He-initialised convolutions) the background outputs were the same for
# all four pairs of every clip after 25 and 50 steps (yaw -0.0195 rad, x 0.0107 m; the camera
# moves (0, 0, +-0.34) m per frame). That benchmark (10 CPU-minutes, 250 steps) ended at a
# median-scaled AbsRel of 0.859 released and 0.199 inverted (README "Dynamic scenes").
INVERT_BACKWARD_MOTION = True
# Terms that are computed (and tracked) only when their weight is > 0: the Mahjourian et al. 2018
# 3D point-cloud alignment loss is not part of the released Li et al. 2021 model.
OPTIONAL_TERMS = ("geometric3d",)
# Default weight of the optional 3D geometric loss: off (tfdepth choice; Mahjourian et al. 2018
# train with 0.1 on their own loss scale, which differs from this one).
GEOMETRIC3D_WEIGHT = 0.0


@dataclasses.dataclass(frozen=True)
class DynamicConfig:
  """Loss weights and switches of `DynamicDepthModel` (defaults: `LI2021`).

  Attributes:
    rgb_weight … motion_sparsity_weight: weights of `TERM_NAMES` (dimensionless, >= 0).
    geometric3d_weight: weight of the optional Mahjourian et al. 2018 3D point-cloud alignment
      loss (`tfdepth.losses.geometric3d_loss`, metres; 0 = off, not computed).
    motion_field_burnin_steps: N of the residual-field burn-in (0 = residual on from step 0).
    learn_intrinsics: learn K (ignore the batch's `intrinsics`), see `intrinsics_videos`.
    intrinsics_videos: with `learn_intrinsics`: 0 = the motion net's intrinsics head, one K per
      clip (released); N >= 1 = N learned K variables, one per video, selected by the batch's
      `video_index` (`models.PerVideoIntrinsics`; N = 1: one global K).
    auto_mask: released `auto_mask` of the residual field.
    identity_automask: Monodepth2's auto-masking of stationary pixels (Godard et al. 2019,
      Sec. 3.3; not in the released Li et al. 2021 model): the photometric terms count a pixel
      only where the warped frame b matches frame a better than the unwarped frame b does
      (`identity_automask_mask`). Default: `IDENTITY_AUTOMASK`.
    invert_backward_motion: the background rotation and camera translation of the backward-in-time
      pairs (t→t−1, t+1→t) are the exact inverse of their forward pair's
      (`invert_backward_background`); the motion net's background head then only learns the
      motion in temporal order, and the background part of the cycle terms is 0. Default:
      `INVERT_BACKWARD_MOTION` (True); released Li et al. 2021: False.
    target_depth_stop_gradient: stop the gradient through frame b's depth (released: True).
    min_depth, max_depth: metres of `disp_to_depth`, used only for a depth net with a sigmoid
      `disp_0` head (the default softplus `depth_0` head predicts metres directly).
  """
  rgb_weight: float = LI2021.rgb_weight
  ssim_weight: float = LI2021.ssim_weight
  depth_consistency_weight: float = LI2021.depth_consistency_weight
  depth_smoothing_weight: float = LI2021.depth_smoothing_weight
  rotation_cycle_weight: float = LI2021.rotation_cycle_weight
  translation_cycle_weight: float = LI2021.translation_cycle_weight
  motion_smoothing_weight: float = LI2021.motion_smoothing_weight
  motion_sparsity_weight: float = LI2021.motion_sparsity_weight
  geometric3d_weight: float = GEOMETRIC3D_WEIGHT
  motion_field_burnin_steps: int = LI2021.motion_field_burnin_steps
  learn_intrinsics: bool = False
  intrinsics_videos: int = 0
  auto_mask: bool = True
  identity_automask: bool = IDENTITY_AUTOMASK
  invert_backward_motion: bool = INVERT_BACKWARD_MOTION
  target_depth_stop_gradient: bool = True
  min_depth: float = geometry.MONODEPTH2_MIN_DEPTH
  max_depth: float = geometry.MONODEPTH2_MAX_DEPTH

  def __post_init__(self):
    for name in TERM_NAMES:
      value = getattr(self, f"{name}_weight")
      if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise InvalidInputError(f"{name}_weight expected a number >= 0, received {value!r}")
    n = self.motion_field_burnin_steps
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
      raise InvalidInputError(f"motion_field_burnin_steps expected an int >= 0, received {n!r}")
    n = self.intrinsics_videos
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
      raise InvalidInputError(f"intrinsics_videos expected an int >= 0, received {n!r}")
    for name in ("learn_intrinsics", "auto_mask", "identity_automask", "invert_backward_motion",
                 "target_depth_stop_gradient"):
      if not isinstance(getattr(self, name), bool):
        raise InvalidInputError(f"{name} expected a bool, received {getattr(self, name)!r}")
    if n > 0 and not self.learn_intrinsics:
      raise InvalidInputError(f"intrinsics_videos={n} needs learn_intrinsics=True")
    if not 0 < self.min_depth < self.max_depth:
      raise InvalidInputError(f"expected 0 < min_depth < max_depth, received "
                              f"{self.min_depth!r}, {self.max_depth!r}")

  @property
  def active_terms(self):
    """`TERM_NAMES` without the `OPTIONAL_TERMS` whose weight is 0 (those are not computed)."""
    return tuple(n for n in TERM_NAMES
                 if n not in OPTIONAL_TERMS or getattr(self, f"{n}_weight") > 0)

  @property
  def term_weights(self):
    """{term: total multiplier 2·w·f} of the released aggregator for the `active_terms` (also
    applied to geometric3d)."""
    out = {}
    for name in self.active_terms:
      factor = LI2021.ssim_factor if name == "ssim" else 1.0
      out[name] = LI2021.aggregator_scale * factor * float(getattr(self, f"{name}_weight"))
    return out

  def to_dict(self):
    return dataclasses.asdict(self)

  @classmethod
  def from_dict(cls, d):
    return cls(**dict(d))


# ----------------------------------------------------------------------------- pure pieces
def residual_gate(step, burnin_steps):
  """Released burn-in factor clip(2·step / N − 1, 0, 1) (1 when N = 0), float32 scalar."""
  if burnin_steps == 0:
    return tf.constant(1.0, tf.float32)
  step = tf.cast(step, tf.float32)
  return tf.clip_by_value(2.0 * step / float(burnin_steps) - 1.0, 0.0, 1.0)


def auto_mask_residual(residual):
  """Released `auto_mask`: keep δt where |δt| > mean |δt| (per image here), else 0.

  Args:
    residual: (B, H, W, 3) float residual translation field.
  Returns:
    (B, H, W, 3) float32; the mask itself carries no gradient.
  """
  residual = tf.cast(residual, tf.float32)
  norm = tf.sqrt(tf.reduce_sum(tf.square(residual), axis=-1, keepdims=True))
  mean = tf.reduce_mean(norm, axis=[1, 2], keepdims=True)
  return residual * tf.stop_gradient(tf.cast(norm > mean, tf.float32))


def invert_backward_background(rotation, translation):
  """Background motion with each backward-in-time pair's replaced by its forward pair's inverse.

  Pairs (a, b) of `PAIRS` with a > b (frame b earlier: t→t−1, t+1→t) get
  R_ba = R_abᵀ, t_ba = −R_abᵀ·t_ab from their reverse pair (`REVERSE`), so that each motion
  composed with its reverse is the identity; the forward pairs are returned unchanged.

  Args:
    rotation: (4B, 3, 3) b_from_a rotation matrices, pair-major (`PAIRS`).
    translation: (4B, 3) camera translations b_from_a, metres.
  Returns:
    (rotation (4B, 3, 3), translation (4B, 3)) float32.
  Raises:
    InvalidInputError: wrong shapes.
  """
  rotation = tf.cast(tf.convert_to_tensor(rotation), tf.float32)
  translation = tf.cast(tf.convert_to_tensor(translation), tf.float32)
  if rotation.shape.rank != 3 or rotation.shape[-2:] != (3, 3):
    raise InvalidInputError(f"rotation: expected (4B, 3, 3), received {rotation.shape}")
  if translation.shape.rank != 2 or translation.shape[-1] != 3:
    raise InvalidInputError(f"translation: expected (4B, 3), received {translation.shape}")
  rotations = _split_leading(rotation, NUM_PAIRS)
  translations = _split_leading(translation, NUM_PAIRS)
  out_r, out_t = [], []
  for k, (a, b) in enumerate(PAIRS):
    if a > b:
      r_inv = tf.linalg.matrix_transpose(rotations[REVERSE[k]])
      out_r.append(r_inv)
      out_t.append(-tf.linalg.matvec(r_inv, translations[REVERSE[k]]))
    else:
      out_r.append(rotations[k])
      out_t.append(translations[k])
  return tf.concat(out_r, axis=0), tf.concat(out_t, axis=0)


def motion_warp_coords(depth, rotation, translation, intrinsics):
  """Where each frame-a pixel lands in frame b under rigid + per-pixel translation motion.

  p_b = R·(D·K⁻¹[u, v, 1]) + T(u, v), then (u', v') = project(K, p_b) (released
  `transform_depth_map.using_motion_vector`; projection divides by z + 1e-7 as
  `tfdepth.geometry.project`).

  Args:
    depth: (B, H, W, 1) z-depth of frame a, metres.
    rotation: (B, 3) Euler angles (R = Rx·Ry·Rz) or (B, 3, 3) rotation matrices of b_from_a.
    translation: (B, 3) translation or (B, H, W, 3) translation field at frame-a pixels, metres.
    intrinsics: (B, 3, 3) K in pixels of (H, W) (both frames).
  Returns:
    (coords (B, H, W, 2) (u, v) in frame b, z (B, H, W, 1) metres in frame b's camera).
  Raises:
    InvalidInputError: wrong shapes.
  """
  rotation = tf.cast(tf.convert_to_tensor(rotation), tf.float32)
  if rotation.shape.rank == 2 and rotation.shape[-1] == 3:
    rotation = geometry.euler_to_matrix(rotation)
  elif not (rotation.shape.rank == 3 and rotation.shape[-2:] == (3, 3)):
    raise InvalidInputError(
        f"rotation: expected (B, 3) Euler angles or (B, 3, 3) matrices, received {rotation.shape}")
  translation = tf.cast(tf.convert_to_tensor(translation), tf.float32)
  if translation.shape.rank == 2 and translation.shape[-1] == 3:
    translation = translation[:, None, None, :]
  elif not (translation.shape.rank == 4 and translation.shape[-1] == 3):
    raise InvalidInputError(
        f"translation: expected (B, 3) or (B, H, W, 3), received {translation.shape}")
  points = geometry.backproject(depth, intrinsics)
  rigid = geometry.pose_from_rotation_translation(rotation, tf.zeros_like(rotation[:, :, 0]))
  moved = geometry.transform_points(points, rigid) + translation
  return geometry.project(moved, intrinsics)


def identity_automask_mask(image, other_image, coords):
  """Monodepth2 auto-mask (Godard et al. 2019, Sec. 3.3) of a directed pair, no gradient.

  1 where the Monodepth2 photometric error (0.85·SSIM + 0.15·L1,
  `tfdepth.losses.photometric_error`) of frame b warped to frame a (bilinear at `coords`,
  non-finite coords read pixel (0, 0)) is strictly below that of the unwarped frame b, else 0 (no
  tie-break noise: a tie is masked).

  Args:
    image: (B, H, W, 3) float [0, 1], frame a.
    other_image: (B, H, W, 3) float [0, 1], frame b.
    coords: (B, H, W, 2) (u, v) of frame-a pixels in frame b.
  Returns:
    (B, H, W, 1) float32 in {0, 1}.
  """
  image = tf.cast(image, tf.float32)
  other_image = tf.cast(other_image, tf.float32)
  coords = tf.cast(coords, tf.float32)
  safe = tf.where(tf.math.is_finite(coords), coords, 0.0)
  warped, _ = geometry.bilinear_sample(other_image, safe)
  _, mask = losses_lib.automask([losses_lib.photometric_error(warped, image)],
                                [losses_lib.photometric_error(other_image, image)],
                                noise_scale=0.0)
  return tf.stop_gradient(mask)


def _merge_leading(x):
  """(B, N, ...) -> (B·N, ...) keeping static trailing dims."""
  tail = x.shape[2:]
  if tail.is_fully_defined():
    return tf.reshape(x, [-1] + tail.as_list())
  return tf.reshape(x, tf.concat([[-1], tf.shape(x)[2:]], axis=0))


def _split_leading(x, n):
  """(n·B, ...) pair-major -> (n, B, ...)."""
  tail = x.shape[1:]
  if tail.is_fully_defined():
    return tf.reshape(x, [n, -1] + tail.as_list())
  return tf.reshape(x, tf.concat([[n, -1], tf.shape(x)[1:]], axis=0))


def _pairs_of(frames_like):
  """(B, 3, ...) -> ((4B, ...) frame a of each pair, (4B, ...) frame b), pair-major."""
  a = tf.concat([frames_like[:, i] for i, _ in PAIRS], axis=0)
  b = tf.concat([frames_like[:, j] for _, j in PAIRS], axis=0)
  return a, b


def _reverse_pairs(x):
  """(4B, ...) pair-major -> the same with each pair's block replaced by its reverse's."""
  return tf.concat([_split_leading(x, NUM_PAIRS)[r] for r in REVERSE], axis=0)


def _pair_mean(x):
  """(4B,) pair-major per-pair values -> (B,) mean over the 4 directed pairs."""
  return tf.reduce_mean(tf.reshape(x, [NUM_PAIRS, -1]), axis=0)


def motion_net_inputs(frames, depths):
  """`[rgb_a, depth_a, rgb_b, depth_b]` (4B, H, W, 8) of the directed pairs, pair-major.

  Args:
    frames: (B, 3, H, W, 3) float [0, 1] (the jittered frames the networks see).
    depths: (B, 3, H, W, 1) metres.
  """
  rgbd = tf.concat([tf.cast(frames, tf.float32), tf.cast(depths, tf.float32)], axis=-1)
  a, b = _pairs_of(rgbd)
  return tf.concat([a, b], axis=-1)


def clip_intrinsics(pair_intrinsics):
  """(4B, 3, 3) per-pair learned K -> (B, 3, 3): the mean over each clip's 4 directed pairs."""
  return tf.reduce_mean(_split_leading(tf.cast(pair_intrinsics, tf.float32), NUM_PAIRS), axis=0)


def dynamic_losses(frames, depths, motion, intrinsics, config, gate=1.0):
  """All loss terms of one batch, per image (un-weighted).

  Args:
    frames: (B, 3, H, W, 3) float32 [0, 1] un-jittered frames [t−1, t, t+1].
    depths: (B, 3, H, W, 1) predicted depths of the three frames, metres.
    motion: dict of the motion net on `motion_net_inputs` (pair-major, 4B): "rotation" (4B, 3)
      Euler angles or (4B, 3, 3) matrices (`DynamicDepthModel.predict_motion`), "translation"
      (4B, 3), "residual_translation" (4B, H, W, 3).
    intrinsics: (B, 3, 3) K in pixels of (H, W) (given or `clip_intrinsics`).
    config: `DynamicConfig`.
    gate: burn-in factor of the residual field (`residual_gate`), scalar.
  Returns:
    dict of (B,) float32 for every name in `config.active_terms` ("geometric3d": mean over the 4
    directed pairs of `tfdepth.losses.geometric3d_loss` of frame a's cloud moved by the full
    motion (rotation, camera translation + residual field) against frame b's cloud, frame b's
    depth under the same stop-gradient as the photometric term), plus "closer_mask"
    (4B, H, W, 1) and "translation_field" (4B, H, W, 3) (after auto-mask and gate) for
    inspection.
  """
  frames = tf.cast(frames, tf.float32)
  depths = tf.cast(depths, tf.float32)
  if frames.shape.rank != 5 or frames.shape[1] != NUM_FRAMES or frames.shape[-1] != 3:
    raise InvalidInputError(f"frames expected shape (B, 3, H, W, 3), received {frames.shape}")
  if depths.shape.rank != 5 or depths.shape[1] != NUM_FRAMES or depths.shape[-1] != 1:
    raise InvalidInputError(f"depths expected shape (B, 3, H, W, 1), received {depths.shape}")
  for key in ("rotation", "translation", "residual_translation"):
    if key not in motion:
      raise InvalidInputError(f"motion expected key {key!r}, received {sorted(motion)}")
  rotation = tf.cast(motion["rotation"], tf.float32)
  background = tf.cast(motion["translation"], tf.float32)
  residual = tf.cast(motion["residual_translation"], tf.float32)
  if config.auto_mask:
    residual = auto_mask_residual(residual)
  residual = residual * tf.cast(gate, tf.float32)
  translation = residual + background[:, None, None, :]

  k = tf.cast(intrinsics, tf.float32)
  k_pairs = tf.concat([k] * NUM_PAIRS, axis=0)
  rgb_a, rgb_b = _pairs_of(frames)
  depth_a, depth_b = _pairs_of(depths)
  if config.target_depth_stop_gradient:
    depth_b = tf.stop_gradient(depth_b)
  coords, z = motion_warp_coords(depth_a, rotation, translation, k_pairs)
  keep = identity_automask_mask(rgb_a, rgb_b, coords) if config.identity_automask else None
  photo = losses_lib.occlusion_aware_photometric_consistency(rgb_a, rgb_b, depth_b, coords, z,
                                                             mask=keep)
  rot_err, trans_err = losses_lib.motion_cycle_consistency(
      rotation, translation, _reverse_pairs(rotation), _reverse_pairs(translation),
      mask=photo["closer_mask"], coords=coords)
  normalized = losses_lib.normalize_motion_map(residual, translation)
  smoothing = losses_lib.group_smoothness(
      normalized, wrap_around=config.motion_sparsity_weight == 0)
  sparsity = losses_lib.l1_2_sparsity(normalized)

  disp = 1.0 / _merge_leading(depths)
  disp_smooth = losses_lib.edge_aware_smoothness(disp, _merge_leading(frames))
  disp_smooth = tf.reduce_mean(tf.reshape(disp_smooth, [-1, NUM_FRAMES]), axis=1)
  out = {}
  if "geometric3d" in config.active_terms:
    rigid = geometry.pose_from_rotation_translation(
        geometry.euler_to_matrix(rotation) if rotation.shape.rank == 2 else rotation,
        tf.zeros_like(background))
    out["geometric3d"] = _pair_mean(losses_lib.geometric3d_loss(
        depth_a, depth_b, rigid, k_pairs, translation_field=translation))
  return {
      **out,
      "rgb": _pair_mean(photo["rgb_error"]),
      "ssim": _pair_mean(photo["ssim_error"]),
      "depth_consistency": _pair_mean(photo["depth_error"]),
      "depth_smoothing": disp_smooth,
      "rotation_cycle": _pair_mean(rot_err),
      "translation_cycle": _pair_mean(trans_err),
      "motion_smoothing": _pair_mean(smoothing),
      "motion_sparsity": _pair_mean(sparsity),
      "closer_mask": photo["closer_mask"],
      "translation_field": translation,
  }


# ----------------------------------------------------------------------------- the model
@keras.saving.register_keras_serializable(package="tfdepth")
class DynamicDepthModel(GuardedFitMixin, MultiWorkerFitMixin, keras.Model):
  """Li et al. 2021 trainer: depth net + motion-field net, self-supervised in dynamic scenes.

  Args:
    depth_net: `keras.Model`, image (B, H, W, 3) float32 [0, 1] -> dict with "depth_0"
      (B, H, W, 1) depth in metres (> 0), e.g. `build_monodepth2_depth_net(scales=(0,),
      output="depth")` (`build_networks`), or with "disp_0" (B, H, W, 1) sigmoid disparity
      (`disp_to_depth` with config.min/max_depth).
    motion_net: `keras.Model` (B, H, W, 8) -> {"rotation", "translation", "residual_translation"
      [, "intrinsics"]}, e.g. `build_motion_net(learn_intrinsics=config.learn_intrinsics)`.
    config: `DynamicConfig` (or its dict).
    depth_metrics: streaming metrics updated with (batch["depth"], depth of frame t) when the
      batch has ground truth (use a median-scaling protocol).
  """

  def __init__(self, depth_net, motion_net, config=None, depth_metrics=(), **kwargs):
    super().__init__(**kwargs)
    for name, net in (("depth_net", depth_net), ("motion_net", motion_net)):
      if not isinstance(net, keras.Model):
        raise InvalidInputError(f"{name} expected a keras.Model, received {type(net)}")
    heads = sorted(depth_net.output) if isinstance(depth_net.output, Mapping) else []
    if DEPTH_HEAD_KEY not in heads and "disp_0" not in heads:
      raise InvalidInputError(
          f"depth_net expected a dict output with {DEPTH_HEAD_KEY!r} (metres) or 'disp_0' "
          f"(sigmoid disparity), received {heads or type(depth_net.output)}")
    if config is None:
      config = DynamicConfig()
    elif isinstance(config, Mapping):
      config = DynamicConfig.from_dict(config)
    if not isinstance(config, DynamicConfig):
      raise InvalidInputError(f"config expected a DynamicConfig, received {type(config)}")
    if (config.learn_intrinsics and not config.intrinsics_videos
        and "intrinsics" not in motion_net.output):
      raise InvalidInputError(
          "config.learn_intrinsics=True with intrinsics_videos=0 needs a motion net with an "
          "'intrinsics' output (build_motion_net(learn_intrinsics=True)); its outputs are "
          f"{sorted(motion_net.output)}")
    self.video_intrinsics = None
    if config.learn_intrinsics and config.intrinsics_videos:
      height, width = depth_net.input_shape[1:3]
      if not (isinstance(height, int) and isinstance(width, int)):
        raise InvalidInputError(
            "intrinsics_videos > 0 needs a depth net with a fixed input height and width, "
            f"received input shape {depth_net.input_shape}")
      self.video_intrinsics = models.PerVideoIntrinsics(
          config.intrinsics_videos, height, width, name="video_intrinsics")
    self.depth_net = depth_net
    self.motion_net = motion_net
    self.config = config
    self.term_names = list(config.active_terms)
    self.total_tracker = keras.metrics.Mean(name=TOTAL_LOSS_NAME)
    self.term_trackers = [keras.metrics.Mean(name=n + TERM_SUFFIX) for n in self.term_names]
    self.depth_metrics = list(depth_metrics)

  @property
  def metrics(self):
    return [self.total_tracker] + self.term_trackers + self.depth_metrics

  def call(self, inputs, training=False):
    """image (B, H, W, 3) (or a batch dict) -> depth-net outputs + "depth" (B, H, W, 1) metres."""
    if isinstance(inputs, Mapping):
      inputs = inputs["image"] if "image" in inputs else inputs["frames"][:, TARGET_INDEX]
    outputs = {k: tf.cast(v, tf.float32)
               for k, v in dict(self.depth_net(inputs, training=training)).items()}
    if DEPTH_HEAD_KEY in outputs:
      outputs["depth"] = outputs[DEPTH_HEAD_KEY]
    else:
      _, outputs["depth"] = geometry.disp_to_depth(outputs["disp_0"], self.config.min_depth,
                                                   self.config.max_depth)
    return outputs

  def predict_depths(self, frames, training=False):
    """(B, 3, H, W, 3) -> (B, 3, H, W, 1) depth of every frame, metres."""
    frames = tf.cast(frames, tf.float32)
    depth = self(_merge_leading(frames), training=training)["depth"]
    tail = depth.shape[1:]
    shape = ([-1, NUM_FRAMES] + tail.as_list() if tail.is_fully_defined()
             else tf.concat([[-1, NUM_FRAMES], tf.shape(depth)[1:]], axis=0))
    return tf.reshape(depth, shape)

  def predict_motion(self, frames, depths, training=False):
    """The motion of the `PAIRS` of a batch (float32, pair-major 4B): the motion net's outputs,
    with "rotation" as (4B, 3, 3) b_from_a matrices (`geometry.euler_to_matrix`) and, with
    `config.invert_backward_motion`, the backward pairs' background motion replaced by the
    inverse of the forward pairs' (`invert_backward_background`)."""
    out = self.motion_net(motion_net_inputs(frames, depths), training=training)
    out = {k: tf.cast(v, tf.float32) for k, v in dict(out).items()}
    rotation = geometry.euler_to_matrix(out["rotation"])
    translation = out["translation"]
    if self.config.invert_backward_motion:
      rotation, translation = invert_backward_background(rotation, translation)
    return {**out, "rotation": rotation, "translation": translation}

  def residual_gate(self):
    """Burn-in factor at the optimizer's current step (1 without optimizer or burn-in)."""
    if self.optimizer is None:
      return tf.constant(1.0, tf.float32)
    return residual_gate(self.optimizer.iterations, self.config.motion_field_burnin_steps)

  def intrinsics_for(self, batch, motion):
    """(B, 3, 3) K: learned (per video, or the mean over the clip's pairs) or the batch's."""
    if self.video_intrinsics is not None:
      if "video_index" in batch:
        index = tf.reshape(batch["video_index"], [-1])
      else:   # one global K (checked in `_unpack`)
        index = tf.zeros(tf.shape(batch["frames"])[:1], tf.int32)
      k = self.video_intrinsics(index)
      if "flipped" in batch:
        mirrored = geometry.flip_intrinsics_horizontal(k, self.video_intrinsics.width)
        flipped = tf.reshape(tf.cast(batch["flipped"], tf.bool), [-1, 1, 1])
        k = tf.where(flipped, mirrored, k)
      return k
    if self.config.learn_intrinsics:
      return clip_intrinsics(motion["intrinsics"])
    return tf.cast(batch["intrinsics"], tf.float32)

  def get_config(self):
    return {
        **super().get_config(),
        "depth_net": keras.saving.serialize_keras_object(self.depth_net),
        "motion_net": keras.saving.serialize_keras_object(self.motion_net),
        "config": self.config.to_dict(),
    }

  @classmethod
  def from_config(cls, config):
    config = dict(config)
    config["depth_net"] = keras.saving.deserialize_keras_object(config["depth_net"])
    config["motion_net"] = keras.saving.deserialize_keras_object(config["motion_net"])
    return cls(**config)

  # ----------------------------------------------------------------- steps
  def _unpack(self, data):
    if isinstance(data, (tuple, list)) and data and isinstance(data[0], Mapping):
      data = data[0]
    if not isinstance(data, Mapping) or "frames" not in data:
      raise InvalidInputError(
          "DynamicDepthModel expected a batch dict with 'frames' (B, 3, H, W, 3), received "
          f"{type(data)} {sorted(data) if isinstance(data, Mapping) else ''}")
    if not self.config.learn_intrinsics and "intrinsics" not in data:
      raise InvalidInputError(
          "DynamicDepthModel with learn_intrinsics=False expected batch['intrinsics'] (B, 3, 3), "
          f"received keys {sorted(data)}")
    if self.config.intrinsics_videos > 1 and "video_index" not in data:
      raise InvalidInputError(
          f"DynamicDepthModel with intrinsics_videos={self.config.intrinsics_videos} expected "
          f"batch['video_index'] (B,) int in [0, {self.config.intrinsics_videos}), received keys "
          f"{sorted(data)}")
    return data

  def compute_loss_terms(self, batch, depths, motion, gate):
    """Per-replica weighted total and `{term: global-batch-mean contribution}` (float32)."""
    per_image = dynamic_losses(batch["frames"], depths, motion, self.intrinsics_for(batch, motion),
                               self.config, gate)
    terms = {n: _global_batch_mean(per_image[n]) for n in self.term_names}
    weights = self.config.term_weights
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

  def _update_metrics(self, batch, depths, finite=None):
    """Updates the depth metrics (batches with "depth"); with `finite` only when it is True."""
    if self.depth_metrics and "depth" in batch:
      update_metrics_if(finite, self.depth_metrics, tf.cast(batch["depth"], tf.float32),
                        depths[:, TARGET_INDEX])

  def train_step(self, data):
    batch = self._unpack(data)
    frames_aug = tf.cast(batch.get("frames_aug", batch["frames"]), tf.float32)
    batch_size = tf.shape(frames_aug)[0]
    gate = self.residual_gate()
    state = forward_state(self)
    with tf.GradientTape() as tape:
      depths = self.predict_depths(frames_aug, training=True)
      motion = self.predict_motion(frames_aug, depths, training=True)
      total, terms = self.compute_loss_terms(batch, depths, motion, gate)
      scaled = self.optimizer.scale_loss(total) if hasattr(self.optimizer, "scale_loss") else total
    variables = self.trainable_variables
    grads = tape.gradient(scaled, variables)
    # A non-finite step (loss term, predicted depth or gradient, on any replica) is not applied.
    finite = step_is_finite(self.optimizer, grads, total, list(terms.values()), depths)
    apply_if_finite(self.optimizer, clip_across_replicas(self.optimizer, grads), variables, finite)
    restore_unless_finite(state, finite)
    self._update_trackers(mark_non_finite(total, finite), terms, batch_size)
    self._update_metrics(batch, depths, finite)
    return step_logs(self.metrics)

  def test_step(self, data):
    batch = self._unpack(data)
    frames = tf.cast(batch["frames"], tf.float32)
    depths = self.predict_depths(frames, training=False)
    motion = self.predict_motion(frames, depths, training=False)
    total, terms = self.compute_loss_terms(batch, depths, motion, self.residual_gate())
    # Non-finite: NaN loss (NonFiniteLossCheck raises a typed error), depth metrics not updated.
    finite = all_finite(total, list(terms.values()), depths)
    self._update_trackers(mark_non_finite(total, finite), terms, tf.shape(frames)[0])
    self._update_metrics(batch, depths, finite)
    return step_logs(self.metrics)

  def predict_step(self, data):
    if isinstance(data, Mapping):
      x = data["image"] if "image" in data else data["frames"][:, TARGET_INDEX]
    else:
      x = data[0] if isinstance(data, (tuple, list)) else data
    return self(x, training=False)


def make_optimizer(learning_rate=LI2021.learning_rate, clip_norm=LI2021.gradient_clip_norm):
  """Adam with global-norm gradient clipping (released: lr 2e-4, clip 10); `clip_norm` None or 0
  = no clipping. The trainer clips the global batch's gradient (`clip_across_replicas`)."""
  return keras.optimizers.Adam(learning_rate, global_clipnorm=clip_norm or None)


def optimizer_from_config(opt):
  """`make_optimizer` for an experiment's `OptimizerConfig`.

  The released setup is the only one supported: Adam, constant learning rate, no warm-up, no
  weight decay. `clipnorm`: None = `LI2021.gradient_clip_norm`, 0 = no clipping, else the
  global-norm threshold.

  Raises:
    ConfigError: another optimizer name / schedule, warm-up or weight decay (they would be
      ignored silently otherwise).
  """
  unsupported = {field: value for field, value, ok in (
      ("name", opt.name, str(opt.name).lower() == "adam"),
      ("schedule", opt.schedule, opt.schedule == "constant"),
      ("warmup_steps", opt.warmup_steps, not opt.warmup_steps),
      ("weight_decay", opt.weight_decay, not opt.weight_decay)) if not ok}
  if unsupported:
    raise ConfigError(
        f"dynamic experiments train with the released optimizer (Adam, constant learning rate, "
        f"no warm-up, no weight decay); received unsupported optimizer.{sorted(unsupported)} = "
        f"{unsupported}. Expected optimizer.name=adam, optimizer.schedule=constant, "
        "optimizer.warmup_steps=0, optimizer.weight_decay=0.")
  clip = LI2021.gradient_clip_norm if opt.clipnorm is None else opt.clipnorm
  return make_optimizer(opt.learning_rate, clip)


# ----------------------------------------------------------------------------- experiments
# ExperimentConfig.model.name handled by this module.
DYNAMIC_MODEL = "li2021_dynamic"
# ExperimentConfig loss-term names are TERM_NAMES; their weights set `<name>_weight`.
MODEL_KWARGS = ("num_layers", "base_channels")


def is_dynamic(config):
  """True when `config` (an `ExperimentConfig`) is trained by this module."""
  return getattr(getattr(config, "model", None), "name", None) == DYNAMIC_MODEL


def dynamic_config(config):
  """`DynamicConfig` from an `ExperimentConfig` (loss names = `TERM_NAMES`; any term's `kwargs`
  may set the other DynamicConfig fields, e.g. `losses.rgb.kwargs.learn_intrinsics=true`)."""
  fields = {f.name for f in dataclasses.fields(DynamicConfig)}
  values = {f"{n}_weight": 0.0 for n in TERM_NAMES}
  for term in config.losses:
    if term.name not in TERM_NAMES:
      raise ConfigError(f"dynamic loss term {term.name!r} is not one of {list(TERM_NAMES)}")
    values[f"{term.name}_weight"] = float(term.weight)
    for key, value in dict(term.kwargs).items():
      if key not in fields:
        raise ConfigError(f"losses.{term.name}.kwargs.{key} is not a DynamicConfig field; "
                          f"valid: {sorted(fields)}")
      values[key] = value
  try:
    return DynamicConfig(**values)
  except InvalidInputError as e:
    raise ConfigError(str(e)) from None


def build_networks(config, learn_intrinsics):
  """`(depth_net, motion_net)` for an experiment (model kwargs: num_layers, base_channels)."""
  from tfdepth.models import monodepth2  # pylint: disable=g-import-not-at-top
  from tfdepth.models import motion_net  # pylint: disable=g-import-not-at-top
  kwargs = dict(config.model.kwargs)
  unknown = sorted(set(kwargs) - set(MODEL_KWARGS))
  if unknown:
    raise ConfigError(f"unknown model.kwargs {unknown}; expected a subset of {list(MODEL_KWARGS)}")
  h, w = config.data.height, config.data.width
  depth = monodepth2.build_monodepth2_depth_net((h, w, 3), int(kwargs.get("num_layers", 18)),
                                                scales=(0,), name="dynamic_depth",
                                                output=DEPTH_NET_OUTPUT)
  motion = motion_net.build_motion_net(
      (h, w, motion_net.MOTION_INPUT_CHANNELS), learn_intrinsics=learn_intrinsics,
      base_channels=int(kwargs.get("base_channels", motion_net.MOTION_BASE_CHANNELS)),
      name="dynamic_motion")
  return depth, motion


def build_dynamic_trainer(config, total_steps=None, strategy=None, with_metrics=True):
  """Builds and compiles a `DynamicDepthModel` for `config` inside `strategy.scope()`.

  The optimizer is Adam with `config.optimizer.learning_rate` and global-norm clipping at
  `config.optimizer.clipnorm` (None: `LI2021.gradient_clip_norm`, 0: none), `optimizer_from_config`
  (which raises `ConfigError` for the optimizer fields it does not support); `total_steps` is
  unused (constant learning rate, as released).
  """
  del total_steps
  from tfdepth import metrics  # pylint: disable=g-import-not-at-top
  from trainers import common  # pylint: disable=g-import-not-at-top
  strategy = strategy or tf.distribute.get_strategy()
  common.set_precision(config.train.mixed_precision)
  keras.utils.set_random_seed(config.train.seed)
  dyn = dynamic_config(config)
  optimizer_from_config(config.optimizer)   # fail on unsupported fields before building
  with strategy.scope():
    # Per-video K lives in the trainer (`PerVideoIntrinsics`), not in the motion net's head.
    depth, motion = build_networks(config, dyn.learn_intrinsics and not dyn.intrinsics_videos)
    if config.train.synchronized_batchnorm:
      for net in (depth, motion):
        models.synchronize_batchnorm(net)
    model = DynamicDepthModel(
        depth, motion, dyn,
        depth_metrics=(metrics.standard_metrics(eval_protocol(config))
                       if with_metrics else ()),
        name="dynamic")
    model.compile(optimizer=optimizer_from_config(config.optimizer),
                  jit_compile=config.train.jit_compile)
    h, w = config.data.height, config.data.width
    frames = tf.zeros([1, NUM_FRAMES, h, w, 3])
    model.predict_motion(frames, model.predict_depths(frames))
  return model


def video_frames_to_dynamic(example):
  """`video_frames` example -> video element (frames float32 [0, 1]; K zeros without a K file)."""
  from tfdepth.data import adapters  # pylint: disable=g-import-not-at-top
  return {"frames": adapters.image_to_float(example["frames"], "frames"),
          "intrinsics": tf.cast(example["intrinsics"], tf.float32)}


def _video_adapter(config):
  from tfdepth.data import video  # pylint: disable=g-import-not-at-top
  name = config.data.tfds_name
  if name.startswith("kitti_depth"):
    return video.kitti_to_self_supervised
  if name.startswith("video_frames"):
    return video_frames_to_dynamic
  return video.synthetic_world_to_self_supervised


def make_datasets(config, builder, splits=("train", "validation"), cache=True):
  """`{role: dataset}` of `make_self_supervised_dataset` for roles train / validation / test."""
  from tfdepth.data import video  # pylint: disable=g-import-not-at-top
  d, t = config.data, config.train
  names = {"train": d.train_split, "validation": d.validation_split, "test": d.test_split}
  out = {}
  for role in splits:
    training = role == "train"
    out[role] = video.make_self_supervised_dataset(
        builder, split=names[role], batch_size=t.batch_size, height=d.height, width=d.width,
        training=training, seed=t.seed, augment_data=training and d.augment,
        drop_remainder=training and t.drop_remainder, shuffle_buffer=d.shuffle_buffer,
        cache=cache, adapter=_video_adapter(config))
  return out


def train(config, model_dir, strategy_name="default", data_dir=None, verbose=1,
          overwrite=False):
  """`tfdepth-train` for dynamic experiments; returns `(model, History, builder)`."""
  from trainers import common  # pylint: disable=g-import-not-at-top
  return common.fit_experiment(config, model_dir, make_datasets, build_dynamic_trainer,
                               strategy_name, data_dir, verbose, overwrite)


# ----------------------------------------------------------------------------- evaluation
# Batch key of the moving-object mask (synthetic_world `moving_mask`, kept by
# `tfdepth.data.video.synthetic_world_to_self_supervised`).
MOVING_MASK_KEY = "moving_mask"
# Table / per-image keys of the moving-object evaluation.
MOVING_ABS_REL_KEY = "abs_rel_moving"
MOVING_NUM_VALID_KEY = "num_valid_moving"


def eval_protocol(config):
  """The experiment's protocol with per-image median scaling (monocular, scale-ambiguous depth;
  Zhou et al. 2017 / Monodepth2), e.g. `synthetic_street_median` (name as
  `trainers.self_supervised.eval_protocol` derives it)."""
  from tfdepth import metrics  # pylint: disable=g-import-not-at-top
  base = metrics.get_protocol(config.metrics_protocol)
  if base.median_scaling:
    return base
  return dataclasses.replace(base, name=f"{base.name}_median", median_scaling=True)


def predict_split(model, dataset):
  """Depth of the target frame of every clip of a video dataset.

  Returns:
    dict of numpy arrays: "pred" (N, H, W, 1) metres, and when the data has them "gt"
    (N, H, W, 1) metres (0 = invalid) and "moving" (N, H, W, 1) float {0, 1}.
  """
  import numpy as np  # pylint: disable=g-import-not-at-top
  out = {"pred": [], "gt": [], "moving": []}
  for batch in dataset:
    frames = tf.cast(batch["frames"], tf.float32)
    out["pred"].append(model(frames[:, TARGET_INDEX], training=False)["depth"].numpy())
    if "depth" in batch:
      out["gt"].append(batch["depth"].numpy())
    if MOVING_MASK_KEY in batch:
      out["moving"].append(batch[MOVING_MASK_KEY].numpy())
  return {k: np.concatenate(v) for k, v in out.items() if v}


def moving_abs_rel(gts, preds, moving, protocol, per_image):
  """AbsRel on moving-object pixels, with each image's own scale from the full-image evaluation.

  For image i: the prediction (resized to the GT size as disparity when sizes differ, as
  `tfdepth.metrics.evaluate_predictions`) is multiplied by `per_image[i]["scale"]` (the median
  ratio over all of the image's valid pixels × the fixed scale), clamped to the protocol's range
  if it clamps, and AbsRel = mean |gt − pred| / gt over pixels valid under the protocol with
  moving > 0. The result is the mean over images that have such pixels.

  Args:
    gts: N (H, W[, 1]) metres (0 = invalid).
    preds: N (h, w[, 1]) metres, > 0.
    moving: N (H, W[, 1]) masks (> 0 = moving object).
    protocol: `EvalProtocol` or name.
    per_image: the per-image dicts of `evaluate_predictions` (their "scale").
  Returns:
    (mean AbsRel (NaN without moving pixels), number of images with moving pixels, per-image
    list of (AbsRel or NaN, moving-pixel count)).
  Raises:
    InvalidInputError: different numbers of images.
  """
  import math  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from tfdepth import metrics  # pylint: disable=g-import-not-at-top
  protocol = metrics.get_protocol(protocol)
  if not len(gts) == len(preds) == len(moving) == len(per_image):
    raise InvalidInputError(
        f"moving_abs_rel expected equal numbers of gts, preds, moving masks and per-image "
        f"records, received {len(gts)}, {len(preds)}, {len(moving)}, {len(per_image)}")
  values = []
  for gt, pred, mov, record in zip(gts, preds, moving, per_image):
    gt = np.asarray(gt, np.float64).reshape(np.shape(gt)[:2])
    pred = np.asarray(pred, np.float64).reshape(np.shape(pred)[:2])
    mov = np.asarray(mov).reshape(np.shape(mov)[:2]) > 0
    if pred.shape != gt.shape:
      pred = 1.0 / metrics.resize_bilinear_numpy(1.0 / pred, *gt.shape)
    mask = metrics.evaluation_mask(gt, protocol) & mov
    scale = record.get("scale", math.nan)
    if not mask.any() or not math.isfinite(scale):
      values.append((math.nan, 0))
      continue
    p = pred[mask] * scale
    if protocol.clamp_after_scaling:
      p = np.clip(p, protocol.min_depth, protocol.max_depth)
    values.append((float(np.mean(np.abs(gt[mask] - p) / gt[mask])), int(mask.sum())))
  counted = [v for v, n in values if n > 0]
  return (float(np.mean(counted)) if counted else math.nan), len(counted), values


def evaluate(config, checkpoint, split=None, output_dir=None, data_dir=None):
  """`tfdepth-eval` for dynamic experiments: the self-supervised evaluation (median-scaled table
  of `tfdepth.metrics.evaluate_predictions` under `eval_protocol`, written by
  `trainers.evaluate.write_tables`) plus, when the data has `moving_mask`, `abs_rel_moving`
  (`moving_abs_rel`) and `num_valid_moving` (images with moving pixels) in the table and in each
  per-image record. KITTI Eigen-Zhou experiments are evaluated on the Eigen test split at the
  ground truth's native size (`trainers.self_supervised.predict_images`). Returns the table.
  """
  import math  # pylint: disable=g-import-not-at-top
  from tfdepth import metrics  # pylint: disable=g-import-not-at-top
  from tfdepth.data import make_supervised_dataset  # pylint: disable=g-import-not-at-top
  from tfdepth.data import video  # pylint: disable=g-import-not-at-top
  from trainers import common  # pylint: disable=g-import-not-at-top
  from trainers import evaluate as evaluate_lib  # pylint: disable=g-import-not-at-top
  from trainers import self_supervised  # pylint: disable=g-import-not-at-top
  split = split or config.data.test_split
  if not split:
    raise ConfigError(f"experiment {config.name!r} has no test split; pass --split")
  model = build_dynamic_trainer(config, with_metrics=False)
  model.load_weights(checkpoint)
  if config.data.tfds_name.startswith(self_supervised.KITTI_ZHOU_PREFIX):
    builder = common.prepare_builder(
        dataclasses.replace(config.data, tfds_name=self_supervised.KITTI_EVAL_TFDS_NAME), data_dir)
    result = self_supervised.predict_images(
        model, make_supervised_dataset(builder, split=split, batch_size=1),
        config.data.height, config.data.width)
  else:
    builder = common.prepare_builder(config.data, data_dir)
    ds = video.make_self_supervised_dataset(
        builder, split=split, batch_size=config.train.batch_size, height=config.data.height,
        width=config.data.width, adapter=_video_adapter(config))
    result = predict_split(model, ds)
  if "gt" not in result:
    raise ConfigError(f"split {split!r} of {config.data.tfds_name!r} has no ground-truth depth "
                      "to evaluate")
  protocol = eval_protocol(config)
  gts = [g[..., 0] for g in result["gt"]]
  preds = [p[..., 0] for p in result["pred"]]
  table, per_image = metrics.evaluate_predictions(gts, preds, protocol)
  table = {k: float(v) for k, v in table.items()}
  if "moving" in result:
    mean, count, values = moving_abs_rel(gts, preds, result["moving"], protocol, per_image)
    table[MOVING_ABS_REL_KEY] = mean
    table[MOVING_NUM_VALID_KEY] = count
    for record, (value, n) in zip(per_image, values):
      record[MOVING_ABS_REL_KEY] = value
      record[MOVING_NUM_VALID_KEY] = n
  output_dir = output_dir or os.path.dirname(os.path.dirname(os.path.abspath(checkpoint)))
  json_table = {k: (None if isinstance(v, float) and math.isnan(v) else v)
                for k, v in table.items()}
  md = evaluate_lib.write_tables({config.name: json_table}, protocol, output_dir,
                                 {"checkpoint": checkpoint, "split": split}, per_image=per_image)
  print(md)
  if MOVING_ABS_REL_KEY in table:
    print(f"AbsRel on moving-object pixels: {table[MOVING_ABS_REL_KEY]:.4f} "
          f"({table[MOVING_NUM_VALID_KEY]} images)")
  return table


__all__ = [
    "DEPTH_HEAD_KEY", "DEPTH_NET_OUTPUT", "auto_mask_residual", "build_dynamic_trainer",
    "build_networks", "clip_intrinsics",
    "dynamic_config", "dynamic_losses", "DYNAMIC_MODEL", "DynamicConfig", "DynamicDepthModel",
    "eval_protocol", "evaluate", "GEOMETRIC3D_WEIGHT", "IDENTITY_AUTOMASK",
    "identity_automask_mask", "INVERT_BACKWARD_MOTION", "invert_backward_background",
    "is_dynamic", "LI2021", "Li2021Defaults", "make_datasets",
    "make_optimizer", "motion_net_inputs", "optimizer_from_config", "motion_warp_coords", "moving_abs_rel",
    "MOVING_ABS_REL_KEY", "MOVING_MASK_KEY", "MOVING_NUM_VALID_KEY", "OPTIONAL_TERMS", "PAIRS",
    "predict_split", "residual_gate", "TERM_NAMES", "train", "video_frames_to_dynamic",
]
