"""Tests of tfdepth/data/video.py (self-supervised pipeline, simulated LiDAR) and
tfdepth/models/segdepth.py (segmentation head on the shared decoder, DispToDepth)."""

import math

import numpy as np
import pytest
import tensorflow as tf

from tfdepth.data import video
from tfdepth.errors import InvalidInputError
from tfdepth.models import monodepth2
from tfdepth.models import segdepth
from tfds_builders.synthetic_world import clips

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
