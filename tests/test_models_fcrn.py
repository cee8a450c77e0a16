"""Tests of tfdepth.models.fcrn (Laina et al. 2016)."""

import os

import keras
import numpy as np
import pytest

from tfdepth.errors import InvalidInputError
from tfdepth.models import get_model
from tfdepth.models.fcrn import build_fcrn
from tests._images import uniform_images

# Laina et al. 2016, Table 1: "up-projection, ResNet-50: 63.6M" parameters.
PAPER_FCRN_PARAMS = 63.6e6
RESNET50_TRAINABLE = 23_508_032  # torchvision resnet50 25,557,032 - fc 2,049,000
SMALL = dict(input_shape=(64, 96, 3), num_layers=18, width_multiplier=1 / 16)


def _trainable(model):
  return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


def _images(batch, shape, seed=0):
  return uniform_images(batch, shape, seed)


@pytest.fixture(scope="module")
def small_model():
  keras.utils.set_random_seed(0)
  return build_fcrn(**SMALL, name="f")


def test_published_parameter_count():
  model = build_fcrn((224, 320, 3))
  bridge = 2048 * 1024 + 2 * 1024  # 1x1 conv (no bias) + BN gamma/beta
  up = 0
  for cin, cout in [(1024, 512), (512, 256), (256, 128), (128, 64)]:
    up += 2 * (25 * cin * cout + 2 * cout)  # two 5x5 up-convolutions + BN
    up += 9 * cout * cout + 2 * cout        # 3x3 conv + BN
  pred = 9 * 64 + 1
  expected = RESNET50_TRAINABLE + bridge + up + pred
  assert expected == 63_563_009
  assert _trainable(model) == expected
  # 0.06 % below the paper's 63.6M (rounded figure).
  assert abs(expected - PAPER_FCRN_PARAMS) / PAPER_FCRN_PARAMS < 0.002


@pytest.mark.parametrize("shape", [(64, 96, 3), (96, 64, 3)])
def test_output_shapes(shape):
  h, w = shape[:2]
  full = build_fcrn(shape, num_layers=18, width_multiplier=1 / 16)
  half = build_fcrn(shape, num_layers=18, width_multiplier=1 / 16, full_resolution=False)
  assert {k: tuple(v.shape) for k, v in full.output.items()} == {"depth": (None, h, w, 1)}
  assert tuple(half.output["depth"].shape) == (None, h // 2, w // 2, 1)


def test_forward_and_names(small_model):
  for batch in (1, 3):
    depth = small_model(_images(batch, (64, 96, 3)), training=False)["depth"].numpy()
    assert depth.shape == (batch, 64, 96, 1) and np.all(np.isfinite(depth))
  assert all(layer.name.startswith("f_") for layer in small_model.layers)
  kinds = [type(layer).__name__ for layer in small_model.layers]
  assert kinds.count("Conv2DTranspose") == 8  # 4 up-projections x 2 up-convolutions


def test_up_projection_doubles_resolution(small_model):
  sizes = [tuple(small_model.get_layer(f"f_up{i}_relu").output.shape[1:3]) for i in range(1, 5)]
  assert sizes == [(4, 6), (8, 12), (16, 24), (32, 48)]  # from the 2x3 stride-32 map


@pytest.mark.parametrize("activation,max_depth,bias,expected", [
    ("linear", None, -1.25, -1.25), ("relu", 2.0, 3.0, 2.0), ("sigmoid", 10.0, 0.0, 5.0)])
def test_constant_prediction_closed_form(activation, max_depth, bias, expected):
  """Zero prediction kernel: the map is the bias everywhere (bilinear x2 keeps constants)."""
  model = build_fcrn(**SMALL, depth_activation=activation, max_depth=max_depth, name="c")
  pred = model.get_layer("c_pred")
  kernel, _ = pred.get_weights()
  pred.set_weights([np.zeros_like(kernel), np.array([bias], np.float32)])
  depth = model(_images(2, (64, 96, 3)), training=False)["depth"].numpy()
  np.testing.assert_allclose(depth, expected, rtol=1e-6)  # float32 round-off of sigmoid x 10


def test_fit_and_save_load(small_model, tmp_path):
  model = keras.models.clone_model(small_model)
  model.compile(optimizer="sgd", loss={"depth": "mse"}, run_eagerly=True)  # eager: fast on CPU
  x = _images(2, (64, 96, 3))
  loss = model.fit(x, {"depth": np.full((2, 64, 96, 1), 2.0, "f")}, verbose=0).history["loss"]
  assert np.isfinite(loss[0]) and loss[0] > 0
  path = os.path.join(tmp_path, "fcrn.keras")
  model.save(path)
  loaded = keras.saving.load_model(path, safe_mode=True)
  np.testing.assert_array_equal(loaded(x, training=False)["depth"].numpy(),
                                model(x, training=False)["depth"].numpy())


def test_registry():
  assert get_model("fcrn", **SMALL, name="g").name == "g"


@pytest.mark.parametrize("kwargs,fragment", [
    ({"input_shape": (228, 304, 3)}, "H=228"),
    ({"num_layers": 152}, "152"),
    ({"depth_activation": "tanh"}, "'tanh'"),
    ({"depth_activation": "linear", "max_depth": 10.0}, "max_depth"),
    ({"dropout_rate": 1.0}, "dropout_rate"),
])
def test_bad_input(kwargs, fragment):
  with pytest.raises(InvalidInputError) as err:
    build_fcrn(**kwargs)
  assert fragment in str(err.value)
