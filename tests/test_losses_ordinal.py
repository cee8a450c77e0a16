"""Tests of tfdepth.losses.ordinal: DORN ordinal regression, SID classification, ranking loss."""

import math

import numpy as np
import pytest
import tensorflow as tf

from tfdepth import losses
from tfdepth.errors import InvalidInputError

# Values are sums of a few softplus/log terms of O(1) in float32: 1e-6 relative is ~10 ulps.
RTOL = 1e-6
EDGES = [1.0, 2.0, 4.0, 8.0]  # K = 3 bins: [1, 2), [2, 4), [4, 8]


def _softplus(x):
  return math.log1p(math.exp(x))


def test_ordinal_regression_hand_computed():
  # Depth 3 is in bin 1: ordinal labels [1, 0, 0].
  target = np.array([[[[3.0]]]], np.float32)
  logits = np.array([[[[2.0, -1.0, 0.0]]]], np.float32)
  # BCE(1, l) = softplus(−l), BCE(0, l) = softplus(l).
  expected = _softplus(-2.0) + _softplus(-1.0) + _softplus(0.0)
  np.testing.assert_allclose(losses.ordinal_regression_loss(logits, target, EDGES), [expected],
                             rtol=RTOL)
  # Two pixels, one invalid (depth 0) and one at depth 5 (bin 2, labels [1, 1, 0]).
  target2 = np.array([[[[0.0], [5.0]]]], np.float32)
  logits2 = np.zeros((1, 1, 2, 3), np.float32)
  np.testing.assert_allclose(losses.ordinal_regression_loss(logits2, target2, EDGES),
                             [3 * math.log(2.0)], rtol=RTOL)
  # Perfectly confident correct logits give ~0; the mask removes the only pixel -> exactly 0.
  confident = np.array([[[[30.0, -30.0, -30.0]]]], np.float32)
  assert losses.ordinal_regression_loss(confident, target, EDGES).numpy()[0] < 1e-12
  np.testing.assert_array_equal(
      losses.ordinal_regression_loss(logits, target, EDGES, mask=np.zeros_like(target)), [0.0])


def test_sid_cross_entropy_hand_computed():
  # Depths 3 (bin 1), 0.5 (below t_0 -> bin 0), 9 (above t_K -> bin 2), 2 (edge -> bin 1).
  target = np.array([3.0, 0.5, 9.0, 2.0], np.float32).reshape(1, 1, 4, 1)
  logits = np.tile(np.array([0.0, math.log(2.0), 0.0], np.float32), (1, 1, 4, 1))
  # Softmax = [1/4, 1/2, 1/4]: CE = log 2 for bin 1 and log 4 for bins 0 and 2.
  expected = (math.log(2) + math.log(4) + math.log(4) + math.log(2)) / 4
  np.testing.assert_allclose(losses.sid_cross_entropy(logits, target, EDGES), [expected], rtol=RTOL)
  # Edges given as a tensor (e.g. from tfdepth.geometry.sid_edges) work the same.
  np.testing.assert_allclose(losses.sid_cross_entropy(logits, target, tf.constant(EDGES)),
                             [expected], rtol=RTOL)


def test_ranking_loss_hand_computed():
  # log depth: z = 1 at (u=0, v=0), z = 0 at (u=1, v=0), z = 2 at (u=0, v=1).
  pred = np.exp(np.array([[1.0, 0.0], [2.0, 0.0]], np.float32)).reshape(1, 2, 2, 1)
  a = np.array([[[0, 0], [0, 0], [0, 0], [0, 1]]], np.int32)
  b = np.array([[[1, 0], [1, 0], [1, 0], [0, 0]]], np.int32)
  r = np.array([[1.0, -1.0, 0.0, 1.0]], np.float32)
  # Δ = z_a − z_b = [1, 1, 1, 1]: log(1 + e^−1), log(1 + e^1), 1², log(1 + e^−1).
  expected = (_softplus(-1.0) + _softplus(1.0) + 1.0 + _softplus(-1.0)) / 4
  np.testing.assert_allclose(losses.ranking_loss(pred, a, b, r), [expected], rtol=RTOL)
  # pair_mask drops pairs 2 and 3.
  np.testing.assert_allclose(
      losses.ranking_loss(pred, a, b, r, pair_mask=np.array([[1, 1, 0, 0]], np.float32)),
      [(_softplus(-1.0) + _softplus(1.0)) / 2], rtol=RTOL)
  # Scale of pred does not matter (log depth differences).
  np.testing.assert_allclose(losses.ranking_loss(10 * pred, a, b, r), [expected], rtol=1e-5)


