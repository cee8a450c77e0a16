"""Tests of the `kitti_depth` builder's parts: split files, the vendored SfMLearner lists, the
Zhou-split derivation, intrinsics rescaling, example values on the dummy raw tree, extracted and
zipped (and mixed) manual directories, the 652-frame check of `eigen_benchmark`, the default
config, and errors."""

import pathlib
import zipfile

import numpy as np
import pytest
import tensorflow_datasets as tfds
from etils import epath

from tfds_builders.common import errors
from tfds_builders.common import lidar
from tfds_builders.kitti_depth import kitti_depth_dataset_builder as kd
from tfds_builders.kitti_depth import kitti_splits

tfds.core.utils.gcs_utils._is_gcs_disabled = True  # pylint: disable=protected-access

DUMMY = epath.Path(kd.__file__).parent / "dummy_data"
DATE = "2011_09_26"
TEST_DRIVE = "2011_09_26_drive_0002_sync"
# Fixture calibration (dummy_data/make_dummy_data.py): fx = fy = 46, P_rect_02 cx = 40, cy = 12,
# P_rect x-translations 2.76 and -21.62 -> baseline (2.76 + 21.62) / 46 = 0.53 m.
FIXTURE_K = np.array([[46.0, 0.0, 39.0], [0.0, 46.0, 11.0], [0.0, 0.0, 1.0]])
FIXTURE_BASELINE = 0.53


def test_parse_split_line_formats():
  monodepth2 = kitti_splits.parse_split_line(f"{DATE}/{TEST_DRIVE} 69 r")
  sfmlearner = kitti_splits.parse_split_line(f"{DATE}/{TEST_DRIVE}/image_02/data/0000000069.png")
  static = kitti_splits.parse_split_line(f"{DATE} {TEST_DRIVE} 0000000069")
  assert monodepth2 == kitti_splits.Frame(DATE, TEST_DRIVE, 69, "r")
  assert monodepth2.camera == 3 and monodepth2.key == f"{TEST_DRIVE}_0000000069_r"
  assert sfmlearner == static == kitti_splits.Frame(DATE, TEST_DRIVE, 69, "l")


@pytest.mark.parametrize("line", [f"{DATE}/{TEST_DRIVE} 69 x", f"{DATE}/{TEST_DRIVE} sixty l",
                                  f"2011_09_28/{TEST_DRIVE} 1 l", "a b c d"])
def test_parse_split_line_rejects_bad_lines(line):
  with pytest.raises(errors.InvalidInputError, match="where.txt:7"):
    kitti_splits.parse_split_line(line, "where.txt:7")


def test_read_split_file_rejects_duplicates_and_missing(tmp_path):
  path = tmp_path / "dup.txt"
  path.write_text(f"# comment\n{DATE}/{TEST_DRIVE} 1 l\n\n{DATE}/{TEST_DRIVE} 1 l\n")
  with pytest.raises(errors.InvalidInputError, match="dup.txt:4: frame .* listed twice"):
    kitti_splits.read_split_file(path)
  with pytest.raises(errors.MissingFileError, match="absent.txt"):
    kitti_splits.read_split_file(tmp_path / "absent.txt")


def test_vendored_lists():
  frames = kitti_splits.eigen_test_frames()
  assert len(frames) == len(set(frames)) == kitti_splits.NUM_EIGEN_TEST_FRAMES
  scenes = kitti_splits.eigen_test_scenes()
  assert len(scenes) == kitti_splits.NUM_EIGEN_TEST_SCENES
  # Every Eigen test frame comes from a test scene, and every test scene has test frames.
  assert {f.drive[:-len("_sync")] for f in frames} == scenes
  assert all(f.side == "l" for f in frames)
  static = kitti_splits.static_frames()
  assert len(static) == 8044  # Lines of SfMLearner's static_frames.txt (all distinct).
  assert ("2011_09_26_drive_0113_sync", 30) in static


