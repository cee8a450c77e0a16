"""Tests of tfdepth.geometry.camera: grids, (back)projection, bilinear sampling, view synthesis."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfdepth.errors import InvalidInputError
from tfdepth.geometry import camera
from tfdepth.geometry import intrinsics as intr
from tfdepth.geometry import pose as pose_lib

# Float32 machine epsilon; tolerances below are multiples of ulp(x) = |x|·F32_EPS.
F32_EPS = float(np.finfo(np.float32).eps)
RNG_SEED = 0


def _k(fx, fy, cx, cy, batch=1):
  return tf.tile(intr.make_intrinsics(fx, fy, cx, cy)[tf.newaxis], [batch, 1, 1])


def _translation_pose(t, batch=1):
  m = np.tile(np.eye(4, dtype=np.float32), (batch, 1, 1))
  m[:, :3, 3] = t
  return tf.constant(m)


def test_pixel_grid_values_and_dynamic_size():
  grid = camera.pixel_grid(2, 3).numpy()
  assert grid.shape == (2, 3, 2)
  np.testing.assert_array_equal(grid[..., 0], [[0, 1, 2], [0, 1, 2]])  # u = column
  np.testing.assert_array_equal(grid[..., 1], [[0, 0, 0], [1, 1, 1]])  # v = row

  @tf.function(input_signature=[tf.TensorSpec([], tf.int32), tf.TensorSpec([], tf.int32)])
  def dynamic(h, w):
    return camera.pixel_grid(h, w)

  np.testing.assert_array_equal(dynamic(tf.constant(2), tf.constant(3)).numpy(), grid)
  with pytest.raises(InvalidInputError, match="height.*got 0"):
    camera.pixel_grid(0, 3)


def test_backproject_hand_computed():
  # fx=2, fy=4, cx=1, cy=0.5; pixel (u=2, v=1) at depth 3:
  # x = 3·(2-1)/2 = 1.5, y = 3·(1-0.5)/4 = 0.375, z = 3. All values are exact in float32.
  depth = np.zeros((1, 2, 3, 1), np.float32)
  depth[0, 1, 2, 0] = 3.0
  points = camera.backproject(depth, _k(2.0, 4.0, 1.0, 0.5)).numpy()
  np.testing.assert_array_equal(points[0, 1, 2], [1.5, 0.375, 3.0])
  np.testing.assert_array_equal(points[0, 0, 0], [0.0, 0.0, 0.0])  # depth 0 -> camera centre


def test_backproject_matches_inverse_k_with_skew():
  rng = np.random.default_rng(RNG_SEED)
  k = np.array([[[300.0, 2.5, 40.0], [0.0, 280.0, 30.0], [0.0, 0.0, 1.0]],
                [[150.0, 0.0, 20.5], [0.0, 160.0, 11.0], [0.0, 0.0, 1.0]]], np.float32)
  depth = rng.uniform(0.5, 80.0, (2, 4, 5, 1)).astype(np.float32)
  points = camera.backproject(depth, k).numpy()
  v, u = np.mgrid[0:4, 0:5]
  homog = np.stack([u, v, np.ones_like(u)], -1).astype(np.float64)
  expected = np.einsum("bij,hwj->bhwi", np.linalg.inv(k.astype(np.float64)), homog) * depth
  # A few float32 roundings of values up to 80·(5/150) m: relative 1e-6 is ~8 ulp.
  np.testing.assert_allclose(points, expected, rtol=1e-6, atol=1e-6)


def test_project_hand_computed_and_monodepth2_eps():
  k = _k(100.0, 50.0, 10.0, 20.0)
  # (1, 2, 4): u = 100·1/4 + 10 = 35, v = 50·2/4 + 20 = 45; 4 + 1e-7 rounds to 4 in float32.
  points = tf.constant([[[[1.0, 2.0, 4.0], [1.0, 0.0, 0.0]]]])
  coords, z = camera.project(points, k)
  np.testing.assert_array_equal(coords.numpy()[0, 0, 0], [35.0, 45.0])
  np.testing.assert_array_equal(z.numpy()[0, 0, :, 0], [4.0, 0.0])
  # z = 0: the division is by exactly eps = 1e-7 (Monodepth2), u = 100·1/1e-7 = 1e9.
  np.testing.assert_allclose(coords.numpy()[0, 0, 1], [100.0 / camera.PROJECTION_EPS, 0.0],
                             rtol=4 * F32_EPS)


def test_project_of_backproject_is_pixel_grid():
  rng = np.random.default_rng(RNG_SEED)
  h, w = 8, 16
  k = intr.denormalize_intrinsics(intr.KITTI_NORMALIZED_INTRINSICS, h, w)[tf.newaxis]
  k = tf.tile(k, [3, 1, 1])
  depth = rng.uniform(0.5, 80.0, (3, h, w, 1)).astype(np.float32)
  coords, z = camera.project(camera.backproject(depth, k), k)
  grid = camera.pixel_grid(h, w).numpy()
  # Error = eps shift u·1e-7/z (<= 15·1e-7/0.5 = 3e-6) + a few ulp(16) = 1.9e-6 of roundoff.
  np.testing.assert_allclose(coords.numpy(), np.broadcast_to(grid, coords.shape), rtol=0,
                             atol=1.5e-5)
  np.testing.assert_array_equal(z.numpy(), depth)  # z = depth·1 exactly


def test_transform_points_hand_computed():
  # Rotation by +90° about z (x -> y) then t = (1, 2, 3): (1, 0, 0) -> (0, 1, 0) + t = (1, 3, 3).
  m = np.eye(4, dtype=np.float32)
  m[:3, :3] = [[0, -1, 0], [1, 0, 0], [0, 0, 1]]
  m[:3, 3] = [1, 2, 3]
  points = tf.constant([[[[1.0, 0.0, 0.0], [0.0, 0.0, 5.0]]]])
  out = camera.transform_points(points, m[np.newaxis]).numpy()
  np.testing.assert_array_equal(out[0, 0], [[1.0, 3.0, 3.0], [1.0, 2.0, 8.0]])
  # Also (B, N, 3) point lists.
  out2 = camera.transform_points(points[:, 0], m[np.newaxis]).numpy()
  np.testing.assert_array_equal(out2, out[:, 0])


def test_bilinear_sample_identity_is_exact():
  rng = np.random.default_rng(RNG_SEED)
  image = rng.uniform(0, 1, (2, 5, 7, 3)).astype(np.float32)
  grid = np.broadcast_to(camera.pixel_grid(5, 7).numpy(), (2, 5, 7, 2))
  sampled, valid = camera.bilinear_sample(image, grid)
  np.testing.assert_array_equal(sampled.numpy(), image)  # bit exact
  np.testing.assert_array_equal(valid.numpy(), np.ones((2, 5, 7, 1)))


def test_bilinear_sample_hand_computed_and_gradients():
  image = tf.constant([[[[0.0], [1.0]], [[2.0], [3.0]]]])  # I(u, v) = u + 2v on the 2x2 grid
  coords = tf.constant([[[[0.5, 0.5], [0.25, 0.0], [1.0, 0.75], [-3.0, 9.0]]]])
  with tf.GradientTape(persistent=True) as tape:
    tape.watch([image, coords])
    sampled, valid = camera.bilinear_sample(image, coords)
    total = tf.reduce_sum(sampled)
  # Bilinear interpolation of a bilinear function is exact; (-3, 9) is clamped to (0, 1) -> 2.
  np.testing.assert_array_equal(sampled.numpy()[0, 0, :, 0], [1.5, 0.25, 2.5, 2.0])
  np.testing.assert_array_equal(valid.numpy()[0, 0, :, 0], [1, 1, 1, 0])
  # dI/du = 1, dI/dv = 2 inside; clamped coordinates get zero gradient.
  np.testing.assert_array_equal(tape.gradient(total, coords).numpy()[0, 0],
                                [[1.0, 2.0], [1.0, 2.0], [1.0, 2.0], [0.0, 0.0]])
  # d total / d image = sum of the bilinear weights per pixel:
  # (0.5,0.5): .25 each; (0.25,0): .75 to (0,0), .25 to (1,0); (1,.75): .25 (1,0), .75 (1,1);
  # clamped (0,1): 1 to (0,1).
  np.testing.assert_allclose(tape.gradient(total, image).numpy()[0, :, :, 0],
                             [[1.0, 0.75], [1.25, 1.0]], rtol=0, atol=F32_EPS)


def test_bilinear_sample_matches_keras_map_coordinates():
  rng = np.random.default_rng(RNG_SEED)
  b, h, w, c = 2, 6, 9, 2
  image = rng.uniform(0, 1, (b, h, w, c)).astype(np.float32)
  interior = rng.uniform([0, 0], [w - 1, h - 1], (b, 4, 5, 2))
  border = rng.uniform([-4, -4], [w + 3, h + 3], (b, 4, 5, 2))  # many outside the image
  edges = np.array([[-0.5, 0], [w - 1, h - 1], [w - 0.5, 2.5], [3.25, -1e3], [1e6, 1e6]])
  edges = np.broadcast_to(edges[np.newaxis, np.newaxis], (b, 1, 5, 2))
  coords = np.concatenate([interior, border, edges], axis=1).astype(np.float32)
  sampled, valid = camera.bilinear_sample(image, coords)
  expected = np.zeros(coords.shape[:-1] + (c,), np.float32)
  for i in range(b):
    for ch in range(c):
      expected[i, ..., ch] = keras.ops.convert_to_numpy(keras.ops.image.map_coordinates(
          image[i, :, :, ch], [coords[i, ..., 1], coords[i, ..., 0]], order=1,
          fill_mode="nearest"))
  # Same interpolation up to float32 rounding of weights times values in [0, 1].
  np.testing.assert_allclose(sampled.numpy(), expected, rtol=0, atol=4 * F32_EPS)
  u, v = coords[..., 0], coords[..., 1]
  inside = (u >= 0) & (u <= w - 1) & (v >= 0) & (v <= h - 1)
  np.testing.assert_array_equal(valid.numpy()[..., 0], inside.astype(np.float32))


def test_bilinear_sample_valid_boundaries_and_tolerance():
  image = tf.zeros([1, 3, 4, 1])
  coords = tf.constant([[[[0.0, 0.0], [3.0, 2.0], [3.001, 2.0], [-0.001, 1.0], [1.0, 2.001]]]])
  _, valid = camera.bilinear_sample(image, coords)
  np.testing.assert_array_equal(valid.numpy()[0, 0, :, 0], [1, 1, 0, 0, 0])  # inclusive bounds
  _, valid = camera.bilinear_sample(image, coords, valid_tolerance=0.01)
  np.testing.assert_array_equal(valid.numpy()[0, 0, :, 0], [1, 1, 1, 1, 1])


def test_bilinear_sample_other_output_size_and_bad_inputs():
  image = tf.reshape(tf.range(12, dtype=tf.float32), [1, 3, 4, 1])
  coords = tf.constant([[[[1.5, 1.0]]]])  # between 5 and 6
  sampled, _ = camera.bilinear_sample(image, coords)
  assert sampled.shape == (1, 1, 1, 1)
  assert float(sampled[0, 0, 0, 0]) == 5.5
  with pytest.raises(InvalidInputError, match=r"image must have rank 4.*\(3, 4, 1\)"):
    camera.bilinear_sample(image[0], coords)
  with pytest.raises(InvalidInputError, match=r"coords must have shape.*\(1, 1, 1, 3\)"):
    camera.bilinear_sample(image, tf.zeros([1, 1, 1, 3]))
  with pytest.raises(InvalidInputError, match="must agree"):
    camera.bilinear_sample(image, tf.zeros([2, 1, 1, 2]))
  with pytest.raises(InvalidInputError, match="floating-point.*got dtype bool"):
    camera.bilinear_sample(image, tf.zeros([1, 1, 1, 2], tf.int32) > 0)


def test_warp_identity_returns_source_exactly_with_dyadic_values():
  # fx = fy = 8, cx = 3.5, cy = 2 and depths >= 2 with few mantissa bits: every product is exact
  # and z + 1e-7 rounds to z, so the reprojection lands exactly on the pixel centres.
  rng = np.random.default_rng(RNG_SEED)
  image = rng.uniform(0, 1, (2, 5, 8, 3)).astype(np.float32)
  depth = rng.choice([2.0, 2.5, 3.0, 4.0, 6.0, 8.0, 24.0], (2, 5, 8, 1)).astype(np.float32)
  k = _k(8.0, 8.0, 3.5, 2.0, batch=2)
  warped, valid = camera.warp_image(image, depth, pose_lib.identity_pose(2), k)
  np.testing.assert_array_equal(warped.numpy(), image)
  np.testing.assert_array_equal(valid.numpy(), np.ones((2, 5, 8, 1)))


def test_warp_identity_returns_source_for_any_depth():
  rng = np.random.default_rng(RNG_SEED)
  h, w = 16, 48
  image = rng.uniform(0, 1, (2, h, w, 3)).astype(np.float32)
  depth = rng.uniform(intr.MONODEPTH2_MIN_DEPTH, 80.0, (2, h, w, 1)).astype(np.float32)
  k = tf.tile(intr.denormalize_intrinsics(intr.KITTI_NORMALIZED_INTRINSICS, h, w)[tf.newaxis],
              [2, 1, 1])
  warped, valid = camera.warp_image(image, depth, pose_lib.identity_pose(2), k)
  # Coordinates move by the eps shift u·1e-7/z <= 47·1e-7/0.1 = 4.7e-5 px plus a few ulp(47)
  # (3.8e-6 each); values in [0, 1] change by at most that times the pixel step (<= 1).
  np.testing.assert_allclose(warped.numpy(), image, rtol=0, atol=1e-4)
  np.testing.assert_array_equal(valid.numpy(), np.ones((2, h, w, 1)))


def test_warp_pure_x_translation_shifts_by_f_t_over_z():
  # p_source = p_target + (t, 0, 0): u_s = u + fx·t/z = u + 8·1/4 = u + 2 (exact in float32).
  rng = np.random.default_rng(RNG_SEED)
  image = rng.uniform(0, 1, (1, 3, 7, 2)).astype(np.float32)
  depth = np.full((1, 3, 7, 1), 4.0, np.float32)
  k = _k(8.0, 8.0, 3.0, 1.0)
  warped, valid = camera.warp_image(image, depth, _translation_pose([1.0, 0.0, 0.0]), k)
  np.testing.assert_array_equal(warped.numpy()[:, :, :5], image[:, :, 2:])
  np.testing.assert_array_equal(warped.numpy()[:, :, 5:], np.repeat(image[:, :, 6:], 2, axis=2))
  np.testing.assert_array_equal(valid.numpy()[0, :, :, 0], np.tile([1, 1, 1, 1, 1, 0, 0], (3, 1)))
  # t = -0.25: shift -0.5 px -> mean of the two neighbours; column 0 lands at -0.5 (invalid).
  warped, valid = camera.warp_image(image, depth, _translation_pose([-0.25, 0.0, 0.0]), k)
  np.testing.assert_allclose(warped.numpy()[:, :, 1:], 0.5 * (image[:, :, :-1] + image[:, :, 1:]),
                             rtol=0, atol=F32_EPS)
  np.testing.assert_array_equal(valid.numpy()[0, :, :, 0], np.tile([0, 1, 1, 1, 1, 1, 1], (3, 1)))


def test_warp_marks_points_behind_source_camera_invalid():
  image = tf.ones([1, 2, 3, 1])
  depth = np.array([[[[5.0], [2.0], [0.0]], [[3.5], [1.0], [3.0]]]], np.float32)
  k = _k(1.0, 1.0, 1.0, 0.5)
  # z_source = depth - 3: in front only where depth > 3 (z = 0.5 and 2 -> valid).
  _, valid = camera.warp_image(image, depth, _translation_pose([0.0, 0.0, -3.0]), k,
                               valid_tolerance=1e3)  # tolerance: test only the z condition
  np.testing.assert_array_equal(valid.numpy()[0, :, :, 0], [[1, 0, 0], [1, 0, 0]])


def test_reproject_with_source_intrinsics_of_other_resolution():
  # Source image at half resolution, K scaled with integer pixel centres: the identity pose maps
  # target pixel u to (u + 0.5)/2 - 0.5 in source pixels (exact for these dyadic values).
  k = _k(8.0, 8.0, 3.5, 1.5)
  k_half = intr.scale_intrinsics(k, 0.5, 0.5, pixel_centers="integer")
  depth = np.full((1, 4, 8, 1), 2.0, np.float32)
  coords, z = camera.reproject_coords(depth, pose_lib.identity_pose(1), k, k_half)
  grid = camera.pixel_grid(4, 8).numpy()
  np.testing.assert_array_equal(coords.numpy()[0], (grid + 0.5) / 2 - 0.5)
  np.testing.assert_array_equal(z.numpy(), depth)


def test_warp_gradients_are_finite_in_degenerate_cases():
  rng = np.random.default_rng(RNG_SEED)
  image = tf.constant(rng.uniform(0, 1, (2, 4, 6, 3)).astype(np.float32))
  depth_np = rng.uniform(0.5, 5.0, (2, 4, 6, 1)).astype(np.float32)
  depth_np[:, 0] = 0.0  # zero depth (invalid ground truth)
  depth_np[:, 1] = 1e-8  # nearly at the camera centre
  depth = tf.constant(depth_np)
  pose = np.tile(np.eye(4, dtype=np.float32), (2, 1, 1))
  pose[0, :3, 3] = [0.3, -0.1, -2.0]  # points with depth < 2 end up behind the source camera
  pose[1, :3, 3] = [500.0, 0.0, 0.2]  # coordinates far outside the image
  pose = tf.constant(pose)
  k = _k(5.0, 5.0, 2.5, 1.5, batch=2)
  with tf.GradientTape() as tape:
    tape.watch([image, depth, pose])
    warped, valid = camera.warp_image(image, depth, pose, k)
    loss = tf.reduce_sum(tf.abs(warped - image) * valid) + tf.reduce_sum(warped)
  grads = tape.gradient(loss, [image, depth, pose])
  for g in grads:
    assert np.all(np.isfinite(g.numpy()))
  assert np.any(grads[1].numpy() != 0)  # depth does receive gradient
  assert float(tf.reduce_sum(valid[1])) == 0.0  # all of image 1 leaves the frame


@pytest.mark.parametrize("jit", [False, True])
def test_ops_in_tf_function_with_unknown_batch_match_eager(jit):
  rng = np.random.default_rng(RNG_SEED)
  h, w = 6, 10
  image = rng.uniform(0, 1, (3, h, w, 3)).astype(np.float32)
  depth = rng.uniform(1.0, 10.0, (3, h, w, 1)).astype(np.float32)
  pose = pose_lib.pose_from_axis_angle_translation(
      rng.normal(0, 0.02, (3, 3)).astype(np.float32),
      rng.normal(0, 0.1, (3, 3)).astype(np.float32)).numpy()
  k = _k(6.0, 6.0, 5.0, 3.0, batch=3).numpy()

  @tf.function(jit_compile=jit, input_signature=[
      tf.TensorSpec([None, h, w, 3]), tf.TensorSpec([None, h, w, 1]),
      tf.TensorSpec([None, 4, 4]), tf.TensorSpec([None, 3, 3])])
  def graph(image, depth, pose, k):
    warped, valid = camera.warp_image(image, depth, pose, k)
    coords, z = camera.reproject_coords(depth, pose, k)
    sampled, svalid = camera.bilinear_sample(image, coords)
    grid = camera.pixel_grid(tf.shape(depth)[1], tf.shape(depth)[2])
    return warped, valid, coords, z, sampled, svalid, grid

  eager = graph.python_function(image, depth, pose, k)
  traced = graph(image, depth, pose, k)
  assert traced[0].shape == (3, h, w, 3)
  for e, t in zip(eager, traced):
    # XLA may fuse/reorder float ops: allow a few ulp of coordinates up to ~10 px.
    np.testing.assert_allclose(t.numpy(), e.numpy(), rtol=1e-5, atol=1e-5)


def test_bad_shapes_raise_typed_errors_naming_the_value():
  k = _k(1.0, 1.0, 0.0, 0.0)
  with pytest.raises(InvalidInputError, match=r"depth must have rank 4.*\(4, 5, 1\)"):
    camera.backproject(tf.ones([4, 5, 1]), k)
  with pytest.raises(InvalidInputError, match=r"depth must have shape.*\(1, 4, 5, 2\)"):
    camera.backproject(tf.ones([1, 4, 5, 2]), k)
  with pytest.raises(InvalidInputError, match=r"intrinsics must have rank 3.*\(3, 3\)"):
    camera.backproject(tf.ones([1, 4, 5, 1]), k[0])
  with pytest.raises(InvalidInputError, match=r"must agree.*got 2 and 1"):
    camera.backproject(tf.ones([2, 4, 5, 1]), k)
  with pytest.raises(InvalidInputError, match=r"a_from_b must have shape.*\(1, 3, 4\)"):
    camera.transform_points(tf.ones([1, 4, 5, 3]), tf.ones([1, 3, 4]))
  with pytest.raises(InvalidInputError, match=r"points must have shape.*\(1, 4, 5, 4\)"):
    camera.project(tf.ones([1, 4, 5, 4]), k)


def test_warp_gradients_under_jit_match_eager():
  rng = np.random.default_rng(RNG_SEED)
  h, w = 4, 6
  image = rng.uniform(0, 1, (2, h, w, 3)).astype(np.float32)
  depth = rng.uniform(1.0, 5.0, (2, h, w, 1)).astype(np.float32)
  pose = pose_lib.pose_from_axis_angle_translation(
      rng.normal(0, 0.05, (2, 3)).astype(np.float32),
      rng.normal(0, 0.3, (2, 3)).astype(np.float32)).numpy()
  k = _k(5.0, 5.0, 2.5, 1.5, batch=2).numpy()

  def grads(image, depth, pose, k):
    with tf.GradientTape() as tape:
      tape.watch([image, depth, pose])
      warped, valid = camera.warp_image(image, depth, pose, k)
      loss = tf.reduce_sum(tf.square(warped - 0.5) * valid)
    return tape.gradient(loss, [image, depth, pose])

  jitted = tf.function(grads, jit_compile=True, input_signature=[
      tf.TensorSpec([None, h, w, 3]), tf.TensorSpec([None, h, w, 1]),
      tf.TensorSpec([None, 4, 4]), tf.TensorSpec([None, 3, 3])])
  eager = grads(*(tf.constant(x) for x in (image, depth, pose, k)))
  for e, g in zip(eager, jitted(image, depth, pose, k)):
    assert np.all(np.isfinite(g.numpy()))
    # Reordered float32 sums of O(10) terms: relative 1e-4 of the largest entry.
    np.testing.assert_allclose(g.numpy(), e.numpy(), rtol=1e-4,
                               atol=1e-4 * np.abs(e.numpy()).max())


def test_warp_stereo_baseline_keeps_border_rows_valid():
  # Pure horizontal baseline: v_source = v exactly in real numbers, so validity must depend on u
  # only. Float32 rounding puts row 0 at v ~ -1e-7 for many pixels; WARP_VALID_TOLERANCE absorbs it.
  rng = np.random.default_rng(RNG_SEED)
  h, w = 16, 64
  k = tf.tile(intr.denormalize_intrinsics(intr.KITTI_NORMALIZED_INTRINSICS, h, w)[tf.newaxis],
              [2, 1, 1])
  depth = rng.uniform(intr.MONODEPTH2_MIN_DEPTH, 80.0, (2, h, w, 1)).astype(np.float32)
  pose = _translation_pose([0.1, 0.0, 0.0], batch=2)
  image = np.zeros((2, h, w, 1), np.float32)
  coords, _ = camera.reproject_coords(depth, pose, k)
  u = coords.numpy()[..., 0]
  tol = camera.WARP_VALID_TOLERANCE
  u_inside = ((u >= -tol) & (u <= w - 1 + tol)).astype(np.float32)
  _, valid = camera.warp_image(image, depth, pose, k)
  np.testing.assert_array_equal(valid.numpy()[..., 0], u_inside)
  _, strict = camera.warp_image(image, depth, pose, k, valid_tolerance=0.0)
  # Without slack, border rows lose pixels whose u is inside (the flicker the tolerance removes).
  assert np.sum(u_inside[:, [0, -1]] - strict.numpy()[:, [0, -1], :, 0]) > 0
