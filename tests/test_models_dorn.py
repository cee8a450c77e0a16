"""Tests of tfdepth.models.dorn: DORN (Fu et al. 2018) and the DeepLab-v2 SID classifier."""

import os

import keras
import numpy as np
import pytest

from tfdepth.errors import InvalidInputError
from tfdepth.models import get_model
from tfdepth.models.dorn import build_dorn, build_sid_classifier
from tests._images import uniform_images

SHAPE = (64, 64, 3)
# Depth range 1..16 m with 4 SID bins has edges 1, 2, 4, 8, 16 (t_i = 1 * 16^(i/4)); the shift
# xi = 1 - alpha is 0 for alpha = 1. Bin centres 1.5, 3, 6, 12.
RANGE = dict(min_depth=1.0, max_depth=16.0)
CENTRES = np.array([1.5, 3.0, 6.0, 12.0], np.float32)
SMALL_DORN = dict(input_shape=SHAPE, num_layers=18, num_bins=4, width_multiplier=1 / 16, **RANGE)
SMALL_SID = dict(input_shape=SHAPE, num_layers=18, num_classes=4, **RANGE)
# float32 edges computed in float64 then rounded: centres exact to ~1 ulp.
RTOL = 1e-6


def _images(batch, shape=SHAPE, seed=0):
  return uniform_images(batch, shape, seed)


def _shapes(model):
  return {k: tuple(v.shape) for k, v in model.output.items()}


@pytest.fixture(scope="module")
def dorn():
  keras.utils.set_random_seed(0)
  return build_dorn(**SMALL_DORN, name="d")


@pytest.mark.parametrize("shape", [(64, 64, 3), (64, 128, 3)])
def test_dorn_shapes(shape):
  model = build_dorn(**{**SMALL_DORN, "input_shape": shape})
  h, w = shape[:2]
  assert _shapes(model) == {"ordinal_logits": (None, h, w, 4), "depth": (None, h, w, 1)}


def test_dorn_structure(dorn):
  rates = [tuple(dorn.get_layer(f"d_aspp{r}_a").dilation_rate) for r in (6, 12, 18)]
  assert rates == [(6, 6), (12, 12), (18, 18)]
  assert tuple(dorn.get_layer("d_global_copy").output.shape) == (None, 8, 8, 32)  # 512 / 16
  assert len(dorn.get_layer("d_concat").input) == 5  # global + 1x1 + three ASPP branches
  assert all(layer.name.startswith("d_") for layer in dorn.layers)


def test_dorn_forward_decodes_to_bin_centres(dorn):
  out = dorn(_images(2), training=False)
  depth = out["depth"].numpy()
  assert out["ordinal_logits"].shape == (2, 64, 64, 4) and depth.shape == (2, 64, 64, 1)
  assert np.all(np.isin(depth, CENTRES))


@pytest.mark.parametrize("count,expected", [(0, 1.5), (2, 6.0), (3, 12.0), (4, 12.0)])
def test_dorn_ordinal_decoding_closed_form(count, expected):
  """Zero kernel, bias +5 on the first `count` thresholds: l = count (clipped to K - 1)."""
  model = build_dorn(**SMALL_DORN, name="o")
  conv = model.get_layer("o_ordinal_conv")
  kernel, _ = conv.get_weights()
  bias = np.where(np.arange(4) < count, 5.0, -5.0).astype(np.float32)
  conv.set_weights([np.zeros_like(kernel), bias])
  np.testing.assert_allclose(model(_images(1), training=False)["depth"].numpy(), expected,
                             rtol=RTOL)


def test_sid_classifier_shapes_and_aspp_sum():
  model = build_sid_classifier(**SMALL_SID, name="s")
  assert _shapes(model) == {"logits": (None, 64, 64, 4), "depth": (None, 64, 64, 1)}
  assert [tuple(model.get_layer(f"s_aspp{r}").dilation_rate)
          for r in (6, 12, 18, 24)] == [(6, 6), (12, 12), (18, 18), (24, 24)]
  assert type(model.get_layer("s_aspp_sum")).__name__ == "Add"


@pytest.mark.parametrize("decoding,biases,expected", [
    ("argmax", [0, 0, 10, 0], 6.0),           # arg-max bin 2 -> centre 6
    ("argmax", [3, 0, 0, 0], 1.5),
    ("expectation", [0, 0, 0, 0], 5.625),     # uniform softmax: mean of 1.5, 3, 6, 12
    ("expectation", [0, 0, np.log(3.0), 0], 5.75),  # p = (1, 1, 3, 1)/6: (1.5+3+18+12)/6
])
def test_sid_classifier_decoding_closed_form(decoding, biases, expected):
  model = build_sid_classifier(**SMALL_SID, decoding=decoding, name="s")
  for i, rate in enumerate((6, 12, 18, 24)):
    conv = model.get_layer(f"s_aspp{rate}")
    kernel, _ = conv.get_weights()
    bias = np.array(biases, np.float32) if i == 0 else np.zeros(4, np.float32)
    conv.set_weights([np.zeros_like(kernel), bias])
  depth = model(_images(1), training=False)["depth"].numpy()
  np.testing.assert_allclose(depth, expected, rtol=RTOL)


def test_fit_and_save_load(dorn, tmp_path):
  model = keras.models.clone_model(dorn)
  model.compile(optimizer="sgd", run_eagerly=True,  # eager: tracing costs more than the step
                loss={"ordinal_logits": keras.losses.BinaryCrossentropy(from_logits=True)})
  x = _images(2)
  labels = np.zeros((2, 64, 64, 4), np.float32)
  labels[..., :2] = 1.0
  loss = model.fit(x, {"ordinal_logits": labels}, verbose=0).history["loss"][0]
  assert np.isfinite(loss) and loss > 0
  path = os.path.join(tmp_path, "dorn.keras")
  model.save(path)
  loaded = keras.saving.load_model(path, safe_mode=True)
  a, b = model(x, training=False), loaded(x, training=False)
  for key in ("ordinal_logits", "depth"):
    np.testing.assert_array_equal(a[key].numpy(), b[key].numpy())
  sid = build_sid_classifier(**SMALL_SID, decoding="expectation", name="t")
  path = os.path.join(tmp_path, "sid.keras")
  sid.save(path)
  loaded = keras.saving.load_model(path, safe_mode=True)
  np.testing.assert_array_equal(loaded(x)["depth"].numpy(), sid(x)["depth"].numpy())
  assert loaded.get_layer("t_depth").decoding == "expectation"


def test_registry():
  assert get_model("dorn", **SMALL_DORN, name="r").name == "r"
  assert get_model("sid_classifier", **SMALL_SID, name="q").name == "q"


@pytest.mark.parametrize("builder,kwargs,fragment", [
    (build_dorn, {"input_shape": (100, 64, 3)}, "H=100"),
    (build_dorn, {"num_bins": 1}, "num_bins"),
    (build_dorn, {"min_depth": 10.0, "max_depth": 5.0}, "min_depth"),
    (build_dorn, {"discretization": "log"}, "'log'"),
    (build_dorn, {"num_layers": 152}, "152"),
    (build_sid_classifier, {"decoding": "mode"}, "'mode'"),
    (build_sid_classifier, {"num_classes": 0}, "num_bins"),
])
def test_bad_input(builder, kwargs, fragment):
  with pytest.raises(InvalidInputError) as err:
    builder(**kwargs)
  assert fragment in str(err.value)
