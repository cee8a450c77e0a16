"""Tests of tfdepth/data/video.py (self-supervised pipeline, simulated LiDAR, stereo pairs of the
KITTI adapter and of the synthetic renderer's stereo option) and tfdepth/models/segdepth.py
(segmentation head on the shared decoder, DispToDepth)."""

import math

from etils import epath
import numpy as np
import pytest
import tensorflow as tf

from tfdepth import geometry
from tfdepth import losses
from tfdepth.data import video
from tfdepth.errors import InvalidInputError
from tfdepth.models import monodepth2
from tfdepth.models import segdepth
from tfds_builders.kitti_depth import kitti_depth_dataset_builder as kd
from tfds_builders.kitti_depth import kitti_splits
from tfds_builders.synthetic_world import clips
from tfds_builders.synthetic_world import synthetic_world_dataset_builder as swb

# Hand-computable camera: 5 rows x 4 columns, fx = fy = 1, cx = 1.5, cy = 2, so x = u - 1.5 and
# y = v - 2 (in units of the focal length).
SMALL_K = np.array([[1.0, 0.0, 1.5], [0.0, 1.0, 2.0], [0.0, 0.0, 1.0]], np.float32)


def test_lidar_scan_lines_are_curved_and_hand_computed():
  # Two beams: elevation 0 deg (the horizon row v = 2 in every column) and -45 deg, where
  # y = sqrt(x^2 + 1): for |x| = 0.5 the closest row is v = 3 (elevation -41.8 deg), for |x| = 1.5
  # it is v = 4 (-48.0 deg). Both within half a row (0.5 rad); azimuth resolution below a pixel.
  mask = video.lidar_scan_mask(5, 4, SMALL_K, num_beams=2, fov_up_deg=0.0, fov_down_deg=-45.0,
                               azimuth_resolution_deg=0.01).numpy()[..., 0]
  expected = np.zeros((5, 4))
  expected[2] = 1
  expected[3, 1:3] = 1
  expected[4, [0, 3]] = 1
  np.testing.assert_array_equal(mask, expected)


def test_lidar_azimuth_resolution_keeps_the_closest_column_per_step():
  # Column azimuths atan(x) = -56.3, -26.6, 26.6, 56.3 deg; with 40 deg steps they round to
  # -1, -1, 1, 1 and the closest to +-40 deg are columns 1 and 2 (13.4 deg vs 16.3 deg away).
  mask = video.lidar_scan_mask(5, 4, SMALL_K, num_beams=2, fov_up_deg=0.0, fov_down_deg=-45.0,
                               azimuth_resolution_deg=40.0).numpy()[..., 0]
  np.testing.assert_array_equal(mask.max(axis=0), [0, 1, 1, 0])


def test_sparse_depth_drops_invalid_and_out_of_range_returns():
  depth = np.full((5, 4, 1), 7.0, np.float32)
  depth[2, 0] = 0.0       # no return in GT
  depth[2, 1] = 150.0     # beyond the 120 m HDL-64E range
  sparse = video.sample_lidar_scan_lines(depth, SMALL_K, num_beams=2, fov_up_deg=0.0,
                                         fov_down_deg=-45.0, azimuth_resolution_deg=0.01).numpy()
  assert sparse[2, 0, 0] == 0.0 and sparse[2, 1, 0] == 0.0
  assert sparse[2, 2, 0] == 7.0 and sparse[3, 1, 0] == 7.0
  assert int((sparse > 0).sum()) == 4 + 2 + 2 - 2
  # The range cut is on the distance along the ray, z·sqrt(1 + x² + y²), not on z: at z = 100 m
  # pixel (2, 2) (x = 0.5, y = 0) is 111.8 m away and kept, pixel (3, 1) (x = -0.5, y = 1) is
  # 150 m away and dropped (it was kept when z was compared with the range).
  far = video.sample_lidar_scan_lines(np.full((5, 4, 1), 100.0, np.float32), SMALL_K,
                                      num_beams=2, fov_up_deg=0.0, fov_down_deg=-45.0,
                                      azimuth_resolution_deg=0.01).numpy()
  assert far[2, 2, 0] == 100.0 and far[3, 1, 0] == 0.0
  with pytest.raises(InvalidInputError, match="10.0, 2.0"):
    video.lidar_scan_mask(5, 4, SMALL_K, fov_up_deg=2.0, fov_down_deg=10.0)
  with pytest.raises(InvalidInputError, match=r"\(5, 4\)"):
    video.sample_lidar_scan_lines(np.zeros((5, 4), np.float32), SMALL_K)


