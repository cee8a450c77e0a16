"""Tests of tfdepth.losses.motion (Li et al. 2021 regularisers and consistency terms)."""

import math

import numpy as np
import pytest
import tensorflow as tf

from tfdepth import geometry
from tfdepth import losses
from tfdepth.errors import InvalidInputError

# Closed forms of a few float32 sqrt/exp terms: 1e-6 relative is ~10 ulps.
RTOL = 1e-6


def _grid(b, h, w):
  return tf.tile(geometry.pixel_grid(h, w)[None], [b, 1, 1, 1])


def test_l1_2_sparsity_hand_computed_and_gradient():
  field = tf.constant(np.array([0.0, 2.0], np.float32).reshape(1, 1, 2, 1))
  with tf.GradientTape() as tape:
    tape.watch(field)
    value = losses.l1_2_sparsity(field)
  # ā = 1: (2·1·sqrt(0 + 1) + 2·1·sqrt(2 + 1)) / 2.
  np.testing.assert_allclose(value, [1.0 + math.sqrt(3.0)], rtol=RTOL)
  # ā is a constant: d/df 2ā sqrt(|f|/ā + 1) / 2 = sign(f) / (2 sqrt(|f|/ā + 1)).
  np.testing.assert_allclose(tape.gradient(value, field).numpy().ravel(), [0.0, 0.5 / math.sqrt(3.0)],
                             rtol=RTOL)
  # Channels are normalised separately; an all-zero field gives 0 and a zero gradient.
  zero = tf.zeros((2, 3, 3, 3))
  with tf.GradientTape() as tape:
    tape.watch(zero)
    value = losses.l1_2_sparsity(zero)
  np.testing.assert_array_equal(value, [0.0, 0.0])
  np.testing.assert_array_equal(tape.gradient(value, zero), np.zeros((2, 3, 3, 3)))


def test_group_smoothness_hand_computed():
  field = np.array([[0.0, 1.0], [2.0, 4.0]], np.float32).reshape(1, 2, 2, 1)
  # Wrapped differences along H: [[-2, -3], [2, 3]], along W: [[-1, 1], [-2, 2]].
  wrapped = (math.sqrt(5) + math.sqrt(10) + math.sqrt(8) + math.sqrt(13)) / 4
  np.testing.assert_allclose(losses.group_smoothness(field), [wrapped], rtol=RTOL)
  # Without wrap only pixel (1, 1) keeps both differences: sqrt(3² + 2²).
  np.testing.assert_allclose(losses.group_smoothness(field, wrap_around=False), [math.sqrt(13)],
                             rtol=RTOL)
  zero = tf.zeros((1, 3, 3, 3))
  with tf.GradientTape() as tape:
    tape.watch(zero)
    value = losses.group_smoothness(zero)
  # sqrt(1e-24) = 1e-12 per pixel; the gradient at 0 is 0 (no sqrt(0) NaN).
  np.testing.assert_allclose(value, [1e-12], rtol=1e-5)
  np.testing.assert_array_equal(tape.gradient(value, zero), np.zeros((1, 3, 3, 3)))


def test_normalize_motion_map():
  motion = np.zeros((1, 1, 2, 3), np.float32)
  motion[0, 0, 0] = [1.0, 2.0, 2.0]  # mean of squares over 6 entries = 9/6
  residual = np.ones_like(motion)
  np.testing.assert_allclose(losses.normalize_motion_map(residual, motion),
                             residual / math.sqrt(3 * 9 / 6 + 1e-12), rtol=RTOL)


