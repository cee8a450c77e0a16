"""Tests of tfdepth.geometry.pose: Rodrigues, Euler angles, 4x4 poses."""

import math

import numpy as np
import pytest
import tensorflow as tf
from scipy.spatial.transform import Rotation

from tfdepth.errors import InvalidInputError
from tfdepth.geometry import camera
from tfdepth.geometry import pose as pose_lib

F32_EPS = float(np.finfo(np.float32).eps)
RNG_SEED = 0
# Rotation entries are in [-1, 1] and come from a handful of float32 products of sin/cos:
# 1e-6 (~8 ulp of 1) covers the rounding.
ROT_ATOL = 1e-6


def _rx(a):
  c, s = math.cos(a), math.sin(a)
  return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def _ry(a):
  c, s = math.cos(a), math.sin(a)
  return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def _rz(a):
  c, s = math.cos(a), math.sin(a)
  return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def _random_axis_angles(rng, n, max_angle=math.pi - 1e-2):
  axis = rng.normal(size=(n, 3))
  axis /= np.linalg.norm(axis, axis=-1, keepdims=True)
  return (axis * rng.uniform(0.0, max_angle, (n, 1))).astype(np.float32)


def test_axis_angle_hand_computed_rotations():
  v = np.array([[0.0, 0.0, math.pi / 2], [math.pi / 2, 0.0, 0.0], [0.0, 0.0, 0.0]], np.float32)
  r = pose_lib.axis_angle_to_matrix(v).numpy()
  np.testing.assert_allclose(r[0], [[0, -1, 0], [1, 0, 0], [0, 0, 1]], atol=ROT_ATOL)
  np.testing.assert_allclose(r[1], [[1, 0, 0], [0, 0, -1], [0, 1, 0]], atol=ROT_ATOL)
  np.testing.assert_array_equal(r[2], np.eye(3))  # zero vector -> identity, exactly


def test_axis_angle_matches_scipy_and_is_orthonormal():
  rng = np.random.default_rng(RNG_SEED)
  v = _random_axis_angles(rng, 64)
  r = pose_lib.axis_angle_to_matrix(v).numpy().astype(np.float64)
  np.testing.assert_allclose(r, Rotation.from_rotvec(v.astype(np.float64)).as_matrix(),
                             atol=ROT_ATOL)
  np.testing.assert_allclose(np.einsum("nji,njk->nik", r, r), np.broadcast_to(np.eye(3), r.shape),
                             atol=ROT_ATOL)
  np.testing.assert_allclose(np.linalg.det(r), np.ones(64), atol=ROT_ATOL)


def test_axis_angle_gradient_finite_at_zero_and_correct_nearby():
  v = tf.constant([[0.0, 0.0, 0.0], [1e-3, 0.0, 0.0]])
  with tf.GradientTape() as tape:
    tape.watch(v)
    r = pose_lib.axis_angle_to_matrix(v)
    picked = r[:, 2, 1]  # = sin(θ)·a_x for a rotation about x
  grad = tape.gradient(picked, v).numpy()
  assert np.all(np.isfinite(grad))
  # Exactly at 0 Monodepth2's formula has gradient 0 (the eps axis normalisation, PyTorch's norm
  # subgradient). Along x, R21 = f(θ) = sin θ·θ/(θ + eps), so
  # f'(θ) = cos θ·θ/(θ + eps) + sin θ·eps/(θ + eps)² (= 0.9999995 at θ = 1e-3).
  np.testing.assert_array_equal(grad[0], [0.0, 0.0, 0.0])
  theta, eps = 1e-3, pose_lib.AXIS_ANGLE_EPS
  expected = math.cos(theta) * theta / (theta + eps) + math.sin(theta) * eps / (theta + eps)**2
  np.testing.assert_allclose(grad[1], [expected, 0.0, 0.0], atol=1e-6)  # ~8 ulp(1)


