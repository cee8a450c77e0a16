"""TFDS builder `kitti_depth`: KITTI raw drives as depth-evaluation and self-supervised sets.

Configs (see README.md for counts, features and the evaluation each is meant for):
- `eigen`: the 697 Eigen test frames (Eigen et al., NIPS 2014), ground truth from the Velodyne
  scan projected into camera 2 exactly as the standard evaluation (`tfds_builders.common.lidar`),
  depth = camera z.
- `eigen_lidar_x`: the same frames with the legacy depth value, the LiDAR forward coordinate x
  (what Monodepth2's `gt_depths.npz` stores), for comparability with published tables.
- `eigen_benchmark`: the Eigen test frames that have an annotated depth map of the KITTI depth
  benchmark (Uhrig et al., 3DV 2017; 652 frames): uint16 PNG, metres = value / 256, 0 = invalid.
  With the built-in list a count other than 652 raises `MissingFileError` (`benchmark_frames`);
  a user list is used exactly.
- `eigen_zhou`: self-supervised training clips (t−1, t, t+1) of the left camera with the stereo
  partner frame (Zhou et al., CVPR 2017; Godard et al., ICCV 2019), split by drive.
- `eigen_zhou_depth`: supervised training data: `train` / `validation` = the target frames of the
  `eigen_zhou` lists, each a single image with its LiDAR ground truth (camera z) as in `eigen`;
  `test` = the `eigen` test frames. Train / validation frames without a Velodyne scan are skipped
  (count logged); a missing test scan raises, as in `eigen`.

The manual directory may hold the raw data extracted, zipped, or both (`resolve_raw_roots`).

Every example carries intrinsics (3×3, pixels of the stored image, 0-based pixel centres), the
stereo baseline (metres), and date / drive / frame id metadata; keys are `<drive>_<frame>_<side>`.
"""

import collections
import functools
from typing import Dict, List, Optional, Sequence, Tuple, Union

import dataclasses
from absl import logging
from etils import epath
import numpy as np
import PIL.Image
import tensorflow_datasets as tfds

from tfds_builders.common import archives
from tfds_builders.common import errors
from tfds_builders.common import generation
from tfds_builders.common import images
from tfds_builders.common import kitti_calib
from tfds_builders.common import lidar
from tfds_builders.common import manual as manual_lib
from tfds_builders.kitti_depth import kitti_splits

# KITTI depth benchmark PNGs store metres·256 in uint16, 0 = no measurement (Uhrig et al. 2017,
# devkit_depth readme).
ANNOTATED_DEPTH_SCALE = 256.0
# Monodepth2's training resolution (Godard et al., ICCV 2019, section 4): stored eigen_zhou size.
MONODEPTH2_IMAGE_SIZE = (192, 640)
# Validation drives of the derived eigen_zhou split: two non-test drives holding 1,896 of the
# 22,117 distinct target frames of the Zhou split (8.6%, close to the 10% of Monodepth2's
# eigen_zhou validation list), so that the split is by drive.
DEFAULT_VALIDATION_DRIVES = (
    "2011_09_26_drive_0022_sync",
    "2011_10_03_drive_0042_sync",
)
# Where the depth-benchmark archive `data_depth_annotated.zip` may have been extracted, relative
# to the raw root (the archive holds train/<drive>/... and val/<drive>/...).
ANNOTATION_ROOTS = ("", "train", "val", "data_depth_annotated/train", "data_depth_annotated/val")
HOMEPAGE = "https://www.cvlibs.net/datasets/kitti/raw_data.php"
# Pixel-centre offset used when rescaling intrinsics: u' = (u + 0.5)·s − 0.5 maps pixel centres
# of the original image to those of the resized one (half-pixel-centre resizing).
HALF_PIXEL = 0.5

