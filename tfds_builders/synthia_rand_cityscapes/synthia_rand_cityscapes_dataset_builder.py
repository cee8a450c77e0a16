"""TFDS builder `synthia_rand_cityscapes`: SYNTHIA-RAND-CITYSCAPES (Ros et al., CVPR 2016).

9,400 synthetic 1280×760 urban frames rendered at random viewpoints, with per-pixel depth and
class labels compatible with Cityscapes. Files (after extracting `SYNTHIA_RAND_CITYSCAPES.rar`,
which needs an unrar tool — the builder does not extract RAR):
  RAND_CITYSCAPES/RGB/<7 digits>.png            8-bit RGB
  RAND_CITYSCAPES/Depth/Depth/<7 digits>.png    16-bit PNG, 3 identical channels, depth units
  RAND_CITYSCAPES/GT/LABELS/<7 digits>.png      16-bit PNG, channel 0 = class id (0..22),
                                                channel 1 = instance id
Both 16-bit files are decoded as 16-bit (`tfds_builders.common.images.decode_png16`): an 8-bit
decode keeps only the high byte, which turns every class id (< 256) into 0.

Depth unit: the raw values are read as **centimetres** by default (metres = value / 100). Why: the
16-bit range then spans 0–655.35 m, which fits rendered urban scenes at centimetre resolution, and
it is the convention of the depth-aware SYNTHIA loaders that convert to metres (e.g. the GUDA
loader of Depth-Semantic-UDA divides by 100); DADA / GASDA feed the raw value (or 65536/(v+1)) to
their networks without a unit. The official README is not redistributable here, so the unit is a
documented option: `SynthiaConfig(depth_unit="centimeters" | "millimeters" | "raw")`.

Labels: the 23 SYNTHIA classes (`CLASS_NAMES`) are stored as uint8, plus the Cityscapes-compatible
16-class (`CITYSCAPES_16`, the SYNTHIA→Cityscapes protocol of domain-adaptation papers) and
13-class (`CITYSCAPES_13`: the 16 without wall, fence, pole) train ids, 255 = void / ignore.
"""

import dataclasses
import functools
import re
from typing import List

from etils import epath
import numpy as np
import tensorflow_datasets as tfds

from tfds_builders.common import errors
from tfds_builders.common import generation
from tfds_builders.common import images
from tfds_builders.common import manual as manual_lib

HOMEPAGE = "https://synthia-dataset.net/"
# SYNTHIA class ids 0..22 (SYNTHIA-RAND-CITYSCAPES README, class table).
CLASS_NAMES = (
    "void", "sky", "building", "road", "sidewalk", "fence", "vegetation", "pole", "car",
    "traffic sign", "pedestrian", "bicycle", "motorcycle", "parking-slot", "road-work",
    "traffic light", "terrain", "rider", "truck", "bus", "train", "wall", "lanemarking")
NUM_CLASSES = len(CLASS_NAMES)
IGNORE_ID = 255
# SYNTHIA id -> Cityscapes 16-class train id (road 0, sidewalk 1, building 2, wall 3, fence 4,
# pole 5, traffic light 6, traffic sign 7, vegetation 8, sky 9, person 10, rider 11, car 12,
# bus 13, motorcycle 14, bicycle 15), the SYNTHIA→Cityscapes protocol of e.g. AdvEnt / DADA.
CITYSCAPES_16 = {3: 0, 4: 1, 2: 2, 21: 3, 5: 4, 7: 5, 15: 6, 9: 7, 6: 8, 1: 9, 10: 10, 17: 11,
                 8: 12, 19: 13, 12: 14, 11: 15}
CITYSCAPES_16_NAMES = ("road", "sidewalk", "building", "wall", "fence", "pole", "traffic light",
                       "traffic sign", "vegetation", "sky", "person", "rider", "car", "bus",
                       "motorcycle", "bicycle")
# 13-class protocol: the 16 without wall, fence and pole, renumbered contiguously.
CITYSCAPES_13_NAMES = tuple(n for n in CITYSCAPES_16_NAMES if n not in ("wall", "fence", "pole"))
CITYSCAPES_13 = {s: CITYSCAPES_13_NAMES.index(CITYSCAPES_16_NAMES[c])
                 for s, c in CITYSCAPES_16.items() if CITYSCAPES_16_NAMES[c] in CITYSCAPES_13_NAMES}
