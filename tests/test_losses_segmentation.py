"""Tests of tfdepth.losses.segmentation: U-Net border weight map and weighted cross-entropy."""

import math

import numpy as np
import pytest
import tensorflow as tf

from tfdepth import losses
from tfdepth.errors import InvalidInputError

# float32 results of exp/log of O(1) values: 1e-6 relative is ~10 ulps.
RTOL = 1e-6


def _border(d1, d2, w0=10.0, sigma=5.0):
  return w0 * math.exp(-((d1 + d2) ** 2) / (2 * sigma ** 2))


def test_weight_map_1d_gap():
  labels = np.array([1, 0, 0, 0, 2]).reshape(1, 1, 5, 1)
  # Between two objects 4 px apart d1 + d2 = 4 on every gap pixel; objects keep w_c = 1.
  gap = 1.0 + _border(1, 3)
  np.testing.assert_allclose(losses.unet_weight_map_numpy(labels).ravel(),
                             [1.0, gap, gap, gap, 1.0], rtol=RTOL)


def test_weight_map_2d_three_objects_and_class_weights():
  labels = np.zeros((4, 4), np.int64)
  labels[0, 0] = 1
  labels[2, 2] = 2
  labels[3, 0] = 3
  got = losses.unet_weight_map_numpy(labels, class_weights=(0.5, 2.0), w0=4.0, sigma=2.0)
  assert got.shape == (4, 4) and got.dtype == np.float32

  def expected(v, u):
    if labels[v, u]:
      return 2.0
    dists = sorted(math.hypot(v - y, u - x) for y, x in ((0, 0), (2, 2), (3, 0)))
    return 0.5 + _border(dists[0], dists[1], w0=4.0, sigma=2.0)

  np.testing.assert_allclose(got, [[expected(v, u) for u in range(4)] for v in range(4)], rtol=RTOL)
  # E.g. (1, 1): d1 = d2 = √2 to objects 1 and 2 -> 0.5 + 4·exp(−8/8).
  np.testing.assert_allclose(got[1, 1], 0.5 + 4.0 * math.exp(-1.0), rtol=RTOL)


def test_weight_map_single_object_and_batch_shapes():
  labels = np.zeros((2, 3, 4, 1), np.int32)
  labels[0, 1, 1] = 7  # one object: no border term
  np.testing.assert_array_equal(losses.unet_weight_map_numpy(labels), np.ones((2, 3, 4, 1)))
  labels[1, 0, 0] = 1
  labels[1, 0, 3] = 2
  tf_map = losses.unet_weight_map(tf.constant(labels), w0=2.0, sigma=3.0)
  assert tf_map.shape == (2, 3, 4, 1)
  np.testing.assert_array_equal(tf_map.numpy(), losses.unet_weight_map_numpy(labels, w0=2.0, sigma=3.0))
  # The documented use: precompute the map in a tf.data pipeline.
  ds = tf.data.Dataset.from_tensor_slices(labels).map(lambda l: losses.unet_weight_map(l, w0=2.0, sigma=3.0))
  from_ds = np.stack([x.numpy() for x in ds])
  np.testing.assert_array_equal(from_ds, tf_map.numpy())


def test_border_weighted_cross_entropy_hand_computed():
  # Two classes, logits [0, ln 3] -> p = [1/4, 3/4].
  logits = np.tile(np.array([0.0, math.log(3.0)], np.float32), (1, 1, 3, 1))
  labels = np.array([1, 0, 255]).reshape(1, 1, 3, 1)  # 255 = ignore (masked below)
  weights = np.array([2.0, 0.5, 9.0], np.float32).reshape(1, 1, 3, 1)
  mask = np.array([1.0, 1.0, 0.0], np.float32).reshape(1, 1, 3, 1)
  got = losses.border_weighted_cross_entropy(logits, labels, weights, mask)
  np.testing.assert_allclose(got, [(2.0 * math.log(4 / 3) + 0.5 * math.log(4)) / 2], rtol=RTOL)
  # Unit weights and no mask: the plain mean cross-entropy.
  got = losses.border_weighted_cross_entropy(logits[:, :, :2], labels[:, :, :2],
                                             np.ones((1, 1, 2, 1), np.float32))
  np.testing.assert_allclose(got, [(math.log(4 / 3) + math.log(4)) / 2], rtol=RTOL)


def test_cross_entropy_graph_xla_gradient():
  rng = np.random.default_rng(0)
  logits = rng.normal(size=(2, 4, 5, 3)).astype(np.float32)
  labels = rng.integers(0, 3, (2, 4, 5, 1)).astype(np.int32)
  weights = rng.uniform(1, 5, (2, 4, 5, 1)).astype(np.float32)
  fn = losses.border_weighted_cross_entropy
  sig = [tf.TensorSpec([None, 4, 5, 3]), tf.TensorSpec([None, 4, 5, 1], tf.int32),
         tf.TensorSpec([None, 4, 5, 1])]
  eager = fn(logits, labels, weights).numpy()
  np.testing.assert_allclose(tf.function(fn, input_signature=sig)(logits, labels, weights), eager,
                             rtol=RTOL)
  # XLA reorders the float32 sums over 20 pixels: a few ulps.
  np.testing.assert_allclose(tf.function(fn, input_signature=sig, jit_compile=True)(
      logits, labels, weights), eager, rtol=1e-5)
  x = tf.constant(logits)
  with tf.GradientTape() as tape:
    tape.watch(x)
    value = tf.reduce_sum(fn(x, labels, weights, mask=np.zeros((2, 4, 5, 1), np.float32)))
  assert value.numpy() == 0.0  # all-masked
  np.testing.assert_array_equal(tape.gradient(value, x).numpy(), 0.0)


def test_bad_inputs_raise_typed_errors():
  with pytest.raises(InvalidInputError, match="integer"):
    losses.unet_weight_map_numpy(np.zeros((3, 3), np.float32))
  with pytest.raises(InvalidInputError, match="class_weights"):
    losses.unet_weight_map_numpy(np.zeros((3, 3), np.int32), class_weights=(1.0, 2.0, 3.0))
  with pytest.raises(InvalidInputError, match="sigma"):
    losses.unet_weight_map(tf.zeros((1, 3, 3, 1), tf.int32), sigma=0.0)
  with pytest.raises(InvalidInputError, match=r"received \(2, 3, 3, 3, 1\)"):
    losses.unet_weight_map_numpy(np.zeros((2, 3, 3, 3, 1), np.int32))
  with pytest.raises(InvalidInputError, match="integer class indices"):
    losses.border_weighted_cross_entropy(np.zeros((1, 2, 2, 2), np.float32),
                                         np.zeros((1, 2, 2, 1), np.float32),
                                         np.ones((1, 2, 2, 1), np.float32))
