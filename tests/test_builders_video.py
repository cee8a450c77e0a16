"""Tests of the `video_frames` builder: ordering, static-frame removal, subsampling, intrinsics,
video/archive handling and errors."""

import zipfile

import numpy as np
import PIL.Image
import pytest
import tensorflow_datasets as tfds

from tfds_builders.common import errors
from tfds_builders.video_frames import video_frames_dataset_builder as vf
from tfds_builders.video_frames.dummy_data import make_dummy_data as fixture

DUMMY = vf.epath.Path(vf.__file__).parent / "dummy_data"
CITY = DUMMY / "city_walk"


def test_natural_order():
  assert [p.stem for p in vf.list_frames(CITY)] == list(fixture.CITY_NAMES)
  assert sorted(["f10", "f2", "f1"], key=vf.natural_key) == ["f1", "f2", "f10"]


def test_select_frames_hand_case():
  a, b = np.zeros((2, 2)), np.full((2, 2), 0.5)
  c = np.full((2, 2), 0.505)
  # b differs from a by 0.5 (kept), b again by 0 (dropped), c from b by 0.005 < 0.01 (dropped),
  # a from b by 0.5 (kept).
  assert vf.select_frames([a, b, b, c, a], 0.01) == [0, 1, 4]
  assert vf.select_frames([a, b, b], 0.0) == [0, 1, 2]  # Disabled.


def test_grey_thumbnail_is_luma_in_unit_range():
  image = np.zeros((96, 128, 3), np.uint8)
  image[..., 1] = 255  # Pure green: luma 0.587.
  thumb = vf.grey_thumbnail(image)
  assert thumb.shape == vf.STATIC_CHECK_SIZE
  np.testing.assert_allclose(thumb, 0.587, atol=1e-6)  # float32 resize of a constant.


def test_plan_sequence_static_and_stride():
  config = vf.VideoFramesConfig(name="t", static_threshold=0.02)
  items = vf.plan_sequence(CITY, config, None)
  # frame_3 (index 2) is dropped: kept indices 0, 1, 3, 4, 5 -> targets 1, 3, 4.
  assert [i.target_index for i in items] == [1, 3, 4]
  assert [vf.epath.Path(p).stem for p in items[0].paths] == ["frame_1", "frame_2", "frame_10"]
  assert items[0].intrinsics == (20.0, 0.0, 15.5, 0.0, 22.0, 11.5, 0.0, 0.0, 1.0)
  strided = vf.plan_sequence(CITY, vf.VideoFramesConfig(name="s", frame_stride=2), None)
  assert [i.target_index for i in strided] == [2]


def test_make_clip_values_and_intrinsics():
  items = vf.plan_sequence(CITY, vf.VideoFramesConfig(name="t"), None)
  key, example = vf.make_clip(items[0], image_size=(12, 16))
  assert key == "city_walk_frame_2"
  assert example["frames"].shape == (3, 12, 16, 3) and example["has_intrinsics"]
  # Halving: fx 10, fy 11, cx (15.5 + 0.5)/2 - 0.5 = 7.5, cy (11.5 + 0.5)/2 - 0.5 = 5.5.
  np.testing.assert_array_equal(example["intrinsics"], [[10, 0, 7.5], [0, 11, 5.5], [0, 0, 1]])
  # Native size: frames decoded exactly like PIL (INTEGER_ACCURATE JPEG decoding).
  _, native = vf.make_clip(items[0], None)
  reference = np.asarray(PIL.Image.open(CITY / "frame_1.jpg").convert("RGB"))
  np.testing.assert_array_equal(native["frames"][0], reference)
  parking = vf.plan_sequence(DUMMY / "parking", vf.VideoFramesConfig(name="t"), None)
  _, no_k = vf.make_clip(parking[0], None)
  assert not no_k["has_intrinsics"] and not no_k["intrinsics"].any()


def test_read_intrinsics_formats_and_errors(tmp_path):
  path = tmp_path / "k.txt"
  path.write_text("1 0 2\n0 3 4\n0 0 1\n")
  np.testing.assert_array_equal(vf.read_intrinsics(path), [[1, 0, 2], [0, 3, 4], [0, 0, 1]])
  path.write_text("fx=1 2 3")
  with pytest.raises(errors.CorruptFileError, match="expected 4 numbers"):
    vf.read_intrinsics(path)
  path.write_text("-5 5 1 1")
  with pytest.raises(errors.CorruptFileError, match="must be positive"):
    vf.read_intrinsics(path)


def test_video_files_are_refused_with_instructions(tmp_path):
  (tmp_path / "drive.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42")
  with pytest.raises(errors.InvalidInputError, match=r"(?s)drive.mp4.*ffmpeg -i"):
    vf.prepare_root(tmp_path, tmp_path / "extract")


def test_archives_are_extracted_safely(tmp_path):
  manual = tmp_path / "manual"
  manual.mkdir()
  with zipfile.ZipFile(manual / "seq.zip", "w") as archive:
    for name in ("a/1.png", "a/2.png", "a/3.png"):
      archive.write(DUMMY / "parking" / "00.png", name)
  root = vf.prepare_root(manual, tmp_path / "extract")
  assert [p.name for p in vf.find_sequences(root)] == ["a"]
  with zipfile.ZipFile(manual / "evil.zip", "w") as archive:
    archive.writestr("../../evil.png", "x")
  with pytest.raises(errors.UnsafeArchiveError):
    vf.prepare_root(manual, tmp_path / "extract2")


def test_empty_manual_dir_and_bad_validation_name(tmp_path):
  with pytest.raises(errors.MissingFileError, match="No sequence folder"):
    vf.find_sequences(tmp_path)
  builder = vf.Builder(data_dir=str(tmp_path / "data"), config=vf.VideoFramesConfig(
      name="bad", validation_sequences=("nope",)))
  with pytest.raises(errors.InvalidInputError, match=r"\['nope'\] are not sequence folders"):
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
        manual_dir=str(DUMMY), compute_stats=tfds.download.ComputeStatsMode.SKIP))
