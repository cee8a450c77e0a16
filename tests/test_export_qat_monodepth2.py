"""QAT of Monodepth2-R18 (issue 7: every format, tflite_qat included, for Monodepth2-R18).

One worker run (`export.qat`, a subprocess: tf_keras / tfmot never meet Keras 3 objects) at
64x64, the smallest size the depth net takes, 1 epoch of 1 batch; ~40 s of CPU on 2 cores
(tf_keras / tfmot import, quantize_apply of ~200 layers, one step, conversion).
"""

import numpy as np
import pytest

from export import float_tail
from export import qat
from export._testing import spread_monodepth2
from export.litert_runner import LiteRTRunner, op_summary
from tfdepth.geometry.intrinsics import MONODEPTH2_MAX_DEPTH
from tfdepth.geometry.intrinsics import MONODEPTH2_MIN_DEPTH
from tfdepth.geometry.intrinsics import depth_to_disp

INPUT_SIZE = (64, 64)
BUILDER = "export._testing:monodepth2_depth_model"
BUILDER_KWARGS = {"input_size": list(INPUT_SIZE), "num_layers": 18}
NUM_TRAIN = 8
# One Adam step moves every weight by about the learning rate (Adam's first step is
# lr * g / |g|): at 1e-7 that is < 1e-4 of a weight quantisation step of this net (per-channel
# scales ~1e-3-1e-4), so the int8 file is compared with the float model it was trained from and
# the error below is the quantisation error alone. (At the default 1e-4 the single step shifts
# the depth by ~1 output step: a training effect, not a conversion one.)
LEARNING_RATE = 1e-7
# Tolerance, in the disparity LOGITS (the head convolution's output before the sigmoid) and in
# units of their int8 step s: the sigmoid and disp_to_depth run in float in the converted model
# (export.float_tail; before, the int8 LOGISTIC rounded the sigmoid to 1/256 and the int8 DIV of
# disp_to_depth failed at run time on trained weights: "div.cc data[i] != zero_point"). The
# logits are rounded to s (<= 0.5 step) after ~45 int8 layers whose rounding adds to it; the
# QAT model does not fake-quantise the logits (they are calibrated at conversion), and the float
# model and the int8 file differ by quantisation alone (learning rate above). Measured median
# 0.54 / max 3.80 steps (s = 0.024, depth 0.66..26 m); a broken graph (a wrong scale, a dropped
# op, a quantised tail) is off by many steps over most pixels. Relative depth errors are at most
# the logit errors: |d ln(depth) / d logit| = b sigma (1 - sigma) / (a + b sigma) <= 1.
MEDIAN_LOGIT_STEPS = 1.5
MAX_LOGIT_STEPS = 8.0
# Monodepth2's decoder: 5 stages x 2 Conv3x3 with ELU (Godard et al. 2019): ELU is not in tfmot's
# registry and gets output-only quantisation. The output tail (sigmoid + disp_to_depth Lambda)
# is not fake-quantised, and stays float in TFLite: LOGISTIC, MUL, ADD, DIV.
NUM_ELUS = 10
TAIL_LAYERS = ["monodepth2_depth_to_depth", "monodepth2_depth_decoder_dispconv0_sigmoid"]
TAIL_OPS = ["DIV", "ADD", "MUL", "LOGISTIC"]


def _uint8_images(n, seed):
  """Images on the uint8 grid k / 255, so that the uint8 input of the int8 file is exact."""
  rng = np.random.default_rng(seed)
  return (rng.integers(0, 256, size=(n,) + INPUT_SIZE + (3,)) / 255.0).astype(np.float32)


def _logit(depth):
  """Monodepth2's disparity logit of a depth map (inverse of sigmoid + disp_to_depth)."""
  s = depth_to_disp(depth).numpy().astype(np.float64)
  return np.log(s / (1.0 - s))


@pytest.fixture(scope="module")
def model():
  return spread_monodepth2(INPUT_SIZE)


def test_qat_of_monodepth2_runs_in_litert_close_to_float(model, tmp_path):
  path = qat.quantization_aware_training(
      model, BUILDER, str(tmp_path / "md2_qat.tflite"), {"images": _uint8_images(NUM_TRAIN, 0)},
      builder_kwargs=BUILDER_KWARGS, epochs=1, batch_size=NUM_TRAIN,
      learning_rate=LEARNING_RATE)
  info = qat.read_qat_info(path)
  assert info["num_train_images"] == NUM_TRAIN and len(info["qat_loss"]) == 1
  elus = [n for n in info["output_only_layers"] if n.endswith("_elu")]
  assert len(elus) == NUM_ELUS and info["output_only_layers"] == elus
  assert info["float_tail_layers"] == TAIL_LAYERS and info["float_tail_ops"] == TAIL_OPS
  assert info["final_output_range"] is None  # the depth output is not fake-quantised
  runner = LiteRTRunner(path)
  assert runner.input_details["dtype"] == np.uint8 and runner.output_details["dtype"] == np.float32
  ops = op_summary(path)
  assert {op: ops["float_ops"].get(op) for op in TAIL_OPS} == dict.fromkeys(TAIL_OPS, 1)
  assert "CONV_2D" not in ops["float_ops"]  # the head convolution is int8
  x = _uint8_images(2, 1)
  expected = model(x)["depth"].numpy()
  out = runner.predict(x)
  assert out.shape == (2,) + INPUT_SIZE + (1,) and out.dtype == np.float32
  assert np.all(out >= MONODEPTH2_MIN_DEPTH * 0.999) and np.all(out <= MONODEPTH2_MAX_DEPTH * 1.001)
  step, _ = float_tail.tail_input_quantization(path)
  err = np.abs(_logit(out) - _logit(expected)) / step
  stats = (f"depth {expected.min():.3f}..{expected.max():.3f} m, std {expected.std():.3f}, "
           f"logit step {step:.5f}, logit error median {np.median(err):.3f} / max "
           f"{err.max():.3f} steps, info {info}")
  # The spread head gives a varied depth map (the test covers near and far pixels).
  assert expected.std() > 0.5 and expected.max() > 10.0, stats
  assert np.median(err) <= MEDIAN_LOGIT_STEPS, stats
  assert err.max() <= MAX_LOGIT_STEPS, stats
