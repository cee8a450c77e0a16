"""Tests of tfdepth.losses.depth: hand-computed values, invariants, NaN-free gradients, XLA."""

import math

import numpy as np
import pytest
import tensorflow as tf

from tfdepth import losses
from tfdepth.errors import InvalidInputError

# float32 has a 2^-24 ≈ 6e-8 relative resolution; the losses sum a handful of terms, so 1e-5
# relative is ~100 ulps of headroom while still catching any formula error (which changes O(1e-1)).
RTOL = 1e-5
ATOL = 1e-6


def _d(values):
  """A (1, 1, N, 1) float32 depth row."""
  return np.asarray(values, np.float32).reshape(1, 1, -1, 1)


def _modes(fn, *args):
  """Values of fn(*args) eagerly, in tf.function and under XLA, with an unknown batch size."""
  sig = [tf.TensorSpec([None] + list(np.shape(a))[1:], tf.as_dtype(np.asarray(a).dtype)) for a in args]
  eager = fn(*args)
  graph = tf.function(fn, input_signature=sig)(*args)
  xla = tf.function(fn, input_signature=sig, jit_compile=True)(*args)
  return [np.asarray(eager), np.asarray(graph), np.asarray(xla)]


def _grad(fn, pred, *args):
  pred = tf.constant(pred)
  with tf.GradientTape() as tape:
    tape.watch(pred)
    value = fn(pred, *args)
  return value.numpy(), tape.gradient(value, pred).numpy()


E = math.e
# Row with log-differences d = [1, 2] on the two valid pixels; the third pixel has target 0.
PRED = _d([E, E ** 2, 5.0])
TARGET = _d([1.0, 1.0, 0.0])


def test_scale_invariant_log_loss_hand_computed():
  # mean d² = (1 + 4)/2 = 2.5, mean d = 1.5.
  np.testing.assert_allclose(losses.scale_invariant_log_loss(PRED, TARGET), [2.5 - 0.5 * 2.25],
                             rtol=RTOL)
  np.testing.assert_allclose(
      losses.scale_invariant_log_loss(PRED, TARGET, variance_focus=1.0), [0.25], rtol=RTOL)
  np.testing.assert_allclose(
      losses.scale_invariant_log_loss(PRED, TARGET, variance_focus=0.0), [2.5], rtol=RTOL)
  # The mask removes the second pixel: d = [1], loss = 1 − 0.5.
  mask = _d([1.0, 0.0, 1.0])
  np.testing.assert_allclose(losses.scale_invariant_log_loss(PRED, TARGET, mask), [0.5], rtol=RTOL)


def test_silog_bts_hand_computed():
  np.testing.assert_allclose(losses.silog_bts_loss(PRED, TARGET),
                             [10.0 * math.sqrt(2.5 - 0.85 * 2.25)], rtol=RTOL)
  np.testing.assert_allclose(losses.silog_bts_loss(PRED, TARGET, variance_focus=0.5, scale=2.0),
                             [2.0 * math.sqrt(1.375)], rtol=RTOL)


def test_scale_invariance_with_lambda_one():
  rng = np.random.default_rng(0)
  pred = rng.uniform(0.5, 20.0, (3, 5, 7, 1)).astype(np.float32)
  target = rng.uniform(0.5, 20.0, (3, 5, 7, 1)).astype(np.float32)
  target[0, :2] = 0.0
  base = losses.scale_invariant_log_loss(pred, target, variance_focus=1.0).numpy()
  for s in (0.1, 3.0, 250.0):
    scaled = losses.scale_invariant_log_loss(pred * s, target, variance_focus=1.0).numpy()
    # log s cancels exactly in exact arithmetic; float32 logs of values up to 5e3 carry ~5e-7
    # absolute error each, and the loss is O(0.5), so 2e-5 absolute is a safe bound.
    np.testing.assert_allclose(scaled, base, atol=2e-5)
  # λ < 1 is not invariant: a scale of 3 adds (1 − λ)·log(3)² + cross terms.
  assert abs(losses.scale_invariant_log_loss(pred * 3.0, target).numpy()[0]
             - losses.scale_invariant_log_loss(pred, target).numpy()[0]) > 0.1


