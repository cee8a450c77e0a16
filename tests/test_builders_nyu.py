"""Tests of the `nyu_depth_v2_labeled` readers and builder: MATLAB v7.3 axes and strings,
MATLAB-5 1-based splits, the evaluation crop, manual-vs-download file resolution, errors."""

from unittest import mock

import h5py
import numpy as np
import pytest
import scipy.io
import tensorflow as tf
import tensorflow_datasets as tfds

from tfds_builders.common import errors
from tfds_builders.nyu_depth_v2_labeled import nyu_depth_v2_labeled_dataset_builder as nyu
from tfds_builders.nyu_depth_v2_labeled import nyu_mat
from tfds_builders.nyu_depth_v2_labeled.dummy_data import make_dummy_data as fixture

DUMMY = nyu.epath.Path(nyu.__file__).parent / "dummy_data"
MAT = DUMMY / "nyu_depth_v2_labeled.mat"
SPLITS = DUMMY / "splits.mat"


def test_fixture_has_the_v73_layout():
  raw = MAT.read_bytes()
  assert raw.startswith(b"MATLAB 7.3 MAT-file") and raw[126:128] == b"IM"
  assert raw[512:520] == b"\x89HDF\r\n\x1a\n"  # HDF5 superblock after the 512-byte user block.
  with h5py.File(MAT, "r") as f:
    assert f.userblock_size == nyu_mat.MAT73_USERBLOCK_BYTES
    assert f["images"].shape == (6, 3, 16, 12)  # MATLAB 12×16×3×6 reversed.


@pytest.mark.parametrize("index", [0, 4])
def test_frame_values_match_the_generating_formula(index):
  frame = nyu_mat.LabeledMat(MAT).frame(index)
  image, depth, raw, label = fixture.frame_arrays(index)
  np.testing.assert_array_equal(frame["image"], image)
  # Exact: depths are multiples of 1/32 m, exact in float32.
  np.testing.assert_array_equal(frame["depth"][..., 0], depth)
  np.testing.assert_array_equal(frame["raw_depth"][..., 0], raw)
  np.testing.assert_array_equal(frame["label"][..., 0], label)
  assert frame["image"].shape == (12, 16, 3) and frame["label"].dtype == np.uint16
  assert frame["scene"] == fixture.SCENES[index]
  assert frame["scene_type"] == fixture.SCENES[index].rsplit("_", 1)[0]
  # Spot values from the docstring formula: frame 4, pixel (r=2, c=3).
  if index == 4:
    assert frame["depth"][2, 3, 0] == 1 + 4 + 0.5 + 0.09375
    assert frame["label"][2, 3, 0] == 400 + 5 + 250
    np.testing.assert_array_equal(frame["image"][2, 3], [(14 + 9 + 160) % 256, 20, 19])


def test_read_splits_converts_to_zero_based():
  assert nyu_mat.read_splits(SPLITS, 6) == ([0, 2, 3], [1, 4, 5])


def test_read_splits_errors(tmp_path):
  def write(name, train, test):
    scipy.io.savemat(tmp_path / name, {"trainNdxs": np.array(train, float)[:, None],
                                       "testNdxs": np.array(test, float)[:, None]})
    return tmp_path / name
  with pytest.raises(errors.CorruptFileError, match=r"in \[1, 6\]; got range \[0, 3\]"):
    nyu_mat.read_splits(write("zero.mat", [0, 3], [2]), 6)
  with pytest.raises(errors.CorruptFileError, match="1 frames are in both"):
    nyu_mat.read_splits(write("overlap.mat", [1, 2], [2, 3]), 6)
  scipy.io.savemat(tmp_path / "keys.mat", {"train": np.ones((2, 1))})
  with pytest.raises(errors.CorruptFileError, match="no 'trainNdxs'"):
    nyu_mat.read_splits(tmp_path / "keys.mat", 6)
  # A v7.3 (HDF5) file given as splits.mat is reported, not mis-read.
  with pytest.raises(errors.CorruptFileError, match="MATLAB 5"):
    nyu_mat.read_splits(MAT, 6)