def test_matrix_to_axis_angle_round_trip():
  rng = np.random.default_rng(RNG_SEED)
  v = np.concatenate([
      _random_axis_angles(rng, 32),
      np.array([[1e-5, -2e-5, 3e-6], [0.0, 0.0, 0.0], [0.0, 2.5, 0.0], [-3.1, 0.0, 0.0],
                [0.0, 0.0, math.pi - 1e-3], [1.7, 1.7, 0.0]], np.float32)])
  r = pose_lib.axis_angle_to_matrix(v)
  back = pose_lib.matrix_to_axis_angle(r).numpy()
  # Small angles: ~ulp of the entries; near π the angle comes from atan2 of a small sine and the
  # axis from the symmetric part: a few 1e-6 rad of rotation error per 1e-7 of matrix rounding.
  np.testing.assert_allclose(back[:-3], v[:-3], rtol=0, atol=3e-6)
  np.testing.assert_allclose(back[-3:], v[-3:], rtol=0, atol=3e-5)
  # A tiny angle comes back shrunk by Monodepth2's axis normalisation θ/(θ + 1e-7) (0.9956 here);
  # relative accuracy ~ulp of the off-diagonal entries.
  theta = np.linalg.norm(v[-6].astype(np.float64))
  np.testing.assert_allclose(back[-6], v[-6] * theta / (theta + pose_lib.AXIS_ANGLE_EPS),
                             rtol=1e-5)


def test_matrix_to_axis_angle_at_pi_and_gradient_at_identity():
  r = tf.constant(_rz(math.pi)[np.newaxis], tf.float32)  # exactly π about z: ±(0, 0, π)
  v = pose_lib.matrix_to_axis_angle(r).numpy()[0]
  np.testing.assert_allclose(np.abs(v), [0, 0, math.pi], atol=ROT_ATOL)
  np.testing.assert_allclose(pose_lib.axis_angle_to_matrix(v).numpy(), r[0].numpy(),
                             atol=ROT_ATOL)
  eye = tf.eye(3, batch_shape=[1])
  with tf.GradientTape() as tape:
    tape.watch(eye)
    out = tf.reduce_sum(pose_lib.matrix_to_axis_angle(eye) * tf.constant([1.0, 2.0, 3.0]))
  grad = tape.gradient(out, eye).numpy()[0]
  # v ≈ w/2 near I with w = (R21 - R12, R02 - R20, R10 - R01): dv_x/dR21 = 1/2, etc.
  np.testing.assert_allclose(grad, [[0, -1.5, 1.0], [1.5, 0, -0.5], [-1.0, 0.5, 0]], atol=1e-6)


def test_euler_matches_hand_built_rx_ry_rz():
  angles = np.array([[0.3, -0.2, 0.5], [math.pi / 2, 0.0, 0.0], [0.0, 0.0, 0.0]], np.float32)
  r = pose_lib.euler_to_matrix(angles).numpy()
  expected = _rx(0.3) @ _ry(-0.2) @ _rz(0.5)
  np.testing.assert_allclose(r[0], expected, atol=ROT_ATOL)
  # The other order differs by far more than the tolerance, so the test pins the order.
  assert np.abs(expected - _rz(0.5) @ _ry(-0.2) @ _rx(0.3)).max() > 0.05
  np.testing.assert_allclose(r[1], [[1, 0, 0], [0, 0, -1], [0, 1, 0]], atol=ROT_ATOL)
  np.testing.assert_array_equal(r[2], np.eye(3))


def test_pose_from_axis_angle_translation_and_inverse():
  rng = np.random.default_rng(RNG_SEED)
  aa = _random_axis_angles(rng, 8)
  t = rng.normal(0, 2, (8, 3)).astype(np.float32)
  m = pose_lib.pose_from_axis_angle_translation(aa, t).numpy()
  np.testing.assert_allclose(m[:, :3, :3], pose_lib.axis_angle_to_matrix(aa).numpy(), atol=0)
  np.testing.assert_array_equal(m[:, :3, 3], t)
  np.testing.assert_array_equal(m[:, 3], np.tile([0, 0, 0, 1], (8, 1)))
  inv = pose_lib.pose_from_axis_angle_translation(aa, t, invert=True).numpy()
  # Monodepth2's invert branch is the exact inverse; translations up to ~6 m -> 8 ulp(8) ~ 1e-5.
  np.testing.assert_allclose(inv, np.linalg.inv(m.astype(np.float64)), atol=1e-5)
  np.testing.assert_allclose(inv, pose_lib.invert_pose(m).numpy(), atol=1e-6)


