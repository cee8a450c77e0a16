"""Tests of the `video_frames` builder: ordering, static-frame removal, subsampling, intrinsics,
video files (encoded with PyAV in the tests), archives and errors."""

import zipfile

import av
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


def _write_video(path, frames, codec="png", pix_fmt="rgb24"):
  """Encodes `frames` ((H, W, 3) uint8) with PyAV; codec "png" in .avi / .mov is lossless."""
  container_format = {".avi": "avi", ".mov": "mov", ".mp4": "mp4", ".mkv": "matroska"}
  with av.open(str(path), "w", format=container_format[path.suffix]) as container:
    stream = container.add_stream(codec, rate=10)
    stream.height, stream.width = frames[0].shape[:2]
    stream.pix_fmt = pix_fmt
    for frame in frames:
      for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
        container.mux(packet)
    for packet in stream.encode():
      container.mux(packet)
  return path


# Six 24×32 frames of the fixture texture, shifting 3 px right per frame.
VIDEO_FRAMES = [fixture.texture(3 * i, 0) for i in range(6)]


def test_decode_video_writes_every_frame_exactly(tmp_path):
  video = _write_video(tmp_path / "drive.avi", VIDEO_FRAMES)
  assert vf.decode_video(video, tmp_path / "out") == 6
  assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
      f"{i:06d}.png" for i in range(6)]
  for i, frame in enumerate(VIDEO_FRAMES):  # Lossless codec: the decoded RGB is the input.
    np.testing.assert_array_equal(np.asarray(PIL.Image.open(tmp_path / "out" / f"{i:06d}.png")),
                                  frame)
  # A lossy MPEG-4 .mp4 decodes to the same number of frames of the same size.
  mp4 = _write_video(tmp_path / "lossy.mp4", VIDEO_FRAMES, codec="mpeg4", pix_fmt="yuv420p")
  assert vf.decode_video(mp4, tmp_path / "mp4") == 6
  assert np.asarray(PIL.Image.open(tmp_path / "mp4" / "000005.png")).shape == (24, 32, 3)


def test_unreadable_video_is_corrupt_naming_the_file(tmp_path):
  (tmp_path / "drive.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42")  # A header, no movie.
  with pytest.raises(errors.CorruptFileError,
                     match=r"drive\.mp4: not a video file FFmpeg can open .*Re-encode"):
    vf.prepare_root(tmp_path, tmp_path / "extract")


def test_prepared_clips_from_a_video_file(tmp_path):
  manual = tmp_path / "manual"
  manual.mkdir()
  _write_video(manual / "drive.avi", VIDEO_FRAMES)
  (manual / "intrinsics.txt").write_text("20 22 15.5 11.5\n")
  builder = _prepare(manual, tmp_path / "data")
  clips = sorted(tfds.as_numpy(builder.as_dataset(split="train")),
                 key=lambda e: int(e["frame_index"]))
  # 6 frames -> targets 1..4; frame_id = the decoded file's stem.
  assert [(e["sequence"].decode(), e["frame_id"].decode(), int(e["frame_index"]))
          for e in clips] == [("drive", f"{i:06d}", i) for i in range(1, 5)]
  for example in clips:
    t = int(example["frame_index"])
    np.testing.assert_array_equal(example["frames"], np.stack(VIDEO_FRAMES[t - 1:t + 2]))
    assert example["has_intrinsics"]
    np.testing.assert_array_equal(example["intrinsics"],
                                  [[20, 0, 15.5], [0, 22, 11.5], [0, 0, 1]])


def test_video_sequences_own_intrinsics_markers_and_conflicts(tmp_path):
  manual = tmp_path / "manual"
  (manual / "drive").mkdir(parents=True)
  _write_video(manual / "drive.avi", VIDEO_FRAMES[:3])
  (manual / "drive" / "intrinsics.txt").write_text("1 0 2\n0 3 4\n0 0 1\n")
  root = vf.prepare_root(manual, tmp_path / "extract")
  assert root == tmp_path / "extract" / "video_frames"
  assert [p.name for p in vf.find_sequences(root)] == ["drive"]
  items = vf.plan_sequence(root / "drive", vf.VideoFramesConfig(name="t"), None)
  assert [i.intrinsics for i in items] == [(1.0, 0.0, 2.0, 0.0, 3.0, 4.0, 0.0, 0.0, 1.0)]
  # Decoded once: a second run keeps the frames (marker), and follows the K file's removal.
  (root / "drive" / "000000.png").write_bytes(b"kept")
  (manual / "drive" / "intrinsics.txt").unlink()
  vf.prepare_root(manual, tmp_path / "extract")
  assert (root / "drive" / "000000.png").read_bytes() == b"kept"
  assert not (root / "drive" / "intrinsics.txt").exists()
  # Two videos with one name, a video named like an archived sequence, a plain folder next to
  # a video: refused.
  _write_video(manual / "drive.mov", VIDEO_FRAMES[:3])
  with pytest.raises(errors.InvalidInputError, match=r"share the sequence name\(s\) \['drive'\]"):
    vf.prepare_root(manual, tmp_path / "extract2")
  (manual / "drive.mov").unlink()
  with zipfile.ZipFile(manual / "seq.zip", "w") as archive:
    archive.write(DUMMY / "parking" / "00.png", "drive/00.png")
  with pytest.raises(errors.InvalidInputError, match="an archive already gave a sequence"):
    vf.prepare_root(manual, tmp_path / "extract3")
  (manual / "seq.zip").unlink()
  (manual / "other").mkdir()
  with pytest.raises(errors.InvalidInputError, match=r"mixes archives / video files and sequence "
                                                     r"folders \(other/\)"):
    vf.prepare_root(manual, tmp_path / "extract4")


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


def _prepare(manual_dir, data_dir, config=None):
  builder = vf.Builder(data_dir=str(data_dir), config=config or "default")
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
      manual_dir=str(manual_dir), compute_stats=tfds.download.ComputeStatsMode.SKIP))
  return builder


def test_global_intrinsics_apply_to_archived_sequences(tmp_path):
  manual = tmp_path / "manual"
  manual.mkdir()
  with zipfile.ZipFile(manual / "walk.zip", "w") as archive:
    for i in range(4):
      archive.write(DUMMY / "parking" / f"{i:02d}.png", f"walk/{i:02d}.png")
  (manual / "intrinsics.txt").write_text("30 31 15.5 11.5\n")
  builder = _prepare(manual, tmp_path / "data")
  clips = sorted(tfds.as_numpy(builder.as_dataset(split="train")),
                 key=lambda e: int(e["frame_index"]))
  assert [int(e["frame_index"]) for e in clips] == [1, 2]  # 4 frames -> targets 1, 2.
  for example in clips:
    assert example["has_intrinsics"]
    np.testing.assert_array_equal(example["intrinsics"],
                                  [[30, 0, 15.5], [0, 31, 11.5], [0, 0, 1]])
  # The manual directory's file wins over one at the top of the archive.
  with zipfile.ZipFile(manual / "walk.zip", "a") as archive:
    archive.writestr("intrinsics.txt", "40 40 15.5 11.5\n")
  root = vf.prepare_root(manual, tmp_path / "extract")
  np.testing.assert_array_equal(vf.global_intrinsics(manual, root),
                                [[30, 0, 15.5], [0, 31, 11.5], [0, 0, 1]])
  (manual / "intrinsics.txt").unlink()
  np.testing.assert_array_equal(vf.global_intrinsics(manual, root),
                                [[40, 0, 15.5], [0, 40, 11.5], [0, 0, 1]])
  assert vf.global_intrinsics(DUMMY, DUMMY) is None