def test_derive_zhou_frames_hand_case():
  available = [
      (DATE, TEST_DRIVE, [0, 1, 2, 3]),  # Eigen test scene: excluded entirely.
      (DATE, "2011_09_26_drive_0113_sync", [28, 29, 30, 31, 32]),  # 30 is static.
      (DATE, "2011_09_26_drive_0001_sync", [0, 1, 2, 4, 5, 6]),  # Gap at 3.
  ]
  frames = kitti_splits.derive_zhou_frames(
      available, kitti_splits.eigen_test_scenes(), kitti_splits.static_frames())
  assert [(f.drive[-9:-5], f.index) for f in frames] == [
      ("0001", 1), ("0001", 5), ("0113", 29), ("0113", 31)]


def test_scale_intrinsics_closed_form():
  # 24x80 -> 192x640 (s = 8): fx' = 368, cx' = (39 + 0.5)·8 - 0.5 = 315.5, cy' = 11.5·8 - 0.5.
  scaled = kd.scale_intrinsics(FIXTURE_K, (24, 80), (192, 640))
  np.testing.assert_array_equal(scaled, [[368, 0, 315.5], [0, 368, 91.5], [0, 0, 1]])
  # Invariant: the centre of the image, ((W - 1)/2, (H - 1)/2), maps to the new centre.
  k = np.array([[10.0, 0, 39.5], [0, 10.0, 11.5], [0, 0, 1]])
  back = kd.scale_intrinsics(k, (24, 80), (7, 33))
  assert back[0, 2] == pytest.approx((33 - 1) / 2, abs=1e-12)
  assert back[1, 2] == pytest.approx((7 - 1) / 2, abs=1e-12)


def _eigen_frame(index):
  return kitti_splits.Frame(DATE, TEST_DRIVE, index, "l")


def test_eval_example_lidar_values():
  key, example = kd.make_eval_example(_eigen_frame(3), str(DUMMY), "lidar")
  assert key == f"{TEST_DRIVE}_0000000003_l"
  assert example["image"].shape == (24, 80, 3) and example["image"].dtype == np.uint8
  assert example["depth"].shape == (24, 80, 1) and example["depth"].dtype == np.float32
  np.testing.assert_array_equal(example["valid"], example["depth"] > 0)
  assert example["valid"].sum() > 10  # The fixture scan puts tens of points into the image.
  np.testing.assert_array_equal(example["intrinsics"], FIXTURE_K.astype(np.float32))
  # float32 storage of 0.53: tolerance = float32 resolution near 0.5.
  assert example["stereo_baseline"] == pytest.approx(FIXTURE_BASELINE, abs=6e-8)
  scan_path = DUMMY / DATE / TEST_DRIVE / "velodyne_points" / "data" / "0000000003.bin"
  # float64 reference vs float32 storage: relative 1e-7 (float32 epsilon 1.2e-7 / 2).
  np.testing.assert_allclose(example["depth"][..., 0], _expected_depth(scan_path), rtol=1e-7,
                             atol=0)


def _expected_depth(scan_path, camera=2):
  """Independent recomputation of the projected depth of a fixture scan for camera 2 or 3.

  The fixture's simple calibration: R_rect = I, P_rect_02 = [[46, 0, 40, 2.76], [0, 46, 12, 0],
  [0, 0, 1, 0.0025]], P_rect_03 = [[46, 0, 40, -21.62], [0, 46, 12, 0], [0, 0, 1, 0]],
  camera 0 = (-y, -z - 0.08, x - 0.27); camera z of each kept point, nearest wins.
  """
  tx, tz = (2.76, 0.0025) if camera == 2 else (-21.62, 0.0)
  scan = lidar.read_velodyne_bin(scan_path).astype(float)
  scan = scan[scan[:, 0] >= 0]
  cam = np.stack([-scan[:, 1], -scan[:, 2] - 0.08, scan[:, 0] - 0.27], axis=1)
  z = cam[:, 2] + tz
  u = (46 * cam[:, 0] + 40 * cam[:, 2] + tx) / z
  v = (46 * cam[:, 1] + 12 * cam[:, 2]) / z
  col, row = np.round(u) - 1, np.round(v) - 1
  inside = (col >= 0) & (col < 80) & (row >= 0) & (row < 24)
  expected = np.zeros((24, 80))
  for r, c, d in sorted(zip(row[inside], col[inside], z[inside]), key=lambda t: -t[2]):
    expected[int(r), int(c)] = d  # Nearest written last: the smallest depth wins.
  return expected


