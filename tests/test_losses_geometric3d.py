"""Tests of the Mahjourian et al. 2018 3D point-cloud alignment loss (tfdepth/losses/geometric3d.py)."""

import numpy as np
import pytest
import tensorflow as tf

from tfdepth import losses
from tfdepth.errors import InvalidInputError

# Tiny case: 3x4 image, fx = fy = 10 px, cx = 1.5, cy = 1 (pixel centres at integers).
H, W = 3, 4
FX, CX, CY = 10.0, 1.5, 1.0
SOURCE_Z, TARGET_Z = 10.0, 12.0


def _k(batch=1):
  k = np.array([[FX, 0.0, CX], [0.0, FX, CY], [0.0, 0.0, 1.0]], np.float32)
  return np.tile(k[None], (batch, 1, 1))


def _translation(tx, ty=0.0, tz=0.0, batch=1):
  m = np.tile(np.eye(4, dtype=np.float32)[None], (batch, 1, 1))
  m[:, :3, 3] = (tx, ty, tz)
  return m


def _planes(batch=1):
  return (np.full((batch, H, W, 1), SOURCE_Z, np.float32),
          np.full((batch, H, W, 1), TARGET_Z, np.float32))


def test_hand_computed_planes_and_out_of_frame_mask():
  """Source plane z = 10 m moved 1 m right lands 1 px right (fx·1/10) on the target plane z = 12.

  Source pixel (u, v) moves to (u + 1, v); the target cloud there is 12·K⁻¹[u + 1, v, 1] and the
  moved point 10·K⁻¹[u + 1, v, 1], so r = 2·((u + 1 − 1.5)/10, (v − 1)/10, 1). Column u = 3 lands
  at u' = 4 > W − 1 and is masked. Over the 9 valid pixels: Σ|u'−1.5| = 3·(0.5 + 0.5 + 1.5) = 7.5,
  Σ|v−1| = 3·(1 + 0 + 1) = 6, so the loss is 2·(7.5/10 + 6/10 + 9)/9 = 2.3 m.
  """
  source, target = _planes()
  residual, valid = losses.geometric3d_residuals(source, target, _translation(1.0), _k())
  expected_valid = np.ones((H, W), np.float32)
  expected_valid[:, 3] = 0.0
  np.testing.assert_array_equal(valid.numpy()[0, ..., 0], expected_valid)
  v, u = np.mgrid[0:H, 0:W].astype(np.float64)
  expected = 2.0 * np.stack([(u + 1 - CX) / FX, (v - CY) / FX, np.ones_like(u)], -1)
  expected[:, 3] = 0.0
  # float32 clouds of ~12 m (ulp 1e-6) and the projection eps (u shift ≤ 1e-7·1/10 px): 1e-5 m.
  np.testing.assert_allclose(residual.numpy()[0], expected, atol=1e-5)
  loss = losses.geometric3d_loss(source, target, _translation(1.0), _k())
  np.testing.assert_allclose(loss.numpy(), [2.3], rtol=1e-6)

  # A 100 m translation moves every point out of the image: nothing counts, the loss is 0
  # (not NaN) and so is its gradient.
  depth = tf.constant(source)
  with tf.GradientTape() as tape:
    tape.watch(depth)
    far = losses.geometric3d_loss(depth, target, _translation(100.0), _k())
  np.testing.assert_array_equal(far.numpy(), [0.0])
  np.testing.assert_array_equal(tape.gradient(far, depth).numpy(), 0.0)


def test_invalid_depth_masks():
  """Target column 2 without depth: a source pixel whose bilinear sample uses it is dropped.

  With t = (1, 0, 0) source columns 0, 1, 2 land on target columns 1, 2, 3 (weight 1 on a single
  pixel each); column 1 -> 2 is invalid, column 3 leaves the image. A source pixel without depth
  (0 or NaN) is dropped too. Remaining source columns {0, 2} land at u' in {1, 3}:
  Σ|u'−1.5| = 3·2 = 6 (3 rows), Σ|v−1| = 2·2 = 4, 6 pixels: 2·(0.6 + 0.4 + 6)/6 = 7/3 m; without
  the source pixel (0, 0) (|u'−1.5| = 0.5, |v−1| = 1): 2·(0.55 + 0.3 + 5)/5 = 2.34 m.
  """
  source, target = _planes()
  target[0, :, 2] = 0.0
  _, valid = losses.geometric3d_residuals(source, target, _translation(1.0), _k())
  np.testing.assert_array_equal(valid.numpy()[0, ..., 0], [[1, 0, 1, 0]] * 3)
  loss = losses.geometric3d_loss(source, target, _translation(1.0), _k())
  np.testing.assert_allclose(loss.numpy(), [7.0 / 3.0], rtol=1e-6)
  for bad in (0.0, np.nan):
    source[0, 0, 0] = bad
    loss = losses.geometric3d_loss(source, target, _translation(1.0), _k())
    np.testing.assert_allclose(loss.numpy(), [2.34], rtol=1e-6)
  # The optional mask removes pixels too: only source row 1 (u' in {1, 3}, v = 1):
  # 2·((0.5 + 1.5)/10 + 0 + 2)/2 = 2.2.
  mask = np.zeros((1, H, W, 1), np.float32)
  mask[0, 1] = 1.0
  loss = losses.geometric3d_loss(source, target, _translation(1.0), _k(), mask=mask)
  np.testing.assert_allclose(loss.numpy(), [2.2], rtol=1e-6)


