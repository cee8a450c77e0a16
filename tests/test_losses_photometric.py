"""Tests of tfdepth.losses.photometric (Monodepth2 SSIM, reprojection error, min reprojection,
auto-masking) and tfdepth.losses.smoothness."""

import numpy as np
import pytest
import tensorflow as tf

from tfdepth import losses
from tfdepth.errors import InvalidInputError

# float32 SSIM of [0, 1] images: the biased variance E[x²] − E[x]² cancels catastrophically, leaving
# an absolute error of a few 2⁻²⁴ ≈ 6e-8 which the C2 = 9e-4 denominator amplifies to ≈ 1e-4 of
# SSIM (measured: 6.3e-5 for constant images); 2e-4 bounds that while any convention change
# (padding, window, constants) moves values by more than 1e-3.
ATOL = 2e-4


def _numpy_ssim(x, y, c1=0.01 ** 2, c2=0.03 ** 2):
  """Independent float64 reference: explicit 3×3 windows over a mirror (no edge repeat) padding."""
  x = np.pad(x.astype(np.float64), [(0, 0), (1, 1), (1, 1), (0, 0)], mode="reflect")
  y = np.pad(y.astype(np.float64), [(0, 0), (1, 1), (1, 1), (0, 0)], mode="reflect")
  b, hp, wp, c = x.shape
  out = np.zeros((b, hp - 2, wp - 2, c))
  for i in range(hp - 2):
    for j in range(wp - 2):
      wx = x[:, i:i + 3, j:j + 3, :]
      wy = y[:, i:i + 3, j:j + 3, :]
      mx, my = wx.mean((1, 2)), wy.mean((1, 2))
      vx = (wx ** 2).mean((1, 2)) - mx ** 2
      vy = (wy ** 2).mean((1, 2)) - my ** 2
      cxy = (wx * wy).mean((1, 2)) - mx * my
      out[:, i, j, :] = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx ** 2 + my ** 2 + c1) * (vx + vy + c2))
  return out


def _modes(fn, *args):
  sig = [tf.TensorSpec([None] + list(np.shape(a))[1:], tf.as_dtype(np.asarray(a).dtype)) for a in args]
  return [np.asarray(fn(*args)),
          np.asarray(tf.function(fn, input_signature=sig)(*args)),
          np.asarray(tf.function(fn, input_signature=sig, jit_compile=True)(*args))]


def test_ssim_constant_images_closed_form():
  x = np.full((1, 3, 4, 1), 0.2, np.float32)
  y = np.full((1, 3, 4, 1), 0.6, np.float32)
  # σ = 0: SSIM = (2ab + C1)/(a² + b² + C1) · C2/C2.
  expected = (2 * 0.2 * 0.6 + 1e-4) / (0.04 + 0.36 + 1e-4)
  np.testing.assert_allclose(losses.ssim(x, y), np.full((1, 3, 4, 1), expected), atol=ATOL)
  err = losses.photometric_error(x, y)
  np.testing.assert_allclose(err, np.full((1, 3, 4, 1), 0.85 * (1 - expected) / 2 + 0.15 * 0.4),
                             atol=ATOL)


def test_ssim_matches_reference_and_reflection_padding():
  rng = np.random.default_rng(0)
  x = rng.uniform(size=(2, 5, 6, 3)).astype(np.float32)
  y = rng.uniform(size=(2, 5, 6, 3)).astype(np.float32)
  np.testing.assert_allclose(losses.ssim(x, y), _numpy_ssim(x, y), atol=ATOL)
  # Symmetric padding (edge repeated) would give a different border: make sure we are not it.
  xs = np.pad(x, [(0, 0), (1, 1), (1, 1), (0, 0)], mode="symmetric")
  ys = np.pad(y, [(0, 0), (1, 1), (1, 1), (0, 0)], mode="symmetric")
  symmetric_border = _numpy_ssim(xs, ys)[:, 1:-1, 1:-1][:, 0, 0]
  assert np.max(np.abs(losses.ssim(x, y).numpy()[:, 0, 0] - symmetric_border)) > 1e-3


def test_identical_images_ssim_one_and_zero_error():
  rng = np.random.default_rng(1)
  for x in (rng.uniform(size=(2, 6, 7, 3)), np.zeros((2, 6, 7, 3)), np.full((2, 6, 7, 3), 0.5)):
    x = x.astype(np.float32)
    np.testing.assert_array_equal(losses.ssim(x, x), np.ones_like(x))
    np.testing.assert_array_equal(losses.photometric_error(x, x), np.zeros((2, 6, 7, 1)))