MANUAL_DOWNLOAD_INSTRUCTIONS = """\
KITTI requires registration, so the files are downloaded by hand from
https://www.cvlibs.net/datasets/kitti/raw_data.php (and, for `eigen_benchmark`,
https://www.cvlibs.net/datasets/kitti/eval_depth.php?benchmark=depth_prediction).
Put into the manual directory (default ~/tensorflow_datasets/downloads/manual/), each file
extracted or as the original zip archive (zips are extracted safely on first use; extracted and
zipped files may be mixed, e.g. extracted calibration folders next to zipped drives):
  * `<date>_calib.zip` for every recording date you use (2011_09_26, 2011_09_28, 2011_09_29,
    2011_09_30, 2011_10_03) -> <date>/calib_cam_to_cam.txt, <date>/calib_velo_to_cam.txt;
  * `<date>_drive_<NNNN>_sync.zip` ("synced+rectified data") for every drive:
      eigen / eigen_lidar_x: the 28 Eigen test drives (splits/sfmlearner/test_scenes_eigen.txt);
      eigen_benchmark: the same 28 drives plus `data_depth_annotated.zip` (annotated depth maps
        of all 28 drives: 652 of the 697 Eigen test frames have one);
      eigen_zhou: all the other drives you want to train on;
    -> <date>/<date>_drive_<NNNN>_sync/{image_02,image_03}/data/*.png,
       velodyne_points/data/*.bin;
  * optionally your own split lists in <manual_dir>/split_files/<config name>/
    (`test_files.txt`, or `train_files.txt` and `val_files.txt`), in Monodepth2 or SfMLearner
    format: they replace the built-in lists exactly.
"""

_IMAGE_FOLDER = "image_0{camera}/data"
_VELODYNE_FOLDER = "velodyne_points/data"
_ANNOTATED_FOLDER = "proj_depth/groundtruth/image_0{camera}"
_SPLIT_FILES_DIR = "split_files"
_SPLIT_FILE_NAMES = {"test": "test_files.txt", "train": "train_files.txt",
                     "validation": "val_files.txt"}
KINDS = ("eigen", "eigen_benchmark", "eigen_zhou", "eigen_zhou_depth")
# `eigen_zhou_depth` reads the user split lists of the configs whose frames it reuses when its own
# folder `<manual_dir>/split_files/eigen_zhou_depth/` lacks them: `train_files.txt` (with the
# `val_files.txt` next to it) from `split_files/eigen_zhou/`, `test_files.txt` from
# `split_files/eigen/`.
ZHOU_DEPTH_LIST_FALLBACKS = {"train": "eigen_zhou", "test": "eigen"}
# How many skipped frame keys the "no Velodyne scan" log line names.
_LOGGED_MISSING_KEYS = 5
# Folder of the manual-directory zips once extracted, under the download manager's extract dir.
_EXTRACTED_FOLDER = "kitti_raw"
# Where the raw data is: one directory, or several searched in order (the manual directory, then
# the extraction of its zips), each holding `<date>/...` (and the annotated-map folders).
Roots = Union[str, epath.Path, Sequence[str]]


@dataclasses.dataclass
class KittiDepthConfig(tfds.core.BuilderConfig):
  """Options of a `kitti_depth` config.

  Attributes:
    kind: "eigen" (LiDAR ground truth), "eigen_benchmark" (annotated ground truth),
      "eigen_zhou" (training clips) or "eigen_zhou_depth" (single frames of the Zhou split with
      LiDAR ground truth, plus the Eigen test frames).
    depth_mode: for "eigen" / "eigen_zhou_depth": "camera_z" or "lidar_x"
      (`tfds_builders.common.lidar`).
    image_size: `(H, W)` the eigen_zhou images are resized to (PIL Lanczos, as Monodepth2's
      loader); None keeps the raw size (375×1242 on 2011_09_26; sizes differ between dates).
    split_dir: directory with user split files (`test_files.txt` / `train_files.txt`,
      `val_files.txt`) used instead of the built-in lists; `<manual_dir>/split_files/<name>/`
      is used when this is None and that directory exists.
    validation_drives: drives of the derived eigen_zhou validation split.
    use_beam: generate with Apache Beam (`tfds_builders.common.generation`).
  """
  kind: str = "eigen"
  depth_mode: str = "camera_z"
  image_size: Optional[Tuple[int, int]] = None
  split_dir: Optional[str] = None
  validation_drives: Tuple[str, ...] = DEFAULT_VALIDATION_DRIVES
  use_beam: bool = False