def test_labeled_mat_errors(tmp_path):
  with pytest.raises(errors.MissingFileError, match="absent.mat"):
    nyu_mat.LabeledMat(tmp_path / "absent.mat")
  with pytest.raises(errors.CorruptFileError, match="is not a MATLAB v7.3"):
    nyu_mat.LabeledMat(SPLITS)
  with h5py.File(tmp_path / "partial.mat", "w") as f:
    f.create_dataset("images", data=np.zeros((1, 3, 4, 2), np.uint8))
  with pytest.raises(errors.CorruptFileError, match="no 'depths' array"):
    nyu_mat.LabeledMat(tmp_path / "partial.mat")
  with pytest.raises(errors.InvalidInputError, match=r"outside \[0, 6\)"):
    nyu_mat.LabeledMat(MAT).frame(6)


MAT_BYTES = MAT.read_bytes()
SPLITS_BYTES = SPLITS.read_bytes()


def test_fixture_sizes():
  # The sizes the truncation messages below quote; the HDF5 superblock (version 3, 8-byte
  # addresses, at byte 512) stores the end-of-file address 11,993 = the file size.
  assert len(MAT_BYTES) == 11_993 and len(SPLITS_BYTES) == 312
  assert nyu_mat.find_hdf5_superblock(MAT.open("rb"), len(MAT_BYTES)) == (512, 11_993)


@pytest.mark.parametrize("size", [600, 5_996, 11_992])
def test_truncated_labeled_mat_is_corrupt_with_sizes(tmp_path, size):
  path = tmp_path / "nyu_depth_v2_labeled.mat"
  path.write_bytes(MAT_BYTES[:size])
  with pytest.raises(errors.CorruptFileError) as info:
    nyu_mat.LabeledMat(path)
  message = str(info.value)
  assert message.startswith(f"{path} ({size:,} bytes) is cut short: its HDF5 superblock records "
                            "11,993 bytes; expected nyu_depth_v2_labeled.mat as published "
                            "(2,972,037,809 bytes)")
  assert "re-download it" in message


def test_labeled_mat_cut_before_the_superblock_is_not_hdf5(tmp_path):
  path = tmp_path / "cut.mat"
  path.write_bytes(MAT_BYTES[:300])  # Only part of MATLAB's user block: no HDF5 signature.
  with pytest.raises(errors.CorruptFileError,
                     match=r"cut\.mat \(300 bytes\) is not a MATLAB v7\.3 \(HDF5\) file"
                           r".*re-download"):
    nyu_mat.LabeledMat(path)


def test_damaged_frame_data_is_corrupt_naming_the_frame(tmp_path):
  with h5py.File(MAT, "r") as f:  # The one deflate chunk of 'depths' (all 6 frames).
    chunk = f["depths"].id.get_chunk_info(0)
  damaged = bytearray(MAT_BYTES)
  middle = chunk.byte_offset + chunk.size // 2
  damaged[middle:middle + 16] = bytes(b ^ 0xFF for b in damaged[middle:middle + 16])
  path = tmp_path / "damaged.mat"
  path.write_bytes(bytes(damaged))
  labeled = nyu_mat.LabeledMat(path)  # Metadata intact: opens, and the sizes agree.
  assert labeled.num_frames == 6
  with pytest.raises(errors.CorruptFileError,
                     match=r"damaged\.mat \(11,993 bytes\) has an unreadable frame 2 \(OSError: "
                           r".*re-download it"):
    labeled.frame(2)
  labeled.close()


@pytest.mark.parametrize("size, why", [
    (0, "it is shorter than the 128-byte MATLAB 5 header"),
    (100, "it is shorter than the 128-byte MATLAB 5 header"),
    (150, "the data element at byte 128 declares 88 bytes, so the file must be at least 224 bytes"),
    (302, "the data element at byte 224 declares 80 bytes, so the file must be at least 312 bytes"),
])
def test_truncated_splits_are_corrupt_with_sizes(tmp_path, size, why):
  path = tmp_path / "splits.mat"
  path.write_bytes(SPLITS_BYTES[:size])
  with pytest.raises(errors.CorruptFileError) as info:
    nyu_mat.read_splits(path, 6)
  assert str(info.value) == (f"{path} ({size:,} bytes) is truncated: {why}. Re-download splits.mat "
                             "(the official MATLAB 5 file with trainNdxs and testNdxs).")