def test_eval_example_lidar_x_differs_by_the_offsets():
  _, camera_z = kd.make_eval_example(_eigen_frame(0), str(DUMMY), "lidar", "camera_z")
  _, lidar_x = kd.make_eval_example(_eigen_frame(0), str(DUMMY), "lidar", "lidar_x")
  valid = camera_z["valid"]
  np.testing.assert_array_equal(valid, lidar_x["valid"])
  # camera z = x - 0.27 (T_z) + 0.0025 (P_rect_02 z-translation) -> lidar x = z + 0.2675.
  np.testing.assert_allclose(lidar_x["depth"][valid] - camera_z["depth"][valid], 0.2675,
                             atol=4e-6)  # float32 rounding of depths up to 60 m: 60·2^-24·2.


def test_eval_example_annotated_values():
  _, example = kd.make_eval_example(_eigen_frame(3), str(DUMMY), "annotated")
  depth = example["depth"][..., 0]
  # make_dummy_data: rows 12.. of every third column hold int(linspace(5, 40, 80)[col]·256)/256.
  columns = np.arange(0, 80, 3)
  expected = np.floor(np.linspace(5.0, 40.0, 80)[columns] * 256) / 256
  np.testing.assert_array_equal(depth[12, columns], expected.astype(np.float32))
  assert (depth[:12] == 0).all() and (depth[:, 1::3] == 0).all()
  assert int(example["valid"].sum()) == 12 * len(columns)


def test_clip_example_values():
  frame = kitti_splits.Frame(DATE, "2011_09_26_drive_0113_sync", 30, "r")
  key, example = kd.make_clip_example(frame, str(DUMMY), None)
  assert key == "2011_09_26_drive_0113_sync_0000000030_r"
  assert example["frames"].shape == (3, 24, 80, 3)
  # Fixture image: red = (3u + 7·index) mod 256, green = (10v + 40·camera) mod 256.
  np.testing.assert_array_equal(example["frames"][:, 0, 0, 0], [7 * 29, 7 * 30, 7 * 31])
  assert example["frames"][1, 0, 0, 1] == 40 * 3  # Right camera (image_03) as the target.
  assert example["stereo_image"][0, 0, 1] == 40 * 2  # Its stereo partner is image_02.
  _, resized = kd.make_clip_example(frame, str(DUMMY), (12, 40))
  assert resized["frames"].shape == (3, 12, 40, 3)
  np.testing.assert_allclose(resized["intrinsics"],
                             kd.scale_intrinsics(FIXTURE_K, (24, 80), (12, 40)), atol=0)


def test_missing_frame_names_file_and_instructions():
  with pytest.raises(errors.MissingFileError) as info:
    kd.make_eval_example(_eigen_frame(69), str(DUMMY), "lidar")
  message = str(info.value)
  assert "0000000069.png" in message and "raw_data.php" in message
  with pytest.raises(errors.MissingFileError, match="annotated depth map"):
    kd.make_eval_example(_eigen_frame(0), str(DUMMY), "annotated")


def test_resolve_raw_roots(tmp_path):
  with pytest.raises(errors.MissingFileError, match="neither <date>/ folders nor .zip"):
    kd.resolve_raw_roots(tmp_path, tmp_path / "extract")
  assert kd.resolve_raw_roots(DUMMY, tmp_path / "extract") == (str(DUMMY),)
  manual = tmp_path / "manual"
  manual.mkdir()
  with zipfile.ZipFile(manual / "2011_09_26_calib.zip", "w") as archive:
    archive.writestr("2011_09_26/calib_velo_to_cam.txt", "R: 1\n")
  roots = kd.resolve_raw_roots(manual, tmp_path / "extract")
  assert roots == (str(manual), str(tmp_path / "extract" / "kitti_raw"))
  assert (epath.Path(roots[1]) / "2011_09_26" / "calib_velo_to_cam.txt").read_text() == "R: 1\n"
  # Extracted once: the marker file stops a second extraction.
  (epath.Path(roots[1]) / "2011_09_26" / "calib_velo_to_cam.txt").write_text("R: 2\n")
  kd.resolve_raw_roots(manual, tmp_path / "extract")
  assert (epath.Path(roots[1]) / "2011_09_26" / "calib_velo_to_cam.txt").read_text() == "R: 2\n"
  with zipfile.ZipFile(manual / "evil.zip", "w") as archive:
    archive.writestr("../../escape.txt", "x")
  with pytest.raises(errors.UnsafeArchiveError):
    kd.resolve_raw_roots(manual, tmp_path / "extract")


