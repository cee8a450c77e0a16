"""Tests of the Li et al. 2021 dynamic-scene pieces: motion net, warping, losses through the trainer
path, learned intrinsics, burn-in, configs (trainers/dynamic.py, tfdepth/models/motion_net.py)."""

import math

import keras
import numpy as np
import pytest
import scipy.ndimage
import tensorflow as tf

from tfdepth import geometry
from tfdepth.errors import ConfigError, InvalidInputError
from tfdepth.models import motion_net
from trainers import dynamic
from trainers import experiments


def _k(fx=100.0, fy=100.0, cx=32.0, cy=16.0):
  return np.array([[[fx, 0, cx], [0, fy, cy], [0, 0, 1]]], np.float32)


def test_motion_warp_closed_form_and_matches_rigid_reprojection():
  h, w = 32, 64
  depth = np.full((1, h, w, 1), 10.0, np.float32)
  field = np.zeros((1, h, w, 3), np.float32)
  field[0, 5, 7] = (1.0, 0.0, 0.0)  # one pixel's point moves 1 m right
  coords, z = dynamic.motion_warp_coords(depth, np.zeros((1, 3), np.float32), field, _k())
  coords = coords.numpy()
  # u' = u + fx·1/10 = 7 + 10 at that pixel; elsewhere identity up to the projection eps:
  # u·z/(z + 1e-7) differs from u by u·1e-8 ≤ 1e-6 px (plus float32 rounding ~4e-6 at u = 63).
  np.testing.assert_allclose(coords[0, 5, 7], (17.0, 5.0), atol=1e-4)
  grid = geometry.pixel_grid(h, w).numpy()
  mask = np.ones((h, w), bool)
  mask[5, 7] = False
  np.testing.assert_allclose(coords[0][mask], grid[mask], atol=1e-4)
  np.testing.assert_allclose(z.numpy(), 10.0, atol=1e-5)

  # A constant field equals the rigid pose [R | t]: same coordinates as geometry.reproject_coords.
  angles = np.array([[0.01, -0.03, 0.02]], np.float32)
  t = np.array([0.3, -0.1, 0.8], np.float32)
  rng = np.random.default_rng(0)
  depth = rng.uniform(2.0, 30.0, (1, h, w, 1)).astype(np.float32)
  coords, z = dynamic.motion_warp_coords(depth, angles, np.broadcast_to(t, (1, h, w, 3)), _k())
  pose = geometry.pose_from_rotation_translation(geometry.euler_to_matrix(angles), t[None])
  ref_coords, ref_z = geometry.reproject_coords(depth, pose, _k())
  # Same float32 products in a different grouping: agreement to a few ulp of ~100 px.
  np.testing.assert_allclose(coords.numpy(), ref_coords.numpy(), atol=1e-4)
  np.testing.assert_allclose(z.numpy(), ref_z.numpy(), rtol=1e-6)
  with pytest.raises(InvalidInputError, match="rotation"):
    dynamic.motion_warp_coords(depth, np.zeros((1, 4), np.float32), t[None], _k())


def test_ground_truth_depth_camera_and_object_motion_explain_moving_pixels():
  """Synthetic street: true depth + target_from_source + object_motion warp moving cars right."""
  from tfds_builders.synthetic_world import clips  # pylint: disable=g-import-not-at-top
  h, w = 64, 192
  # Test clip 1 at this size has a car covering ~300 pixels of frame t.
  c = clips.render_clip("street", h, w, seed=0, split="test", index=1)
  frames = c["frames"].astype(np.float32) / 255.0
  depth = c["depth"][None]
  # Exclude the 1-px anti-aliased rim of the car, whose colour mixes car and background.
  moving = scipy.ndimage.binary_erosion(c["moving_mask"][..., 0] > 0, np.ones((3, 3)))
  assert moving.sum() > 150
  for si, s in enumerate((0, 2)):
    source_from_target = np.linalg.inv(c["target_from_source"][si].astype(np.float64))
    rot = source_from_target[:3, :3].astype(np.float32)
    t = source_from_target[:3, 3].astype(np.float32)
    # p_s = R (p_t + d) + t: the object displacement d (camera-t axes) enters as R·d.
    full = t + np.einsum("ij,hwj->hwi", rot, c["object_motion"][si])
    errors = {}
    for name, field in (("full", full), ("rigid", np.broadcast_to(t, (h, w, 3)))):
      coords, _ = dynamic.motion_warp_coords(depth, rot[None], field[None].astype(np.float32),
                                             c["intrinsics"][None])
      sampled, inside = geometry.bilinear_sample(frames[s][None], coords)
      err = np.abs(sampled[0].numpy() - frames[1]).mean(-1)
      valid = (depth[0, ..., 0] > 0) & (inside[0, ..., 0].numpy() > 0)
      static_px = valid & (c["moving_mask"][..., 0] == 0)
      errors[name] = (err[valid & moving].mean(), err[static_px].mean())
    full_moving, static = errors["full"]
    rigid_moving, _ = errors["rigid"]
    # Measured: full-motion error on the car 0.018 / 0.007 (t−1 / t+1) vs 0.016 / 0.017 on static
    # pixels: at the bilinear-resampling floor of the textured scene. Bounds leave ~30% margin.
    assert full_moving < 0.025, (s, errors)
    assert full_moving < 1.5 * static, (s, errors)
    # Without the object motion the car is misaligned: 0.067 / 0.046 measured, > 3.5x the above.
    assert rigid_moving > 3.0 * full_moving, (s, errors)