def test_cityscapes_train_ids_and_border_weights():
  ids = video.cityscapes_train_ids(tf.constant([[7], [26], [23], [0], [255]], tf.uint8))
  np.testing.assert_array_equal(ids.numpy()[:, 0], [0, 13, 10, 255, 255])
  # Two cars (label 26) on one row with a 2-pixel road gap: gap pixels are at distances 1 and 2
  # from the two cars; the last pixel at 1 and 5.
  sem = np.array([26, 26, 7, 7, 26, 26, 7], np.uint8).reshape(1, 7, 1)
  w = video.border_weights_numpy(sem)[0, :, 0]
  gap = 1.0 + 10.0 * math.exp(-9.0 / 50.0)    # 1 + w0 exp(-(d1 + d2)^2 / (2 sigma^2))
  last = 1.0 + 10.0 * math.exp(-36.0 / 50.0)
  np.testing.assert_allclose(w, [1, 1, gap, gap, 1, 1, last], rtol=1e-6)


@pytest.fixture(scope="module")
def raw_clips():
  return [clips.render_clip("street", 64, 192, seed=0, split="train", index=i) for i in (2, 3)]


def _first(ds):
  return {k: v.numpy() for k, v in next(iter(ds)).items()}


def test_pipeline_flip_updates_intrinsics_and_labels_and_leaves_loss_frames_unjittered(raw_clips):
  raw = video.clips_to_dataset(raw_clips)
  plain = _first(video.make_self_supervised_dataset(raw, batch_size=2, height=64, width=192,
                                                    sparse_depth=True, segmentation=True))
  flipped = _first(video.make_self_supervised_dataset(
      raw, batch_size=2, height=64, width=192, augment_data=True, flip_probability=1.0,
      color_jitter_probability=0.0, sparse_depth=True, segmentation=True))
  np.testing.assert_array_equal(flipped["frames"], plain["frames"][:, :, :, ::-1])
  np.testing.assert_array_equal(flipped["frames_aug"], flipped["frames"])
  for key in ("depth", "semantic", "moving_mask", "seg_labels"):
    np.testing.assert_array_equal(flipped[key], plain[key][:, :, ::-1], err_msg=key)
  # cx' = W - 1 - cx (integer pixel centres); fx, fy, cy unchanged.
  np.testing.assert_allclose(flipped["intrinsics"][:, 0, 2], 191.0 - plain["intrinsics"][:, 0, 2],
                             rtol=1e-6)
  np.testing.assert_array_equal(flipped["intrinsics"][:, 1], plain["intrinsics"][:, 1])
  mirror = np.diag([-1.0, 1.0, 1.0, 1.0]).astype(np.float32)
  np.testing.assert_allclose(flipped["target_from_source"],
                             mirror @ plain["target_from_source"] @ mirror, atol=0)
  # Sparse depth is a subset of the dense depth; labels are Cityscapes train ids.
  sparse, dense = plain["sparse_depth"], plain["depth"]
  assert np.all((sparse == 0) | (sparse == dense)) and 0.2 < (sparse > 0).mean() < (dense > 0).mean()
  assert set(np.unique(plain["seg_labels"])) <= set(range(19)) | {255}
  assert plain["seg_weights"].min() >= 1.0


