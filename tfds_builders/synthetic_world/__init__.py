"""synthetic_world: procedurally rendered street / indoor clips (see README.md).

Public API:
  render_clip(scene, height, width, seed, split, index, random_intrinsics, include_all_depths)
  infinite_dataset(scene, height, width, seed, random_intrinsics) -> tf.data.Dataset
  SyntheticWorldConfig, Builder (the TFDS builder, registered as "synthetic_world")
"""

from tfds_builders.synthetic_world.clips import clip_key
from tfds_builders.synthetic_world.clips import clip_rng
from tfds_builders.synthetic_world.clips import render_clip
from tfds_builders.synthetic_world.synthetic_world_dataset_builder import Builder
from tfds_builders.synthetic_world.synthetic_world_dataset_builder import infinite_dataset
from tfds_builders.synthetic_world.synthetic_world_dataset_builder import SyntheticWorldConfig
