"""Tests of tfdepth.data: adapters, validation, joint augmentation, determinism, batching."""

import numpy as np
import pytest
import tensorflow as tf

from tfdepth import data
from tfdepth.data import adapters
from tfdepth.data import augment
from tfdepth.errors import InvalidInputError

H, W = 48, 64
FX, FY, CX, CY = 40.0, 44.0, 30.5, 22.0


def _k():
  return np.array([[FX, 0.0, CX], [0.0, FY, CY], [0.0, 0.0, 1.0]], np.float32)


def _ramp_element():
  """Image whose channels are linear in u and v (channel 2 = 0.5), depth with an invalid block."""
  u = np.arange(W, dtype=np.float32)[None, :].repeat(H, 0)
  v = np.arange(H, dtype=np.float32)[:, None].repeat(W, 1)
  image = np.stack([0.1 + 0.8 * u / (W - 1), 0.1 + 0.8 * v / (H - 1), np.full_like(u, 0.5)], -1)
  depth = (2.0 + u + 100.0 * v)[..., None]          # distinct value per pixel, metres
  depth[:10, :20] = 0.0                             # invalid block (sky)
  return {"image": tf.constant(image), "depth": tf.constant(depth.astype(np.float32)),
          "intrinsics": tf.constant(_k())}


def _synthetic_examples(n, seed=0):
  rng = np.random.default_rng(seed)
  return {
      "frames": rng.integers(0, 256, (n, 3, H, W, 3)).astype(np.uint8),
      "depth": rng.uniform(0.5, 50.0, (n, H, W, 1)).astype(np.float32),
      "intrinsics": np.tile(_k(), (n, 1, 1)),
      "target_from_source": np.tile(np.eye(4, dtype=np.float32), (n, 2, 1, 1)),
      "semantic": rng.integers(0, 5, (n, H, W, 1)).astype(np.uint8),
  }


def _project(k, point):
  p = k @ point
  return p[0] / p[2], p[1] / p[2]


def _bilinear(image, u, v):
  """Samples image (H, W, C) at pixel-centre coordinates (u, v) bilinearly."""
  u0, v0 = int(np.floor(u)), int(np.floor(v))
  a, b = u - u0, v - v0
  return ((1 - a) * (1 - b) * image[v0, u0] + a * (1 - b) * image[v0, u0 + 1]
          + (1 - a) * b * image[v0 + 1, u0] + a * b * image[v0 + 1, u0 + 1])


def test_synthetic_world_adapter_uses_centre_frame_scaled_to_unit_range():
  ex = {k: v[0] for k, v in _synthetic_examples(1).items()}
  el = adapters.synthetic_world_to_supervised(ex)
  np.testing.assert_array_equal(el["image"].numpy(), ex["frames"][1].astype(np.float32) / 255.0)
  np.testing.assert_array_equal(el["depth"].numpy(), ex["depth"])
  assert el["image"].dtype == tf.float32 and el["intrinsics"].shape == (3, 3)
  video = adapters.synthetic_world_to_video(ex)
  assert video["frames"].shape == (3, H, W, 3)
  assert float(tf.reduce_max(video["frames"])) <= 1.0


def test_flip_twice_is_identity():
  el = _ramp_element()
  el["target_from_source"] = tf.constant(np.stack([
      np.array([[0.0, -1.0, 0.0, 0.3], [1.0, 0.0, 0.0, -0.2], [0.0, 0.0, 1.0, 1.5],
                [0.0, 0.0, 0.0, 1.0]], np.float32)] * 2))
  once = data.flip_horizontal(el)
  twice = data.flip_horizontal(once)
  for key in ("image", "depth", "intrinsics", "target_from_source"):
    np.testing.assert_array_equal(twice[key].numpy(), el[key].numpy())
  # One flip: column u goes to W - 1 - u, cx' = W - 1 - cx (integer pixel centres), fx unchanged.
  np.testing.assert_array_equal(once["image"].numpy()[:, 0], el["image"].numpy()[:, W - 1])
  assert once["intrinsics"].numpy()[0, 2] == pytest.approx(W - 1 - CX)
  assert once["intrinsics"].numpy()[0, 0] == pytest.approx(FX)
  # Mirrored pose: translation x and the rotation's off-diagonal x terms change sign.
  assert once["target_from_source"].numpy()[0, 0, 3] == pytest.approx(-0.3)
  assert once["target_from_source"].numpy()[0, 0, 1] == pytest.approx(1.0)


