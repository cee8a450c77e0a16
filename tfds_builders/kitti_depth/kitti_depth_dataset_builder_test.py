"""`tfds.testing.DatasetBuilderTestCase` for every `kitti_depth` config, on `dummy_data/`.

The miniature raw tree is written by `dummy_data/make_dummy_data.py` (see its docstring for the
drives and frames). Expected counts:
- eigen / eigen_lidar_x: `split_files/<config>/test_files.txt` lists frames 0 and 3 of drive 0002.
- eigen_benchmark: `split_files/eigen_benchmark/test_files.txt` lists frame 3 of 0002, the one
  frame with an annotated map (the vendored list needs all 652 maps of the real data, see
  `tests/test_builders_kitti.py`).
- eigen_zhou (derived): 0002 is a test scene (excluded); 0113 frames 28-32 give targets 29, 31
  (30 is static in SfMLearner's list) -> train 2; 0022 frames 5-8 give 6, 7 -> validation 2.
- eigen_zhou_custom: user split files, train 2 (one left, one right clip), validation 1.
- eigen_zhou_depth: the derived eigen_zhou targets that have a Velodyne scan: train 2 (0113: 29,
  31), validation 1 (0022: 6; 7 has no scan and is skipped); test = `split_files/eigen/` (the
  `eigen` list, read as fallback): 2.
"""

import tensorflow_datasets as tfds

from tfds_builders.common import testing as builder_testing
from tfds_builders.kitti_depth import kitti_depth_dataset_builder


class KittiDepthEigenTest(builder_testing.BuilderTestCase):
  DATASET_CLASS = kitti_depth_dataset_builder.Builder
  BUILDER_CONFIG_NAMES_TO_TEST = ["eigen", "eigen_lidar_x"]
  SPLITS = {"test": 2}


class KittiDepthBenchmarkTest(builder_testing.BuilderTestCase):
  DATASET_CLASS = kitti_depth_dataset_builder.Builder
  BUILDER_CONFIG_NAMES_TO_TEST = ["eigen_benchmark"]
  SPLITS = {"test": 1}


class KittiDepthZhouTest(builder_testing.BuilderTestCase):
  DATASET_CLASS = kitti_depth_dataset_builder.Builder
  BUILDER_CONFIG_NAMES_TO_TEST = ["eigen_zhou"]
  SPLITS = {"train": 2, "validation": 2}


class KittiDepthZhouCustomSplitTest(builder_testing.BuilderTestCase):
  DATASET_CLASS = kitti_depth_dataset_builder.Builder
  BUILDER_CONFIG_NAMES_TO_TEST = [
      kitti_depth_dataset_builder.KittiDepthConfig(
          name="eigen_zhou_custom", kind="eigen_zhou", image_size=(12, 40),
          description="User split files from the manual directory.")]
  SPLITS = {"train": 2, "validation": 1}


class KittiDepthZhouDepthTest(builder_testing.BuilderTestCase):
  DATASET_CLASS = kitti_depth_dataset_builder.Builder
  BUILDER_CONFIG_NAMES_TO_TEST = ["eigen_zhou_depth"]
  SPLITS = {"train": 2, "validation": 1, "test": 2}


if __name__ == "__main__":
  tfds.testing.test_main()
