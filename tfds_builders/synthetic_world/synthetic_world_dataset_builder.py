"""synthetic_world: procedurally rendered 3-frame clips with exact depth, pose, motion and labels.

The dataset is generated locally by `download_and_prepare` (no network, nothing downloaded) with
the NumPy ray caster of `renderer.py`; see README.md for the scenes, features and units.

Configs:
  * `street` (default): KITTI-like street, 128x416, Monodepth2's KITTI K
    (fx = 0.58 W, fy = 1.92 H, cx = 0.5 W, cy = 0.5 H).
  * `street_unknown_camera`: the same streets, each clip with its own random K (the `intrinsics`
    feature is still the true K).
  * `indoor`: NYU-like rooms, 192x256, NYU Depth v2 Kinect K.
  * `street_stereo`: the `street` clips plus the right camera of a 0.54 m stereo pair at time t
    (`stereo_image`, `stereo_baseline`; Monodepth2's S / MS training modes). The other configs'
    features and data are unchanged (`stereo_baseline` = 0 means no stereo partner).

Usage:
  import tfds_builders  # registers the builders
  ds = tfds.load("synthetic_world/street", split="train")
"""

import dataclasses

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from tfds_builders.synthetic_world import clips
from tfds_builders.synthetic_world import scenes

# Default split sizes: street `download_and_prepare` renders 400 clips (see README.md for the
# measured time and size).
DEFAULT_NUM_TRAIN = 300
DEFAULT_NUM_VALIDATION = 50
DEFAULT_NUM_TEST = 50
# Seed of the released configs.
DEFAULT_SEED = 0

_ZLIB = tfds.features.Encoding.ZLIB
_DESCRIPTIONS = {
    "frames": "(3, H, W, 3) uint8 RGB frames in temporal order [t-1, t, t+1].",
    "depth": "(H, W, 1) float32 z-depth of frame t in metres; 0 = invalid (sky, nothing hit, "
             "beyond 80 m in street / 10 m indoor).",
    "semantic": "(H, W, 1) uint8 Cityscapes label ids of frame t (road 7, sidewalk 8, building 11, "
                "wall 12, pole 17, traffic sign 20, vegetation 21, sky 23, car 26; indoor: "
                "ground 6 for the floor, wall 12 for walls and ceiling, static 4 for furniture).",
    "normals": "(H, W, 3) float16 unit surface normals of frame t in camera-t coordinates "
               "(x right, y down, z forward), facing the camera; 0 where depth is invalid.",
    "moving_mask": "(H, W, 1) uint8, 1 on pixels of frame t showing independently moving objects.",
    "object_motion": "(2, H, W, 3) float32 metres in camera-t coordinates, for sources [t-1, t+1]: "
                     "displacement of the scene point seen at each pixel of frame t from time t to "
                     "the source time; 0 on static pixels.",
    "intrinsics": "(3, 3) float32 camera matrix K in pixels at the stored resolution; integer "
                  "pixel coordinates are pixel centres.",
    "target_from_source": "(2, 4, 4) float32 for sources [t-1, t+1]: p_t = M @ p_source for "
                          "static points (camera frames x right, y down, z forward, metres).",
    "clip_id": "Stable clip key f'{split}_{index:06d}'.",
    "stereo_image": "(H, W, 3) uint8 RGB of the right camera of a rectified stereo pair whose left "
                    "camera is frame t (same K, same time), shifted by stereo_baseline along x.",
    "stereo_baseline": "float32 metres between the stereo cameras: p_t = p_right + (b, 0, 0).",
}


def _check_positive_int(field, value):
  if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
    raise ValueError(f"SyntheticWorldConfig.{field} must be a positive int, got {value!r}")


