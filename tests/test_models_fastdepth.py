"""Tests of tfdepth.models.fastdepth (FastDepth, Wofk et al. 2019) and the MobileNet v1 encoder."""

import math
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from tfdepth.errors import ConfigError, InvalidInputError
from tfdepth.models import MODEL_BUILDERS, build_fastdepth, build_mobilenet_v1_encoder, get_model
from tfdepth.models import encoders
from tests._images import uniform_images

# Small configuration used for everything that runs a forward pass (CPU budget).
SMALL_ALPHA = 0.25
SMALL_SHAPE = (64, 96, 3)
# float32 forward passes of identical weights through identical graphs agree to rounding; 1e-5
# relative is what the brief asks and far above float32 round-off of this shallow-width net.
TWIN_ATOL = 1e-5
# FastDepth paper, Wofk et al. 2019 (Table: MobileNet-NNConv5 with additive skips): 3.93M weights.
PAPER_FASTDEPTH_PARAMS = 3.93e6


def _out_shapes(model):
  """Symbolic output shapes by key (Keras 3 flattens ``output_shape`` of dict outputs)."""
  return {k: tuple(v.shape) for k, v in model.output.items()}


def _images(batch, shape=SMALL_SHAPE, seed=0):
  return uniform_images(batch, shape, seed)


@pytest.fixture(scope="module")
def small_model():
  keras.utils.set_random_seed(1)
  return build_fastdepth(SMALL_SHAPE, width_multiplier=SMALL_ALPHA, name="fd")


def _expected_param_count():
  """Hand count of the published configuration (alpha 1, 224x224). BN = 4 params/channel."""
  bn = lambda c: 4 * c  # gamma, beta, moving mean, moving variance
  total = 3 + 3  # frozen input normalisation: 1x1 depthwise kernel + bias over 3 channels
  total += 3 * 3 * 3 * 32 + bn(32)  # stem 3x3 conv, no bias
  blocks = [(32, 64), (64, 128), (128, 128), (128, 256), (256, 256), (256, 512)] + \
      [(512, 512)] * 5 + [(512, 1024), (1024, 1024)]
  for cin, cout in blocks:  # depthwise 3x3 + BN, pointwise 1x1 + BN
    total += 9 * cin + bn(cin) + cin * cout + bn(cout)
  for cin, cout in [(1024, 512), (512, 256), (256, 128), (128, 64), (64, 32)]:
    total += 25 * cin + bn(cin) + cin * cout + bn(cout)  # NNConv5: 5x5 depthwise + pointwise
  return total + 32 + 1  # 1x1 head with bias


def test_published_parameter_count():
  model = build_fastdepth()
  expected = _expected_param_count()
  assert expected == 3_988_775  # sum written out above
  assert model.count_params() == expected
  # Within 2 % of the paper's 3.93M (our head has a bias instead of a BN; the paper may not count
  # BN moving statistics).
  assert abs(model.count_params() - PAPER_FASTDEPTH_PARAMS) / PAPER_FASTDEPTH_PARAMS < 0.02


@pytest.mark.parametrize("shape", [(32, 64, 3), (96, 64, 3)])
def test_builds_at_two_sizes_with_unknown_batch(shape):
  model = build_fastdepth(shape, width_multiplier=SMALL_ALPHA)
  assert model.input_shape == (None,) + shape
  assert _out_shapes(model) == {"depth": (None, shape[0], shape[1], 1)}


def test_forward_pass_shapes_and_range(small_model):
  for batch in (1, 3):  # unknown batch size: two different ones through the same model
    out = small_model(_images(batch), training=False)
    assert set(out) == {"depth"}
    depth = out["depth"].numpy()
    assert depth.shape == (batch, 64, 96, 1) and depth.dtype == np.float32
    assert np.all(np.isfinite(depth)) and depth.min() >= 0.0  # ReLU head


def test_layer_names_are_prefixed(small_model):
  assert all(layer.name.startswith("fd_") for layer in small_model.layers)
  names = [layer.name for layer in small_model.layers]
  assert len(names) == len(set(names))


def test_decoder_structure(small_model):
  """5 nearest x2 upsamplings, 3 additive skips, no concatenation, no Lambda (paper Fig. 2)."""
  kinds = [type(layer).__name__ for layer in small_model.layers]
  assert kinds.count("UpSampling2D") == 5
  assert kinds.count("Add") == 3
  assert "Concatenate" not in kinds and "Lambda" not in kinds
  ups = [l for l in small_model.layers if isinstance(l, keras.layers.UpSampling2D)]
  assert all(l.interpolation == "nearest" for l in ups)
  dw5 = [l for l in small_model.layers
         if isinstance(l, keras.layers.DepthwiseConv2D) and "decoder" in l.name]
  assert len(dw5) == 5 and all(tuple(l.kernel_size) == (5, 5) for l in dw5)


