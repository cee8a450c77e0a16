"""Tests of export.bias_correction: the int8 head's mean shift is measured and removed.

Three small conversions (a two-conv model at 16x16, about a second each on one core).
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from export import bias_correction
from export import float_tail
from export import tflite
from tfdepth.errors import InvalidInputError
from tests._images import uniform_images

SIZE = (16, 16)
NUM_IMAGES = 8
# Shift injected into the head's int32 bias, in int8 output steps of the head.
INJECTED_STEPS = 5.0
# The measured shift of the injected bias is the mean over 8 x 16 x 16 = 2048 outputs of a
# rounded value; only outputs pushed past the int8 bounds (+127) lose part of it. 0.1 step
# bounds both; a sign or unit error (bias scale vs output scale) is off by >= 5 steps.
STEP_TOLERANCE = 0.1
MAX_DEPTH_M = 80.0


def _model(head_activation=None):
  """image -> 3x3 conv (4, ReLU) -> 1x1 head conv -> [sigmoid x 80 m tail]."""
  keras.utils.set_random_seed(0)
  inp = keras.Input(SIZE + (3,), name="image")
  x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="bc_conv")(inp)
  x = keras.layers.Conv2D(1, 1, activation=head_activation, name="bc_head")(x)
  if head_activation is None:
    x = keras.layers.Activation("sigmoid", name="bc_sigmoid")(x)
    x = keras.layers.Rescaling(MAX_DEPTH_M, name="bc_depth")(x)
  return keras.Model(inp, {"depth": x})


def _images():
  return uniform_images(NUM_IMAGES, SIZE + (3,))


def _convert(model, images):
  """``(calibrated float, int8 with float tail)`` flatbuffers of ``model``."""
  converter = tflite.converter_from_model(model)
  tflite.configure_converter(converter, "tflite_int8",
                             tflite.representative_dataset_from(list(images), None),
                             tf.uint8)
  calibrated = float_tail.calibrate(converter)
  quantized, _ = float_tail.quantize_with_float_tail(converter, tf.uint8)
  return calibrated, quantized


def _bias(model_bytes, bias_index):
  """``(int32 values, per-channel scales, buffer index)`` of a bias tensor."""
  from tensorflow.lite.tools import flatbuffer_utils  # pylint: disable=g-import-not-at-top
  model = flatbuffer_utils.convert_bytearray_to_object(bytearray(model_bytes))
  tensor = model.subgraphs[0].tensors[bias_index]
  values = np.frombuffer(bytes(bytearray(model.buffers[tensor.buffer].data)), "<i4")
  return values.copy(), np.asarray(tensor.quantization.scale, np.float64), tensor.buffer


def _with_bias(model_bytes, bias_index, values):
  from tensorflow.lite.tools import flatbuffer_utils  # pylint: disable=g-import-not-at-top
  model = flatbuffer_utils.convert_bytearray_to_object(bytearray(model_bytes))
  tensor = model.subgraphs[0].tensors[bias_index]
  model.buffers[tensor.buffer].data = np.frombuffer(values.astype("<i4").tobytes(), np.uint8)
  return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def _buffers(model_bytes):
  from tensorflow.lite.tools import flatbuffer_utils  # pylint: disable=g-import-not-at-top
  model = flatbuffer_utils.convert_bytearray_to_object(bytearray(model_bytes))
  return [None if b.data is None else bytes(bytearray(b.data)) for b in model.buffers]


@pytest.fixture(scope="module")
def converted():
  images = _images()
  calibrated, quantized = _convert(_model(), images)
  return images, calibrated, quantized


def test_injected_head_shift_is_measured_and_removed(converted):
  images, calibrated, quantized = converted
  head = bias_correction.find_head(quantized)
  assert head["op"] == "CONV_2D" and head["output_name"]
  step = head["scale"]
  bias, bias_scales, _ = _bias(quantized, head["bias"])
  assert bias.shape == (1,) and bias_scales.shape == (1,)
  # Inject a shift of INJECTED_STEPS output steps into the int32 bias (units: bias scale).
  injected = int(round(INJECTED_STEPS * step / bias_scales[0]))
  shifted = _with_bias(quantized, head["bias"], bias + injected)
  base_mean, _ = bias_correction.head_output_error(quantized, calibrated, images)
  shifted_mean, _ = bias_correction.head_output_error(shifted, calibrated, images)
  assert (shifted_mean[0] - base_mean[0]) / step == pytest.approx(INJECTED_STEPS,
                                                                  abs=STEP_TOLERANCE)
  corrected, info = bias_correction.correct_head_bias(shifted, calibrated, images)
  assert info["num_images"] == NUM_IMAGES and info["tensor"] == head["output_name"]
  np.testing.assert_allclose(info["mean_error"], shifted_mean, rtol=1e-12)
  # The correction is the measured shift in bias units, with the opposite sign.
  assert info["bias_delta"] == [-int(round(shifted_mean[0] / bias_scales[0]))]
  corrected_mean, _ = bias_correction.head_output_error(corrected, calibrated, images)
  assert abs(corrected_mean[0]) / step <= STEP_TOLERANCE
  # Only the head's bias changed: every other buffer of the flatbuffer is identical.
  _, _, bias_buffer = _bias(shifted, head["bias"])
  before, after = _buffers(shifted), _buffers(corrected)
  assert len(before) == len(after)
  assert [i for i, (a, b) in enumerate(zip(before, after)) if a != b] == [bias_buffer]
  np.testing.assert_array_equal(_bias(corrected, head["bias"])[0],
                                bias + injected + np.asarray(info["bias_delta"]))


def test_num_images_limits_the_measurement(converted):
  images, calibrated, quantized = converted
  _, info = bias_correction.correct_head_bias(quantized, calibrated, images, num_images=3)
  mean, _ = bias_correction.head_output_error(quantized, calibrated, images[:3])
  assert info["num_images"] == 3
  np.testing.assert_allclose(info["mean_error"], mean, rtol=1e-12)


def test_model_without_float_tail_is_unchanged():
  images = _images()
  calibrated, quantized = _convert(_model(head_activation="relu"), images)
  assert bias_correction.find_head(quantized) is None
  out, info = bias_correction.correct_head_bias(quantized, calibrated, images)
  assert info is None and out == quantized


def test_bad_inputs(converted):
  images, calibrated, quantized = converted
  with pytest.raises(InvalidInputError, match="num_images must be a positive int, got 0"):
    bias_correction.correct_head_bias(quantized, calibrated, images, num_images=0)
  with pytest.raises(InvalidInputError, match="at least one calibration image"):
    bias_correction.head_output_error(quantized, calibrated, [])
  with pytest.raises(InvalidInputError, match=r"bias_correction needs fmt='tflite_int8'.*"
                                              r"'tflite_fp32'"):
    tflite.convert_to_tflite(_model(), "tflite_fp32", bias_correction=True)
