"""Tests of trainers/self_supervised.py (Monodepth2 / segmentation-guided self-supervised trainer).

Geometry acceptance checks use one synthetic street clip rendered at 64x192 with its exact depth
and poses in place of the networks; training checks use tiny conv nets (no BatchNorm: Keras BN
uses per-replica statistics, so one-step equality across replica counts needs BN-free nets).
"""

import math

import keras
import numpy as np
import pytest
import scipy.ndimage
import tensorflow as tf

from tfdepth import geometry
from tfdepth import losses
from tfdepth.errors import ConfigError, InvalidInputError, NonFiniteError
from tfds_builders.synthetic_world import clips
from trainers import experiments
from trainers import self_supervised as ss
from tests._strategies import cpu_mirrored_strategy

H, W = 64, 192
# Train clip 2 of the street scene: 13.8% of its pixels are independently moving cars.
CLIP_INDEX = 2
# Sky has no depth (0 in GT); it is at infinity, which a depth of 1 km approximates to < 0.1 px
# of parallax for the ~1 m camera motion (fx = 111 px: 111 * 1 / 1000 = 0.11 px).
SKY_DEPTH_M = 1000.0


@pytest.fixture(scope="module")
def clip():
  c = clips.render_clip("street", H, W, seed=0, split="train", index=CLIP_INDEX)
  frames = tf.constant(c["frames"][None].astype(np.float32) / 255.0)
  depth = c["depth"][None]
  return {
      "frames": frames,
      "depth": depth,
      "filled_depth": tf.constant(np.where(depth > 0, depth, SKY_DEPTH_M).astype(np.float32)),
      "intrinsics": tf.constant(c["intrinsics"][None]),
      "poses": {f: geometry.invert_pose(c["target_from_source"][None, i])
                for f, i in ((-1, 0), (1, 1))},
      "moving": c["moving_mask"][None].astype(bool),
      "target_from_source": c["target_from_source"],
  }


def _sources(frames):
  return {f: frames[:, i] for f, i in ss.SOURCE_INDEX.items()}


def _gt_loss_map(clip, frames, config):
  srcs = _sources(frames)
  warped = ss.warp_sources(srcs, clip["filled_depth"], clip["poses"], clip["intrinsics"])
  return ss.photometric_loss_map(frames[:, ss.TARGET_INDEX], srcs,
                                 {f: v[0] for f, v in warped.items()}, config, seed=0)


# ----------------------------------------------------------------------------- acceptance: GT
def test_gt_depth_and_pose_reprojection_near_zero_on_static_pixels(clip):
  loss, _ = _gt_loss_map(clip, clip["frames"], ss.SelfSupervisedConfig(use_automask=False))
  loss = loss.numpy()
  static = (clip["depth"] > 0) & ~clip["moving"]
  tgt = clip["frames"][:, 1]
  identity = np.minimum(*[losses.photometric_error(s, tgt).numpy()
                          for s in _sources(clip["frames"]).values()])
  # Measured: median 0.004, mean 0.023 (the residue is disocclusions at depth edges and texture
  # aliasing of the point-sampled 64x192 render); the identity (no warp) error is 0.115.
  assert np.median(loss[static]) < 0.01
  assert loss[static].mean() < 0.035
  assert loss[static].mean() < 0.3 * identity[static].mean()


def test_automask_keeps_static_pixels_and_drops_objects_moving_with_the_camera(clip):
  frames = clip["frames"].numpy().copy()
  moving = clip["moving"]
  # Cars that move exactly with the camera: paste their target-frame appearance into the sources.
  for i in (0, 2):
    frames[:, i] = np.where(moving, frames[:, 1], frames[:, i])
  _, mask = _gt_loss_map(clip, tf.constant(frames), ss.SelfSupervisedConfig())
  mask = mask.numpy()
  inner = scipy.ndimage.binary_erosion(moving[0, ..., 0], np.ones((3, 3)))  # off the SSIM border
  static = (clip["depth"] > 0) & ~moving
  # Measured 1 of 1468 inner pixels kept (identity error there is exactly 0, warped > 0) and
  # 89% of the static pixels kept (the rest: textureless road/sky where identity ties or wins).
  assert mask[0, ..., 0][inner].mean() < 0.01
  assert mask[static].mean() > 0.85