def _frame_name(index: int, suffix: str) -> str:
  return f"{index:010d}.{suffix}"


def raw_roots(root: Roots) -> Tuple[str, ...]:
  """`root` as a tuple of directories (a single path gives a 1-tuple)."""
  if isinstance(root, (list, tuple)):
    return tuple(str(r) for r in root)
  return (str(root),)


def _describe(root: Roots) -> str:
  return " or ".join(repr(r) for r in raw_roots(root))


def _first_existing(root: Roots, *parts: str) -> epath.Path:
  """`<r>/<parts>` for the first root r where it exists, else under the first root."""
  candidates = [epath.Path(r).joinpath(*parts) for r in raw_roots(root)]
  return next((c for c in candidates if c.exists()), candidates[0])


def date_dir(root: Roots, date: str) -> epath.Path:
  """`<r>/<date>` of the first root r holding that date's `calib_cam_to_cam.txt`."""
  return _first_existing(root, date, kitti_calib.CAM_TO_CAM_FILENAME).parent


def drive_dir(root: Roots, date: str, drive: str) -> epath.Path:
  """`<r>/<date>/<drive>` of the first root r holding that drive."""
  return _first_existing(root, date, drive)


def _missing(path, what: str):
  return errors.MissingFileError(
      f"KITTI {what} not found: {str(path)!r}.\n{MANUAL_DOWNLOAD_INSTRUCTIONS}")


@functools.lru_cache(maxsize=None)
def _calibration(date_path: str) -> kitti_calib.KittiCalibration:
  try:
    return kitti_calib.KittiCalibration.from_dir(date_path)
  except errors.MissingFileError as e:
    raise errors.MissingFileError(f"{e}\n{MANUAL_DOWNLOAD_INSTRUCTIONS}") from None


def _read_image(path: epath.Path) -> np.ndarray:
  if not path.exists():
    raise _missing(path, "image")
  return images.read_rgb(path)


def _resize(image: np.ndarray, size: Optional[Tuple[int, int]]) -> np.ndarray:
  if size is None or tuple(image.shape[:2]) == tuple(size):
    return image
  height, width = size
  return np.asarray(PIL.Image.fromarray(image).resize((width, height), PIL.Image.LANCZOS))


def scale_intrinsics(k: np.ndarray, from_size: Sequence[int], to_size: Sequence[int]
                     ) -> np.ndarray:
  """Rescales a 0-based pixel-centre K from image size `from_size` to `to_size` (both (H, W)).

  fx' = fx·sx, cx' = (cx + 0.5)·sx − 0.5 (and likewise for y) with sx = W'/W, sy = H'/H.
  """
  sy, sx = to_size[0] / from_size[0], to_size[1] / from_size[1]
  k = np.array(k, dtype=np.float64)
  k[0, 0] *= sx
  k[1, 1] *= sy
  k[0, 2] = (k[0, 2] + HALF_PIXEL) * sx - HALF_PIXEL
  k[1, 2] = (k[1, 2] + HALF_PIXEL) * sy - HALF_PIXEL
  return k


def _check_size(array: np.ndarray, expected, path, what: str) -> None:
  if tuple(array.shape[:2]) != tuple(expected):
    raise errors.CorruptFileError(
        f"{path}: {what} has size {tuple(array.shape[:2])} (H, W) but the calibration "
        f"S_rect says {tuple(expected)}; the file does not belong to this date's calibration.")


