"""`export.rewrite.shift_elu_outputs` / `ShiftedELU` and the int8 conversion that uses them.

The int8 checks use a two-layer model built so that the effect is large and exact: channel 0 of
an ELU is saturated (-1) on the left half of every image while channel 1 ranges up to ~600, so
the ELU output's one int8 scale has a step > 2, where -1 is not representable and rounds to 0.
"""

import keras
import numpy as np
import pytest

from export import float_tail
from export import rewrite
from export import tflite
from export.litert_runner import LiteRTRunner, op_summary
from tfdepth.errors import InvalidInputError
from tfdepth.layers import ReflectionPadding2D
from tests._images import uniform_images

SIZE = 16
NUM_CALIBRATION = 8


def _conv(x, filters, kernel, bias, name, padding="valid"):
  layer = keras.layers.Conv2D(filters, kernel.shape[0], padding=padding, name=name)
  y = layer(x)
  layer.set_weights([kernel.astype(np.float32), np.asarray(bias, np.float32)])
  return y


def _concat_model(padding="valid", elu_to_output=False):
  """image -> [relu 1x1 (3 ch), 3x3 conv + ELU (4 ch)] -> nearest x2 each -> concat (ELU second:
  channels 3..6) -> reflection pad + valid 3x3 conv (``padding="valid"``) or a zero-padded
  "same" 3x3 conv -> {"depth"} (2 channels); random weights, seed 0."""
  keras.utils.set_random_seed(0)
  rng = np.random.default_rng(0)
  inp = keras.Input((SIZE, SIZE, 3), name="image")
  other = keras.layers.Conv2D(3, 1, activation="relu", name="other")(inp)
  other = keras.layers.UpSampling2D(2, name="other_up")(other)
  x = _conv(inp, 4, rng.normal(size=(3, 3, 3, 4)), rng.normal(size=4), "pre", padding="same")
  elu = keras.layers.Activation("elu", name="elu")(x)
  x = keras.layers.UpSampling2D(2, interpolation="nearest", name="elu_up")(elu)
  x = keras.layers.Concatenate(name="skip")([other, x])
  if padding == "valid":
    x = ReflectionPadding2D(((1, 1), (1, 1)), name="pad")(x)
  out = _conv(x, 2, rng.normal(size=(3, 3, 7, 2)), rng.normal(size=2), "out", padding=padding)
  outputs = {"depth": out, "elu": elu} if elu_to_output else {"depth": out}
  return keras.Model(inp, outputs)


def test_shifted_elu_values_and_config():
  layer = rewrite.ShiftedELU(alpha=0.5, name="s")
  x = np.array([[-30.0, -1.0, 0.0, 2.0]], np.float32)
  expected = np.array([[0.0, 0.5 * np.exp(-1.0), 0.5, 2.5]], np.float32)
  np.testing.assert_allclose(layer(x).numpy(), expected, rtol=1e-6, atol=1e-7)
  clone = rewrite.ShiftedELU.from_config(layer.get_config())
  assert clone.alpha == 0.5 and clone.name == "s"
  np.testing.assert_array_equal(clone(x).numpy(), layer(x).numpy())
  for bad in (0.0, -1.0, True, "1"):
    with pytest.raises(InvalidInputError, match="alpha"):
      rewrite.ShiftedELU(alpha=bad)


def test_shift_folds_into_the_concat_channels_of_the_next_conv():
  model = _concat_model()
  elus, folds = rewrite.shiftable_elus(model)
  assert {layer.name: a for layer, a in elus.items()} == {"elu": 1.0}
  # The ELU is the second input of the concatenation: channels 3..6 of "out".
  assert {layer.name: f for layer, f in folds.items()} == {"out": [(3, 7, 1.0)]}
  shifted = rewrite.shift_elu_outputs(model)
  kernel, bias = (w.numpy() for w in model.get_layer("out").weights)
  new_kernel, new_bias = (w.numpy() for w in shifted.get_layer("out_unshift").weights)
  np.testing.assert_array_equal(new_kernel, kernel)
  np.testing.assert_allclose(new_bias, bias - kernel[:, :, 3:7, :].sum(axis=(0, 1, 2)),
                             rtol=1e-6)
  assert isinstance(shifted.get_layer("elu_shifted"), rewrite.ShiftedELU)
  assert shifted.get_layer("other") is model.get_layer("other")  # other layers are shared
  x = uniform_images(2, (SIZE, SIZE, 3), seed=1)
  expected, got = model(x)["depth"].numpy(), shifted(x)["depth"].numpy()
  # float32: |out| ~ 10, a few ulps of the ~40-term sums.
  np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4 * np.abs(expected).max())
  assert not np.allclose(got, expected, rtol=0, atol=1e-9)  # the graph did change


