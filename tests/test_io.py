"""Tests of tfdepth.io: image loading, 16-bit depth PNGs, .npy depth, calibration files."""

import os

import numpy as np
import pytest
from PIL import Image

from tfdepth import io as io_lib
from tfdepth.errors import DataError, InvalidInputError

# EXIF tag 0x0112 (Orientation); value 6 = "rotate 90° clockwise to display" (EXIF 2.3, Table 6).
EXIF_ORIENTATION_TAG = 0x0112
EXIF_ROTATE_90_CW = 6


def test_depth_png_mm_round_trip_within_half_mm(tmp_path):
  rng = np.random.default_rng(0)
  depth = rng.uniform(0.001, io_lib.MAX_PNG_DEPTH_M, size=(37, 53)).astype(np.float32)
  depth[0, 0] = 0.0          # invalid stays invalid
  depth[0, 1] = 1.2345       # 1234.5 mm -> rounds to 1234 or 1235 (half-even/half-up), both 0.5 mm
  depth[0, 2] = 65.535       # the largest storable value, exactly
  path = io_lib.write_depth_png(tmp_path / "d.png", depth)
  with Image.open(path) as im:
    assert im.mode.startswith("I")  # stored as a single-channel 16-bit PNG
    raw = np.asarray(im)
  assert raw[0, 2] == 65535 and raw[0, 0] == 0
  back = io_lib.read_depth_png(path)
  assert back.shape == depth.shape and back.dtype == np.float32
  # Rounding to the nearest millimetre: |error| <= 0.5 mm, plus float32 representation of the
  # input (ulp(65.5) = 7.6e-6 m) -> 0.5e-3 + 1e-5 m.
  assert np.max(np.abs(back - depth)) <= 0.5e-3 + 1e-5
  assert back[0, 0] == 0.0
  # Exact integers of millimetres come back exactly (value / 1000 in float64, then float32).
  assert back[0, 2] == np.float32(65.535)


def test_depth_png_invalid_and_saturation():
  d = np.array([[0.0, -1.0, np.nan, np.inf], [0.0002, 0.0006, 70.0, 2.0]])
  units = io_lib.depth_to_uint16(d)
  np.testing.assert_array_equal(units, [[0, 0, 0, 0], [1, 1, 65535, 2000]])
  kitti = io_lib.depth_to_uint16(np.array([[10.0]]), scale=io_lib.KITTI_DEPTH_PNG_SCALE)
  assert kitti[0, 0] == 2560  # KITTI devkit: depth · 256


def test_read_depth_png_rejects_rgb(tmp_path):
  Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "rgb.png")
  with pytest.raises(DataError, match="16-bit"):
    io_lib.read_depth_png(tmp_path / "rgb.png")
  with pytest.raises(DataError, match="does not exist"):
    io_lib.read_depth_png(tmp_path / "missing.png")


def test_npy_round_trip_exact(tmp_path):
  depth = np.random.default_rng(1).uniform(0, 80, (5, 7, 1)).astype(np.float32)
  io_lib.save_depth_npy(tmp_path / "d.npy", depth)
  back = io_lib.load_depth(tmp_path / "d.npy")
  np.testing.assert_array_equal(back, depth[..., 0])
  with pytest.raises(DataError, match="extension"):
    (tmp_path / "d.txt").write_text("1")
    io_lib.load_depth(tmp_path / "d.txt")


def test_load_rgb_modes(tmp_path):
  gray = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
  Image.fromarray(gray, mode="L").save(tmp_path / "g.png")
  rgb = io_lib.load_rgb(tmp_path / "g.png")
  assert rgb.shape == (3, 4, 3) and rgb.dtype == np.uint8
  np.testing.assert_array_equal(rgb, np.repeat(gray[..., None], 3, axis=-1))

  rgba = np.zeros((2, 2, 4), np.uint8)
  rgba[..., :3] = 200
  rgba[..., 3] = [[255, 0], [51, 255]]  # opaque, transparent, 20 % alpha, opaque
  Image.fromarray(rgba, mode="RGBA").save(tmp_path / "a.png")
  out = io_lib.load_rgb(tmp_path / "a.png")
  # Composited over black: 200 · alpha / 255 -> 200, 0, 40, 200.
  np.testing.assert_array_equal(out[..., 0], [[200, 0], [40, 200]])

  pal = Image.fromarray(np.array([[0, 1], [1, 0]], np.uint8), mode="P")
  pal.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
  pal.save(tmp_path / "p.png")
  out = io_lib.load_rgb(tmp_path / "p.png")
  np.testing.assert_array_equal(out[0, 0], [255, 0, 0])
  np.testing.assert_array_equal(out[0, 1], [0, 0, 255])

  deep = (np.array([[0, 65535]], np.uint16))
  Image.fromarray(deep).save(tmp_path / "d16.png")
  np.testing.assert_array_equal(io_lib.load_rgb(tmp_path / "d16.png")[..., 0], [[0, 255]])


def test_load_rgb_applies_exif_orientation(tmp_path):
  arr = np.zeros((2, 3, 3), np.uint8)  # 2 rows x 3 columns, stored unrotated
  arr[0, 0] = [255, 0, 0]              # red at the stored top-left
  image = Image.fromarray(arr)
  exif = image.getexif()
  exif[EXIF_ORIENTATION_TAG] = EXIF_ROTATE_90_CW
  image.save(tmp_path / "r.jpg", exif=exif.tobytes(), quality=100)
  image.save(tmp_path / "r.png", exif=exif.tobytes())
  out = io_lib.load_rgb(tmp_path / "r.png")
  # Displayed rotated 90° clockwise: 3 rows x 2 columns, the stored top-left goes to top-right.
  assert out.shape == (3, 2, 3)
  np.testing.assert_array_equal(out[0, 1], [255, 0, 0])
  assert io_lib.load_rgb(tmp_path / "r.jpg").shape == (3, 2, 3)