def test_pipeline_jitter_is_shared_by_the_frames_and_resize_maps_intrinsics(raw_clips):
  still = dict(raw_clips[0])
  still["frames"] = np.stack([still["frames"][1]] * 3)   # three identical frames
  ds = video.make_self_supervised_dataset(video.clips_to_dataset([still]), batch_size=1,
                                          height=32, width=96, augment_data=True,
                                          flip_probability=0.0, color_jitter_probability=1.0,
                                          seed=3)
  e = _first(ds)
  assert np.abs(e["frames_aug"] - e["frames"]).max() > 0.01       # jittered network input
  np.testing.assert_array_equal(e["frames_aug"][0, 0], e["frames_aug"][0, 1])  # one draw
  np.testing.assert_array_equal(e["frames_aug"][0, 2], e["frames_aug"][0, 1])
  ref = tf.image.resize(still["frames"].astype(np.float32) / 255.0, [32, 96], antialias=True)
  np.testing.assert_allclose(e["frames"][0], np.clip(ref.numpy(), 0, 1), atol=1e-6)
  k = still["intrinsics"]
  # Halving: fx/2, and cx' = (cx + 0.5) / 2 - 0.5 for integer pixel centres.
  np.testing.assert_allclose(e["intrinsics"][0, 0, [0, 2]],
                             [k[0, 0] / 2, (k[0, 2] + 0.5) / 2 - 0.5], rtol=1e-6)
  with pytest.raises(InvalidInputError, match="semantic"):
    video.make_self_supervised_dataset(
        tf.data.Dataset.from_tensors({"frames": tf.zeros([3, 8, 8, 3], tf.uint8),
                                      "intrinsics": tf.eye(3)}),
        adapter=lambda x: {"frames": tf.cast(x["frames"], tf.float32), "intrinsics": x["intrinsics"]},
        segmentation=True)


def test_disp_to_depth_layer_values_and_config_round_trip():
  layer = segdepth.DispToDepth(min_depth=0.5, max_depth=50.0, name="d2d")
  out = layer(tf.constant([[[[0.0]], [[1.0]], [[0.5]]]])).numpy().ravel()
  # 1 / (1/50 + (1/0.5 - 1/50) * s) for s = 0, 1, 0.5.
  np.testing.assert_allclose(out, [50.0, 0.5, 1.0 / (0.02 + 1.98 * 0.5)], rtol=1e-6)
  clone = segdepth.DispToDepth.from_config(layer.get_config())
  assert (clone.min_depth, clone.max_depth, clone.name) == (0.5, 50.0, "d2d")
  with pytest.raises(InvalidInputError, match="5.0, 1.0"):
    segdepth.DispToDepth(5.0, 1.0)


def test_segdepth_net_shares_the_decoder_and_adds_full_resolution_logits():
  net = segdepth.build_segdepth_net((64, 64, 3), num_classes=5, scales=(0, 1))
  out = net(tf.zeros([2, 64, 64, 3]))
  assert sorted(out) == ["disp_0", "disp_1", "seg_logits"]
  assert out["seg_logits"].shape == (2, 64, 64, 5) and out["disp_1"].shape == (2, 32, 32, 1)
  plain = monodepth2.build_monodepth2_depth_net((64, 64, 3), scales=(0, 1))
  head = (3 * 3 * 16 * 16 + 16) + (3 * 3 * 16 * 5 + 5)     # two 3x3 convs with bias
  assert net.count_params() == plain.count_params() + head
  inference = segdepth.with_depth_output(net)
  res = inference(tf.zeros([1, 64, 64, 3]))
  np.testing.assert_allclose(res["depth"], 1.0 / (0.01 + 9.99 * res["disp_0"].numpy()),
                             rtol=1e-5)   # float32 division
  with pytest.raises(InvalidInputError, match="1"):
    segdepth.build_segdepth_net((64, 64, 3), num_classes=1)


