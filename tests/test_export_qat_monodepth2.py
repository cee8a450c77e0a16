"""QAT of Monodepth2-R18 (issue 7: every format, tflite_qat included, for Monodepth2-R18).

One worker run (`export.qat`, a subprocess: tf_keras / tfmot never meet Keras 3 objects) at
64x64, the smallest size the depth net takes, 1 epoch of 1 batch; ~40 s of CPU on 2 cores
(tf_keras / tfmot import, quantize_apply of ~200 layers, one step, conversion).
"""

import numpy as np
import pytest

from export import qat
from export._testing import spread_monodepth2
from export.litert_runner import LiteRTRunner
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
# Tolerance, in Monodepth2's sigmoid disparity s (depth = 1 / (1/100 + (1/0.1 - 1/100) s),
# disp_to_depth) and in units of 1/256: TFLite fixes the int8 LOGISTIC output at scale 1/256
# (zero point -128), so s itself is rounded to 1/256 (<= 0.5 unit) and disp_to_depth's int8
# MUL / ADD / DIV add their own rounding (the scaled-disparity ADD is quantised over its
# calibrated range, a step of ~2 units here); the uint8 depth output's own rounding (<= step/2
# in metres) is d^-2 / (1/0.1 - 1/100) of that in s, added per pixel. Depth errors in metres are
# d^2 (1/0.1 - 1/100) |e_s|: large at far range, which is Monodepth2's parameterisation in int8,
# not QAT. Measured median 0.51 / max 2.63 units; a broken graph (a wrong scale, a dropped op,
# ranges at tfmot's [-6, 6]) is off by many units over most pixels.
MEDIAN_SIGMOID_UNITS = 1.0
MAX_SIGMOID_UNITS = 4.0
SIGMOID_UNIT = 1.0 / 256.0
# Monodepth2's decoder: 5 stages x 2 Conv3x3 with ELU (Godard et al. 2019): ELU is not in tfmot's
# registry, and disp_to_depth is a Lambda; both get output-only quantisation.
NUM_ELUS = 10


def _uint8_images(n, seed):
  """Images on the uint8 grid k / 255, so that the uint8 input of the int8 file is exact."""
  rng = np.random.default_rng(seed)
  return (rng.integers(0, 256, size=(n,) + INPUT_SIZE + (3,)) / 255.0).astype(np.float32)


def _sigmoid_disp(depth):
  """Monodepth2's sigmoid-space disparity of a depth map (inverse of disp_to_depth)."""
  return depth_to_disp(depth).numpy()


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
  assert len(elus) == NUM_ELUS and set(info["output_only_layers"]) == set(elus) | {"monodepth2_depth_to_depth"}
  runner = LiteRTRunner(path)
  assert runner.input_details["dtype"] == np.uint8 and runner.output_details["dtype"] == np.uint8
  x = _uint8_images(2, 1)
  expected = model(x)["depth"].numpy()
  out = runner.predict(x)
  assert out.shape == (2,) + INPUT_SIZE + (1,) and out.dtype == np.float32
  scale, zero_point = runner.output_details["quantization"]
  assert out.min() > 0.0  # depth >= 0.1 m > step / 2 rounds to q >= 1: finite disparity
  err = np.abs(_sigmoid_disp(out) - _sigmoid_disp(expected)) / SIGMOID_UNIT
  output_rounding = (0.5 * scale / expected**2 / (1.0 / MONODEPTH2_MIN_DEPTH
                                                  - 1.0 / MONODEPTH2_MAX_DEPTH) / SIGMOID_UNIT)
  stats = (f"depth {expected.min():.3f}..{expected.max():.3f} m, std {expected.std():.3f}, "
           f"step {scale:.5f} m, sigmoid-disparity error median {np.median(err):.3f} / max "
           f"{err.max():.3f} units of 1/256, info {info}")
  # The spread head gives a varied depth map: it spans many output steps.
  assert expected.std() > 0.5 and np.ptp(expected) / scale > 50, stats
  # The output range is the range QAT trained ([0, max of the depth], 0 included as tfmot's
  # quantisers nudge it), not tfmot's initial [-6, 6] (6 m would clip this depth map).
  assert zero_point == 0
  np.testing.assert_allclose(255 * scale, info["final_output_range"][1], rtol=1e-5)
  assert info["final_output_range"][1] >= expected.max() - scale, stats
  assert np.median(err) <= MEDIAN_SIGMOID_UNITS, stats
  assert np.all(err <= MAX_SIGMOID_UNITS + output_rounding), stats