def test_eigen_pairwise_equals_literal_pairs_and_si_lambda_one():
  rng = np.random.default_rng(1)
  pred = rng.uniform(0.5, 10.0, (2, 4, 5, 1)).astype(np.float32)
  target = rng.uniform(0.5, 10.0, (2, 4, 5, 1)).astype(np.float32)
  mask = (rng.uniform(size=(2, 4, 5, 1)) > 0.3).astype(np.float32)
  got = losses.eigen_pairwise_loss(pred, target, mask).numpy()
  for b in range(2):
    valid = mask[b].ravel() > 0
    lp = np.log(pred[b].ravel()[valid].astype(np.float64))
    lt = np.log(target[b].ravel()[valid].astype(np.float64))
    n = lp.size
    literal = sum(((lp[i] - lp[j]) - (lt[i] - lt[j])) ** 2 for i in range(n) for j in range(n))
    np.testing.assert_allclose(got[b], literal / (2 * n * n), rtol=1e-4)  # float32 vs float64 sums
  si1 = losses.scale_invariant_log_loss(pred, target, mask, variance_focus=1.0).numpy()
  np.testing.assert_allclose(got, si1, rtol=1e-4, atol=1e-6)


def test_berhu_branches_and_batch_threshold():
  pred = _d([1.0, 2.0, 4.0, 6.0])
  target = _d([1.0, 1.0, 1.0, 1.0])
  # r = [0, 1, 3, 5], c = 0.2·5 = 1: L1 below c, (r² + c²)/(2c) above: [0, 1, 5, 13].
  np.testing.assert_allclose(losses.berhu_loss(pred, target), [19.0 / 4.0], rtol=RTOL)
  # c is the max over the *batch*: a second image with residual 20 makes c = 4, so the first image
  # is [0, 1, 3, (25 + 16)/8] and the second (r = 20 > 4) gives (400 + 16)/8 = 52 on one pixel.
  pred2 = np.concatenate([pred, _d([21.0, 1.0, 1.0, 1.0])], axis=0)
  target2 = np.concatenate([target, target], axis=0)
  np.testing.assert_allclose(losses.berhu_loss(pred2, target2),
                             [(0 + 1 + 3 + 41.0 / 8.0) / 4.0, 52.0 / 4.0], rtol=RTOL)
  # Continuity at |r| = c: both branches give c.
  np.testing.assert_allclose(losses.berhu_loss(_d([2.0]), _d([1.0]), threshold_fraction=1.0), [1.0],
                             rtol=RTOL)
  # Invalid pixels (target 0) neither count nor set c: c = 0.2·1, so r = 1 is in the quadratic
  # branch (1 + 0.04)/0.4 = 2.6 (had the invalid residual 100 set c = 20, the value would be 1).
  np.testing.assert_allclose(losses.berhu_loss(_d([2.0, 100.0]), _d([1.0, 0.0])), [2.6], rtol=RTOL)


def test_l1_l2_masked():
  pred = _d([1.0, 3.0, 7.0, 2.0])
  target = _d([2.0, 1.0, 0.0, 2.0])
  np.testing.assert_allclose(losses.l1_loss(pred, target), [(1 + 2 + 0) / 3.0], rtol=RTOL)
  np.testing.assert_allclose(losses.l2_loss(pred, target), [(1 + 4 + 0) / 3.0], rtol=RTOL)
  mask = _d([1.0, 0.0, 1.0, 1.0])
  np.testing.assert_allclose(losses.l1_loss(pred, target, mask), [0.5], rtol=RTOL)