def _zip_tree(archive_path, top, relative_dirs):
  """Zips `top/<d>/...` for each d, with member names relative to `top` (as KITTI's zips)."""
  with zipfile.ZipFile(archive_path, "w") as archive:
    for folder in relative_dirs:
      for path in sorted(pathlib.Path(top, folder).rglob("*")):
        if path.is_file():
          archive.write(path, str(path.relative_to(pathlib.Path(top))))


def _mixed_manual_dir(tmp_path):
  """Extracted calibration folder `2011_09_26/` next to the zipped drives 0113 and 0022."""
  manual = tmp_path / "mixed"
  (manual / DATE).mkdir(parents=True)
  for name in ("calib_cam_to_cam.txt", "calib_velo_to_cam.txt"):
    (manual / DATE / name).write_bytes((DUMMY / DATE / name).read_bytes())
  for drive in (ZHOU_DRIVE, VAL_DRIVE):
    _zip_tree(manual / f"{drive}.zip", DUMMY, [f"{DATE}/{drive}"])
  return manual


def test_mixed_extracted_and_zipped_data_are_both_used(tmp_path):
  manual = _mixed_manual_dir(tmp_path)
  roots = kd.resolve_raw_roots(manual, tmp_path / "extract")
  assert roots == (str(manual), str(tmp_path / "extract" / "kitti_raw"))
  assert kd.list_drives(roots) == [(DATE, VAL_DRIVE, [5, 6, 7, 8]),
                                   (DATE, ZHOU_DRIVE, [28, 29, 30, 31, 32])]
  assert kd.date_dir(roots, DATE) == manual / DATE  # The calibration: extracted folder.
  assert kd.drive_dir(roots, DATE, ZHOU_DRIVE) == epath.Path(roots[1]) / DATE / ZHOU_DRIVE
  # Same example as from the all-extracted tree.
  frame = kitti_splits.Frame(DATE, ZHOU_DRIVE, 30, "l")
  _, mixed = kd.make_eval_example(frame, roots, "lidar")
  _, reference = kd.make_eval_example(frame, str(DUMMY), "lidar")
  for name in ("image", "depth", "intrinsics"):
    np.testing.assert_array_equal(mixed[name], reference[name])


def test_prepared_zhou_from_mixed_layout_keeps_every_drive(tmp_path):
  builder = _prepare("eigen_zhou", tmp_path / "data", _mixed_manual_dir(tmp_path))
  ids = {split: sorted((e["drive"].decode(), int(e["frame_id"]))
                       for e in tfds.as_numpy(builder.as_dataset(split=split)))
         for split in ("train", "validation")}
  # As on the extracted dummy tree (test_prepared_zhou_dataset_metadata).
  assert ids == {"train": [(ZHOU_DRIVE, 29), (ZHOU_DRIVE, 31)],
                 "validation": [(VAL_DRIVE, 6), (VAL_DRIVE, 7)]}


def test_list_drives_on_dummy_tree():
  drives = {drive: indices for _, drive, indices in kd.list_drives(str(DUMMY))}
  assert drives == {TEST_DRIVE: [0, 1, 2, 3], "2011_09_26_drive_0113_sync": [28, 29, 30, 31, 32],
                    "2011_09_26_drive_0022_sync": [5, 6, 7, 8]}


def test_prepared_zhou_dataset_metadata(tmp_path):
  builder = kd.Builder(config="eigen_zhou", data_dir=str(tmp_path))
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
      manual_dir=str(DUMMY), compute_stats=tfds.download.ComputeStatsMode.SKIP))
  train = list(tfds.as_numpy(builder.as_dataset(split="train")))
  assert sorted(int(e["frame_id"]) for e in train) == [29, 31]
  assert {e["drive"].decode() for e in train} == {"2011_09_26_drive_0113_sync"}
  example = train[0]
  assert example["frames"].shape == (3, 192, 640, 3)
  np.testing.assert_array_equal(example["intrinsics"],
                                [[368, 0, 315.5], [0, 368, 91.5], [0, 0, 1]])
  val = list(tfds.as_numpy(builder.as_dataset(split="validation")))
  assert sorted(int(e["frame_id"]) for e in val) == [6, 7]


