"""Tests of the stereo (S) and mono+stereo (MS) modes of trainers/self_supervised.py (Monodepth2).

Geometry checks use a synthetic street clip rendered at 64x192 with KITTI's 0.54 m stereo pair and
its exact depth in place of the depth network; training checks use tiny conv nets (as
tests/test_self_supervised.py); the experiment checks run one `fit` step on the datasets that
`make_datasets` builds from the KITTI dummy raw tree and from a tiny synthetic stereo builder.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from etils import epath

from tfdepth import geometry
from tfdepth import losses
from tfdepth import metrics
from tfdepth.data import video
from tfdepth.errors import InvalidInputError
from tfds_builders.kitti_depth import kitti_depth_dataset_builder as kd
from tfds_builders.synthetic_world import clips
from trainers import common
from trainers import experiments
from trainers import self_supervised as ss

H, W = 64, 192
CLIP_INDEX = 2
STEREO_BASELINE_M = 0.54
# Sky has no depth (0 in GT); 1 km approximates infinity to < 0.1 px of stereo disparity
# (fx = 111 px: 111 * 0.54 / 1000 = 0.06 px).
SKY_DEPTH_M = 1000.0
# Training units: Monodepth2's stereo_T has baseline 0.1, so the depth it learns is metric x
# 0.1 / 0.54.
UNITS = video.MONODEPTH2_STEREO_BASELINE / STEREO_BASELINE_M
EXPERIMENTS = {  # name -> Monodepth2 frame set
    "monodepth2_kitti_eigen_zhou": (0, -1, 1),
    "monodepth2_kitti_eigen_zhou_stereo": (0, "s"),
    "monodepth2_kitti_eigen_zhou_mono_stereo": (0, -1, 1, "s"),
    "monodepth2_synthetic_street_stereo": (0, "s"),
    "monodepth2_synthetic_street_mono_stereo": (0, -1, 1, "s"),
}


@pytest.fixture(scope="module")
def clip():
  c = clips.render_clip("street", H, W, seed=0, split="train", index=CLIP_INDEX,
                        stereo_baseline=STEREO_BASELINE_M)
  e = video.synthetic_world_to_self_supervised({k: tf.constant(v) for k, v in c.items()
                                                if k != "clip_id"})
  depth = c["depth"][None]
  return {
      "frames": e["frames"][None],
      "stereo_image": e["stereo_image"][None],
      "target_from_stereo": e["target_from_stereo"][None],
      "intrinsics": e["intrinsics"][None],
      "depth": depth,
      "filled_depth": np.where(depth > 0, depth, SKY_DEPTH_M).astype(np.float32),
      "fx": float(c["intrinsics"][0, 0]),
  }


def _visible_in_partner(depth, fx, baseline):
  """`(H, W)` bool: target (left) pixels with depth that the right camera also sees.

  Rectified pair, right camera at +baseline: pixel u lands at u_r = u - fx·b/z. It is occluded
  when a pixel u' > u of its row lands at or left of u_r (a nearer surface covers it), and out of
  view when u_r < 0.
  """
  z = np.where(depth > 0, depth, SKY_DEPTH_M)
  u_r = np.arange(z.shape[1])[None, :] - fx * baseline / z
  right_min = np.minimum.accumulate(u_r[:, ::-1], axis=1)[:, ::-1]
  next_min = np.concatenate([right_min[:, 1:], np.full((z.shape[0], 1), np.inf)], axis=1)
  return (u_r < next_min + 0.5) & (u_r >= 0) & (depth > 0)


def _stereo_loss(clip, tx, depth):
  pose = video.target_from_stereo_transform(abs(tx), tx > 0)[None]
  warped, _ = geometry.warp_image(clip["stereo_image"], depth, ss.stereo_source_from_target(pose),
                                  clip["intrinsics"])
  return losses.photometric_error(warped, clip["frames"][:, 1]).numpy()[0, ..., 0]


# ----------------------------------------------------------------------------- acceptance: GT
def test_true_depth_explains_the_stereo_partner_and_the_swapped_sign_does_not(clip):
  assert float(clip["target_from_stereo"][0, 0, 3]) == pytest.approx(0.1, abs=1e-8)  # left target
  visible = _visible_in_partner(clip["depth"][0, ..., 0], clip["fx"], STEREO_BASELINE_M)
  # Measured 86% of the pixels: the rest is sky, the left image border and occlusion bands.
  assert visible.mean() > 0.8
  metric = _stereo_loss(clip, STEREO_BASELINE_M, clip["filled_depth"])
  trained = _stereo_loss(clip, video.MONODEPTH2_STEREO_BASELINE, clip["filled_depth"] * UNITS)
  swapped = _stereo_loss(clip, -STEREO_BASELINE_M, clip["filled_depth"])
  # Metric depth with the metric baseline and depth x0.1/0.54 with Monodepth2's 0.1 give the same
  # warp (the reason for x5.4 at evaluation): float32 round-off of the projection only.
  np.testing.assert_allclose(trained, metric, atol=1e-4)
  # Measured on the visible pixels: median 0.0014, mean 0.025 (the residue is at texture edges
  # and at pixels whose 3x3 SSIM window crosses a depth edge); swapped sign: median 0.21.
  assert np.median(metric[visible]) < 0.005 and metric[visible].mean() < 0.035
  assert np.median(swapped[visible]) > 0.15
  assert swapped[visible].mean() > 5 * metric[visible].mean()


def test_stereo_only_losses_with_the_true_depth_are_small_and_keep_the_stereo_pixels(clip):
  cfg = ss.SelfSupervisedConfig(scales=(0,), use_stereo=True, use_temporal_frames=False,
                                automask_noise_scale=0.0)
  # The true depth in training units as Monodepth2's sigmoid disparity (min 0.1, max 100 depth).
  depth = clip["filled_depth"] * UNITS
  lo, hi = 1.0 / cfg.max_depth, 1.0 / cfg.min_depth
  disp = tf.constant((1.0 / depth - lo) / (hi - lo))
  poses = {"s": ss.stereo_source_from_target(clip["target_from_stereo"])}
  out = ss.self_supervised_losses(clip["frames"], clip["intrinsics"], {0: disp}, poses, cfg,
                                  stereo_image=clip["stereo_image"])
  wrong = ss.self_supervised_losses(clip["frames"], clip["intrinsics"], {0: disp},
                                    {"s": geometry.invert_pose(poses["s"])}, cfg,
                                    stereo_image=clip["stereo_image"])
  visible = _visible_in_partner(clip["depth"][0, ..., 0], clip["fx"], STEREO_BASELINE_M)
  # Measured: photometric 0.032 over the whole image (right sign; auto-masked min with the
  # identity error; occlusion bands and sky included) vs 0.142 with the swapped sign; the
  # auto-mask keeps 96% of the visible pixels (the rest: textureless road where the un-warped
  # partner is as good) and 38% with the swapped sign.
  assert float(out["photometric"][0]) < 0.045
  assert float(wrong["photometric"][0]) > 3 * float(out["photometric"][0])
  assert out["automask"].numpy()[0, ..., 0][visible].mean() > 0.9
  assert wrong["automask"].numpy()[0, ..., 0][visible].mean() < 0.5


# ----------------------------------------------------------------------------- loss pieces
def _random_inputs(batch=1, h=16, w=32):
  rng = np.random.default_rng(5)
  u = np.linspace(0.0, 1.0, w, dtype=np.float32)
  ramp = np.broadcast_to(u[None, :, None], (h, w, 3))
  frames = np.clip(ramp + 0.1 * rng.random((batch, 3, h, w, 3), np.float32), 0, 1)
  stereo = np.clip(np.roll(ramp, 2, axis=1) + 0.1 * rng.random((batch, h, w, 3), np.float32),
                   0, 1)
  k = np.array([[0.58 * w, 0, 0.5 * w], [0, 1.92 * h, 0.5 * h], [0, 0, 1]], np.float32)
  pose = video.target_from_stereo_transform(0.1, True)
  return {"frames": tf.constant(frames), "stereo_image": tf.constant(stereo),
          "intrinsics": tf.constant(np.stack([k] * batch)),
          "target_from_stereo": tf.tile(pose[None], [batch, 1, 1])}


def test_stereo_enters_min_reprojection_and_automask_after_the_temporal_sources():
  x = _random_inputs()
  disp = tf.fill([1, 16, 32, 1], 0.3)
  _, depth = geometry.disp_to_depth(disp)
  poses = {f: geometry.pose_from_axis_angle_translation(
      tf.zeros([1, 3]), tf.constant([[0.05 * f, 0.0, 0.3 * f]])) for f in (-1, 1)}
  poses["s"] = ss.stereo_source_from_target(x["target_from_stereo"])
  # stereo_T of a left target (Monodepth2 mono_dataset.py): x translation -0.1.
  np.testing.assert_allclose(poses["s"].numpy()[0, :3, 3], [-0.1, 0, 0], atol=1e-8)
  target = x["frames"][:, 1]
  sources = {-1: x["frames"][:, 0], 1: x["frames"][:, 2], "s": x["stereo_image"]}
  warp = {f: geometry.warp_image(sources[f], depth, poses[f], x["intrinsics"])[0] for f in sources}
  order = (-1, 1, "s")   # Monodepth2 frame_ids[1:]
  reproj = np.stack([losses.photometric_error(warp[f], target).numpy() for f in order])
  ident = np.stack([losses.photometric_error(sources[f], target).numpy() for f in order])
  cfg = ss.SelfSupervisedConfig(scales=(0,), use_stereo=True, automask_noise_scale=0.0)
  out = ss.self_supervised_losses(x["frames"], x["intrinsics"], {0: disp}, poses, cfg,
                                  stereo_image=x["stereo_image"])
  # Per-pixel min over [identity x3, reprojection x3]; kept where a reprojection wins strictly.
  expected = np.minimum(reproj.min(0), ident.min(0))
  np.testing.assert_allclose(out["photometric"], [expected.mean()], rtol=1e-6)
  np.testing.assert_array_equal(out["automask"], (reproj.min(0) < ident.min(0)).astype(np.float32))
  # The stereo source matters: without it the minimum is over the temporal sources only.
  assert (reproj[2] < reproj[:2].min(0)).mean() > 0.1
  # S mode: the temporal frames are not sources (changing them changes nothing).
  s_cfg = ss.SelfSupervisedConfig(scales=(0,), use_stereo=True, use_temporal_frames=False,
                                  automask_noise_scale=0.0)
  s_only = ss.self_supervised_losses(x["frames"], x["intrinsics"], {0: disp}, {"s": poses["s"]},
                                     s_cfg, stereo_image=x["stereo_image"])
  np.testing.assert_allclose(s_only["photometric"],
                             [np.minimum(reproj[2], ident[2]).mean()], rtol=1e-6)
  assert [f for f in sorted(["s", 1, -1], key=ss.frame_order)] == [-1, 1, "s"]
  with pytest.raises(InvalidInputError, match="stereo_image"):
    ss.self_supervised_losses(x["frames"], x["intrinsics"], {0: disp}, {"s": poses["s"]}, s_cfg)
  with pytest.raises(InvalidInputError, match="'t'"):
    ss.source_images(x["frames"], {"t": poses["s"]})


def test_config_frame_sets_and_typed_errors():
  assert ss.SelfSupervisedConfig().frame_ids == (0, -1, 1)
  assert ss.SelfSupervisedConfig(use_stereo=True).frame_ids == (0, -1, 1, "s")
  s = ss.SelfSupervisedConfig(use_stereo=True, use_temporal_frames=False)
  assert s.frame_ids == (0, "s")
  assert ss.SelfSupervisedConfig.from_dict(s.to_dict()) == s
  with pytest.raises(InvalidInputError, match="use_temporal_frames=False, use_stereo=False"):
    ss.SelfSupervisedConfig(use_temporal_frames=False)
  with pytest.raises(InvalidInputError, match="'yes'"):
    ss.SelfSupervisedConfig(use_stereo="yes")


# ----------------------------------------------------------------------------- training
def _tiny_depth_net(h=16, w=32):
  x_in = keras.Input((h, w, 3))
  x = keras.layers.Conv2D(4, 3, padding="same", activation="elu")(x_in)
  out = {"disp_0": keras.layers.Conv2D(1, 3, padding="same", activation="sigmoid")(x)}
  out["disp_1"] = keras.layers.Conv2D(1, 3, padding="same", activation="sigmoid")(
      keras.layers.AveragePooling2D(2)(x))
  return keras.Model(x_in, out)


def _tiny_pose_net(h=16, w=32):
  x_in = keras.Input((h, w, 6))
  x = keras.layers.Conv2D(4, 3, strides=2, padding="same", activation="relu")(x_in)
  x = keras.layers.GlobalAveragePooling2D()(x)
  x = keras.layers.Rescaling(0.01)(x)
  return keras.Model(x_in, {"axis_angle": keras.layers.Dense(3)(x),
                            "translation": keras.layers.Dense(3)(x)})


def _model(stereo_only, h=16, w=32, run_eagerly=False):
  keras.utils.set_random_seed(0)
  cfg = ss.SelfSupervisedConfig(scales=(0, 1), automask_noise_scale=0.0, use_stereo=True,
                                use_temporal_frames=not stereo_only)
  model = ss.SelfSupervisedDepthModel(_tiny_depth_net(h, w),
                                      None if stereo_only else _tiny_pose_net(h, w), cfg)
  model.compile(optimizer=keras.optimizers.SGD(0.5), run_eagerly=run_eagerly)
  return model


def _batch(n=2):
  x = _random_inputs(n)
  x["frames_aug"] = tf.clip_by_value(x["frames"] * 1.1, 0, 1)
  return x


def test_stereo_only_fit_uses_the_batch_stereo_transform_and_no_pose_net():
  # Eager step: the same train_step code without a trace (graph mode: the MS and experiment fits).
  model = _model(stereo_only=True, run_eagerly=True)
  batch = _batch()
  assert model.pose_net is None and model.predict_poses(batch["frames"]) == {}
  # The loss the first step logs, recomputed from the initial weights with the stereo source only.
  out = model(batch["frames_aug"][:, 1])
  pose = {"s": ss.stereo_source_from_target(batch["target_from_stereo"])}
  expected = ss.self_supervised_losses(batch["frames"], batch["intrinsics"],
                                       {s: out[f"disp_{s}"] for s in (0, 1)}, pose, model.config,
                                       stereo_image=batch["stereo_image"])
  before = [w.numpy().copy() for w in model.trainable_weights]
  logs = {k: v[-1] for k, v in model.fit(tf.data.Dataset.from_tensors(batch), epochs=1,
                                         verbose=0).history.items()}
  assert set(logs) == {"loss", "photometric_loss", "smoothness_loss"}
  # float32 means of ~0.1 values computed in two graphs: round-off only.
  np.testing.assert_allclose(logs["photometric_loss"], float(tf.reduce_mean(
      expected["photometric"])), rtol=1e-5)
  assert any(not np.array_equal(a, b.numpy()) for a, b in zip(before, model.trainable_weights))
  clone = ss.SelfSupervisedDepthModel.from_config(model.get_config())
  assert clone.pose_net is None and clone.config == model.config
  no_stereo = {k: v for k, v in batch.items() if k not in ("stereo_image", "target_from_stereo")}
  with pytest.raises(InvalidInputError, match="stereo_image"):
    model.source_poses(no_stereo, batch["frames"])
  with pytest.raises(InvalidInputError, match="pose_net=None"):
    ss.SelfSupervisedDepthModel(_tiny_depth_net(), _tiny_pose_net(), model.config)
  with pytest.raises(InvalidInputError, match="pose_net"):
    ss.SelfSupervisedDepthModel(_tiny_depth_net(), None, ss.SelfSupervisedConfig(use_stereo=True))


def test_mono_stereo_fit_updates_both_networks_and_visualizes_every_source():
  model = _model(stereo_only=False)
  batch = _batch()
  poses = model.source_poses(batch, batch["frames_aug"])
  assert sorted(poses, key=ss.frame_order) == [-1, 1, "s"]
  np.testing.assert_allclose(poses["s"].numpy()[:, 0, 3], [-0.1, -0.1], atol=1e-8)
  before = [w.numpy().copy() for w in model.trainable_weights]
  model.fit(tf.data.Dataset.from_tensors(batch), epochs=1, verbose=0)
  changed = [not np.array_equal(a, b.numpy()) for a, b in zip(before, model.trainable_weights)]
  n_depth = len(model.depth_net.trainable_weights)
  assert any(changed[:n_depth]) and any(changed[n_depth:])
  vis = model.visualization_outputs(batch)
  assert sorted(vis) == ["automask", "warped_+1", "warped_-1", "warped_s"]
  assert vis["warped_s"].shape == (2, 16, 32, 3) and vis["automask"].shape == (2, 16, 32, 1)


# ----------------------------------------------------------------------------- experiments
def test_experiments_map_to_frame_sets_and_stereo_evaluation():
  for name, frame_ids in EXPERIMENTS.items():
    config = experiments.get_experiment(name)
    assert ss.is_self_supervised(config)
    assert ss.self_supervised_config(config).frame_ids == frame_ids, name
    protocol = ss.eval_protocol(config)
    if "s" in frame_ids:   # Monodepth2 --eval_stereo: no median scaling, x5.4
      assert not protocol.median_scaling and protocol.fixed_scale == ss.STEREO_SCALE_FACTOR, name
    else:
      assert protocol.median_scaling and protocol.fixed_scale is None, name
  assert ss.STEREO_SCALE_FACTOR == metrics.STEREO_SCALE_FACTOR == 5.4
  assert ss.eval_protocol(experiments.get_experiment(
      "monodepth2_kitti_eigen_zhou_stereo")).name == "kitti_eigen_stereo"
  # A stereo model predicting gt / 5.4 evaluates exactly (scale 5.4, not a median ratio).
  gt = np.linspace(2.0, 30.0, 8 * 12, dtype=np.float32).reshape(8, 12)
  pred = gt / np.float32(5.4) * np.float32(1.1)
  protocol = ss.eval_protocol(experiments.get_experiment("monodepth2_synthetic_street_stereo"))
  table, per_image = metrics.evaluate_predictions([gt], [pred], protocol)
  assert per_image[0]["scale"] == pytest.approx(5.4, rel=1e-12)
  assert table["abs_rel"] == pytest.approx(0.1, rel=1e-5)   # |1.1 gt - gt| / gt, float32
  depth, pose = ss.build_networks(experiments.apply_overrides(
      experiments.get_experiment("monodepth2_synthetic_street_stereo"),
      ["data.height=64", "data.width=64"]))
  assert pose is None and depth(tf.zeros([1, 64, 64, 3]))["disp_0"].shape == (1, 64, 64, 1)


def _fit_one_step(config, builder, stereo_only):
  datasets = ss.make_datasets(config, builder, ("train",), cache=False)
  batch = next(iter(datasets["train"]))
  assert batch["stereo_image"].shape == batch["frames"].shape[:1] + batch["frames"].shape[2:]
  model = _model(stereo_only, config.data.height, config.data.width, run_eagerly=True)
  logs = model.fit(datasets["train"], epochs=1, steps_per_epoch=1, verbose=0).history
  assert np.isfinite(logs["loss"][-1]) and logs["photometric_loss"][-1] > 0
  return batch


def test_kitti_mono_stereo_experiment_fits_one_step_on_the_dummy_raw_tree(tmp_path):
  tfds.core.utils.gcs_utils._is_gcs_disabled = True  # pylint: disable=protected-access
  builder = kd.Builder(config="eigen_zhou", data_dir=str(tmp_path))
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
      manual_dir=str(epath.Path(kd.__file__).parent / "dummy_data"),
      compute_stats=tfds.download.ComputeStatsMode.SKIP))
  config = experiments.apply_overrides(
      experiments.get_experiment("monodepth2_kitti_eigen_zhou_mono_stereo"),
      ["data.height=16", "data.width=32", "train.batch_size=2", "data.augment=false"])
  batch = _fit_one_step(config, builder, stereo_only=False)
  # The Zhou frames of the dummy tree are left-camera targets: +0.1 without flips.
  np.testing.assert_array_equal(batch["target_from_stereo"][:, 0, 3], [np.float32(0.1)] * 2)


def test_synthetic_stereo_experiment_fits_one_step(tmp_path):
  config = experiments.apply_overrides(
      experiments.get_experiment("monodepth2_synthetic_street_stereo"),
      ["data.height=16", "data.width=32", "train.batch_size=2", "data.builder_kwargs.height=24",
       "data.builder_kwargs.width=64", "data.builder_kwargs.num_train=2",
       "data.builder_kwargs.num_validation=1", "data.builder_kwargs.num_test=1"])
  builder = common.prepare_builder(config.data, str(tmp_path))
  assert builder.info.features["stereo_image"].shape == (24, 64, 3)
  _fit_one_step(config, builder, stereo_only=True)
