"""KITTI raw calibration files (`calib_cam_to_cam.txt`, `calib_velo_to_cam.txt`).

Format (KITTI raw devkit, `readme.txt`): one `key: values` per line, values space-separated
floats; `calib_time` holds a date with a colon (`calib_time: 09-Jan-2012 13:57:47`), so a line is
split on its first colon only and non-numeric values are skipped (as Monodepth2's
`kitti_utils.read_calib_file` does).

Matrices (Geiger et al., "Vision meets Robotics: The KITTI Dataset", IJRR 2013, eq. 7):
- `P_rect_0i` (3×4): projection of rectified camera i, pixels of the rectified image whose size
  is `S_rect_0i` = (width, height).
- `R_rect_00` (3×3): rectifying rotation of camera 0 (used for every camera).
- `R`, `T` of `calib_velo_to_cam.txt`: Velodyne → unrectified camera 0, metres.
A point X_velo (homogeneous) lands in image i at P_rect_0i · R_rect_00(4×4) · [R|T](4×4) · X_velo.
"""

import dataclasses
from typing import Dict

import numpy as np
import tensorflow as tf

from tfds_builders.common import errors

CAM_TO_CAM_FILENAME = "calib_cam_to_cam.txt"
VELO_TO_CAM_FILENAME = "calib_velo_to_cam.txt"
# The KITTI devkit is MATLAB code and indexes pixels from 1; the standard evaluation turns a
# projected coordinate into a 0-based index with round(u) - 1 (KITTI devkit / Monodepth2
# `kitti_utils.generate_depth_map`, "use minus 1 to get the exact same value as KITTI matlab
# code"). Stored intrinsics subtract this origin from cx, cy so that they agree with the stored
# ground-truth pixels under tfdepth's 0-based pixel-centre convention (docs/DESIGN.md).
KITTI_PIXEL_ORIGIN = 1.0
# Expected number of values per key.
_SIZES = {"R": 9, "T": 3, "R_rect_00": 9, "P_rect": 12, "S_rect": 2}


def read_calib_file(path) -> Dict[str, np.ndarray]:
  """Parses a KITTI calibration text file into `{key: float64 array}` (non-numeric keys skipped).

  Raises:
    MissingFileError: the file does not exist.
    CorruptFileError: a line has no colon, or the file has no numeric entry.
  """
  path = str(path)
  if not tf.io.gfile.exists(path):
    raise errors.MissingFileError(
        f"KITTI calibration file not found: {path!r}. Extract the raw-data calibration archive "
        "of this date (e.g. 2011_09_26_calib.zip) next to its drives.")
  with tf.io.gfile.GFile(path, "r") as f:
    text = f.read()
  data = {}
  for number, line in enumerate(text.splitlines(), start=1):
    if not line.strip():
      continue
    if ":" not in line:
      raise errors.CorruptFileError(
          f"{path}: line {number} {line!r} has no 'key: values' colon; expected the KITTI "
          "calibration format.")
    key, value = line.split(":", 1)
    try:
      data[key.strip()] = np.array([float(v) for v in value.split()], dtype=np.float64)
    except ValueError:
      pass  # calib_time and other non-numeric entries.
  if not data:
    raise errors.CorruptFileError(f"{path}: no numeric calibration entry found.")
  return data


def _get(data, key, size, path):
  if key not in data:
    raise errors.CorruptFileError(
        f"{path}: key {key!r} is missing (keys present: {sorted(data)}); expected the KITTI raw "
        "calibration format.")
  value = data[key]
  if value.size != size:
    raise errors.CorruptFileError(
        f"{path}: key {key!r} has {value.size} values, expected {size}.")
  return value


@dataclasses.dataclass(frozen=True)
class KittiCalibration:
  """Calibration of one KITTI raw recording date.

  Attributes:
    cam_to_cam: parsed `calib_cam_to_cam.txt`.
    velo_to_cam: parsed `calib_velo_to_cam.txt`.
    source: directory the files came from (for error messages).
  """
  cam_to_cam: Dict[str, np.ndarray]
  velo_to_cam: Dict[str, np.ndarray]
  source: str = "<memory>"

  @classmethod
  def from_dir(cls, date_dir) -> "KittiCalibration":
    """Loads both files from a date directory such as `<raw>/2011_09_26/`."""
    date_dir = str(date_dir)
    return cls(read_calib_file(tf.io.gfile.join(date_dir, CAM_TO_CAM_FILENAME)),
               read_calib_file(tf.io.gfile.join(date_dir, VELO_TO_CAM_FILENAME)), date_dir)

  def _cam_path(self):
    return f"{self.source}/{CAM_TO_CAM_FILENAME}"

  def velo_to_cam_matrix(self) -> np.ndarray:
    """`[R|T]` Velodyne → camera 0 (unrectified), `(4, 4)` float64, metres."""
    path = f"{self.source}/{VELO_TO_CAM_FILENAME}"
    matrix = np.eye(4)
    matrix[:3, :3] = _get(self.velo_to_cam, "R", _SIZES["R"], path).reshape(3, 3)
    matrix[:3, 3] = _get(self.velo_to_cam, "T", _SIZES["T"], path)
    return matrix

  def rect_matrix(self) -> np.ndarray:
    """`R_rect_00` padded to `(4, 4)` float64."""
    matrix = np.eye(4)
    matrix[:3, :3] = _get(self.cam_to_cam, "R_rect_00", _SIZES["R_rect_00"],
                          self._cam_path()).reshape(3, 3)
    return matrix

  def projection(self, cam: int) -> np.ndarray:
    """`P_rect_0{cam}`, `(3, 4)` float64, rectified pixels (KITTI's 1-based origin)."""
    return _get(self.cam_to_cam, f"P_rect_0{cam}", _SIZES["P_rect"],
                self._cam_path()).reshape(3, 4)

  def image_size(self, cam: int):
    """`(height, width)` of rectified camera `cam` from `S_rect_0{cam}` (stored width, height)."""
    width, height = _get(self.cam_to_cam, f"S_rect_0{cam}", _SIZES["S_rect"], self._cam_path())
    return int(round(height)), int(round(width))

  def velo_to_image(self, cam: int) -> np.ndarray:
    """`P_rect_0{cam} · R_rect_00 · [R|T]`, `(3, 4)` float64: Velodyne → image `cam`."""
    return self.projection(cam) @ self.rect_matrix() @ self.velo_to_cam_matrix()

  def intrinsics(self, cam: int) -> np.ndarray:
    """`(3, 3)` float64 K of rectified camera `cam` in 0-based pixel-centre coordinates.

    fx, fy from `P_rect_0{cam}`; cx, cy minus `KITTI_PIXEL_ORIGIN` (see its comment).
    """
    k = self.projection(cam)[:, :3].copy()
    k[0, 2] -= KITTI_PIXEL_ORIGIN
    k[1, 2] -= KITTI_PIXEL_ORIGIN
    return k

  def stereo_baseline(self, left: int = 2, right: int = 3) -> float:
    """Distance in metres between rectified cameras `left` and `right`.

    P_rect_0i = K [I | t_i] with t_i,x = P_rect_0i[0, 3] / fx, so the baseline is
    (P_left[0, 3] − P_right[0, 3]) / fx (0.5327 m for 2011_09_26; Monodepth2 rounds it to 0.54).
    """
    p_left, p_right = self.projection(left), self.projection(right)
    return float((p_left[0, 3] - p_right[0, 3]) / p_left[0, 0])
