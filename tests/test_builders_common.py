"""Tests of `tfds_builders.common`: 16-bit PNG / JPEG readers, KITTI calibration, LiDAR projection
(hand-computed through real-format calibration files), safe archive extraction (local and
`ram://`), the manual-directory helper in every manual-download builder, their checksums files."""

import importlib
import io
import tarfile
import zipfile

from etils import epath
import numpy as np
import PIL.Image
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from tfds_builders.common import archives
from tfds_builders.common import errors
from tfds_builders.common import images
from tfds_builders.common import kitti_calib
from tfds_builders.common import lidar
from tfds_builders.common import manual

# --- Projection fixture: real-format calibration with simple numbers --------------------------
# Image 6×10 (S_rect_02 = "10 6"), R_rect_00 = I, P_rect_02 = [[10, 0, 5, 0], [0, 10, 3, 0],
# [0, 0, 1, 0]], Velodyne -> camera: x_cam = -y, y_cam = -z, z_cam = x - 0.25 (T = (0, 0, -0.25)).
# So u = 10·(-y)/(x - 0.25) + 5, v = 10·(-z)/(x - 0.25) + 3, camera z = x - 0.25.
CAM_TO_CAM = """calib_time: 09-Jan-2012 13:57:47
corner_dist: 9.950000e-02
S_rect_00: 1.000000e+01 6.000000e+00
R_rect_00: 1 0 0 0 1 0 0 0 1
P_rect_00: 1.0e+01 0 5.0e+00 0 0 1.0e+01 3.0e+00 0 0 0 1 0
S_rect_02: 1.000000e+01 6.000000e+00
P_rect_02: 1.0e+01 0 5.0e+00 0 0 1.0e+01 3.0e+00 0 0 0 1 0
S_rect_03: 1.000000e+01 6.000000e+00
P_rect_03: 1.0e+01 0 5.0e+00 -5.4e+00 0 1.0e+01 3.0e+00 0 0 0 1 0
"""
VELO_TO_CAM = """calib_time: 15-Mar-2012 11:37:16
R: 0 -1 0 0 0 -1 1 0 0
T: 0 0 -2.5e-01
delta_f: 0 0
delta_c: 0 0
"""
# (x, y, z, reflectance) and where each lands, computed by hand from the formulas above:
POINTS = np.array([
    # A: camera (1, -0.4, 4): u = 7.5 -> round half to even 8 -> col 7; v = 2 -> row 1. z = 4.
    [4.25, -1.0, 0.4, 0.3],
    # B: camera (-0.5, 0, 2): u = 2.5 exactly -> numpy rounds to 2 -> col 1 (MATLAB's round
    # would give 3 -> col 2); v = 3 -> row 2. z = 2.
    [2.25, 0.5, 0.0, 0.9],
    # C1 (far) before C2 (near), same pixel: C1 camera (2, 1, 10): u = 7, v = 4 -> (3, 6), z=10;
    # C2 camera (0.2, 0.1, 1): u = 7, v = 4 -> (3, 6), z = 1. The smallest depth (1) wins.
    [10.25, -2.0, -1.0, 0.1],
    [1.25, -0.2, -0.1, 0.1],
    # D: behind the LiDAR (x = -3 < 0). Camera (-0.65, -0.325, -3.25)
    # projects onto C's pixel (u = 7, v = 4) with depth -3.25: were it kept, it would win the
    # collision and the pixel would then be zeroed. The x >= 0 rule removes it first.
    [-3.0, 0.65, 0.325, 0.5],
    # E: camera (3, 0, 1): u = 35 -> outside the image.
    [1.25, -3.0, 0.0, 0.5],
    # F: camera (-0.46, 0, 1): u = 0.4 -> round 0 -> col -1 -> outside.
    [1.25, 0.46, 0.0, 0.5],
    # G: camera (0.54, 0.34, 1): u = 10.4 -> col 9 (last column), v = 6.4 -> row 5 (last row).
    [1.25, -0.54, -0.34, 0.5],
], dtype=np.float32)
EXPECTED_CAMERA_Z = {(1, 7): 4.0, (2, 1): 2.0, (3, 6): 1.0, (5, 9): 1.0}
EXPECTED_LIDAR_X = {(1, 7): 4.25, (2, 1): 2.25, (3, 6): 1.25, (5, 9): 1.25}


