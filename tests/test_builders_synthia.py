"""Tests of the `synthia_rand_cityscapes` readers: 16-bit depth and labels, units, class maps."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from tfds_builders.common import errors
from tfds_builders.synthia_rand_cityscapes import synthia_rand_cityscapes_dataset_builder as syn
from tfds_builders.synthia_rand_cityscapes.dummy_data import make_dummy_data as fixture

ROOT = syn.epath.Path(syn.__file__).parent / "dummy_data" / "RAND_CITYSCAPES"


def test_class_tables():
  assert syn.NUM_CLASSES == 23 and syn.CLASS_NAMES[22] == "lanemarking"
  # 16 mapped classes, each Cityscapes id used once, names consistent.
  assert sorted(syn.CITYSCAPES_16.values()) == list(range(16))
  for synthia_id, city_id in syn.CITYSCAPES_16.items():
    synthia_name = syn.CLASS_NAMES[synthia_id].replace("pedestrian", "person")
    assert synthia_name == syn.CITYSCAPES_16_NAMES[city_id]
  assert syn.VOID_IDS_16 == (0, 13, 14, 16, 18, 20, 22)  # void, parking-slot, road-work, terrain,
  # truck, train, lanemarking: no Cityscapes-16 counterpart.
  assert syn.VOID_IDS_13 == (0, 5, 7, 13, 14, 16, 18, 20, 21, 22)  # + fence, pole, wall.
  assert sorted(syn.CITYSCAPES_13.values()) == list(range(13))
  assert syn.CITYSCAPES_13_NAMES[3] == "traffic light"


def test_to_cityscapes_hand_values():
  ids = np.array([[3, 21, 10], [0, 22, 11]])
  np.testing.assert_array_equal(syn.to_cityscapes(ids, 16), [[0, 3, 10], [255, 255, 15]])
  # 13 classes: road 0, wall ignored, person 7, bicycle 12.
  np.testing.assert_array_equal(syn.to_cityscapes(ids, 13), [[0, 255, 7], [255, 255, 12]])
  with pytest.raises(errors.InvalidInputError, match="16 or 13; got 19"):
    syn.to_cityscapes(ids, 19)


@pytest.mark.parametrize("unit,scale", [("centimeters", 0.01), ("millimeters", 0.001),
                                        ("raw", 1.0)])
def test_depth_units(unit, scale):
  depth = syn.read_depth(ROOT / "Depth/Depth/0000042.png", unit)
  expected = fixture.frame_arrays(2)[1].astype(np.float64) * scale
  assert depth.shape == (12, 20, 1) and depth.dtype == np.float32
  # float32 of value·scale: relative error ≤ 2^-24.
  np.testing.assert_allclose(depth[..., 0], expected, rtol=6e-8, atol=0)
  assert depth[0, 0, 0] == np.float32(2500 * scale)  # 500 + 1000·2 at (0, 0).
  with pytest.raises(errors.InvalidInputError, match="'inches'"):
    syn.read_depth(ROOT / "Depth/Depth/0000042.png", "inches")


def test_labels_come_from_the_first_16bit_channel(tmp_path):
  labels = syn.read_labels(ROOT / "GT/LABELS/0000001.png")
  np.testing.assert_array_equal(labels, fixture.frame_arrays(1)[2])
  # An 8-bit label file is refused (the high byte would have been kept).
  path = tmp_path / "eight.png"
  path.write_bytes(tf.io.encode_png(np.zeros((2, 2, 3), np.uint8)).numpy())
  with pytest.raises(errors.CorruptFileError, match="8-bit PNG"):
    syn.read_labels(path)
  # A 16-bit file whose channel 0 is not a class id (e.g. channels swapped) is refused.
  swapped = np.stack([np.full((2, 2), 1000, np.uint16), np.ones((2, 2), np.uint16)], axis=-1)
  path.write_bytes(tf.io.encode_png(swapped).numpy())
  with pytest.raises(errors.CorruptFileError, match="reach 1000, expected 0..22"):
    syn.read_labels(path)


def test_example_and_errors(tmp_path):
  key, example = syn.make_example("0000001", str(ROOT))
  assert key == "0000001"
  rgb, depth, labels, _ = fixture.frame_arrays(1)
  np.testing.assert_array_equal(example["image"], rgb)
  np.testing.assert_array_equal(example["label_cityscapes16"][..., 0],
                                syn.to_cityscapes(labels, 16))
  assert syn.list_frames(ROOT) == list(fixture.FRAMES)
  with pytest.raises(errors.MissingFileError, match="synthia-dataset.net"):
    syn.find_root(tmp_path)
  with pytest.raises(errors.MissingFileError, match="0000009.png"):
    syn.make_example("0000009", str(ROOT))


def test_prepared_dataset_values(tmp_path):
  builder = syn.Builder(data_dir=str(tmp_path))
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
      manual_dir=str(ROOT.parent), compute_stats=tfds.download.ComputeStatsMode.SKIP))
  examples = {e["frame_id"].decode(): e
              for e in tfds.as_numpy(builder.as_dataset(split="train"))}
  assert sorted(examples) == list(fixture.FRAMES)
  e = examples["0000042"]
  assert e["depth"][11, 19, 0] == np.float32((500 + 2000 + 37 * 11 + 301 * 19) / 100)
  assert e["label"][0, 0, 0] == 2 and e["label_cityscapes13"][0, 0, 0] == 2  # building.