def test_automask_drops_every_pixel_of_a_static_camera_clip(clip):
  target = clip["frames"][:, 1]
  still = tf.stack([target, target, target], axis=1)   # zero-motion camera, static scene
  # The "networks" still predict the true (moving) pose: every identity error is exactly 0, so
  # without tie-break noise the identity wins everywhere (ties go to the identity, first index).
  loss, mask = _gt_loss_map(clip, still, ss.SelfSupervisedConfig(automask_noise_scale=0.0))
  assert float(tf.reduce_sum(mask)) == 0.0
  assert float(tf.reduce_max(loss)) == 0.0
  # With Monodepth2's 1e-5 noise only near-ties flip (measured 0.09% of the pixels).
  loss, mask = _gt_loss_map(clip, still, ss.SelfSupervisedConfig())
  assert float(tf.reduce_mean(mask)) < 0.01
  assert float(tf.reduce_max(loss)) < 1e-4   # |noise| < 5 sigma = 5e-5 wherever identity wins


def test_three_frame_ate_of_the_true_poses_is_zero_and_of_a_scaled_trajectory_too(clip):
  pos = ss.snippet_positions(clip["target_from_source"])
  # First camera at the origin; t at -R^T t of target_from_source[t-1] (about 1 m forward).
  m = clip["target_from_source"][0].astype(np.float64)
  np.testing.assert_array_equal(pos[0], [0, 0, 0])
  # rtol 1e-6: the stored float32 rotation is orthonormal only to ~1e-7 (np.linalg.inv vs R^T).
  np.testing.assert_allclose(pos[1], -m[:3, :3].T @ m[:3, 3], rtol=1e-6)
  assert ss.absolute_trajectory_error(pos, pos) == 0.0
  # ATE is invariant to the scale of the prediction (least-squares scale alignment).
  assert ss.absolute_trajectory_error(0.37 * pos, pos) < 1e-7


def test_ate_hand_computed():
  gt = [[0, 0, 0], [1, 0, 0], [2, 0, 0]]
  pred = [[0, 0, 0], [1, 1, 0], [2, 0, 0]]
  # scale = (1 + 4) / (1 + 1 + 4) = 5/6; residuals (-1/6, 5/6, 0), (-1/3, 0, 0);
  # sqrt(1/36 + 25/36 + 4/36) / 3 frames.
  assert ss.absolute_trajectory_error(pred, gt) == pytest.approx(math.sqrt(30 / 36) / 3, 1e-12)
  with pytest.raises(InvalidInputError, match=r"\(3, 2\)"):
    ss.absolute_trajectory_error(np.zeros((3, 2)), np.zeros((3, 2)))


# ----------------------------------------------------------------------------- pose convention
def test_pose_of_an_earlier_source_is_inverted_and_pairs_are_in_temporal_order():
  angle = 0.1
  aa = tf.constant([[0.0, 0.0, angle]])
  t = tf.constant([[1.0, 2.0, 3.0]])
  later = ss.source_from_target_pose(aa, t, 1).numpy()[0]
  earlier = ss.source_from_target_pose(aa, t, -1).numpy()[0]
  c, s = math.cos(angle), math.sin(angle)
  r = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
  np.testing.assert_allclose(later[:3, :3], r, atol=1e-6)   # float32 Rodrigues
  np.testing.assert_allclose(later[:3, 3], [1, 2, 3], atol=1e-6)
  np.testing.assert_allclose(earlier[:3, :3], r.T, atol=1e-6)
  np.testing.assert_allclose(earlier[:3, 3], -r.T @ np.array([1, 2, 3]), atol=1e-6)
  target = tf.fill([1, 2, 2, 3], 1.0)
  source = tf.fill([1, 2, 2, 3], 2.0)
  np.testing.assert_array_equal(ss.pose_pair(target, source, -1).numpy()[0, 0, 0],
                                [2, 2, 2, 1, 1, 1])
  np.testing.assert_array_equal(ss.pose_pair(target, source, 1).numpy()[0, 0, 0],
                                [1, 1, 1, 2, 2, 2])
  with pytest.raises(InvalidInputError, match="received 0"):
    ss.pose_pair(target, source, 0)