def test_sample_ranking_pairs_deterministic_and_consistent():
  rng = np.random.default_rng(0)
  depth = rng.uniform(1.0, 10.0, (3, 6, 7, 1)).astype(np.float32)
  depth[0, :, :3] = 0.0  # invalid left part
  depth[2] = 0.0  # an image without valid pixels
  mask = np.ones_like(depth)
  mask[1, 0] = 0.0
  a1, b1, r1, m1 = losses.sample_ranking_pairs(depth, mask, num_pairs=64, seed=5)
  a2, b2, r2, m2 = losses.sample_ranking_pairs(depth, mask, num_pairs=64, seed=5)
  a3, _, _, _ = losses.sample_ranking_pairs(depth, mask, num_pairs=64, seed=6)
  for x, y in ((a1, a2), (b1, b2), (r1, r2), (m1, m2)):
    np.testing.assert_array_equal(x, y)
  assert np.any(a1.numpy() != a3.numpy())
  assert a1.shape == (3, 64, 2) and r1.shape == (3, 64) and a1.dtype == tf.int32
  np.testing.assert_array_equal(m1.numpy(), np.array([[1.0] * 64, [1.0] * 64, [0.0] * 64]))
  for img in (0, 1):
    for pts in (a1.numpy()[img], b1.numpy()[img]):
      u, v = pts[:, 0], pts[:, 1]
      assert np.all(depth[img, v, u, 0] > 0) and np.all(mask[img, v, u, 0] > 0)
    za = depth[img, a1.numpy()[img, :, 1], a1.numpy()[img, :, 0], 0]
    zb = depth[img, b1.numpy()[img, :, 1], b1.numpy()[img, :, 0], 0]
    expected = np.where(za > 1.02 * zb, 1.0, np.where(zb > 1.02 * za, -1.0, 0.0))
    np.testing.assert_array_equal(r1.numpy()[img], expected)
  # Loss on the sampled pairs of the ground truth itself is lower than on a reversed prediction.
  good = losses.ranking_loss(np.maximum(depth, 1.0), a1, b1, r1, m1).numpy()
  bad = losses.ranking_loss(1.0 / np.maximum(depth, 1.0), a1, b1, r1, m1).numpy()
  assert np.all(good[:2] < bad[:2]) and good[2] == 0.0 and bad[2] == 0.0


def test_graph_and_xla_with_unknown_batch():
  rng = np.random.default_rng(1)
  target = rng.uniform(0.5, 12.0, (2, 4, 5, 1)).astype(np.float32)
  target[0, 0] = 0.0
  logits = rng.normal(size=(2, 4, 5, 3)).astype(np.float32)
  pred = rng.uniform(1.0, 5.0, (2, 4, 5, 1)).astype(np.float32)

  def fn(logits, target, pred):
    a, b, r, m = losses.sample_ranking_pairs(target, num_pairs=16, seed=3)
    return (losses.ordinal_regression_loss(logits, target, EDGES),
            losses.sid_cross_entropy(logits, target, EDGES),
            losses.ranking_loss(pred, a, b, r, m))

  sig = [tf.TensorSpec([None, 4, 5, 3]), tf.TensorSpec([None, 4, 5, 1]), tf.TensorSpec([None, 4, 5, 1])]
  eager = fn(logits, target, pred)
  graph = tf.function(fn, input_signature=sig)(logits, target, pred)
  xla = tf.function(fn, input_signature=sig, jit_compile=True)(logits, target, pred)
  for e, g in zip(eager, graph):
    np.testing.assert_allclose(g, e, rtol=1e-6)
  # XLA: the classification losses agree to float32 reordering error; the stateless sampler is
  # deterministic per device/compiler but XLA's RNG lowering may differ, so only finiteness and
  # shape are compared for the ranking term.
  for e, x in zip(eager[:2], xla[:2]):
    np.testing.assert_allclose(x, e, rtol=1e-5)
  assert xla[2].shape == (2,) and np.all(np.isfinite(xla[2].numpy()))