def _annotated_path(root: Roots, frame: kitti_splits.Frame) -> Optional[epath.Path]:
  for top in raw_roots(root):
    for sub in ANNOTATION_ROOTS:
      base = epath.Path(top) / sub if sub else epath.Path(top) / frame.date
      path = (base / frame.drive / _ANNOTATED_FOLDER.format(camera=frame.camera)
              / _frame_name(frame.index, "png"))
      if path.exists():
        return path
  return None


def velodyne_path(frame: kitti_splits.Frame, root: Roots) -> epath.Path:
  """`<root>/<date>/<drive>/velodyne_points/data/<frame:010d>.bin` (root: see `drive_dir`)."""
  return (drive_dir(root, frame.date, frame.drive) / _VELODYNE_FOLDER
          / _frame_name(frame.index, "bin"))


def benchmark_frames(frames: Sequence[kitti_splits.Frame], root: Roots
                     ) -> List[kitti_splits.Frame]:
  """The frames of the built-in Eigen list that have an annotated depth map, in list order.

  Raises:
    MissingFileError: their number is not `NUM_EIGEN_BENCHMARK_FRAMES` (652): annotated maps
      are missing (the message names the drives without any map, and those with fewer), so the
      set is not the standard `eigen_benchmark` one.
  """
  present = [f for f in frames if _annotated_path(root, f) is not None]
  if len(present) == kitti_splits.NUM_EIGEN_BENCHMARK_FRAMES:
    return present
  listed = collections.Counter(f.drive for f in frames)
  found = collections.Counter(f.drive for f in present)
  without = sorted(d for d in listed if not found[d])
  fewer = sorted(f"{d} ({found[d]} of {listed[d]})" for d in listed if 0 < found[d] < listed[d])
  raise errors.MissingFileError(
      f"eigen_benchmark: {len(present)} of the {len(frames)} Eigen test frames have an annotated "
      f"depth map under {_describe(root)}; expected {kitti_splits.NUM_EIGEN_BENCHMARK_FRAMES} "
      f"(all but the frames within 5 frames of a drive's ends, which the depth benchmark does not "
      f"annotate). Drives without any annotated map ({len(without)} of {len(listed)}): "
      f"{', '.join(without) or 'none'}. Drives with maps for only some listed frames: "
      f"{', '.join(fewer) or 'none'}. Put data_depth_annotated.zip "
      f"(https://www.cvlibs.net/datasets/kitti/eval_depth.php?benchmark=depth_prediction) into "
      f"the manual directory, zipped or extracted (train/<drive>/proj_depth/... and "
      f"val/<drive>/...), or list the frames to evaluate in "
      f"split_files/eigen_benchmark/{_SPLIT_FILE_NAMES['test']} (used exactly)."
      f"\n{MANUAL_DOWNLOAD_INSTRUCTIONS}")


def split_by_scan(frames: Sequence[kitti_splits.Frame], root: Roots
                  ) -> Tuple[List[kitti_splits.Frame], List[kitti_splits.Frame]]:
  """`(frames with a Velodyne scan, frames without)`, each in the input order."""
  present, missing = [], []
  for frame in frames:
    (present if velodyne_path(frame, root).exists() else missing).append(frame)
  return present, missing


def _metadata(frame: kitti_splits.Frame, calib: kitti_calib.KittiCalibration) -> Dict:
  return {
      "date": frame.date,
      "drive": frame.drive,
      "frame_id": np.int32(frame.index),
      "side": frame.side,
      "stereo_baseline": np.float32(calib.stereo_baseline()),
  }