@dataclasses.dataclass(eq=False, kw_only=True)
class SyntheticWorldConfig(tfds.core.BuilderConfig):
  """BuilderConfig of synthetic_world.

  Attributes (keyword-only besides the BuilderConfig ones):
    scene: "street" or "indoor".
    height, width: image size in pixels (positive ints).
    num_train, num_validation, num_test: clips per split (positive ints).
    seed: non-negative int; clip i of split s is rendered from
      np.random.default_rng(SeedSequence([seed, crc32(s), i])).
    random_intrinsics: give each clip its own random K ("unknown camera").
    stereo_baseline: metres >= 0; > 0 adds the stereo partner of frame t (`stereo_image`,
      `stereo_baseline`, see `clips.render_clip`); 0 (default) renders no partner.
    frame_interval: number in (0, 1]: time between frames as a fraction of the scene default
      (`clips.render_clip`; street 1 = KITTI's 10 Hz, 1/3 = a 30 Hz camera). 1 (default) leaves
      the data unchanged.
  Raises:
    ValueError: on an unknown scene, non-positive or non-int sizes / counts, or a bad seed.
  """
  scene: str = "street"
  height: int = 128
  width: int = 416
  num_train: int = DEFAULT_NUM_TRAIN
  num_validation: int = DEFAULT_NUM_VALIDATION
  num_test: int = DEFAULT_NUM_TEST
  seed: int = DEFAULT_SEED
  random_intrinsics: bool = False
  stereo_baseline: float = 0.0
  frame_interval: float = 1.0

  def __post_init__(self):
    if self.scene not in scenes.SCENES:
      raise ValueError(f"SyntheticWorldConfig.scene must be one of {scenes.SCENES}, got "
                       f"{self.scene!r}")
    for field in ("height", "width", "num_train", "num_validation", "num_test"):
      _check_positive_int(field, getattr(self, field))
    if (isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer))
        or self.seed < 0):
      raise ValueError(f"SyntheticWorldConfig.seed must be a non-negative int, got {self.seed!r}")
    if not isinstance(self.random_intrinsics, (bool, np.bool_)):
      raise ValueError("SyntheticWorldConfig.random_intrinsics must be a bool, got "
                       f"{self.random_intrinsics!r}")
    if (isinstance(self.stereo_baseline, bool)
        or not isinstance(self.stereo_baseline, (int, float, np.floating))
        or not np.isfinite(self.stereo_baseline) or self.stereo_baseline < 0):
      raise ValueError("SyntheticWorldConfig.stereo_baseline must be a finite number of metres "
                       f">= 0, got {self.stereo_baseline!r}")
    if (isinstance(self.frame_interval, bool)
        or not isinstance(self.frame_interval, (int, float, np.floating))
        or not np.isfinite(self.frame_interval) or not 0 < self.frame_interval <= 1):
      raise ValueError("SyntheticWorldConfig.frame_interval must be a number in (0, 1], got "
                       f"{self.frame_interval!r}")

  @property
  def split_sizes(self):
    return {"train": self.num_train, "validation": self.num_validation, "test": self.num_test}


def features_dict(height, width, stereo=False):
  """The tfds FeaturesDict of one clip at (height, width) (with the stereo partner if `stereo`)."""
  h, w = height, width
  t = tfds.features.Tensor
  extra = {}
  if stereo:
    extra = {
        "stereo_image": t(shape=(h, w, 3), dtype=np.uint8, encoding=_ZLIB,
                          doc=_DESCRIPTIONS["stereo_image"]),
        "stereo_baseline": tfds.features.Scalar(dtype=np.float32,
                                                doc=_DESCRIPTIONS["stereo_baseline"]),
    }
  return tfds.features.FeaturesDict({
      "frames": t(shape=(3, h, w, 3), dtype=np.uint8, encoding=_ZLIB,
                  doc=_DESCRIPTIONS["frames"]),
      "depth": t(shape=(h, w, 1), dtype=np.float32, encoding=_ZLIB, doc=_DESCRIPTIONS["depth"]),
      "semantic": t(shape=(h, w, 1), dtype=np.uint8, encoding=_ZLIB,
                    doc=_DESCRIPTIONS["semantic"]),
      "normals": t(shape=(h, w, 3), dtype=np.float16, encoding=_ZLIB,
                   doc=_DESCRIPTIONS["normals"]),
      "moving_mask": t(shape=(h, w, 1), dtype=np.uint8, encoding=_ZLIB,
                       doc=_DESCRIPTIONS["moving_mask"]),
      "object_motion": t(shape=(2, h, w, 3), dtype=np.float32, encoding=_ZLIB,
                         doc=_DESCRIPTIONS["object_motion"]),
      "intrinsics": t(shape=(3, 3), dtype=np.float32, doc=_DESCRIPTIONS["intrinsics"]),
      "target_from_source": t(shape=(2, 4, 4), dtype=np.float32,
                              doc=_DESCRIPTIONS["target_from_source"]),
      "clip_id": tfds.features.Text(doc=_DESCRIPTIONS["clip_id"]),
      **extra,
  })