def test_gradients_finite_on_degenerate_inputs():
  logits = tf.constant(np.zeros((1, 2, 2, 3), np.float32))
  zero = np.zeros((1, 2, 2, 1), np.float32)
  pred = tf.constant(zero)  # zero depth: log clamps
  pts = np.zeros((1, 3, 2), np.int32)
  with tf.GradientTape(persistent=True) as tape:
    tape.watch([logits, pred])
    l1 = tf.reduce_sum(losses.ordinal_regression_loss(logits, zero, EDGES))
    l2 = tf.reduce_sum(losses.sid_cross_entropy(logits, zero, EDGES))
    l3 = tf.reduce_sum(losses.ranking_loss(pred, pts, pts, np.array([[1.0, 0.0, -1.0]], np.float32)))
  assert l1.numpy() == 0.0 and l2.numpy() == 0.0  # all-invalid ground truth
  for g in (tape.gradient(l1, logits), tape.gradient(l2, logits), tape.gradient(l3, pred)):
    assert np.all(np.isfinite(g.numpy()))


def test_bad_inputs_raise_typed_errors():
  logits = np.zeros((1, 2, 2, 3), np.float32)
  target = np.ones((1, 2, 2, 1), np.float32)
  with pytest.raises(InvalidInputError, match=r"K \+ 1 = 4 edges.*received 3"):
    losses.ordinal_regression_loss(logits, target, [1.0, 2.0, 3.0])
  with pytest.raises(InvalidInputError, match="increasing"):
    losses.sid_cross_entropy(logits, target, [1.0, 3.0, 2.0, 4.0])
  with pytest.raises(InvalidInputError, match=r"expected a rank-4 tensor.*received shape"):
    losses.sid_cross_entropy(logits[0], target, EDGES)
  with pytest.raises(InvalidInputError, match="integer"):
    losses.ranking_loss(target, np.zeros((1, 2, 2), np.float32), np.zeros((1, 2, 2), np.int32),
                        np.zeros((1, 2), np.float32))
  with pytest.raises(InvalidInputError, match="num_pairs"):
    losses.sample_ranking_pairs(target, num_pairs=0)
  with pytest.raises(InvalidInputError, match="seed"):
    losses.sample_ranking_pairs(target, num_pairs=2, seed=[1, 2, 3])


def test_non_finite_logits_and_targets_at_invalid_pixels_do_not_leak():
  nan, inf = float("nan"), float("inf")
  # Pixels (row-major): 0 valid (target 3 -> bin 1), 1 target NaN with NaN logits, 2 valid
  # (target 1.5 -> bin 0), 3 masked with target 5 and logits (inf, −inf, NaN).
  logits = np.zeros((1, 2, 2, 3), np.float32)
  logits[0, 0, 1] = nan
  logits[0, 1, 1] = [inf, -inf, nan]
  target = np.array([3.0, nan, 1.5, 5.0], np.float32).reshape(1, 2, 2, 1)
  mask = np.array([1.0, 1.0, 1.0, 0.0], np.float32).reshape(1, 2, 2, 1)
  x = tf.constant(logits)
  with tf.GradientTape(persistent=True) as tape:
    tape.watch(x)
    ordinal = losses.ordinal_regression_loss(x, target, EDGES, mask)
    sid = losses.sid_cross_entropy(x, target, EDGES, mask)
  # Zero logits: every sigmoid BCE is log 2 (3 classifiers), every 3-way softmax CE is log 3.
  np.testing.assert_allclose(ordinal, [3 * math.log(2.0)], rtol=RTOL)
  np.testing.assert_allclose(sid, [math.log(3.0)], rtol=RTOL)
  # d/dlogit: (sigmoid − label)/n and (softmax − one-hot)/n with n = 2 valid pixels.
  g = tape.gradient(ordinal, x).numpy()[0]
  np.testing.assert_allclose(g[0, 0], [-0.25, 0.25, 0.25], rtol=RTOL)  # ordinal labels [1, 0, 0]
  np.testing.assert_allclose(g[1, 0], [0.25, 0.25, 0.25], rtol=RTOL)   # ordinal labels [0, 0, 0]
  np.testing.assert_array_equal(g[0, 1], 0.0)
  np.testing.assert_array_equal(g[1, 1], 0.0)
  g = tape.gradient(sid, x).numpy()[0]
  np.testing.assert_allclose(g[0, 0], [1 / 6, -1 / 3, 1 / 6], rtol=RTOL)  # class 1
  np.testing.assert_allclose(g[1, 0], [-1 / 3, 1 / 6, 1 / 6], rtol=RTOL)  # class 0
  np.testing.assert_array_equal(g[0, 1], 0.0)
  np.testing.assert_array_equal(g[1, 1], 0.0)


