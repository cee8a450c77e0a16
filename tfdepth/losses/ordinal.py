"""Depth as ordinal regression / classification (DORN) and relative-depth ranking (Chen et al. 2016).

Discretisation convention (that of `tfdepth.geometry.sid_edges` / `depth_to_bin` / `ordinal_labels`,
which compute the targets here): `edges` holds K + 1 increasing thresholds t_0 < t_1 < … < t_K in
metres (SID edges in DORN, Fu et al. 2018, Eq. 1); bin k is [t_k, t_{k+1}); depths below t_0 go to
bin 0 and depths at or above t_K to bin K − 1. The ordinal classifier k (k = 0 … K − 1) answers
"is the bin index > k", i.e. "depth ≥ t_{k+1}" for depths in [t_0, t_K), so that the number of
positive ordinal labels equals the bin index (Fu et al. 2018, Eq. 3–4). Ties at an edge are resolved
upwards (depth = t_{k+1} is in bin k + 1); the paper does not specify it.
"""

import numpy as np
import tensorflow as tf

from tfdepth import geometry
from tfdepth.errors import InvalidInputError
from tfdepth.losses import _common

# Default "equal depth" tolerance of `sample_ranking_pairs`: pairs whose depth ratio is within
# 1 + τ are labelled equal (relation 0). The ratio rule is that of Xian et al. 2018 ("Monocular
# Relative Depth Perception with Web Stereo Data Supervision", Sec. 3.2); τ = 0.02 is a tfdepth
# default (2 % is below the ~5 % relative error of good KITTI models, so "equal" means "same surface").
RANKING_EQUAL_THRESHOLD = 0.02


def _edges_tensor(edges, num_logits=None, name="edges"):
  """Validates edges (K + 1 increasing thresholds); returns a float32 (K + 1,) tensor."""
  if isinstance(edges, tf.Tensor):
    e = tf.cast(edges, tf.float32)
    if e.shape.rank != 1:
      raise InvalidInputError(f"{name}: expected a 1-D tensor of K + 1 edges, received shape {e.shape}")
    n = e.shape[0]
  else:
    arr = np.asarray(edges, dtype=np.float64)
    if arr.ndim != 1 or arr.size < 2:
      raise InvalidInputError(
          f"{name}: expected a 1-D sequence of at least 2 increasing edges, received {edges!r}")
    if not np.all(np.isfinite(arr)) or not np.all(np.diff(arr) > 0):
      raise InvalidInputError(f"{name}: expected finite strictly increasing values, received {edges!r}")
    e = tf.constant(arr, tf.float32)
    n = arr.size
  if num_logits is not None and n is not None and n != num_logits + 1:
    raise InvalidInputError(
        f"{name}: expected K + 1 = {num_logits + 1} edges for logits with K = {num_logits} "
        f"channels, received {n} edges")
  return e


def _logit_inputs(logits, target_depth, mask):
  """Validates (logits, target_depth, mask); like `_common.depth_inputs`, a pixel is valid where the
  target is finite and > 0 and the mask is 1, and at invalid pixels logits are replaced by 0 and the
  target by 1 m (double where) so non-finite values there give a zero value and a zero gradient."""
  logits = _common.to_float(logits, "logits")
  _common.check_rank(logits, 4, "logits")
  if logits.shape[-1] is None:
    raise InvalidInputError(f"logits: expected a known number of channels K, received shape {logits.shape}")
  target = _common.to_float(target_depth, "target_depth")
  _common.check_rank(target, 4, "target_depth", channels=1)
  _common.check_same_hw(logits, target, "logits", "target_depth")
  ok = (target > 0.0) & tf.math.is_finite(target)
  if mask is not None:
    mask = _common.to_float(mask, "mask")
    _common.check_rank(mask, 4, "mask", channels=1)
    _common.check_same_shape(mask, target, "mask", "target_depth")
    ok = ok & (mask > 0.0)
  logits = tf.where(ok, logits, 0.0)  # ok (B, H, W, 1) broadcasts over the K channels.
  target = tf.where(ok, target, 1.0)
  return logits, target, tf.cast(ok, tf.float32)


