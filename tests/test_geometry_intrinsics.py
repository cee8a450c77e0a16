"""Tests of tfdepth.geometry.intrinsics: K algebra, resize/crop/flip conventions, disparity maps."""

import numpy as np
import pytest
import tensorflow as tf

from tfdepth.errors import InvalidInputError
from tfdepth.geometry import camera
from tfdepth.geometry import intrinsics as intr

F32_EPS = float(np.finfo(np.float32).eps)
RNG_SEED = 0
# A point in front of the camera used to check K transforms by projecting it (metres).
POINT = (0.7, -0.3, 2.5)


def _project(k, point=POINT):
  """(u, v) of one camera-frame point under a single K (3, 3), via camera.project."""
  coords, _ = camera.project(tf.constant(point, tf.float32)[tf.newaxis, tf.newaxis, tf.newaxis],
                             tf.convert_to_tensor(k)[tf.newaxis])
  return coords.numpy()[0, 0, 0]


K_EXAMPLE = np.array([[200.0, 0.0, 63.0], [0.0, 180.0, 31.0], [0.0, 0.0, 1.0]], np.float32)


def test_make_and_split_round_trip_with_broadcasting():
  k = intr.make_intrinsics([100.0, 200.0], 50.0, 10.0, [5.0, 6.0])
  assert k.shape == (2, 3, 3)
  np.testing.assert_array_equal(
      k.numpy()[1], [[200.0, 0.0, 10.0], [0.0, 50.0, 6.0], [0.0, 0.0, 1.0]])
  fx, fy, cx, cy = intr.split_intrinsics(k)
  np.testing.assert_array_equal(np.stack([fx, fy, cx, cy], -1),
                                [[100, 50, 10, 5], [200, 50, 10, 6]])
  np.testing.assert_array_equal(intr.make_intrinsics(2.0, 3.0, 4.0, 5.0, skew=1.5).numpy(),
                                [[2.0, 1.5, 4.0], [0.0, 3.0, 5.0], [0.0, 0.0, 1.0]])


def test_invert_intrinsics_matches_numpy_with_skew():
  k = np.array([[[300.0, 2.5, 40.0], [0.0, 280.0, 30.0], [0.0, 0.0, 1.0]]], np.float32)
  np.testing.assert_allclose(intr.invert_intrinsics(k).numpy(),
                             np.linalg.inv(k.astype(np.float64)), rtol=4 * F32_EPS, atol=1e-9)


@pytest.mark.parametrize("convention", ["integer", "monodepth2"])
def test_scale_intrinsics_by_projecting_a_point(convention):
  u, v = _project(K_EXAMPLE)
  scaled = intr.scale_intrinsics(K_EXAMPLE, 0.5, 2.0, pixel_centers=convention)
  u2, v2 = _project(scaled[0] if scaled.shape.rank == 3 else scaled)
  if convention == "integer":
    # Pixel centres: a resize by s maps u -> (u + 0.5)·s - 0.5.
    expected = ((u + 0.5) * 0.5 - 0.5, (v + 0.5) * 2.0 - 0.5)
  else:
    expected = (u * 0.5, v * 2.0)  # Monodepth2: plain multiply
  # Projections ~100 px: a few ulp(128) = 1.5e-5.
  np.testing.assert_allclose([u2, v2], expected, rtol=0, atol=5e-5)


def test_scale_intrinsics_matches_tf_image_resize_of_a_spot():
  # A 2x upsample with tf.image.resize (half-pixel centres) moves a single bright pixel at column 3
  # to the centre between output columns 6 and 7, i.e. u' = 6.5 = (3 + 0.5)·2 - 0.5.
  row = np.zeros((1, 1, 8, 1), np.float32)
  row[0, 0, 3, 0] = 1.0
  up = tf.image.resize(row, (1, 16), method="bilinear").numpy()[0, 0, :, 0]
  centre = float(np.sum(up * np.arange(16)) / np.sum(up))
  k = intr.make_intrinsics(10.0, 10.0, 3.0, 0.0)  # principal point on that pixel
  cx_integer = float(intr.scale_intrinsics(k, 2.0, 1.0)[0, 2])
  cx_md2 = float(intr.scale_intrinsics(k, 2.0, 1.0, pixel_centers="monodepth2")[0, 2])
  assert centre == pytest.approx(6.5, abs=1e-6)
  assert cx_integer == 6.5
  assert cx_md2 == 6.0