def test_load_rgb_errors_name_the_file(tmp_path):
  (tmp_path / "bad.png").write_bytes(b"not a png at all")
  with pytest.raises(DataError, match="bad.png"):
    io_lib.load_rgb(tmp_path / "bad.png")
  with pytest.raises(DataError, match="nothing.png"):
    io_lib.load_rgb(tmp_path / "nothing.png")


def test_read_intrinsics_matrix_and_kitti(tmp_path):
  (tmp_path / "k.txt").write_text("# K\n718.856 0 607.1928\n0 718.856 185.2157\n0 0 1\n")
  np.testing.assert_allclose(io_lib.read_intrinsics(tmp_path / "k.txt"),
                             [[718.856, 0, 607.1928], [0, 718.856, 185.2157], [0, 0, 1]],
                             rtol=0, atol=1e-4)  # float32 storage of 3-4 decimal inputs
  # The P_rect_02 line of KITTI raw 2011_09_26/calib_cam_to_cam.txt.
  (tmp_path / "calib_cam_to_cam.txt").write_text(
      "calib_time: 09-Jan-2012 13:57:47\n"
      "S_rect_02: 1.242000e+03 3.750000e+02\n"
      "P_rect_02: 7.215377e+02 0.000000e+00 6.095593e+02 4.485728e+01 0.000000e+00 "
      "7.215377e+02 1.728540e+02 2.163791e-01 0.000000e+00 0.000000e+00 1.000000e+00 "
      "2.745884e-03\n")
  k = io_lib.read_intrinsics(tmp_path / "calib_cam_to_cam.txt")
  # KITTI's 1-based pixel coordinates -> 0-based pixel centres: cx, cy of P_rect_02 minus 1.
  np.testing.assert_allclose(k, [[721.5377, 0, 608.5593], [0, 721.5377, 171.854], [0, 0, 1]],
                             rtol=0, atol=1e-4)
  with pytest.raises(DataError, match="P_rect_03"):
    io_lib.read_intrinsics(tmp_path / "calib_cam_to_cam.txt", key="P_rect_03")
  (tmp_path / "short.txt").write_text("1 2 3\n")
  with pytest.raises(DataError, match="9 numbers"):
    io_lib.read_intrinsics(tmp_path / "short.txt")
  (tmp_path / "neg.txt").write_text("-1 0 0 0 1 0 0 0 1")
  with pytest.raises(DataError, match="fx > 0"):
    io_lib.read_intrinsics(tmp_path / "neg.txt")


def test_read_intrinsics_kitti_keys_match_the_kitti_depth_builder(tmp_path):
  from tfds_builders.common import kitti_calib  # pylint: disable=g-import-not-at-top
  # Raw-data calibration (the kitti_depth dummy fixture: P_rect_02 cx 40, cy 12).
  date_dir = os.path.join(os.path.dirname(kitti_calib.__file__), os.pardir, "kitti_depth",
                          "dummy_data", "2011_09_26")
  calib = kitti_calib.KittiCalibration.from_dir(date_dir)
  for camera in (2, 3):
    k = io_lib.read_intrinsics(os.path.join(date_dir, "calib_cam_to_cam.txt"),
                               key=f"P_rect_0{camera}")
    np.testing.assert_array_equal(k, calib.intrinsics(camera).astype(np.float32))
    np.testing.assert_array_equal(k, [[46, 0, 39], [0, 46, 11], [0, 0, 1]])
  # Odometry / object-benchmark calib files (P0..P3, no underscore), same convention.
  p2 = ("7.215377e+02 0.000000e+00 6.095593e+02 4.485728e+01 0.000000e+00 7.215377e+02 "
        "1.728540e+02 2.163791e-01 0.000000e+00 0.000000e+00 1.000000e+00 2.745884e-03")
  (tmp_path / "000001.txt").write_text(f"P0: {p2}\nP2: {p2}\nTr_velo_to_cam: 1 0 0 0 0 1 0 0 "
                                       "0 0 1 0\n")
  np.testing.assert_allclose(io_lib.read_intrinsics(tmp_path / "000001.txt", key="P2"),
                             [[721.5377, 0, 608.5593], [0, 721.5377, 171.854], [0, 0, 1]],
                             rtol=0, atol=1e-4)  # float32 storage of 7-digit inputs
  # Any other label is taken as 0-based already: K = P[:, :3] unchanged.
  (tmp_path / "mine.txt").write_text("cam_front: 100 0 31.5 0 0 100 15.5 0 0 0 1 0\n")
  np.testing.assert_array_equal(io_lib.read_intrinsics(tmp_path / "mine.txt", key="cam_front"),
                                [[100, 0, 31.5], [0, 100, 15.5], [0, 0, 1]])


def test_bad_arguments():
  with pytest.raises(InvalidInputError, match="scale"):
    io_lib.depth_to_uint16(np.ones((2, 2)), scale=0)
  with pytest.raises(InvalidInputError, match=r"\(2, 2, 2\)"):
    io_lib.depth_to_uint16(np.ones((2, 2, 2)))
