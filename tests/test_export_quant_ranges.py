"""Tests of the int8 range fixes (issue 7): `export.rewrite.split_concat_convs` (one int8 scale per
input of a convolution over a concatenation) and `export.float_tail.tighten_saturating_inputs`
(ELU / sigmoid / tanh input ranges clipped where the activation saturates).

Hand-made 16x16 models whose int8 errors follow from their quantisation steps; few small
conversions (a few seconds each on one core), as tests/test_export_float_tail.py.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from export import float_tail
from export import rewrite
from export import tflite
from export.litert_runner import LiteRTRunner, interpreter_for, op_summary
from tfdepth.layers import ReflectionPadding2D

SIZE = (16, 16)
# Concatenation model: a wide branch (3 channels x 1000 / 3 = [0, 1000]) and a narrow one (the
# image itself through an identity 1x1 conv, [0, 1]), concatenated, reflection-padded, 3x3 conv
# reading the wide channel x WIDE_WEIGHT and the narrow ones x 1 at the centre tap: output
# w / 1000 + r + g + b in [0, 4].
WIDE_RANGE = 1000.0
WIDE_WEIGHT = 1.0 / WIDE_RANGE
# Split: error <= half the wide input's step x WIDE_WEIGHT (0.5 * 1000/255 * 1e-3 = 2.0e-3)
# + 3 narrow channels x half their step (3 * 0.5/255 = 5.9e-3) + half the output step (4/255 / 2
# = 7.8e-3) + int8 weight / int32 bias rounding (< 1e-3): 0.017. Unsplit, the narrow channels
# share the wide step 3.9 and are lost (r + g + b, up to 3, rounds to 0 or 3.9): error > 0.5.
SPLIT_MAX_ERROR = 0.017
UNSPLIT_MIN_ERROR = 0.5
# ELU model: z = (-1000 g + 30, 0) -> ELU -> 1x1 conv taking the first channel -> output (the
# ELU's output is quantised, range [-1, 30]; the conv keeps the ELU out of the output tail).
ELU_BIAS = 30.0
ELU_WEIGHT = -1000.0
# Tightened: z's range [-8, 30] (step 38/255 = 0.149), error <= 0.149/2 + half the ELU output's
# and the output's steps (31/255 / 2 = 0.061 each) + e^-8 (clipping) + the bias rounding
# (1000/127/255/2 = 0.015): 0.212. Calibrated range [-970, 30]: z's step 3.92, errors up to ~2
# on the ELU's linear part.
ELU_MAX_ERROR = 0.212
ELU_UNTIGHTENED_MIN_ERROR = 1.0


def _grid_images(n, seed):
  """Images on the uint8 grid k / 255 (exact uint8 input), the first two black and white."""
  rng = np.random.default_rng(seed)
  images = rng.integers(0, 256, size=(n,) + SIZE + (3,)) / 255.0
  images[0], images[1] = 0.0, 1.0
  return images.astype(np.float32)


def _concat_model():
  inp = keras.Input(SIZE + (3,), name="image")
  wide = keras.layers.Conv2D(1, 1, name="wide")
  narrow = keras.layers.Conv2D(3, 1, name="narrow")
  x = keras.layers.Concatenate(name="skip")([wide(inp), narrow(inp)])
  x = ReflectionPadding2D(1, name="pad")(x)
  head = keras.layers.Conv2D(1, 3, name="head")
  out = head(x)
  model = keras.Model(inp, {"depth": out})
  wide.set_weights([np.full((1, 1, 3, 1), WIDE_RANGE / 3.0, np.float32), np.zeros(1, np.float32)])
  narrow.set_weights([np.eye(3, dtype=np.float32)[None, None], np.zeros(3, np.float32)])
  kernel = np.zeros((3, 3, 4, 1), np.float32)
  kernel[1, 1, :, 0] = [WIDE_WEIGHT, 1.0, 1.0, 1.0]
  head.set_weights([kernel, np.zeros(1, np.float32)])
  return model


def test_split_concat_convs_same_values_and_layers():
  model = _concat_model()
  friendly = rewrite.tflite_friendly(model)
  assert rewrite.count_split_concat_convs(friendly) == 1
  split = rewrite.split_concat_convs(friendly)
  assert rewrite.count_split_concat_convs(split) == 0
  assert rewrite.split_concat_convs(split) is split  # nothing left to split
  names = [layer.name for layer in split.layers]
  assert "skip" not in names and {"head_split0", "head_split1", "head_split_sum"} <= set(names)
  assert split.get_layer("wide") is model.get_layer("wide")  # other layers reused
  x = _grid_images(3, 1)
  # Same sums in another order: float32 rounding only.
  np.testing.assert_allclose(split(x)["depth"].numpy(), model(x)["depth"].numpy(), rtol=1e-5,
                             atol=1e-5)
  # A model without a convolution over a concatenation is returned as it is.
  inp = keras.Input(SIZE + (3,))
  plain = keras.Model(inp, {"depth": keras.layers.Conv2D(1, 3)(inp)})
  assert rewrite.split_concat_convs(plain) is plain


def test_int8_concat_split_keeps_narrow_input():
  model = _concat_model()
  rep = tflite.RepresentativeDataset(_grid_images(8, 0))
  x = _grid_images(4, 2)
  expected = model(x)["depth"].numpy()
  split = tflite.convert_to_tflite(model, "tflite_int8", rep, io_dtype=tf.uint8,
                                   split_concat_convs=True)
  ops = op_summary(split)
  assert ops["op_counts"]["CONV_2D"] == 4 and "CONV_2D" not in ops["float_ops"]
  assert ops["op_counts"]["ADD"] == 1
  err = np.abs(LiteRTRunner(split).predict(x) - expected)
  assert err.max() <= SPLIT_MAX_ERROR, err.max()
  # The default conversion (no split): one scale for the concatenation.
  unsplit = tflite.convert_to_tflite(model, "tflite_int8", rep, io_dtype=tf.uint8)
  err = np.abs(LiteRTRunner(unsplit).predict(x) - expected)
  assert err.max() > UNSPLIT_MIN_ERROR, err.max()


def _elu_model():
  inp = keras.Input(SIZE + (3,), name="image")
  conv = keras.layers.Conv2D(2, 1, name="pre_elu")
  x = keras.layers.Activation("elu", name="elu")(conv(inp))
  head = keras.layers.Conv2D(1, 1, name="head")
  model = keras.Model(inp, {"depth": head(x)})
  kernel = np.zeros((1, 1, 3, 2), np.float32)
  kernel[0, 0, 1, 0] = ELU_WEIGHT
  conv.set_weights([kernel, np.array([ELU_BIAS, 0.0], np.float32)])
  head.set_weights([np.array([1.0, 0.0], np.float32).reshape(1, 1, 2, 1),
                    np.zeros(1, np.float32)])
  return model


@pytest.fixture(scope="module")
def elu():
  model = _elu_model()
  rep = tflite.RepresentativeDataset(_grid_images(8, 0))
  # Test images: green k / 255, k = 0..255 over the pixels: z = 30 - 3.92 k covers the ELU's
  # linear part (k <= 7), its bend and its saturation.
  x = np.zeros((1,) + SIZE + (3,), np.float32)
  x[0, ..., 1] = np.arange(SIZE[0] * SIZE[1]).reshape(SIZE) % 256 / 255.0
  converter = tflite.converter_from_model(model)
  tflite.configure_converter(converter, "tflite_int8", rep, tf.uint8)
  converter._experimental_calibrate_only = True  # pylint: disable=protected-access
  calibrated = converter.convert()
  return model, x, calibrated, tflite.convert_to_tflite(model, "tflite_int8", rep, tf.uint8)


def test_tighten_saturating_inputs_clips_elu_input(elu):
  _, _, calibrated, _ = elu
  tightened, changes = float_tail.tighten_saturating_inputs(calibrated)
  assert len(changes) == 1 and changes[0]["op"] == "ELU"
  change = changes[0]
  assert change["calibrated_min"] == pytest.approx(ELU_WEIGHT + ELU_BIAS, abs=1e-3)
  assert change["min"] == float_tail.SATURATION_INPUT_RANGE["ELU"][0]
  assert change["max"] == change["calibrated_max"] == pytest.approx(ELU_BIAS, abs=1e-3)
  assert float_tail.tighten_saturating_inputs(tightened)[1] == []  # idempotent
  # The ELU is not part of an output tail (the head conv follows it); an op kept float (listed
  # by its output tensor, as the tail's ops are) keeps its input range.
  assert float_tail.output_tail(calibrated) == []
  names = [t["name"] for t in
           interpreter_for(calibrated).get_tensor_details()]
  elu_name = next(n for n in names if n.endswith("Elu"))
  assert float_tail.tighten_saturating_inputs(calibrated, [elu_name])[1] == []


def test_int8_elu_with_tightened_input(elu):
  model, x, calibrated, int8 = elu
  expected = model(x)["depth"].numpy()
  assert expected.max() == pytest.approx(ELU_BIAS) and expected.min() < -0.99
  err = np.abs(LiteRTRunner(int8).predict(x) - expected)
  assert err.max() <= ELU_MAX_ERROR, err.max()
  # Quantised with the calibrated range (no tightening): z's step is 3.92.
  from tensorflow.lite.python import convert as convert_lib  # pylint: disable=g-import-not-at-top
  plain = bytes(convert_lib.mlir_quantize(calibrated, input_data_type=tf.uint8,
                                          output_data_type=tf.float32))
  err = np.abs(LiteRTRunner(plain).predict(x) - expected)
  assert err.max() > ELU_UNTIGHTENED_MIN_ERROR, err.max()