# ----------------------------------------------------------------------------- multi-scale
def _ramp_frames(batch=1, h=16, w=32):
  u = np.linspace(0.0, 1.0, w, dtype=np.float32)
  img = np.broadcast_to(u[None, :, None], (h, w, 3))
  rng = np.random.default_rng(0)
  frames = np.stack([img + 0.05 * rng.random((h, w, 3), np.float32) for _ in range(3)])
  return tf.constant(np.clip(np.stack([frames] * batch), 0, 1))


def _k(batch=1, h=16, w=32):
  k = np.array([[0.58 * w, 0, 0.5 * w], [0, 1.92 * h, 0.5 * h], [0, 0, 1]], np.float32)
  return tf.constant(np.stack([k] * batch))


def test_full_res_multiscale_warps_every_scale_at_input_size_and_smoothness_is_weighted():
  frames = _ramp_frames()
  k = _k()
  poses = {f: geometry.pose_from_axis_angle_translation(
      tf.zeros([1, 3]), tf.constant([[0.0, 0.0, 0.3 * f]])) for f in (-1, 1)}
  d0 = tf.fill([1, 16, 32, 1], 0.2)
  d1 = tf.fill([1, 8, 16, 1], 0.2)
  rng = np.random.default_rng(1)
  d1_rough = tf.constant(0.2 + 0.1 * rng.random((1, 8, 16, 1), np.float32))
  cfg = ss.SelfSupervisedConfig(scales=(0, 1), use_automask=False)
  one = ss.self_supervised_losses(frames, k, {0: d0}, poses,
                                  ss.SelfSupervisedConfig(scales=(0,), use_automask=False))
  two = ss.self_supervised_losses(frames, k, {0: d0, 1: d1}, poses, cfg)
  # A constant disparity upsamples to the same constant: both scales give the same full-res loss.
  np.testing.assert_allclose(two["photometric"], one["photometric"], rtol=1e-6)
  low = ss.self_supervised_losses(frames, k, {0: d0, 1: d1}, poses,
                                  ss.SelfSupervisedConfig(scales=(0, 1), use_automask=False,
                                                          use_full_res_multiscale=False))
  assert abs(float(low["photometric"][0]) - float(one["photometric"][0])) > 1e-4
  # Smoothness: mean over scales of smooth_s / 2^s at native resolution.
  rough = ss.self_supervised_losses(frames, k, {0: d0, 1: d1_rough}, poses, cfg)
  color1 = tf.nn.avg_pool2d(frames[:, 1], 2, 2, "VALID")   # 2x2 box (area) downsampling
  expected = (0.0 + float(losses.edge_aware_smoothness(d1_rough, color1)[0]) / 2.0) / 2.0
  np.testing.assert_allclose(rough["smoothness"], [expected], rtol=1e-6)


def test_min_reprojection_off_averages_the_sources():
  frames = _ramp_frames()
  k = _k()
  poses = {f: geometry.pose_from_axis_angle_translation(
      tf.zeros([1, 3]), tf.constant([[0.1 * f, 0.0, 0.3 * f]])) for f in (-1, 1)}
  disp = {0: tf.fill([1, 16, 32, 1], 0.3)}
  cfg = ss.SelfSupervisedConfig(scales=(0,), use_automask=False, use_min_reprojection=False)
  out = ss.self_supervised_losses(frames, k, disp, poses, cfg)
  _, depth = geometry.disp_to_depth(disp[0])
  errs = [losses.photometric_error(geometry.warp_image(frames[:, i], depth, poses[f], k)[0],
                                   frames[:, 1]) for f, i in ss.SOURCE_INDEX.items()]
  np.testing.assert_allclose(out["photometric"], [float(tf.reduce_mean((errs[0] + errs[1]) / 2))],
                             rtol=1e-6)