def test_gradient_loss_hand_computed():
  d = np.array([[0.0, 1.0], [2.0, 4.0]], np.float32)
  pred = np.exp(d).reshape(1, 2, 2, 1)
  target = np.ones((1, 2, 2, 1), np.float32)
  # dx: 1, 2; dy: 2, 3 -> (1 + 4 + 4 + 9)/4.
  np.testing.assert_allclose(losses.gradient_loss(pred, target), [18.0 / 4.0], rtol=RTOL)
  mask = np.array([[1.0, 1.0], [1.0, 0.0]], np.float32).reshape(1, 2, 2, 1)
  # Only dx on row 0 (1) and dy on column 0 (2) survive; n = 3.
  np.testing.assert_allclose(losses.gradient_loss(pred, target, mask), [5.0 / 3.0], rtol=RTOL)


def test_gradient_matching_hand_computed():
  d = np.array([0.0, 1.0, 3.0, 6.0, 10.0], np.float32)
  pred = np.exp(d).reshape(1, 1, 5, 1)
  target = np.ones_like(pred)
  # Scale 0: |d[i+2] − d[i]| = 3, 5, 7 over n = 5; scale 1: [0, 3, 10] -> 10 over n = 3;
  # scales 2, 3 have fewer than 3 pixels per row: 0.
  np.testing.assert_allclose(losses.gradient_matching_loss(pred, target), [3.0 + 10.0 / 3.0],
                             rtol=RTOL)
  np.testing.assert_allclose(losses.gradient_matching_loss(pred, target, num_scales=1), [3.0],
                             rtol=RTOL)
  # Scale invariance (log differences) and vertical differences: the transposed image is equal.
  np.testing.assert_allclose(
      losses.gradient_matching_loss(7.0 * pred.transpose(0, 2, 1, 3), target.transpose(0, 2, 1, 3)),
      [3.0 + 10.0 / 3.0], rtol=RTOL)


ALL_DEPTH_LOSSES = [
    losses.scale_invariant_log_loss, losses.silog_bts_loss, losses.eigen_pairwise_loss,
    losses.berhu_loss, losses.l1_loss, losses.l2_loss, losses.gradient_loss,
    losses.gradient_matching_loss,
]


@pytest.mark.parametrize("fn", ALL_DEPTH_LOSSES, ids=lambda f: f.__name__)
def test_degenerate_inputs_finite(fn):
  rng = np.random.default_rng(2)
  target = rng.uniform(1.0, 10.0, (2, 4, 6, 1)).astype(np.float32)
  # All-invalid ground truth: loss 0, gradient 0.
  value, grad = _grad(fn, target, np.zeros_like(target))
  np.testing.assert_array_equal(value, [0.0, 0.0])
  np.testing.assert_array_equal(grad, np.zeros_like(target))
  # Zero (and negative) predictions against valid ground truth: finite value and gradient.
  value, grad = _grad(fn, np.where(target > 5.0, 0.0, -1.0).astype(np.float32), target)
  assert np.all(np.isfinite(value)) and np.all(np.isfinite(grad))
  # Perfect prediction (sqrt(0) in SILog): 0 and a finite (zero) gradient.
  value, grad = _grad(fn, target, target)
  np.testing.assert_allclose(value, [0.0, 0.0], atol=ATOL)
  assert np.all(np.isfinite(grad))
  # An image with a single valid pixel next to a normal one.
  single = target.copy()
  single[0] = 0.0
  single[0, 1, 1] = 3.0
  value, grad = _grad(fn, target, single)
  assert np.all(np.isfinite(value)) and np.all(np.isfinite(grad))


@pytest.mark.parametrize("fn", ALL_DEPTH_LOSSES, ids=lambda f: f.__name__)
def test_eager_graph_xla_agree(fn):
  rng = np.random.default_rng(3)
  pred = rng.uniform(0.5, 10.0, (2, 8, 12, 1)).astype(np.float32)
  target = rng.uniform(0.5, 10.0, (2, 8, 12, 1)).astype(np.float32)
  target[:, :3] = 0.0
  eager, graph, xla = _modes(fn, pred, target)
  assert eager.shape == (2,)
  np.testing.assert_allclose(graph, eager, rtol=RTOL)
  # XLA may fuse/reorder the reductions: a few float32 ulps on sums of ~100 terms.
  np.testing.assert_allclose(xla, eager, rtol=1e-4)