def test_translation_field_and_batch_independence():
  """A per-pixel field equal to a rigid translation gives the rigid result; images are separate."""
  source, target = _planes(batch=2)
  field = np.zeros((2, H, W, 3), np.float32)
  field[0, ..., 0] = 1.0  # image 0: the tiny case's 1 m right, as a field
  loss = losses.geometric3d_loss(source, target, _translation(0.0, batch=2), _k(2),
                                 translation_field=field)
  # Image 1 does not move: r = (12 − 10)·K⁻¹[u, v, 1], 12 pixels: Σ|u−1.5| = 3·4 = 12,
  # Σ|v−1| = 4·2 = 8: 2·(1.2 + 0.8 + 12)/12 = 7/3.
  np.testing.assert_allclose(loss.numpy(), [2.3, 7.0 / 3.0], rtol=1e-6)


def test_gradients_reach_depths_and_motion():
  rng = np.random.default_rng(0)
  source = tf.constant(rng.uniform(8.0, 12.0, (2, H, W, 1)).astype(np.float32))
  target = tf.constant(rng.uniform(8.0, 12.0, (2, H, W, 1)).astype(np.float32))
  translation = tf.constant([[0.3, -0.1, 0.2], [0.0, 0.2, -0.3]], tf.float32)
  field = tf.constant(rng.normal(0.0, 0.05, (2, H, W, 3)).astype(np.float32))
  with tf.GradientTape(persistent=True) as tape:
    tape.watch([source, target, translation, field])
    pose = tf.concat([tf.concat([tf.eye(3, batch_shape=[2]), translation[..., None]], -1),
                      tf.constant([[[0.0, 0.0, 0.0, 1.0]]] * 2)], axis=1)
    loss = tf.reduce_sum(losses.geometric3d_loss(source, target, pose, _k(2),
                                                 translation_field=field))
  assert np.isfinite(loss.numpy()) and loss.numpy() > 0
  for name, x in (("source", source), ("target", target), ("translation", translation),
                  ("field", field)):
    g = tape.gradient(loss, x).numpy()
    assert np.all(np.isfinite(g)), name
    assert np.abs(g).max() > 1e-4, name  # residuals of ~1 m: O(0.1) gradients
  # The association carries gradient only on request: the coordinate path adds to the source
  # gradient (bilinear weights of a non-constant target cloud).
  with tf.GradientTape() as tape:
    tape.watch(source)
    diff = losses.geometric3d_loss(source, target, pose, _k(2), differentiable_association=True)
  g_diff = tape.gradient(diff, source).numpy()
  with tf.GradientTape() as tape:
    tape.watch(source)
    plain = losses.geometric3d_loss(source, target, pose, _k(2))
  g_plain = tape.gradient(plain, source).numpy()
  np.testing.assert_allclose(diff.numpy(), plain.numpy(), rtol=1e-6)  # same value
  assert np.abs(g_diff - g_plain).max() > 1e-4


def test_jit_compile_unknown_batch_matches_eager():
  source, target = _planes(batch=2)
  fn = tf.function(losses.geometric3d_loss, jit_compile=True, input_signature=[
      tf.TensorSpec([None, H, W, 1]), tf.TensorSpec([None, H, W, 1]),
      tf.TensorSpec([None, 4, 4]), tf.TensorSpec([None, 3, 3])])
  out = fn(source, target, _translation(1.0, batch=2), _k(2))
  # XLA may fuse the float32 products differently: a few ulp of 2.3.
  np.testing.assert_allclose(out.numpy(), [2.3, 2.3], rtol=1e-5)


