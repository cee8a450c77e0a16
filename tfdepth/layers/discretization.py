"""Decoding layers for classification / ordinal-regression depth heads (DORN, Fu et al. 2018;
depth-as-classification, Cao et al. 2017). They wrap :mod:`tfdepth.geometry.discretization`."""

import numbers

import keras
import tensorflow as tf

from tfdepth.errors import InvalidInputError
from tfdepth.geometry import discretization as disc

DISCRETIZATIONS = ("sid", "uniform")
DECODINGS = ("argmax", "expectation")


def _check_config(min_depth, max_depth, num_bins, discretization, shift):
  for value, arg in ((min_depth, "min_depth"), (max_depth, "max_depth")):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
      raise InvalidInputError(f"{arg} must be a number (metres), got {value!r}")
  if not 0 < min_depth < max_depth:
    raise InvalidInputError(
        f"need 0 < min_depth < max_depth (metres), got {min_depth!r}, {max_depth!r}")
  if isinstance(num_bins, bool) or not isinstance(num_bins, numbers.Integral) or num_bins < 2:
    raise InvalidInputError(f"num_bins must be an int >= 2, got {num_bins!r}")
  if discretization not in DISCRETIZATIONS:
    raise InvalidInputError(
        f"discretization must be one of {DISCRETIZATIONS}, got {discretization!r}")
  if not isinstance(shift, bool):
    raise InvalidInputError(f"shift must be a bool, got {shift!r}")


class _BinnedDepth(keras.layers.Layer):
  """Holds the (K + 1,) bin edges (metres) of a discretised depth range."""

  def __init__(self, min_depth, max_depth, num_bins, discretization="sid", shift=True,
               **kwargs):
    super().__init__(**kwargs)
    _check_config(min_depth, max_depth, num_bins, discretization, shift)
    self.min_depth, self.max_depth = float(min_depth), float(max_depth)
    self.num_bins, self.discretization, self.shift = int(num_bins), discretization, shift
    with tf.init_scope():  # computed eagerly once (float64 internally), stored as numpy
      if discretization == "sid":
        edges = disc.sid_edges(self.min_depth, self.max_depth, self.num_bins, shift=shift)
      else:
        edges = disc.uniform_edges(self.min_depth, self.max_depth, self.num_bins)
      self.edges = edges.numpy()

  def _check_input(self, input_shape):
    if input_shape[-1] is not None and input_shape[-1] != self.num_bins:
      raise InvalidInputError(
          f"{type(self).__name__} expects (..., {self.num_bins}) logits, got {input_shape}")

  def build(self, input_shape):
    self._check_input(input_shape)
    super().build(input_shape)

  def compute_output_shape(self, input_shape):
    return tuple(input_shape[:-1]) + (1,)

  def get_config(self):
    config = super().get_config()
    config.update(min_depth=self.min_depth, max_depth=self.max_depth, num_bins=self.num_bins,
                  discretization=self.discretization, shift=self.shift)
    return config


@keras.saving.register_keras_serializable(package="tfdepth")
class OrdinalToDepth(_BinnedDepth):
  """DORN ordinal decoding (Fu et al. 2018, Sec. 3.3): logits ``(..., K)`` -> depth ``(..., 1)``.

  ``P_k = sigmoid(logit_k)`` is P(l > k); l = #{k: P_k >= 0.5}; depth = centre of bin l
  (:func:`tfdepth.geometry.ordinal_to_depth`). A per-threshold logit is DORN's two-way softmax
  written with one number (softmax([a, b])[1] = sigmoid(b - a)).

  Args:
    min_depth, max_depth: metres, 0 < min < max.
    num_bins: K >= 2.
    discretization: ``"sid"`` (spacing-increasing, DORN eq. 1) or ``"uniform"``.
    shift: DORN's shift ξ = 1 - min_depth for SID (see :func:`tfdepth.geometry.sid_edges`).
  Input float32 ``(B, H, W, K)`` logits; output float32 ``(B, H, W, 1)`` metres (not
  differentiable: train on the logits).
  """

  def call(self, logits):
    edges = tf.constant(self.edges, tf.float32)
    probs = tf.sigmoid(tf.cast(logits, tf.float32))
    return disc.ordinal_to_depth(probs, edges)


@keras.saving.register_keras_serializable(package="tfdepth")
class BinsToDepth(_BinnedDepth):
  """Classification decoding: per-bin logits ``(..., K)`` -> depth ``(..., 1)`` metres.

  ``decoding="argmax"``: centre of the arg-max bin (Cao et al. 2017). ``"expectation"``:
  Σ softmax_i · centre_i (soft-argmax; differentiable). Other arguments as
  :class:`OrdinalToDepth`.
  """

  def __init__(self, min_depth, max_depth, num_bins, discretization="sid", shift=True,
               decoding="argmax", **kwargs):
    if decoding not in DECODINGS:
      raise InvalidInputError(f"decoding must be one of {DECODINGS}, got {decoding!r}")
    super().__init__(min_depth, max_depth, num_bins, discretization, shift, **kwargs)
    self.decoding = decoding

  def call(self, logits):
    edges = tf.constant(self.edges, tf.float32)
    logits = tf.cast(logits, tf.float32)
    if self.decoding == "expectation":
      return disc.expected_depth(tf.nn.softmax(logits, axis=-1), edges)
    index = tf.argmax(logits, axis=-1, output_type=tf.int32)
    return disc.bin_to_depth(index, edges)[..., tf.newaxis]

  def get_config(self):
    config = super().get_config()
    config["decoding"] = self.decoding
    return config
