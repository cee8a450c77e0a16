"""Tests of tfdepth.models.monodepth2 (Godard et al. 2019)."""

import os

import keras
import numpy as np
import pytest

from tfdepth.errors import InvalidInputError
from tfdepth.layers import ReflectionPadding2D, reflection_pad, reflection_slices
from tfdepth.models import get_model
from tfdepth.models.monodepth2 import build_monodepth2_depth_net, build_monodepth2_pose_net
from tests._images import uniform_images

# ResNet-18 without classifier, trainable parameters (= torchvision 11,689,512 - fc 513,000).
RESNET18_TRAINABLE = 11_176_512
# Published scale of Monodepth2's ResNet-18 depth network (the brief's / commonly quoted figure).
PUBLISHED_DEPTH_PARAMS = 14.3e6
SMALL = (64, 64, 3)


def _trainable(model):
  return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


def _out_shapes(model):
  return {k: tuple(v.shape) for k, v in model.output.items()}


def _images(batch, shape, seed=0):
  return uniform_images(batch, shape, seed)


def _conv(k, cin, cout):
  return k * k * cin * cout + cout  # conv with bias


@pytest.fixture(scope="module")
def depth_net():
  keras.utils.set_random_seed(0)
  return build_monodepth2_depth_net(SMALL, name="md")


@pytest.fixture(scope="module")
def pose_net():
  keras.utils.set_random_seed(1)
  return build_monodepth2_pose_net(SMALL, name="mp")


def test_depth_net_parameter_count():
  model = build_monodepth2_depth_net()
  enc = (64, 64, 128, 256, 512)  # ResNet-18 channels at strides 2..32
  dec = (16, 32, 64, 128, 256)   # Monodepth2 num_ch_dec
  decoder = 0
  for i in range(4, -1, -1):
    cin = enc[4] if i == 4 else dec[i + 1]
    decoder += _conv(3, cin, dec[i])
    decoder += _conv(3, dec[i] + (enc[i - 1] if i > 0 else 0), dec[i])
    if i < 4:
      decoder += _conv(3, dec[i], 1)  # sigmoid disparity head
  assert decoder == 3_152_724
  assert _trainable(model) == RESNET18_TRAINABLE + decoder == 14_329_236
  assert abs(_trainable(model) - PUBLISHED_DEPTH_PARAMS) / PUBLISHED_DEPTH_PARAMS < 0.01


def test_pose_net_parameter_count():
  model = build_monodepth2_pose_net()
  encoder = RESNET18_TRAINABLE + 7 * 7 * 3 * 64  # first conv takes 6 channels instead of 3
  decoder = _conv(1, 512, 256) + 2 * _conv(3, 256, 256) + _conv(1, 256, 6)
  assert decoder == 1_313_030
  assert _trainable(model) == encoder + decoder == 12_498_950