# ----------------------------------------------------------------------------- config
def test_config_validates_with_typed_errors_and_round_trips():
  with pytest.raises(InvalidInputError, match="-1"):
    ss.SelfSupervisedConfig(smoothness_weight=-1.0)
  with pytest.raises(InvalidInputError, match="'l3'"):
    ss.SelfSupervisedConfig(supervised_loss="l3")
  with pytest.raises(InvalidInputError, match="'yes'"):
    ss.SelfSupervisedConfig(use_automask="yes")
  with pytest.raises(InvalidInputError, match="100.0, 0.1"):
    ss.SelfSupervisedConfig(min_depth=100.0, max_depth=0.1)
  cfg = ss.SelfSupervisedConfig(scales=(0, 2), use_automask=False, segmentation_weight=5e-4)
  assert ss.SelfSupervisedConfig.from_dict(cfg.to_dict()) == cfg
  with pytest.raises(Exception):
    cfg.use_automask = True  # frozen


def test_registered_experiments_map_to_the_trainer_config():
  mono = experiments.get_experiment("monodepth2_synthetic_street")
  assert ss.is_self_supervised(mono)
  assert not ss.is_self_supervised(experiments.get_experiment("fastdepth_synthetic_street"))
  cfg = ss.self_supervised_config(mono)
  assert (cfg.photometric_weight, cfg.smoothness_weight, cfg.segmentation_weight) == (1.0, 1e-3, 0)
  seg = experiments.apply_overrides(experiments.get_experiment("segdepth_synthetic_street"),
                                    ["losses.photometric.kwargs.use_automask=false"])
  cfg = ss.self_supervised_config(seg)
  assert cfg.segmentation_weight == 5e-4 and cfg.smoothness_weight == 1e-3
  assert cfg.use_automask is False
  for name in ("monodepth2_kitti_eigen_zhou", "segdepth_kitti"):
    assert ss.eval_protocol(experiments.get_experiment(name)).name == "kitti_eigen_mono"
  assert ss.eval_protocol(mono).median_scaling
  bad = experiments.apply_overrides(mono, ["losses.photometric.kwargs.use_autmask=false"])
  with pytest.raises(ConfigError, match="use_autmask"):
    ss.self_supervised_config(bad)


# ----------------------------------------------------------------------------- training
def _tiny_depth_net(h=16, w=32, seg_classes=0, batch_norm=False):
  x_in = keras.Input((h, w, 3))
  x = keras.layers.Conv2D(4, 3, padding="same", activation="elu")(x_in)
  if batch_norm:
    x = keras.layers.BatchNormalization(momentum=0.5, name="tiny_bn")(x)
  out = {"disp_0": keras.layers.Conv2D(1, 3, padding="same", activation="sigmoid")(x)}
  out["disp_1"] = keras.layers.Conv2D(1, 3, padding="same", activation="sigmoid")(
      keras.layers.AveragePooling2D(2)(x))
  if seg_classes:
    out["seg_logits"] = keras.layers.Conv2D(seg_classes, 1)(x)
  return keras.Model(x_in, out)


def _tiny_pose_net(h=16, w=32):
  x_in = keras.Input((h, w, 6))
  x = keras.layers.Conv2D(4, 3, strides=2, padding="same", activation="relu")(x_in)
  x = keras.layers.GlobalAveragePooling2D()(x)
  x = keras.layers.Rescaling(0.01)(x)
  return keras.Model(x_in, {"axis_angle": keras.layers.Dense(3)(x),
                            "translation": keras.layers.Dense(3)(x)})


def _batch(n=2, seg=False):
  frames = _ramp_frames(n)
  batch = {"frames": frames, "frames_aug": tf.clip_by_value(frames * 1.1, 0, 1),
           "intrinsics": _k(n)}
  if seg:
    labels = np.zeros((n, 16, 32, 1), np.int32)
    labels[:, 8:] = 13
    labels[:, :2] = 255
    batch["seg_labels"] = tf.constant(labels)
    batch["seg_weights"] = tf.ones([n, 16, 32, 1])
  return batch