def _motion(rot, background, residual, h, w):
  """Motion dict for the 4 directed pairs (pair-major, B = 1), each (rot, background, residual)."""
  return {"rotation": tf.constant(np.stack(rot), tf.float32),
          "translation": tf.constant(np.stack(background), tf.float32),
          "residual_translation": tf.constant(
              np.stack([np.broadcast_to(r, (h, w, 3)) for r in residual]), tf.float32)}


def test_cycle_loss_zero_for_exact_inverse_and_closed_form_otherwise():
  h, w = 16, 32
  rng = np.random.default_rng(1)
  frames = tf.constant(rng.uniform(size=(1, 3, h, w, 3)), tf.float32)
  depths = tf.fill([1, 3, h, w, 1], 10.0)
  k = _k(20.0, 20.0, 16.0, 8.0)
  theta = 0.05
  yaw = np.array([0.0, theta, 0.0])
  r = geometry.euler_to_matrix(yaw[None]).numpy()[0].astype(np.float64)
  t_fwd_bg, t_fwd_res = np.array([0.2, 0.0, 0.5]), np.array([0.05, -0.02, 0.1])
  t_fwd = t_fwd_bg + t_fwd_res
  t_bwd = -r.T @ t_fwd                      # exact inverse of [R | t_fwd]
  t_bwd_bg = 0.5 * t_bwd
  t_bwd_res = t_bwd - t_bwd_bg
  # PAIRS = (t→t−1, t−1→t, t→t+1, t+1→t): pairs 0/1 and 2/3 are mutual reverses.
  motion = _motion([yaw, -yaw, yaw, -yaw], [t_fwd_bg, t_bwd_bg, t_fwd_bg, t_bwd_bg],
                   [t_fwd_res, t_bwd_res, t_fwd_res, t_bwd_res], h, w)
  # auto_mask off: a constant residual is exactly at its mean magnitude and would be masked out.
  config = dynamic.DynamicConfig(auto_mask=False)
  out = dynamic.dynamic_losses(frames, depths, motion, k, config, gate=1.0)
  assert out["closer_mask"].numpy().sum() > 0
  # float32 products of O(0.1) values: residuals ~1e-8 over normalisers ~1e-3.
  np.testing.assert_allclose(out["rotation_cycle"].numpy(), [0.0], atol=1e-5)
  np.testing.assert_allclose(out["translation_cycle"].numpy(), [0.0], atol=1e-5)

  # Same motion both ways: R_fwd·R_bwd = R_y(2θ) gives mean((R_y(2θ) − I)²) / (2·mean((R_y(θ) −
  # I)²)) = (1 − cos 2θ) / (2(1 − cos θ)) = 1 + cos θ; pure translation t both ways gives
  # |2t|² / (2|t|²) = 2 on every closer pixel (translation error = 2·mean(closer)).
  same = _motion([yaw] * 4, [t_fwd_bg] * 4, [t_fwd_res] * 4, h, w)
  out = dynamic.dynamic_losses(frames, depths, same, k, config, gate=1.0)
  np.testing.assert_allclose(out["rotation_cycle"].numpy(), [1.0 + math.cos(theta)], rtol=1e-3)
  zero_rot = _motion([np.zeros(3)] * 4, [t_fwd_bg] * 4, [t_fwd_res] * 4, h, w)
  out = dynamic.dynamic_losses(frames, depths, zero_rot, k, config, gate=1.0)
  closer = out["closer_mask"].numpy().reshape(4, -1).mean(axis=1).mean()
  np.testing.assert_allclose(out["translation_cycle"].numpy(), [2.0 * closer], rtol=1e-5)