def test_zero_for_true_depth_and_motion_on_synthetic_street():
  """Rendered depths of frames t and t±1 with the true camera and object motion align in 3D.

  Projective association samples the target cloud bilinearly; the cloud is not linear in (u, v)
  (depth is not affine in pixels), so exact zeros are expected only where the sample's target
  neighbourhood is planar to within rounding. We check static, visible pixels whose 2x2 target
  neighbourhood varies by < 2 % in depth: the median relative residual is at float32 rounding
  level, and the masked loss is > 10x below that of a 0.2 m (2 % of the frame-to-frame motion
  scale) translation error.
  """
  from tfds_builders.synthetic_world import clips  # pylint: disable=g-import-not-at-top
  h, w = 32, 96
  c = clips.render_clip("street", h, w, seed=0, split="test", index=1, include_all_depths=True)
  depths, k = c["depth_all"], c["intrinsics"].astype(np.float64)
  for si, s in enumerate((0, 2)):
    # Frame t's cloud moved into source frame s: p_s = R (p_t + d) + t, d the object motion.
    m = np.linalg.inv(c["target_from_source"][si].astype(np.float64))
    field = np.einsum("ij,hwj->hwi", m[:3, :3], c["object_motion"][si])
    args = (depths[1][None], depths[s][None], m[None].astype(np.float32), k[None].astype(np.float32))
    residual, valid = losses.geometric3d_residuals(*args, translation_field=field[None])
    # Where the moved points land (float64, independent of the loss), and their neighbourhood.
    v, u = np.mgrid[0:h, 0:w].astype(np.float64)
    z = depths[1][..., 0].astype(np.float64)
    p = np.stack([(u - k[0, 2]) / k[0, 0] * z, (v - k[1, 2]) / k[1, 1] * z, z], -1)
    q = p @ m[:3, :3].T + m[:3, 3] + field
    uu, vv = q[..., 0] / q[..., 2] * k[0, 0] + k[0, 2], q[..., 1] / q[..., 2] * k[1, 1] + k[1, 2]
    u0 = np.clip(np.floor(uu), 0, w - 2).astype(int)
    v0 = np.clip(np.floor(vv), 0, h - 2).astype(int)
    tgt = depths[s][..., 0]
    nb = np.stack([tgt[v0, u0], tgt[v0, u0 + 1], tgt[v0 + 1, u0], tgt[v0 + 1, u0 + 1]], -1)
    planar = (nb.min(-1) > 0) & (nb.max(-1) <= 1.02 * nb.min(-1))
    visible = np.abs(q[..., 2] - nb.mean(-1)) <= 0.02 * q[..., 2]
    static = c["moving_mask"][..., 0] == 0
    sel = (valid.numpy()[0, ..., 0] > 0) & planar & visible & static
    assert sel.sum() > 150, sel.sum()
    l1 = np.abs(residual.numpy()[0]).sum(-1)
    # float32 clouds at ~25 m: ulp 2e-6 relative, a few roundings per point.
    assert np.median(l1[sel] / z[sel]) < 1e-5
    mask = sel[None, ..., None].astype(np.float32)
    loss = losses.geometric3d_loss(*args, translation_field=field[None], mask=mask).numpy()[0]
    m[0, 3] += 0.2
    perturbed = losses.geometric3d_loss(depths[1][None], depths[s][None],
                                        m[None].astype(np.float32), args[3],
                                        translation_field=field[None], mask=mask).numpy()[0]
    assert loss < 0.1 * perturbed, (loss, perturbed)


def test_bad_inputs_raise_typed_errors():
  source, target = _planes()
  with pytest.raises(InvalidInputError, match="target_from_source"):
    losses.geometric3d_loss(source, target, np.eye(3, dtype=np.float32)[None], _k())
  with pytest.raises(InvalidInputError, match="intrinsics"):
    losses.geometric3d_loss(source, target, _translation(0.0), np.eye(4, dtype=np.float32)[None])
  with pytest.raises(InvalidInputError, match="source_depth"):
    losses.geometric3d_loss(source[..., 0], target, _translation(0.0), _k())
  with pytest.raises(InvalidInputError, match="target_depth"):
    losses.geometric3d_loss(source, np.zeros((1, H, W + 1, 1), np.float32), _translation(0.0),
                            _k())
  with pytest.raises(InvalidInputError, match="translation_field"):
    losses.geometric3d_loss(source, target, _translation(0.0), _k(),
                            translation_field=np.zeros((1, H, W, 2), np.float32))