def make_eval_example(frame: kitti_splits.Frame, root: Roots, source: str,
                      depth_mode: str = "camera_z"):
  """One `eigen` / `eigen_benchmark` / `eigen_zhou_depth` example (image of `frame`'s camera).

  Args:
    frame: the frame (left or right camera).
    root: raw-data root, or several searched in order (`resolve_raw_roots`).
    source: "lidar" (projected scan) or "annotated" (depth-benchmark PNG).
    depth_mode: "camera_z" or "lidar_x" for `source="lidar"`.

  Returns:
    `(key, example)`; depth `(H, W, 1)` float32 metres, 0 = invalid.
  """
  calib = _calibration(str(date_dir(root, frame.date)))
  size = calib.image_size(frame.camera)
  image_path = (drive_dir(root, frame.date, frame.drive) / _IMAGE_FOLDER.format(
      camera=frame.camera) / _frame_name(frame.index, "png"))
  image = _read_image(image_path)
  _check_size(image, size, image_path, "image")
  if source == "lidar":
    scan_path = velodyne_path(frame, root)
    if not scan_path.exists():
      raise _missing(scan_path, "Velodyne scan")
    depth = lidar.project_to_depth(lidar.read_velodyne_bin(scan_path),
                                   calib.velo_to_image(frame.camera), size, depth_mode)
  else:
    path = _annotated_path(root, frame)
    if path is None:
      raise _missing(f"{frame.drive}/{_ANNOTATED_FOLDER.format(camera=frame.camera)}/"
                     f"{_frame_name(frame.index, 'png')}", "annotated depth map")
    depth = images.read_png16(path, channels=1)[..., 0].astype(np.float32) / np.float32(
        ANNOTATED_DEPTH_SCALE)
    _check_size(depth, size, path, "annotated depth map")
  depth = depth[..., None].astype(np.float32)
  example = {
      "image": image,
      "depth": depth,
      "valid": depth > 0,
      "intrinsics": calib.intrinsics(frame.camera).astype(np.float32),
      **_metadata(frame, calib),
  }
  return frame.key, example


def make_clip_example(frame: kitti_splits.Frame, root: Roots,
                      image_size: Optional[Tuple[int, int]] = None):
  """One `eigen_zhou` example: frames (t−1, t, t+1) of `frame`'s camera and the stereo partner.

  Returns:
    `(key, example)`; `frames` `(3, H, W, 3)` uint8, `stereo_image` `(H, W, 3)` uint8,
    `intrinsics` `(3, 3)` float32 in pixels of the stored size.
  """
  calib = _calibration(str(date_dir(root, frame.date)))
  raw_size = calib.image_size(frame.camera)
  frames_dir = drive_dir(root, frame.date, frame.drive)
  partner = 5 - frame.camera  # image_02 <-> image_03.
  clip = []
  for index in (frame.index - 1, frame.index, frame.index + 1):
    path = frames_dir / _IMAGE_FOLDER.format(camera=frame.camera) / _frame_name(index, "png")
    image = _read_image(path)
    _check_size(image, raw_size, path, "image")
    clip.append(_resize(image, image_size))
  stereo_path = frames_dir / _IMAGE_FOLDER.format(camera=partner) / _frame_name(
      frame.index, "png")
  stereo = _read_image(stereo_path)
  _check_size(stereo, raw_size, stereo_path, "image")
  stored_size = image_size or raw_size
  example = {
      "frames": np.stack(clip),
      "stereo_image": _resize(stereo, image_size),
      "intrinsics": scale_intrinsics(calib.intrinsics(frame.camera), raw_size,
                                     stored_size).astype(np.float32),
      **_metadata(frame, calib),
  }
  return frame.key, example


def list_drives(root: Roots) -> List[Tuple[str, str, List[int]]]:
  """`(date, drive, sorted left-camera frame indices)` of every raw drive under the root(s).

  A drive present under several roots is listed once, from the first (as `drive_dir` reads it).
  """
  found = {}
  for top in raw_roots(root):
    for date_path in epath.Path(top).iterdir():
      if not (date_path.is_dir() and kitti_splits.DATE_PATTERN.match(date_path.name)):
        continue
      for drive_path in date_path.iterdir():
        key = (date_path.name, drive_path.name)
        if (key in found or not drive_path.is_dir()
            or not kitti_splits.DRIVE_PATTERN.match(drive_path.name)):
          continue
        image_dir = drive_path / _IMAGE_FOLDER.format(camera=2)
        found[key] = sorted(int(p.name.split(".")[0]) for p in image_dir.glob("*.png")) if (
            image_dir.exists()) else []
  return [(date, drive, indices) for (date, drive), indices in sorted(found.items())]


