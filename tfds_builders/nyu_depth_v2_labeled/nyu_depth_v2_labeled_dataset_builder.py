"""TFDS builder `nyu_depth_v2_labeled`: the 1449 densely labeled NYU Depth V2 frames.

Source: Silberman, Hoiem, Kohli, Fergus, "Indoor Segmentation and Support Inference from RGBD
Images", ECCV 2012. `nyu_depth_v2_labeled.mat` (MATLAB v7.3) holds RGB, in-painted depth, raw
Kinect depth, per-pixel labels and scene names; `splits.mat` (MATLAB 5) the official 795 / 654
train / test split (scene-disjoint). Both are downloaded by URL, or taken from the manual
directory when placed there (same file names).

Evaluation (Eigen et al. 2014 and every later paper): crop rows 45:471, cols 41:601 of the
480×640 frame (`EVAL_CROP`), depth capped at 10 m (`MAX_EVAL_DEPTH_M`).
"""

import functools
from typing import Optional

from etils import epath
import numpy as np
import tensorflow_datasets as tfds

from tfds_builders.common import errors
from tfds_builders.common import generation
from tfds_builders.common import manual as manual_lib
from tfds_builders.nyu_depth_v2_labeled import nyu_mat

URLS = {
    "labeled": "http://horatio.cs.nyu.edu/mit/silberman/nyu_depth_v2/nyu_depth_v2_labeled.mat",
    "splits": "http://horatio.cs.nyu.edu/mit/silberman/indoor_seg_sup/splits.mat",
}
FILENAMES = {"labeled": "nyu_depth_v2_labeled.mat", "splits": "splits.mat"}
HOMEPAGE = "https://cs.nyu.edu/~silberman/datasets/nyu_depth_v2.html"
# NYU evaluation crop (Eigen et al., NIPS 2014; e.g. BTS / AdaBins `eval` code): rows 45:471 and
# columns 41:601 (half-open, 0-based) of a 480×640 frame — 426×560 pixels.
EVAL_CROP = ((45, 471), (41, 601))
NYU_IMAGE_SIZE = (480, 640)
# Depth cap of the NYU evaluation (Eigen et al. 2014): ground truth above 10 m is ignored.
MAX_EVAL_DEPTH_M = 10.0

MANUAL_DOWNLOAD_INSTRUCTIONS = f"""\
Optional: the builder downloads both files itself. To use copies you already have, put them in the
manual directory with their original names:
  {FILENAMES['labeled']}  ({URLS['labeled']}, 2,972,037,809 bytes)
  {FILENAMES['splits']}   ({URLS['splits']})
"""


def eval_crop_mask(height: int = NYU_IMAGE_SIZE[0], width: int = NYU_IMAGE_SIZE[1]) -> np.ndarray:
  """`(H, W)` bool mask of the NYU evaluation crop (only defined for 480×640 frames)."""
  if (height, width) != NYU_IMAGE_SIZE:
    raise errors.InvalidInputError(
        f"The NYU evaluation crop is defined for {NYU_IMAGE_SIZE} frames; got {(height, width)}.")
  mask = np.zeros((height, width), bool)
  (r0, r1), (c0, c1) = EVAL_CROP
  mask[r0:r1, c0:c1] = True
  return mask


@functools.lru_cache(maxsize=2)
def _open(path: str) -> nyu_mat.LabeledMat:
  return nyu_mat.LabeledMat(path)


def make_example(index: int, mat_path: str):
  """`(key, example)` for 0-based frame `index`; key = 4-digit 1-based MATLAB frame number."""
  frame = _open(mat_path).frame(index)
  return f"{index + 1:04d}", {**frame, "frame_id": np.int32(index + 1)}



class Builder(tfds.core.GeneratorBasedBuilder):
  """NYU Depth V2 labeled subset: RGB, in-painted and raw depth, labels, scenes."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release."}
  MANUAL_DOWNLOAD_INSTRUCTIONS = MANUAL_DOWNLOAD_INSTRUCTIONS

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Image(shape=(None, None, 3), doc="RGB, uint8 (480×640)."),
            "depth": tfds.features.Tensor(
                shape=(None, None, 1), dtype=np.float32, encoding=tfds.features.Encoding.ZLIB,
                doc="In-painted (Levin colorization) depth, metres, dense."),
            "raw_depth": tfds.features.Tensor(
                shape=(None, None, 1), dtype=np.float32, encoding=tfds.features.Encoding.ZLIB,
                doc="Raw projected Kinect depth, metres, 0 = no measurement."),
            "label": tfds.features.Image(
                shape=(None, None, 1), dtype=np.uint16,
                doc="Per-pixel class: 0 = unlabeled, k = names[k-1] of the .mat (894 names)."),
            "scene": tfds.features.Text(doc="Scene id, e.g. kitchen_0028a."),
            "scene_type": tfds.features.Text(doc="Scene type, e.g. kitchen."),
            "frame_id": tfds.features.Scalar(
                dtype=np.int32, doc="1-based frame number in the .mat (as in splits.mat)."),
        }),
        supervised_keys=("image", "depth"),
        homepage=HOMEPAGE,
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    # No manual directory, or an empty one: download both files.
    manual: Optional[epath.Path] = manual_lib.manual_dir(
        dl_manager, MANUAL_DOWNLOAD_INSTRUCTIONS, required=False)
    paths = {}
    for key, name in FILENAMES.items():
      if manual is not None and (manual / name).exists():
        paths[key] = manual / name
    missing = {key: URLS[key] for key in FILENAMES if key not in paths}
    if missing:
      paths.update(dl_manager.download(missing))
    mat_path = str(paths["labeled"])
    num_frames = _open(mat_path).num_frames
    train, test = nyu_mat.read_splits(paths["splits"], num_frames)
    return {
        "train": self._generate_examples(indices=train, mat_path=mat_path),
        "test": self._generate_examples(indices=test, mat_path=mat_path),
    }

  def _generate_examples(self, indices, mat_path):
    return generation.generate(indices, functools.partial(make_example, mat_path=mat_path))