# make_dummy_data.KNOWN_POINT (LiDAR x, y, z, stored as float32) starts every scan of drives 0113
# and 0022 and is the nearest point on its pixel. Camera z = x - 0.27 (+ 0.0025 for camera 2,
# P_rect_02's z translation); pixels: camera 2 row 12, col 41; camera 3 row 12, col 40.
KNOWN_X = float(np.float32(20.27))
KNOWN_Z_CAMERA_2 = np.float32(KNOWN_X - 0.27 + 0.0025)
KNOWN_Z_CAMERA_3 = np.float32(KNOWN_X - 0.27)
ZHOU_DRIVE = "2011_09_26_drive_0113_sync"
VAL_DRIVE = "2011_09_26_drive_0022_sync"


def _velodyne(drive, index):
  return DUMMY / DATE / drive / "velodyne_points" / "data" / f"{index:010d}.bin"


def test_eval_example_of_training_frames_both_cameras():
  key, left = kd.make_eval_example(kitti_splits.Frame(DATE, ZHOU_DRIVE, 30, "l"), str(DUMMY),
                                   "lidar")
  assert key == f"{ZHOU_DRIVE}_0000000030_l"
  assert left["depth"][12, 41, 0] == KNOWN_Z_CAMERA_2
  key, right = kd.make_eval_example(kitti_splits.Frame(DATE, ZHOU_DRIVE, 30, "r"), str(DUMMY),
                                    "lidar")
  assert key == f"{ZHOU_DRIVE}_0000000030_r"
  assert right["depth"][12, 40, 0] == KNOWN_Z_CAMERA_3
  assert right["image"][0, 0, 1] == 40 * 3  # Fixture green = 10v + 40·camera: image_03.
  # Camera 3's K: P_rect_03 has the same K as P_rect_02 in the fixture.
  np.testing.assert_array_equal(right["intrinsics"], FIXTURE_K.astype(np.float32))
  # Same tolerance argument as test_eval_example_lidar_values.
  np.testing.assert_allclose(right["depth"][..., 0], _expected_depth(_velodyne(ZHOU_DRIVE, 30), 3),
                             rtol=1e-7, atol=0)


def test_split_by_scan():
  frames = [kitti_splits.Frame(DATE, VAL_DRIVE, i, "l") for i in (8, 7, 6, 5)]
  present, missing = kd.split_by_scan(frames, str(DUMMY))
  assert [f.index for f in present] == [8, 6, 5] and [f.index for f in missing] == [7]
  assert kd.velodyne_path(frames[1], str(DUMMY)) == _velodyne(VAL_DRIVE, 7)


def _prepare(config, data_dir, manual_dir=DUMMY):
  builder = kd.Builder(config=config, data_dir=str(data_dir))
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
      manual_dir=str(manual_dir), compute_stats=tfds.download.ComputeStatsMode.SKIP))
  return builder


def test_prepared_zhou_depth_dataset_values(tmp_path):
  builder = _prepare("eigen_zhou_depth", tmp_path)
  assert builder.info.supervised_keys == ("image", "depth")
  # train / validation = the eigen_zhou targets (0113: 29, 31; 0022: 6, 7) minus 0022 frame 7,
  # which has no scan; test = the eigen test list of the manual dir (split_files/eigen/).
  examples = {split: sorted(tfds.as_numpy(builder.as_dataset(split=split)),
                            key=lambda e: int(e["frame_id"]))
              for split in ("train", "validation", "test")}
  ids = {split: [(e["drive"].decode(), int(e["frame_id"]), e["side"].decode()) for e in values]
         for split, values in examples.items()}
  assert ids == {"train": [(ZHOU_DRIVE, 29, "l"), (ZHOU_DRIVE, 31, "l")],
                 "validation": [(VAL_DRIVE, 6, "l")],
                 "test": [(TEST_DRIVE, 0, "l"), (TEST_DRIVE, 3, "l")]}
  for split in ("train", "validation"):
    for example in examples[split]:
      depth = example["depth"][..., 0]
      assert example["image"].shape == (24, 80, 3) and depth.shape == (24, 80)
      assert depth[12, 41] == KNOWN_Z_CAMERA_2  # The known point: its pixel and camera z.
      np.testing.assert_array_equal(example["valid"][..., 0], depth > 0)
      np.testing.assert_array_equal(example["intrinsics"], FIXTURE_K.astype(np.float32))
      assert example["stereo_baseline"] == pytest.approx(FIXTURE_BASELINE, abs=6e-8)
      # Same tolerance argument as test_eval_example_lidar_values.
      np.testing.assert_allclose(
          depth, _expected_depth(_velodyne(example["drive"].decode(), int(example["frame_id"]))),
          rtol=1e-7, atol=0)
  # The test split is exactly what the `eigen` config stores for those frames.
  for example in examples["test"]:
    _, reference = kd.make_eval_example(_eigen_frame(int(example["frame_id"])), str(DUMMY),
                                        "lidar")
    np.testing.assert_array_equal(example["depth"], reference["depth"])
    np.testing.assert_array_equal(example["image"], reference["image"])


