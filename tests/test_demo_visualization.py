"""Tests of tfdepth.visualization (magma colormap of disparity, near = warm)."""

import numpy as np
import pytest
from PIL import Image

from tfdepth import visualization
from tfdepth.errors import InvalidInputError

# Entries 0, 128 and 255 of the 256-entry magma table (BIDS/colormap, CC0) times 255, rounded.
MAGMA_0 = (0, 0, 4)         # (0.001462, 0.000466, 0.013866)
MAGMA_128 = (183, 55, 121)  # (0.716387, 0.214982, 0.475290)
MAGMA_255 = (252, 253, 191)  # (0.987053, 0.991438, 0.749504)


def test_colormap_hits_the_magma_table_at_control_points():
  out = visualization.apply_colormap(np.array([0.0, 128 / 255, 1.0, -3.0, 7.0]))
  assert out.dtype == np.uint8 and out.shape == (5, 3)
  assert tuple(out[0]) == MAGMA_0 and tuple(out[1]) == MAGMA_128 and tuple(out[2]) == MAGMA_255
  assert tuple(out[3]) == MAGMA_0 and tuple(out[4]) == MAGMA_255   # clipped to [0, 1]
  # Halfway between control points 0 and 1 (index 8): the mean of entries 0 and 16.
  mid = visualization.apply_colormap(np.array([8 / 255]))[0]
  expected = np.round((visualization.MAGMA_CONTROL_POINTS[0]
                       + visualization.MAGMA_CONTROL_POINTS[1]) / 2 * 255)
  np.testing.assert_array_equal(mid, expected)


def test_colormap_luminance_increases_monotonically():
  rgb = visualization.apply_colormap(np.linspace(0, 1, 256)).astype(np.float64)
  luma = rgb @ np.array([0.2126, 0.7152, 0.0722])   # Rec. 709 luminance
  # Magma is perceptually uniform with increasing lightness; allow 1 uint8 step of rounding.
  assert np.all(np.diff(luma) > -1.0)
  assert luma[-1] - luma[0] > 200


def test_colorize_depth_near_is_warm_far_is_dark_invalid_is_black():
  depth = np.array([[1.0, 2.0, 4.0, 0.0]], np.float32)
  rgb = visualization.colorize_depth(depth, max_disparity=1.0)
  assert rgb.shape == (1, 4, 3)
  assert tuple(rgb[0, 0]) == MAGMA_255                  # disparity 1/m = max: brightest
  assert tuple(rgb[0, 3]) == visualization.INVALID_COLOR
  red = rgb[0, :3, 0].astype(int)
  assert red[0] > red[1] > red[2]                       # nearer = warmer
  # Default scale: the 95th percentile of valid disparities (Monodepth2).
  depth = np.linspace(1.0, 20.0, 100, dtype=np.float32).reshape(10, 10, 1)
  auto = visualization.colorize_depth(depth)
  manual = visualization.colorize_depth(depth, max_disparity=np.percentile(1.0 / depth, 95))
  np.testing.assert_array_equal(auto, manual)


def test_colorize_errors_and_png(tmp_path):
  with pytest.raises(InvalidInputError, match=r"received \(2, 2, 2\)"):
    visualization.colorize_depth(np.ones((2, 2, 2)))
  with pytest.raises(InvalidInputError, match="max_disparity > min_disparity"):
    visualization.colorize_depth(np.ones((2, 2)), max_disparity=0.1, min_disparity=0.5)
  with pytest.raises(InvalidInputError, match="NaN"):
    visualization.apply_colormap(np.array([np.nan]))
  rgb = visualization.colorize_depth(np.full((3, 5), 2.0))
  path = visualization.save_png(str(tmp_path / "d.png"), rgb)
  np.testing.assert_array_equal(np.asarray(Image.open(path)), rgb)
  with pytest.raises(InvalidInputError, match="uint8"):
    visualization.save_png(str(tmp_path / "e.png"), rgb.astype(np.float32))
