"""Readers for `nyu_depth_v2_labeled.mat` (MATLAB v7.3 = HDF5) and `splits.mat` (MATLAB 5).

A MATLAB v7.3 file is an HDF5 file with a 512-byte user block holding MATLAB's 128-byte text
header (HDF5 finds its superblock at offset 512, so h5py opens it directly). MATLAB stores arrays
column-major, so h5py sees every array with its axes reversed: the MATLAB 480×640×3×1449 `images`
arrive as (1449, 3, 640, 480) and are transposed back to (H, W, C) per frame. Strings are `char`
arrays of uint16 code units; cell arrays (`scenes`, `sceneTypes`) are arrays of HDF5 object
references into the `#refs#` group.

`splits.mat` (Silberman et al., ECCV 2012, "indoor_seg_sup") is a MATLAB 5 file read with
`scipy.io.loadmat`: `trainNdxs` (795×1) and `testNdxs` (654×1), 1-based frame numbers.
"""

import io
from typing import Dict, List, Tuple

import h5py
import numpy as np
import scipy.io
import tensorflow as tf

from tfds_builders.common import errors

# Datasets of the labeled .mat used by the builder, and their rank as h5py sees them.
REQUIRED_DATASETS = {"images": 4, "depths": 3, "rawDepths": 3, "labels": 3, "scenes": 2,
                     "sceneTypes": 2}
# MATLAB v7.3 files start with a 512-byte user block (MATLAB 7.3 MAT-file format notes).
MAT73_USERBLOCK_BYTES = 512
# Official split sizes (Silberman et al., ECCV 2012; splits.mat of the NYU Depth V2 site).
NUM_TRAIN = 795
NUM_TEST = 654
NUM_LABELED = 1449


def _read_local(path) -> bytes:
  path = str(path)
  if not tf.io.gfile.exists(path):
    raise errors.MissingFileError(f"File not found: {path!r}.")
  with tf.io.gfile.GFile(path, "rb") as f:
    return f.read()


class LabeledMat:
  """Random access to the frames of `nyu_depth_v2_labeled.mat`.

  Args:
    path: local path of the .mat file.

  Raises:
    MissingFileError / CorruptFileError naming the file and what was expected.
  """

  def __init__(self, path):
    self.path = str(path)
    if not tf.io.gfile.exists(self.path):
      raise errors.MissingFileError(f"NYU labeled file not found: {self.path!r}.")
    if not h5py.is_hdf5(self.path):
      raise errors.CorruptFileError(
          f"{self.path} is not a MATLAB v7.3 (HDF5) file; expected nyu_depth_v2_labeled.mat "
          "as published (2,972,037,809 bytes). Re-download it.")
    self._file = h5py.File(self.path, "r")
    for name, rank in REQUIRED_DATASETS.items():
      if name not in self._file:
        raise errors.CorruptFileError(
            f"{self.path} has no {name!r} array (found {sorted(self._file.keys())}); expected "
            "the NYU Depth V2 labeled .mat.")
      if self._file[name].ndim != rank:
        raise errors.CorruptFileError(
            f"{self.path}: {name!r} has shape {self._file[name].shape}, expected rank {rank}.")
    images = self._file["images"]
    self.num_frames = images.shape[0]
    if images.shape[1] != 3:
      raise errors.CorruptFileError(
          f"{self.path}: 'images' has shape {images.shape}; expected (N, 3, W, H) (MATLAB "
          "H×W×3×N with axes reversed).")
    for name in ("depths", "rawDepths", "labels"):
      if self._file[name].shape != (self.num_frames, *images.shape[2:]):
        raise errors.CorruptFileError(
            f"{self.path}: {name!r} has shape {self._file[name].shape}, expected "
            f"{(self.num_frames, *images.shape[2:])} to match 'images'.")
    for name in ("scenes", "sceneTypes"):
      if self._file[name].size != self.num_frames:
        raise errors.CorruptFileError(
            f"{self.path}: {name!r} has {self._file[name].size} entries, expected "
            f"{self.num_frames}.")

  def close(self) -> None:
    self._file.close()

  def _string(self, cell: str, index: int) -> str:
    reference = self._file[cell][()].reshape(-1)[index]
    codes = np.asarray(self._file[reference][()]).reshape(-1)
    return "".join(chr(int(c)) for c in codes)

  def frame(self, index: int) -> Dict[str, object]:
    """Frame `index` (0-based).

    Returns:
      dict with `image` (H, W, 3) uint8; `depth`, `raw_depth` (H, W, 1) float32 metres (raw: 0
      = no Kinect measurement); `label` (H, W, 1) uint16 (0 = unlabeled, else 1-based index into
      `names`); `scene`, `scene_type` str.
    """
    if not 0 <= index < self.num_frames:
      raise errors.InvalidInputError(
          f"Frame index {index} is outside [0, {self.num_frames}) of {self.path}.")
    f = self._file
    return {
        "image": np.ascontiguousarray(f["images"][index].transpose(2, 1, 0)).astype(np.uint8),
        "depth": np.ascontiguousarray(f["depths"][index].T[..., None]).astype(np.float32),
        "raw_depth": np.ascontiguousarray(f["rawDepths"][index].T[..., None]).astype(np.float32),
        "label": np.ascontiguousarray(f["labels"][index].T[..., None]).astype(np.uint16),
        "scene": self._string("scenes", index),
        "scene_type": self._string("sceneTypes", index),
    }


def read_splits(path, num_frames: int) -> Tuple[List[int], List[int]]:
  """Reads `splits.mat` into 0-based (train, test) index lists.

  Raises:
    CorruptFileError: not a MATLAB 5 file, keys missing, indices out of 1..num_frames, overlap.
  """
  data = _read_local(path)
  try:
    mat = scipy.io.loadmat(io.BytesIO(data))
  except (NotImplementedError, ValueError, TypeError) as e:
    raise errors.CorruptFileError(
        f"{path} could not be read as a MATLAB 5 .mat file ({e}); expected the official "
        "splits.mat with trainNdxs and testNdxs.") from None
  splits = []
  for key in ("trainNdxs", "testNdxs"):
    if key not in mat:
      raise errors.CorruptFileError(
          f"{path} has no {key!r} (keys: {sorted(k for k in mat if not k.startswith('__'))}).")
    one_based = np.asarray(mat[key]).reshape(-1).astype(np.int64)
    if one_based.size == 0 or one_based.min() < 1 or one_based.max() > num_frames:
      raise errors.CorruptFileError(
          f"{path}: {key} values must be 1-based frame numbers in [1, {num_frames}]; got range "
          f"[{one_based.min(initial=0)}, {one_based.max(initial=0)}].")
    splits.append(sorted(int(i) - 1 for i in one_based))
  train, test = splits
  overlap = set(train) & set(test)
  if overlap or len(set(train)) != len(train) or len(set(test)) != len(test):
    raise errors.CorruptFileError(
        f"{path}: trainNdxs and testNdxs must be disjoint lists without repeats; "
        f"{len(overlap)} frames are in both.")
  return train, test