def _set_head(model, name, bias):
  head = model.get_layer(f"{name}_head_conv")
  kernel, _ = head.get_weights()
  head.set_weights([np.zeros_like(kernel), np.full((1,), bias, np.float32)])


@pytest.mark.parametrize("activation,max_depth,bias,expected", [
    ("relu", None, 1.5, 1.5),              # relu(1.5)
    ("relu", 1.0, 1.5, 1.0),               # capped at max_depth
    ("relu", None, -2.0, 0.0),             # relu(-2)
    ("softplus", None, 0.0, math.log(2.0)),  # softplus(0) = ln 2
    ("sigmoid", 10.0, 0.0, 5.0),           # sigmoid(0) * 10
    ("sigmoid", 80.0, math.log(3.0), 60.0),  # sigmoid(ln 3) = 3/4; * 80
])
def test_depth_activation_closed_form(activation, max_depth, bias, expected):
  """With a zero head kernel the depth is activation(bias) everywhere (x max_depth for sigmoid)."""
  model = build_fastdepth((32, 32, 3), width_multiplier=SMALL_ALPHA,
                          depth_activation=activation, max_depth=max_depth, name="h")
  _set_head(model, "h", bias)
  depth = model(_images(2, (32, 32, 3)), training=False)["depth"].numpy()
  np.testing.assert_allclose(depth, expected, rtol=1e-6)  # float32 transcendental round-off


def test_fit_one_step_changes_weights(small_model):
  keras.utils.set_random_seed(2)
  model = build_fastdepth((32, 32, 3), width_multiplier=SMALL_ALPHA, name="fit")
  model.compile(optimizer=keras.optimizers.SGD(0.1), loss={"depth": "mse"}, jit_compile=False)
  x = _images(2, (32, 32, 3))
  y = {"depth": np.full((2, 32, 32, 1), 3.0, np.float32)}
  before = [w.copy() for w in model.get_weights()]
  history = model.fit(x, y, epochs=1, batch_size=2, verbose=0)
  loss = history.history["loss"][0]
  assert np.isfinite(loss) and loss > 0.0
  changed = [not np.array_equal(a, b) for a, b in zip(before, model.get_weights())]
  assert sum(changed) > len(changed) // 2


def test_input_normalisation_is_frozen_affine(small_model):
  """[0, 1] -> [-1, 1] (x * 2 - 1, Keras' MobileNet preprocessing), not trainable."""
  layer = small_model.get_layer("fd_normalize")
  assert not layer.trainable and layer.trainable_weights == []
  probe = keras.Model(small_model.input, layer.output)
  x = np.array([0.0, 0.25, 1.0], np.float32).reshape(1, 1, 3, 1) * np.ones((1, 1, 1, 3), "f")
  x = np.tile(x, (1, 64, 32, 1))
  np.testing.assert_array_equal(probe(x).numpy()[0, 0, :3, 0], [-1.0, -0.5, 1.0])  # exact in f32


def test_tf_keras_twin_goes_through_quantize_model():
  """The tf_keras twin must be quantisable by tensorflow-model-optimization (QAT)."""
  import tensorflow_model_optimization as tfmot  # pylint: disable=g-import-not-at-top
  twin = build_fastdepth((32, 32, 3), layers=tf_keras.layers, width_multiplier=SMALL_ALPHA,
                         depth_activation="sigmoid", max_depth=10.0, name="q")
  quantized = tfmot.quantization.keras.quantize_model(twin)
  depth = quantized(_images(1, (32, 32, 3)), training=False)["depth"].numpy()
  assert depth.shape == (1, 32, 32, 1)
  assert np.all(depth >= 0.0) and np.all(depth <= 10.0)  # sigmoid x max_depth range


def test_keras_save_load_round_trip(small_model, tmp_path):
  path = os.path.join(tmp_path, "fastdepth.keras")
  small_model.save(path)
  loaded = keras.saving.load_model(path, safe_mode=True)
  x = _images(2)
  np.testing.assert_array_equal(loaded(x, training=False)["depth"].numpy(),
                                small_model(x, training=False)["depth"].numpy())


