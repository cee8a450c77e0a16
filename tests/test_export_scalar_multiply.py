"""Tests of `export.rewrite.ScalarMultiply`: a scalar 1x1 ``DepthwiseConv2D`` (FastDepth's sigmoid
head x max_depth, `tfdepth.models.heads`) converted as a TFLite ``MUL`` (bit-identical values;
XNNPACK's depthwise kernel wastes most of its channel tile on the one-channel depth map).

One FastDepth-0.25 at 64x64 with the sigmoid x 80 m head, converted to float32 and int8 once.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from export import rewrite
from export import tflite
from export.litert_runner import LiteRTRunner, op_summary
from tfdepth.errors import InvalidInputError
from tests._images import uniform_images

INPUT_SIZE = (64, 64)
MAX_DEPTH = 80.0
NUM_CALIBRATION = 8
# FastDepth's NNConv5 decoder: 5 nearest x2 upsamplings (Wofk et al. 2019) + the x max_depth
# depthwise conv of the sigmoid head; the input normalisation (x 2 - 1) has a bias: kept.
NUM_UPSAMPLINGS = 5
NUM_SCALAR_DEPTHWISE = 1
# float32 TFLite vs Keras (issue 7 acceptance, as tests/test_export_rewrite.py): 1e-4 of the
# largest depth.
FP32_RTOL = 1e-4


def _images(n, seed, size=INPUT_SIZE, channels=3):
  return uniform_images(n, tuple(size) + (channels,), seed)


def _depthwise(kernel, bias=None, **kwargs):
  """A built 1x1 DepthwiseConv2D on 4 channels with the given kernel (4,) and bias (4,)."""
  layer = keras.layers.DepthwiseConv2D(1, use_bias=bias is not None, **kwargs)
  layer.build((None, 5, 6, 4))
  weights = [np.asarray(kernel, np.float32).reshape(1, 1, 4, 1)]
  layer.set_weights(weights + ([np.asarray(bias, np.float32)] if bias is not None else []))
  return layer


def test_scalar_depthwise_becomes_exact_multiply():
  x = tf.constant(_images(2, 0, (5, 6), 4) * 10.0 - 5.0)
  for layer in (_depthwise([80.0] * 4), _depthwise([-0.3] * 4, bias=[0.0] * 4)):
    scale = rewrite.scalar_depthwise_scale(layer)
    assert scale == float(layer.get_weights()[0].flat[0])
    # One float32 product per element on both sides: bit-identical.
    np.testing.assert_array_equal(rewrite.ScalarMultiply(scale)(x).numpy(), layer(x).numpy())


def test_non_scalar_depthwise_is_kept():
  kept = [_depthwise([1.0, 2.0, 1.0, 1.0]),                  # per-channel kernel
          _depthwise([2.0] * 4, bias=[-1.0] * 4),             # affine (FastDepth's normalisation)
          _depthwise([2.0] * 4, activation="relu"),           # fused activation
          _depthwise([2.0] * 4, strides=2)]                   # strided
  for layer in kept:
    assert rewrite.scalar_depthwise_scale(layer) is None
  three = keras.layers.DepthwiseConv2D(3, use_bias=False)
  three.build((None, 5, 6, 4))
  three.set_weights([np.ones((3, 3, 4, 1), np.float32)])
  assert rewrite.scalar_depthwise_scale(three) is None
  assert rewrite.scalar_depthwise_scale(keras.layers.Conv2D(4, 1)) is None


def test_scalar_multiply_config_round_trip():
  layer = rewrite.ScalarMultiply(80.0, name="m")
  again = rewrite.ScalarMultiply.from_config(layer.get_config())
  assert again.scale == 80.0 and again.name == "m"
  with pytest.raises(InvalidInputError, match=r"scale must be a real number, got 'a'"):
    rewrite.ScalarMultiply("a")


@pytest.fixture(scope="module")
def fastdepth():
  from tfdepth.models import build_fastdepth  # pylint: disable=g-import-not-at-top
  keras.utils.set_random_seed(0)
  model = build_fastdepth(INPUT_SIZE + (3,), width_multiplier=0.25, depth_activation="sigmoid",
                          max_depth=MAX_DEPTH)
  rep = tflite.RepresentativeDataset(_images(NUM_CALIBRATION, 1))
  flatbuffers = {"tflite_fp32": tflite.convert_to_tflite(model, "tflite_fp32"),
                 "tflite_int8": tflite.convert_to_tflite(model, "tflite_int8", rep,
                                                         io_dtype=tf.uint8)}
  x = _images(2, 2)
  return model, x, model(x)["depth"].numpy(), flatbuffers


def test_fastdepth_rewrite_is_exact(fastdepth):
  model, x, expected, _ = fastdepth
  assert rewrite.count_rewritable(model) == NUM_UPSAMPLINGS + NUM_SCALAR_DEPTHWISE
  friendly = rewrite.tflite_friendly(model)
  assert rewrite.count_rewritable(friendly) == 0
  names = {layer.name for layer in friendly.layers}
  assert "fastdepth_depth_mul" in names and "fastdepth_depth" not in names
  assert friendly.get_layer("fastdepth_normalize") is model.get_layer("fastdepth_normalize")
  np.testing.assert_array_equal(friendly(x)["depth"].numpy(), expected)


def test_fastdepth_tflite_has_mul_tail(fastdepth):
  model, x, expected, flatbuffers = fastdepth
  num_depthwise = sum(type(layer) is keras.layers.DepthwiseConv2D  # pylint: disable=unidiomatic-typecheck
                      for layer in model.layers)
  fp32 = op_summary(flatbuffers["tflite_fp32"])
  # The x 80 m conv is the MUL; every other depthwise conv (normalisation included) stays.
  assert fp32["op_counts"]["MUL"] == 1
  assert fp32["op_counts"]["DEPTHWISE_CONV_2D"] == num_depthwise - NUM_SCALAR_DEPTHWISE
  assert fp32["num_delegate_partitions"] == 1
  out = LiteRTRunner(flatbuffers["tflite_fp32"]).predict(x)
  np.testing.assert_allclose(out, expected, rtol=0, atol=FP32_RTOL * float(expected.max()))
  int8 = op_summary(flatbuffers["tflite_int8"])
  # Float tail (export.float_tail): sigmoid and x 80 m in float, the rest int8. (No partition
  # count here: this random net's skip ADDs get int8 scales too far apart for XNNPACK's ADD, with
  # or without the rewrite; the trained 224x224 FastDepth of the export benchmark is one.)
  assert int8["float_ops"] == {"LOGISTIC": 1, "MUL": 1}