def _model(strategy=None, seg=False, config=None, run_eagerly=False):
  strategy = strategy or tf.distribute.get_strategy()
  keras.utils.set_random_seed(0)
  with strategy.scope():
    cfg = config or ss.SelfSupervisedConfig(
        scales=(0, 1), automask_noise_scale=0.0, segmentation_weight=5e-4 if seg else 0.0)
    model = ss.SelfSupervisedDepthModel(_tiny_depth_net(seg_classes=19 if seg else 0),
                                        _tiny_pose_net(), cfg)
    model.compile(optimizer=keras.optimizers.SGD(0.5), run_eagerly=run_eagerly)
  return model


def test_fit_logs_weighted_terms_and_updates_both_networks():
  model = _model(seg=True)
  batch = _batch(seg=True)
  before = [w.numpy().copy() for w in model.trainable_weights]
  hist = model.fit(tf.data.Dataset.from_tensors(batch), epochs=1, verbose=0).history
  logs = {k: v[-1] for k, v in hist.items()}
  assert set(logs) == {"loss", "photometric_loss", "smoothness_loss", "segmentation_loss"}
  np.testing.assert_allclose(
      logs["loss"], logs["photometric_loss"] + 1e-3 * logs["smoothness_loss"]
      + 5e-4 * logs["segmentation_loss"], rtol=1e-5)   # float32 sums of ~1e-1 values
  # Cross-entropy of near-uniform logits over 19 classes is close to ln 19 = 2.944.
  assert abs(logs["segmentation_loss"] - math.log(19)) < 0.5
  changed = [not np.array_equal(a, b.numpy()) for a, b in zip(before, model.trainable_weights)]
  n_depth = len(model.depth_net.trainable_weights)
  assert any(changed[:n_depth]) and any(changed[n_depth:])


def test_semi_supervised_term_uses_only_sparse_pixels():
  cfg = ss.SelfSupervisedConfig(scales=(0,), supervised_weight=1e-2, automask_noise_scale=0.0)
  frames = _ramp_frames()
  sparse = np.zeros((1, 16, 32, 1), np.float32)
  sparse[0, 4, 7] = 5.0
  sparse[0, 10, 20] = 2.0
  disp = tf.fill([1, 16, 32, 1], 0.5)
  _, depth = geometry.disp_to_depth(0.5)
  poses = {f: geometry.identity_pose(1) for f in (-1, 1)}
  out = ss.self_supervised_losses(frames, _k(), {0: disp}, poses, cfg,
                                  sparse_depth=tf.constant(sparse))
  expected = (abs(float(depth) - 5.0) + abs(float(depth) - 2.0)) / 2.0
  np.testing.assert_allclose(out["supervised"], [expected], rtol=1e-6)


def test_one_step_fit_mirrored_over_two_devices_matches_one_device():
  devices = tf.config.list_logical_devices("CPU")
  assert len(devices) >= 2, "tests/conftest.py configures two logical CPU devices"
  batch = _batch(2)

  def run(strategy):
    # Eager steps: the same replica-context code path without two costly traces (the graph-mode
    # fit is covered by test_fit_logs_weighted_terms_and_updates_both_networks).
    model = _model(strategy, run_eagerly=True)
    hist = model.fit(tf.data.Dataset.from_tensors(batch), epochs=1, verbose=0).history
    return [w.numpy() for w in model.trainable_weights], hist

  one_w, one_h = run(tf.distribute.OneDeviceStrategy(devices[0].name))
  two_w, two_h = run(cpu_mirrored_strategy([d.name for d in devices[:2]]))
  # Same float32 math split over replicas (sum of two half-batch means vs one mean): round-off only.
  for a, b in zip(two_w, one_w):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
  for key in one_h:
    np.testing.assert_allclose(two_h[key][-1], one_h[key][-1], rtol=1e-5)
  assert any(not np.allclose(a, b) for a, b in zip(one_w, [w.numpy() for w in
                                                           _model().trainable_weights]))