@pytest.mark.parametrize("flip", [0.0, 1.0])
@pytest.mark.parametrize("seed", [1, 7, 42])
def test_projected_point_lands_on_same_content_after_crop_resize_flip(flip, seed):
  el = _ramp_element()
  out_h, out_w = 40, 80   # different size and aspect ratio than the 48x64 source
  out = data.augment_supervised(el, tf.constant([seed, 3]), out_h, out_w, min_crop_fraction=0.6,
                                flip_probability=flip, color_jitter_probability=0.0)
  assert out["image"].shape == (out_h, out_w, 3) and out["depth"].shape == (out_h, out_w, 1)
  k_new = out["intrinsics"].numpy()
  checked = 0
  for point in (np.array([0.3, -0.2, 5.0]), np.array([-0.1, 0.15, 4.0]), np.array([0.0, 0.0, 8.0])):
    u, v = _project(_k(), point)
    mirrored = point * np.array([-1.0 if flip else 1.0, 1.0, 1.0])
    u2, v2 = _project(k_new, mirrored)
    if not (1 <= u2 <= out_w - 2 and 1 <= v2 <= out_h - 2):
      continue  # the crop removed this point
    expected = _bilinear(el["image"].numpy(), u, v)
    got = _bilinear(out["image"].numpy(), u2, v2)
    # Linear ramps are reproduced exactly by bilinear sampling and (antialiased) resizing away
    # from the borders; 1e-4 covers float32 rounding of K and of the resize weights.
    np.testing.assert_allclose(got, expected, atol=1e-4)
    checked += 1
  assert checked >= 1


def test_depth_resize_never_blends_invalid_zeros():
  el = _ramp_element()
  out = data.augment_supervised(el, tf.constant([5, 5]), 37, 53, min_crop_fraction=0.5,
                                color_jitter_probability=0.0)
  values = set(np.unique(out["depth"].numpy()).tolist())
  source = set(np.unique(el["depth"].numpy()).tolist())
  assert values <= source          # nearest neighbour: only existing depths (and exact zeros)


def test_color_jitter_changes_image_only_and_matches_closed_forms():
  el = _ramp_element()
  img = el["image"]
  # brightness b only: x * b.
  np.testing.assert_allclose(augment.adjust_color(img, 1.1, 1.0, 1.0, 0.0).numpy(),
                             np.clip(img.numpy() * 1.1, 0, 1), atol=1e-6)
  # saturation 0: every channel equals the BT.601 grey level.
  grey = (img.numpy() * np.array(augment.LUMA_WEIGHTS, np.float32)).sum(-1)
  out = augment.adjust_color(img, 1.0, 1.0, 0.0, 0.0).numpy()
  np.testing.assert_allclose(out, np.repeat(grey[..., None], 3, -1), atol=1e-6)
  # contrast 0: a flat image at the mean grey level.
  out = augment.adjust_color(img, 1.0, 0.0, 1.0, 0.0).numpy()
  np.testing.assert_allclose(out, np.full_like(out, grey.mean()), atol=1e-6)
  # With probability 1, only the image changes; K and depth are those of the geometric ops alone.
  seed = tf.constant([2, 9])
  jit = data.augment_supervised(el, seed, 48, 64, color_jitter_probability=1.0)
  plain = data.augment_supervised(el, seed, 48, 64, color_jitter_probability=0.0)
  np.testing.assert_array_equal(jit["depth"].numpy(), plain["depth"].numpy())
  np.testing.assert_array_equal(jit["intrinsics"].numpy(), plain["intrinsics"].numpy())
  assert np.abs(jit["image"].numpy() - plain["image"].numpy()).max() > 1e-3