def resolve_raw_roots(manual_dir, extract_dir) -> Tuple[str, ...]:
  """The directories holding the raw data, searched in this order by the example functions.

  `manual_dir` itself (extracted `<date>/` folders, annotated-map folders), then, when it holds
  `.zip` archives, `<extract_dir>/kitti_raw` where every one of them is extracted safely (once:
  a marker file records each finished extraction). Extracted and zipped files may be mixed.

  Raises:
    MissingFileError: `manual_dir` does not exist, or holds neither `<date>/` folders nor zips.
    UnsafeArchiveError / CorruptFileError: from `archives.safe_extract`.
  """
  manual_dir = epath.Path(manual_dir)
  if not manual_dir.exists():
    raise errors.MissingFileError(
        f"Manual directory {str(manual_dir)!r} does not exist.\n{MANUAL_DOWNLOAD_INSTRUCTIONS}")
  has_dates = any(p.is_dir() and kitti_splits.DATE_PATTERN.match(p.name)
                  for p in manual_dir.iterdir())
  zips = sorted(manual_dir.glob("*.zip"))
  if not has_dates and not zips:
    raise errors.MissingFileError(
        f"No KITTI raw data in {str(manual_dir)!r} (neither <date>/ folders nor .zip archives)."
        f"\n{MANUAL_DOWNLOAD_INSTRUCTIONS}")
  if not zips:
    return (str(manual_dir),)
  target = epath.Path(extract_dir) / _EXTRACTED_FOLDER
  for archive in zips:
    marker = target / f".{archive.name}.extracted"
    if not marker.exists():
      archives.safe_extract(archive, target)
      marker.write_text("ok")
  return (str(manual_dir), str(target))