# SYNTHIA ids without a Cityscapes-16 counterpart (mapped to IGNORE_ID).
VOID_IDS_16 = tuple(i for i in range(NUM_CLASSES) if i not in CITYSCAPES_16)
VOID_IDS_13 = tuple(i for i in range(NUM_CLASSES) if i not in CITYSCAPES_13)
# Depth unit -> metres per raw unit.
DEPTH_UNITS = {"centimeters": 0.01, "millimeters": 0.001, "raw": 1.0}
LAYOUT_ROOTS = ("RAND_CITYSCAPES", "SYNTHIA_RAND_CITYSCAPES/RAND_CITYSCAPES", "")
RGB_DIR, DEPTH_DIR, LABEL_DIR = "RGB", "Depth/Depth", "GT/LABELS"
FRAME_PATTERN = re.compile(r"^(\d+)\.png$")

MANUAL_DOWNLOAD_INSTRUCTIONS = """\
Download SYNTHIA-RAND-CITYSCAPES (CVPR16) from https://synthia-dataset.net/downloads/
(SYNTHIA_RAND_CITYSCAPES.rar, ~21 GB), extract it with an unrar tool, and place the folder
RAND_CITYSCAPES/ (containing RGB/, Depth/Depth/ and GT/LABELS/) in the manual directory.
"""


def _lookup(mapping) -> np.ndarray:
  table = np.full(65536, IGNORE_ID, np.uint8)
  for source, target in mapping.items():
    table[source] = target
  return table


_LUT_16 = _lookup(CITYSCAPES_16)
_LUT_13 = _lookup(CITYSCAPES_13)


def to_cityscapes(labels: np.ndarray, num_classes: int = 16) -> np.ndarray:
  """Maps SYNTHIA class ids (any integer array) to Cityscapes 16- or 13-class train ids (uint8,
  255 = ignore)."""
  if num_classes not in (16, 13):
    raise errors.InvalidInputError(f"num_classes must be 16 or 13; got {num_classes!r}.")
  labels = np.asarray(labels)
  if labels.size and (labels.min() < 0 or labels.max() >= 65536):
    raise errors.InvalidInputError(
        f"SYNTHIA ids must be in [0, 65535]; got range [{labels.min()}, {labels.max()}].")
  return (_LUT_16 if num_classes == 16 else _LUT_13)[labels.astype(np.int64)]


@dataclasses.dataclass
class SynthiaConfig(tfds.core.BuilderConfig):
  """Options: `depth_unit` ("centimeters" default, "millimeters" or "raw"); `use_beam`."""
  depth_unit: str = "centimeters"
  use_beam: bool = False


def find_root(manual_dir) -> epath.Path:
  """The RAND_CITYSCAPES directory inside `manual_dir` (raises MissingFileError with help)."""
  manual_dir = epath.Path(manual_dir)
  for sub in LAYOUT_ROOTS:
    root = manual_dir / sub if sub else manual_dir
    if (root / RGB_DIR).exists() and (root / DEPTH_DIR).exists() and (root / LABEL_DIR).exists():
      return root
  raise errors.MissingFileError(
      f"No SYNTHIA-RAND-CITYSCAPES folders (RGB/, Depth/Depth/, GT/LABELS/) found under "
      f"{str(manual_dir)!r} or its {LAYOUT_ROOTS[:2]} subfolders.\n{MANUAL_DOWNLOAD_INSTRUCTIONS}")


def list_frames(root) -> List[str]:
  """Sorted frame names (file stems) present in RGB/."""
  names = sorted(FRAME_PATTERN.match(p.name).group(1)
                 for p in (epath.Path(root) / RGB_DIR).iterdir() if FRAME_PATTERN.match(p.name))
  if not names:
    raise errors.MissingFileError(
        f"{str(epath.Path(root) / RGB_DIR)!r} has no <digits>.png frame.\n"
        f"{MANUAL_DOWNLOAD_INSTRUCTIONS}")
  return names