def test_resize_and_crop_intrinsics():
  k = intr.make_intrinsics(100.0, 80.0, 31.5, 15.5)[tf.newaxis]
  resized = intr.resize_intrinsics(k, (32, 64), (16, 128)).numpy()[0]
  # sx = 2, sy = 0.5: cx = 32·2 - 0.5 = 63.5, cy = 16·0.5 - 0.5 = 7.5.
  np.testing.assert_array_equal(resized, [[200.0, 0.0, 63.5], [0.0, 40.0, 7.5], [0.0, 0.0, 1.0]])
  resized = intr.resize_intrinsics(k, tf.constant([32, 64]), (16, 128), "monodepth2").numpy()[0]
  np.testing.assert_array_equal(resized, [[200.0, 0.0, 63.0], [0.0, 40.0, 7.75], [0, 0, 1]])
  cropped = intr.crop_intrinsics(K_EXAMPLE, top=5, left=12)
  u, v = _project(K_EXAMPLE)
  np.testing.assert_allclose(_project(cropped), [u - 12, v - 5], atol=1e-5)  # ~ulp(64)


def test_flip_intrinsics_by_projecting_the_mirrored_point():
  width = 128
  u, v = _project(K_EXAMPLE)
  mirrored = (-POINT[0], POINT[1], POINT[2])
  flipped = intr.flip_intrinsics_horizontal(K_EXAMPLE, width)
  np.testing.assert_allclose(_project(flipped, mirrored), [width - 1 - u, v], atol=5e-5)
  flipped = intr.flip_intrinsics_horizontal(K_EXAMPLE, width, pixel_centers="monodepth2")
  np.testing.assert_allclose(_project(flipped, mirrored), [width - u, v], atol=5e-5)
  # Monodepth2's KITTI cx = 0.5·W is a fixed point of its W - cx rule.
  k = intr.denormalize_intrinsics(intr.KITTI_NORMALIZED_INTRINSICS, 192, 640)
  np.testing.assert_array_equal(
      intr.flip_intrinsics_horizontal(k, 640, pixel_centers="monodepth2").numpy(), k.numpy())
  # The flip of an actual image agrees with the integer rule: pixel u lands at W - 1 - u.
  img = np.arange(width, dtype=np.float32).reshape(1, 1, width, 1)
  assert tf.image.flip_left_right(img).numpy()[0, 0, 0, 0] == width - 1


def test_intrinsics_pyramid():
  k = intr.make_intrinsics(400.0, 300.0, 320.0, 96.0)
  pyr = intr.intrinsics_pyramid(k, 4)
  assert len(pyr) == 4
  for s, ks in enumerate(pyr):
    f = 2.0**s
    np.testing.assert_array_equal(ks.numpy(), [[400 / f, 0, 320 / f], [0, 300 / f, 96 / f],
                                               [0, 0, 1]])
  exact = intr.intrinsics_pyramid(k, 2, pixel_centers="integer")[1].numpy()
  np.testing.assert_array_equal(exact[:2, 2], [(320.0 + 0.5) / 2 - 0.5, (96.0 + 0.5) / 2 - 0.5])
  with pytest.raises(InvalidInputError, match="num_scales.*got 0"):
    intr.intrinsics_pyramid(k, 0)


def test_normalize_denormalize_and_kitti_constant():
  k = intr.denormalize_intrinsics(intr.KITTI_NORMALIZED_INTRINSICS, 192, 640).numpy()
  # Monodepth2 at 640x192: fx = 0.58·640, fy = 1.92·192, cx = 320, cy = 96 (float32 products).
  np.testing.assert_allclose(k, [[371.2, 0, 320], [0, 368.64, 96], [0, 0, 1]], rtol=F32_EPS)
  np.testing.assert_allclose(intr.normalize_intrinsics(k, 192, 640).numpy(),
                             intr.KITTI_NORMALIZED_INTRINSICS, rtol=F32_EPS)
  with pytest.raises(ValueError, match="read-only"):
    intr.KITTI_NORMALIZED_INTRINSICS[0, 0] = 1.0


def test_disp_to_depth_closed_form_and_inverse():
  sig = tf.constant([0.0, 0.5, 1.0])
  scaled, depth = intr.disp_to_depth(sig)
  # 1/100 + (1/0.1 - 1/100)·s: s = 0 -> 0.01 (100 m), s = 1 -> 10 (0.1 m), s = 0.5 -> 5.005.
  np.testing.assert_allclose(scaled.numpy(), [0.01, 5.005, 10.0], rtol=2 * F32_EPS)
  np.testing.assert_allclose(depth.numpy(), [100.0, 1 / 5.005, 0.1], rtol=2 * F32_EPS)
  rng = np.random.default_rng(RNG_SEED)
  d = rng.uniform(0.1, 100.0, 50).astype(np.float32)
  back = intr.disp_to_depth(intr.depth_to_disp(d))[1].numpy()
  np.testing.assert_allclose(back, d, rtol=1e-5)  # two reciprocals and an affine map, ~8 ulp
  _, depth = intr.disp_to_depth(0.25, min_depth=1.0, max_depth=10.0)
  assert float(depth) == pytest.approx(1.0 / (0.1 + 0.9 * 0.25), rel=F32_EPS)
  with pytest.raises(InvalidInputError, match="min_depth=5.*max_depth=1"):
    intr.disp_to_depth(sig, min_depth=5.0, max_depth=1.0)


