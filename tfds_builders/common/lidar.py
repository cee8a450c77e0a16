"""Velodyne scans and their projection to sparse depth maps (the standard KITTI evaluation).

`project_to_depth` reproduces Monodepth2's `kitti_utils.generate_depth_map` (Godard et al., ICCV
2019), itself a port of the KITTI devkit's MATLAB code, exactly:
1. homogeneous points [x, y, z, 1] (the scan's reflectance column is replaced by 1);
2. keep points with LiDAR forward coordinate x >= 0 (`MIN_FORWARD_M`);
3. p = P_rect_0i · R_rect_00 · [R|T] · X; u = p0/p2, v = p1/p2;
4. pixel index = round(u) − 1, round(v) − 1 with numpy's round (halves to even — MATLAB's round
   would round halves away from zero; the Python reference is the one published numbers used);
5. keep 0 <= col < W, 0 <= row < H with (H, W) from `S_rect_0i`;
6. where several points fall on one pixel the smallest depth wins; negative depths become 0.
The depth written is p2 (camera z after rectification, plus P_rect's small z translation) by
default, or the LiDAR forward coordinate x (`depth_mode="lidar_x"`), the legacy value stored in
the widely used `gt_depths.npz` (`export_gt_depth.py` calls `generate_depth_map(..., True)`).
"""

import numpy as np
import tensorflow as tf

from tfds_builders.common import errors

# Velodyne HDL-64E scans in KITTI: float32 records of (x, y, z, reflectance) (KITTI raw devkit).
VELODYNE_FIELDS = 4
VELODYNE_RECORD_BYTES = VELODYNE_FIELDS * 4
# Points behind the LiDAR (x < 0) are removed before projection (Monodepth2 generate_depth_map).
MIN_FORWARD_M = 0.0
# Pixel origin of the MATLAB convention: index = round(coordinate) - 1 (see module docstring).
MATLAB_INDEX_OFFSET = 1.0
DEPTH_MODES = ("camera_z", "lidar_x")


def read_velodyne_bin(path) -> np.ndarray:
  """Reads a KITTI Velodyne `.bin` scan: `(N, 4)` float32 (x forward, y left, z up in metres,
  reflectance).

  Raises:
    MissingFileError: the file does not exist.
    CorruptFileError: its size is not a multiple of 16 bytes.
  """
  path = str(path)
  if not tf.io.gfile.exists(path):
    raise errors.MissingFileError(
        f"Velodyne scan not found: {path!r}. Extract the raw drive archive "
        "(<date>_drive_<NNNN>_sync.zip) including velodyne_points/.")
  with tf.io.gfile.GFile(path, "rb") as f:
    data = f.read()
  if len(data) % VELODYNE_RECORD_BYTES:
    raise errors.CorruptFileError(
        f"{path} has {len(data)} bytes, not a multiple of {VELODYNE_RECORD_BYTES} (float32 x, y, "
        "z, reflectance records): the file is truncated or not a KITTI scan. Re-extract it.")
  return np.frombuffer(data, dtype="<f4").reshape(-1, VELODYNE_FIELDS).copy()


def project_to_depth(points: np.ndarray, velo_to_image: np.ndarray, image_size,
                     depth_mode: str = "camera_z") -> np.ndarray:
  """Projects LiDAR points to a sparse depth map exactly as the standard KITTI evaluation.

  Args:
    points: `(N, 3+)` LiDAR points, metres (extra columns ignored).
    velo_to_image: `(3, 4)` P_rect_0i · R_rect_00 · [R|T] (`KittiCalibration.velo_to_image`).
    image_size: `(H, W)` from `S_rect_0i`.
    depth_mode: "camera_z" (default) or "lidar_x" (legacy `gt_depths.npz` value).

  Returns:
    `(H, W)` float32 depth in metres, 0 where no point landed.
  """
  if depth_mode not in DEPTH_MODES:
    raise errors.InvalidInputError(
        f"depth_mode must be one of {DEPTH_MODES}; got {depth_mode!r}.")
  points = np.asarray(points, dtype=np.float64)
  if points.ndim != 2 or points.shape[1] < 3:
    raise errors.InvalidInputError(
        f"points must have shape (N, 3+); got {points.shape}.")
  velo_to_image = np.asarray(velo_to_image, dtype=np.float64)
  if velo_to_image.shape != (3, 4):
    raise errors.InvalidInputError(
        f"velo_to_image must have shape (3, 4); got {velo_to_image.shape}.")
  height, width = (int(s) for s in image_size)
  points = points[points[:, 0] >= MIN_FORWARD_M]
  homogeneous = np.concatenate([points[:, :3], np.ones((len(points), 1))], axis=1)
  projected = homogeneous @ velo_to_image.T
  with np.errstate(divide="ignore", invalid="ignore"):
    u = projected[:, 0] / projected[:, 2]
    v = projected[:, 1] / projected[:, 2]
  depth_values = projected[:, 2] if depth_mode == "camera_z" else points[:, 0]
  col = np.round(u) - MATLAB_INDEX_OFFSET
  row = np.round(v) - MATLAB_INDEX_OFFSET
  with np.errstate(invalid="ignore"):
    keep = (col >= 0) & (row >= 0) & (col < width) & (row < height)
  col, row, depth_values = col[keep].astype(np.int64), row[keep].astype(np.int64), depth_values[keep]
  depth = np.full((height, width), np.inf)
  np.minimum.at(depth, (row, col), depth_values)  # collisions: the smallest depth wins.
  depth[np.isinf(depth)] = 0.0
  depth[depth < 0] = 0.0
  return depth.astype(np.float32)
