"""Tests of export.rewrite and of Monodepth2-R18 export: exact rewrites, every format, op lists.

One Monodepth2-R18 at 64x64 (the smallest size the depth net takes) is converted once per format
in a module-scoped fixture (four conversions, ~10 s each on a loaded core).
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from export import float_tail
from export import qat
from export import rewrite
from export import tflite
from export._testing import monodepth2_depth_model
from export.litert_runner import LiteRTRunner, op_summary
from tfdepth.errors import InvalidInputError
from tfdepth.layers import ReflectionPadding2D
from tests._images import uniform_images

INPUT_SIZE = (64, 64)
NUM_CALIBRATION = 8
# Monodepth2's decoder: 5 stages x 2 Conv3x3 + 1 disparity head = 11 reflection paddings, and
# 5 nearest x2 upsamplings (Godard et al. 2019, DepthDecoder); 10 ELUs (the disparity head's
# activation is a sigmoid).
NUM_PADS = 11
NUM_UPSAMPLINGS = 5
NUM_ELUS = 10
# Decoder stages 4..1 concatenate an encoder skip before their second Conv3x3: the convolutions
# that export.rewrite.split_concat_convs splits.
NUM_SKIPS = 4
# float32 TFLite vs Keras (issue 7 acceptance): 1e-4 of the largest depth.
FP32_RTOL = 1e-4
# float16 weights: relative rounding <= 2^-11 each; through 30 layers 2e-3 of the max depth
# (as tests/test_export_tflite.py). Dynamic range: int8 weights, float activations, 1e-2.
FP16_RTOL = 2e-3
DYNAMIC_RTOL = 1e-2
# Full int8 with float I/O and the float tail (sigmoid + disp_to_depth, export.float_tail): the
# disparity logits are the last int8 tensor, rounded to their step s (error <= s/2) after the
# rounding of ~45 intermediate activations. |d ln(depth) / d logit| = b sigma (1 - sigma) /
# (a + b sigma) <= 1, so the RELATIVE depth error is at most the logit error: bounds mean <= 2 s,
# max <= 16 s (measured 0.53 s and 3.18 s, s = 4.5e-4 for this net's logits near 0): a loose
# bound on a randomly initialised net, tight enough to catch a broken graph (a wrong scale or a
# dropped op is off by hundreds of steps).
INT8_MEAN_STEPS = 2.0
INT8_MAX_STEPS = 16.0
# Monodepth2's output tail in TFLite ops, float in the int8 model (export.float_tail).
TAIL_OPS = ("LOGISTIC", "MUL", "ADD", "DIV")
# SavedModel graph vs eager Keras: same float32 kernels, fused differently by grappler / oneDNN.
SAVED_MODEL_RTOL = 1e-6


def _images(n, seed, size=INPUT_SIZE):
  return uniform_images(n, tuple(size) + (3,), seed)


# ---------------------------------------------------------------------------------- layers
@pytest.mark.parametrize("padding", [((1, 1), (1, 1)), ((2, 0), (1, 3))])
def test_slice_padding_equals_reflection_padding(padding):
  x = tf.constant(_images(2, 0, (5, 6)))
  expected = ReflectionPadding2D(padding)(x).numpy()
  out = rewrite.SliceReflectionPadding2D(padding)(x).numpy()
  np.testing.assert_array_equal(out, expected)  # pure copies: bit-identical


def test_slice_padding_closed_form():
  # [a, b, c] padded by 1 is [b, a, b, c, b] (nn.ReflectionPad2d), on both axes.
  x = tf.reshape(tf.constant([1.0, 2.0, 3.0, 4.0, 5.0, 6.0]), (1, 2, 3, 1))
  out = rewrite.SliceReflectionPadding2D(((1, 1), (1, 1)))(x).numpy()[0, :, :, 0]
  np.testing.assert_array_equal(out, [[5, 4, 5, 6, 5], [2, 1, 2, 3, 2], [5, 4, 5, 6, 5],
                                      [2, 1, 2, 3, 2]])


@pytest.mark.parametrize("size", [2, 3])
def test_depth_to_space_equals_nearest_upsampling(size):
  x = tf.constant(_images(2, 1, (3, 4)))
  expected = keras.layers.UpSampling2D(size, interpolation="nearest")(x).numpy()
  out = rewrite.DepthToSpaceUpsampling2D(size)(x).numpy()
  assert out.shape == (2, 3 * size, 4 * size, 3)
  np.testing.assert_array_equal(out, expected)


def test_layer_configs_round_trip():
  pad = rewrite.SliceReflectionPadding2D(((2, 0), (1, 3)), name="p")
  again = rewrite.SliceReflectionPadding2D.from_config(pad.get_config())
  assert again.padding == ((2, 0), (1, 3)) and again.name == "p"
  up = rewrite.DepthToSpaceUpsampling2D(3, name="u")
  assert rewrite.DepthToSpaceUpsampling2D.from_config(up.get_config()).size == 3
  with pytest.raises(InvalidInputError, match=r"size must be a positive int, got 0"):
    rewrite.DepthToSpaceUpsampling2D(0)
  with pytest.raises(InvalidInputError, match=r"padding must be .*got \(1, 2, 3\)"):
    rewrite.SliceReflectionPadding2D((1, 2, 3))
  with pytest.raises(InvalidInputError, match=r"larger than the pads.*\(1, 2, 2, 3\)"):
    rewrite.SliceReflectionPadding2D(((2, 2), (1, 1)))(tf.zeros((1, 2, 2, 3)))


def test_bilinear_and_non_square_upsampling_are_kept():
  inp = keras.Input((8, 8, 3))
  x = keras.layers.UpSampling2D(2, interpolation="bilinear")(inp)
  x = keras.layers.UpSampling2D((1, 2), interpolation="nearest")(x)
  model = keras.Model(inp, {"depth": x})
  assert rewrite.count_rewritable(model) == 0
  assert rewrite.tflite_friendly(model) is model


# ---------------------------------------------------------------------- Monodepth2-R18 export
@pytest.fixture(scope="module")
def monodepth2():
  """Monodepth2-R18 at 64x64, its rewrite, Keras outputs and every TFLite format converted once."""
  model = monodepth2_depth_model(INPUT_SIZE)
  rep = tflite.RepresentativeDataset(_images(NUM_CALIBRATION, 1))
  flatbuffers = {fmt: tflite.convert_to_tflite(model, fmt)
                 for fmt in ("tflite_fp32", "tflite_fp16", "tflite_dynamic")}
  flatbuffers["tflite_int8"] = tflite.convert_to_tflite(model, "tflite_int8",
                                                        representative_dataset=rep)
  x = _images(2, 2)
  return model, x, model(x)["depth"].numpy(), flatbuffers


def test_rewrite_of_monodepth2_is_exact_and_shares_weights(monodepth2):
  model, x, expected, _ = monodepth2
  assert rewrite.count_rewritable(model) == NUM_PADS + NUM_UPSAMPLINGS
  friendly = rewrite.tflite_friendly(model)
  assert rewrite.count_rewritable(friendly) == 0
  np.testing.assert_array_equal(friendly(x)["depth"].numpy(), expected)
  conv = "monodepth2_depth_decoder_dispconv0_conv"
  assert friendly.get_layer(conv) is model.get_layer(conv)  # reused, not copied
  assert len(friendly.weights) == len(model.weights)
  # Nested in another functional model: replaced inside too.
  inp = keras.Input(INPUT_SIZE + (3,))
  outer = keras.Model(inp, model(inp))
  assert rewrite.count_rewritable(rewrite.tflite_friendly(outer)) == 0
  # The int8 conversion's split of the skip convolutions: same values up to float rounding.
  assert rewrite.count_split_concat_convs(friendly) == NUM_SKIPS
  split = rewrite.split_concat_convs(friendly)
  np.testing.assert_allclose(split(x)["depth"].numpy(), expected, rtol=1e-5)


def test_monodepth2_float_formats_match_keras(monodepth2):
  _, x, expected, fbs = monodepth2
  scale = np.abs(expected).max()
  for fmt, rtol in (("tflite_fp32", FP32_RTOL), ("tflite_fp16", FP16_RTOL),
                    ("tflite_dynamic", DYNAMIC_RTOL)):
    out = LiteRTRunner(fbs[fmt], num_threads=2).predict(x)
    assert out.shape == expected.shape
    assert np.abs(out - expected).max() <= rtol * scale, fmt


def test_monodepth2_int8_close_to_float(monodepth2):
  _, x, expected, fbs = monodepth2
  runner = LiteRTRunner(fbs["tflite_int8"])
  assert runner.output_details["dtype"] == np.float32
  step, _ = float_tail.tail_input_quantization(fbs["tflite_int8"])  # of the disparity logits
  assert step > 0
  rel = np.abs(runner.predict(x) / expected - 1.0)
  assert rel.mean() <= INT8_MEAN_STEPS * step
  assert rel.max() <= INT8_MAX_STEPS * step


def test_monodepth2_ops_run_in_xnnpack(monodepth2):
  _, _, _, fbs = monodepth2
  fp32 = op_summary(fbs["tflite_fp32"])
  # No MIRROR_PAD / TILE left: the whole float graph is one XNNPACK partition.
  assert "MIRROR_PAD" not in fp32["op_counts"] and "TILE" not in fp32["op_counts"]
  assert fp32["op_counts"]["DEPTH_TO_SPACE"] == NUM_UPSAMPLINGS
  assert fp32["num_delegate_partitions"] == 1
  int8 = op_summary(fbs["tflite_int8"])
  assert int8["op_counts"]["CONV_2D"] == fp32["op_counts"]["CONV_2D"]
  # What stays float in the int8 graph: the ELUs (no quantised ELU in the TF 2.21 converter),
  # each followed by the ADD of its shift (export.rewrite.shift_elu_outputs); one DEQUANTIZE
  # before each ELU and a QUANTIZE after its ADD, plus the float input's QUANTIZE; and the output
  # tail (sigmoid + disp_to_depth, one op each, export.float_tail) after a DEQUANTIZE of the
  # disparity logits. (Without the shift the reflection padding after each ELU stayed float too;
  # the fully quantised tail, float_tail=False, had no float tail ops and a DEQUANTIZE of the
  # int8 depth at the output instead.)
  assert int8["float_ops"]["ELU"] == NUM_ELUS
  tail = {op: 1 + NUM_ELUS * (op == "ADD") for op in TAIL_OPS}
  assert {op: int8["float_ops"].get(op) for op in TAIL_OPS} == tail
  assert set(int8["float_ops"]) == {"ELU"} | set(TAIL_OPS)
  assert int8["num_quantize"] == NUM_ELUS + 1 and int8["num_dequantize"] == NUM_ELUS + 1
  assert int8["num_delegate_partitions"] == 1  # XNNPACK runs the float tail as well
  no_rewrite = op_summary(tflite.convert_to_tflite(monodepth2[0], "tflite_fp32", rewrite=False))
  assert no_rewrite["op_counts"]["MIRROR_PAD"] == NUM_PADS
  assert no_rewrite["op_counts"]["TILE"] == 2 * NUM_UPSAMPLINGS  # rows, then columns
  assert no_rewrite["num_delegate_partitions"] > 1


def test_monodepth2_disparity_builder_is_refused_for_qat(monodepth2, tmp_path):
  # The bare depth net outputs Monodepth2's sigmoid disparity, not depth: QAT (which fine-tunes
  # the depth) refuses it before starting a worker and names the builder to use
  # (tests/test_export_qat_monodepth2.py runs that one).
  model = monodepth2[0]
  with pytest.raises(InvalidInputError,
                     match=r"outputs \['disp_0'\].*export\._testing:monodepth2_depth_model"):
    qat.quantization_aware_training(
        model, "tfdepth.models.monodepth2:build_monodepth2_depth_net",
        str(tmp_path / "q.tflite"), {"images": _images(2, 3)},
        builder_kwargs={"input_shape": [64, 64, 3], "scales": [0]})


def test_monodepth2_saved_model_reload(monodepth2, tmp_path):
  from export import saved_model as sm  # pylint: disable=g-import-not-at-top
  model, x, expected, _ = monodepth2
  sm.export_saved_model(model, str(tmp_path / "m"), {"experiment": "monodepth2_r18_test"})
  loaded = sm.load_saved_model(str(tmp_path / "m"))
  # Same float32 kernels as the eager model, run as a graph: a few ulps (as
  # tests/test_export_saved_model.py); the depth is inside the default clamp [0.1, 100] m.
  np.testing.assert_allclose(loaded.native(x)["depth"].numpy(), expected, rtol=SAVED_MODEL_RTOL)
  served = loaded.serve(np.full((1, 50, 90, 3), 128, np.uint8))["depth"].numpy()
  assert served.shape == (1, 50, 90, 1) and np.all(np.isfinite(served))
