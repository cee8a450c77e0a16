"""The full-integer TFLite input is quantised over the images' [0, 1] range, not over the
calibration images' range: a uint8 model takes camera bytes as they are (`export.float_tail.
pin_input_range`)."""

import numpy as np
import pytest
import tensorflow as tf

from export import tflite
from export._testing import spread_fastdepth
from export.litert_runner import interpreter_for

SIZE = (32, 32)
# Calibration images darker than real ones (pixel values 0.05..0.6): before, the uint8 input
# scale became 0.6 / 255 and a raw byte b was read as 0.6 b / 255.
CALIBRATION_RANGE = (0.05, 0.6)
# Median |ln(int8 / float depth)| of this random-weight FastDepth-0.25 on an image like the
# calibration images: 0.0033 measured (every layer quantised); bytes read with the calibration
# range's scale (the inputs x 0.6, before) gave 0.048. The bound sits 3x above the first.
MEDIAN_LOG_RATIO_TOL = 0.01


@pytest.fixture(scope="module")
def model_and_files():
  model = spread_fastdepth(SIZE)
  rng = np.random.default_rng(0)
  lo, hi = CALIBRATION_RANGE
  rep = tflite.RepresentativeDataset(
      (lo + (hi - lo) * rng.uniform(size=(8,) + SIZE + (3,))).astype(np.float32))
  files = {dtype.name: bytes(tflite.convert_to_tflite(model, "tflite_int8",
                                                      representative_dataset=rep, io_dtype=dtype))
           for dtype in (tf.uint8, tf.int8)}
  return model, files


def _input(flatbuffer):
  it = interpreter_for(flatbuffer)
  it.allocate_tensors()
  return it, it.get_input_details()[0]


def test_input_quantisation_is_that_of_8_bit_images(model_and_files):
  _, files = model_and_files
  _, u8 = _input(files["uint8"])
  _, i8 = _input(files["int8"])
  assert u8["dtype"] == np.uint8 and i8["dtype"] == np.int8
  np.testing.assert_allclose(u8["quantization"][0], 1.0 / 255.0, rtol=1e-6)
  assert u8["quantization"][1] == 0
  np.testing.assert_allclose(i8["quantization"][0], 1.0 / 255.0, rtol=1e-6)
  assert i8["quantization"][1] == -128


def test_uint8_model_takes_camera_bytes(model_and_files):
  model, files = model_and_files
  it, detail = _input(files["uint8"])
  rng = np.random.default_rng(1)
  # An image like the calibration images (values 0.05..0.6, so that every layer stays within
  # its calibrated range), as a camera delivers it: bytes round(255 x).
  lo, hi = CALIBRATION_RANGE
  image = lo + (hi - lo) * rng.uniform(size=(1,) + SIZE + (3,))
  raw = np.round(image * 255.0).astype(np.uint8)
  it.set_tensor(detail["index"], raw)
  it.invoke()
  out = it.get_output_details()[0]
  got = it.get_tensor(out["index"]).astype(np.float32)
  if out["dtype"] != np.float32:
    scale, zero = out["quantization"]
    got = (got - zero) * scale
  expected = model(raw.astype(np.float32) / 255.0)["depth"].numpy()
  valid = (expected > 0.1) & (got > 0.1)
  assert valid.mean() > 0.9
  assert np.median(np.abs(np.log(got[valid] / expected[valid]))) < MEDIAN_LOG_RATIO_TOL