def test_monodepth2_geometric3d_term():
  """`trainers.self_supervised`: the optional term is the mean over the temporal sources of the
  pure loss with target_from_source = inv(source_from_target), and is off by default."""
  from trainers import self_supervised as ss  # pylint: disable=g-import-not-at-top
  assert ss.SelfSupervisedConfig().geometric3d_weight == 0.0
  assert ss.LOSS_TERM_FIELDS["geometric3d"] == "geometric3d_weight"
  with pytest.raises(InvalidInputError, match="use_temporal_frames"):
    ss.SelfSupervisedConfig(geometric3d_weight=1.0, use_stereo=True, use_temporal_frames=False)
  h, w = 8, 8
  rng = np.random.default_rng(0)
  frames = rng.uniform(size=(1, 3, h, w, 3)).astype(np.float32)
  k = np.array([[[8.0, 0, 3.5], [0, 8.0, 3.5], [0, 0, 1]]], np.float32)
  # Sigmoid disparity 0.5 -> depth 1 / (1/100 + (10 − 1/100)·0.5) = 0.19980 m everywhere.
  disp = np.full((1, h, w, 1), 0.5, np.float32)
  sources = {-1: np.full((1, h, w, 1), 0.25, np.float32), 1: np.full((1, h, w, 1), 0.15, np.float32)}
  poses = {-1: _translation(0.01), 1: _translation(-0.02, 0.01)}
  config = ss.SelfSupervisedConfig(scales=(0,), use_automask=False, geometric3d_weight=0.5)
  out = ss.self_supervised_losses(frames, k, {0: disp}, poses, config, source_depths=sources)
  target = np.full((1, h, w, 1), 1.0 / (0.01 + (10.0 - 0.01) * 0.5), np.float32)
  expected = np.mean([losses.geometric3d_loss(sources[f], target, np.linalg.inv(poses[f]), k)
                      .numpy() for f in (-1, 1)], axis=0)
  assert expected[0] > 0.01  # 5 cm / 10 cm depth gaps: a clearly non-zero loss
  # disp_to_depth and the pose inversion in float32: a few ulp.
  np.testing.assert_allclose(out["geometric3d"].numpy(), expected, rtol=1e-5)
  default = ss.self_supervised_losses(frames, k, {0: disp}, poses,
                                      ss.SelfSupervisedConfig(scales=(0,), use_automask=False),
                                      source_depths=sources)
  assert "geometric3d" not in default


def test_monodepth2_fit_and_evaluate_with_geometric3d():
  """One `fit` step and one `evaluate` of SelfSupervisedDepthModel with the 3D term on: it is
  tracked, enters the total with its weight, and the step trains the depth net through it."""
  import keras  # pylint: disable=g-import-not-at-top
  from trainers import self_supervised as ss  # pylint: disable=g-import-not-at-top
  h, w = 16, 32
  keras.utils.set_random_seed(0)
  image = keras.Input((h, w, 3))
  x = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(image)
  x = keras.layers.BatchNormalization()(x)
  depth_net = keras.Model(image, {"disp_0": keras.layers.Conv2D(
      1, 3, padding="same", activation="sigmoid")(x)})
  pair = keras.Input((h, w, 6))
  y = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3, activation="relu")(pair))
  pose_net = keras.Model(pair, {"axis_angle": keras.layers.Dense(3)(y) * 0.01,
                                "translation": keras.layers.Dense(3)(y) * 0.01})
  config = ss.SelfSupervisedConfig(scales=(0,), automask_noise_scale=0.0, geometric3d_weight=0.5)
  model = ss.SelfSupervisedDepthModel(depth_net, pose_net, config)
  model.compile(optimizer=keras.optimizers.SGD(0.1))
  rng = np.random.default_rng(0)
  frames = tf.constant(rng.uniform(size=(2, 3, h, w, 3)).astype(np.float32))
  k = np.tile(np.array([[[20.0, 0, 15.5], [0, 20.0, 7.5], [0, 0, 1]]], np.float32), (2, 1, 1))
  data = tf.data.Dataset.from_tensors({"frames": frames, "frames_aug": frames, "intrinsics": k})
  hist = model.fit(data, epochs=1, verbose=0).history
  logs = {key: v[-1] for key, v in hist.items()}
  assert set(logs) == {"loss", "photometric_loss", "smoothness_loss", "geometric3d_loss"}
  assert logs["geometric3d_loss"] > 0
  # float32 sums of O(0.1..1) values.
  np.testing.assert_allclose(logs["loss"], logs["photometric_loss"] + 1e-3 * logs[
      "smoothness_loss"] + 0.5 * logs["geometric3d_loss"], rtol=1e-5)
  result = model.evaluate(data, verbose=0, return_dict=True)
  assert np.isfinite(result["geometric3d_loss"]) and result["geometric3d_loss"] > 0