def test_photometric_error_channel_means_and_alpha():
  rng = np.random.default_rng(2)
  x = rng.uniform(size=(1, 4, 5, 3)).astype(np.float32)
  y = rng.uniform(size=(1, 4, 5, 3)).astype(np.float32)
  ssim_loss = np.clip((1 - _numpy_ssim(x, y)) / 2, 0, 1).mean(-1, keepdims=True)
  l1 = np.abs(x - y).mean(-1, keepdims=True)
  np.testing.assert_allclose(losses.photometric_error(x, y), 0.85 * ssim_loss + 0.15 * l1, atol=ATOL)
  np.testing.assert_allclose(losses.photometric_error(x, y, alpha=0.0), l1, atol=1e-7)
  np.testing.assert_allclose(losses.ssim_loss_map(x, y), np.clip((1 - _numpy_ssim(x, y)) / 2, 0, 1),
                             atol=ATOL)


def test_min_reprojection_picks_minimum():
  a = np.array([1.0, 5.0, 3.0, 2.0], np.float32).reshape(1, 2, 2, 1)
  b = np.array([2.0, 4.0, 3.0, 9.0], np.float32).reshape(1, 2, 2, 1)
  c = np.array([3.0, 6.0, 0.5, 2.0], np.float32).reshape(1, 2, 2, 1)
  m, idx = losses.min_reprojection([a, b, c])
  np.testing.assert_array_equal(m.numpy().ravel(), [1.0, 4.0, 0.5, 2.0])
  np.testing.assert_array_equal(idx.numpy().ravel(), [0, 1, 2, 0])  # tie at the last pixel -> first
  assert idx.dtype == tf.int32 and idx.shape == (1, 2, 2, 1)
  # The gradient flows only into the selected map.
  ta, tb = tf.constant(a), tf.constant(b)
  with tf.GradientTape() as tape:
    tape.watch([ta, tb])
    total = tf.reduce_sum(losses.min_reprojection([ta, tb])[0])
  ga, gb = tape.gradient(total, [ta, tb])
  np.testing.assert_array_equal(ga.numpy().ravel(), [1.0, 0.0, 1.0, 1.0])
  np.testing.assert_array_equal(gb.numpy().ravel(), [0.0, 1.0, 0.0, 0.0])


def test_automask_removes_pixels_where_identity_is_lower():
  reproj = [np.array([0.1, 0.5, 0.3, 0.2], np.float32).reshape(1, 2, 2, 1),
            np.array([0.4, 0.6, 0.2, 0.9], np.float32).reshape(1, 2, 2, 1)]
  identity = [np.array([0.3, 0.05, 0.25, 0.2], np.float32).reshape(1, 2, 2, 1),
              np.array([0.3, 0.6, 0.9, 0.9], np.float32).reshape(1, 2, 2, 1)]
  m, mask = losses.automask(reproj, identity, noise_scale=0.0)
  # Pixel 1: identity 0.05 beats 0.5 -> masked; pixel 3: tie 0.2 = 0.2 -> identity wins.
  np.testing.assert_array_equal(mask.numpy().ravel(), [1.0, 0.0, 1.0, 0.0])
  np.testing.assert_allclose(m.numpy().ravel(), [0.1, 0.05, 0.2, 0.2])
  # With Monodepth2's 1e-5 noise the tie is broken at random but the clear cases are unchanged;
  # the noise is a deterministic function of the seed.
  m1, mask1 = losses.automask(reproj, identity, seed=7)
  m2, mask2 = losses.automask(reproj, identity, seed=7)
  m3, _ = losses.automask(reproj, identity, seed=tf.constant([8, 3]))
  np.testing.assert_array_equal(m1, m2)
  np.testing.assert_array_equal(mask1, mask2)
  np.testing.assert_array_equal(mask1.numpy().ravel()[:3], [1.0, 0.0, 1.0])
  assert np.any(m1.numpy() != m3.numpy())
  # The noise has the requested scale: 5 standard deviations of 1e-5 bound the deviation.
  assert np.max(np.abs(m1.numpy() - m.numpy())) < 5e-5


def test_smoothness_hand_computed():
  disp = np.array([[1.0, 2.0, 4.0], [1.0, 1.0, 1.0]], np.float32).reshape(1, 2, 3, 1)
  image = np.zeros((1, 2, 3, 3), np.float32)
  image[0, :, 2, :] = 1.0  # a vertical edge between columns 1 and 2, channel mean 1
  mean = disp.mean()  # 10/6
  # Un-normalised: ∂x |1−2|, |2−4| (weight 1, e^-1), 0, 0 -> mean over 4: (1 + 2e^-1)/4;
  # ∂y |0|, |1|, |3| with image ∂y = 0 -> mean over 3: 4/3.
  raw = (1 + 2 * np.exp(-1.0)) / 4 + 4.0 / 3.0
  np.testing.assert_allclose(losses.edge_aware_smoothness(disp, image, normalize=False), [raw],
                             rtol=1e-6)
  np.testing.assert_allclose(losses.edge_aware_smoothness(disp, image), [raw / (mean + 1e-7)],
                             rtol=1e-6)
  # Mean normalisation makes it invariant to the disparity scale; constant disparity gives 0.
  np.testing.assert_allclose(losses.edge_aware_smoothness(5 * disp, image),
                             losses.edge_aware_smoothness(disp, image), rtol=1e-6)
  np.testing.assert_array_equal(losses.edge_aware_smoothness(np.ones_like(disp), image), [0.0])