def test_tf_keras_twin_identical_outputs():
  keras.utils.set_random_seed(3)
  model = build_fastdepth((32, 64, 3), width_multiplier=SMALL_ALPHA, name="tw")
  twin = build_fastdepth((32, 64, 3), layers=tf_keras.layers, width_multiplier=SMALL_ALPHA,
                         name="tw")
  assert isinstance(twin, tf_keras.Model)
  assert [w.shape for w in twin.get_weights()] == [w.shape for w in model.get_weights()]
  # Non-trivial BN statistics so the test also checks the BN order / epsilon / moving stats.
  rng = np.random.default_rng(4)
  weights = [w + rng.uniform(0.0, 0.5, w.shape).astype("float32") for w in model.get_weights()]
  model.set_weights(weights)
  twin.set_weights(model.get_weights())
  x = _images(2, (32, 64, 3))
  ref = model(x, training=False)["depth"].numpy()
  out = twin(x, training=False)["depth"].numpy()
  assert np.abs(ref).max() > 0.0
  np.testing.assert_allclose(out, ref, atol=TWIN_ATOL * np.abs(ref).max(), rtol=TWIN_ATOL)


def test_stride2_padding_matches_pytorch_symmetric_padding():
  """PyTorch conv(k=3, s=2, p=1): output (i, j) with only the top-left tap set reads x[2i-1, 2j-1]
  (zero when i or j is 0). Keras "same" would read x[2i, 2j] instead."""
  inp = keras.Input((8, 8, 1))
  out = encoders.conv_bn_relu(inp, keras.layers, 1, 3, 2, "p")
  model = keras.Model(inp, out)
  kernel = np.zeros((3, 3, 1, 1), np.float32)
  kernel[0, 0, 0, 0] = 1.0
  model.get_layer("p_conv").set_weights([kernel])
  x = np.arange(1, 65, dtype=np.float32).reshape(1, 8, 8, 1)
  y = model(x, training=False).numpy()[0, :, :, 0]
  expected = np.zeros((4, 4), np.float32)
  for i in range(4):
    for j in range(4):
      if i > 0 and j > 0:
        expected[i, j] = x[0, 2 * i - 1, 2 * j - 1, 0]
  # BN at init (mean 0, var 1, eps 1e-5) divides by sqrt(1 + 1e-5).
  np.testing.assert_allclose(y, expected / np.sqrt(1.0 + 1e-5), rtol=1e-6)


def test_mobilenet_v1_encoder_pyramid():
  enc = build_mobilenet_v1_encoder((64, 32, 3), width_multiplier=0.5, name="mb")
  channels = {"s2": 32, "s4": 64, "s8": 128, "s16": 256, "s32": 512}  # 0.5 x (64..1024)
  assert _out_shapes(enc) == {
      k: (None, 64 // int(k[1:]), 32 // int(k[1:]), c) for k, c in channels.items()}
  feats = enc(_images(2, (64, 32, 3)), training=False)
  assert feats["s32"].shape == (2, 2, 1, 512)
  assert all(l.name.startswith("mb_") for l in enc.layers)


@pytest.mark.parametrize("kwargs,fragment", [
    ({"input_shape": (100, 64, 3)}, "multiples of 32"),
    ({"input_shape": (64, 48, 3)}, "W=48"),
    ({"input_shape": (64, 64, 1)}, "3 channels"),
    ({"input_shape": (64, 64)}, "(H, W, C)"),
    ({"depth_activation": "tanh"}, "'tanh'"),
    ({"depth_activation": "sigmoid"}, "max_depth"),
    ({"depth_activation": "softplus", "max_depth": 10.0}, "10.0"),
    ({"max_depth": -1.0}, "-1.0"),
    ({"width_multiplier": 0.0}, "width_multiplier"),
    ({"layers": np}, "tf_keras.layers"),
    ({"name": ""}, "name"),
])
def test_bad_input_raises_typed_error(kwargs, fragment):
  with pytest.raises(InvalidInputError) as err:
    build_fastdepth(**kwargs)
  assert fragment in str(err.value)
  assert isinstance(err.value, ValueError)


def test_registry():
  assert MODEL_BUILDERS["fastdepth"] is build_fastdepth
  model = get_model("fastdepth", input_shape=(32, 32, 3), width_multiplier=SMALL_ALPHA, name="r")
  assert model.name == "r"
  with pytest.raises(ConfigError, match="fast_depth"):
    get_model("fast_depth")


def test_graph_mode_unknown_batch(small_model):
  fn = tf.function(lambda x: small_model(x, training=False)["depth"],
                   input_signature=[tf.TensorSpec((None,) + SMALL_SHAPE, tf.float32)])
  assert fn(tf.constant(_images(2)))[0].shape == (64, 96, 1)
