"""Readers for `nyu_depth_v2_labeled.mat` (MATLAB v7.3 = HDF5) and `splits.mat` (MATLAB 5).

A MATLAB v7.3 file is an HDF5 file with a 512-byte user block holding MATLAB's 128-byte text
header (HDF5 finds its superblock at offset 512, so h5py opens it directly; it is read through a
`tf.io.gfile.GFile` file object, so any TensorFlow filesystem works). MATLAB stores arrays
column-major, so h5py sees every array with its axes reversed: the MATLAB 480×640×3×1449 `images`
arrive as (1449, 3, 640, 480) and are transposed back to (H, W, C) per frame. Strings are `char`
arrays of uint16 code units; cell arrays (`scenes`, `sceneTypes`) are arrays of HDF5 object
references into the `#refs#` group.

`splits.mat` (Silberman et al., ECCV 2012, "indoor_seg_sup") is a MATLAB 5 file read with
`scipy.io.loadmat`: `trainNdxs` (795×1) and `testNdxs` (654×1), 1-based frame numbers.

A truncated or damaged file raises `CorruptFileError` naming it, its size and the size expected
(the HDF5 superblock records the full size; a MATLAB 5 element tag its own), saying to re-download.
"""

import io
import struct
import zlib
from typing import Dict, List, Optional, Tuple

import h5py
import numpy as np
import scipy.io
import scipy.io.matlab
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
# Size of nyu_depth_v2_labeled.mat as published on the NYU Depth V2 site.
PUBLISHED_LABELED_BYTES = 2_972_037_809
# HDF5 file format specification, "Superblock": the 8-byte signature, searched for at byte 0 and
# then at 512, 1024, 2048, ... (after a user block).
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
HDF5_FIRST_USERBLOCK_OFFSET = 512
# Bytes read at a candidate superblock: enough for the end-of-file address of superblock
# versions 0 and 1 (at byte 24 / 28, after two 8-byte addresses) and 2 and 3 (at byte 12).
_SUPERBLOCK_READ_BYTES = 64
# MATLAB 5 MAT-file format (MathWorks "MAT-File Format", ch. 1): a 128-byte header whose last two
# bytes are the endian indicator, then data elements, each an 8-byte tag (uint32 type, uint32
# byte count) and its data, padded to 8 bytes except for miCOMPRESSED (type 15) elements.
MAT5_HEADER_BYTES = 128
MAT5_TAG_BYTES = 8
MAT5_COMPRESSED = 15
_MAT5_ENDIAN = {b"IM": "<", b"MI": ">"}
# What h5py raises on damaged HDF5 metadata or data (a failed read, a bad object reference).
_H5_ERRORS = (OSError, KeyError, ValueError, RuntimeError, TypeError)
# What scipy.io.loadmat raises on a damaged or truncated MATLAB 5 file.
_MAT5_ERRORS = (scipy.io.matlab.MatReadError, NotImplementedError, ValueError, TypeError,
                OSError, IndexError, KeyError, EOFError, zlib.error)


def _read_local(path) -> bytes:
  path = str(path)
  if not tf.io.gfile.exists(path):
    raise errors.MissingFileError(f"File not found: {path!r}.")
  with tf.io.gfile.GFile(path, "rb") as f:
    return f.read()


def _recorded_hdf5_size(head: bytes) -> Optional[int]:
  """End-of-file address stored in a superblock (the file's full size in bytes), if readable.

  The HDF5 library refuses a file shorter than this address ("truncated file").
  """
  version = head[8]
  if version in (0, 1):
    offset_bytes, start = head[13], 24 if version == 0 else 28
  elif version in (2, 3):
    offset_bytes, start = head[9], 12
  else:
    return None
  # Addresses: base, then free-space / superblock-extension, then end of file.
  end = start + 3 * offset_bytes
  if offset_bytes not in (2, 4, 8) or len(head) < end:
    return None
  recorded = int.from_bytes(head[start + 2 * offset_bytes:end], "little")
  return None if recorded == (1 << (8 * offset_bytes)) - 1 else recorded  # All ones: undefined.


def find_hdf5_superblock(stream, size: int) -> Optional[Tuple[int, Optional[int]]]:
  """`(byte offset of the HDF5 superblock, file size it records or None)`; None if no signature.

  Args:
    stream: the file, opened in binary mode (seek / read).
    size: its size in bytes.
  """
  offset = 0
  while offset + len(HDF5_SIGNATURE) <= size:
    stream.seek(offset)
    head = stream.read(_SUPERBLOCK_READ_BYTES)
    if head[:len(HDF5_SIGNATURE)] == HDF5_SIGNATURE:
      return offset, _recorded_hdf5_size(head)
    offset = HDF5_FIRST_USERBLOCK_OFFSET if offset == 0 else 2 * offset
  return None


