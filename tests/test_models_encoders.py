"""Tests of tfdepth.models.encoders: ResNet-18/34/50 (plain and dilated) and MobileNet v2."""

import os

import keras
import numpy as np
import pytest
import tf_keras

from tfdepth.errors import InvalidInputError
from tfdepth.models import encoders
from tfdepth.models.encoders import build_mobilenet_v2_encoder, build_resnet_encoder
from tests._images import uniform_images

# torchvision parameter counts (torch counts trainable parameters only) minus the classifier:
# resnet18 11,689,512 - fc 513,000; resnet34 21,797,672 - 513,000; resnet50 25,557,032 -
# 2,049,000 (fc 2048*1000+1000); resnet101 44,549,160 - 2,049,000. Our models add 6 frozen
# normalisation weights (1x1 depthwise kernel + bias over RGB), which are not trainable.
TORCHVISION_TRAINABLE = {18: 11_176_512, 34: 21_284_672, 50: 23_508_032, 101: 42_500_160}
# keras.applications.MobileNetV2(include_top=False, weights=None) has 2,257,984 parameters
# (BN moving statistics included); ours adds the 6 frozen normalisation weights.
KERAS_MOBILENET_V2_PARAMS = 2_257_984


def _out_shapes(model):
  return {k: tuple(v.shape) for k, v in model.output.items()}


def _trainable(model):
  return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


def _images(batch, shape, seed=0):
  return uniform_images(batch, shape, seed)


@pytest.mark.parametrize("num_layers", [18, 34, 50, 101])
def test_resnet_parameter_counts_match_torchvision(num_layers):
  enc = build_resnet_encoder(num_layers, (32, 32, 3))  # parameter count is size independent
  assert _trainable(enc) == TORCHVISION_TRAINABLE[num_layers]


def test_mobilenet_v2_parameter_count_matches_keras_applications():
  enc = build_mobilenet_v2_encoder((32, 32, 3))
  assert enc.count_params() == KERAS_MOBILENET_V2_PARAMS + 6


@pytest.mark.parametrize("shape", [(64, 96, 3), (96, 32, 3)])
@pytest.mark.parametrize("num_layers,channels", [
    (18, (64, 64, 128, 256, 512)), (50, (64, 256, 512, 1024, 2048))])
