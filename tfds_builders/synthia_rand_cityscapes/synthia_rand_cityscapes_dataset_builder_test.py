"""`tfds.testing.DatasetBuilderTestCase` for `synthia_rand_cityscapes` on `dummy_data/` (3 frames
written by `dummy_data/make_dummy_data.py`, all in `train`)."""

import tensorflow_datasets as tfds

from tfds_builders.common import testing as builder_testing
from tfds_builders.synthia_rand_cityscapes import synthia_rand_cityscapes_dataset_builder as syn


class SynthiaRandCityscapesTest(builder_testing.BuilderTestCase):
  DATASET_CLASS = syn.Builder
  SPLITS = {"train": 3}


class SynthiaRandCityscapesRawDepthTest(builder_testing.BuilderTestCase):
  DATASET_CLASS = syn.Builder
  BUILDER_CONFIG_NAMES_TO_TEST = [
      syn.SynthiaConfig(name="raw", depth_unit="raw", description="Raw 16-bit depth values.")]
  SPLITS = {"train": 3}


if __name__ == "__main__":
  tfds.testing.test_main()