def test_cycle_consistency_zero_for_inverse_motions():
  rng = np.random.default_rng(0)
  angles = rng.uniform(-0.3, 0.3, (2, 3)).astype(np.float32)
  rot = geometry.euler_to_matrix(angles)
  trans = rng.uniform(-1, 1, (2, 4, 5, 3)).astype(np.float32)
  rot_inv = tf.linalg.matrix_transpose(rot)
  trans_inv = -tf.linalg.matvec(rot_inv[:, None, None], trans)
  r_err, t_err = losses.motion_cycle_consistency(angles, trans, rot_inv, trans_inv)
  # Relative to the normalisers (~1e-2) the float32 residual of R·Rᵀ − I is ~1e-7 squared.
  np.testing.assert_allclose(r_err, [0.0, 0.0], atol=1e-9)
  np.testing.assert_allclose(t_err, [0.0, 0.0], atol=1e-10)
  # Resampling the backward field at the identity positions changes nothing.
  _, t_err2 = losses.motion_cycle_consistency(rot, trans, rot_inv, trans_inv, coords=_grid(2, 4, 5))
  np.testing.assert_allclose(t_err2, [0.0, 0.0], atol=1e-10)


def test_cycle_consistency_zero_motion_finite_gradient():
  angles = tf.zeros((2, 3))
  trans = tf.zeros((2, 3, 4, 3))
  with tf.GradientTape() as tape:
    tape.watch([angles, trans])
    r_err, t_err = losses.motion_cycle_consistency(angles, trans, -angles, trans)
    total = tf.reduce_sum(r_err + t_err)
  np.testing.assert_array_equal(r_err, [0.0, 0.0])  # 0 / 1e-24
  np.testing.assert_array_equal(t_err, [0.0, 0.0])
  for g in tape.gradient(total, [angles, trans]):
    assert np.all(np.isfinite(g.numpy()))