@pytest.fixture(name="calib_dir")
def _calib_dir(tmp_path):
  (tmp_path / "calib_cam_to_cam.txt").write_text(CAM_TO_CAM)
  (tmp_path / "calib_velo_to_cam.txt").write_text(VELO_TO_CAM)
  (tmp_path / "scan.bin").write_bytes(POINTS.tobytes())
  return tmp_path


def _expected_map(values):
  depth = np.zeros((6, 10), np.float32)
  for (row, col), value in values.items():
    depth[row, col] = value
  return depth


@pytest.mark.parametrize("mode,expected", [("camera_z", EXPECTED_CAMERA_Z),
                                           ("lidar_x", EXPECTED_LIDAR_X)])
def test_projection_matches_hand_computed_pixels(calib_dir, mode, expected):
  calib = kitti_calib.KittiCalibration.from_dir(calib_dir)
  points = lidar.read_velodyne_bin(calib_dir / "scan.bin")
  depth = lidar.project_to_depth(points, calib.velo_to_image(2), calib.image_size(2), mode)
  assert depth.dtype == np.float32 and depth.shape == (6, 10)
  # Exact: every expected value is a sum of float32-exact numbers (4.25 - 0.25, ...).
  np.testing.assert_array_equal(depth, _expected_map(expected))


def test_projection_collision_is_order_independent(calib_dir):
  calib = kitti_calib.KittiCalibration.from_dir(calib_dir)
  reversed_depth = lidar.project_to_depth(POINTS[::-1], calib.velo_to_image(2), (6, 10))
  np.testing.assert_array_equal(reversed_depth, _expected_map(EXPECTED_CAMERA_Z))


def test_projection_rejects_bad_mode_and_shapes():
  with pytest.raises(errors.InvalidInputError, match="'depth'"):
    lidar.project_to_depth(POINTS, np.zeros((3, 4)), (6, 10), depth_mode="depth")
  with pytest.raises(errors.InvalidInputError, match=r"\(4, 4\)"):
    lidar.project_to_depth(POINTS, np.zeros((4, 4)), (6, 10))


def test_calibration_values(calib_dir):
  calib = kitti_calib.KittiCalibration.from_dir(calib_dir)
  assert calib.image_size(2) == (6, 10)
  # Baseline (P2[0,3] - P3[0,3]) / fx = (0 + 5.4) / 10 = 0.54 m.
  assert calib.stereo_baseline() == pytest.approx(0.54, abs=1e-12)
  # Intrinsics in 0-based pixel centres: cx, cy of P_rect_02 minus 1.
  np.testing.assert_array_equal(calib.intrinsics(2), [[10, 0, 4], [0, 10, 2], [0, 0, 1]])
  np.testing.assert_array_equal(calib.velo_to_cam_matrix()[:3, 3], [0, 0, -0.25])
  # calib_time has a colon inside its value; it is skipped, not mis-split.
  assert "calib_time" not in calib.cam_to_cam


def test_calibration_errors_name_file_and_key(tmp_path):
  with pytest.raises(errors.MissingFileError, match="calib_cam_to_cam.txt"):
    kitti_calib.KittiCalibration.from_dir(tmp_path)
  (tmp_path / "calib_cam_to_cam.txt").write_text("S_rect_02: 10 6\nP_rect_02: 1 2 3\n")
  (tmp_path / "calib_velo_to_cam.txt").write_text(VELO_TO_CAM)
  calib = kitti_calib.KittiCalibration.from_dir(tmp_path)
  with pytest.raises(errors.CorruptFileError, match="'P_rect_02' has 3 values, expected 12"):
    calib.projection(2)
  with pytest.raises(errors.CorruptFileError, match="'R_rect_00' is missing"):
    calib.rect_matrix()
  (tmp_path / "bad.txt").write_text("no colon here\n")
  with pytest.raises(errors.CorruptFileError, match="bad.txt: line 1"):
    kitti_calib.read_calib_file(tmp_path / "bad.txt")


def test_velodyne_truncated_file_is_rejected(tmp_path):
  (tmp_path / "cut.bin").write_bytes(POINTS.tobytes()[:-3])
  with pytest.raises(errors.CorruptFileError, match="cut.bin has 125 bytes"):
    lidar.read_velodyne_bin(tmp_path / "cut.bin")
  with pytest.raises(errors.MissingFileError, match="none.bin"):
    lidar.read_velodyne_bin(tmp_path / "none.bin")


