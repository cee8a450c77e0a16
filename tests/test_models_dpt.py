"""Tests of tfdepth.models.dpt (Ranftl et al. 2021) and its ViT token layers."""

import os

import keras
import numpy as np
import pytest

from tfdepth.errors import InvalidInputError
from tfdepth.layers import ClassTokenPositionEmbedding, ReadoutConcat
from tfdepth.models import get_model
from tfdepth.models.dpt import build_dpt
from tests._images import uniform_images

TINY = dict(hidden_size=32, num_layers=4, num_heads=2, mlp_dim=64, hooks=(0, 1, 2, 3),
            reassemble_channels=(8, 16, 32, 32), features=16)


def _images(batch, shape=(64, 96, 3), seed=0):
  return uniform_images(batch, shape, seed)


@pytest.fixture(scope="module")
def tiny():
  keras.utils.set_random_seed(0)
  return build_dpt((64, 96, 3), **TINY, name="t")


def _vit_block_params(d, mlp):
  # 2 LayerNorms, q/k/v/out projections with bias, 2-layer MLP with bias.
  return 2 * 2 * d + 4 * (d * d + d) + (d * mlp + mlp) + (mlp * d + d)


def test_vit_b16_block_count_matches_known_vit_b():
  """ViT-B/16 backbone at 224 has 85,798,656 parameters (86,567,656 of timm/torchvision ViT-B/16
  minus its 769,000-parameter classifier): patch embedding + class token + 197 position
  embeddings + 12 blocks + final LayerNorm. Our blocks must match that formula."""
  d, mlp = 768, 3072
  total = (16 * 16 * 3 * d + d) + d + 197 * d + 12 * _vit_block_params(d, mlp) + 2 * d
  assert total == 85_798_656


def test_tiny_model_transformer_parameters(tiny):
  blocks = sum(l.count_params() for l in tiny.layers if "_block" in l.name)
  assert blocks == 4 * _vit_block_params(32, 64)
  assert tiny.get_layer("t_pos_embed").count_params() == 32 + (4 * 6 + 1) * 32  # cls + pos


