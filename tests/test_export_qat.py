"""Tests of export.qat: QAT + pruning in the tf_keras worker process gives a runnable int8 model.

One worker run (about 30-45 s on 2 cores: tf_keras / tfmot import, pruning, QAT, conversion)
covers the whole path; argument errors are checked without starting a worker.
"""

import numpy as np
import pytest

from export import qat
from export._testing import spread_fastdepth
from export.litert_runner import LiteRTRunner
from tfdepth.errors import InvalidInputError
from tests._images import uniform_images

INPUT_SIZE = (32, 32)
WIDTH = 0.25
BUILDER = "tfdepth.models:build_fastdepth"
BUILDER_KWARGS = {"input_shape": [32, 32, 3], "width_multiplier": WIDTH}
TARGET_SPARSITY = 0.5
# ConstantSparsity zeroes round(s * n) entries of each pruned kernel: the overall zero fraction
# of the prunable kernels equals s up to the rounding of each kernel (< 0.5 entry per kernel).
SPARSITY_ATOL = 0.01
# One QAT step cannot test accuracy (the benchmark's job). tfmot's activation ranges start at
# [-6, 6] and move by an EMA with decay 0.999 per step; the worker sets them from one batch first
# (`_qat_worker._initialize_ranges`), which the test checks through the depth output's range.


@pytest.fixture(scope="module")
def model():
  return spread_fastdepth(INPUT_SIZE, width_multiplier=WIDTH)


def _images(n, seed=0):
  return uniform_images(n, INPUT_SIZE + (3,), seed)


def test_qat_with_pruning_runs(model, tmp_path):
  images = _images(8)
  path = qat.quantization_aware_training(
      model, BUILDER, str(tmp_path / "qat.tflite"), {"images": images},
      builder_kwargs=BUILDER_KWARGS, epochs=1, batch_size=8, target_sparsity=TARGET_SPARSITY)
  info = qat.read_qat_info(path)
  assert info["num_train_images"] == 8
  assert len(info["qat_loss"]) == 1 and len(info["prune_loss"]) == 1
  assert info["output_only_layers"] == []  # FastDepth's tf_keras twin has only registry layers
  # A ReLU head has no output tail (TFLite fuses the ReLU into the head conv): nothing is kept
  # float, the output stays uint8 (a sigmoid head's tail would be float, export.float_tail).
  assert info["float_tail_layers"] == [] and info["float_tail_ops"] == []
  assert abs(info["prunable_kernel_sparsity"] - TARGET_SPARSITY) <= SPARSITY_ATOL
  # The output range starts at the batch range of the (pruned) model's depth, 5 +- 1 m with a
  # maximum near 9-10 m, instead of tfmot's [-6, 6], which one EMA step would move by 0.1 % only
  # (to <= 6.01 m): the ReLU head puts the minimum at 0.
  lo, hi = info["initial_output_range"]
  assert lo == 0.0 and hi > 8.0
  # One step moves it by the EMA: new = 0.999 old + 0.001 batch max (tfmot decay).
  assert abs(info["final_output_range"][1] - hi) <= 0.001 * hi
  runner = LiteRTRunner(path)
  assert runner.input_details["dtype"] == np.uint8 and runner.output_details["dtype"] == np.uint8
  # The input is quantised as 8-bit images are (scale 1/255, zero point 0; the input range is
  # pinned to [0, 1] before and after fit), not over the training images' range.
  assert info["pinned_input_ranges"] == 1
  np.testing.assert_allclose(runner.input_details["quantization"][0], 1.0 / 255.0, rtol=1e-6)
  assert runner.input_details["quantization"][1] == 0
  x = _images(2, seed=1)
  out = runner.predict(x)
  assert out.shape == (2,) + INPUT_SIZE + (1,) and out.dtype == np.float32
  # Dequantised uint8: (q - zero_point) * scale with integer q in [0, 255].
  scale, zero_point = runner.output_details["quantization"]
  q = out / scale + zero_point
  np.testing.assert_allclose(q, np.round(q), atol=1e-3)  # float32 rounding of q * scale
  assert q.min() >= -1e-3 and q.max() <= 255 + 1e-3
  # The converter quantises the output over the trained range [0, max]: zero point 0 and
  # 255 steps up to max (the converter nudges the range so that 0 is exact: same scale here).
  assert zero_point == 0
  np.testing.assert_allclose(255 * scale, info["final_output_range"][1], rtol=1e-5)


def test_mismatched_weights_refused_before_the_worker(model, tmp_path):
  # A wider model has other weight shapes: refused in this process, no worker is started.
  expected = (r"do not match .*width_multiplier': 0\.5\}\): 189 arrays vs 189 expected; "
              r"first difference at index 2: \(3, 3, 3, 8\) vs \(3, 3, 3, 16\)")
  with pytest.raises(InvalidInputError, match=expected):
    qat.quantization_aware_training(
        model, BUILDER, str(tmp_path / "bad.tflite"), {"images": _images(2)},
        builder_kwargs={"input_shape": [32, 32, 3], "width_multiplier": 0.5}, epochs=1)
  assert not (tmp_path / "bad.tflite").exists()


def test_bad_arguments(model, tmp_path):
  out = str(tmp_path / "x.tflite")
  data = {"images": _images(2)}
  with pytest.raises(InvalidInputError, match="module:function"):
    qat.quantization_aware_training(model, "build_fastdepth", out, data)
  with pytest.raises(InvalidInputError, match="target_sparsity.*1.5"):
    qat.quantization_aware_training(model, BUILDER, out, data, target_sparsity=1.5)
  with pytest.raises(InvalidInputError, match="io_dtype.*int4"):
    qat.quantization_aware_training(model, BUILDER, out, data, io_dtype="int4")
  with pytest.raises(InvalidInputError, match="epochs.*0"):
    qat.quantization_aware_training(model, BUILDER, out, data, epochs=0)
  with pytest.raises(InvalidInputError, match=r"\(16, 16\).*\(32, 32\)"):
    qat.quantization_aware_training(model, BUILDER, out, {"images": _images(2)[:, :16, :16]},
                                    builder_kwargs=BUILDER_KWARGS)
  with pytest.raises(InvalidInputError, match="key 'images'"):
    qat.quantization_aware_training(model, BUILDER, out, {"x": _images(2)},
                                    builder_kwargs=BUILDER_KWARGS)
  with pytest.raises(InvalidInputError, match=r"depth'\] must be \(2, 32, 32, 1\)"):
    qat.quantization_aware_training(model, BUILDER, out,
                                    {"images": _images(2), "depth": np.ones((2, 32, 32))},
                                    builder_kwargs=BUILDER_KWARGS)