# --- Images ---------------------------------------------------------------------------------
def test_png16_keeps_all_bits_where_default_decode_keeps_high_byte(tmp_path):
  values = np.array([[[0], [255], [256], [20480]], [[65535], [1], [4660], [513]]], np.uint16)
  data = tf.io.encode_png(values).numpy()
  np.testing.assert_array_equal(images.decode_png16(data, "d.png"), values)
  # The pitfall the reader avoids: an 8-bit decode returns value >> 8 (4660 = 0x1234 -> 0x12).
  np.testing.assert_array_equal(tf.io.decode_png(data).numpy(), values >> 8)


def test_png16_flags_8bit_files_and_low_range(tmp_path):
  eight_bit = tf.io.encode_png(np.full((2, 2, 1), 200, np.uint8)).numpy()
  with pytest.raises(errors.CorruptFileError, match="a8.png is a 8-bit PNG"):
    images.decode_png16(eight_bit, "a8.png")
  low = tf.io.encode_png(np.full((2, 2, 1), 255, np.uint16)).numpy()
  with pytest.raises(errors.CorruptFileError, match="maximum value is 255 <= 255"):
    images.decode_png16(low, "low.png")
  # Label maps legitimately stay below 256.
  assert images.decode_png16(low, "low.png", flag_low_range=False).max() == 255
  with pytest.raises(errors.CorruptFileError, match="not a PNG"):
    images.decode_png16(b"GIF89a" + bytes(30), "x.gif")
  with pytest.raises(errors.MissingFileError, match="nothing.png"):
    images.read_png16(tmp_path / "nothing.png")


def test_jpeg_decode_matches_pil_exactly():
  rng = np.random.default_rng(0)
  rgb = rng.integers(0, 256, (16, 24, 3), dtype=np.uint8)
  buffer = io.BytesIO()
  PIL.Image.fromarray(rgb).save(buffer, format="JPEG", quality=90)
  data = buffer.getvalue()
  reference = np.asarray(PIL.Image.open(io.BytesIO(data)).convert("RGB"))
  np.testing.assert_array_equal(images.decode_rgb(data, "x.jpg"), reference)


# --- Archives --------------------------------------------------------------------------------
def _zip(path, members):
  with zipfile.ZipFile(path, "w") as archive:
    for name, data in members.items():
      archive.writestr(name, data)


def test_safe_extract_extracts_regular_members(tmp_path):
  _zip(tmp_path / "ok.zip", {"a/b.txt": "hello", "c.txt": "x"})
  archives.safe_extract(tmp_path / "ok.zip", tmp_path / "out")
  assert (tmp_path / "out" / "a" / "b.txt").read_text() == "hello"


@pytest.mark.parametrize("name", ["../evil.txt", "/tmp/evil_abs.txt", "a/../../evil.txt"])
def test_safe_extract_refuses_zip_traversal(tmp_path, name):
  _zip(tmp_path / "bad.zip", {"fine.txt": "x", name: "evil"})
  with pytest.raises(errors.UnsafeArchiveError, match="would be written outside"):
    archives.safe_extract(tmp_path / "bad.zip", tmp_path / "out")
  assert not (tmp_path / "evil.txt").exists()
  assert not (tmp_path / "out" / "fine.txt").exists()  # Checked before anything is written.


def test_safe_extract_refuses_tar_links_and_traversal(tmp_path):
  with tarfile.open(tmp_path / "link.tar.gz", "w:gz") as archive:
    info = tarfile.TarInfo("innocent")
    info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
    archive.addfile(info)
  with pytest.raises(errors.UnsafeArchiveError, match="is a link"):
    archives.safe_extract(tmp_path / "link.tar.gz", tmp_path / "out")
  with tarfile.open(tmp_path / "up.tar", "w") as archive:
    info = tarfile.TarInfo("../up.txt")
    info.size = 1
    archive.addfile(info, io.BytesIO(b"x"))
  with pytest.raises(errors.UnsafeArchiveError, match="'../up.txt'"):
    archives.safe_extract(tmp_path / "up.tar", tmp_path / "out")
  assert not (tmp_path / "up.txt").exists()
  with pytest.raises(errors.InvalidInputError, match="not a supported archive"):
    (tmp_path / "x.rar").write_bytes(b"Rar!")
    archives.safe_extract(tmp_path / "x.rar", tmp_path / "out")


