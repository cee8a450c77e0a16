"""Tests of tfdepth.models.eigen (Eigen, Puhrsch, Fergus 2014 coarse + fine network)."""

import os

import keras
import numpy as np
import pytest

from tfdepth.errors import InvalidInputError
from tfdepth.models import get_model
from tfdepth.models.eigen import build_eigen2014
from tests._images import uniform_images

SMALL = dict(input_shape=(64, 96, 3), fc_units=32)


def _images(batch, shape=(64, 96, 3), seed=0):
  return uniform_images(batch, shape, seed)


@pytest.fixture(scope="module")
def small_model():
  keras.utils.set_random_seed(0)
  return build_eigen2014(**SMALL, name="e")


def _conv(k, cin, cout):
  return k * k * cin * cout + cout


def test_parameter_count_hand_computed():
  """No count is published; this checks the architecture of Fig. 1 (paper widths) at 64x96."""
  model = build_eigen2014((64, 96, 3))
  coarse = (_conv(11, 3, 96) + _conv(5, 96, 256) + _conv(3, 256, 384) + _conv(3, 384, 384)
            + _conv(3, 384, 256))
  fc = (2 * 3 * 256) * 4096 + 4096 + 4096 * (16 * 24) + 16 * 24  # s32 map -> 4096 -> H/4 x W/4
  fine = _conv(9, 3, 63) + _conv(5, 64, 64) + _conv(5, 64, 1)
  assert model.count_params() == coarse + fc + fine + 6  # + frozen normalisation