@pytest.mark.parametrize("variant", ["same", "elu_to_output"])
def test_no_shift_where_it_would_not_be_exact(variant):
  # "same": the last conv zero-pads (a shifted border would differ); "elu_to_output": the ELU
  # is also a model output (its values would change).
  model = (_concat_model(padding="same") if variant == "same"
           else _concat_model(elu_to_output=True))
  assert rewrite.shiftable_elus(model) == ({}, {})
  assert rewrite.shift_elu_outputs(model) is model


def _saturated_model():
  """image (16x16x3) -> 1x1 conv -> ELU -> reflection pad -> 3x3 conv (mean of ELU channel 0)."""
  inp = keras.Input((SIZE, SIZE, 3), name="image")
  # Channel 0: 30 x - 20 (saturated where the image is 0), channel 1: 600 x - 1 (range ~600).
  x = _conv(inp, 2, np.array([[[[30.0, 600.0], [0, 0], [0, 0]]]]), [-20.0, -1.0], "pre")
  x = keras.layers.Activation("elu", name="elu")(x)
  x = ReflectionPadding2D(((1, 1), (1, 1)), name="pad")(x)
  kernel = np.zeros((3, 3, 2, 1))
  kernel[:, :, 0, 0] = 1.0 / 9.0
  return keras.Model(inp, {"depth": _conv(x, 1, kernel, [0.0], "mean")})


def _half_dark_images(n, seed):
  images = uniform_images(n, (SIZE, SIZE, 3), seed)
  images[:, :, : SIZE // 2] = 0.0
  return images


def test_int8_shift_removes_the_saturated_elu_rounding():
  model = _saturated_model()
  rep = tflite.RepresentativeDataset(_half_dark_images(NUM_CALIBRATION, 0))
  shifted = tflite.convert_to_tflite(model, "tflite_int8", rep)
  plain = tflite.convert_to_tflite(model, "tflite_int8", rep, shift_elu=False)
  summary = op_summary(shifted)
  assert summary["float_ops"] == {"ELU": 1, "ADD": 1}  # the shift stays float with the ELU
  assert "ADD" not in op_summary(plain)["op_counts"]
  x = _half_dark_images(2, 1)
  expected = model(x)["depth"].numpy()
  dark = np.zeros(expected.shape, bool)
  dark[:, :, : SIZE // 2 - 1] = True  # every tap of the 3x3 window on a dark (0) pixel
  np.testing.assert_allclose(expected[dark], -1.0, atol=1e-6)
  # Without the shift the saturated -1 rounds to 0 (ELU output step 601 / 255 > 2): the
  # window's mean comes out as 0 instead of -1; shifted, the floor 0 is exact and only the
  # output's own rounding is left (its step over the calibrated -1..~6 range is ~0.027).
  np.testing.assert_allclose(LiteRTRunner(plain).predict(x)[dark], 0.0, atol=0.05)
  np.testing.assert_allclose(LiteRTRunner(shifted).predict(x)[dark], -1.0, atol=0.05)


def test_elu_shift_adds_finds_only_the_shift():
  model = _saturated_model()
  fp32 = tflite.convert_to_tflite(rewrite.shift_elu_outputs(model), "tflite_fp32")
  names = float_tail.elu_shift_adds(fp32)
  assert len(names) == 1 and "elu_shifted" in names[0]
  assert float_tail.elu_shift_adds(tflite.convert_to_tflite(model, "tflite_fp32")) == []