def test_backward_pairs_get_the_exact_inverse_of_the_forward_background_motion():
  """invert_backward_background: pairs t→t−1 (0) and t+1→t (3) become [R | t]⁻¹ = [Rᵀ | −Rᵀt]
  of pairs t−1→t (1) and t→t+1 (2); the forward pairs are returned as they are."""
  rng = np.random.default_rng(4)
  angles = rng.normal(0, 0.2, (8, 3)).astype(np.float32)   # 4 pairs x B = 2
  rot = geometry.euler_to_matrix(angles).numpy()
  trans = rng.normal(0, 0.5, (8, 3)).astype(np.float32)
  r_out, t_out = (x.numpy() for x in dynamic.invert_backward_background(rot, trans))
  for pair, forward in ((0, 1), (3, 2)):
    for i in range(2):
      src, dst = forward * 2 + i, pair * 2 + i
      np.testing.assert_array_equal(r_out[dst], rot[src].T)
      # float32 3x3 products of O(1) values: a few ulps.
      np.testing.assert_allclose(t_out[dst], -rot[src].T @ trans[src], rtol=0, atol=1e-6)
      pose = np.eye(4)
      pose[:3, :3], pose[:3, 3] = rot[src], trans[src]
      pose_back = np.eye(4)
      pose_back[:3, :3], pose_back[:3, 3] = r_out[dst], t_out[dst]
      np.testing.assert_allclose(pose_back @ pose, np.eye(4), atol=1e-6)
  np.testing.assert_array_equal(r_out[2:6], rot[2:6])
  np.testing.assert_array_equal(t_out[2:6], trans[2:6])
  # Exact inverses: both cycle terms are 0 (residual field 0, released normalisers).
  reverse = dynamic._reverse_pairs  # pylint: disable=protected-access
  r_out, t_out = tf.constant(r_out), tf.constant(t_out)
  r_err, t_err = dynamic.losses_lib.motion_cycle_consistency(r_out, t_out, reverse(r_out),
                                                             reverse(t_out))
  np.testing.assert_allclose(r_err.numpy(), 0.0, atol=1e-6)
  np.testing.assert_allclose(t_err.numpy(), 0.0, atol=1e-6)
  with pytest.raises(InvalidInputError, match="rotation"):
    dynamic.invert_backward_background(angles, trans)
  with pytest.raises(InvalidInputError, match="translation"):
    dynamic.invert_backward_background(rot, trans[:, :2])


def test_predict_motion_inverts_backward_pairs_only_when_configured():
  """With `invert_backward_motion` (default) the backward pairs' background motion is the inverse
  of the forward pairs' network output; without it, it is the network's own (which differs)."""
  h, w = 16, 32
  keras.utils.set_random_seed(5)
  inp = keras.Input((h, w, 3))
  depth_net = keras.Model(inp, {"depth_0": keras.layers.Conv2D(1, 3, padding="same",
                                                                activation="softplus")(inp)})
  net = motion_net.build_motion_net((h, w, 8), base_channels=2)
  frames = tf.constant(np.random.default_rng(6).uniform(size=(2, 3, h, w, 3)), tf.float32)
  outputs = {}
  for invert in (True, False):
    model = dynamic.DynamicDepthModel(depth_net, net, dynamic.DynamicConfig(
        invert_backward_motion=invert))
    depths = model.predict_depths(frames)
    outputs[invert] = model.predict_motion(frames, depths)
  raw = net(dynamic.motion_net_inputs(frames, depths))
  raw_r = geometry.euler_to_matrix(raw["rotation"]).numpy()
  raw_t = raw["translation"].numpy()
  off, on = outputs[False], outputs[True]
  # Off: the network's outputs as matrices, every pair.
  np.testing.assert_allclose(off["rotation"].numpy(), raw_r, atol=1e-7)
  np.testing.assert_allclose(off["translation"].numpy(), raw_t, atol=1e-7)
  # On: forward pairs (1, 2) as the network says, backward pairs (0, 3) their inverses, which
  # are not what the network says for them.
  np.testing.assert_allclose(on["rotation"].numpy()[2:6], raw_r[2:6], atol=1e-7)
  exp_r, exp_t = dynamic.invert_backward_background(raw_r, raw_t)
  np.testing.assert_allclose(on["rotation"].numpy(), exp_r.numpy(), atol=1e-7)
  np.testing.assert_allclose(on["translation"].numpy(), exp_t.numpy(), atol=1e-7)
  # (an untrained net says nearly the same for (a, b) and (b, a): not the inverse)
  assert np.abs(on["translation"].numpy()[:2] - raw_t[:2]).max() > 0.5 * np.abs(raw_t[:2]).max()
  # The residual field is the network's own in both modes.
  np.testing.assert_array_equal(on["residual_translation"].numpy(),
                                off["residual_translation"].numpy())


