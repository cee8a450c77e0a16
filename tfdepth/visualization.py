"""Colourising depth maps for humans: a perceptual colormap without a matplotlib dependency.

Depth is shown through its inverse (disparity, 1/m), as Monodepth2 does
(Godard et al., ICCV 2019, `test_simple.py`): the colormap is *magma* (van der Walt & Smith,
perceptually uniform, CC0), whose bright warm end (yellow/orange) is given to **near** points and
whose dark end (black/purple) to far points. Invalid pixels (depth 0, e.g. sky) are drawn black.
"""

import numpy as np

from tfdepth.errors import InvalidInputError

# Control points of matplotlib's `magma` colormap: entries 0, 16, 32, ..., 240 and 255 of the
# 256-entry table published by BIDS/colormap (`colormaps.py`, CC0), RGB in [0, 1]. Linear
# interpolation between these 17 points is within 0.01 of the full table everywhere.
MAGMA_CONTROL_POINTS = np.array([
    [0.001462, 0.000466, 0.013866],
    [0.039608, 0.031090, 0.133515],
    [0.113094, 0.065492, 0.276784],
    [0.211718, 0.061992, 0.418647],
    [0.316654, 0.071690, 0.485380],
    [0.414709, 0.110431, 0.504662],
    [0.512831, 0.148179, 0.507648],
    [0.613617, 0.181811, 0.498536],
    [0.716387, 0.214982, 0.475290],
    [0.816914, 0.255895, 0.436461],
    [0.904281, 0.319610, 0.388137],
    [0.960949, 0.418323, 0.359630],
    [0.986700, 0.535582, 0.382210],
    [0.996096, 0.653659, 0.446213],
    [0.996898, 0.769591, 0.534892],
    [0.992440, 0.884330, 0.640099],
    [0.987053, 0.991438, 0.749504],
], dtype=np.float64)
# Positions of the control points on [0, 1]: table index / 255.
MAGMA_CONTROL_POSITIONS = np.array(list(range(0, 256, 16)) + [255], dtype=np.float64) / 255.0

# Monodepth2 `test_simple.py` normalises disparity for display by its 95th percentile
# (`vmax = np.percentile(disp, 95)`), so a few very near pixels do not wash out the image.
DISPLAY_PERCENTILE = 95.0
# Colour of invalid pixels (ground truth 0 = no measurement), uint8 RGB.
INVALID_COLOR = (0, 0, 0)


def apply_colormap(values):
  """Maps values in [0, 1] to magma RGB colours.

  Args:
    values: array of any shape `S`, float; clipped to [0, 1]. 0 = dark (far), 1 = bright (near).
  Returns:
    uint8 array of shape `S + (3,)`, RGB in [0, 255].
  Raises:
    InvalidInputError: if `values` contains NaN.
  """
  values = np.asarray(values, dtype=np.float64)
  if np.isnan(values).any():
    raise InvalidInputError(
        f"apply_colormap expected finite values in [0, 1], received {int(np.isnan(values).sum())} "
        "NaN entries")
  v = np.clip(values, 0.0, 1.0)
  rgb = np.stack([np.interp(v, MAGMA_CONTROL_POSITIONS, MAGMA_CONTROL_POINTS[:, c])
                  for c in range(3)], axis=-1)
  return np.round(rgb * 255.0).astype(np.uint8)


def colorize_depth(depth, max_disparity=None, min_disparity=0.0):
  """Colourises a depth map (metres) through its disparity with the magma colormap.

  Near = warm/bright, far = dark; invalid pixels (depth <= 0 or non-finite) are `INVALID_COLOR`.

  Args:
    depth: `(H, W)` or `(H, W, 1)` array, metres, 0 = invalid.
    max_disparity: disparity (1/m) shown brightest. Default: the `DISPLAY_PERCENTILE`-th
      percentile of the valid disparities (Monodepth2). Pass the same value for several images to
      share one scale (e.g. prediction vs ground truth).
    min_disparity: disparity (1/m) shown darkest (default 0, i.e. infinitely far).
  Returns:
    `(H, W, 3)` uint8 RGB image.
  Raises:
    InvalidInputError: on a wrong rank or `max_disparity <= min_disparity`.
  """
  depth = np.asarray(depth, dtype=np.float64)
  if depth.ndim == 3 and depth.shape[-1] == 1:
    depth = depth[..., 0]
  if depth.ndim != 2:
    raise InvalidInputError(
        f"colorize_depth expected depth of shape (H, W) or (H, W, 1), received {depth.shape}")
  valid = np.isfinite(depth) & (depth > 0)
  disparity = np.zeros_like(depth)
  disparity[valid] = 1.0 / depth[valid]
  if max_disparity is None:
    max_disparity = (float(np.percentile(disparity[valid], DISPLAY_PERCENTILE))
                     if valid.any() else 1.0)
  if not max_disparity > min_disparity:
    raise InvalidInputError(
        f"colorize_depth expected max_disparity > min_disparity, received "
        f"max_disparity={max_disparity}, min_disparity={min_disparity}")
  rgb = apply_colormap((disparity - min_disparity) / (max_disparity - min_disparity))
  rgb[~valid] = INVALID_COLOR
  return rgb


def save_png(path, rgb):
  """Writes a `(H, W, 3)` uint8 RGB array as a PNG file (Pillow)."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  rgb = np.asarray(rgb)
  if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[-1] != 3:
    raise InvalidInputError(
        f"save_png expected a (H, W, 3) uint8 array, received shape {rgb.shape} dtype {rgb.dtype}")
  Image.fromarray(rgb).save(path)
  return path