class Builder(tfds.core.GeneratorBasedBuilder):
  """KITTI raw data for depth evaluation (Eigen split) and self-supervised training (Zhou split)."""

  VERSION = tfds.core.Version("1.1.0")
  RELEASE_NOTES = {
      "1.1.0": "New config eigen_zhou_depth (supervised: Zhou-split frames with LiDAR depth, "
               "Eigen test frames); the other configs are unchanged.",
      "1.0.0": "Initial release.",
  }
  MANUAL_DOWNLOAD_INSTRUCTIONS = MANUAL_DOWNLOAD_INSTRUCTIONS
  BUILDER_CONFIGS = [
      KittiDepthConfig(name="eigen", kind="eigen", depth_mode="camera_z",
                       description="697 Eigen test frames, LiDAR ground truth as camera z."),
      KittiDepthConfig(name="eigen_lidar_x", kind="eigen", depth_mode="lidar_x",
                       description="697 Eigen test frames, legacy LiDAR-x ground truth."),
      KittiDepthConfig(name="eigen_benchmark", kind="eigen_benchmark",
                       description="652 Eigen test frames with annotated depth maps."),
      KittiDepthConfig(name="eigen_zhou", kind="eigen_zhou", image_size=MONODEPTH2_IMAGE_SIZE,
                       description="Zhou-split (t-1, t, t+1) training clips with stereo partner."),
      KittiDepthConfig(name="eigen_zhou_depth", kind="eigen_zhou_depth", depth_mode="camera_z",
                       description="Zhou-split frames with LiDAR ground truth as camera z "
                                   "(train / validation) and the 697 Eigen test frames (test)."),
  ]
  DEFAULT_BUILDER_CONFIG_NAME = "eigen"

  def _info(self) -> tfds.core.DatasetInfo:
    config = self.builder_config
    if config.kind not in KINDS:
      raise errors.InvalidInputError(f"kind must be one of {KINDS}; got {config.kind!r}.")
    metadata = {
        "intrinsics": tfds.features.Tensor(
            shape=(3, 3), dtype=np.float32,
            doc="K of the stored image, pixels, 0-based pixel centres (cx, cy of P_rect - 1)."),
        "stereo_baseline": tfds.features.Scalar(
            dtype=np.float32, doc="Distance between the left and right cameras, metres."),
        "date": tfds.features.Text(doc="Recording date, e.g. 2011_09_26."),
        "drive": tfds.features.Text(doc="Raw drive, e.g. 2011_09_26_drive_0002_sync."),
        "frame_id": tfds.features.Scalar(dtype=np.int32, doc="Frame number in the drive."),
        "side": tfds.features.Text(doc="'l' (image_02, left) or 'r' (image_03, right)."),
    }
    if config.kind == "eigen_zhou":
      shape = (None, None, 3) if config.image_size is None else (*config.image_size, 3)
      features = tfds.features.FeaturesDict({
          "frames": tfds.features.Sequence(tfds.features.Image(shape=shape), length=3,
                                           doc="Frames t-1, t, t+1 of one camera, uint8."),
          "stereo_image": tfds.features.Image(shape=shape, doc="Other camera at t, uint8."),
          **metadata,
      })
      supervised_keys = None
    else:
      features = tfds.features.FeaturesDict({
          "image": tfds.features.Image(shape=(None, None, 3), doc="Camera image, uint8."),
          "depth": tfds.features.Tensor(
              shape=(None, None, 1), dtype=np.float32, encoding=tfds.features.Encoding.ZLIB,
              doc="Ground-truth depth, metres, 0 = invalid."),
          "valid": tfds.features.Tensor(
              shape=(None, None, 1), dtype=np.bool_, encoding=tfds.features.Encoding.ZLIB,
              doc="depth > 0."),
          **metadata,
      })
      supervised_keys = ("image", "depth")
    return self.dataset_info_from_configs(
        features=features, supervised_keys=supervised_keys, homepage=HOMEPAGE)

  def _split_dir(self) -> Optional[epath.Path]:
    config = self.builder_config
    if config.split_dir:
      return epath.Path(config.split_dir)
    candidate = epath.Path(self._manual_dir_root) / _SPLIT_FILES_DIR / config.name
    return candidate if candidate.exists() else None

  def _list_dir(self, split: str) -> Optional[epath.Path]:
    """`eigen_zhou_depth`: the folder whose `_SPLIT_FILE_NAMES[split]` user list is used.

    `config.split_dir` if set, else `split_files/eigen_zhou_depth/`, else the folder of the
    config the split reuses (`ZHOU_DEPTH_LIST_FALLBACKS`); None (built-in / derived frames) when
    none of them holds the file.
    """
    config = self.builder_config
    if config.split_dir:
      candidates = [epath.Path(config.split_dir)]
    else:
      base = epath.Path(self._manual_dir_root) / _SPLIT_FILES_DIR
      candidates = [base / config.name, base / ZHOU_DEPTH_LIST_FALLBACKS[split]]
    for folder in candidates:
      if (folder / _SPLIT_FILE_NAMES[split]).exists():
        return folder
    return None

  def _zhou_splits(self, root: Roots, split_dir: Optional[epath.Path]
                   ) -> Dict[str, List[kitti_splits.Frame]]:
    """Target frames of `eigen_zhou`: user lists in `split_dir`, else derived by drive."""
    config = self.builder_config
    if split_dir is not None:
      splits = {"train": kitti_splits.read_split_file(split_dir / _SPLIT_FILE_NAMES["train"])}
      val_file = split_dir / _SPLIT_FILE_NAMES["validation"]
      if val_file.exists():
        splits["validation"] = kitti_splits.read_split_file(val_file)
      return splits
    frames = kitti_splits.derive_zhou_frames(
        list_drives(root), kitti_splits.eigen_test_scenes(), kitti_splits.static_frames())
    if not frames:
      raise errors.MissingFileError(
          f"No training frame found under {_describe(root)}: no non-test drive has three "
          f"consecutive frames.\n{MANUAL_DOWNLOAD_INSTRUCTIONS}")
    validation = set(config.validation_drives)
    return {"train": [f for f in frames if f.drive not in validation],
            "validation": [f for f in frames if f.drive in validation]}

  def _test_frames(self, root: Roots, split_dir: Optional[epath.Path]
                   ) -> List[kitti_splits.Frame]:
    """Eigen test frames: the user list in `split_dir` (exactly), else the vendored 697.

    `eigen_benchmark` with the vendored list keeps the frames that have an annotated map and
    checks that they are the standard 652 (`benchmark_frames`).
    """
    if split_dir is not None:
      return kitti_splits.read_split_file(split_dir / _SPLIT_FILE_NAMES["test"])
    frames = kitti_splits.eigen_test_frames()
    if self.builder_config.kind == "eigen_benchmark":
      frames = benchmark_frames(frames, root)
    return frames

  def _zhou_depth_splits(self, root: Roots) -> Dict[str, List[kitti_splits.Frame]]:
    """`eigen_zhou_depth`: Zhou target frames that have a scan, and the Eigen test frames.

    Train / validation frames without a Velodyne scan are skipped and counted in a warning (the
    frames come from image lists; supervision needs the scan). Test frames are kept as listed:
    a missing test scan raises `MissingFileError` during generation, as for `eigen`.
    """
    splits = self._zhou_splits(root, self._list_dir("train"))
    for name in list(splits):
      present, missing = split_by_scan(splits[name], root)
      if missing:
        logging.warning(
            "kitti_depth/%s %s: skipped %d of %d frames that have no Velodyne scan (%s%s).",
            self.builder_config.name, name, len(missing), len(splits[name]),
            ", ".join(f.key for f in missing[:_LOGGED_MISSING_KEYS]),
            ", ..." if len(missing) > _LOGGED_MISSING_KEYS else "")
      if not present:
        raise errors.MissingFileError(
            f"None of the {len(splits[name])} {name} frames has a Velodyne scan under "
            f"{_describe(root)} (e.g. {str(velodyne_path(splits[name][0], root))!r}): extract the "
            f"drives' velodyne_points.\n{MANUAL_DOWNLOAD_INSTRUCTIONS}")
      splits[name] = present
    splits["test"] = self._test_frames(root, self._list_dir("test"))
    return splits

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    config = self.builder_config
    manual_dir = manual_lib.manual_dir(dl_manager, MANUAL_DOWNLOAD_INSTRUCTIONS)
    self._manual_dir_root = str(manual_dir)
    root = resolve_raw_roots(manual_dir,
                             getattr(dl_manager, "_extract_dir", dl_manager.download_dir))
    if config.kind == "eigen_zhou_depth":
      splits = self._zhou_depth_splits(root)
    elif config.kind == "eigen_zhou":
      splits = self._zhou_splits(root, self._split_dir())
    else:
      splits = {"test": self._test_frames(root, self._split_dir())}
    return {name: self._generate_examples(frames=frames, root=root)
            for name, frames in splits.items()}

  def _generate_examples(self, frames, root):
    config = self.builder_config
    if config.kind == "eigen_zhou":
      process = functools.partial(_process_clip, root=root, image_size=config.image_size)
    else:
      process = functools.partial(
          _process_eval, root=root,
          source="annotated" if config.kind == "eigen_benchmark" else "lidar",
          depth_mode=config.depth_mode)
    return generation.generate(frames, process, use_beam=config.use_beam)


def _process_clip(frame, root, image_size):
  return make_clip_example(frame, root, image_size)


def _process_eval(frame, root, source, depth_mode):
  return make_eval_example(frame, root, source, depth_mode)
