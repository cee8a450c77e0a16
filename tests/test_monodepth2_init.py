"""Initialisation of the Monodepth2 / segdepth decoders (PyTorch's default nn.Conv2d init).

Regression test for issue 5's learning check: with Keras' glorot_uniform the sigmoid disparity
heads of a randomly initialised Monodepth2 saturated within ~20 Adam steps (constant depth, AbsRel
equal to the median baseline). Monodepth2's decoders use PyTorch's default init,
U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for kernel and bias; glorot's bound for the 16 -> 1 head is
sqrt(6 / (144 + 9)) = 0.198, 2.4x PyTorch's 1/12, so the bound checks below fail on the old init.
"""

import keras
import numpy as np
import pytest

from tfdepth.errors import InvalidInputError
from tfdepth.models import monodepth2
from tfdepth.models import segdepth

SMALL = (64, 64, 3)


def _fan_in(layer):
  kernel = layer.kernel
  return int(np.prod(kernel.shape[:-1]))


def _decoder_convs(model, marker):
  return [l for l in model.layers if isinstance(l, keras.layers.Conv2D) and marker in l.name]


def test_initializer_bound_and_variance_closed_form():
  kernel_init, bias_init = monodepth2.torch_conv_initializers(3, 256)
  bound = 1.0 / np.sqrt(3 * 3 * 256)  # = 1/48
  keras.utils.set_random_seed(0)
  w = keras.ops.convert_to_numpy(kernel_init((3, 3, 256, 256)))
  b = keras.ops.convert_to_numpy(bias_init((256,)))
  # The float32 bound: float32(1/48) is 1/48 rounded to nearest (a draw may equal it).
  bound32 = float(np.float32(bound))
  assert np.abs(w).max() <= bound32 and np.abs(b).max() <= bound32
  # U(-a, a) has variance a²/3; with N = 589,824 samples the estimate's relative standard error
  # is sqrt(0.8 / N) = 0.12 %, so 1 % is > 8 standard errors.
  np.testing.assert_allclose(w.var(), bound ** 2 / 3.0, rtol=0.01)
  # The bias bound is reached: max |b| of 256 uniform draws exceeds 0.9·a with prob. 1 - 0.9^256.
  assert np.abs(b).max() > 0.9 * bound


@pytest.fixture(scope="module")
def nets():
  keras.utils.set_random_seed(0)
  return (monodepth2.build_monodepth2_depth_net(SMALL, name="md"),
          monodepth2.build_monodepth2_pose_net(SMALL, name="mp"),
          segdepth.build_segdepth_net(SMALL, num_classes=5, name="sd"))


@pytest.mark.parametrize("which,marker,count", [
    (0, "_decoder_", 14),   # 10 decoder convs + 4 disparity heads
    (1, "mp_", None),       # pose decoder: squeeze, pose0, pose1, pose2 (encoder convs excluded)
    (2, "_seg_", 2),        # segmentation head
])
def test_decoder_weights_within_pytorch_bound(nets, which, marker, count):
  model = nets[which]
  convs = _decoder_convs(model, marker)
  if which == 1:
    convs = [l for l in convs if "_encoder_" not in l.name and l.trainable]
    assert [l.name for l in convs] == ["mp_squeeze", "mp_pose0", "mp_pose1", "mp_pose2"]
  else:
    assert len(convs) == count
  for layer in convs:
    bound = 1.0 / np.sqrt(_fan_in(layer))
    kernel, bias = layer.get_weights()
    assert np.abs(kernel).max() <= bound, layer.name
    assert np.abs(bias).max() <= bound, layer.name
    assert np.any(bias != 0.0), layer.name  # PyTorch's bias is random, not zero


def test_disparity_head_uses_pytorch_bound(nets):
  head = nets[0].get_layer("md_decoder_dispconv0_conv")
  kernel, _ = head.get_weights()
  assert kernel.shape == (3, 3, 16, 1)
  # 1/sqrt(3·3·16) = 1/12; glorot_uniform would allow up to 0.198 and almost surely exceed 1/12
  # on some of the 144 weights (P(all <= 1/12) = 0.42^144).
  assert np.abs(kernel).max() <= 1.0 / 12.0


def test_round_trip_keeps_initializers(nets):
  layer = nets[0].get_layer("md_decoder_upconv4_0_conv")
  config = layer.get_config()
  clone = keras.layers.Conv2D.from_config(config)
  assert clone.get_config()["kernel_initializer"]["config"]["scale"] == pytest.approx(1.0 / 3.0)
  bound = 1.0 / np.sqrt(3 * 3 * 512)
  assert clone.get_config()["bias_initializer"]["config"]["maxval"] == pytest.approx(bound)


@pytest.mark.parametrize("kwargs,fragment", [
    ({"kernel_size": 0, "in_channels": 3}, "kernel_size"),
    ({"kernel_size": 3, "in_channels": -1}, "-1"),
    ({"kernel_size": 3.0, "in_channels": 3}, "3.0"),
])
def test_bad_input(kwargs, fragment):
  with pytest.raises(InvalidInputError, match=fragment.replace(".", r"\.")):
    monodepth2.torch_conv_initializers(**kwargs)