def test_identity_automask_keeps_pixels_the_warp_explains_better():
  """Frame b is frame a shifted right by 2 px (a textured ramp + noise). The exact warp (u + 2)
  reproduces frame a away from the borders, so every interior pixel is kept; the identity warp
  ties with the unwarped frame everywhere, so every pixel is masked (a tie is masked)."""
  rng = np.random.default_rng(0)
  h, w = 12, 20
  a_full = rng.uniform(size=(1, h, w + 2, 3)).astype(np.float32)
  a = a_full[:, :, 2:]                 # frame a: columns 2 .. w + 1 of the texture
  b = a_full[:, :, :w]                 # frame b: columns 0 .. w - 1, so a(u) = b(u + 2)
  grid = np.stack(np.meshgrid(np.arange(w), np.arange(h)), axis=-1)[None].astype(np.float32)
  exact = dynamic.identity_automask_mask(a, b, grid + np.array([2.0, 0.0], np.float32)).numpy()
  # Interior: the warped error is 0 (exact copy; SSIM's 3x3 window needs 1 px of valid
  # neighbours), the identity error of random texture is > 0. The last 2 columns sample beyond
  # frame b (border clamp) and rows/cols next to them see it through SSIM's window.
  assert exact.shape == (1, h, w, 1)
  np.testing.assert_array_equal(exact[0, 1:-1, 1:w - 3, 0], 1.0)
  identity = dynamic.identity_automask_mask(a, b, grid).numpy()
  np.testing.assert_array_equal(identity, 0.0)
  # Through dynamic_losses, with a camera translation of 2 px the WRONG way (depth 1 m, fx 100:
  # t_x = 0.02 m): a pair's warp compares a(u) with a(u ± 4) where the unwarped frame gives
  # a(u ± 2); on random texture each wins on about half of the pixels by O(0.1), far from
  # round-off, so the auto-mask drops about half of them. Pairs (a, b) of [b, a, b]: in (1, 0) and
  # (1, 2) frame a(u) = b(u + 2), i.e. the true b_from_a is t_x = +0.02; in (0, 1), (2, 1) -0.02.
  frames = np.stack([b, a, b], axis=1)                     # (1, 3, H, W, 3)
  depths = np.ones((1, 3, h, w, 1), np.float32)
  true_tx = np.array([0.02, -0.02, 0.02, -0.02], np.float32)
  assert [p for p in dynamic.PAIRS] == [(1, 0), (0, 1), (1, 2), (2, 1)]
  translation = np.zeros((dynamic.NUM_PAIRS, 3), np.float32)
  translation[:, 0] = -true_tx
  motion = {"rotation": np.zeros((dynamic.NUM_PAIRS, 3), np.float32), "translation": translation,
            "residual_translation": np.zeros((dynamic.NUM_PAIRS, h, w, 3), np.float32)}
  k = _k(cx=10.0, cy=6.0)
  plain = dynamic.dynamic_losses(frames, depths, motion, k, dynamic.DynamicConfig())
  masked = dynamic.dynamic_losses(frames, depths, motion, k,
                                  dynamic.DynamicConfig(identity_automask=True))
  ratio = float(masked["rgb"][0]) / float(plain["rgb"][0])
  assert float(plain["rgb"][0]) > 0.1
  assert 0.2 < ratio < 0.8, ratio
  assert float(masked["ssim"][0]) < float(plain["ssim"][0])
  # With the true motion every pixel that stays in frame is reproduced up to the round-off of
  # K^-1 then K (coords off by ~2e-6 px, texture slope <= 1 per px), the others are out of frame:
  # the RGB term is ~0 with or without the mask (measured 4.5e-7).
  motion["translation"] = -translation
  exact_plain = dynamic.dynamic_losses(frames, depths, motion, k, dynamic.DynamicConfig())
  exact_masked = dynamic.dynamic_losses(frames, depths, motion, k,
                                        dynamic.DynamicConfig(identity_automask=True))
  assert float(exact_masked["rgb"][0]) <= float(exact_plain["rgb"][0]) < 1e-5
  assert dynamic.DynamicConfig().identity_automask is dynamic.IDENTITY_AUTOMASK
  with pytest.raises(InvalidInputError, match="identity_automask expected a bool"):
    dynamic.DynamicConfig(identity_automask=1)


