"""Depth discretisation for classification / ordinal-regression heads (DORN, Fu et al. 2018).

`num_bins` = K bins are delimited by K + 1 edges t_0 = α < t_1 < ... < t_K = β (metres); bin i is
[t_i, t_{i+1}). Depths outside [α, β) are clipped to bins 0 and K - 1 (invalid ground truth,
depth 0, falls in bin 0: mask it in the loss).

Reference: H. Fu, M. Gong, C. Wang, K. Batmanghelich, D. Tao, "Deep Ordinal Regression Network for
Monocular Depth Estimation", CVPR 2018 (DORN), Sec. 3.2 (eq. 1, spacing-increasing
discretisation) and Sec. 3.3 (ordinal regression and its decoding).
"""

import numbers

import tensorflow as tf

from tfdepth.errors import InvalidInputError
from tfdepth.geometry import _checks

# DORN Sec. 3.2: "we add a shift ξ to both α and β to obtain α* and β* so that α* = α + ξ = 1.0,
# and apply SID on [α*, β*]"; decoded depths subtract ξ again.
DORN_SHIFTED_ALPHA = 1.0
# DORN Sec. 3.3 decoding: l̂ = Σ_k η(P_k ≥ 0.5), η the indicator.
ORDINAL_THRESHOLD = 0.5


def _check_range(alpha, beta, num_bins):
  if not isinstance(num_bins, int) or isinstance(num_bins, bool) or num_bins < 1:
    raise InvalidInputError(f"num_bins must be a positive int, got {num_bins!r}.")
  for v, n in ((alpha, "alpha"), (beta, "beta")):
    if not isinstance(v, numbers.Real) or isinstance(v, bool):
      raise InvalidInputError(f"{n} must be a Python number (metres), got {v!r}.")
  if not 0 < alpha < beta:
    raise InvalidInputError(
        f"need 0 < alpha < beta (metres), got alpha={alpha!r}, beta={beta!r}.")


def _finish_edges(edges64, alpha, beta, dtype):
  """Casts float64 edges, pins the ends to exactly α and β and checks strict monotonicity."""
  edges = tf.cast(edges64, dtype)
  edges = tf.concat([tf.constant([alpha], dtype), edges[1:-1], tf.constant([beta], dtype)], 0)
  if tf.executing_eagerly() and not bool(tf.reduce_all(edges[1:] > edges[:-1])):
    raise InvalidInputError(
        f"edges are not strictly increasing in {dtype.name} (alpha={alpha}, beta={beta}, "
        f"{int(edges.shape[0]) - 1} bins); use fewer bins or a wider range.")
  return edges


def sid_edges(alpha, beta, num_bins, shift=False, dtype=tf.float32):
  """Spacing-increasing discretisation (DORN eq. 1): t_i = exp(log α + i·log(β/α)/K), i = 0..K.

  Args:
    alpha, beta: Python floats, 0 < α < β, metres.
    num_bins: K, Python int >= 1.
    shift: if True apply DORN's shift ξ = 1 - α: SID on [α + ξ, β + ξ] = [1, β + ξ], then subtract
      ξ, so the edges still run from α to β (denser near α than plain SID would be for α < 1).
    dtype: result dtype.

  Returns:
    `(K + 1,)` strictly increasing edges, first exactly α, last exactly β (computed in float64).
  """
  _check_range(alpha, beta, num_bins)
  alpha, beta = float(alpha), float(beta)
  xi = DORN_SHIFTED_ALPHA - alpha if shift else 0.0
  lo, hi = alpha + xi, beta + xi
  i = tf.range(num_bins + 1, dtype=tf.float64)
  edges = tf.exp(tf.math.log(tf.constant(lo, tf.float64)) +
                 i * tf.math.log(tf.constant(hi / lo, tf.float64)) / num_bins) - xi
  return _finish_edges(edges, alpha, beta, dtype)


def uniform_edges(alpha, beta, num_bins, dtype=tf.float32):
  """Uniform discretisation (DORN's UD baseline): t_i = α + i·(β - α)/K, `(K + 1,)`."""
  _check_range(alpha, beta, num_bins)
  alpha, beta = float(alpha), float(beta)
  i = tf.range(num_bins + 1, dtype=tf.float64)
  return _finish_edges(alpha + i * (beta - alpha) / num_bins, alpha, beta, dtype)