def test_bad_inputs_raise_typed_errors():
  good = np.ones((1, 2, 2, 1), np.float32)
  with pytest.raises(InvalidInputError, match=r"expected a rank-4 tensor.*received shape"):
    losses.l1_loss(np.ones((2, 2, 1), np.float32), good)
  with pytest.raises(InvalidInputError, match="1 channel"):
    losses.l1_loss(np.ones((1, 2, 2, 3), np.float32), good)
  with pytest.raises(InvalidInputError, match="expected equal shapes"):
    losses.l2_loss(good, np.ones((1, 3, 2, 1), np.float32))
  with pytest.raises(InvalidInputError, match=r"variance_focus.*1\.5"):
    losses.scale_invariant_log_loss(good, good, variance_focus=1.5)
  with pytest.raises(InvalidInputError, match="scale"):
    losses.silog_bts_loss(good, good, scale=0.0)
  with pytest.raises(InvalidInputError, match="threshold_fraction"):
    losses.berhu_loss(good, good, threshold_fraction=0.0)
  with pytest.raises(InvalidInputError, match="num_scales"):
    losses.gradient_matching_loss(good, good, num_scales=0)
  with pytest.raises(InvalidInputError, match="mask"):
    losses.l1_loss(good, good, mask=np.ones((1, 2, 2), np.float32))
  with pytest.raises(InvalidInputError, match="dtype string"):
    losses.l1_loss(tf.constant([["a"]]), good)


# --- Non-finite values at invalid pixels (NaN / ±inf in pred and target) -----------------------
NAN, INF = float("nan"), float("inf")
# Image 0: pixels 0 and 1 are valid with d = log pred − log target = [1, 2] and r = pred − target =
# [e − 1, e² − 1]; pixels 2–7 are invalid (mask 0, target NaN / ±inf / 0) and hold NaN / ±inf in
# pred, target or both. Image 1 has no valid pixel at all, and non-finite values everywhere.
DIRTY_PRED = np.array([[E, E ** 2, NAN, INF, 2.0, -INF, NAN, INF],
                       [NAN, INF, -INF, 1.0, 2.0, NAN, INF, 5.0]], np.float32).reshape(2, 1, 8, 1)
DIRTY_TARGET = np.array([[1.0, 1.0, 3.0, NAN, INF, 0.0, -INF, INF],
                         [NAN, INF, 0.0, -INF, 3.0, 1.0, NAN, 0.0]], np.float32).reshape(2, 1, 8, 1)
DIRTY_MASK = np.array([[1, 1, 0, 1, 0, 1, 1, 0],
                       [1, 0, 1, 1, 0, 0, 1, 1]], np.float32).reshape(2, 1, 8, 1)
