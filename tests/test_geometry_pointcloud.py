"""Tests of tfdepth.geometry.pointcloud: depth -> points, PLY write/read round trips."""

import numpy as np
import pytest

from tfdepth.errors import DataError, InvalidInputError
from tfdepth.geometry import pointcloud

# fx = 2, fy = 4, cx = 1, cy = 0.5 (exact in float32).
K = np.array([[2.0, 0.0, 1.0], [0.0, 4.0, 0.5], [0.0, 0.0, 1.0]], np.float32)


def _depth():
  depth = np.array([[[2.0], [0.0], [4.0]], [[1.0], [-1.0], [3.0]]], np.float32)  # (2, 3, 1)
  image = np.arange(18, dtype=np.float32).reshape(2, 3, 3) / 17.0
  return depth, image


def test_single_depth_map_hand_computed():
  depth, image = _depth()
  mask = np.array([[1, 1, 1], [1, 1, 0]], np.float32)
  points, colors = pointcloud.depth_to_point_cloud(depth, K, image=image, mask=mask)
  # Kept (row-major): (u=0, v=0, d=2), (u=2, v=0, d=4), (u=0, v=1, d=1); depth 0, depth -1 and the
  # masked pixel are dropped. x = d·(u - 1)/2, y = d·(v - 0.5)/4.
  np.testing.assert_array_equal(points, [[-1.0, -0.25, 2.0], [2.0, -0.5, 4.0],
                                         [-0.5, 0.125, 1.0]])
  np.testing.assert_array_equal(colors, image[[0, 0, 1], [0, 2, 0]])
  points, colors = pointcloud.depth_to_point_cloud(depth, K)
  assert points.shape == (4, 3) and colors is None


def test_batched_depth_returns_one_cloud_per_image_and_grey_is_repeated():
  depth, _ = _depth()
  batch = np.stack([depth, np.full_like(depth, 5.0)])
  grey = np.zeros((2, 2, 3, 1), np.float32)
  grey[1] = 0.5
  points, colors = pointcloud.depth_to_point_cloud(batch, np.stack([K, K]), image=grey)
  assert [p.shape for p in points] == [(4, 3), (6, 3)]
  np.testing.assert_array_equal(colors[1], np.full((6, 3), 0.5, np.float32))
  with pytest.raises(InvalidInputError, match=r"intrinsics must have shape \(2, 3, 3\).*\(3, 3\)"):
    pointcloud.depth_to_point_cloud(batch, K)
  with pytest.raises(InvalidInputError, match=r"depth must have shape.*\(2, 3\)"):
    pointcloud.depth_to_point_cloud(depth[..., 0], K)


@pytest.mark.parametrize("binary", [False, True])
def test_ply_round_trip_is_exact(tmp_path, binary):
  rng = np.random.default_rng(0)
  points = rng.normal(0, 30, (50, 3)).astype(np.float32)
  colors = rng.integers(0, 256, (50, 3)).astype(np.uint8)
  path = str(tmp_path / "cloud.ply")
  pointcloud.write_ply(path, points, colors, binary=binary)
  p2, c2 = pointcloud.read_ply(path)
  np.testing.assert_array_equal(p2, points)  # float32 bit exact ("%.9g" in ASCII)
  np.testing.assert_array_equal(c2, colors)
  with open(path, "rb") as f:
    head = f.read(40)
  assert head.startswith(b"ply\nformat " +
                         (b"binary_little_endian 1.0" if binary else b"ascii 1.0"))
  pointcloud.write_ply(path, points[:3], binary=binary)
  p3, c3 = pointcloud.read_ply(path)
  np.testing.assert_array_equal(p3, points[:3])
  assert c3 is None


def test_float_colors_are_scaled_to_8_bits(tmp_path):
  path = str(tmp_path / "c.ply")
  # [0, 1] -> round(c·255), clipped: 0.5 -> 127.5 -> 128 (round half to even), 2 -> 255, -1 -> 0.
  pointcloud.write_ply(path, np.zeros((2, 3)), np.array([[0.0, 0.5, 1.0], [2.0, -1.0, 0.2]]))
  _, colors = pointcloud.read_ply(path)
  np.testing.assert_array_equal(colors, [[0, 128, 255], [255, 0, 51]])


def test_read_ply_errors(tmp_path):
  with pytest.raises(DataError, match="does not exist"):
    pointcloud.read_ply(str(tmp_path / "missing.ply"))
  bad = tmp_path / "bad.ply"
  bad.write_bytes(b"hello\n")
  with pytest.raises(DataError, match="not a PLY file"):
    pointcloud.read_ply(str(bad))
  path = str(tmp_path / "t.ply")
  pointcloud.write_ply(path, np.ones((4, 3), np.float32), binary=True)
  with open(path, "rb") as f:
    data = f.read()
  with open(path, "wb") as f:
    f.write(data[:-5])
  with pytest.raises(DataError, match="truncated"):
    pointcloud.read_ply(path)
  bad.write_bytes(b"ply\nformat binary_big_endian 1.0\nelement vertex 0\nproperty float x\n"
                  b"end_header\n")
  with pytest.raises(DataError, match="binary_big_endian"):
    pointcloud.read_ply(str(bad))
  with pytest.raises(InvalidInputError, match=r"points must have shape \(N, 3\).*\(4,\)"):
    pointcloud.write_ply(path, np.ones(4))
