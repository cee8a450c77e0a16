"""TFDS dataset builders of tfdepth (stand-alone: imports nothing from `tfdepth`).

Importing this package registers the builders, e.g. `tfds.builder("synthetic_world/street")`.
It also turns off TFDS's look-ups of pre-built datasets and metadata on Google Cloud Storage
(gs://tfds-data), so that no builder ever tries the network: our builders prepare everything
locally.

To add a builder, add one import line to `_BUILDER_MODULES` below.
"""

import importlib

from tensorflow_datasets.core.utils import gcs_utils

# tensorflow_datasets 4.9.10 consults `gcs_utils._is_gcs_disabled` before every GCS access
# (`gcs_dataset_info_files`, `is_dataset_on_gcs`, `download_gcs_folder`); it defaults to True in
# this version, and setting it makes that explicit and robust to a changed default.
gcs_utils._is_gcs_disabled = True  # pylint: disable=protected-access

# Modules defining `Builder` classes (registered with TFDS on import); one line per dataset.
_BUILDER_MODULES = (
    "tfds_builders.synthetic_world.synthetic_world_dataset_builder",
    "tfds_builders.kitti_depth.kitti_depth_dataset_builder",
    "tfds_builders.nyu_depth_v2_labeled.nyu_depth_v2_labeled_dataset_builder",
    "tfds_builders.synthia_rand_cityscapes.synthia_rand_cityscapes_dataset_builder",
    "tfds_builders.video_frames.video_frames_dataset_builder",
)

for _module in _BUILDER_MODULES:
  importlib.import_module(_module)