def test_ranking_loss_rejects_out_of_range_pairs():
  pred = np.array([1.0, 2.0, 4.0, 8.0], np.float32).reshape(1, 1, 4, 1)  # H = 1, W = 4
  inside = np.array([[[3, 0]]], np.int32)
  origin = np.array([[[0, 0]]], np.int32)
  one = np.array([[1.0]], np.float32)
  # In range: Δ = log 8 − log 1, r = +1 -> softplus(−log 8) = log(1 + 1/8).
  np.testing.assert_allclose(losses.ranking_loss(pred, inside, origin, one), [math.log(9 / 8)],
                             rtol=RTOL)
  # (u, v) = (0, 3) swaps the axes: v = 3 is outside a 1-row image (was clamped to (0, 0)).
  with pytest.raises(InvalidInputError, match=r"point_a: pair 0 of image 0.*\(0, 3\).*1x4.*0 <= v < 1"):
    losses.ranking_loss(pred, np.array([[[0, 3]]], np.int32), origin, one)
  with pytest.raises(InvalidInputError, match=r"point_b: pair 1 of image 0.*\(4, 0\).*0 <= u < 4"):
    losses.ranking_loss(pred, np.array([[[0, 0], [1, 0]]], np.int32),
                        np.array([[[1, 0], [4, 0]]], np.int32), np.array([[1.0, 1.0]], np.float32))
  with pytest.raises(InvalidInputError, match=r"\(-1, 0\)"):
    losses.ranking_loss(pred, np.array([[[-1, 0]]], np.int32), origin, one)
  # Padding pairs (pair_mask 0) are not checked and do not change the value.
  two_a = np.array([[[3, 0], [99, -5]]], np.int32)
  two_b = np.array([[[0, 0], [-1, 7]]], np.int32)
  np.testing.assert_allclose(
      losses.ranking_loss(pred, two_a, two_b, np.array([[1.0, 1.0]], np.float32),
                          pair_mask=np.array([[1.0, 0.0]], np.float32)),
      [math.log(9 / 8)], rtol=RTOL)
  # In a tf.function the same check is a run-time assertion naming the image size and the point.
  sig = [tf.TensorSpec([None, 1, 4, 1]), tf.TensorSpec([None, None, 2], tf.int32),
         tf.TensorSpec([None, None, 2], tf.int32), tf.TensorSpec([None, None])]
  graph = tf.function(losses.ranking_loss, input_signature=sig)
  np.testing.assert_allclose(graph(pred, inside, origin, one), [math.log(9 / 8)], rtol=RTOL)
  with pytest.raises(tf.errors.InvalidArgumentError,
                     match=r"(?s)point_a: pixel coordinates \(u, v\) outside the image.*\[1 4\].*\[0 3\]"):
    graph(pred, np.array([[[0, 3]]], np.int32), origin, one)
  # No pairs at all (P = 0) is fine in both modes.
  empty = np.zeros((1, 0, 2), np.int32)
  np.testing.assert_array_equal(graph(pred, empty, empty, np.zeros((1, 0), np.float32)), [0.0])
  np.testing.assert_array_equal(losses.ranking_loss(pred, empty, empty, np.zeros((1, 0), np.float32)),
                                [0.0])
