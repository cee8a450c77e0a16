"""Image, depth-map and calibration file I/O for the user-facing tools (numpy in / numpy out).

* `load_rgb`: any image Pillow reads -> `(H, W, 3)` uint8 RGB. Grayscale is repeated to 3
  channels, RGBA / LA are composited over black (alpha dropped, colours kept), palette images are
  expanded, 16-bit grayscale is scaled to 8 bits, and the EXIF orientation tag is applied
  (`PIL.ImageOps.exif_transpose`) so that the array is upright, as every viewer shows it.
* Depth maps: 16-bit PNG in **millimetres** (`DEPTH_PNG_SCALE_MM`; 0 = invalid, the convention of
  the NYU / TUM RGB-D / ScanNet depth PNGs) written with round-half-to-nearest so that a round trip
  is exact to within 0.5 mm for depths up to `MAX_PNG_DEPTH_M`; KITTI's depth PNGs use
  depth · 256 instead (`KITTI_DEPTH_PNG_SCALE`, Uhrig et al. 2017, devkit `depth_readme.txt`),
  pass `scale=` to read or write those. `.npy` files hold float32 metres.
* Intrinsics: `read_intrinsics` reads a plain 3×3 text matrix (used as is) or the `P_rect_02` line
  of a KITTI `calib_cam_to_cam.txt` (K = P[:, :3] with cx, cy moved from KITTI's 1-based pixel
  coordinates to tfdepth's 0-based pixel centres, as the `kitti_depth` TFDS builder stores K).

Depth arrays are `(H, W)` float32 metres, 0 = invalid (docs/DESIGN.md).
"""

import os
import re

import numpy as np

from tfdepth.errors import DataError, InvalidInputError

# 16-bit depth PNGs store round(depth_m · scale) as uint16, 0 = invalid.
DEPTH_PNG_SCALE_MM = 1000.0   # millimetres (NYU v2 toolbox, TUM RGB-D uses 5000, ScanNet 1000)
KITTI_DEPTH_PNG_SCALE = 256.0  # KITTI depth completion devkit: depth = png / 256
UINT16_MAX = 65535
# Largest depth a millimetre PNG can hold: 65535 mm.
MAX_PNG_DEPTH_M = UINT16_MAX / DEPTH_PNG_SCALE_MM
# 8-bit range used when reducing 16-bit grayscale images to uint8.
UINT8_MAX = 255
# KITTI raw calibration key of the rectified left colour camera (camera 2), used by the Eigen split
# (shared/docs/reference-conventions.md, "KITTI evaluation").
KITTI_CALIB_KEY = "P_rect_02"
# KITTI's calibration uses the devkit's (MATLAB) 1-based pixel coordinates: the standard evaluation
# turns a projection into a 0-based pixel index with round(u) - 1 (KITTI devkit; Monodepth2
# `kitti_utils.generate_depth_map`, "use minus 1 to get the exact same value as KITTI matlab
# code"). K read from a KITTI projection line therefore has this subtracted from cx and cy, to
# describe 0-based pixel centres (docs/DESIGN.md) — the same K as the `kitti_depth` builder's
# `intrinsics` feature (tfds_builders.common.kitti_calib.KITTI_PIXEL_ORIGIN).
KITTI_PIXEL_ORIGIN = 1.0
# Projection lines of KITTI calibration files: `P_rect_00`..`P_rect_03` (raw data
# calib_cam_to_cam.txt) and `P0`..`P3` (odometry / object benchmark calib files).
KITTI_PROJECTION_KEY = re.compile(r"^P(_rect_0)?[0-3]$")

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm",
                    ".gif")


def _check_file(path, what):
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise DataError(f"{what} file {path!r} does not exist or is not a regular file")
  return path


def _to_rgb(image):
  """PIL image of any mode -> uint8 (H, W, 3)."""
  mode = image.mode
  if mode in ("I;16", "I;16B", "I;16L", "I", "F"):
    # 16-bit / 32-bit grayscale: the 16-bit range (or [0, 1] for float images) maps to 8 bits;
    # 32-bit integer images beyond 16 bits are scaled by their maximum.
    arr = np.asarray(image).astype(np.float64)
    if mode == "F":
      top = 1.0
    elif mode == "I" and arr.max(initial=0) > UINT16_MAX:
      top = float(arr.max())
    else:
      top = float(UINT16_MAX)
    arr = np.clip(np.round(arr / top * UINT8_MAX), 0, UINT8_MAX).astype(np.uint8)
    return np.repeat(arr[..., np.newaxis], 3, axis=-1)
  if mode == "P":
    image = image.convert("RGBA")
    mode = "RGBA"
  if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
    # Composite over black: premultiplied colour (transparent pixels become black).
    rgba = np.asarray(image.convert("RGBA")).astype(np.float64)
    alpha = rgba[..., 3:4] / UINT8_MAX
    return np.round(rgba[..., :3] * alpha).astype(np.uint8)
  if mode != "RGB":
    image = image.convert("RGB")
  return np.asarray(image, dtype=np.uint8).copy()