# ----------------------------------------------------------------------------- stereo (S / MS)
# Stereo clips: the street scene with KITTI's 0.54 m stereo pair (left camera = frame t).
STEREO_BASELINE_M = 0.54
# Sky has no depth (0 in GT); 1 km approximates infinity to < 0.1 px of stereo disparity
# (fx = 111 px at 64x192: 111 * 0.54 / 1000 = 0.06 px).
SKY_DEPTH_M = 1000.0


@pytest.fixture(scope="module")
def stereo_clips():
  return [clips.render_clip("street", 64, 192, seed=0, split="train", index=i,
                            stereo_baseline=STEREO_BASELINE_M) for i in (2, 3)]


def _stereo_error(element, b, tx):
  """Mean / median photometric error of the stereo partner warped into the target of batch
  element `b` with the true depth in training units (x 0.1 / 0.54) and a stereo x translation
  `tx`, over the pixels with depth whose warp lands in the image."""
  depth = element["depth"][b:b + 1]
  units = video.MONODEPTH2_STEREO_BASELINE / STEREO_BASELINE_M
  filled = np.where(depth > 0, depth, SKY_DEPTH_M).astype(np.float32) * np.float32(units)
  pose = video.target_from_stereo_transform(abs(tx), tx > 0)[None]
  warped, valid = geometry.warp_image(element["stereo_image"][b:b + 1], filled,
                                      geometry.invert_pose(pose), element["intrinsics"][b:b + 1])
  err = losses.photometric_error(warped, element["frames"][b:b + 1, 1]).numpy()
  sel = (valid.numpy() > 0) & (depth > 0)
  return float(err[sel].mean()), float(np.median(err[sel]))


def test_render_clip_stereo_option_keeps_the_default_output_and_adds_the_right_camera(
    raw_clips, stereo_clips):
  plain, stereo = raw_clips[0], stereo_clips[0]
  assert set(stereo) - set(plain) == {"stereo_image", "stereo_baseline"}
  for key in plain:   # default features unchanged, value for value
    np.testing.assert_array_equal(stereo[key], plain[key], err_msg=key)
  assert stereo["stereo_image"].shape == (64, 192, 3) and stereo["stereo_image"].dtype == np.uint8
  assert stereo["stereo_baseline"] == np.float32(STEREO_BASELINE_M)
  # A different viewpoint: the partner is not a copy of frame t.
  assert np.abs(stereo["stereo_image"].astype(int) - plain["frames"][1].astype(int)).mean() > 5
  with pytest.raises(ValueError, match="-0.5"):
    clips.render_clip("street", 8, 8, stereo_baseline=-0.5)
  with pytest.raises(ValueError, match="nan"):
    swb.SyntheticWorldConfig(name="x", stereo_baseline=float("nan"))
  configs = {c.name: c for c in swb.Builder.BUILDER_CONFIGS}
  assert configs["street_stereo"].stereo_baseline == STEREO_BASELINE_M
  assert configs["street"].stereo_baseline == 0.0
  assert "stereo_image" not in swb.features_dict(8, 8)
  assert set(swb.features_dict(8, 8, stereo=True)) - set(swb.features_dict(8, 8)) == {
      "stereo_image", "stereo_baseline"}


def _kitti_example(side):
  dummy = epath.Path(kd.__file__).parent / "dummy_data"
  frame = kitti_splits.Frame("2011_09_26", "2011_09_26_drive_0113_sync", 30, side)
  _, example = kd.make_clip_example(frame, str(dummy), None)
  return {k: tf.constant(v) for k, v in example.items()}