def _manual_dir_with_lists(tmp_path, lists):
  manual = tmp_path / "manual"
  manual.mkdir()
  (manual / DATE).symlink_to(DUMMY / DATE, target_is_directory=True)
  for name, lines in lists.items():
    (manual / "split_files" / name).parent.mkdir(parents=True, exist_ok=True)
    (manual / "split_files" / name).write_text("".join(line + "\n" for line in lines))
  return manual


def test_zhou_depth_reads_eigen_zhou_lists_and_its_own_test_list(tmp_path):
  manual = _manual_dir_with_lists(tmp_path, {
      "eigen_zhou/train_files.txt": [f"{DATE}/{ZHOU_DRIVE} 29 l", f"{DATE}/{ZHOU_DRIVE} 30 r"],
      "eigen_zhou/val_files.txt": [f"{DATE}/{VAL_DRIVE} 7 l", f"{DATE}/{VAL_DRIVE} 5 r"],
      "eigen/test_files.txt": [f"{DATE}/{TEST_DRIVE} 0 l"],
      # Its own folder wins over split_files/eigen/.
      "eigen_zhou_depth/test_files.txt": [f"{DATE}/{TEST_DRIVE} 2 l", f"{DATE}/{TEST_DRIVE} 1 l"],
  })
  builder = _prepare("eigen_zhou_depth", tmp_path / "data", manual)
  ids = {split: sorted((int(e["frame_id"]), e["side"].decode())
                       for e in tfds.as_numpy(builder.as_dataset(split=split)))
         for split in ("train", "validation", "test")}
  # Validation frame 7 has no scan: skipped; the right-camera frames keep side "r".
  assert ids == {"train": [(29, "l"), (30, "r")], "validation": [(5, "r")],
                 "test": [(1, "l"), (2, "l")]}
  right = [e for e in tfds.as_numpy(builder.as_dataset(split="train")) if e["side"] == b"r"][0]
  assert right["depth"][12, 40, 0] == KNOWN_Z_CAMERA_3


def test_zhou_depth_raises_when_a_split_has_no_scan(tmp_path):
  manual = _manual_dir_with_lists(tmp_path, {
      "eigen_zhou_depth/train_files.txt": [f"{DATE}/{ZHOU_DRIVE} 29 l"],
      "eigen_zhou_depth/val_files.txt": [f"{DATE}/{VAL_DRIVE} 7 l"],
  })
  with pytest.raises(errors.MissingFileError,
                     match=r"None of the 1 validation frames has a Velodyne scan.*0000000007\.bin"):
    _prepare("eigen_zhou_depth", tmp_path / "data", manual)


def test_zhou_depth_missing_test_scan_raises_as_eigen(tmp_path):
  manual = _manual_dir_with_lists(tmp_path, {
      "eigen_zhou_depth/test_files.txt": [f"{DATE}/{VAL_DRIVE} 7 l"],
  })
  with pytest.raises(errors.MissingFileError, match=r"Velodyne scan not found.*0000000007\.bin"):
    _prepare("eigen_zhou_depth", tmp_path / "data", manual)