@pytest.mark.parametrize("shape", [(64, 96, 3), (96, 64, 3)])
def test_output_shapes(shape):
  model = build_dpt(shape, **TINY)
  assert {k: tuple(v.shape) for k, v in model.output.items()} == {
      "depth": (None, shape[0], shape[1], 1)}
  # Reassembled maps at strides 4, 8, 16, 32.
  for j, stride in enumerate((4, 8, 16, 32), start=1):
    assert tuple(model.get_layer(f"dpt_reassemble{j}_to_features").output.shape) == (
        None, shape[0] // stride, shape[1] // stride, 16)


def test_forward_and_closed_form_head(tiny):
  for batch in (1, 2):
    depth = tiny(_images(batch), training=False)["depth"].numpy()
    assert depth.shape == (batch, 64, 96, 1) and depth.min() >= 0.0  # ReLU head
  model = build_dpt((64, 96, 3), **TINY, name="c")
  last = model.get_layer("c_head_conv3")
  kernel, _ = last.get_weights()
  last.set_weights([np.zeros_like(kernel), np.array([2.5], np.float32)])
  np.testing.assert_array_equal(model(_images(1), training=False)["depth"].numpy(), 2.5)
  assert all(layer.name.startswith("c_") for layer in model.layers)


def test_fit_and_save_load(tiny, tmp_path):
  model = keras.models.clone_model(tiny)
  model.compile(optimizer="sgd", loss={"depth": "mse"}, run_eagerly=True)
  x = _images(2)
  loss = model.fit(x, {"depth": np.ones((2, 64, 96, 1), "f")}, verbose=0).history["loss"][0]
  assert np.isfinite(loss) and loss > 0
  path = os.path.join(tmp_path, "dpt.keras")
  model.save(path)
  loaded = keras.saving.load_model(path, safe_mode=True)
  np.testing.assert_array_equal(loaded(x, training=False)["depth"].numpy(),
                                model(x, training=False)["depth"].numpy())


def test_class_token_position_embedding():
  layer = ClassTokenPositionEmbedding(3, name="p")
  tokens = np.arange(12, dtype=np.float32).reshape(2, 3, 2)
  out = layer(tokens).numpy()
  cls, pos = layer.class_token.numpy(), layer.position_embedding.numpy()
  assert out.shape == (2, 4, 2)
  np.testing.assert_array_equal(out[:, 0], np.broadcast_to(cls[0, 0] + pos[0, 0], (2, 2)))
  np.testing.assert_array_equal(out[:, 1:], tokens + pos[:, 1:])
  clone = ClassTokenPositionEmbedding.from_config(layer.get_config())
  assert clone.num_patches == 3 and clone.name == "p"
  with pytest.raises(InvalidInputError, match="0"):
    ClassTokenPositionEmbedding(0)
  with pytest.raises(InvalidInputError, match="3 patch tokens"):
    ClassTokenPositionEmbedding(3)(keras.Input((5, 2)))


def test_readout_concat():
  tokens = np.array([[[9.0, 8.0], [1.0, 2.0], [3.0, 4.0]]], np.float32)
  out = ReadoutConcat()(tokens).numpy()
  np.testing.assert_array_equal(out, [[[1, 2, 9, 8], [3, 4, 9, 8]]])
  clone = ReadoutConcat.from_config(ReadoutConcat(name="r").get_config())
  assert clone.name == "r"


def test_registry():
  assert get_model("dpt", input_shape=(64, 64, 3), **TINY, name="g").name == "g"


@pytest.mark.parametrize("kwargs,fragment", [
    ({"input_shape": (64, 80, 3)}, "W=80"),
    ({"hidden_size": 30, "num_heads": 4}, "divisible"),
    ({"hooks": (0, 1, 2, 12)}, "hooks"),
    ({"hooks": (2, 1, 3, 4)}, "hooks"),
    ({"patch_size": 8}, "patch_size"),
    ({"reassemble_channels": (8, 16)}, "reassemble_channels"),
    ({"depth_activation": "elu"}, "'elu'"),
    ({"features": 1}, "features must be an int >= 2 (the head's first conv has features // 2 "
                      "channels), got 1"),
    ({"features": 16.0}, "got 16.0"),
    ({"hooks": None}, "hooks must be 4 increasing block indices in [0, 11], got None"),
    ({"reassemble_channels": None}, "reassemble_channels must be 4 positive ints, got None"),
])
def test_bad_input(kwargs, fragment):
  with pytest.raises(InvalidInputError) as err:
    build_dpt(**{**dict(input_shape=(64, 64, 3)), **kwargs})
  assert fragment in str(err.value)


@pytest.mark.parametrize("tap,impulse,reached", [
    ((1, 1), (2, 2), (1, 1)),   # centre tap: output j reads input 2j
    ((0, 0), (1, 1), (1, 1)),   # top-left tap: output j reads input 2j - 1
    ((2, 2), (3, 5), (1, 2)),   # bottom-right tap: output j reads input 2j + 1
    (None, (2, 2), (1, 1)),     # all-ones kernel: input 2 is read by output 1 only
])
def test_stride32_resample_pads_like_pytorch(tiny, tap, impulse, reached):
  """DPT's nn.Conv2d(k=3, stride=2, padding=1): output j reads inputs 2j-1, 2j, 2j+1 (zero at
  -1). Keras' "same" would read 2j, 2j+1, 2j+2 (e.g. no output would see input 2 through the
  centre tap)."""
  pad = tiny.get_layer("t_reassemble4_resample_pad")
  conv = tiny.get_layer("t_reassemble4_resample")
  assert pad.padding == ((1, 0), (1, 0)) and conv.padding == "valid" and conv.strides == (2, 2)
  ch = TINY["reassemble_channels"][3]
  kernel = np.zeros((3, 3, ch, ch), np.float32)
  for c in range(ch):
    if tap is None:
      kernel[:, :, c, c] = 1.0
    else:
      kernel[tap + (c, c)] = 1.0
  weights = conv.get_weights()
  try:
    conv.set_weights([kernel, np.zeros(ch, np.float32)])
    x = np.zeros((1, 4, 6, ch), np.float32)   # the 64x96 input's 4x6 token grid
    x[(0,) + impulse + (0,)] = 1.0
    y = conv(pad(x)).numpy()
  finally:
    conv.set_weights(weights)
  expected = np.zeros((1, 2, 3, ch), np.float32)
  expected[(0,) + reached + (0,)] = 1.0
  np.testing.assert_array_equal(y, expected)