def ordinal_regression_loss(logits, target_depth, edges, mask=None):
  """Ordinal regression loss of DORN (Fu et al. 2018, Eq. 3–4), per image.

  Each of the K output channels is the logit of P(bin > k) (= P(depth ≥ t_{k+1}) inside [t_0, t_K));
  the targets are `tfdepth.geometry.ordinal_labels` (so the last classifier's target is always 0); the loss is the
  sum over k of the binary cross-entropy against the ordinal labels, averaged over the valid
  pixels. DORN parameterises each classifier as a 2-way softmax; a single sigmoid logit is the same
  model (logit = difference of the two softmax inputs).

  Args:
    logits: (B, H, W, K) float ordinal logits.
    target_depth: (B, H, W, 1) float ground-truth depth, metres, 0 = invalid.
    edges: K + 1 increasing SID thresholds (list / numpy / 1-D tensor), metres.
    mask: optional (B, H, W, 1) {0, 1} mask.
  Returns:
    (B,) float32 loss (nats, summed over the K classifiers); 0 for images without valid pixels.
  Raises:
    InvalidInputError: wrong ranks/shapes, or len(edges) != K + 1.
  """
  logits, target, valid = _logit_inputs(logits, target_depth, mask)
  e = _edges_tensor(edges, num_logits=logits.shape[-1])
  labels = geometry.ordinal_labels(target, e)
  per_pixel = tf.reduce_sum(
      tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits), axis=-1, keepdims=True)
  return _common.masked_image_mean(per_pixel, valid)


def sid_cross_entropy(logits, target_depth, edges, mask=None):
  """Depth as classification over K bins (softmax cross-entropy), per image.

  The target class is the bin index of the ground-truth depth (see the module docstring), as in
  the classification baseline of DORN (Fu et al. 2018, Sec. 4.3) and Cao et al. 2017.

  Args:
    logits: (B, H, W, K) float class logits, one per bin.
    target_depth: (B, H, W, 1) float ground-truth depth, metres, 0 = invalid.
    edges: K + 1 increasing thresholds, metres.
    mask: optional (B, H, W, 1) {0, 1} mask.
  Returns:
    (B,) float32 mean cross-entropy (nats) over valid pixels; 0 for images without valid pixels.
  Raises:
    InvalidInputError: wrong ranks/shapes, or len(edges) != K + 1.
  """
  logits, target, valid = _logit_inputs(logits, target_depth, mask)
  e = _edges_tensor(edges, num_logits=logits.shape[-1])
  labels = geometry.depth_to_bin(target, e)[..., 0]
  per_pixel = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
  return _common.masked_image_mean(per_pixel[..., None], valid)


def _points_tensor(points, name):
  points = tf.convert_to_tensor(points)
  if not points.dtype.is_integer:
    raise InvalidInputError(f"{name}: expected integer (u, v) pixel coordinates, received dtype "
                            f"{points.dtype.name}")
  _common.check_rank(points, 3, name, channels=2)
  return tf.cast(points, tf.int32)