def load_rgb(path):
  """Reads an image file as upright RGB.

  Args:
    path: image file (any format Pillow decodes: PNG, JPEG, BMP, TIFF, WebP, GIF (first frame)...).
  Returns:
    `(H, W, 3)` uint8 array, after applying the EXIF orientation tag.
  Raises:
    DataError: missing file, or a file Pillow cannot decode (the message names the file).
  """
  from PIL import Image, ImageOps, UnidentifiedImageError  # pylint: disable=g-import-not-at-top
  path = _check_file(path, "image")
  try:
    with Image.open(path) as image:
      image.load()
      image = ImageOps.exif_transpose(image)
      return _to_rgb(image)
  except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
    raise DataError(f"cannot decode image {path!r}: {e}") from e


def image_to_rgb(image):
  """A PIL image (e.g. one frame of an animated GIF) -> `(H, W, 3)` uint8 RGB (EXIF applied)."""
  from PIL import ImageOps  # pylint: disable=g-import-not-at-top
  return _to_rgb(ImageOps.exif_transpose(image))


def _check_scale(scale):
  if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not scale > 0:
    raise InvalidInputError(f"scale must be a positive number (PNG units per metre), got {scale!r}")


def _as_depth_2d(depth, name="depth"):
  d = np.asarray(depth)
  if d.ndim == 3 and d.shape[-1] == 1:
    d = d[..., 0]
  if d.ndim != 2 or d.size == 0:
    raise InvalidInputError(f"{name} must have shape (H, W) or (H, W, 1), received {d.shape}")
  if not np.issubdtype(d.dtype, np.floating) and not np.issubdtype(d.dtype, np.integer):
    raise InvalidInputError(f"{name} must be numeric (metres), received dtype {d.dtype}")
  return d.astype(np.float64)


def depth_to_uint16(depth, scale=DEPTH_PNG_SCALE_MM):
  """Depth (metres) -> uint16 `round(depth · scale)`; invalid (<= 0, NaN, inf) -> 0.

  Depths above `UINT16_MAX / scale` (65.535 m in millimetres) saturate at `UINT16_MAX`; positive
  depths below half a unit (0.5 mm) are stored as 1 so that they stay valid.

  Args:
    depth: `(H, W)` or `(H, W, 1)` metres.
    scale: PNG units per metre (`DEPTH_PNG_SCALE_MM` = 1000, or `KITTI_DEPTH_PNG_SCALE` = 256).
  Returns:
    `(H, W)` uint16.
  """
  _check_scale(scale)
  d = _as_depth_2d(depth)
  valid = np.isfinite(d) & (d > 0)
  units = np.zeros(d.shape, np.float64)
  units[valid] = np.round(d[valid] * scale)
  units[valid] = np.clip(units[valid], 1, UINT16_MAX)
  return units.astype(np.uint16)


def write_depth_png(path, depth, scale=DEPTH_PNG_SCALE_MM):
  """Writes depth (metres) as a single-channel 16-bit PNG of `round(depth · scale)` (0 = invalid).

  With the default millimetre scale the value read back by `read_depth_png` is within 0.5 mm of
  the input for depths in (0.5 mm, 65.535 m]; see `depth_to_uint16` for the saturation rules.

  Returns:
    `path`.
  """
  from PIL import Image  # pylint: disable=g-import-not-at-top
  units = depth_to_uint16(depth, scale)
  Image.fromarray(units).save(os.fspath(path), format="PNG")
  return path


def read_depth_png(path, scale=DEPTH_PNG_SCALE_MM):
  """Reads a 16-bit depth PNG -> `(H, W)` float32 metres (value / scale; 0 stays 0 = invalid).

  Raises:
    DataError: missing / undecodable file or a PNG that is not single-channel 16-bit.
  """
  from PIL import Image, UnidentifiedImageError  # pylint: disable=g-import-not-at-top
  _check_scale(scale)
  path = _check_file(path, "depth PNG")
  try:
    with Image.open(path) as image:
      mode = image.mode
      arr = np.asarray(image)
  except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
    raise DataError(f"cannot decode depth PNG {path!r}: {e}") from e
  if not mode.startswith("I") or arr.ndim != 2:
    raise DataError(f"depth PNG {path!r} must be single-channel 16-bit (PIL mode I;16 or I), "
                    f"received mode {mode!r} with shape {arr.shape}")
  return (arr.astype(np.float64) / scale).astype(np.float32)


def save_depth_npy(path, depth):
  """Writes depth as a float32 `.npy` of shape `(H, W)`, metres. Returns `path`."""
  np.save(os.fspath(path), _as_depth_2d(depth).astype(np.float32))
  return path