def test_kitti_adapter_stereo_transform_sign_follows_the_target_camera():
  left = video.kitti_to_self_supervised(_kitti_example("l"))
  right = video.kitti_to_self_supervised(_kitti_example("r"))
  # Monodepth2 stereo_T = stereo_from_target has x translation -0.1 for "l" and +0.1 for "r";
  # target_from_stereo is its inverse.
  expected = np.eye(4, dtype=np.float32)   # float32 0.1 on both sides: exact comparison
  expected[0, 3] = 0.1
  np.testing.assert_array_equal(left["target_from_stereo"], expected)
  expected[0, 3] = -0.1
  np.testing.assert_array_equal(right["target_from_stereo"], expected)
  # Fixture images: green = (10 v + 40 camera) mod 256: the partner of image_03 is image_02.
  assert float(right["stereo_image"][0, 0, 1]) == pytest.approx(80 / 255, abs=1e-7)
  assert float(right["frames"][1, 0, 0, 1]) == pytest.approx(120 / 255, abs=1e-7)
  # Calibrated metric baseline (dummy calibration: 0.53 m) when asked for.
  metric = video.kitti_to_self_supervised(_kitti_example("l"), stereo_baseline=None)
  assert float(metric["target_from_stereo"][0, 3]) == pytest.approx(0.53, abs=1e-6)
  with pytest.raises(InvalidInputError, match="-1"):
    video.kitti_to_self_supervised(_kitti_example("l"), stereo_baseline=-1)


def test_pipeline_flip_negates_the_stereo_transform_and_the_flipped_pair_still_warps(stereo_clips):
  raw = video.clips_to_dataset(stereo_clips)
  kwargs = dict(batch_size=2, height=64, width=192, stereo=True)
  plain = _first(video.make_self_supervised_dataset(raw, **kwargs))
  flipped = _first(video.make_self_supervised_dataset(
      raw, augment_data=True, flip_probability=1.0, color_jitter_probability=0.0, **kwargs))
  b = np.float32(video.MONODEPTH2_STEREO_BASELINE)   # exact: the transform is stored in float32
  np.testing.assert_array_equal(plain["target_from_stereo"][:, 0, 3], [b, b])
  np.testing.assert_array_equal(flipped["target_from_stereo"][:, 0, 3], [-b, -b])
  np.testing.assert_array_equal(flipped["stereo_image"], plain["stereo_image"][:, :, ::-1])
  np.testing.assert_array_equal(flipped["stereo_image_aug"], flipped["stereo_image"])
  # With the true depth the flipped pair is explained by the negated transform only. Measured:
  # mean 0.027 / median 0.0014 with the right sign (the mean is the occlusion bands at depth
  # edges), 0.22 / 0.21 with the wrong one.
  for element in (plain, flipped):
    tx = float(element["target_from_stereo"][0, 0, 3])
    mean, median = _stereo_error(element, 0, tx)
    wrong_mean, _ = _stereo_error(element, 0, -tx)
    assert mean < 0.035 and median < 0.005, (tx, mean, median)
    assert wrong_mean > 0.15, (tx, wrong_mean)


def test_pipeline_jitters_the_stereo_partner_with_the_frames_draw_and_drops_it_unless_asked(
    stereo_clips):
  still = dict(stereo_clips[0])
  still["stereo_image"] = still["frames"][1]    # partner identical to the target
  raw = video.clips_to_dataset([still])
  e = _first(video.make_self_supervised_dataset(
      raw, batch_size=1, height=32, width=96, augment_data=True, flip_probability=0.0,
      color_jitter_probability=1.0, seed=3, stereo=True))
  assert np.abs(e["stereo_image_aug"] - e["stereo_image"]).max() > 0.01
  np.testing.assert_array_equal(e["stereo_image_aug"][0], e["frames_aug"][0, 1])  # one draw
  np.testing.assert_array_equal(e["stereo_image"][0], e["frames"][0, 1])           # un-jittered
  mono = _first(video.make_self_supervised_dataset(raw, batch_size=1, height=32, width=96))
  assert not set(video.STEREO_KEYS) & set(mono)
  with pytest.raises(InvalidInputError, match="stereo_image"):
    video.make_self_supervised_dataset(video.clips_to_dataset([stereo_clips[0]]), stereo=True,
                                       adapter=lambda x: video.synthetic_world_to_self_supervised(
                                           {k: v for k, v in x.items() if k != "stereo_image"}))