R1, R2 = E - 1.0, E ** 2 - 1.0
BERHU_C = 0.2 * R2  # both residuals exceed c = 0.2·max r: quadratic branch (r² + c²)/(2c)
SILOG_V = 2.5 - 0.85 * 1.5 ** 2
# (value of image 0, d loss / d pred on its two valid pixels), derived by hand with n = 2:
#   L1  = mean|r|            -> grad sign(r)/n;   L2 = mean r² -> grad 2r/n = r;
#   berHu (c constant)       -> grad r/(c·n);
#   SI  = mean d² − λ mean(d)² -> dL/dd_i = d_i − λ·mean(d) (n = 2), times dd/dpred = 1/pred;
#   SILog = 10·sqrt(V)       -> 10/(2 sqrt V) · dV/dpred with V the SI value at λ = 0.85.
DIRTY_EXPECTED = {
    "l1_loss": ((R1 + R2) / 2, [0.5, 0.5]),
    "l2_loss": ((R1 ** 2 + R2 ** 2) / 2, [R1, R2]),
    "berhu_loss": ((R1 ** 2 + R2 ** 2 + 2 * BERHU_C ** 2) / (4 * BERHU_C),
                   [R1 / (2 * BERHU_C), R2 / (2 * BERHU_C)]),
    "scale_invariant_log_loss": (2.5 - 0.5 * 2.25, [(1 - 0.75) / E, (2 - 0.75) / E ** 2]),
    "eigen_pairwise_loss": (0.25, [(1 - 1.5) / E, (2 - 1.5) / E ** 2]),
    "silog_bts_loss": (10 * math.sqrt(SILOG_V),
                       [10 / (2 * math.sqrt(SILOG_V)) * (1 - 1.275) / E,
                        10 / (2 * math.sqrt(SILOG_V)) * (2 - 1.275) / E ** 2]),
}


@pytest.mark.parametrize("name", sorted(DIRTY_EXPECTED))
def test_non_finite_values_at_invalid_pixels_do_not_leak(name):
  value, grad = _grad(getattr(losses, name), DIRTY_PRED, DIRTY_TARGET, DIRTY_MASK)
  want_value, want_grad = DIRTY_EXPECTED[name]
  # The value only sees the two valid pixels of image 0; image 1 has none: exactly 0.
  np.testing.assert_allclose(value, [want_value, 0.0], rtol=RTOL, atol=0.0)
  np.testing.assert_allclose(grad[0, 0, :2, 0], want_grad, rtol=RTOL)
  # Exactly zero (not merely finite) at every invalid pixel, whatever it held.
  np.testing.assert_array_equal(grad[0, 0, 2:, 0], 0.0)
  np.testing.assert_array_equal(grad[1], 0.0)


def test_gradient_loss_non_finite_at_invalid_pixels():
  # d = log pred (target 1) on the 3 valid pixels: [[0, 1, ·], [2, ·, ·]]. Invalid: (0, 2) target
  # NaN (pred inf), (1, 1) masked with pred NaN / target inf, (1, 2) masked with pred −inf /
  # target NaN. Surviving differences: dx (0,0)→(0,1) = 1, dy (0,0)→(1,0) = 2; n = 3.
  pred = np.array([[1.0, E, INF], [E ** 2, NAN, -INF]], np.float32).reshape(1, 2, 3, 1)
  target = np.array([[1.0, 1.0, NAN], [1.0, INF, NAN]], np.float32).reshape(1, 2, 3, 1)
  mask = np.array([[1, 1, 1], [1, 0, 0]], np.float32).reshape(1, 2, 3, 1)
  value, grad = _grad(losses.gradient_loss, pred, target, mask)
  np.testing.assert_allclose(value, [5.0 / 3.0], rtol=RTOL)
  # L = ((d01 − d00)² + (d10 − d00)²)/3: dL/dd = [−2, 2/3, 4/3], times dd/dpred = 1/pred.
  g = grad[0, :, :, 0]
  np.testing.assert_allclose([g[0, 0], g[0, 1], g[1, 0]], [-2.0, (2 / 3) / E, (4 / 3) / E ** 2],
                             rtol=RTOL)
  np.testing.assert_array_equal([g[0, 2], g[1, 1], g[1, 2]], 0.0)