def _check_points_inside(image, points, name, weights=None):
  """Checks 0 <= u < W and 0 <= v < H for every (u, v) of `points` (B, P, 2) whose pair weight is
  nonzero (`weights` (B, P) or None = all pairs); `image` is (B, H, W, 1).

  Eagerly: raises InvalidInputError naming the first offending pair, its coordinates and the image
  size. In a graph: returns `points` behind a `tf.debugging.Assert` (tf.errors.InvalidArgumentError
  at run time with the same information); under XLA (`jit_compile=True`) Assert ops are ignored and
  only the clamping of `_gather_pixels` remains.
  """
  h = tf.shape(image)[1]
  w = tf.shape(image)[2]
  u, v = points[..., 0], points[..., 1]
  bad = (u < 0) | (u >= w) | (v < 0) | (v >= h)
  if weights is not None:
    bad = bad & (weights > 0.0)
  if tf.executing_eagerly():
    bad_np = bad.numpy()
    if bad_np.any():
      b, p = (int(i) for i in np.argwhere(bad_np)[0])
      uv = tuple(int(c) for c in points[b, p].numpy())
      raise InvalidInputError(
          f"{name}: pair {p} of image {b} has pixel coordinates (u, v) = {uv}, outside the "
          f"{int(h)}x{int(w)} (H x W) image; expected integer (u, v) with 0 <= u < {int(w)} and "
          f"0 <= v < {int(h)} ({int(bad_np.sum())} offending pair(s) in total)")
    return points
  # One padding entry keeps argmax / gather defined when there are no pairs at all (P = 0).
  flat_bad = tf.concat([tf.reshape(tf.cast(bad, tf.int32), [-1]), [0]], axis=0)
  flat_points = tf.concat([tf.reshape(points, [-1, 2]), [[0, 0]]], axis=0)
  first = tf.argmax(flat_bad, output_type=tf.int32)
  check = tf.debugging.Assert(
      tf.logical_not(tf.reduce_any(bad)),
      [f"{name}: pixel coordinates (u, v) outside the image; expected 0 <= u < W and 0 <= v < H. "
       "Image (H, W) =", tf.shape(image)[1:3], "first offending (u, v) =",
       tf.gather(flat_points, first), "offending pairs:",
       tf.reduce_sum(tf.cast(bad, tf.int32))],
      summarize=4)
  with tf.control_dependencies([check]):
    return tf.identity(points)


def _gather_pixels(image, points):
  """image (B, H, W, 1), points (B, P, 2) int (u, v) -> (B, P). Indices are clipped into the image
  (the caller validates them first where that matters: `ranking_loss`)."""
  h = tf.shape(image)[1]
  w = tf.shape(image)[2]
  u = tf.clip_by_value(points[..., 0], 0, w - 1)
  v = tf.clip_by_value(points[..., 1], 0, h - 1)
  return tf.gather_nd(image[..., 0], tf.stack([v, u], axis=-1), batch_dims=1)


def ranking_loss(pred, point_a, point_b, relation, pair_mask=None):
  """Relative-depth ranking loss of Chen et al. 2016 ("Single-Image Depth Perception in the Wild",
  Eq. 1), on log depth, per image.

  With z = log pred: ψ = log(1 + exp(−r (z_a − z_b))) for r = ±1 and ψ = (z_a − z_b)² for r = 0.
  r = +1 means point a is farther than point b (z_a > z_b is rewarded), −1 nearer, 0 equal.
  The loss is the mean of ψ over the (unmasked) pairs of each image.

  Args:
    pred: (B, H, W, 1) float predicted depth, metres (clamped at LOG_DEPTH_FLOOR before the log).
    point_a: (B, P, 2) integer pixel coordinates (u, v) of the first points.
    point_b: (B, P, 2) integer pixel coordinates (u, v) of the second points.
    relation: (B, P) relations in {+1, −1, 0} (any numeric dtype).
    pair_mask: optional (B, P) {0, 1} weights (e.g. padding of a variable number of pairs). Pairs
      with weight 0 are not checked and may hold any coordinates (they are clamped, then ignored).
  Returns:
    (B,) float32 loss; 0 for images without pairs.
  Raises:
    InvalidInputError: wrong ranks, non-integer coordinates, or (eagerly) a pair with nonzero
      weight whose (u, v) lies outside the H x W image. In a `tf.function` the coordinate check is
      a `tf.debugging.Assert` (tf.errors.InvalidArgumentError when run); XLA drops Assert ops, so
      under `jit_compile=True` out-of-range coordinates are clamped to the border unchecked.
  """
  pred = _common.to_float(pred, "pred")
  _common.check_rank(pred, 4, "pred", channels=1)
  point_a = _points_tensor(point_a, "point_a")
  point_b = _points_tensor(point_b, "point_b")
  relation = _common.to_float(relation, "relation")
  _common.check_rank(relation, 2, "relation")
  mask_w = None
  if pair_mask is not None:
    mask_w = _common.to_float(pair_mask, "pair_mask")
    _common.check_rank(mask_w, 2, "pair_mask")
  point_a = _check_points_inside(pred, point_a, "point_a", mask_w)
  point_b = _check_points_inside(pred, point_b, "point_b", mask_w)
  z = _common.safe_log_pred(pred)
  diff = _gather_pixels(z, point_a) - _gather_pixels(z, point_b)
  ordered = tf.math.softplus(-relation * diff)  # log(1 + exp(−r Δ)), overflow-free.
  per_pair = tf.where(tf.equal(relation, 0.0), tf.square(diff), ordered)
  weights = tf.ones_like(per_pair) if mask_w is None else mask_w
  return _common.masked_image_mean(per_pair, weights)