@pytest.mark.parametrize("shape", [(64, 96, 3), (96, 64, 3)])
def test_output_shapes(shape):
  model = build_eigen2014(shape, fc_units=32)
  h, w = shape[:2]
  assert {k: tuple(v.shape) for k, v in model.output.items()} == {
      "coarse_log_depth": (None, h // 4, w // 4, 1), "log_depth": (None, h // 4, w // 4, 1),
      "depth": (None, h, w, 1)}


def test_forward(small_model):
  for batch in (1, 2):
    out = small_model(_images(batch), training=False)
    assert out["depth"].shape == (batch, 64, 96, 1)
    assert np.all(out["depth"].numpy() > 0.0)  # exp of the log depth
  assert all(layer.name.startswith("e_") for layer in small_model.layers)


def test_closed_form_outputs():
  """Zero kernels: coarse map = reshaped coarse7 bias (row-major), fine log depth = bias,
  depth = exp(bias) everywhere (bilinear x4 keeps constants)."""
  model = build_eigen2014(**SMALL, name="c")
  fc7 = model.get_layer("c_coarse7")
  kernel, bias = fc7.get_weights()
  ramp = np.arange(bias.size, dtype=np.float32) / 100.0
  fc7.set_weights([np.zeros_like(kernel), ramp])
  last = model.get_layer("c_log_depth")
  kernel, _ = last.get_weights()
  last.set_weights([np.zeros_like(kernel), np.array([np.log(7.5)], np.float32)])
  out = model(_images(2), training=False)
  np.testing.assert_array_equal(out["coarse_log_depth"].numpy()[1, :, :, 0],
                                ramp.reshape(16, 24))
  np.testing.assert_allclose(out["depth"].numpy(), 7.5, rtol=1e-6)  # float32 exp(log) round-off


def test_fit_and_save_load(small_model, tmp_path):
  model = keras.models.clone_model(small_model)
  model.compile(optimizer="sgd", run_eagerly=True,
                loss={"coarse_log_depth": "mse", "log_depth": "mse"})
  x = _images(2)
  target = np.full((2, 16, 24, 1), np.log(3.0), np.float32)
  loss = model.fit(x, {"coarse_log_depth": target, "log_depth": target},
                   verbose=0).history["loss"][0]
  assert np.isfinite(loss) and loss > 0
  path = os.path.join(tmp_path, "eigen.keras")
  model.save(path)
  loaded = keras.saving.load_model(path, safe_mode=True)
  a, b = model(x, training=False), loaded(x, training=False)
  for key in a:
    np.testing.assert_array_equal(a[key].numpy(), b[key].numpy())


def test_registry():
  assert get_model("eigen2014", **SMALL, name="r").name == "r"


@pytest.mark.parametrize("kwargs,fragment", [
    ({"input_shape": (228, 304, 3)}, "H=228"),
    ({"fc_units": 0}, "fc_units"),
    ({"dropout_rate": -0.1}, "dropout_rate"),
])
def test_bad_input(kwargs, fragment):
  with pytest.raises(InvalidInputError) as err:
    build_eigen2014(**kwargs)
  assert fragment in str(err.value)


# --- Eigen & Fergus 2015 ----------------------------------------------------------------------
from tfdepth.models.eigen import build_eigen2015  # noqa: E402

# keras.applications.VGG16(include_top=False) has 14,714,688 parameters (13 convs with bias).
VGG16_CONV_PARAMS = 14_714_688
SMALL_2015 = dict(input_shape=(64, 96, 3), fc_units=16, num_classes=5)


def test_eigen2015_parameter_count_hand_computed():
  model = build_eigen2015(**SMALL_2015)
  fc = (2 * 3 * 512) * 16 + 16 + 16 * (4 * 6 * 64) + 4 * 6 * 64  # s32 map -> 16 -> 64 @ 1/16
  per_task = 0
  for ch in (1, 3, 5):  # depth, normals, labels
    per_task += _conv(9, 3, 96) + _conv(5, 96 + 64, 64) + 2 * _conv(5, 64, 64) + _conv(5, 64, ch)
    per_task += _conv(9, 3, 64) + _conv(5, 64 + ch, 64) + _conv(5, 64, 64) + _conv(5, 64, ch)
  assert model.count_params() == VGG16_CONV_PARAMS + fc + per_task + 6


def test_eigen2015_outputs_and_invariants(tmp_path):
  keras.utils.set_random_seed(1)
  model = build_eigen2015(**SMALL_2015, name="m")
  assert {k: tuple(v.shape) for k, v in model.output.items()} == {
      "log_depth": (None, 64, 96, 1), "depth": (None, 64, 96, 1),
      "normals": (None, 64, 96, 3), "label_logits": (None, 64, 96, 5)}
  x = _images(2)
  out = model(x, training=False)
  # Unit normals: float32 normalisation, 1e-5.
  np.testing.assert_allclose(np.linalg.norm(out["normals"].numpy(), axis=-1), 1.0, atol=1e-5)
  np.testing.assert_allclose(out["depth"].numpy(), np.exp(out["log_depth"].numpy()), rtol=1e-6)
  assert all(layer.name.startswith("m_") for layer in model.layers)
  model.compile(optimizer="sgd", run_eagerly=True,
                loss={"log_depth": "mse", "normals": "mse",
                      "label_logits": keras.losses.SparseCategoricalCrossentropy(from_logits=True)})
  y = {"log_depth": np.zeros((2, 64, 96, 1), "f"),
       "normals": np.tile(np.array([0, 0, -1], "f"), (2, 64, 96, 1)),
       "label_logits": np.ones((2, 64, 96, 1), "f")}
  loss = model.fit(x, y, verbose=0).history["loss"][0]
  assert np.isfinite(loss) and loss > 0
  path = os.path.join(tmp_path, "eigen2015.keras")
  model.save(path)
  loaded = keras.saving.load_model(path, safe_mode=True)
  a, b = model(x, training=False), loaded(x, training=False)
  for key in a:
    np.testing.assert_array_equal(a[key].numpy(), b[key].numpy())


def test_eigen2015_single_task_and_registry():
  model = get_model("eigen2015", input_shape=(64, 64, 3), tasks=("normals",), fc_units=8,
                    name="n")
  assert list(model.output) == ["normals"]


@pytest.mark.parametrize("kwargs,fragment", [
    ({"tasks": ("depth", "flow")}, "'flow'"),
    ({"tasks": "depth"}, "'depth'"),
    ({"tasks": ()}, "tasks"),
    ({"num_classes": 0}, "num_classes"),
    ({"input_shape": (64, 80, 3)}, "W=80"),
])
def test_eigen2015_bad_input(kwargs, fragment):
  with pytest.raises(InvalidInputError) as err:
    build_eigen2015(**kwargs)
  assert fragment in str(err.value)