def test_gradient_matching_loss_non_finite_at_invalid_pixels():
  # d = log pred = [0, 1, 3, ·, 10] (target 1); pixel 3 is masked with pred NaN and target inf,
  # and a second row is entirely invalid (target NaN / −inf, pred ±inf / NaN; no valid pair).
  pred = np.array([[1.0, E, E ** 3, NAN, E ** 10],
                   [INF, NAN, -INF, 1.0, INF]], np.float32).reshape(1, 2, 5, 1)
  target = np.array([[1.0, 1.0, 1.0, INF, 1.0],
                     [NAN, -INF, INF, NAN, 0.0]], np.float32).reshape(1, 2, 5, 1)
  mask = np.array([[1, 1, 1, 0, 1], [1, 1, 0, 1, 1]], np.float32).reshape(1, 2, 5, 1)
  value, grad = _grad(losses.gradient_matching_loss, pred, target, mask)
  # Scale 0: pairs two apart with both valid: |3 − 0| and |10 − 3| over n0 = 4 valid pixels.
  # Scale 1 (every 2nd pixel, row 0 only): [0, 3, 10] -> |10 − 0| over n1 = 3. Scales 2, 3: no pair.
  np.testing.assert_allclose(value, [10.0 / 4.0 + 10.0 / 3.0], rtol=RTOL)
  # dL/dd = [−1/4 − 1/3, 0, 1/4 − 1/4, ·, 1/4 + 1/3], times dd/dpred = 1/pred.
  g = grad[0, :, :, 0]
  np.testing.assert_allclose(g[0, [0, 4]], [-7.0 / 12.0, (7.0 / 12.0) / E ** 10], rtol=RTOL)
  np.testing.assert_array_equal(g[0, [1, 2, 3]], 0.0)  # 1, 2: no net pair; 3: invalid
  np.testing.assert_array_equal(g[1], 0.0)


def test_nan_target_without_mask_and_keras_wrapper():
  # The audit case: target [3, NaN, 1, 2] (NaN = no ground truth), pred 2 everywhere.
  pred = np.full((1, 2, 2, 1), 2.0, np.float32)
  target = np.array([3.0, NAN, 1.0, 2.0], np.float32).reshape(1, 2, 2, 1)
  value, grad = _grad(losses.l1_loss, pred, target)
  np.testing.assert_allclose(value, [2.0 / 3.0], rtol=RTOL)  # (1 + 1 + 0)/3
  np.testing.assert_array_equal(grad.ravel(), np.float32([-1.0, 0.0, 1.0, 0.0]) / np.float32(3.0))
  # berHu: r = [1, ·, 1, 0], c = 0.2: (1 + 0.04)/0.4 = 2.6 twice, 0 once -> 5.2/3; grad r/(c·n).
  value, grad = _grad(losses.berhu_loss, pred, target)
  np.testing.assert_allclose(value, [5.2 / 3.0], rtol=RTOL)
  np.testing.assert_allclose(grad.ravel(), [-5.0 / 3.0, 0.0, 5.0 / 3.0, 0.0], rtol=RTOL)
  assert grad.ravel()[1] == 0.0
  # The Keras wrapper (y_true, y_pred) goes through the same path.
  var = tf.Variable(pred)
  with tf.GradientTape() as tape:
    out = losses.MaskedL1Loss()(target, var)
  np.testing.assert_allclose(out.numpy(), 2.0 / 3.0, rtol=RTOL)
  assert np.array_equal(tape.gradient(out, var).numpy().ravel(),
                        np.float32([-1.0, 0.0, 1.0, 0.0]) / np.float32(3.0))


def test_non_finite_target_is_invalid_even_where_mask_is_one():
  # An unmasked inf ground truth is no measurement: it is skipped like 0 / NaN, not a loss of inf.
  pred = _d([2.0, 2.0, 5.0])
  target = _d([3.0, INF, -INF])
  for fn in (losses.l1_loss, losses.berhu_loss):
    value, grad = _grad(fn, pred, target)
    # One valid pixel, r = −1: L1 = 1 with grad −1; berHu c = 0.2 < 1: (1 + 0.04)/0.4, grad −1/0.2.
    want = (1.0, -1.0) if fn is losses.l1_loss else (2.6, -5.0)
    np.testing.assert_allclose(value, [want[0]], rtol=RTOL)
    np.testing.assert_allclose(grad.ravel(), [want[1], 0.0, 0.0], rtol=RTOL)