def test_residual_burn_in_gate_and_auto_mask():
  # clip(2·step/N − 1, 0, 1): zero for the first N/2 steps, then a linear ramp to 1 at N.
  got = [float(dynamic.residual_gate(s, 100)) for s in (0, 50, 75, 100, 250)]
  np.testing.assert_allclose(got, [0.0, 0.0, 0.5, 1.0, 1.0])
  assert float(dynamic.residual_gate(0, 0)) == 1.0
  field = np.zeros((1, 2, 2, 3), np.float32)
  field[0, 0, 0] = (3.0, 4.0, 0.0)  # |.| = 5
  field[0, 1, 1] = (0.0, 0.0, 1.0)  # |.| = 1; mean |.| = 1.5
  masked = dynamic.auto_mask_residual(field).numpy()
  expected = np.zeros_like(field)
  expected[0, 0, 0] = (3.0, 4.0, 0.0)
  np.testing.assert_array_equal(masked, expected)


def test_learned_intrinsics_always_valid():
  h, w = 128, 416
  rng = np.random.default_rng(2)
  extremes = np.array([0.0, 1e30, -1e30, np.inf, -np.inf, 88.0, -88.0, 1e-30], np.float32)
  raw = np.concatenate([rng.normal(0, 50, (64, 2)),
                        np.stack(np.meshgrid(extremes, extremes), -1).reshape(-1, 2)]).astype(
                            np.float32)
  offsets = raw[::-1].copy()
  k = motion_net.intrinsics_from_raw(raw, offsets, h, w)
  geometry.validate_intrinsics(k)  # finite, fx, fy > 0, last row [0, 0, 1]
  k = k.numpy()
  lo, hi = motion_net.INTRINSICS_MIN_FOCAL_FRACTION, (motion_net.INTRINSICS_MAX_FOCAL_FRACTION
                                                      + motion_net.INTRINSICS_MIN_FOCAL_FRACTION)
  assert np.all(k[:, 0, 0] >= lo * w * (1 - 1e-6)) and np.all(k[:, 0, 0] <= hi * w * (1 + 1e-6))
  # Both focal lengths are fractions of the width (square pixels at raw = 0).
  assert np.all(k[:, 1, 1] >= lo * w * (1 - 1e-6)) and np.all(k[:, 1, 1] <= hi * w * (1 + 1e-6))
  assert np.all((k[:, 0, 2] >= 0) & (k[:, 0, 2] <= w) & (k[:, 1, 2] >= 0) & (k[:, 1, 2] <= h))
  np.testing.assert_array_equal(k[:, 0, 1], 0.0)
  assert np.all(np.isfinite(np.linalg.inv(k.astype(np.float64))))
  # raw = 0: fx = fy = (ln 2 + 0.01)·W, principal point (0.5·W, 0.5·H).
  k0 = motion_net.intrinsics_from_raw(np.zeros((1, 2)), np.zeros((1, 2)), h, w).numpy()[0]
  np.testing.assert_allclose(k0, [[(math.log(2) + 0.01) * w, 0, 0.5 * w],
                                  [0, (math.log(2) + 0.01) * w, 0.5 * h], [0, 0, 1]], rtol=1e-6)
  with pytest.raises(InvalidInputError, match="raw_focal"):
    motion_net.intrinsics_from_raw(np.zeros((1, 3)), np.zeros((1, 2)), h, w)

  # Through the network, with absurd inputs driving its raw outputs to extremes.
  net = motion_net.build_motion_net((32, 64, 8), learn_intrinsics=True, base_channels=2)
  x = np.concatenate([rng.normal(0, 1e6, (2, 32, 64, 8)), np.zeros((1, 32, 64, 8))]).astype(
      np.float32)
  k_net = net(x)["intrinsics"]
  geometry.validate_intrinsics(k_net)
  # A clip's K is the mean over its 4 directed pairs (pair-major stacking).
  per_pair = np.stack([_k(100.0 + i, 50.0 + 2 * i, 30.0, 10.0)[0] for i in range(4)])
  np.testing.assert_allclose(dynamic.clip_intrinsics(per_pair).numpy(),
                             _k(101.5, 53.0, 30.0, 10.0), rtol=1e-6)