def sample_ranking_pairs(depth, mask=None, num_pairs=1024, seed=0,
                         equal_threshold=RANKING_EQUAL_THRESHOLD):
  """Samples point pairs and their ordinal relation from a depth map (deterministic, stateless RNG).

  Both points of each pair are drawn uniformly (with replacement) among the valid pixels of the
  image (depth finite and > 0, and mask); relation = +1 if depth_a > (1 + τ)·depth_b, −1 if
  depth_b > (1 + τ)·depth_a, else 0 (the ratio rule of Xian et al. 2018). The same (depth, mask,
  seed) always gives the same pairs (`tf.random.stateless_categorical`) within an execution mode;
  it runs eagerly, in `tf.function` and under XLA, but XLA lowers the stateless RNG differently, so
  compiled and eager calls draw different (equally valid) pairs.

  Args:
    depth: (B, H, W, 1) float depth, metres, 0 = invalid.
    mask: optional (B, H, W, 1) {0, 1} mask.
    num_pairs: P, a positive Python int.
    seed: int or shape-(2,) integer tensor (stateless seed).
    equal_threshold: τ >= 0.
  Returns:
    point_a: (B, P, 2) int32 (u, v); point_b: (B, P, 2) int32 (u, v); relation: (B, P) float32 in
    {+1, −1, 0}; pair_mask: (B, P) float32, 0 for images without valid pixels (their points are
    arbitrary).
  Raises:
    InvalidInputError: wrong ranks/shapes, num_pairs < 1, τ < 0.
  """
  if not isinstance(num_pairs, int) or isinstance(num_pairs, bool) or num_pairs < 1:
    raise InvalidInputError(f"num_pairs: expected a positive integer, received {num_pairs!r}")
  tau = float(equal_threshold)
  if not tau >= 0.0:
    raise InvalidInputError(f"equal_threshold: expected a number >= 0, received {equal_threshold!r}")
  depth, _, valid = _common.depth_inputs(depth, depth, mask, "depth", "depth")
  seed = _common.stateless_seed(seed)
  b = tf.shape(depth)[0]
  w = tf.shape(depth)[2]
  flat_valid = tf.reshape(valid, [b, -1])
  has_valid = tf.reduce_max(flat_valid, axis=1)
  # log(1) = 0 for valid pixels, a very negative logit otherwise; images without valid pixels get
  # uniform logits (and pair_mask 0) so that the sampler never sees an all −inf row.
  logits = tf.where(flat_valid > 0.0, 0.0, tf.where(has_valid[:, None] > 0.0, -1e9, 0.0))
  idx = tf.random.stateless_categorical(logits, 2 * num_pairs, seed=seed, dtype=tf.int32)
  points = tf.stack([idx % w, idx // w], axis=-1)  # (B, 2P, 2) as (u, v)
  point_a, point_b = points[:, :num_pairs], points[:, num_pairs:]
  za = _gather_pixels(depth, point_a)
  zb = _gather_pixels(depth, point_b)
  relation = tf.where(za > (1.0 + tau) * zb, 1.0, tf.where(zb > (1.0 + tau) * za, -1.0, 0.0))
  pair_mask = tf.broadcast_to(has_valid[:, None], tf.shape(relation))
  return point_a, point_b, relation, pair_mask