def test_pipeline_is_deterministic_given_seed_and_varies_with_seed():
  ds = tf.data.Dataset.from_tensor_slices(_synthetic_examples(6))

  def take(seed):
    pipe = data.make_supervised_dataset(ds, batch_size=2, height=32, width=48, training=True,
                                        seed=seed)
    return [b for b in pipe.take(5)]

  a, b, c = take(3), take(3), take(4)
  for x, y in zip(a, b):
    for key in x:
      np.testing.assert_array_equal(x[key].numpy(), y[key].numpy())
  assert any(not np.array_equal(x["image"].numpy(), z["image"].numpy()) for x, z in zip(a, c))


def test_batching_and_drop_remainder():
  ds = tf.data.Dataset.from_tensor_slices(_synthetic_examples(10))
  ev = data.make_supervised_dataset(ds, batch_size=4, training=False)
  assert [int(b["image"].shape[0]) for b in ev] == [4, 4, 2]
  assert ev.element_spec["image"].shape.as_list() == [None, H, W, 3]
  tr = data.make_supervised_dataset(ds, batch_size=4, height=32, width=32, training=True,
                                    repeat=False)
  assert tr.element_spec["image"].shape.as_list() == [4, 32, 32, 3]   # static for TPU / XLA
  assert len(list(tr)) == 2


def test_invalid_depth_is_masked_or_raises():
  ex = _synthetic_examples(1)
  ex["depth"][0, 0, :3, 0] = [np.nan, np.inf, -1.0]
  ds = tf.data.Dataset.from_tensor_slices(ex)
  b = next(iter(data.make_supervised_dataset(ds, batch_size=1)))
  np.testing.assert_array_equal(b["depth"].numpy()[0, 0, :3, 0], [0.0, 0.0, 0.0])
  np.testing.assert_array_equal(b["depth"].numpy()[0, 0, 3:, 0], ex["depth"][0, 0, 3:, 0])
  strict = data.make_supervised_dataset(ds, batch_size=1, invalid_depth="raise")
  with pytest.raises(tf.errors.InvalidArgumentError, match="NaN/inf/negative"):
    next(iter(strict))


def test_wrong_shapes_and_dtypes_raise_typed_errors():
  good = {"image": tf.zeros([H, W, 3]), "depth": tf.zeros([H, W, 1]), "intrinsics": _k()}
  with pytest.raises(InvalidInputError, match=r"image expected shape \(H, W, 3\)"):
    adapters.validate_supervised_element({**good, "image": tf.zeros([H, W, 4])})
  with pytest.raises(InvalidInputError, match="depth expected a float dtype"):
    adapters.validate_supervised_element({**good, "depth": tf.zeros([H, W, 1], tf.int32)})
  with pytest.raises(InvalidInputError, match="same"):
    adapters.validate_supervised_element({**good, "depth": tf.zeros([H, W + 1, 1])})
  with pytest.raises(InvalidInputError, match="intrinsics"):
    adapters.validate_supervised_element({**good, "intrinsics": tf.zeros([3, 4])})
  with pytest.raises(InvalidInputError, match="expected keys"):
    adapters.validate_supervised_element({"image": good["image"]})
  with pytest.raises(InvalidInputError, match="batch_size"):
    data.make_supervised_dataset(tf.data.Dataset.from_tensor_slices(_synthetic_examples(2)),
                                 batch_size=0)
  # 2-D depth is accepted and gets its channel axis.
  el = adapters.validate_supervised_element({**good, "depth": tf.ones([H, W])})
  assert el["depth"].shape == (H, W, 1)