@pytest.mark.parametrize("case", ["black", "uniform", "random"])
def test_gradients_finite(case):
  rng = np.random.default_rng(3)
  if case == "black":
    a = b = np.zeros((2, 6, 8, 3), np.float32)
  elif case == "uniform":
    a = b = np.full((2, 6, 8, 3), 0.7, np.float32)
  else:
    a = rng.uniform(size=(2, 6, 8, 3)).astype(np.float32)
    b = rng.uniform(size=(2, 6, 8, 3)).astype(np.float32)
  pred = tf.constant(a)
  disp = tf.constant(np.zeros((2, 6, 8, 1), np.float32) if case == "black" else a[..., :1])
  with tf.GradientTape(persistent=True) as tape:
    tape.watch([pred, disp])
    err = losses.photometric_error(pred, b)
    m, mask = losses.automask([err, err + 0.1], [losses.photometric_error(b, b)], seed=1)
    total = tf.reduce_mean(m)
    smooth = tf.reduce_sum(losses.edge_aware_smoothness(disp, pred))
  for g in (tape.gradient(total, pred), tape.gradient(smooth, pred), tape.gradient(smooth, disp)):
    assert np.all(np.isfinite(g.numpy()))
  assert np.all(np.isfinite(m.numpy()))
  if case != "random":  # identical images: zero error everywhere
    np.testing.assert_array_equal(err.numpy(), 0.0)


def test_eager_graph_xla_agree():
  rng = np.random.default_rng(4)
  x = rng.uniform(size=(2, 6, 8, 3)).astype(np.float32)
  y = rng.uniform(size=(2, 6, 8, 3)).astype(np.float32)
  d = rng.uniform(0.1, 1.0, size=(2, 6, 8, 1)).astype(np.float32)

  def pipeline(x, y, d):
    e1 = losses.photometric_error(x, y)
    e2 = losses.photometric_error(y, x) + 0.01
    mn, idx = losses.min_reprojection([e1, e2])
    am, mask = losses.automask([e1, e2], [losses.photometric_error(x, x) + 0.05], seed=3)
    return (tf.reduce_sum(mn, [1, 2, 3]), tf.cast(tf.reduce_sum(idx, [1, 2, 3]), tf.float32),
            tf.reduce_sum(am, [1, 2, 3]), tf.reduce_sum(mask, [1, 2, 3]),
            losses.edge_aware_smoothness(d, x))

  outs = [pipeline(x, y, d)]
  sig = [tf.TensorSpec([None, 6, 8, 3]), tf.TensorSpec([None, 6, 8, 3]), tf.TensorSpec([None, 6, 8, 1])]
  outs.append(tf.function(pipeline, input_signature=sig)(x, y, d))
  outs.append(tf.function(pipeline, input_signature=sig, jit_compile=True)(x, y, d))
  for other in outs[1:]:
    for a, b in zip(outs[0], other):
      # Sums of 48 per-pixel values of O(0.3); XLA fusion reorders float32 ops (~1e-6 relative).
      np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=2e-5, atol=2e-5)


def test_bad_inputs_raise_typed_errors():
  x = np.zeros((1, 4, 4, 3), np.float32)
  with pytest.raises(InvalidInputError, match=r"expected a rank-4 tensor.*received shape"):
    losses.ssim(x[0], x[0])
  with pytest.raises(InvalidInputError, match="expected equal shapes"):
    losses.photometric_error(x, np.zeros((1, 4, 5, 3), np.float32))
  with pytest.raises(InvalidInputError, match="alpha"):
    losses.photometric_error(x, x, alpha=2.0)
  with pytest.raises(InvalidInputError, match=r"\[\]"):
    losses.min_reprojection([])
  with pytest.raises(InvalidInputError, match="list"):
    losses.min_reprojection(tf.zeros((1, 4, 4, 1)))
  with pytest.raises(InvalidInputError, match="1 channel"):
    losses.min_reprojection([x])
  with pytest.raises(InvalidInputError, match="noise_scale"):
    losses.automask([x[..., :1]], [x[..., :1]], noise_scale=-1.0)
  with pytest.raises(InvalidInputError, match="seed"):
    losses.automask([x[..., :1]], [x[..., :1]], seed=1.5)
  with pytest.raises(InvalidInputError, match="height and width"):
    losses.edge_aware_smoothness(np.zeros((1, 4, 5, 1), np.float32), x)