@pytest.mark.parametrize("shape", [(64, 64, 3), (64, 128, 3)])
def test_depth_net_output_shapes(shape):
  model = build_monodepth2_depth_net(shape, scales=(0, 2))
  h, w = shape[:2]
  assert _out_shapes(model) == {"disp_0": (None, h, w, 1), "disp_2": (None, h // 4, w // 4, 1)}


def test_depth_net_forward(depth_net):
  for batch in (1, 2):
    out = depth_net(_images(batch, SMALL), training=False)
    assert sorted(out) == ["disp_0", "disp_1", "disp_2", "disp_3"]
    for s in range(4):
      disp = out[f"disp_{s}"].numpy()
      assert disp.shape == (batch, 64 >> s, 64 >> s, 1)
      assert np.all(disp > 0.0) and np.all(disp < 1.0)  # sigmoid
  assert all(layer.name.startswith("md_") for layer in depth_net.layers)


def test_depth_net_structure(depth_net):
  kinds = [type(layer).__name__ for layer in depth_net.layers]
  # 10 decoder convs + 4 heads, each reflection padded; 5 nearest upsamplings; 4 skips.
  assert kinds.count("ReflectionPadding2D") == 14
  assert kinds.count("UpSampling2D") == 5 and kinds.count("Concatenate") == 4
  elus = [l for l in depth_net.layers if isinstance(l, keras.layers.Activation)
          and l.name.endswith("_elu")]
  assert len(elus) == 10


def test_sigmoid_heads_closed_form():
  model = build_monodepth2_depth_net(SMALL, scales=(1,), name="c")
  head = model.get_layer("c_decoder_dispconv1_conv")
  kernel, _ = head.get_weights()
  head.set_weights([np.zeros_like(kernel), np.array([np.log(3.0)], np.float32)])
  disp = model(_images(1, SMALL), training=False)["disp_1"].numpy()
  np.testing.assert_allclose(disp, 0.75, rtol=1e-6)  # sigmoid(ln 3) = 3/4; float32 round-off


def test_pose_net_outputs_are_scaled_bias(pose_net):
  """With a zero last kernel the output is 0.01 x bias (spatial mean of a constant)."""
  last = pose_net.get_layer("mp_pose2")
  kernel, _ = last.get_weights()
  bias = np.array([1.0, -2.0, 3.0, 40.0, -50.0, 60.0], np.float32)
  last.set_weights([np.zeros_like(kernel), bias])
  out = pose_net(_images(2, (64, 64, 6)), training=False)
  assert _out_shapes(pose_net) == {"axis_angle": (None, 3), "translation": (None, 3)}
  # x 0.01 in float32: relative error <= 1 ulp.
  np.testing.assert_allclose(out["axis_angle"].numpy(), [[0.01, -0.02, 0.03]] * 2, rtol=1e-6)
  np.testing.assert_allclose(out["translation"].numpy(), [[0.4, -0.5, 0.6]] * 2, rtol=1e-6)


def test_pose_net_three_frames_layout():
  model = build_monodepth2_pose_net(SMALL, num_input_frames=3, name="p3")
  assert model.input_shape == (None, 64, 64, 9)
  last = model.get_layer("p3_pose2")
  kernel, _ = last.get_weights()
  bias = np.arange(12, dtype=np.float32)  # frame k gets bias[6k:6k+6] (view(-1, N-1, 1, 6))
  last.set_weights([np.zeros_like(kernel), bias])
  out = model(_images(1, (64, 64, 9)), training=False)
  np.testing.assert_allclose(out["axis_angle"].numpy()[0], 0.01 * np.array([[0, 1, 2], [6, 7, 8]]),
                             rtol=1e-6, atol=1e-9)
  np.testing.assert_allclose(out["translation"].numpy()[0],
                             0.01 * np.array([[3, 4, 5], [9, 10, 11]]), rtol=1e-6)


def test_fit_one_step(depth_net, pose_net):
  """One SGD step of model.fit on each net. Eager, because tracing ResNet-18's train step costs
  ~10 s of CPU per model (graph-mode fit is exercised in test_models_fastdepth)."""
  x = _images(2, SMALL)
  targets = {f"disp_{s}": np.full((2, 64 >> s, 64 >> s, 1), 0.3, np.float32) for s in range(4)}
  model = keras.models.clone_model(depth_net)
  model.compile(optimizer="sgd", loss={k: "mse" for k in targets}, run_eagerly=True)
  loss = model.fit(x, targets, batch_size=2, epochs=1, verbose=0).history["loss"][0]
  assert np.isfinite(loss) and loss > 0.0
  pose = keras.models.clone_model(pose_net)
  pose.compile(optimizer="sgd", loss={"axis_angle": "mse", "translation": "mse"},
               run_eagerly=True)
  before = pose.get_layer("mp_pose2").get_weights()[1].copy()
  pose.fit(_images(2, (64, 64, 6)), {"axis_angle": np.ones((2, 3), "f"),
                                     "translation": np.ones((2, 3), "f")}, verbose=0)
  assert not np.array_equal(before, pose.get_layer("mp_pose2").get_weights()[1])


def test_save_load_round_trip(depth_net, pose_net, tmp_path):
  for model, x in ((depth_net, _images(2, SMALL)), (pose_net, _images(2, (64, 64, 6)))):
    path = os.path.join(tmp_path, f"{model.name}.keras")
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    a, b = model(x, training=False), loaded(x, training=False)
    assert sorted(a) == sorted(b)
    for key in a:
      np.testing.assert_array_equal(a[key].numpy(), b[key].numpy())


def test_registry():
  model = get_model("monodepth2_depth", input_shape=SMALL, scales=(0,), name="g")
  assert list(model.output) == ["disp_0"]
  assert get_model("monodepth2_pose", input_shape=SMALL, name="gp").name == "gp"


@pytest.mark.parametrize("builder,kwargs,fragment", [
    (build_monodepth2_depth_net, {"input_shape": (200, 640, 3)}, "H=200"),
    (build_monodepth2_depth_net, {"num_layers": 20}, "20"),
    (build_monodepth2_depth_net, {"input_shape": (32, 64, 3)}, ">= 64"),
    (build_monodepth2_depth_net, {"scales": (0, 5)}, "(0, 5)"),
    (build_monodepth2_depth_net, {"scales": ()}, "scales"),
    (build_monodepth2_depth_net, {"scales": (1, 1)}, "(1, 1)"),
    (build_monodepth2_pose_net, {"num_input_frames": 1}, "num_input_frames"),
    (build_monodepth2_pose_net, {"num_layers": 152}, "152"),
    (build_monodepth2_pose_net, {"input_shape": (192, 640, 6)}, "C=6"),
])
def test_bad_input(builder, kwargs, fragment):
  with pytest.raises(InvalidInputError) as err:
    builder(**kwargs)
  assert fragment in str(err.value)


# ------------------------------------------------------ tf_keras twin (layers=, issue 7 QAT)
# Reflection paddings of the default depth net: 5 stages x 2 Conv3x3 + 4 disparity heads.
NUM_PADS_4_SCALES = 14
# Twin vs Keras 3 with the same weights: the same float32 kernels on the same values (the
# reflection padding is pure copies in both), so 1e-5 relative only absorbs a different op
# fusion between the two libraries (measured: bit-identical on this CPU).
TWIN_RTOL = 1e-5


def test_tf_keras_twin_same_weights_same_outputs(depth_net):
  import tf_keras  # pylint: disable=g-import-not-at-top
  twin = build_monodepth2_depth_net(SMALL, name="md", layers=tf_keras.layers)
  assert isinstance(twin, tf_keras.Model) and not isinstance(twin, keras.Model)
  assert ([tuple(w.shape) for w in twin.get_weights()]
          == [tuple(w.shape) for w in depth_net.get_weights()])
  twin.set_weights(depth_net.get_weights())
  x = _images(2, SMALL, seed=3)
  expected = {k: v.numpy() for k, v in depth_net(x).items()}
  got = twin(x)
  assert sorted(got) == ["disp_0", "disp_1", "disp_2", "disp_3"]
  for key, value in expected.items():
    np.testing.assert_allclose(got[key].numpy(), value, rtol=TWIN_RTOL, atol=0)
  # Stock tf_keras layers only (tfmot quantises no unknown layer); the Keras 3 model keeps its
  # ReflectionPadding2D layers (saved .keras files refer to them).
  assert {type(l).__module__.split(".")[0] for l in twin.layers} == {"tf_keras"}
  assert sum(isinstance(l, tf_keras.layers.Cropping2D) for l in twin.layers) == (
      4 * NUM_PADS_4_SCALES)  # one row top, one bottom, one column left, one right per pad
  assert sum(isinstance(l, ReflectionPadding2D) for l in depth_net.layers) == NUM_PADS_4_SCALES


def test_reflection_slices_closed_form():
  # Rows 2, 1 | all | rows H-2 = 3 (H = 5): PyTorch ReflectionPad2d((.., .., 2, 1)).
  assert reflection_slices(5, 2, 1) == [(2, 3), (1, 2), (0, 5), (3, 4)]
  assert reflection_slices(2, 1, 1) == [(1, 2), (0, 2), (0, 1)]
  assert reflection_slices(4, 0, 0) == [(0, 4)]
  for size, before, after in ((2, 2, 0), (None, 1, 1), (3, -1, 0), (3, 1.0, 0)):
    with pytest.raises(InvalidInputError, match=r"reflection padding .*got size"):
      reflection_slices(size, before, after)


def test_reflection_pad_from_stock_layers_closed_form():
  # [a, b, c] padded by 1 is [b, a, b, c, b] (nn.ReflectionPad2d), rows then columns.
  inp = keras.Input((2, 3, 1))
  model = keras.Model(inp, reflection_pad(inp, keras.layers, 1, "p"))
  assert model.layers[-1].name == "p"
  assert {type(l).__name__ for l in model.layers[1:]} == {"Cropping2D", "Concatenate"}
  x = np.arange(1.0, 7.0, dtype=np.float32).reshape(1, 2, 3, 1)
  np.testing.assert_array_equal(model(x).numpy()[0, :, :, 0],
                                [[5, 4, 5, 6, 5], [2, 1, 2, 3, 2], [5, 4, 5, 6, 5],
                                 [2, 1, 2, 3, 2]])


@pytest.mark.parametrize("padding", [((2, 0), (1, 3)), (0, 2), 3])
def test_reflection_pad_equals_reflection_padding_layer(padding):
  inp = keras.Input((5, 6, 2))
  model = keras.Model(inp, reflection_pad(inp, keras.layers, padding, "p"))
  x = _images(2, (5, 6, 2), seed=4)
  # Pure copies: bit-identical.
  np.testing.assert_array_equal(model(x).numpy(), ReflectionPadding2D(padding)(x).numpy())


def test_reflection_pad_bad_input():
  inp = keras.Input((2, 3, 1))
  with pytest.raises(InvalidInputError, match=r"got size 2"):
    reflection_pad(inp, keras.layers, 2, "p")
  with pytest.raises(InvalidInputError, match=r"padding must be .*got -1"):
    reflection_pad(inp, keras.layers, -1, "p")
  with pytest.raises(InvalidInputError, match=r"layers must be keras.layers or tf_keras.layers"):
    build_monodepth2_depth_net(SMALL, layers=np)


def test_depth_model_is_the_scale0_net_with_disp_to_depth():
  from tfdepth.models.monodepth2 import build_monodepth2_depth_model, copy_weights_by_name  # pylint: disable=g-import-not-at-top
  keras.utils.set_random_seed(3)
  net = build_monodepth2_depth_net(SMALL)   # the training net: 4 disparity heads
  model = build_monodepth2_depth_model(SMALL, min_depth=0.5, max_depth=50.0)
  copy_weights_by_name(net, model)
  x = np.random.default_rng(0).uniform(size=(2,) + SMALL).astype(np.float32)
  disp = net(x)["disp_0"].numpy().astype(np.float64)
  # disp_to_depth (Godard et al. 2019): depth = 1 / (1/max + (1/min - 1/max) * sigmoid).
  expected = 1.0 / (1.0 / 50.0 + (1.0 / 0.5 - 1.0 / 50.0) * disp)
  np.testing.assert_allclose(model(x)["depth"].numpy(), expected, rtol=1e-5)
  assert model.name == "monodepth2_depth_inference"
  # A net without the layers (another name prefix) cannot supply the weights.
  other = build_monodepth2_depth_net(SMALL, name="other")
  with pytest.raises(InvalidInputError, match="no counterpart in 'other'"):
    copy_weights_by_name(other, model)


def test_softplus_depth_head_shares_the_layers_of_the_sigmoid_head():
  """output="depth" (Li et al. 2021 released head): the same layers and weights with softplus
  instead of sigmoid on the last conv z, so depth = softplus(z) = -log(1 - sigmoid(z))."""
  from tfdepth.models.monodepth2 import build_monodepth2_depth_model, copy_weights_by_name  # pylint: disable=g-import-not-at-top
  keras.utils.set_random_seed(4)
  disp_net = build_monodepth2_depth_net(SMALL, scales=(0, 2))
  depth_net = build_monodepth2_depth_net(SMALL, scales=(0, 2), output="depth")
  assert [w.shape for w in depth_net.weights] == [w.shape for w in disp_net.weights]
  copy_weights_by_name(disp_net, depth_net)
  x = np.random.default_rng(1).uniform(size=(2,) + SMALL).astype(np.float32)
  disp, depth = disp_net(x), depth_net(x)
  assert sorted(depth) == ["depth_0", "depth_2"]
  for s in (0, 2):
    d = disp[f"disp_{s}"].numpy().astype(np.float64)
    # float32 sigmoid near 0.5 (random init) keeps ~1e-7 absolute, -log(1 - d) amplifies it by
    # 1 / (1 - d) ~ 2: 1e-5 relative is tight.
    np.testing.assert_allclose(depth[f"depth_{s}"].numpy(), -np.log1p(-d), rtol=1e-5)
  assert depth_net.get_layer("monodepth2_depth_decoder_dispconv0_softplus").dtype_policy.name == (
      "float32")
  # The inference model of a softplus net is its scale-0 head, no disp_to_depth.
  model = build_monodepth2_depth_model(SMALL, output="depth")
  copy_weights_by_name(depth_net, model)
  np.testing.assert_array_equal(model(x)["depth"].numpy(), depth["depth_0"].numpy())
  with pytest.raises(InvalidInputError, match=r"output expected one of \['depth', 'disparity'\], "
                                              r"received 'inverse'"):
    build_monodepth2_depth_net(SMALL, output="inverse")


# ---------------------------------------- inference model: save / reload, input structure, bf16
def test_depth_model_save_reload_identical_outputs(tmp_path):
  """The disp_to_depth Lambda refers to the registered `sigmoid_disp_to_depth`: a saved .keras
  reloads (safe mode or not) and gives bit-identical depth. Called on one tensor, the model
  (built on `net.input`, not the list `net.inputs`) warns nothing about its input structure."""
  import warnings  # pylint: disable=g-import-not-at-top
  from tfdepth.models.monodepth2 import build_monodepth2_depth_model  # pylint: disable=g-import-not-at-top
  keras.utils.set_random_seed(5)
  model = build_monodepth2_depth_model(SMALL, min_depth=0.5, max_depth=50.0, name="sv")
  x = _images(2, SMALL, seed=6)
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    expected = model(x)["depth"].numpy()
  assert not [w for w in caught if "Expected:" in str(w.message)], [str(w.message) for w in caught]
  # disp_to_depth bounds the depth to [min_depth, max_depth].
  assert expected.shape == (2, 64, 64, 1) and 0.5 <= expected.min() and expected.max() <= 50.0
  path = os.path.join(tmp_path, "md2_inference.keras")
  model.save(path)
  for safe_mode in (True, False):
    loaded = keras.saving.load_model(path, safe_mode=safe_mode)
    layer = loaded.get_layer("sv_to_depth")
    assert layer.arguments == {"min_depth": 0.5, "max_depth": 50.0}
    np.testing.assert_array_equal(loaded(x)["depth"].numpy(), expected)


def test_depth_model_tf_keras_twin_same_weights_same_depth():
  """The tf_keras twin of the inference model (QAT, `export.qat`) keeps the Lambda and the
  weight list of the Keras 3 model."""
  import tf_keras  # pylint: disable=g-import-not-at-top
  from tfdepth.models.monodepth2 import build_monodepth2_depth_model  # pylint: disable=g-import-not-at-top
  keras.utils.set_random_seed(6)
  model = build_monodepth2_depth_model(SMALL, name="tw")
  twin = build_monodepth2_depth_model(SMALL, name="tw", layers=tf_keras.layers)
  assert ([tuple(w.shape) for w in twin.get_weights()]
          == [tuple(w.shape) for w in model.get_weights()])
  twin.set_weights(model.get_weights())
  x = _images(1, SMALL, seed=7)
  np.testing.assert_allclose(twin(x)["depth"].numpy(), model(x)["depth"].numpy(),
                             rtol=TWIN_RTOL, atol=0)


@pytest.mark.parametrize("kwargs,fragment", [
    ({"min_depth": -1.0}, "min_depth must be a finite positive number, got -1.0"),
    ({"min_depth": 10.0, "max_depth": 1.0},
     "expected 0 < min_depth < max_depth (metres), received min_depth, max_depth = 10.0, 1.0"),
    ({"max_depth": float("inf")}, "max_depth must be a finite positive number, got inf"),
    ({"min_depth": "a"}, "min_depth must be a finite positive number, got 'a'"),
    ({"min_depth": 1.0, "max_depth": 1.0, "output": "depth"}, "min_depth < max_depth"),
])
def test_depth_model_bad_depth_range(kwargs, fragment):
  from tfdepth.models.monodepth2 import build_monodepth2_depth_model  # pylint: disable=g-import-not-at-top
  with pytest.raises(InvalidInputError) as err:
    build_monodepth2_depth_model(SMALL, **kwargs)
  assert fragment in str(err.value)


@pytest.mark.parametrize("args,fragment", [
    (("a",), "min_depth must be a finite positive number, got 'a'"),
    ((0.1, float("inf")), "max_depth must be a finite positive number, got inf"),
    ((0.0, 1.0), "min_depth must be a finite positive number, got 0.0"),
    ((2.0, 1.0), "received min_depth, max_depth = 2.0, 1.0"),
    ((float("nan"), 1.0), "got nan"),
])
def test_disp_to_depth_layer_bad_range(args, fragment):
  from tfdepth.models.segdepth import DispToDepth  # pylint: disable=g-import-not-at-top
  with pytest.raises(InvalidInputError) as err:
    DispToDepth(*args)
  assert fragment in str(err.value)


def test_disp_to_depth_layer_closed_form_and_config():
  from tfdepth.models.segdepth import DispToDepth  # pylint: disable=g-import-not-at-top
  layer = DispToDepth(0.5, 50.0, name="d2d")
  # 1 / (1/50 + (1/0.5 - 1/50)·s): s = 0 -> 50 m, s = 1 -> 0.5 m, s = 0.5 -> 1 / 1.01.
  np.testing.assert_allclose(layer(np.array([[0.0, 1.0, 0.5]], np.float32)).numpy(),
                             [[50.0, 0.5, 1.0 / 1.01]], rtol=1e-6)
  clone = DispToDepth.from_config(layer.get_config())
  assert (clone.min_depth, clone.max_depth, clone.name) == (0.5, 50.0, "d2d")


# Features of the depth net's last decoder stage under mixed_bfloat16 are bfloat16, exactly
# representable in float32; the float32 head must then be a float32 conv + softplus of them.
# 3·3·16 = 144 products summed in float32 around a 30 m output: relative error <~ 144·2^-24
# (~1e-5) in the worst case, ~1e-6 in practice; 2e-6 relative is 16x finer than the bf16 grid.
BF16_HEAD_BIAS = 30.0
BF16_HEAD_RTOL = 2e-6


def test_softplus_depth_head_is_float32_under_mixed_bfloat16():
  """output="depth" under mixed_bfloat16: the head's reflection padding, conv and softplus all
  compute in float32, so depth (~30 m) is not on the bfloat16 grid (steps of 0.125 m there)."""
  policy = keras.mixed_precision.dtype_policy()
  keras.mixed_precision.set_dtype_policy("mixed_bfloat16")
  try:
    keras.utils.set_random_seed(7)
    net = build_monodepth2_depth_net(SMALL, scales=(0,), output="depth", name="bf")
    features_model = keras.Model(net.input, net.get_layer("bf_decoder_upconv0_1_elu").output)
  finally:
    keras.mixed_precision.set_dtype_policy(policy)
  for suffix in ("pad", "conv", "softplus"):
    assert net.get_layer(f"bf_decoder_dispconv0_{suffix}").dtype_policy.name == "float32"
  conv = net.get_layer("bf_decoder_dispconv0_conv")
  kernel, bias = conv.get_weights()
  conv.set_weights([kernel, bias + BF16_HEAD_BIAS])
  x = _images(1, SMALL, seed=8)
  depth = net(x)["depth_0"].numpy()
  features = features_model(x).numpy()
  assert features_model.output.dtype == "bfloat16"
  # Float64 recomputation: PyTorch ReflectionPad2d(1) == numpy "reflect", valid 3x3 conv, softplus.
  f = np.pad(features.astype(np.float64), ((0, 0), (1, 1), (1, 1), (0, 0)), mode="reflect")
  z = np.zeros(depth.shape, np.float64) + bias.astype(np.float64) + BF16_HEAD_BIAS
  for a in range(3):
    for b in range(3):
      z += np.einsum("nhwc,co->nhwo", f[:, a:a + 64, b:b + 64], kernel[a, b].astype(np.float64))
  np.testing.assert_allclose(depth, np.logaddexp(0.0, z), rtol=BF16_HEAD_RTOL, atol=0)
  on_bf16_grid = np.asarray(keras.ops.cast(keras.ops.cast(depth, "bfloat16"), "float32")) == depth
  assert depth.dtype == np.float32 and on_bf16_grid.mean() < 0.05
  assert len(np.unique(depth)) > depth.size // 2