def test_video_pipeline_shares_one_draw_across_frames():
  ex = _synthetic_examples(2)
  ex["frames"][:, 1] = ex["frames"][:, 0]   # frames 0 and 1 identical before augmentation
  ds = tf.data.Dataset.from_tensor_slices(ex)
  b = next(iter(data.make_video_dataset(ds, batch_size=2, height=32, width=48, training=True,
                                        seed=1)))
  assert b["frames"].shape == (2, 3, 32, 48, 3)
  assert b["target_from_source"].shape == (2, 2, 4, 4)
  np.testing.assert_array_equal(b["frames"][:, 0].numpy(), b["frames"][:, 1].numpy())
  np.testing.assert_array_equal(b["frames_aug"][:, 0].numpy(), b["frames_aug"][:, 1].numpy())


def test_video_pipeline_jitters_only_the_networks_copy_of_the_frames():
  # No crop (fraction 1), no flip, same size, jitter always: `frames` are the input frames (the
  # photometric loss must compare un-jittered images), `frames_aug` the jittered ones.
  ex = _synthetic_examples(2)
  ds = tf.data.Dataset.from_tensor_slices(ex)
  b = next(iter(data.make_video_dataset(
      ds, batch_size=2, height=H, width=W, training=True, seed=1, min_crop_fraction=1.0,
      flip_probability=0.0, color_jitter_probability=1.0)))
  raw = ex["frames"].astype(np.float32) / 255.0
  # The shuffle may reorder the two clips: compare each output clip with the nearest raw one.
  for clip in b["frames"].numpy():
    assert min(np.max(np.abs(clip - r)) for r in raw) < 1e-6
  assert np.max(np.abs(b["frames_aug"].numpy() - b["frames"].numpy())) > 0.01


def test_video_pipeline_without_depth_or_poses():
  # A user's clips with frames and intrinsics only (depth is optional for self-supervision).
  ex = _synthetic_examples(2)
  ds = tf.data.Dataset.from_tensor_slices({"frames": ex["frames"],
                                           "intrinsics": ex["intrinsics"]})
  b = next(iter(data.make_video_dataset(ds, batch_size=2, height=32, width=48, training=True,
                                        seed=1)))
  assert sorted(b) == ["frames", "frames_aug", "intrinsics"]
  assert b["frames"].shape == (2, 3, 32, 48, 3)
  with pytest.raises(InvalidInputError, match=r"keys \['frames'\] to a video element; expected "
                                              r"\('frames', 'intrinsics'\)"):
    data.make_video_dataset(tf.data.Dataset.from_tensor_slices({"frames": ex["frames"]}))


def test_nyu_adapter_supplies_the_kinect_intrinsics_scaled_to_the_image():
  adapter = adapters.get_adapter("nyu_depth_v2_labeled")
  full = adapter({"image": tf.zeros([480, 640, 3], tf.uint8), "depth": tf.ones([480, 640, 1])})
  k = full["intrinsics"].numpy()
  np.testing.assert_allclose(k[[0, 1, 0, 1], [0, 1, 2, 2]],
                             [adapters.NYU_RGB_FX, adapters.NYU_RGB_FY, adapters.NYU_RGB_CX,
                              adapters.NYU_RGB_CY], rtol=1e-6)
  # Half size: f halves, c maps as (c + 0.5) / 2 - 0.5 (integer pixel centres).
  half = adapter({"image": tf.zeros([240, 320, 3], tf.uint8), "depth": tf.ones([240, 320, 1])})
  np.testing.assert_allclose(half["intrinsics"].numpy()[0, [0, 2]],
                             [adapters.NYU_RGB_FX / 2, (adapters.NYU_RGB_CX + 0.5) / 2 - 0.5],
                             rtol=1e-6)
  assert adapters.get_adapter("kitti_depth/eigen") is adapters.generic_to_supervised