def test_damaged_splits_body_is_corrupt(tmp_path):
  # Intact element tags, garbage compressed stream: loadmat's zlib error becomes CorruptFileError.
  damaged = bytearray(SPLITS_BYTES)
  damaged[140:160] = b"\x00" * 20
  path = tmp_path / "splits.mat"
  path.write_bytes(bytes(damaged))
  with pytest.raises(errors.CorruptFileError,
                     match=r"splits\.mat \(312 bytes\) could not be read as a MATLAB 5 \.mat file "
                           r"\(.*re-download it"):
    nyu_mat.read_splits(path, 6)


def _ram_copy(name, data):
  path = f"ram://nyu_test/{name}"
  tf.io.gfile.makedirs("ram://nyu_test")
  with tf.io.gfile.GFile(path, "wb") as f:
    f.write(data)
  return path


def test_readers_work_on_non_local_filesystems():
  labeled = nyu_mat.LabeledMat(_ram_copy("nyu_depth_v2_labeled.mat", MAT_BYTES))
  frame = labeled.frame(4)
  image, depth, _, label = fixture.frame_arrays(4)
  np.testing.assert_array_equal(frame["image"], image)
  np.testing.assert_array_equal(frame["depth"][..., 0], depth)
  np.testing.assert_array_equal(frame["label"][..., 0], label)
  assert frame["scene"] == fixture.SCENES[4]
  labeled.close()
  assert nyu_mat.read_splits(_ram_copy("splits.mat", SPLITS_BYTES), 6) == ([0, 2, 3], [1, 4, 5])
  with pytest.raises(errors.CorruptFileError, match=r"ram://nyu_test/cut\.mat \(5,000 bytes\) is "
                                                    r"cut short"):
    nyu_mat.LabeledMat(_ram_copy("cut.mat", MAT_BYTES[:5000]))
  with pytest.raises(errors.MissingFileError, match="ram://nyu_test/absent.mat"):
    nyu_mat.LabeledMat("ram://nyu_test/absent.mat")


def test_eval_crop_mask():
  mask = nyu.eval_crop_mask()
  assert mask.sum() == (471 - 45) * (601 - 41)  # 426 × 560 = 238,560 pixels.
  assert mask[45, 41] and mask[470, 600] and not mask[44, 41] and not mask[45, 601]
  with pytest.raises(errors.InvalidInputError, match=r"\(12, 16\)"):
    nyu.eval_crop_mask(12, 16)


def _prepare(tmp_path, manual_dir):
  builder = nyu.Builder(data_dir=str(tmp_path / "data"))
  requested = []

  def fake_download(self, urls):
    del self
    requested.append(dict(urls))
    names = {"labeled": MAT, "splits": SPLITS}
    return {key: names[key] for key in urls}

  with mock.patch.object(tfds.download.DownloadManager, "download", fake_download):
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
        manual_dir=str(manual_dir), compute_stats=tfds.download.ComputeStatsMode.SKIP))
  return builder, requested


def test_manual_files_are_used_without_download(tmp_path):
  builder, requested = _prepare(tmp_path, DUMMY)
  assert requested == []
  test = list(tfds.as_numpy(builder.as_dataset(split="test")))
  assert sorted(int(e["frame_id"]) for e in test) == fixture.TEST_1_BASED


def test_missing_files_are_downloaded_from_the_official_urls(tmp_path):
  builder, requested = _prepare(tmp_path, DUMMY / "download_only")
  assert requested == [nyu.URLS]
  assert nyu.URLS["labeled"].endswith("/nyu_depth_v2/nyu_depth_v2_labeled.mat")
  train = list(tfds.as_numpy(builder.as_dataset(split="train")))
  assert sorted(int(e["frame_id"]) for e in train) == fixture.TRAIN_1_BASED
  example = next(e for e in train if int(e["frame_id"]) == 3)  # 0-based index 2.
  np.testing.assert_array_equal(example["depth"][..., 0], fixture.frame_arrays(2)[1])
  assert example["scene"].decode() == fixture.SCENES[2]


@pytest.mark.parametrize("manual", ["absent", "empty"])
def test_absent_or_empty_manual_dir_downloads_both_files(tmp_path, manual):
  if manual == "empty":
    (tmp_path / manual).mkdir()
  builder, requested = _prepare(tmp_path, tmp_path / manual)
  assert requested == [nyu.URLS]
  test = list(tfds.as_numpy(builder.as_dataset(split="test")))
  assert sorted(int(e["frame_id"]) for e in test) == fixture.TEST_1_BASED
