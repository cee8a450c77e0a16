"""Tests of tfdepth.models.fcrn (Laina et al. 2016)."""

import os

import keras
import numpy as np
import pytest

from tfdepth.errors import InvalidInputError
from tfdepth.models import get_model
from tfdepth.models.fcrn import build_fcrn, up_convolution
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


# ------------------------------------------------ up-convolution (Laina et al. 2016, Fig. 2)
# Each output sums at most 3·3·2 = 18 products (stride 2: <= 3x3 kernel taps per output, 2 input
# channels) in float32: |error| <= 18·2^-24·sum|products| (standard summation bound), per element.
UPCONV_TERMS = 18
FLOAT32_UNIT_ROUNDOFF = 2.0 ** -24


def _top_left_unpool(x):
  """(B, H, W, C) -> (B, 2H, 2W, C): each value at the top-left of its 2x2 block, zeros elsewhere."""
  b, h, w, c = x.shape
  u = np.zeros((b, 2 * h, 2 * w, c), x.dtype)
  u[:, ::2, ::2] = x
  return u


def _conv5x5_same(u, weights):
  """Cross-correlation with zero 'same' padding (PyTorch Conv2d(k=5, padding=2)), float64."""
  p = np.pad(u.astype(np.float64), ((0, 0), (2, 2), (2, 2), (0, 0)))
  h, w = u.shape[1:3]
  out = np.zeros(u.shape[:3] + (weights.shape[-1],))
  for a in range(5):
    for b in range(5):
      out += np.einsum("nhwc,co->nhwo", p[:, a:a + h, b:b + w], weights[a, b])
  return out


def test_up_convolution_is_top_left_unpooling_then_5x5_conv():
  """Output (i, j) of the cropped valid transposed conv is sum_pq x[p, q]·K[i+2-2p, j+2-2q]:
  the 'same' 5x5 cross-correlation of the top-left unpooled map with the flipped kernel
  W[a, b] = K[4-a, 4-b] (Keras' Conv2DTranspose kernel is (k, k, out, in))."""
  inp = keras.Input((3, 4, 2))
  model = keras.Model(inp, up_convolution(inp, keras.layers, 3, "uc"))
  assert [type(l).__name__ for l in model.layers[1:]] == ["Conv2DTranspose", "Cropping2D"]
  rng = np.random.default_rng(0)
  kernel = rng.normal(size=(5, 5, 3, 2)).astype(np.float32)
  model.get_layer("uc").set_weights([kernel])
  x = rng.normal(size=(2, 3, 4, 2)).astype(np.float32)
  y = model(x).numpy()
  assert y.shape == (2, 6, 8, 3)
  weights = kernel[::-1, ::-1].transpose(0, 1, 3, 2).astype(np.float64)  # (5, 5, in, out)
  expected = _conv5x5_same(_top_left_unpool(x), weights)
  bound = UPCONV_TERMS * FLOAT32_UNIT_ROUNDOFF * _conv5x5_same(
      np.abs(_top_left_unpool(x)), np.abs(weights))
  assert np.all(np.abs(y - expected) <= bound), np.max(np.abs(y - expected) / bound)
  # The old padding="same" up-conv (bottom-right unpooling) is not this function.
  same = keras.layers.Conv2DTranspose(3, 5, strides=2, padding="same", use_bias=False)
  same.build((None, 3, 4, 2))
  same.set_weights([kernel])
  assert np.max(np.abs(same(x).numpy() - expected)) > 1.0
  # Hand case: one input value 1 at (0, 0), a kernel that is 1 at K[2, 2] only (the centre tap)
  # -> output 1 at (0, 0) only; K[4, 4] (weight W[0, 0], reads up-left) -> output at (2, 2).
  one = np.zeros((1, 3, 4, 2), np.float32)
  one[0, 0, 0, 0] = 1.0
  for tap, where in (((2, 2), (0, 0)), ((4, 4), (2, 2)), ((0, 0), None)):
    k = np.zeros((5, 5, 3, 2), np.float32)
    k[tap + (0, 0)] = 1.0
    model.get_layer("uc").set_weights([k])
    out = model(one).numpy()[0, :, :, 0]
    expected = np.zeros((6, 8), np.float32)
    if where is not None:   # K[0, 0] would write to (-2, -2): cropped away
      expected[where] = 1.0
    np.testing.assert_array_equal(out, expected)


def test_tf_keras_twin_same_weights_same_outputs(small_model):
  import tf_keras  # pylint: disable=g-import-not-at-top
  twin = build_fcrn(**SMALL, name="f", layers=tf_keras.layers)
  assert ([tuple(w.shape) for w in twin.get_weights()]
          == [tuple(w.shape) for w in small_model.get_weights()])
  twin.set_weights(small_model.get_weights())
  x = _images(1, (64, 96, 3), seed=2)
  # Same float32 kernels on the same values; 1e-5 relative absorbs a different op fusion.
  np.testing.assert_allclose(twin(x, training=False)["depth"].numpy(),
                             small_model(x, training=False)["depth"].numpy(), rtol=1e-5,
                             atol=1e-6)