def test_motion_net_outputs_layers_and_errors():
  net = motion_net.build_motion_net((64, 192, 8), learn_intrinsics=True, base_channels=2,
                                    name="mn")
  out = net(np.zeros((2, 64, 192, 8), np.float32))
  assert {k: tuple(v.shape) for k, v in out.items()} == {
      "rotation": (2, 3), "translation": (2, 3), "residual_translation": (2, 64, 192, 3),
      "intrinsics": (2, 3, 3)}
  assert all(l.name.startswith("mn_") for l in net.layers)
  # Released create_scales: both learned scales start at 0.01.
  scales = [l for l in net.layers if isinstance(l, motion_net.LearnedMotionScale)]
  assert len(scales) == 2 and all(float(l.scale.numpy()) == pytest.approx(0.01) for l in scales)
  assert "intrinsics" not in motion_net.build_motion_net((32, 32, 8), base_channels=1).output
  with pytest.raises(InvalidInputError, match="8 channels"):
    motion_net.build_motion_net((32, 32, 6))
  with pytest.raises(InvalidInputError, match="base_channels"):
    motion_net.build_motion_net((32, 32, 8), base_channels=0)
  layer = motion_net.LearnedMotionScale(initial=0.05, minimum=0.002, name="s")
  again = motion_net.LearnedMotionScale.from_config(layer.get_config())
  assert (again.initial, again.minimum, again.name) == (0.05, 0.002, "s")
  np.testing.assert_allclose(again(tf.constant([2.0])).numpy(), [0.1])
  with pytest.raises(InvalidInputError, match="initial"):
    motion_net.LearnedMotionScale(initial=0.001, minimum=0.01)
  k_layer = motion_net.IntrinsicsFromRaw(10, 20, name="k")
  again = keras.layers.deserialize(keras.layers.serialize(k_layer))
  assert (again.height, again.width) == (10, 20)
  with pytest.raises(InvalidInputError, match="height"):
    motion_net.IntrinsicsFromRaw(0, 20)


