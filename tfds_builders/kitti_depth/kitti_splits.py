"""KITTI raw frame lists: parsing split files and deriving the Zhou-style training split.

Accepted split-file line formats (one frame per line, blank lines and `#` comments ignored):
- Monodepth2: `2011_09_26/2011_09_26_drive_0002_sync 69 l` (side `l` = image_02, `r` = image_03);
- SfMLearner: `2011_09_26/2011_09_26_drive_0002_sync/image_02/data/0000000069.png`;
- SfMLearner static-frame list: `2011_09_26 2011_09_26_drive_0002_sync 0000000069` (side `l`).

The Zhou et al. (CVPR 2017) training split is derived from the MIT-licensed SfMLearner lists
vendored in `splits/sfmlearner/`: every frame of the raw drives that are not Eigen test scenes,
minus the static frames, keeping frames whose previous and next frames exist.
"""

import dataclasses
import re
from typing import FrozenSet, Iterable, List, Sequence, Tuple

from etils import epath

from tfds_builders.common import errors

SPLITS_DIR = epath.Path(__file__).parent / "splits" / "sfmlearner"
EIGEN_TEST_FILES = SPLITS_DIR / "test_files_eigen.txt"
EIGEN_TEST_SCENES = SPLITS_DIR / "test_scenes_eigen.txt"
STATIC_FRAMES = SPLITS_DIR / "static_frames.txt"
# Eigen et al. (NIPS 2014) test split: 697 frames from 28 drives (SfMLearner test_files_eigen.txt).
NUM_EIGEN_TEST_FRAMES = 697
NUM_EIGEN_TEST_SCENES = 28
# Frames of the Eigen test split that have an annotated depth map of the KITTI depth benchmark
# (Uhrig et al., 3DV 2017): 697 minus the 45 within 5 frames of a drive's ends (Monodepth2 README).
NUM_EIGEN_BENCHMARK_FRAMES = 652
# Camera folders of the raw data: image_02 = left colour camera, image_03 = right colour camera.
SIDE_TO_CAMERA = {"l": 2, "r": 3}
DATE_PATTERN = re.compile(r"^\d{4}_\d{2}_\d{2}$")
DRIVE_PATTERN = re.compile(r"^(\d{4}_\d{2}_\d{2})_drive_\d{4}_sync$")


@dataclasses.dataclass(frozen=True, order=True)
class Frame:
  """One frame of one camera of a KITTI raw drive.

  Attributes:
    date: recording date, e.g. "2011_09_26".
    drive: drive folder, e.g. "2011_09_26_drive_0002_sync".
    index: frame number (the 10-digit file name).
    side: "l" (image_02) or "r" (image_03).
  """
  date: str
  drive: str
  index: int
  side: str = "l"

  @property
  def camera(self) -> int:
    return SIDE_TO_CAMERA[self.side]

  @property
  def key(self) -> str:
    """Stable example key, e.g. "2011_09_26_drive_0002_sync_0000000069_l"."""
    return f"{self.drive}_{self.index:010d}_{self.side}"


def _check_drive(date: str, drive: str, where: str) -> None:
  match = DRIVE_PATTERN.match(drive)
  if not DATE_PATTERN.match(date) or not match or match.group(1) != date:
    raise errors.InvalidInputError(
        f"{where}: date {date!r} / drive {drive!r} do not follow the KITTI raw naming "
        "'<YYYY_MM_DD>' / '<YYYY_MM_DD>_drive_<NNNN>_sync'.")


def parse_split_line(line: str, where: str = "<line>") -> Frame:
  """Parses one split-file line (any of the three formats in the module docstring)."""
  fields = line.split()
  try:
    if len(fields) == 1:  # SfMLearner file path.
      parts = fields[0].split("/")
      if len(parts) != 5 or parts[3] != "data" or parts[2] not in ("image_02", "image_03"):
        raise ValueError
      date, drive, camera, _, name = parts
      frame = Frame(date, drive, int(name.split(".")[0]), "l" if camera == "image_02" else "r")
    elif len(fields) == 3 and "/" in fields[0]:  # Monodepth2.
      date, drive = fields[0].split("/")
      if fields[2] not in SIDE_TO_CAMERA:
        raise ValueError
      frame = Frame(date, drive, int(fields[1]), fields[2])
    elif len(fields) == 3:  # Static-frame list.
      frame = Frame(fields[0], fields[1], int(fields[2]), "l")
    else:
      raise ValueError
  except ValueError:
    raise errors.InvalidInputError(
        f"{where}: cannot parse {line!r}; expected '<date>/<drive> <frame> <l|r>' "
        "(Monodepth2), '<date>/<drive>/image_0{2,3}/data/<frame>.png' (SfMLearner) or "
        "'<date> <drive> <frame>'.") from None
  _check_drive(frame.date, frame.drive, where)
  return frame


def read_split_file(path) -> List[Frame]:
  """Reads a split file into a list of `Frame`s, in file order, duplicates rejected."""
  path = epath.Path(path)
  if not path.exists():
    raise errors.MissingFileError(f"Split file not found: {str(path)!r}.")
  frames, seen = [], set()
  for number, line in enumerate(path.read_text().splitlines(), start=1):
    if not line.strip() or line.lstrip().startswith("#"):
      continue
    frame = parse_split_line(line, f"{path}:{number}")
    if frame in seen:
      raise errors.InvalidInputError(f"{path}:{number}: frame {frame.key} is listed twice.")
    seen.add(frame)
    frames.append(frame)
  if not frames:
    raise errors.InvalidInputError(f"Split file {str(path)!r} lists no frame.")
  return frames


def eigen_test_frames() -> List[Frame]:
  """The 697 Eigen test frames (left camera) from the vendored SfMLearner list."""
  return read_split_file(EIGEN_TEST_FILES)


def eigen_test_scenes() -> FrozenSet[str]:
  """The 28 Eigen test drives, as drive names without the `_sync` suffix."""
  return frozenset(line.strip() for line in EIGEN_TEST_SCENES.read_text().splitlines()
                   if line.strip())


def static_frames() -> FrozenSet[Tuple[str, int]]:
  """`(drive, index)` of the frames SfMLearner marks static."""
  return frozenset((f.drive, f.index) for f in read_split_file(STATIC_FRAMES))


def derive_zhou_frames(available: Iterable[Tuple[str, str, Sequence[int]]],
                       test_scenes: FrozenSet[str], static: FrozenSet[Tuple[str, int]]
                       ) -> List[Frame]:
  """Zhou-style training targets from the drives present.

  Args:
    available: `(date, drive, frame indices present)` for each raw drive found.
    test_scenes: drive names without `_sync` to exclude (Eigen test scenes).
    static: `(drive, index)` pairs to drop as targets.

  Returns:
    Left-camera frames t whose t−1 and t+1 exist, sorted by (date, drive, index).
  """
  frames = []
  for date, drive, indices in available:
    if drive[:-len("_sync")] in test_scenes:
      continue
    present = set(indices)
    for index in sorted(present):
      if (index - 1 in present and index + 1 in present
          and (drive, index) not in static):
        frames.append(Frame(date, drive, index, "l"))
  return sorted(frames)