def _check_edges(edges):
  e = _checks.to_float_tensor(edges, "edges")
  _checks.check_rank(e, 1, "edges", "(num_bins + 1,)")
  if e.shape[0] is not None and e.shape[0] < 2:
    raise InvalidInputError(f"edges must hold at least 2 values, got shape {e.shape}.")
  return e


def bin_centres(edges):
  """Bin centres (t_i + t_{i+1}) / 2, `(K,)`: DORN's decoding d = (t_l + t_{l+1}) / 2.

  (DORN additionally subtracts ξ; `sid_edges(shift=True)` has already removed it from the edges.)
  """
  e = _check_edges(edges)
  return 0.5 * (e[:-1] + e[1:])


def depth_to_bin(depth, edges):
  """Bin index of each depth: i with t_i <= d < t_{i+1}, clipped to [0, K - 1].

  Args:
    depth: any shape, metres.
    edges: `(K + 1,)` increasing.

  Returns:
    int32, same shape as `depth`. Non-finite or below-α depths give 0; depths >= β give K - 1.
  """
  e = _check_edges(edges)
  d = _checks.to_float_tensor(depth, "depth", e.dtype)
  # Count of interior edges <= d (O(K) compares per pixel; XLA-friendly, no searchsorted).
  return tf.reduce_sum(tf.cast(d[..., tf.newaxis] >= e[1:-1], tf.int32), axis=-1)


def bin_to_depth(index, edges):
  """Centre depth (metres) of bin `index` (any shape, integer; clipped to [0, K - 1])."""
  centres = bin_centres(edges)
  index = tf.convert_to_tensor(index)
  if not index.dtype.is_integer:
    raise InvalidInputError(f"index must be an integer tensor, got dtype {index.dtype.name}.")
  index = tf.clip_by_value(tf.cast(index, tf.int32), 0, tf.shape(centres)[0] - 1)
  return tf.gather(centres, index)


def _check_per_bin(x, e, name):
  x = _checks.to_float_tensor(x, name, e.dtype)
  _checks.check_min_rank(x, 1, name, "(..., num_bins)")
  k = e.shape[0]
  if k is not None and x.shape.rank is not None and x.shape[-1] is not None and (
      x.shape[-1] != k - 1):
    raise InvalidInputError(
        f"{name} must have shape (..., {k - 1}) for {k} edges, got shape {x.shape}.")
  return x


def expected_depth(probabilities, edges):
  """Soft expectation Σ_i p_i · centre_i over the bins.

  Args:
    probabilities: `(..., K)` per-bin probabilities (e.g. a softmax), summing to 1.
    edges: `(K + 1,)`.

  Returns:
    `(..., 1)` depth in metres.
  """
  e = _check_edges(edges)
  p = _check_per_bin(probabilities, e, "probabilities")
  return tf.reduce_sum(p * bin_centres(e), axis=-1, keepdims=True)


def ordinal_labels(depth, edges):
  """DORN ordinal targets: label_k = 1 if the bin index l of d exceeds k, k = 0..K-1.

  Equivalently label_k = [d >= t_{k+1}] (with d clipped into [α, β)), so the labels are a run of
  ones followed by zeros and their count is the bin index; the last channel is always 0.

  Args:
    depth: `(..., 1)` metres (e.g. `(B, H, W, 1)`).
    edges: `(K + 1,)`.

  Returns:
    `(..., K)` float32 in {0, 1}.
  """
  e = _check_edges(edges)
  d = _checks.to_float_tensor(depth, "depth", e.dtype)
  _checks.check_trailing_dims(d, (1,), "depth", "(..., 1)")
  index = depth_to_bin(d, e)  # (..., 1)
  k = tf.range(tf.shape(e)[0] - 1, dtype=tf.int32)
  return tf.cast(index > k, tf.float32)


def ordinal_to_depth(ordinal_probs, edges):
  """DORN decoding: l = #{k: P_k >= 0.5}, depth = centre of bin l (clipped to K - 1).

  Args:
    ordinal_probs: `(..., K)` P(l > k).
    edges: `(K + 1,)`.

  Returns:
    `(..., 1)` depth in metres.
  """
  e = _check_edges(edges)
  p = _check_per_bin(ordinal_probs, e, "ordinal_probs")
  count = tf.reduce_sum(tf.cast(p >= ORDINAL_THRESHOLD, tf.int32), axis=-1, keepdims=True)
  return bin_to_depth(count, e)