def test_validate_intrinsics_eager_errors_name_the_value():
  good = intr.make_intrinsics(100.0, 90.0, 30.0, 20.0)
  np.testing.assert_array_equal(intr.validate_intrinsics(good).numpy(), good.numpy())
  with pytest.raises(InvalidInputError, match=r"fx=\[0.0\]"):
    intr.validate_intrinsics(intr.make_intrinsics([0.0], [90.0], [30.0], [20.0]))
  with pytest.raises(InvalidInputError, match=r"fy=-3.0"):
    intr.validate_intrinsics(intr.make_intrinsics(1.0, -3.0, 30.0, 20.0))
  with pytest.raises(InvalidInputError, match="finite.*nan"):
    intr.validate_intrinsics(intr.make_intrinsics(1.0, np.nan, 30.0, 20.0))
  with pytest.raises(InvalidInputError, match=r"last row.*\[0.0, 1.0, 1.0\]"):
    intr.validate_intrinsics(np.array([[1, 0, 0], [0, 1, 0], [0, 1, 1]], np.float32))
  with pytest.raises(InvalidInputError, match=r"shape \(\.\.\., 3, 3\).*\(3, 4\)"):
    intr.validate_intrinsics(tf.zeros([3, 4]))


def test_validate_intrinsics_in_graph_and_tf_data():
  @tf.function(input_signature=[tf.TensorSpec([None, 3, 3])])
  def check(k):
    return intr.validate_intrinsics(k)

  good = intr.make_intrinsics([100.0], [90.0], [30.0], [20.0])
  np.testing.assert_array_equal(check(good).numpy(), good.numpy())
  with pytest.raises(tf.errors.InvalidArgumentError, match="fx > 0"):
    check(intr.make_intrinsics([0.0], [90.0], [30.0], [20.0]))
  ds = tf.data.Dataset.from_tensor_slices(intr.make_intrinsics([5.0, -1.0], 2.0, 1.0, 1.0))
  ds = ds.map(intr.validate_intrinsics)
  it = iter(ds)
  assert float(next(it)[0, 0]) == 5.0
  with pytest.raises(tf.errors.InvalidArgumentError, match="-1"):
    next(it)


@pytest.mark.parametrize("jit", [False, True])
def test_ops_with_unknown_batch_in_tf_function(jit):
  k = intr.make_intrinsics([100.0, 120.0], [90.0, 95.0], [30.0, 31.0], [20.0, 21.0])

  @tf.function(jit_compile=jit, input_signature=[tf.TensorSpec([None, 3, 3])])
  def f(k):
    return (intr.scale_intrinsics(k, 0.5, 0.25), intr.flip_intrinsics_horizontal(k, 64),
            intr.crop_intrinsics(k, 3, 4), intr.invert_intrinsics(k),
            intr.normalize_intrinsics(k, 48, 64), *intr.intrinsics_pyramid(k, 3),
            intr.resize_intrinsics(k, (48, 64), (24, 32)),
            intr.make_intrinsics(*intr.split_intrinsics(k)),
            *intr.disp_to_depth(k[:, 0, 0] / 200.0), intr.depth_to_disp(k[:, 0, 0]))

  for e, g in zip(f.python_function(k), f(k)):
    np.testing.assert_allclose(g.numpy(), e.numpy(), rtol=F32_EPS)  # at most op reordering


def test_bad_arguments_raise_typed_errors():
  with pytest.raises(InvalidInputError, match="pixel_centers.*'corner'"):
    intr.scale_intrinsics(K_EXAMPLE, 2.0, 2.0, pixel_centers="corner")
  with pytest.raises(InvalidInputError, match="scale_x must be > 0, got 0"):
    intr.scale_intrinsics(K_EXAMPLE, 0, 2.0)
  with pytest.raises(InvalidInputError, match=r"intrinsics must have shape.*\(4, 4\)"):
    intr.split_intrinsics(tf.eye(4))
  with pytest.raises(InvalidInputError, match="width must be > 0, got -2"):
    intr.flip_intrinsics_horizontal(K_EXAMPLE, -2)
  with pytest.raises(InvalidInputError, match=r"from_hw.*\(0, 5\)"):
    intr.resize_intrinsics(K_EXAMPLE, (0, 5), (4, 4))
