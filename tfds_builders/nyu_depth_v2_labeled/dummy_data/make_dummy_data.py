"""Writes the miniature NYU Depth V2 files used by the builder tests.

`python tfds_builders/nyu_depth_v2_labeled/dummy_data/make_dummy_data.py` writes, deterministically:
- `nyu_depth_v2_labeled.mat`: MATLAB v7.3 layout — an HDF5 file with a 512-byte user block that
  starts with MATLAB's 128-byte text header; arrays stored with MATLAB's column-major axes
  reversed (`images` (N, 3, W, H) uint8, `depths` / `rawDepths` (N, W, H) float32 metres,
  `labels` (N, W, H) uint16), `scenes` / `sceneTypes` as (1, N) cells of object references to
  uint16 `char` arrays in `#refs#`, each dataset tagged with its `MATLAB_class`; deflate
  compressed as MATLAB writes it (with HDF5's newest object layout, `libver="latest"`, only to
  keep the file at ~12 KB; h5py reads MATLAB's older layout the same way). 6 frames of 12×16 pixels (real frames are 480×640).
- `splits.mat`: MATLAB 5 file (scipy.io.savemat) with 1-based `trainNdxs` = [1, 3, 4] and
  `testNdxs` = [2, 5, 6] as (k, 1) double columns, like the official file.
- `download_only/`: a manual directory without the two files (tests the download path).
Frame i (0-based) pixel (r, c): image = ((7r + 3c + 40i) mod 256, 10r mod 256, (5c + i) mod 256),
depth = 1 + i + 0.25·r + 0.03125·c metres (exact in float32), raw depth = depth except 0 where
(r + c + i) mod 4 == 0, label = 100·i + r + c + 250 (values above 255 exercise 16 bits).
"""

import pathlib

import h5py
import numpy as np
import scipy.io

HERE = pathlib.Path(__file__).resolve().parent
NUM_FRAMES, HEIGHT, WIDTH = 6, 12, 16
SCENES = ["kitchen_0001a", "kitchen_0001a", "bedroom_0002", "office_0003", "office_0003",
          "bathroom_0004"]
TRAIN_1_BASED = [1, 3, 4]
TEST_1_BASED = [2, 5, 6]
# MATLAB 7.3 header: 116 bytes of text, 8 bytes subsystem offset, version 0x0200, endian "IM".
MAT73_HEADER_TEXT = (b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Wed Jan 21 00:00:00 2026"
                     b" HDF5 schema 1.00 .")
USERBLOCK = 512
MAT5_HEADER_TEXT = b"MATLAB 5.0 MAT-file, written by make_dummy_data.py"


def frame_arrays(i):
  r, c = np.mgrid[0:HEIGHT, 0:WIDTH]
  image = np.stack([(7 * r + 3 * c + 40 * i) % 256, (10 * r) % 256, (5 * c + i) % 256],
                   axis=-1).astype(np.uint8)
  depth = (1.0 + i + 0.25 * r + 0.03125 * c).astype(np.float32)
  raw = np.where((r + c + i) % 4 == 0, 0.0, depth).astype(np.float32)
  label = (100 * i + r + c + 250).astype(np.uint16)
  return image, depth, raw, label


def _char_refs(f, name, strings):
  refs = np.empty((1, len(strings)), dtype=h5py.ref_dtype)
  if "#refs#" not in f:
    gcpl = h5py.h5p.create(h5py.h5p.GROUP_CREATE)
    gcpl.set_obj_track_times(False)
    h5py.h5g.create(f.id, b"#refs#", gcpl=gcpl)
  group = f["#refs#"]
  for i, text in enumerate(strings):
    ds = group.create_dataset(f"{name}_{i}", data=np.array([[ord(ch) for ch in text]],
                                                            np.uint16).T, track_times=False)
    ds.attrs["MATLAB_class"] = np.bytes_("char")
    ds.attrs["MATLAB_int_decode"] = np.int32(2)
    refs[0, i] = ds.ref
  cell = f.create_dataset(name, data=refs, track_times=False)
  cell.attrs["MATLAB_class"] = np.bytes_("cell")


def write_mat(path):
  frames = [frame_arrays(i) for i in range(NUM_FRAMES)]
  # Low-level creation so that no object modification time is stored (reproducible bytes).
  fcpl = h5py.h5p.create(h5py.h5p.FILE_CREATE)
  fcpl.set_userblock(USERBLOCK)
  fcpl.set_obj_track_times(False)
  fapl = h5py.h5p.create(h5py.h5p.FILE_ACCESS)
  fapl.set_libver_bounds(h5py.h5f.LIBVER_LATEST, h5py.h5f.LIBVER_LATEST)
  fid = h5py.h5f.create(str(path).encode(), h5py.h5f.ACC_TRUNC, fcpl=fcpl, fapl=fapl)
  with h5py.File(fid) as f:
    # MATLAB H×W×C×N / H×W×N column-major -> h5py (N, C, W, H) / (N, W, H).
    for name, array, cls in [
        ("images", np.stack([fr[0].transpose(2, 1, 0) for fr in frames]), "uint8"),
        ("depths", np.stack([fr[1].T for fr in frames]), "single"),
        ("rawDepths", np.stack([fr[2].T for fr in frames]), "single"),
        ("labels", np.stack([fr[3].T for fr in frames]), "uint16")]:
      ds = f.create_dataset(name, data=array, compression="gzip", track_times=False)
      ds.attrs["MATLAB_class"] = np.bytes_(cls)
    _char_refs(f, "scenes", SCENES)
    _char_refs(f, "sceneTypes", [s.rsplit("_", 1)[0] for s in SCENES])
  header = MAT73_HEADER_TEXT.ljust(116, b" ") + bytes(8) + b"\x00\x02" + b"IM"
  with open(path, "r+b") as raw:
    raw.write(header.ljust(USERBLOCK, b"\x00"))


def main():
  write_mat(HERE / "nyu_depth_v2_labeled.mat")
  scipy.io.savemat(HERE / "splits.mat", {
      "trainNdxs": np.array(TRAIN_1_BASED, float)[:, None],
      "testNdxs": np.array(TEST_1_BASED, float)[:, None]}, format="5")
  # scipy writes the creation time into the 116-byte MAT-5 text header; fix it for reproducibility.
  with open(HERE / "splits.mat", "r+b") as raw:
    raw.write(MAT5_HEADER_TEXT.ljust(116, b" "))
  (HERE / "download_only").mkdir(exist_ok=True)
  (HERE / "download_only" / "README.txt").write_text(
      "Manual directory without the NYU files: the builder must download them.\n")


if __name__ == "__main__":
  main()