def load_depth(path, scale=DEPTH_PNG_SCALE_MM):
  """Reads a depth map from `.npy` (metres) or a 16-bit PNG (`value / scale` metres).

  Returns:
    `(H, W)` float32 metres; 0 and non-finite mean invalid.
  Raises:
    DataError: missing / unreadable file, unsupported extension, or a wrong array shape.
  """
  path = _check_file(path, "depth")
  ext = os.path.splitext(path)[1].lower()
  if ext == ".npy":
    try:
      arr = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
      raise DataError(f"cannot read depth .npy {path!r}: {e}") from e
    if arr.ndim == 3 and arr.shape[-1] == 1:
      arr = arr[..., 0]
    if arr.ndim != 2 or not (np.issubdtype(arr.dtype, np.floating) or
                             np.issubdtype(arr.dtype, np.integer)):
      raise DataError(f"depth .npy {path!r} must hold a numeric (H, W) array in metres, "
                      f"received shape {arr.shape} dtype {arr.dtype}")
    return arr.astype(np.float32)
  if ext == ".png":
    return read_depth_png(path, scale)
  raise DataError(f"depth file {path!r} has extension {ext!r}; expected .npy (metres) or a "
                  f"16-bit .png")


def _parse_numbers(text, path):
  try:
    return [float(v) for v in text.replace(",", " ").split()]
  except ValueError as e:
    raise DataError(f"calibration file {path!r}: non-numeric entry ({e})") from e


def _check_k(k, path):
  if not np.all(np.isfinite(k)) or k[0, 0] <= 0 or k[1, 1] <= 0 or \
      not np.allclose(k[2], [0.0, 0.0, 1.0]):
    raise DataError(f"calibration file {path!r} gives an invalid K {k.tolist()}; expected finite "
                    "values, fx > 0, fy > 0 and last row [0, 0, 1]")
  return k.astype(np.float32)


def read_intrinsics(path, key=KITTI_CALIB_KEY):
  """Reads the pinhole intrinsics K from a calibration file.

  Accepted formats:
    * 9 numbers (a 3×3 matrix, row-major; any whitespace / commas; `#` comments), pixels,
      0-based pixel centres: returned unchanged;
    * KITTI `calib_cam_to_cam.txt`: the line `P_rect_02: p00 ... p23` (12 numbers, the 3×4
      rectified projection matrix of camera 2), K = P[:, :3]; pass `key` for another camera;
      KITTI odometry's / object benchmark's `P2:` lines work with `key="P2"`. For these KITTI
      keys (`KITTI_PROJECTION_KEY`: `P_rect_00`..`P_rect_03`, `P0`..`P3`) cx and cy are reduced
      by `KITTI_PIXEL_ORIGIN` (1 px): KITTI's pixel coordinates are 1-based, tfdepth's pixel
      centres 0-based (e.g. 2011_09_26 P_rect_02 cx 609.5593 -> 608.5593), so K agrees with the
      `kitti_depth` builder's `intrinsics` and with the pixels of its projected LiDAR depth.
      Other labels of a 12-number line are taken as 0-based already (K = P[:, :3] unchanged).

  Args:
    path: text file.
    key: label of the projection line in KITTI-style files.
  Returns:
    `(3, 3)` float32 K in pixels of the calibrated image size, 0-based pixel centres.
  Raises:
    DataError: missing file, no recognisable matrix, or an invalid K.
  """
  path = _check_file(path, "calibration")
  with open(path, encoding="utf-8", errors="replace") as f:
    lines = [ln.split("#", 1)[0].strip() for ln in f]
  lines = [ln for ln in lines if ln]
  labelled = {}
  for ln in lines:
    if ":" in ln:
      name, _, rest = ln.partition(":")
      labelled[name.strip()] = rest
  if labelled:
    if key not in labelled:
      raise DataError(f"calibration file {path!r} has labelled lines {sorted(labelled)} but no "
                      f"{key!r} line")
    values = _parse_numbers(labelled[key], path)
    if len(values) != 12:
      raise DataError(f"calibration file {path!r}: {key} must have 12 numbers (3×4 projection "
                      f"matrix), received {len(values)}")
    k = np.asarray(values, np.float64).reshape(3, 4)[:, :3].copy()
    if KITTI_PROJECTION_KEY.match(key):
      k[0, 2] -= KITTI_PIXEL_ORIGIN
      k[1, 2] -= KITTI_PIXEL_ORIGIN
    return _check_k(k, path)
  values = _parse_numbers(" ".join(lines), path)
  if len(values) != 9:
    raise DataError(f"calibration file {path!r} must hold a 3×3 matrix (9 numbers) or a "
                    f"'{key}: ...' line, received {len(values)} numbers")
  return _check_k(np.asarray(values, np.float64).reshape(3, 3), path)


__all__ = [
    "DEPTH_PNG_SCALE_MM", "KITTI_DEPTH_PNG_SCALE", "MAX_PNG_DEPTH_M", "IMAGE_EXTENSIONS",
    "load_rgb", "image_to_rgb", "depth_to_uint16", "write_depth_png", "read_depth_png",
    "save_depth_npy", "load_depth", "read_intrinsics",
]