def read_labels(path) -> np.ndarray:
  """`(H, W)` uint8 SYNTHIA class ids from channel 0 of a 16-bit label PNG (checked ≤ 22)."""
  array = images.read_png16(path, flag_low_range=False)
  labels = array[..., 0]
  if labels.max(initial=0) >= NUM_CLASSES:
    raise errors.CorruptFileError(
        f"{path}: class ids (channel 0) reach {int(labels.max())}, expected 0..{NUM_CLASSES - 1}; "
        "not a SYNTHIA GT/LABELS file.")
  return labels.astype(np.uint8)


def read_depth(path, depth_unit: str = "centimeters") -> np.ndarray:
  """`(H, W, 1)` float32 depth from channel 0 of a 16-bit depth PNG, in metres (or raw units)."""
  if depth_unit not in DEPTH_UNITS:
    raise errors.InvalidInputError(
        f"depth_unit must be one of {sorted(DEPTH_UNITS)}; got {depth_unit!r}.")
  raw = images.read_png16(path)[..., :1]
  return (raw.astype(np.float64) * DEPTH_UNITS[depth_unit]).astype(np.float32)


def make_example(name: str, root: str, depth_unit: str = "centimeters"):
  """`(key, example)` of frame `name` (file stem); sizes of the three files must agree."""
  root = epath.Path(root)
  paths = {k: root / d / f"{name}.png" for k, d in
           (("image", RGB_DIR), ("depth", DEPTH_DIR), ("label", LABEL_DIR))}
  for what, path in paths.items():
    if not path.exists():
      raise errors.MissingFileError(
          f"SYNTHIA {what} file not found: {str(path)!r}.\n{MANUAL_DOWNLOAD_INSTRUCTIONS}")
  image = images.read_rgb(paths["image"])
  depth = read_depth(paths["depth"], depth_unit)
  labels = read_labels(paths["label"])
  for what, array in (("depth", depth), ("label", labels)):
    if array.shape[:2] != image.shape[:2]:
      raise errors.CorruptFileError(
          f"{paths[what]}: size {array.shape[:2]} differs from its RGB image {image.shape[:2]}.")
  return name, {
      "image": image,
      "depth": depth,
      "label": labels[..., None],
      "label_cityscapes16": to_cityscapes(labels, 16)[..., None],
      "label_cityscapes13": to_cityscapes(labels, 13)[..., None],
      "frame_id": name,
  }


class Builder(tfds.core.GeneratorBasedBuilder):
  """SYNTHIA-RAND-CITYSCAPES: RGB, depth and class labels."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release."}
  MANUAL_DOWNLOAD_INSTRUCTIONS = MANUAL_DOWNLOAD_INSTRUCTIONS
  BUILDER_CONFIGS = [SynthiaConfig(name="default", description="Depth in metres (raw cm / 100).")]

  def _info(self) -> tfds.core.DatasetInfo:
    unit = self.builder_config.depth_unit
    if unit not in DEPTH_UNITS:
      raise errors.InvalidInputError(
          f"depth_unit must be one of {sorted(DEPTH_UNITS)}; got {unit!r}.")
    label = functools.partial(tfds.features.Image, shape=(None, None, 1), dtype=np.uint8)
    return self.dataset_info_from_configs(
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Image(shape=(None, None, 3), doc="RGB, uint8 (760×1280)."),
            "depth": tfds.features.Tensor(
                shape=(None, None, 1), dtype=np.float32, encoding=tfds.features.Encoding.ZLIB,
                doc="Depth, metres" if unit != "raw" else "Depth, raw 16-bit units"),
            "label": label(doc="SYNTHIA class id 0..22 (CLASS_NAMES)."),
            "label_cityscapes16": label(doc="Cityscapes 16-class train id, 255 = ignore."),
            "label_cityscapes13": label(doc="Cityscapes 13-class train id, 255 = ignore."),
            "frame_id": tfds.features.Text(doc="File stem, e.g. 0000042."),
        }),
        supervised_keys=("image", "depth"),
        homepage=HOMEPAGE,
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    root = find_root(manual_lib.manual_dir(dl_manager, MANUAL_DOWNLOAD_INSTRUCTIONS))
    return {"train": self._generate_examples(names=list_frames(root), root=str(root))}

  def _generate_examples(self, names, root):
    config = self.builder_config
    return generation.generate(
        names, functools.partial(make_example, root=root, depth_unit=config.depth_unit),
        use_beam=config.use_beam)
