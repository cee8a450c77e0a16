"""Tests of export.tflite and export.litert_runner: every format converts, runs and is accurate."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from export import tflite
from export._common import ExportError
from export._testing import spread_fastdepth
from export.litert_runner import LiteRTRunner, latency_stats
from tfdepth.errors import DataError, InvalidInputError
from tests._images import uniform_images

INPUT_SIZE = (64, 64)
NUM_CALIBRATION = 16
# float32 TFLite runs the same float32 arithmetic as Keras in another order (XNNPACK kernels):
# the brief's bound, 1e-4 of the largest depth.
FP32_RTOL = 1e-4
# float16 weights have a relative rounding error <= 2^-11 ~ 4.9e-4 each; the output error is of
# that order after averaging over many weights (measured 2.4e-4): bound 2e-3 of the max depth.
FP16_RTOL = 2e-3
# Dynamic-range int8: weights rounded to 1/127 of each channel's max (<= 0.4 %); activations stay
# float (measured 3.4e-6): bound 1e-2 of the max depth.
DYNAMIC_RTOL = 1e-2
# Full int8: the output alone is rounded to its quantisation step s (error <= s/2); rounding of
# ~30 intermediate activations adds to it. Bounds in output steps: mean |err| <= 1 s and
# max |err| <= 8 s (measured over random initialisations: mean 0.2-0.3 s, max 2.7-4.8 s, with
# s ~ 0.04 m for depth ~ 5 +- 1 m, i.e. max error ~ 3 % of the depth).
INT8_MEAN_STEPS = 1.0
INT8_MAX_STEPS = 8.0
# int8 on rendered street images (spread_fastdepth, depth ~5 +- 1 m, output step ~0.04 m): the
# mean error of <= 1 step (above) is <= 0.8 % of the depth, so AbsRel of int8 against the float
# depth <= 1 % (measured 0.36 %); against the ground truth the target, AbsRel at most 2 %
# (relative) above the float model's (measured -0.03 %: the random-weight model is far from the
# ground truth, AbsRel 0.62, so that bound is loose here; the benchmark measures trained models).
NUM_STREET_TEST = 4
INT8_VS_FLOAT_ABS_REL = 0.01
INT8_ABS_REL_DRIFT = 0.02


def _images(n, seed):
  return uniform_images(n, INPUT_SIZE + (3,), seed)


@pytest.fixture(scope="module")
def converted():
  """The model, its Keras outputs on test images, and every format converted once."""
  model = spread_fastdepth(INPUT_SIZE)
  rep = tflite.representative_dataset_from(
      tf.data.Dataset.from_tensor_slices(_images(2 * NUM_CALIBRATION, 1)).batch(4),
      NUM_CALIBRATION)
  flatbuffers = {fmt: tflite.convert_to_tflite(model, fmt)
                 for fmt in ("tflite_fp32", "tflite_fp16", "tflite_dynamic")}
  flatbuffers["tflite_int8"] = tflite.convert_to_tflite(
      model, "tflite_int8", representative_dataset=rep, io_dtype=tf.uint8)
  flatbuffers["tflite_int8_int8io"] = tflite.convert_to_tflite(
      model, "tflite_int8", representative_dataset=rep, io_dtype=tf.int8)
  x = _images(3, 2)
  return model, x, model(x)["depth"].numpy(), flatbuffers


def test_float_formats_match_keras(converted):
  _, x, expected, fbs = converted
  scale = np.abs(expected).max()
  for fmt, rtol in (("tflite_fp32", FP32_RTOL), ("tflite_fp16", FP16_RTOL),
                    ("tflite_dynamic", DYNAMIC_RTOL)):
    runner = LiteRTRunner(fbs[fmt])
    assert runner.input_details["dtype"] == np.float32
    assert tuple(runner.input_details["shape"]) == (1,) + INPUT_SIZE + (3,)
    out = runner.predict(x)
    assert out.shape == expected.shape and out.dtype == np.float32
    assert np.abs(out - expected).max() <= rtol * scale, fmt


@pytest.mark.parametrize("key,dtype", [("tflite_int8", np.uint8), ("tflite_int8_int8io", np.int8)])
def test_int8_close_to_float(converted, key, dtype):
  _, x, expected, fbs = converted
  runner = LiteRTRunner(fbs[key], num_threads=2)
  # spread_fastdepth's ReLU head has no output tail to keep float (export.float_tail: the ReLU is
  # fused into the head conv), so the output is integer like the input.
  assert runner.input_details["dtype"] == dtype and runner.output_details["dtype"] == dtype
  in_scale, in_zero = runner.input_details["quantization"]
  # The input quantisation of [0, 1] images: 256 levels over the calibrated range, which for
  # 16 x 64 x 64 x 3 uniform samples is [0, 1] to within ~1e-5 (the expected gap at each end is
  # 1 / 196609): scale 1/255 to rtol 1e-4.
  np.testing.assert_allclose(in_scale, 1.0 / 255.0, rtol=1e-4)
  assert in_zero == (0 if dtype == np.uint8 else -128)
  step = runner.output_details["quantization"][0]
  err = np.abs(runner.predict(x) - expected)
  assert err.mean() <= INT8_MEAN_STEPS * step
  assert err.max() <= INT8_MAX_STEPS * step


def _street_split(split, n):
  """Frames t (float [0, 1]) and depth of ``n`` synthetic street clips of ``split`` at 64x64."""
  from tfds_builders.synthetic_world import render_clip  # pylint: disable=g-import-not-at-top
  clips = [render_clip("street", *INPUT_SIZE, seed=0, split=split, index=i) for i in range(n)]
  images = np.stack([c["frames"][1] for c in clips]).astype(np.float32) / 255.0
  return images, np.stack([c["depth"] for c in clips]).astype(np.float32)


def test_int8_abs_rel_drift_on_synthetic_test_split(converted):
  """int8 calibrated on train-split renders, evaluated on test-split renders (issue 7)."""
  from export import report as report_lib  # pylint: disable=g-import-not-at-top
  model = converted[0]
  calibration, _ = _street_split("train", NUM_CALIBRATION)
  images, depths = _street_split("test", NUM_STREET_TEST)
  flatbuffer = tflite.convert_to_tflite(model, "tflite_int8",
                                        representative_dataset=calibration)
  float_depth = model(images)["depth"].numpy()
  int8_depth = LiteRTRunner(flatbuffer).predict(images)
  # Against the float model's depth as ground truth (the drift of the format alone).
  drift = report_lib.metric_table(float_depth, int8_depth, "synthetic_street")
  assert drift["abs_rel"] <= INT8_VS_FLOAT_ABS_REL
  # Against the rendered ground truth: the issue's <= 2 % relative AbsRel increase.
  keras_table = report_lib.metric_table(depths, float_depth, "synthetic_street")
  int8_table = report_lib.metric_table(depths, int8_depth, "synthetic_street")
  assert abs(int8_table["abs_rel"] / keras_table["abs_rel"] - 1.0) <= INT8_ABS_REL_DRIFT


def test_quantize_dequantize_closed_form(converted):
  _, _, _, fbs = converted
  runner = LiteRTRunner(fbs["tflite_int8_int8io"])
  # The image input is quantised over [0, 1] (`float_tail.pin_input_range`): scale 1/255, zero
  # point -128. 0 -> -128, 1 -> 127, 0.502 -> round(128.01) - 128 = 0, 2/255 -> -126.
  scale_in, zero_in = runner.input_details["quantization"]
  np.testing.assert_allclose(scale_in, 1.0 / 255.0, rtol=1e-6)
  assert zero_in == -128
  q = runner._quantize(np.array([0.0, 1.0, 0.502, 2.0 / 255.0], np.float32))
  np.testing.assert_array_equal(q, np.array([-128, 127, 0, -126], np.int8))
  scale, zero = runner.output_details["quantization"]
  deq = runner._dequantize(np.array([zero, zero + 10], np.int8))
  np.testing.assert_allclose(deq, [0.0, 10 * scale], rtol=1e-6)


def test_sizes_shrink_with_precision(converted):
  _, _, _, fbs = converted
  fp32 = len(fbs["tflite_fp32"])
  n_params = converted[0].count_params()
  # float32 weights (batch norms folded into the convolutions: a little fewer than the Keras
  # parameters) plus graph overhead: within 10 % of 4 bytes per Keras parameter.
  assert 0.9 * 4 * n_params <= fp32 <= 1.1 * 4 * n_params
  assert len(fbs["tflite_fp16"]) <= 0.55 * fp32  # 2 bytes instead of 4 per weight
  assert len(fbs["tflite_dynamic"]) <= 0.4 * fp32  # 1 byte per weight (+ float biases, BN)
  assert len(fbs["tflite_int8"]) <= 0.4 * fp32


def test_runner_resizes_and_times(converted, tmp_path):
  model, _, _, fbs = converted
  path = tmp_path / "m.tflite"
  path.write_bytes(fbs["tflite_fp32"])
  runner = LiteRTRunner(str(path), num_threads=2)
  # A constant image at another size: the model input is the same constant image at model
  # size, and the output is its disparity resized bilinearly, then inverted.
  colour = np.array([0.2, 0.5, 0.9], np.float32)
  out = runner.predict(np.broadcast_to(colour, (1, 40, 100, 3)))
  native = model(np.broadcast_to(colour, (1,) + INPUT_SIZE + (3,)))["depth"].numpy()
  expected = 1.0 / tf.image.resize(1.0 / native, (40, 100), method="bilinear").numpy()
  assert out.shape == (1, 40, 100, 1)
  np.testing.assert_allclose(out, expected, rtol=FP32_RTOL)
  stats = runner.latency(5)
  assert stats["num_runs"] == 5
  assert 0 < stats["p10_ms"] <= stats["median_ms"] <= stats["p90_ms"]
  assert "median_cpu_ms" not in stats  # 2 threads: the work is not all in the calling thread
  one = LiteRTRunner(str(path), num_threads=1).latency(5)
  # One thread cannot use more CPU time than the wall time around it, run by run, so the medians
  # are ordered too (1e-3 ms: the resolution of the two clocks).
  assert 0 < one["median_cpu_ms"] <= one["median_ms"] + 1e-3


def test_latency_stats_closed_form():
  stats = latency_stats([0.001, 0.003, 0.002, 0.010])
  assert stats["median_ms"] == pytest.approx(2.5)
  assert stats["mean_ms"] == pytest.approx(4.0)
  assert stats["num_runs"] == 4


def test_representative_dataset_from():
  images = _images(5, 3)
  rep = tflite.representative_dataset_from(iter([{"image": im} for im in images]), 3)
  assert len(rep) == 3
  np.testing.assert_array_equal(rep.images, images[:3])
  batches = list(rep())
  assert len(batches) == 3 and batches[0][0].shape == (1,) + INPUT_SIZE + (3,)
  small = tflite.representative_dataset_from([(images[:2, :32, :32], None)], 10, INPUT_SIZE)
  assert small.images.shape == (2,) + INPUT_SIZE + (3,)
  # Constant images stay constant under resizing.
  const = tflite.representative_dataset_from([np.full((1, 8, 8, 3), 0.25, np.float32)], 1,
                                             INPUT_SIZE)
  np.testing.assert_allclose(const.images, 0.25, rtol=1e-7)


def test_bad_inputs(converted):
  model, x, _, fbs = converted
  with pytest.raises(InvalidInputError, match=r"'tflite_int4'.*tflite_fp32.*tflite_int8"):
    tflite.convert_to_tflite(model, "tflite_int4")
  with pytest.raises(InvalidInputError, match="requires a representative_dataset"):
    tflite.convert_to_tflite(model, "tflite_int8")
  with pytest.raises(InvalidInputError, match="empty"):
    tflite.convert_to_tflite(model, "tflite_int8", representative_dataset=[])
  with pytest.raises(InvalidInputError, match="empty"):
    tflite.representative_dataset_from(tf.data.Dataset.from_tensor_slices(x[:0]), 4)
  with pytest.raises(InvalidInputError, match="io_dtype for tflite_fp16 must be float32"):
    tflite.convert_to_tflite(model, "tflite_fp16", io_dtype=tf.uint8)
  with pytest.raises(InvalidInputError, match="int16"):
    tflite.convert_to_tflite(model, "tflite_int8", representative_dataset=x, io_dtype=tf.int16)
  with pytest.raises(InvalidInputError, match="only used by tflite_int8"):
    tflite.convert_to_tflite(model, "tflite_fp32", representative_dataset=x)
  with pytest.raises(InvalidInputError, match=r"in \[0, 1\], got range \[0\.0\d+, 25\d\."):
    tflite.representative_dataset_from([x * 255.0], 2)
  with pytest.raises(InvalidInputError, match="num_samples"):
    tflite.representative_dataset_from([x], 0)
  with pytest.raises(InvalidInputError, match=r"\(32, 32\).*\(64, 64\)"):
    tflite.convert_to_tflite(model, "tflite_int8",
                             representative_dataset=tflite.RepresentativeDataset(x[:, :32, :32]))
  runner = LiteRTRunner(fbs["tflite_fp32"])
  with pytest.raises(InvalidInputError, match="in \\[0, 1\\]"):
    runner.predict(x * 2.0)
  with pytest.raises(InvalidInputError, match="float"):
    runner.predict((x * 255).astype(np.uint8))
  with pytest.raises(InvalidInputError, match="num_runs"):
    runner.latency(0)
  with pytest.raises(InvalidInputError, match="num_threads"):
    LiteRTRunner(fbs["tflite_fp32"], num_threads=0)
  with pytest.raises(DataError, match="no TFLite file"):
    LiteRTRunner("/nonexistent/model.tflite")


def test_unsupported_op_is_explained():
  inp = keras.Input((32, 32, 3))
  # Digamma has no TFLite builtin kernel (nor a Flex kernel: it is only there to fail).
  out = keras.layers.Lambda(lambda t: tf.math.digamma(t[..., :1] + 1.0))(inp)
  model = keras.Model(inp, {"depth": out})
  with pytest.raises(ExportError, match=r"builtin ops only.*\['Digamma'\].*allow_select_tf_ops"):
    tflite.convert_to_tflite(model, "tflite_fp32")