class Builder(tfds.core.GeneratorBasedBuilder):
  """DatasetBuilder for synthetic_world (generated locally, nothing is downloaded)."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release."}
  BUILDER_CONFIGS = [
      SyntheticWorldConfig(
          name="street", scene="street", height=128, width=416,
          description="KITTI-like street, 128x416, Monodepth2 KITTI intrinsics."),
      SyntheticWorldConfig(
          name="street_unknown_camera", scene="street", height=128, width=416,
          random_intrinsics=True,
          description="KITTI-like street, 128x416, random intrinsics per clip."),
      SyntheticWorldConfig(
          name="indoor", scene="indoor", height=192, width=256,
          description="NYU-like rooms, 192x256, NYU Depth v2 Kinect intrinsics, depth <= 10 m."),
      SyntheticWorldConfig(
          name="street_stereo", scene="street", height=128, width=416,
          stereo_baseline=clips.KITTI_STEREO_BASELINE_M,
          description="KITTI-like street, 128x416, plus the right camera of a 0.54 m stereo pair "
                      "at time t."),
  ]
  DEFAULT_BUILDER_CONFIG_NAME = "street"

  def _info(self) -> tfds.core.DatasetInfo:
    cfg = self.builder_config
    return self.dataset_info_from_configs(
        features=features_dict(cfg.height, cfg.width, stereo=cfg.stereo_baseline > 0),
        supervised_keys=None,
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    del dl_manager  # Nothing to download: every clip is rendered here.
    return {split: self._generate_examples(split, n)
            for split, n in self.builder_config.split_sizes.items()}

  def _generate_examples(self, split, num_clips):
    cfg = self.builder_config
    for index in range(num_clips):
      example = clips.render_clip(cfg.scene, cfg.height, cfg.width, seed=cfg.seed, split=split,
                                  index=index, random_intrinsics=cfg.random_intrinsics,
                                  stereo_baseline=cfg.stereo_baseline or None,
                                  frame_interval=float(cfg.frame_interval))
      yield clips.clip_key(split, index), example


def output_signature(height, width):
  """tf.TensorSpec dict of one clip (the element spec of `infinite_dataset`)."""
  h, w = height, width
  return {
      "frames": tf.TensorSpec((3, h, w, 3), tf.uint8),
      "depth": tf.TensorSpec((h, w, 1), tf.float32),
      "semantic": tf.TensorSpec((h, w, 1), tf.uint8),
      "normals": tf.TensorSpec((h, w, 3), tf.float16),
      "moving_mask": tf.TensorSpec((h, w, 1), tf.uint8),
      "object_motion": tf.TensorSpec((2, h, w, 3), tf.float32),
      "intrinsics": tf.TensorSpec((3, 3), tf.float32),
      "target_from_source": tf.TensorSpec((2, 4, 4), tf.float32),
      "clip_id": tf.TensorSpec((), tf.string),
  }


INFINITE_SPLIT = "infinite"


def infinite_dataset(scene="street", height=None, width=None, seed=0, random_intrinsics=False):
  """An endless generator-backed tf.data.Dataset of clips with the builder's feature dict.

  Clip i is `clips.render_clip(scene, height, width, seed, split="infinite", index=i, ...)`, so
  the stream is deterministic and disjoint from the train/validation/test splits.

  Args:
    scene: "street" or "indoor".
    height, width: image size; None for the scene default (street 128x416, indoor 192x256).
    seed: non-negative int.
    random_intrinsics: random K per clip.
  Returns:
    tf.data.Dataset of dicts with the element spec `output_signature(height, width)`.
  Raises:
    ValueError: unknown scene or bad sizes / seed (checked eagerly, before any rendering).
  """
  cfg = SyntheticWorldConfig(
      name="infinite", scene=scene,
      height=scenes.DEFAULT_SIZES.get(scene, (1, 1))[0] if height is None else height,
      width=scenes.DEFAULT_SIZES.get(scene, (1, 1))[1] if width is None else width,
      seed=seed, random_intrinsics=random_intrinsics)

  def gen():
    index = 0
    while True:
      yield clips.render_clip(cfg.scene, cfg.height, cfg.width, seed=cfg.seed,
                              split=INFINITE_SPLIT, index=index,
                              random_intrinsics=cfg.random_intrinsics)
      index += 1

  return tf.data.Dataset.from_generator(gen,
                                        output_signature=output_signature(cfg.height, cfg.width))