class LabeledMat:
  """Random access to the frames of `nyu_depth_v2_labeled.mat`.

  The file is read through `tf.io.gfile.GFile` (h5py reads Python file objects), so any
  filesystem TensorFlow knows works.

  Args:
    path: path of the .mat file.

  Raises:
    MissingFileError / CorruptFileError naming the file and what was expected; a truncated or
    damaged file (found when opening it, or when a frame is read) says to re-download it.
  """

  def __init__(self, path):
    self.path = str(path)
    if not tf.io.gfile.exists(self.path) or tf.io.gfile.isdir(self.path):
      raise errors.MissingFileError(f"NYU labeled file not found: {self.path!r}.")
    self.size = tf.io.gfile.stat(self.path).length
    self._stream = tf.io.gfile.GFile(self.path, "rb")
    self._file = None
    try:
      self._open()
    except BaseException:
      self.close()
      raise

  def _corrupt(self, what: str) -> errors.CorruptFileError:
    return errors.CorruptFileError(
        f"{self.path} ({self.size:,} bytes) {what}; expected nyu_depth_v2_labeled.mat as "
        f"published ({PUBLISHED_LABELED_BYTES:,} bytes). The file is truncated or damaged: "
        "re-download it.")

  def _open(self) -> None:
    superblock = find_hdf5_superblock(self._stream, self.size)
    if superblock is None:
      raise self._corrupt(
          f"is not a MATLAB v7.3 (HDF5) file: no HDF5 signature at byte 0 or after a user block "
          f"({HDF5_FIRST_USERBLOCK_OFFSET}, {2 * HDF5_FIRST_USERBLOCK_OFFSET}, ... bytes)")
    _, recorded = superblock
    if recorded is not None and self.size < recorded:
      raise self._corrupt(f"is cut short: its HDF5 superblock records {recorded:,} bytes")
    self._stream.seek(0)
    try:
      self._file = h5py.File(self._stream, "r")
      self._check_layout()
    except errors.BuilderError:
      raise
    except _H5_ERRORS as e:
      raise self._corrupt(f"could not be read as HDF5 ({type(e).__name__}: {e})") from None

  def _check_layout(self) -> None:
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
    if self._file is not None:
      self._file.close()
      self._file = None
    self._stream.close()

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
    try:
      return {
          "image": np.ascontiguousarray(f["images"][index].transpose(2, 1, 0)).astype(np.uint8),
          "depth": np.ascontiguousarray(f["depths"][index].T[..., None]).astype(np.float32),
          "raw_depth": np.ascontiguousarray(
              f["rawDepths"][index].T[..., None]).astype(np.float32),
          "label": np.ascontiguousarray(f["labels"][index].T[..., None]).astype(np.uint16),
          "scene": self._string("scenes", index),
          "scene_type": self._string("sceneTypes", index),
      }
    except _H5_ERRORS as e:
      raise self._corrupt(
          f"has an unreadable frame {index} ({type(e).__name__}: {e})") from None


def mat5_truncation(data: bytes) -> Optional[str]:
  """Why a MATLAB 5 file is cut short (its header or a data element ends past the file), or None.

  Only the top-level element tags are followed; other damage is left to `scipy.io.loadmat`.
  """
  if len(data) < MAT5_HEADER_BYTES:
    return f"it is shorter than the {MAT5_HEADER_BYTES}-byte MATLAB 5 header"
  endian = _MAT5_ENDIAN.get(data[MAT5_HEADER_BYTES - 2:MAT5_HEADER_BYTES])
  if endian is None:
    return None  # Not MATLAB 5 at all: loadmat says so.
  offset = MAT5_HEADER_BYTES
  while offset < len(data):
    if offset + MAT5_TAG_BYTES > len(data):
      return f"the data element tag at byte {offset} is cut"
    kind, nbytes = struct.unpack_from(endian + "II", data, offset)
    if kind >> 16:  # Small data element: type, size and up to 4 bytes of data in the tag.
      offset += MAT5_TAG_BYTES
      continue
    end = offset + MAT5_TAG_BYTES + nbytes
    if end > len(data):
      return (f"the data element at byte {offset} declares {nbytes:,} bytes, so the file must be "
              f"at least {end:,} bytes")
    offset = end if kind == MAT5_COMPRESSED else end + (-nbytes % MAT5_TAG_BYTES)
  return None


def read_splits(path, num_frames: int) -> Tuple[List[int], List[int]]:
  """Reads `splits.mat` into 0-based (train, test) index lists.

  Raises:
    CorruptFileError: truncated or not a MATLAB 5 file, keys missing, indices out of
      1..num_frames, overlap.
  """
  data = _read_local(path)
  truncation = mat5_truncation(data)
  if truncation is not None:
    raise errors.CorruptFileError(
        f"{path} ({len(data):,} bytes) is truncated: {truncation}. Re-download splits.mat "
        "(the official MATLAB 5 file with trainNdxs and testNdxs).")
  try:
    mat = scipy.io.loadmat(io.BytesIO(data))
  except _MAT5_ERRORS as e:
    raise errors.CorruptFileError(
        f"{path} ({len(data):,} bytes) could not be read as a MATLAB 5 .mat file "
        f"({type(e).__name__}: {e}); expected the official splits.mat with trainNdxs and "
        "testNdxs: re-download it.") from None
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