def _ram(path, data=None):
  """`ram://` path (TensorFlow's in-memory filesystem); writes `data` there if given."""
  tf.io.gfile.makedirs(path.rsplit("/", 1)[0])
  if data is not None:
    with tf.io.gfile.GFile(path, "wb") as f:
      f.write(data)
  return path


def _zip_bytes(members):
  buffer = io.BytesIO()
  with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
    for name, data in members.items():
      archive.writestr(name, data)
  return buffer.getvalue()


def _read(path):
  with tf.io.gfile.GFile(path, "rb") as f:
    return f.read()


def test_safe_extract_on_non_local_filesystems(tmp_path):
  members = {"drive/image_02/0001.png": b"\x89PNG" + bytes(range(256)) * 9, "drive/t.txt": b"hi"}
  archive = _ram("ram://archives_test/in/drive.zip", _zip_bytes(members))
  # ram:// -> ram://
  assert archives.safe_extract(archive, "ram://archives_test/out") == "ram://archives_test/out"
  for name, data in members.items():
    assert _read(f"ram://archives_test/out/{name}") == data
  # ram:// tar.gz -> local directory.
  buffer = io.BytesIO()
  with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
    info = tarfile.TarInfo("seq/00.png")
    info.size = 5
    tar.addfile(info, io.BytesIO(b"frame"))
  tar_path = _ram("ram://archives_test/in/seq.tar.gz", buffer.getvalue())
  archives.safe_extract(tar_path, tmp_path / "local")
  assert (tmp_path / "local" / "seq" / "00.png").read_bytes() == b"frame"
  # Traversal into a non-local target is refused before anything is written.
  evil = _ram("ram://archives_test/in/evil.zip",
              _zip_bytes({"fine.txt": b"x", "a/../../escape.txt": b"evil"}))
  with pytest.raises(errors.UnsafeArchiveError, match="'a/../../escape.txt' would be written"):
    archives.safe_extract(evil, "ram://archives_test/out2/target")
  assert not tf.io.gfile.exists("ram://archives_test/out2/escape.txt")
  assert not tf.io.gfile.exists("ram://archives_test/out2/target/fine.txt")
  with pytest.raises(errors.MissingFileError, match="ram://archives_test/in/absent.zip"):
    archives.safe_extract("ram://archives_test/in/absent.zip", "ram://archives_test/out3")


def _tar_bytes(compression, sizes, seed=0):
  """A ``.tar.<compression>`` of random members ``a0.bin ...`` of the given sizes."""
  buffer = io.BytesIO()
  rng = np.random.default_rng(seed)
  with tarfile.open(fileobj=buffer, mode=f"w:{compression}") as tar:
    for k, size in enumerate(sizes):
      payload = rng.integers(0, 256, size, np.uint8).tobytes()
      info = tarfile.TarInfo(f"a{k}.bin")
      info.size = len(payload)
      tar.addfile(info, io.BytesIO(payload))
  return buffer.getvalue()


def _flipped(data, at, count=64):
  """``data`` with ``count`` bytes from ``at`` inverted."""
  return data[:at] + bytes(b ^ 0xFF for b in data[at:at + count]) + data[at + count:]


@pytest.mark.parametrize("name, cut", [("cut.zip", 0.5), ("cut.tar.gz", 0.5), ("junk.zip", 0.0),
                                       ("cut.tar.bz2", 0.5), ("cut.tar.xz", 0.5),
                                       ("flipped.tar.gz", None), ("flipped.tar.bz2", None)])