def test_configs_weights_and_experiments():
  c = dynamic.DynamicConfig()
  # Released aggregator: 2·weight, and 0.5 more on SSIM.
  assert c.term_weights == pytest.approx({
      "rgb": 2.0, "ssim": 3.0, "depth_consistency": 0.0, "depth_smoothing": 2e-3,
      "rotation_cycle": 2e-3, "translation_cycle": 0.1, "motion_smoothing": 2.0,
      "motion_sparsity": 0.4})
  assert (dynamic.LI2021.height, dynamic.LI2021.width, dynamic.LI2021.learning_rate,
          dynamic.LI2021.gradient_clip_norm) == (128, 416, 2e-4, 10.0)
  assert dynamic.DynamicConfig.from_dict(
      dynamic.DynamicConfig(ssim_weight=1.5, learn_intrinsics=True).to_dict()).ssim_weight == 1.5
  with pytest.raises(InvalidInputError, match="rgb_weight.*-1"):
    dynamic.DynamicConfig(rgb_weight=-1.0)
  with pytest.raises(InvalidInputError, match="motion_field_burnin_steps"):
    dynamic.DynamicConfig(motion_field_burnin_steps=2.5)
  for name, learned in (("dynamic_synthetic_street", False), ("dynamic_kitti", False),
                        ("dynamic_cityscapes_style", True)):
    exp = experiments.get_experiment(name)
    assert dynamic.is_dynamic(exp)
    cfg = dynamic.dynamic_config(exp)
    assert cfg.learn_intrinsics is learned
    assert cfg.term_weights == c.term_weights
    assert (exp.data.height, exp.data.width, exp.optimizer.learning_rate,
            exp.optimizer.clipnorm) == (128, 416, 2e-4, 10.0)
  exp = experiments.apply_overrides(experiments.get_experiment("dynamic_synthetic_street"),
                                    ["losses.ssim.weight=1.0",
                                     "losses.rgb.kwargs.learn_intrinsics=true"])
  assert dynamic.dynamic_config(exp).ssim_weight == 1.0
  assert dynamic.dynamic_config(exp).learn_intrinsics is True
  bad = experiments.apply_overrides(experiments.get_experiment("dynamic_kitti"),
                                    ["losses.rgb.kwargs.nope=1"])
  with pytest.raises(ConfigError, match="nope"):
    dynamic.dynamic_config(bad)
  inp = keras.Input((32, 32, 3))
  tiny = keras.Model(inp, {"disp_0": keras.layers.Conv2D(1, 1, activation="sigmoid")(inp)})
  with pytest.raises(InvalidInputError, match="learn_intrinsics"):
    dynamic.DynamicDepthModel(tiny, motion_net.build_motion_net((32, 32, 8), base_channels=1),
                              dynamic.DynamicConfig(learn_intrinsics=True))
  # Depth heads: "depth_0" (metres, the default softplus net) is used as is; "disp_0" (sigmoid)
  # goes through disp_to_depth with the config's range; anything else is refused.
  z = keras.layers.Conv2D(1, 1, name="z")(inp)
  mn = motion_net.build_motion_net((32, 32, 8), base_channels=1)
  x = np.random.default_rng(0).uniform(size=(2, 32, 32, 3)).astype(np.float32)
  logits = keras.Model(inp, z)(x).numpy().astype(np.float64)
  softplus_net = keras.Model(inp, {"depth_0": keras.layers.Activation("softplus")(z)})
  depth = dynamic.DynamicDepthModel(softplus_net, mn)(x)["depth"].numpy()
  np.testing.assert_allclose(depth, np.log1p(np.exp(logits)), rtol=1e-6)
  sigmoid_net = keras.Model(inp, {"disp_0": keras.layers.Activation("sigmoid")(z)})
  cfg = dynamic.DynamicConfig(min_depth=0.5, max_depth=50.0)
  depth = dynamic.DynamicDepthModel(sigmoid_net, mn, cfg)(x)["depth"].numpy()
  expected = 1.0 / (1.0 / 50.0 + (1.0 / 0.5 - 1.0 / 50.0) / (1.0 + np.exp(-logits)))
  np.testing.assert_allclose(depth, expected, rtol=1e-5)
  with pytest.raises(InvalidInputError, match=r"depth_net expected a dict output with 'depth_0'"):
    dynamic.DynamicDepthModel(keras.Model(inp, {"disp": z}), mn)
  depth_net, _ = dynamic.build_networks(experiments.apply_overrides(
      experiments.get_experiment("dynamic_synthetic_street"),
      ["data.height=64", "data.width=64"]), learn_intrinsics=False)
  assert list(depth_net.output) == ["depth_0"]


def test_optimizer_from_config_honours_clipnorm_and_refuses_unsupported_fields():
  exp = experiments.get_experiment("dynamic_synthetic_street")
  released = dynamic.optimizer_from_config(exp.optimizer)   # registered clipnorm 10
  assert isinstance(released, keras.optimizers.Adam)
  assert (released.global_clipnorm, released.clipnorm) == (10.0, None)
  assert float(released.learning_rate.numpy()) == pytest.approx(2e-4)
  for clip, expected in (("0", None), ("none", 10.0), ("2.5", 2.5)):   # 0 turns clipping off
    opt = experiments.apply_overrides(exp, [f"optimizer.clipnorm={clip}"]).optimizer
    assert dynamic.optimizer_from_config(opt).global_clipnorm == expected, clip
  for override, field in (("optimizer.name=sgd", "'name'"),
                          ("optimizer.schedule=cosine", "'schedule'"),
                          ("optimizer.warmup_steps=100", "'warmup_steps'"),
                          ("optimizer.weight_decay=0.1", "'weight_decay'")):
    opt = experiments.apply_overrides(exp, [override]).optimizer
    with pytest.raises(ConfigError, match=rf"unsupported optimizer.\[{field}\]"):
      dynamic.optimizer_from_config(opt)
