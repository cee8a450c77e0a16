"""Tests of tfdepth.layers."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfdepth.errors import InvalidInputError
from tfdepth.layers import ReflectionPadding2D


def test_reflection_padding_hand_computed():
  # Rows [0..3], cols [0..3] of a 3x4 ramp; reflect without repeating the edge.
  x = np.arange(12, dtype=np.float32).reshape(1, 3, 4, 1)
  y = ReflectionPadding2D(((1, 2), (0, 1)))(x).numpy()[0, :, :, 0]
  expected = np.array([
      [4, 5, 6, 7, 6],    # row 1 (top pad)
      [0, 1, 2, 3, 2],
      [4, 5, 6, 7, 6],
      [8, 9, 10, 11, 10],
      [4, 5, 6, 7, 6],    # row 1 (bottom pad 1)
      [0, 1, 2, 3, 2],    # row 0 (bottom pad 2)
  ], np.float32)
  np.testing.assert_array_equal(y, expected)  # pure copy: exact


def test_reflection_padding_matches_tf_pad_reflect():
  x = np.random.default_rng(0).normal(size=(2, 5, 6, 3)).astype(np.float32)
  y = ReflectionPadding2D(2)(x).numpy()
  ref = tf.pad(x, [[0, 0], [2, 2], [2, 2], [0, 0]], mode="REFLECT").numpy()
  np.testing.assert_array_equal(y, ref)


def test_padding_forms_and_output_shape():
  assert ReflectionPadding2D(3).padding == ((3, 3), (3, 3))
  assert ReflectionPadding2D((1, 2)).padding == ((1, 1), (2, 2))
  layer = ReflectionPadding2D(((1, 0), (2, 3)))
  assert layer.compute_output_shape((None, 8, None, 4)) == (None, 9, None, 4)
  inp = keras.Input((None, None, 2))
  assert tuple(layer(inp).shape) == (None, None, None, 2)
  out = layer(tf.zeros((2, 8, 6, 2)))
  assert out.shape == (2, 9, 11, 2)


def test_get_config_round_trip_non_default():
  layer = ReflectionPadding2D(((1, 2), (0, 3)), name="pad", dtype="float32")
  config = layer.get_config()
  assert config["padding"] == [[1, 2], [0, 3]]
  clone = ReflectionPadding2D.from_config(config)
  assert clone.padding == ((1, 2), (0, 3)) and clone.name == "pad"
  restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
  assert isinstance(restored, ReflectionPadding2D) and restored.padding == layer.padding


def test_saved_inside_model(tmp_path):
  inp = keras.Input((4, 4, 1))
  model = keras.Model(inp, ReflectionPadding2D(((2, 1), (1, 2)))(inp))
  path = os.path.join(tmp_path, "m.keras")
  model.save(path)
  loaded = keras.saving.load_model(path, safe_mode=True)
  x = np.arange(16, dtype=np.float32).reshape(1, 4, 4, 1)
  np.testing.assert_array_equal(loaded(x).numpy(), model(x).numpy())


@pytest.mark.parametrize("padding", [-1, (1, 2, 3), "same", ((1, 2), (3,)), 1.5, True])
def test_bad_padding(padding):
  with pytest.raises(InvalidInputError, match="padding"):
    ReflectionPadding2D(padding)


def test_pad_not_smaller_than_size_raises():
  with pytest.raises(InvalidInputError, match="size 3"):
    ReflectionPadding2D(3)(keras.Input((3, 8, 1)))


# --- Discretised-depth decoders (DORN / classification) -------------------------------------
from tfdepth.layers import BinsToDepth, OrdinalToDepth  # noqa: E402

# SID on [1, 16] with 4 bins: edges 1, 2, 4, 8, 16 (t_i = 16^(i/4)); centres 1.5, 3, 6, 12.
# Uniform on [0.5, 4.5] with 4 bins: edges 0.5, 1.5, 2.5, 3.5, 4.5; centres 1, 2, 3, 4.


def test_ordinal_to_depth_hand_computed():
  layer = OrdinalToDepth(1.0, 16.0, 4)
  np.testing.assert_allclose(layer.edges, [1, 2, 4, 8, 16], rtol=1e-6)  # float32 of exp/log
  logits = np.array([[[-1, -1, -1, -1], [2, -1, -1, -1], [2, 2, 2, -1], [3, 3, 3, 3],
                      [0, 0, -1, -1]]], np.float32)  # logit 0 -> P = 0.5 counts (>= 0.5)
  depth = layer(logits).numpy()
  assert depth.shape == (1, 5, 1)
  np.testing.assert_allclose(depth[0, :, 0], [1.5, 3.0, 12.0, 12.0, 6.0], rtol=1e-6)


def test_bins_to_depth_argmax_and_expectation_uniform():
  logits = np.array([[0.0, 5.0, 1.0, 0.0], [0.0, 0.0, 0.0, 0.0]], np.float32)
  arg = BinsToDepth(0.5, 4.5, 4, discretization="uniform")(logits).numpy()
  np.testing.assert_allclose(arg[:, 0], [2.0, 1.0], rtol=1e-6)  # ties -> first bin
  exp = BinsToDepth(0.5, 4.5, 4, discretization="uniform", decoding="expectation")(logits)
  p = np.exp(logits[0]) / np.exp(logits[0]).sum()
  # float32 softmax/sum round-off: 1e-6 relative.
  np.testing.assert_allclose(exp.numpy()[:, 0], [(p * [1, 2, 3, 4]).sum(), 2.5], rtol=1e-6)


def test_decoder_get_config_round_trip_non_default():
  layer = BinsToDepth(0.25, 50.0, 7, discretization="uniform", shift=False,
                      decoding="expectation", name="b")
  clone = BinsToDepth.from_config(layer.get_config())
  assert (clone.min_depth, clone.max_depth, clone.num_bins, clone.discretization, clone.shift,
          clone.decoding, clone.name) == (0.25, 50.0, 7, "uniform", False, "expectation", "b")
  np.testing.assert_array_equal(clone.edges, layer.edges)
  ordinal = OrdinalToDepth(0.5, 10.0, 5, discretization="sid", shift=False, name="o")
  clone = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(ordinal))
  assert isinstance(clone, OrdinalToDepth)
  assert clone.get_config() == ordinal.get_config()
  np.testing.assert_array_equal(clone.edges, ordinal.edges)


@pytest.mark.parametrize("kwargs,fragment", [
    (dict(min_depth=0.0, max_depth=10.0, num_bins=4), "min_depth"),
    (dict(min_depth=5.0, max_depth=1.0, num_bins=4), "5.0"),
    (dict(min_depth=1.0, max_depth=10.0, num_bins=1), "num_bins"),
    (dict(min_depth=1.0, max_depth=10.0, num_bins=4, discretization="log"), "'log'"),
    (dict(min_depth=1.0, max_depth=10.0, num_bins=4, shift="yes"), "shift"),
])
def test_decoder_bad_config(kwargs, fragment):
  with pytest.raises(InvalidInputError) as err:
    OrdinalToDepth(**kwargs)
  assert fragment in str(err.value)
  with pytest.raises(InvalidInputError, match="'mode'"):
    BinsToDepth(1.0, 10.0, 4, decoding="mode")


def test_decoder_wrong_channel_count():
  with pytest.raises(InvalidInputError, match="4"):
    OrdinalToDepth(1.0, 16.0, 4)(keras.Input((8, 8, 5)))