def test_safe_extract_truncated_archive_is_corrupt(tmp_path, name, cut):
  if name.endswith(".zip"):
    data = _zip_bytes({"a.bin": bytes(range(256)) * 64})
  elif cut is None:
    # Bytes inverted in the middle of a multi-block stream: gzip detects it only by the CRC-32 at
    # the end of the stream (before, the damaged member was extracted silently); bz2 raises a
    # plain OSError("Invalid data stream") from its second 900 kB block (before, that OSError).
    data = _tar_bytes(name.rsplit(".", 1)[1], [1_000_000, 1_000_000])
    data = _flipped(data, len(data) * 2 // 3)
  else:
    data = _tar_bytes(name.rsplit(".", 1)[1], [16384])
  if cut is not None:
    data = data[:int(len(data) * cut)] if cut else b"<html>not an archive</html>"
  (tmp_path / name).write_bytes(data)
  with pytest.raises(errors.CorruptFileError) as info:
    archives.safe_extract(tmp_path / name, tmp_path / "out")
  message = str(info.value)
  assert message.startswith(f"{str(tmp_path / name)!r} ({len(data)} bytes) is not a readable "
                            f"{'zip' if name.endswith('.zip') else 'tar'} archive (")
  assert message.endswith("re-download it.")


def test_safe_extract_filesystem_errors_are_not_called_corrupt(tmp_path, monkeypatch):
  # An OSError with an errno (here EACCES while writing a member) is the filesystem's, not the
  # archive's: it propagates as it is.
  (tmp_path / "ok.tar.gz").write_bytes(_tar_bytes("gz", [64]))

  def denied(source, destination):
    raise PermissionError(13, "Permission denied", destination)

  monkeypatch.setattr(archives, "_write_member", denied)
  with pytest.raises(PermissionError, match="Permission denied"):
    archives.safe_extract(tmp_path / "ok.tar.gz", tmp_path / "out")


# --- Manual directory: MissingFileError with the builder's instructions -----------------------


def _download_manager(tmp_path, manual_dir):
  return tfds.download.DownloadManager(download_dir=tmp_path / "downloads", manual_dir=manual_dir,
                                       manual_dir_instructions="Get the files from X.")


def test_manual_dir_helper(tmp_path):
  (tmp_path / "empty").mkdir()
  (tmp_path / "full").mkdir()
  (tmp_path / "full" / "a.txt").write_text("a")
  for name, state in (("absent", "does not exist"), ("empty", "is empty")):
    manager = _download_manager(tmp_path, tmp_path / name)
    with pytest.raises(errors.MissingFileError) as info:
      manual.manual_dir(manager, "Get the files from X.")
    assert str(info.value) == (
        f"Manual directory {str(tmp_path / name)!r} {state}; this dataset needs files downloaded "
        "by hand (pass --manual_dir= to `tfds build`, or DownloadConfig(manual_dir=...)).\n"
        "Get the files from X.")
    assert manual.manual_dir(manager, "Get the files from X.", required=False) is None
  with pytest.raises(errors.MissingFileError, match=r"^Manual directory '<none>' is not set;"):
    manual.manual_dir(_download_manager(tmp_path, None), "Get the files from X.")
  assert manual.manual_dir(_download_manager(tmp_path, tmp_path / "full"),
                           "Get the files from X.") == tmp_path / "full"


BUILDERS_WITH_MANUAL_FILES = (
    ("tfds_builders.kitti_depth.kitti_depth_dataset_builder", "eigen"),
    ("tfds_builders.synthia_rand_cityscapes.synthia_rand_cityscapes_dataset_builder", "default"),
    ("tfds_builders.video_frames.video_frames_dataset_builder", "default"),
)


@pytest.mark.parametrize("module_name, config", BUILDERS_WITH_MANUAL_FILES)
@pytest.mark.parametrize("state", ["does not exist", "is empty"])
def test_builders_report_missing_manual_dir_with_instructions(tmp_path, module_name, config,
                                                              state):
  module = importlib.import_module(module_name)
  manual_dir = tmp_path / "manual"
  if state == "is empty":
    manual_dir.mkdir()
  builder = module.Builder(config=config, data_dir=str(tmp_path / "data"))
  with pytest.raises(errors.MissingFileError) as info:
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
        manual_dir=str(manual_dir)))
  message = str(info.value)
  assert message.startswith(f"Manual directory {str(manual_dir)!r} {state};")
  assert message.endswith(module.MANUAL_DOWNLOAD_INSTRUCTIONS)
  assert isinstance(info.value, FileNotFoundError)


@pytest.mark.parametrize("module_name, _", BUILDERS_WITH_MANUAL_FILES)
def test_manual_only_builders_have_an_empty_checksums_file(module_name, _):
  builder_class = importlib.import_module(module_name).Builder
  path = builder_class._checksums_path  # pylint: disable=protected-access
  assert path == epath.Path(importlib.import_module(module_name).__file__).parent / "checksums.tsv"
  assert path.exists()
  assert path.read_text().startswith("# ")  # Comment lines only: nothing is downloaded.
  assert tfds.core.download.checksums.load_url_infos(path) == {}
  assert builder_class.url_infos == {}