def test_pose_composed_with_inverse_is_identity():
  rng = np.random.default_rng(RNG_SEED)
  m = pose_lib.pose_from_axis_angle_translation(_random_axis_angles(rng, 16),
                                                rng.normal(0, 3, (16, 3)).astype(np.float32))
  inv = pose_lib.invert_pose(m)
  eye = np.broadcast_to(np.eye(4), (16, 4, 4))
  # Translations up to ~10 m: products carry ~ulp(10) = 1e-6 errors, a few of them.
  np.testing.assert_allclose(pose_lib.compose_poses(m, inv).numpy(), eye, atol=1e-5)
  np.testing.assert_allclose(pose_lib.compose_poses(inv, m).numpy(), eye, atol=1e-5)


def test_compose_poses_applies_right_factor_first():
  rng = np.random.default_rng(RNG_SEED)
  a_from_b = pose_lib.pose_from_axis_angle_translation(_random_axis_angles(rng, 2),
                                                       rng.normal(0, 1, (2, 3)).astype(np.float32))
  b_from_c = pose_lib.pose_from_axis_angle_translation(_random_axis_angles(rng, 2),
                                                       rng.normal(0, 1, (2, 3)).astype(np.float32))
  points_c = tf.constant(rng.normal(0, 5, (2, 7, 3)).astype(np.float32))
  direct = camera.transform_points(points_c, pose_lib.compose_poses(a_from_b, b_from_c))
  stepwise = camera.transform_points(camera.transform_points(points_c, b_from_c), a_from_b)
  np.testing.assert_allclose(direct.numpy(), stepwise.numpy(), atol=1e-5)  # ~8 ulp(16)
  np.testing.assert_allclose(pose_lib.compose_poses(a_from_b, b_from_c).numpy(),
                             a_from_b.numpy() @ b_from_c.numpy(), atol=1e-6)


def test_identity_pose_with_tensor_batch_size():
  np.testing.assert_array_equal(pose_lib.identity_pose(2).numpy(), np.tile(np.eye(4), (2, 1, 1)))

  @tf.function(input_signature=[tf.TensorSpec([None, 3])])
  def f(x):
    return pose_lib.identity_pose(tf.shape(x)[0])

  assert f(tf.zeros([5, 3])).shape == (5, 4, 4)
  with pytest.raises(InvalidInputError, match="batch_size.*-1"):
    pose_lib.identity_pose(-1)


@pytest.mark.parametrize("jit", [False, True])
def test_pose_ops_unknown_batch_in_tf_function(jit):
  rng = np.random.default_rng(RNG_SEED)
  aa = _random_axis_angles(rng, 3)
  aa[0] = 0.0
  t = rng.normal(0, 1, (3, 3)).astype(np.float32)

  @tf.function(jit_compile=jit, input_signature=[tf.TensorSpec([None, 3]),
                                                 tf.TensorSpec([None, 3])])
  def f(aa, t):
    m = pose_lib.pose_from_axis_angle_translation(aa, t, invert=True)
    return (m, pose_lib.invert_pose(m), pose_lib.compose_poses(m, pose_lib.invert_pose(m)),
            pose_lib.euler_to_matrix(aa), pose_lib.matrix_to_axis_angle(m[:, :3, :3]),
            pose_lib.identity_pose(tf.shape(aa)[0]))

  for e, g in zip(f.python_function(aa, t), f(aa, t)):
    np.testing.assert_allclose(g.numpy(), e.numpy(), atol=1e-6)  # op reordering only


def test_bad_inputs_raise_typed_errors():
  with pytest.raises(InvalidInputError, match=r"axis_angle must have shape.*\(2, 4\)"):
    pose_lib.axis_angle_to_matrix(tf.zeros([2, 4]))
  with pytest.raises(InvalidInputError, match=r"translation must have shape.*\(2, 2\)"):
    pose_lib.pose_from_axis_angle_translation(tf.zeros([2, 3]), tf.zeros([2, 2]))
  with pytest.raises(InvalidInputError, match=r"a_from_b must have shape.*\(3, 3\)"):
    pose_lib.invert_pose(tf.eye(3))
  with pytest.raises(InvalidInputError, match=r"b_from_c must have shape.*\(4, 3\)"):
    pose_lib.compose_poses(tf.eye(4), tf.zeros([4, 3]))
  with pytest.raises(InvalidInputError, match=r"rotation must have shape.*\(4, 4\)"):
    pose_lib.matrix_to_axis_angle(tf.eye(4))
  with pytest.raises(InvalidInputError, match="angles must be a floating-point.*string"):
    pose_lib.euler_to_matrix(tf.constant(["a", "b", "c"]))
