"""Tests of export.float_tail: int8 TFLite keeps the depth model's output tail in float (issue 7).

Few, small conversions (a 1x1-conv model at 16x16, a FastDepth-0.25 at 32x32: a few seconds each
on one core); Monodepth2-R18 is covered by tests/test_export_rewrite.py (post-training int8) and
tests/test_export_qat_monodepth2.py (QAT).
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from export import float_tail
from export import tflite
from export.litert_runner import LiteRTRunner, op_summary
from tfdepth.geometry.intrinsics import MONODEPTH2_MAX_DEPTH
from tfdepth.geometry.intrinsics import MONODEPTH2_MIN_DEPTH
from tfdepth.geometry.intrinsics import depth_to_disp
from tfdepth.models.monodepth2 import sigmoid_disp_to_depth

SIZE = (16, 16)
# Far range of the hand-made model: its logits map the mean colour m in [0, 1] linearly onto
# logit(depth_to_disp(80 m)) .. logit(depth_to_disp(10 m)) = -8.29 .. -4.70, through Monodepth2's
# disp_to_depth over 0.1..100 m (sigmoid 2.5e-4 .. 9.0e-3: the range where the int8 LOGISTIC's
# fixed 1/256 step is coarsest; the 14 m pixel has sigmoid 0.0062).
FAR_DEPTH_M = 80.0
NEAR_DEPTH_M = 10.0
# Monodepth2's sigmoid + disp_to_depth as TFLite ops (LOGISTIC, then MUL, ADD, DIV), output first.
MONODEPTH2_TAIL_OPS = ["DIV", "ADD", "MUL", "LOGISTIC"]
# The fully quantised tail (float_tail=False) rounds the sigmoid to k/256: at 10..80 m only k = 0,
# 1 or 2 occur, i.e. depths of 100 (clipped to the output range, 80), 20.1 or 11.4 m; measured
# relative error max 1.37 (a 34 m pixel output as 80 m), mean 0.37 (a 14 m pixel: 11.3 m). The
# float tail: max 0.014, mean 0.007 (14 m -> 13.86 m). A bound of 0.2 on the old maximum separates
# the two by an order of magnitude.
OLD_MIN_MAX_REL_ERR = 0.2


def _logit(p):
  return np.log(p / (1.0 - p))


def _far_model():
  """image -> 1x1 conv logits (a linear map of the mean colour) -> sigmoid -> disp_to_depth."""
  inp = keras.Input(SIZE + (3,), name="image")
  head = keras.layers.Conv2D(1, 1, name="far_head")
  logits = head(inp)
  disp = keras.layers.Activation("sigmoid", name="far_sigmoid")(logits)
  depth = keras.layers.Lambda(sigmoid_disp_to_depth, name="far_to_depth",
                              arguments={"min_depth": MONODEPTH2_MIN_DEPTH,
                                         "max_depth": MONODEPTH2_MAX_DEPTH})(disp)
  model = keras.Model(inp, {"depth": depth})
  lo, hi = (_logit(float(depth_to_disp(np.float32(d)))) for d in (FAR_DEPTH_M, NEAR_DEPTH_M))
  head.set_weights([np.full((1, 1, 3, 1), (hi - lo) / 3.0, np.float32),
                    np.array([lo], np.float32)])
  return model


def _grid_images(n, seed):
  """Images on the uint8 grid k / 255 (exact uint8 input), the first two black and white, so
  that calibration sees the whole logit range."""
  rng = np.random.default_rng(seed)
  images = rng.integers(0, 256, size=(n,) + SIZE + (3,)) / 255.0
  images[0], images[1] = 0.0, 1.0
  return images.astype(np.float32)


@pytest.fixture(scope="module")
def far():
  model = _far_model()
  rep = tflite.RepresentativeDataset(_grid_images(8, 0))
  # Test images: random colours plus constant grey levels across the whole far range.
  x = _grid_images(4, 1)
  x[0] = (np.arange(SIZE[0] * SIZE[1]).reshape(SIZE + (1,)) % 256 / 255.0).astype(np.float32)
  new = tflite.convert_to_tflite(model, "tflite_int8", rep, io_dtype=tf.uint8)
  old = tflite.convert_to_tflite(model, "tflite_int8", rep, io_dtype=tf.uint8, float_tail=False)
  return model, x, model(x)["depth"].numpy(), new, old


def test_output_tail_of_disp_to_depth():
  tail = float_tail.output_tail(tflite.convert_to_tflite(_far_model(), "tflite_fp32"))
  assert [t["op"] for t in tail] == MONODEPTH2_TAIL_OPS
  assert "far_to_depth" in tail[1]["output"] and "far_sigmoid" in tail[3]["output"]


def test_float_tail_keeps_far_depth_precision(far):
  model, x, expected, new, _ = far
  del model
  assert expected.min() >= NEAR_DEPTH_M * 0.99 and expected.max() <= FAR_DEPTH_M * 1.01
  assert np.ptp(expected) > 50.0  # the test covers the whole far range
  runner = LiteRTRunner(new)
  assert runner.input_details["dtype"] == np.uint8  # integer image input, as before
  assert runner.output_details["dtype"] == np.float32  # depth in metres, no dequantising
  ops = op_summary(new)
  assert {op: ops["float_ops"].get(op) for op in MONODEPTH2_TAIL_OPS} == dict.fromkeys(
      MONODEPTH2_TAIL_OPS, 1)
  assert ops["op_counts"]["CONV_2D"] == 1 and "CONV_2D" not in ops["float_ops"]
  assert ops["num_delegate_partitions"] == 1  # XNNPACK runs the float tail too
  # Error bound: the uint8 input is exact (grid images, calibrated scale 1/255), the int8 weights
  # too (three equal weights = 127 steps), the int32 bias error is ~1e-5 in logit; what remains
  # is the rounding of the int8 logits, at most half their step s (range [-8.29, 0], s = 0.033:
  # the converter's ranges include 0). d ln(depth) / d logit = -b s (1 - s) / (a + b s), below
  # 0.9 in magnitude here, so the relative depth error is <= 0.5 s, ~1.5 % (+ 1e-4 float rounding).
  scale, _ = float_tail.tail_input_quantization(new)
  assert 0.02 < scale < 0.05
  rel = np.abs(runner.predict(x) / expected - 1.0)
  assert rel.max() <= 0.5 * scale + 1e-4, (rel.max(), scale)


def test_quantised_tail_loses_far_depth(far):
  """The old behaviour (float_tail=False): the same model fully quantised is far off."""
  _, x, expected, _, old = far
  runner = LiteRTRunner(old)
  assert runner.output_details["dtype"] == np.uint8
  assert op_summary(old)["float_ops"] == {}
  assert float_tail.tail_input_quantization(old) is None
  rel = np.abs(runner.predict(x) / expected - 1.0)
  assert rel.max() > OLD_MIN_MAX_REL_ERR


def test_sigmoid_head_fastdepth_tail_and_relu_head_without_tail():
  from tfdepth.models import build_fastdepth  # pylint: disable=g-import-not-at-top
  keras.utils.set_random_seed(0)
  model = build_fastdepth((32, 32, 3), width_multiplier=0.25, depth_activation="sigmoid",
                          max_depth=80.0)
  rep = tflite.RepresentativeDataset(np.random.default_rng(0).uniform(
      size=(4, 32, 32, 3)).astype(np.float32))
  flatbuffer = tflite.convert_to_tflite(model, "tflite_int8", rep, io_dtype=tf.int8)
  # sigmoid x 80 m: LOGISTIC, then the frozen 1x1 depthwise conv (tfdepth.models.heads), which
  # export.rewrite converts as a MUL by 80 (export.rewrite.ScalarMultiply).
  assert op_summary(flatbuffer)["float_ops"] == {"MUL": 1, "LOGISTIC": 1}
  runner = LiteRTRunner(flatbuffer)
  assert runner.input_details["dtype"] == np.int8
  assert runner.output_details["dtype"] == np.float32
  x = rep.images[:2]
  expected = model(x)["depth"].numpy()  # ~40 m everywhere at initialisation (sigmoid ~0.5)
  # With the sigmoid in float there is no 80/256 = 0.31 m output step (0.8 % of 40 m; measured
  # max 0.52 % with float_tail=False); what remains is the int8 logits' rounding, 80 s / 4 m per
  # logit step s (s = 1e-4 here: 0.005 % of 40 m; measured max 0.02 %). Bound: 0.1 %.
  assert np.max(np.abs(runner.predict(x) / expected - 1.0)) < 1e-3
  # A ReLU head (build_fastdepth's default) has no tail: the CONV_2D fuses the ReLU.
  relu = build_fastdepth((32, 32, 3), width_multiplier=0.25)
  assert float_tail.output_tail(tflite.convert_to_tflite(relu, "tflite_fp32")) == []