def test_cycle_consistency_hand_computed():
  eye = np.eye(3, dtype=np.float32)[None]
  rz90 = np.array([[[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]], np.float32)
  t = np.array([[1.0, 0.0, 0.0]], np.float32)
  # Same translation twice: |2t|² / (|t|² + |t|²) = 2; identity rotations: 0 / 1e-24 = 0.
  r_err, t_err = losses.motion_cycle_consistency(eye, t, eye, t)
  np.testing.assert_allclose(r_err, [0.0])
  np.testing.assert_allclose(t_err, [2.0], rtol=RTOL)
  # Rz(90°) then identity: mean((Rz − I)²) / (mean((Rz − I)²) + 0) = 1; t: R_fwd·t_bwd + t_fwd
  # = (0, 1, 0) + (1, 0, 0): |·|² = 2 over 2.
  r_err, t_err = losses.motion_cycle_consistency(rz90, t, eye, t)
  np.testing.assert_allclose(r_err, [1.0], rtol=RTOL)
  np.testing.assert_allclose(t_err, [1.0], rtol=RTOL)
  # A mask over a (1, 1, 2, 3) field: the mean runs over all pixels (released code).
  field = np.tile(t[:, None, None], (1, 1, 2, 1))
  mask = np.array([1.0, 0.0], np.float32).reshape(1, 1, 2, 1)
  _, t_err = losses.motion_cycle_consistency(eye, field, eye, field, mask=mask)
  np.testing.assert_allclose(t_err, [1.0], rtol=RTOL)


def test_li_frame_mask_is_strict():
  # (H, W) = (3, 4): in frame means 0 <= u < 3 and 0 <= v < 2 (strict upper bounds), z > 0.
  coords = np.zeros((1, 3, 4, 2), np.float32)
  coords[0, 0, :, 0] = [0.0, 2.999, 3.0, -0.001]
  coords[0, 1, :, 1] = [0.0, 1.999, 2.0, 1.0]
  z = np.ones((1, 3, 4, 1), np.float32)
  z[0, 2, 0] = 0.0
  got = losses.li_frame_mask(coords, z).numpy()[0, :, :, 0]
  np.testing.assert_array_equal(got[0], [1.0, 1.0, 0.0, 0.0])  # u < W − 1 = 3, u >= 0
  np.testing.assert_array_equal(got[1], [1.0, 1.0, 0.0, 1.0])  # v < H − 1 = 2
  np.testing.assert_array_equal(got[2], [0.0, 1.0, 1.0, 1.0])  # z > 0


def _shifted_pair():
  """Frame 1 pixels land one column right in frame 2, whose image is frame 1 shifted + 0.1."""
  rng = np.random.default_rng(1)
  image = rng.uniform(0.1, 0.8, (1, 3, 4, 3)).astype(np.float32)
  other = np.roll(image, 1, axis=2) + 0.1
  coords = (_grid(1, 3, 4) + tf.constant([1.0, 0.0])).numpy()
  other_depth = np.full((1, 3, 4, 1), 5.0, np.float32)
  projected = np.full((1, 3, 4, 1), 5.0, np.float32)
  projected[0, 0, 0] = 6.0  # behind frame 2's surface: occluded
  projected[0, 1, 1] = 4.5  # in front by 0.5
  return image, other, other_depth, coords, projected


def test_occlusion_aware_consistency_hand_computed():
  image, other, other_depth, coords, projected = _shifted_pair()
  out = losses.occlusion_aware_photometric_consistency(image, other, other_depth, coords, projected)
  # In frame (strict): u + 1 < 3 and v < 2 -> pixels (v, u) in {0, 1}²; (0, 0) is occluded.
  closer = np.zeros((3, 4))
  closer[0, 1] = closer[1, 0] = closer[1, 1] = 1.0
  np.testing.assert_array_equal(out["closer_mask"].numpy()[0, :, :, 0], closer)
  # |I2(coords) − I1| = 0.1 on the 3 kept pixels, averaged over all 12 pixels × 3 channels.
  np.testing.assert_allclose(out["rgb_error"], [0.1 * 3 / 12], rtol=1e-5)  # 0.1 + x − x in float32
  np.testing.assert_allclose(out["depth_error"], [0.5 / 12], rtol=RTOL)
  np.testing.assert_allclose(losses.depth_consistency(other_depth, coords, projected), [0.5 / 12],
                             rtol=RTOL)
  # c1 = inf drops SSIM's luminance term: a pure brightness offset has (almost) no SSIM error.
  # float32 variances of O(0.1) values cancel to ~1e-8 and c2 = 9e-6 amplifies that to ~1e-3.
  assert out["ssim_error"].numpy()[0] < 5e-3
  # Depth proximity weight: s = (0.5²)/(3 + 1) + 1e-4 on the pixel 0.5 in front, 1 where equal.
  w = out["depth_proximity_weight"].numpy()[0, :, :, 0]
  s = 0.25 / 4 + 1e-4
  np.testing.assert_allclose(w[1, 1], s / (0.25 + s), rtol=RTOL)
  np.testing.assert_allclose(w[0, 1], 1.0, rtol=RTOL)
  np.testing.assert_array_equal(w[2], 0.0)  # out of frame
  # An external validity mask removes pixels from every term.
  mask = np.ones((1, 3, 4, 1), np.float32)
  mask[0, 1, 1] = 0.0
  out = losses.occlusion_aware_photometric_consistency(image, other, other_depth, coords, projected,
                                                       mask=mask)
  np.testing.assert_allclose(out["depth_error"], [0.0], atol=1e-9)
  np.testing.assert_allclose(out["rgb_error"], [0.1 * 2 / 12], rtol=1e-5)


def test_weighted_ssim_uniform_weight_equals_monodepth2_interior():
  rng = np.random.default_rng(2)
  x = rng.uniform(size=(1, 5, 6, 3)).astype(np.float32)
  y = rng.uniform(size=(1, 5, 6, 3)).astype(np.float32)
  loss, pooled = losses.weighted_ssim(x, y, np.ones((1, 5, 6, 1), np.float32), c1=0.01 ** 2,
                                      c2=0.03 ** 2)
  # Uniform weights cancel; VALID windows are the interior of the reflection-padded SSIM.
  # Both are float32 with ~1e-4 variance cancellation error amplified by C2 (see photometric tests).
  np.testing.assert_allclose(loss, losses.ssim_loss_map(x, y)[:, 1:-1, 1:-1], atol=2e-4)
  np.testing.assert_allclose(pooled, np.ones((1, 3, 4, 1)), rtol=RTOL)
  with pytest.raises(InvalidInputError, match="c1"):
    losses.weighted_ssim(x, y, np.ones((1, 5, 6, 1), np.float32), c1=float("inf"), c2=float("inf"))


def test_identical_frames_zero_error_and_finite_gradients():
  rng = np.random.default_rng(3)
  image = rng.uniform(size=(2, 5, 6, 3)).astype(np.float32)
  depth = rng.uniform(1.0, 10.0, (2, 5, 6, 1)).astype(np.float32)
  depth[1, :2] = 0.0  # zero depth: projects to z = 0, out of frame
  k = tf.tile(geometry.make_intrinsics(4.0, 4.0, 2.5, 2.0)[None], [2, 1, 1])
  depth_t = tf.constant(depth)
  with tf.GradientTape() as tape:
    tape.watch(depth_t)
    coords, z = geometry.reproject_coords(depth_t, geometry.identity_pose(2), k)
    out = losses.occlusion_aware_photometric_consistency(image, image, depth, coords, z)
    total = sum(tf.reduce_sum(out[n]) for n in ("rgb_error", "ssim_error", "depth_error"))
  # Identity motion: every error vanishes (up to the 1e-7 projection eps moving coordinates).
  np.testing.assert_allclose([out[n].numpy() for n in ("rgb_error", "depth_error")], 0.0, atol=1e-5)
  # Image 0 (all depths valid) has no SSIM error; in image 1 the 3×3 windows next to the zero-depth
  # rows still see samples taken at the clamped position of z = 0 points (released behaviour: the
  # window is weighted by the pooled proximity weight, nonzero at the border of the valid region).
  assert out["ssim_error"].numpy()[0] < 1e-6
  assert 0.0 < out["ssim_error"].numpy()[1] < 1e-2
  assert np.all(np.isfinite(tape.gradient(total, depth_t).numpy()))


def test_graph_and_xla_with_unknown_batch():
  image, other, other_depth, coords, projected = _shifted_pair()
  field = np.random.default_rng(4).normal(size=(1, 3, 4, 3)).astype(np.float32)
  angles = np.array([[0.1, -0.2, 0.05]], np.float32)

  def fn(image, other, other_depth, coords, projected, field, angles):
    out = losses.occlusion_aware_photometric_consistency(image, other, other_depth, coords, projected)
    r, t = losses.motion_cycle_consistency(angles, field, -angles, field, coords=coords)
    normalized = losses.normalize_motion_map(field, field + 1.0)
    return (out["rgb_error"], out["ssim_error"], out["depth_error"], r, t,
            losses.l1_2_sparsity(normalized), losses.group_smoothness(field, wrap_around=False),
            losses.depth_consistency(other_depth, coords, projected))

  args = (image, other, other_depth, coords, projected, field, angles)
  sig = [tf.TensorSpec([None] + list(a.shape[1:])) for a in args]
  eager = fn(*args)
  graph = tf.function(fn, input_signature=sig)(*args)
  xla = tf.function(fn, input_signature=sig, jit_compile=True)(*args)
  for e, g, x in zip(eager, graph, xla):
    np.testing.assert_allclose(g, e, rtol=1e-6)
    # XLA fuses and reorders float32 ops; the SSIM term amplifies cancellation (see above).
    np.testing.assert_allclose(x, e, rtol=1e-4, atol=1e-6)


def test_bad_inputs_raise_typed_errors():
  with pytest.raises(InvalidInputError, match=r"expected a rank-4 tensor.*received shape"):
    losses.l1_2_sparsity(np.zeros((3, 3), np.float32))
  with pytest.raises(InvalidInputError, match=r"\(B, 3, 3\) rotation matrices.*\(2, 4\)"):
    losses.motion_cycle_consistency(np.zeros((2, 4), np.float32), np.zeros((2, 3), np.float32),
                                    np.zeros((2, 3), np.float32), np.zeros((2, 3), np.float32))
  with pytest.raises(InvalidInputError, match="3 channel"):
    losses.motion_cycle_consistency(np.zeros((1, 3), np.float32), np.zeros((1, 2, 2, 2), np.float32),
                                    np.zeros((1, 3), np.float32), np.zeros((1, 3), np.float32))
  with pytest.raises(InvalidInputError, match="2 channel"):
    losses.depth_consistency(np.ones((1, 2, 2, 1), np.float32), np.zeros((1, 2, 2, 3), np.float32),
                             np.ones((1, 2, 2, 1), np.float32))


def test_consistency_uses_frame_2_size_when_frames_differ():
  # Frame 1 is 3x3, frame 2 is (H2, W2) = (4, 5): in frame means 0 <= u < 4 and 0 <= v < 3.
  # Frame 2's depth is 5 m, its 1-channel image is 0.1·u (linear, so bilinear samples are exact);
  # frame 1's image is 0.2 everywhere and its points are 4 m away in frame 2's camera.
  coords = np.array([[0.0, 0.0], [3.5, 2.5], [4.0, 1.0],     # in, in, out (u = W2 − 1)
                     [1.0, 3.0], [2.25, 2.9], [-0.1, 1.0],   # out (v = H2 − 1), in, out
                     [3.9, 0.0], [1.0, 1.0], [2.0, 2.0]],    # in but occluded, in, in
                    np.float32).reshape(1, 3, 3, 2)
  projected = np.full((1, 3, 3, 1), 4.0, np.float32)
  projected[0, 2, 0] = 6.0  # behind frame 2's 5 m surface
  other_depth = np.full((1, 4, 5, 1), 5.0, np.float32)
  other_image = np.tile(0.1 * np.arange(5, dtype=np.float32), (4, 1)).reshape(1, 4, 5, 1)
  image = np.full((1, 3, 3, 1), 0.2, np.float32)
  in_frame = [1, 1, 0, 0, 1, 0, 1, 1, 1]
  closer = [1, 1, 0, 0, 1, 0, 0, 1, 1]
  np.testing.assert_array_equal(
      losses.li_frame_mask(coords, projected, frame_shape=(4, 5)).numpy().ravel(), in_frame)
  np.testing.assert_array_equal(
      losses.li_frame_mask(coords, projected, frame_shape=tf.constant([4, 5])).numpy().ravel(),
      in_frame)
  # |D2 − z| = 1 m on the 5 kept pixels, averaged over all 9 frame-1 pixels.
  np.testing.assert_allclose(losses.depth_consistency(other_depth, coords, projected), [5.0 / 9.0],
                             rtol=RTOL)
  out = losses.occlusion_aware_photometric_consistency(image, other_image, other_depth, coords,
                                                       projected)
  np.testing.assert_array_equal(out["closer_mask"].numpy().ravel(), closer)
  np.testing.assert_allclose(out["depth_error"], [5.0 / 9.0], rtol=RTOL)
  # |0.1·u − 0.2| on the kept pixels u = 0, 3.5, 2.25, 1, 2: 0.2 + 0.15 + 0.025 + 0.1 + 0 = 0.475.
  # float32 0.1·k samples and bilinear weights: ~1e-8 absolute per term.
  np.testing.assert_allclose(out["rgb_error"], [0.475 / 9.0], atol=1e-7)
  # Depth proximity: every in-frame pixel is 1 m off (the occluded one too), so w = s / (1 + s)
  # with s = (Σ closer·1²) / (5 closer pixels + 1) + 1e-4 (released _weighted_average, epsilon 1).
  s = 5.0 / 6.0 + 1e-4
  np.testing.assert_allclose(out["depth_proximity_weight"].numpy().ravel(),
                             np.array(in_frame) * s / (1.0 + s), rtol=RTOL)


def test_li_frame_mask_rejects_bad_frame_shape():
  coords = np.zeros((1, 1, 1, 2), np.float32)
  z = np.ones((1, 1, 1, 1), np.float32)
  with pytest.raises(InvalidInputError, match=r"frame_shape.*\(4, 0\)"):
    losses.li_frame_mask(coords, z, frame_shape=(4, 0))
  with pytest.raises(InvalidInputError, match=r"frame_shape.*2\.5"):
    losses.li_frame_mask(coords, z, frame_shape=(2.5, 3))
  with pytest.raises(InvalidInputError, match=r"frame_shape.*float32 tensor of shape \(2,\)"):
    losses.li_frame_mask(coords, z, frame_shape=tf.constant([4.0, 5.0]))
