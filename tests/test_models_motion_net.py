"""Tests of tfdepth.models.motion_net intrinsics layers under mixed precision (Li et al. 2021)."""

import keras
import numpy as np
import pytest

from tfdepth.models import motion_net
from tfdepth.models.motion_net import IntrinsicsFromRaw, PerVideoIntrinsics

H, W = 64, 192
RAW_FOCAL = np.array([[0.1037, 0.0913], [0.0021, -0.05]], np.float32)
RAW_OFFSET = np.array([[0.0123, -0.0077], [0.001, 0.002]], np.float32)
# Everything in float32 from float32 (or bfloat16, exact in float32) values: softplus / sigmoid and
# two products, a few float32 roundings (2^-24 each) -> 1e-6 relative is tight. The bfloat16
# rounding this guards against is 2^-9 relative on the raw value, ~2 px (2e-3) on fx ~ 1000 px.
K_RTOL = 1e-6


def _softplus(x):
  return np.logaddexp(0.0, x)


def _expected_k(raw_focal, raw_offset, height, width):
  """Float64 `intrinsics_from_raw` (fx, fy relative to W; cx, cy = sigmoid·size)."""
  frac = np.minimum(_softplus(raw_focal), motion_net.INTRINSICS_MAX_FOCAL_FRACTION)
  foci = (frac + motion_net.INTRINSICS_MIN_FOCAL_FRACTION) * width
  centre = 1.0 / (1.0 + np.exp(-raw_offset)) * np.array([width, height])
  k = np.zeros((len(raw_focal), 3, 3))
  k[:, 0, 0], k[:, 1, 1] = foci[:, 0], foci[:, 1]
  k[:, 0, 2], k[:, 1, 2], k[:, 2, 2] = centre[:, 0], centre[:, 1], 1.0
  return k


@pytest.fixture
def mixed_bfloat16():
  policy = keras.mixed_precision.dtype_policy()
  keras.mixed_precision.set_dtype_policy("mixed_bfloat16")
  yield
  keras.mixed_precision.set_dtype_policy(policy)


def _per_video_k():
  layer = PerVideoIntrinsics(2, H, W, name="pvi")
  layer.raw_focal.assign(RAW_FOCAL)
  layer.raw_offset.assign(RAW_OFFSET)
  return layer, layer(np.array([0, 1, 1])).numpy()


def test_per_video_intrinsics_float32_under_mixed_bfloat16(mixed_bfloat16):  # pylint: disable=redefined-outer-name,unused-argument
  layer, k = _per_video_k()
  assert layer.dtype_policy.name == "float32" and k.dtype == np.float32
  # raw 0.1037 x gain 50 = 5.185: fx = (softplus(5.185) + 0.01)·192 = 998.51 px (bfloat16 inside
  # `call` gave 996.75).
  gained = lambda raw: motion_net.PER_VIDEO_INTRINSICS_GAIN * raw.astype(np.float64)
  expected = _expected_k(gained(RAW_FOCAL), gained(RAW_OFFSET), H, W)[[0, 1, 1]]
  np.testing.assert_allclose(k, expected, rtol=K_RTOL, atol=0)
  np.testing.assert_allclose(k[0, 0, 0], 998.512, atol=1e-3)
  keras.mixed_precision.set_dtype_policy("float32")
  _, k32 = _per_video_k()
  np.testing.assert_array_equal(k, k32)


def test_per_video_intrinsics_config_round_trip(mixed_bfloat16):  # pylint: disable=redefined-outer-name,unused-argument
  layer = PerVideoIntrinsics(3, 32, 48, gain=7.5, name="pv")
  clone = PerVideoIntrinsics.from_config(layer.get_config())
  assert (clone.num_videos, clone.height, clone.width, clone.gain, clone.name) == (
      3, 32, 48, 7.5, "pv")
  assert clone.dtype_policy.name == "float32"
  # An explicit policy is still honoured.
  assert PerVideoIntrinsics(1, 8, 8, dtype="mixed_bfloat16").dtype_policy.name == "mixed_bfloat16"
  raw = IntrinsicsFromRaw.from_config(IntrinsicsFromRaw(16, 24, name="ir").get_config())
  assert (raw.height, raw.width, raw.dtype_policy.name) == (16, 24, "float32")


def test_motion_net_intrinsics_head_float32_under_mixed_bfloat16(mixed_bfloat16):  # pylint: disable=redefined-outer-name,unused-argument
  """The head's 1x1 convs and `IntrinsicsFromRaw` compute in float32 on the bfloat16 bottleneck
  (cast up exactly), so K is the float32 function of that bottleneck."""
  keras.utils.set_random_seed(0)
  h, w = 32, 64
  net = motion_net.build_motion_net((h, w, 8), learn_intrinsics=True, base_channels=2, name="mn")
  for suffix in ("intrinsics_focal", "intrinsics_offset", "intrinsics"):
    assert net.get_layer(f"mn_{suffix}").dtype_policy.name == "float32"
  bottleneck_model = keras.Model(net.input, net.get_layer("mn_bottleneck").output)
  assert bottleneck_model.output.dtype == "bfloat16"
  focal_kernel, focal_bias = net.get_layer("mn_intrinsics_focal").get_weights()
  # Raw focal ~ 5 (fx ~ 5·W) so that a bfloat16 rounding of it would move fx by > 1 px.
  focal_bias = focal_bias + np.float32(5.0)
  net.get_layer("mn_intrinsics_focal").set_weights([focal_kernel, focal_bias])
  (offset_kernel,) = net.get_layer("mn_intrinsics_offset").get_weights()
  x = np.random.default_rng(1).uniform(size=(2, h, w, 8)).astype(np.float32)
  k = net(x)["intrinsics"].numpy()
  b = bottleneck_model(x).numpy().astype(np.float64)[:, 0, 0]
  raw_focal = b @ focal_kernel[0, 0].astype(np.float64) + focal_bias.astype(np.float64)
  raw_offset = b @ offset_kernel[0, 0].astype(np.float64)
  assert k.dtype == np.float32
  np.testing.assert_allclose(k, _expected_k(raw_focal, raw_offset, h, w), rtol=K_RTOL, atol=0)