def test_eigen_benchmark_with_builtin_list_needs_the_652_maps(tmp_path):
  manual = _manual_dir_with_lists(tmp_path, {})  # The dummy tree without split_files/.
  with pytest.raises(errors.MissingFileError) as info:
    _prepare("eigen_benchmark", tmp_path / "data", manual)
  message = str(info.value)
  # The fixture has one annotated map (0002 frame 3, listed among the 50 Eigen frames of 0002).
  assert message.startswith(
      f"eigen_benchmark: 1 of the 697 Eigen test frames have an annotated depth map under "
      f"{str(manual)!r}; expected 652 ")
  assert "Drives without any annotated map (27 of 28): 2011_09_26_drive_0009_sync, " in message
  assert f"{TEST_DRIVE} (1 of 25)" in message and "data_depth_annotated.zip" in message
  assert "split_files/eigen_benchmark/test_files.txt" in message and "raw_data.php" in message


def _annotate(root, frames):
  """Empty files where the depth benchmark's train/ folder has the maps of `frames`."""
  for frame in frames:
    path = (root / "train" / frame.drive / "proj_depth" / "groundtruth" / "image_02"
            / f"{frame.index:010d}.png")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()


def test_benchmark_frames_count(tmp_path):
  frames = kitti_splits.eigen_test_frames()  # 25 per drive, 22 for 2011_09_26_drive_0048.
  drive_02, drive_09 = "2011_09_26_drive_0002_sync", "2011_09_26_drive_0009_sync"
  # 45 frames without a map: all 25 of drive 0009 and 20 of the 25 of drive 0002.
  first_02 = [f for f in frames if f.drive == drive_02][:5]
  kept = [f for f in frames if f.drive not in (drive_02, drive_09) or f in first_02]
  assert len(kept) == 652
  # The maps are split over two roots (manual dir, extracted zip).
  first, second = tmp_path / "manual", tmp_path / "extracted"
  first.mkdir()
  _annotate(first, kept[:400])
  _annotate(second, kept[400:])
  roots = (str(first), str(second))
  assert kd.benchmark_frames(frames, roots) == kept
  last = kept[-1]
  assert last.drive == "2011_10_03_drive_0047_sync"
  (second / "train" / last.drive / "proj_depth" / "groundtruth" / "image_02" /
   f"{last.index:010d}.png").unlink()
  with pytest.raises(errors.MissingFileError) as info:
    kd.benchmark_frames(frames, roots)
  assert str(info.value).startswith(
      f"eigen_benchmark: 651 of the 697 Eigen test frames have an annotated depth map under "
      f"{str(first)!r} or {str(second)!r}; expected 652 (all but the frames within 5 frames of a "
      f"drive's ends, which the depth benchmark does not annotate). Drives without any annotated "
      f"map (1 of 28): {drive_09}. Drives with maps for only some listed frames: "
      f"{drive_02} (5 of 25), 2011_10_03_drive_0047_sync (24 of 25). Put data_depth_annotated.zip")


def test_eigen_benchmark_user_list_is_used_exactly(tmp_path):
  # The dummy's own list (split_files/eigen_benchmark/) gives exactly its one frame.
  builder = _prepare("eigen_benchmark", tmp_path / "data")
  test = list(tfds.as_numpy(builder.as_dataset(split="test")))
  assert [(e["drive"].decode(), int(e["frame_id"])) for e in test] == [(TEST_DRIVE, 3)]
  # A listed frame without a map raises instead of being dropped.
  manual = _manual_dir_with_lists(tmp_path, {
      "eigen_benchmark/test_files.txt": [f"{DATE}/{TEST_DRIVE} 3 l", f"{DATE}/{TEST_DRIVE} 2 l"]})
  with pytest.raises(errors.MissingFileError,
                     match=r"annotated depth map not found: .*0000000002\.png"):
    _prepare("eigen_benchmark", tmp_path / "data2", manual)


def test_default_config_is_eigen(tmp_path):
  assert kd.Builder.DEFAULT_BUILDER_CONFIG_NAME == "eigen"
  assert kd.Builder(data_dir=str(tmp_path)).builder_config.name == "eigen"

  class Reordered(kd.Builder, skip_registration=True):  # eigen is no longer the first config.
    BUILDER_CONFIGS = kd.Builder.BUILDER_CONFIGS[::-1]

  assert Reordered.default_builder_config.name == "eigen"
  assert Reordered(data_dir=str(tmp_path)).builder_config.name == "eigen"
