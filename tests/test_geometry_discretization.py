"""Tests of tfdepth.geometry.discretization (DORN spacing-increasing bins, ordinal targets)."""

import numpy as np
import pytest
import tensorflow as tf

from tfdepth.errors import InvalidInputError
from tfdepth.geometry import discretization as disc

F32_EPS = float(np.finfo(np.float32).eps)
# Geometric edges 1, 2, 4, 8, 16 (SID with α = 1, β = 16, K = 4): every value exact in float32.
EDGES = np.array([1.0, 2.0, 4.0, 8.0, 16.0], np.float32)


def test_sid_edges_hand_computed_and_invariants():
  np.testing.assert_allclose(disc.sid_edges(1.0, 16.0, 4).numpy(), EDGES, rtol=F32_EPS)
  edges = disc.sid_edges(0.7113, 9.9955, 68).numpy().astype(np.float64)
  assert edges.shape == (69,)
  assert edges[0] == np.float32(0.7113) and edges[-1] == np.float32(9.9955)  # exact ends
  assert np.all(np.diff(edges) > 0)
  # Spacing increases; consecutive ratios are constant (= (β/α)^(1/K)) up to float32 rounding.
  assert np.all(np.diff(np.diff(edges)) > 0)
  np.testing.assert_allclose(edges[1:] / edges[:-1], (9.9955 / 0.7113)**(1 / 68), rtol=4 * F32_EPS)


def test_sid_edges_with_dorn_shift():
  # α = 0.5, β = 8.5: ξ = 1 - α = 0.5, SID on [1, 9] with K = 2 -> 1, 3, 9;
  # minus ξ -> 0.5, 2.5, 8.5.
  np.testing.assert_allclose(disc.sid_edges(0.5, 8.5, 2, shift=True).numpy(), [0.5, 2.5, 8.5],
                             rtol=F32_EPS)
  assert disc.DORN_SHIFTED_ALPHA == 1.0


def test_uniform_edges():
  np.testing.assert_array_equal(disc.uniform_edges(1.0, 3.0, 4).numpy(), [1.0, 1.5, 2.0, 2.5, 3.0])


def test_depth_to_bin_and_back():
  depth = tf.constant([[0.0, 1.0, 1.5, 2.0, 3.99, 4.0, 15.9, 16.0, 100.0, np.nan]])
  np.testing.assert_array_equal(disc.depth_to_bin(depth, EDGES).numpy(),
                                [[0, 0, 0, 1, 1, 2, 3, 3, 3, 0]])
  np.testing.assert_array_equal(disc.bin_centres(EDGES).numpy(), [1.5, 3.0, 6.0, 12.0])
  np.testing.assert_array_equal(disc.bin_to_depth([0, 3, 5, -1], EDGES).numpy(),
                                [1.5, 12.0, 12.0, 1.5])
  with pytest.raises(InvalidInputError, match="integer.*float32"):
    disc.bin_to_depth(tf.constant([1.0]), EDGES)


def test_expected_depth_and_its_gradient():
  p = tf.constant([[[0.0, 0.0, 1.0, 0.0], [0.25, 0.25, 0.25, 0.25], [0.5, 0.5, 0.0, 0.0]]])
  with tf.GradientTape() as tape:
    tape.watch(p)
    d = disc.expected_depth(p, EDGES)
  assert d.shape == (1, 3, 1)
  # one-hot -> its centre; uniform -> (1.5 + 3 + 6 + 12)/4 = 5.625; (1.5 + 3)/2 = 2.25.
  np.testing.assert_array_equal(d.numpy()[0, :, 0], [6.0, 5.625, 2.25])
  np.testing.assert_array_equal(tape.gradient(d, p).numpy()[0, 1], [1.5, 3.0, 6.0, 12.0])


def test_ordinal_labels_and_decoding():
  depth = tf.constant([[[[0.5]], [[1.5]], [[5.0]], [[9.0]], [[40.0]]]])  # (1, 5, 1, 1)
  labels = disc.ordinal_labels(depth, EDGES)
  assert labels.shape == (1, 5, 1, 4)
  # label_k = [bin > k]: bins 0, 0, 2, 3, 3.
  np.testing.assert_array_equal(labels.numpy()[0, :, 0], [[0, 0, 0, 0], [0, 0, 0, 0],
                                                          [1, 1, 0, 0], [1, 1, 1, 0],
                                                          [1, 1, 1, 0]])
  np.testing.assert_array_equal(disc.ordinal_to_depth(labels, EDGES).numpy()[0, :, 0, 0],
                                [1.5, 1.5, 6.0, 12.0, 12.0])
  # DORN counts P_k >= 0.5.
  probs = tf.constant([[0.9, 0.5, 0.49, 0.7]])
  np.testing.assert_array_equal(disc.ordinal_to_depth(probs, EDGES).numpy(), [[12.0]])


@pytest.mark.parametrize("jit", [False, True])
def test_ops_with_unknown_batch_in_tf_function(jit):
  rng = np.random.default_rng(0)
  depth = rng.uniform(0.0, 20.0, (2, 3, 4, 1)).astype(np.float32)
  logits = rng.normal(size=(2, 3, 4, 4)).astype(np.float32)
  edges = disc.sid_edges(1.0, 16.0, 4)

  @tf.function(jit_compile=jit, input_signature=[tf.TensorSpec([None, 3, 4, 1]),
                                                 tf.TensorSpec([None, 3, 4, 4])])
  def f(depth, logits):
    return (disc.depth_to_bin(depth, edges), disc.ordinal_labels(depth, edges),
            disc.expected_depth(tf.nn.softmax(logits), edges),
            disc.ordinal_to_depth(tf.sigmoid(logits), edges),
            disc.bin_to_depth(disc.depth_to_bin(depth, edges), edges))

  for e, g in zip(f.python_function(depth, logits), f(depth, logits)):
    np.testing.assert_allclose(g.numpy(), e.numpy(), rtol=4 * F32_EPS)  # softmax reordering


def test_bad_arguments_raise_typed_errors():
  with pytest.raises(InvalidInputError, match="alpha=5.0, beta=1.0"):
    disc.sid_edges(5.0, 1.0, 10)
  with pytest.raises(InvalidInputError, match="num_bins.*got 0"):
    disc.uniform_edges(1.0, 2.0, 0)
  with pytest.raises(InvalidInputError, match="alpha=0.0"):
    disc.sid_edges(0.0, 1.0, 3)
  with pytest.raises(InvalidInputError, match=r"probabilities must have shape \(\.\.\., 4\).*"
                     r"\(2, 3\)"):
    disc.expected_depth(tf.zeros([2, 3]), EDGES)
  with pytest.raises(InvalidInputError, match=r"depth must have shape \(\.\.\., 1\).*\(2, 3\)"):
    disc.ordinal_labels(tf.zeros([2, 3]), EDGES)
  with pytest.raises(InvalidInputError, match=r"edges must have rank 1.*\(2, 2\)"):
    disc.bin_centres(tf.zeros([2, 2]))
  with pytest.raises(InvalidInputError, match="not strictly increasing"):
    disc.uniform_edges(1.0, 1.0 + 1e-6, 100)