def test_non_finite_loss_skips_the_update_and_raises():
  model = _model(run_eagerly=True)
  batch = _batch()
  frames = batch["frames"].numpy()
  frames[0, 1, 3, 3, 0] = np.nan
  batch["frames"] = tf.constant(frames)
  before = [w.numpy().copy() for w in model.trainable_weights]
  with pytest.raises(NonFiniteError, match="photometric_loss"):
    model.fit(tf.data.Dataset.from_tensors(batch), epochs=1, verbose=0)
  for a, b in zip(before, model.trainable_weights):
    np.testing.assert_array_equal(a, b.numpy())


def test_non_finite_prediction_with_depth_metrics_under_adam_applies_nothing():
  from tfdepth import metrics  # pylint: disable=g-import-not-at-top
  keras.utils.set_random_seed(0)
  model = ss.SelfSupervisedDepthModel(
      _tiny_depth_net(batch_norm=True), _tiny_pose_net(),
      ss.SelfSupervisedConfig(scales=(0, 1), automask_noise_scale=0.0),
      depth_metrics=metrics.standard_metrics("synthetic_street"))
  model.compile(optimizer=keras.optimizers.Adam(1e-2), run_eagerly=True)
  batch = _batch()
  aug = batch["frames_aug"].numpy()
  aug[0, 1, 3, 3, 0] = np.nan   # the depth net's input: NaN predicted depth
  batch["frames_aug"] = tf.constant(aug)
  batch["depth"] = tf.fill([2, 16, 32, 1], 5.0)
  model.optimizer.build(model.trainable_variables)
  before = [v.numpy().copy() for v in model.weights + model.optimizer.variables]
  # The metrics' in-graph finiteness assertion must not pre-empt the typed error.
  with pytest.raises(NonFiniteError, match=r"global step 1 \(epoch 0, batch 0\)"):
    model.fit(tf.data.Dataset.from_tensors(batch), epochs=1, verbose=0)
  assert int(model.optimizer.iterations.numpy()) == 0
  # incl. Adam moments and the BatchNorm statistics that the skipped forward pass made NaN
  assert any("moving_mean" in v.path for v in model.weights)
  for a, b in zip(before, model.weights + model.optimizer.variables):
    np.testing.assert_array_equal(a, b.numpy())
  assert model.depth_metrics and all(float(m.count.numpy()) == 0 for m in model.depth_metrics)
  # Evaluation of a NaN target frame: a typed error, not the metrics' in-graph assertion.
  frames = batch["frames"].numpy()
  frames[0, ss.TARGET_INDEX, 3, 3, 0] = np.nan
  batch["frames"] = tf.constant(frames)
  with pytest.raises(NonFiniteError, match=r"evaluation batch 0"):
    model.evaluate(tf.data.Dataset.from_tensors(batch), verbose=0)
  assert all(float(m.count.numpy()) == 0 for m in model.depth_metrics)


def test_get_config_round_trip_and_bad_inputs():
  cfg = ss.SelfSupervisedConfig(scales=(0, 1), use_min_reprojection=False, ssim_weight=0.5)
  model = ss.SelfSupervisedDepthModel(_tiny_depth_net(), _tiny_pose_net(), cfg, name="ssd")
  clone = ss.SelfSupervisedDepthModel.from_config(model.get_config())
  assert clone.config == cfg and clone.name == "ssd"
  with pytest.raises(InvalidInputError, match="depth_net"):
    ss.SelfSupervisedDepthModel("net", _tiny_pose_net())
  with pytest.raises(InvalidInputError, match="frames"):
    ss.SelfSupervisedDepthModel._unpack({"image": tf.zeros([1, 16, 32, 3])})  # pylint: disable=protected-access
  out = model(tf.fill([1, 16, 32, 3], 0.5))
  _, expected = geometry.disp_to_depth(out["disp_0"])
  np.testing.assert_allclose(out["depth"], expected, rtol=1e-6)
