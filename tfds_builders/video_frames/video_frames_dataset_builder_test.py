"""`tfds.testing.DatasetBuilderTestCase` for `video_frames` on `dummy_data/` (see
`dummy_data/make_dummy_data.py`: `city_walk` 6 JPEG frames with one static repeat and
intrinsics, `parking` 5 PNG frames without)."""

import tensorflow_datasets as tfds

from tfds_builders.common import testing as builder_testing
from tfds_builders.video_frames import video_frames_dataset_builder as vf


class VideoFramesDefaultTest(builder_testing.BuilderTestCase):
  """All frames: city_walk 6 -> 4 clips, parking 5 -> 3 clips."""
  DATASET_CLASS = vf.Builder
  SPLITS = {"train": 7}


class VideoFramesStaticAndSplitTest(builder_testing.BuilderTestCase):
  """Static removal drops frame_3 (city_walk 5 frames -> 3 clips); parking is validation (3)."""
  DATASET_CLASS = vf.Builder
  BUILDER_CONFIG_NAMES_TO_TEST = [vf.VideoFramesConfig(
      name="static", static_threshold=0.02, validation_sequences=("parking",),
      image_size=(12, 16), description="Static removal, resize, split by sequence.")]
  SPLITS = {"train": 3, "validation": 3}


class VideoFramesStrideTest(builder_testing.BuilderTestCase):
  """Every 2nd frame: city_walk indices 0, 2, 4 and parking 0, 2, 4 -> one clip each."""
  DATASET_CLASS = vf.Builder
  BUILDER_CONFIG_NAMES_TO_TEST = [vf.VideoFramesConfig(
      name="stride2", frame_stride=2, description="Frame-rate subsampling by 2.")]
  SPLITS = {"train": 2}


if __name__ == "__main__":
  tfds.testing.test_main()