def test_resnet_pyramid_shapes(shape, num_layers, channels):
  enc = build_resnet_encoder(num_layers, shape, name="r")
  h, w = shape[:2]
  assert _out_shapes(enc) == {
      f"s{s}": (None, h // s, w // s, c) for s, c in zip((2, 4, 8, 16, 32), channels)}
  assert all(layer.name.startswith("r_") for layer in enc.layers)


@pytest.mark.parametrize("output_stride,keys,dilations", [
    (16, ("s2", "s4", "s8", "s16"), {3: 1, 4: 2}),
    (8, ("s2", "s4", "s8"), {3: 2, 4: 4}),
])
def test_dilated_resnet(output_stride, keys, dilations):
  enc = build_resnet_encoder(50, (64, 64, 3), output_stride=output_stride, name="d")
  shapes = _out_shapes(enc)
  assert tuple(shapes) == keys
  assert shapes[f"s{output_stride}"] == (None, 64 // output_stride, 64 // output_stride, 2048)
  for stage, d in dilations.items():
    # Block 2 of the stage uses the stage's dilation; block 1's 3x3 uses the previous stage's
    # (torchvision replace_stride_with_dilation convention); dilated stages have stride 1.
    assert tuple(enc.get_layer(f"d_layer{stage}_block2_conv2_conv").dilation_rate) == (d, d)
    first = enc.get_layer(f"d_layer{stage}_block1_conv2_conv")
    assert tuple(first.strides) == ((1, 1) if d > 1 else (2, 2))
  assert tuple(enc.get_layer("d_layer4_block1_conv2_conv").dilation_rate) == (
      (1, 1) if output_stride == 16 else (2, 2))
  # Same weights as the stride-32 network: dilation changes no parameter.
  assert _trainable(enc) == TORCHVISION_TRAINABLE[50]


def test_resnet_forward_unknown_batch_and_normalisation():
  enc = build_resnet_encoder(18, (32, 64, 3), name="n")
  for batch in (1, 2):
    feats = enc(_images(batch, (32, 64, 3)), training=False)
    assert feats["s32"].shape == (batch, 1, 2, 512)
    assert np.all(np.isfinite(feats["s2"].numpy())) and feats["s2"].numpy().min() >= 0.0
  probe = keras.Model(enc.input, enc.get_layer("n_normalize").output)
  x = np.full((1, 32, 64, 3), 0.45, np.float32)
  x[0, 0, 0] = 0.675  # (0.675 - 0.45) / 0.225 = 1
  y = probe(x).numpy()
  # float32: 1/0.225 and 0.45/0.225 are rounded; 1e-6 absolute covers it.
  np.testing.assert_allclose(y[0, 0, 0], 1.0, atol=1e-6)
  np.testing.assert_allclose(y[0, 1:], 0.0, atol=1e-6)


def test_resnet_multi_frame_input():
  enc = build_resnet_encoder(18, (32, 32, 9), name="p")  # three stacked RGB frames
  assert enc.get_layer("p_stem_conv").kernel.shape == (7, 7, 9, 64)
  assert enc(_images(2, (32, 32, 9)), training=False)["s32"].shape == (2, 1, 1, 512)


def test_mobilenet_v2_pyramid_and_forward():
  enc = build_mobilenet_v2_encoder((64, 32, 3), alpha=0.5, name="m")
  # alpha 0.5: make_divisible(16*.5)=8, 24*.5=12 -> 16, 32*.5 -> 16, 96*.5 -> 48; 1280 kept.
  channels = {"s2": 8, "s4": 16, "s8": 16, "s16": 48, "s32": 1280}
  assert _out_shapes(enc) == {
      k: (None, 64 // int(k[1:]), 32 // int(k[1:]), c) for k, c in channels.items()}
  assert enc(_images(2, (64, 32, 3)), training=False)["s16"].shape == (2, 4, 2, 48)


@pytest.mark.parametrize("value,expected",
                         [(8, 8), (12, 16), (20, 24), (36, 40), (3, 8), (100, 104)])
def test_make_divisible(value, expected):
  # Nearest multiple of 8 with ties rounded up (12 -> 16, 20 -> 24, 36 -> 40, 100 -> 104), at
  # least 8 (3 -> 8); the "not below 90%" bump never triggers for these values.
  assert encoders.make_divisible(value) == expected


def test_encoder_save_load_round_trip(tmp_path):
  enc = build_resnet_encoder(18, (32, 32, 6), name="s")
  path = os.path.join(tmp_path, "enc.keras")
  enc.save(path)
  loaded = keras.saving.load_model(path, safe_mode=True)
  x = _images(2, (32, 32, 6))
  a, b = enc(x, training=False), loaded(x, training=False)
  for key in a:
    np.testing.assert_array_equal(a[key].numpy(), b[key].numpy())


def test_resnet_tf_keras_twin():
  keras.utils.set_random_seed(0)
  enc = build_resnet_encoder(18, (32, 32, 3), name="t")
  twin = build_resnet_encoder(18, (32, 32, 3), layers=tf_keras.layers, name="t")
  twin.set_weights(enc.get_weights())
  x = _images(1, (32, 32, 3))
  ref = enc(x, training=False)["s32"].numpy()
  out = twin(x, training=False)["s32"].numpy()
  # float32, 18 layers deep, different kernels (oneDNN vs Eigen order): 1e-4 relative to scale.
  np.testing.assert_allclose(out, ref, atol=1e-4 * np.abs(ref).max())


@pytest.mark.parametrize("kwargs,fragment", [
    ({"num_layers": 152}, "152"),
    ({"num_layers": "18"}, "'18'"),
    ({"output_stride": 4}, "output_stride"),
    ({"input_shape": (192, 620, 3)}, "W=620"),
    ({"input_shape": (64, 64, 4)}, "C=4"),
])
def test_resnet_bad_input(kwargs, fragment):
  with pytest.raises(InvalidInputError, match=None) as err:
    build_resnet_encoder(**kwargs)
  assert fragment in str(err.value)


def test_mobilenet_v2_bad_input():
  with pytest.raises(InvalidInputError, match="alpha"):
    build_mobilenet_v2_encoder(alpha=-1.0)
  with pytest.raises(InvalidInputError, match="H=100"):
    build_mobilenet_v2_encoder((100, 64, 3))
