"""TFDS builder `video_frames`: your own videos, or folders of frames, to self-supervised clips.

Input (manual directory): one sub-folder per sequence, holding its frames as 8-bit PNG or JPEG
files, ordered by the numbers in their names (`frame_2.png` < `frame_10.png`):

  <manual_dir>/<sequence>/<frames>.{png,jpg,jpeg}
  <manual_dir>/<sequence>/intrinsics.txt      optional, per sequence
  <manual_dir>/intrinsics.txt                 optional, for every sequence without its own
                                              (also when the sequences come in archives / videos)

Zip / tar archives of such folders placed in the manual directory are extracted safely first.
Video files (`VIDEO_SUFFIXES`: .mp4, .avi, .mov, .mkv, ...) are decoded once with PyAV (FFmpeg's
libraries, bundled in the `av` wheels, a tfdepth dependency): `<manual_dir>/<name>.mp4` becomes
the sequence `<name>`, every frame of its first video stream stored as a lossless PNG
`<extract_dir>/video_frames/<name>/000000.png, 000001.png, ...` (stream order, RGB as decoded;
container rotation metadata is not applied). Its intrinsics: `<manual_dir>/<name>/intrinsics.txt`
if present, else the global file. Archives and video files go into the same extraction folder,
which then is the only root: plain sequence folders next to them are refused (put every sequence
in an archive, a video file, or a folder, not a mix).

Processing, per sequence (Zhou et al., CVPR 2017; Gordon et al., ICCV 2019 "Depth from videos
in the wild" for unknown intrinsics):
1. frame-rate subsampling: keep every `frame_stride`-th frame;
2. static-frame removal: a frame whose mean absolute grey-level difference to the last kept frame
   (values in [0, 1], on a `STATIC_CHECK_SIZE` thumbnail) is below `static_threshold` is dropped —
   the camera did not move enough for photometric self-supervision;
3. clips (t−1, t, t+1) of consecutive kept frames, resized to `image_size` if given (PIL Lanczos),
   intrinsics rescaled to the stored size.

Intrinsics file: one line of 4 numbers `fx fy cx cy`, or 9 numbers (3×3 K, row-major), in pixels
of the frames as stored on disk, 0-based pixel centres (tfdepth convention). Without a file,
`intrinsics` is all zeros and `has_intrinsics` is False (for the learned-intrinsics trainer).
"""

import dataclasses
import functools
import re
from typing import Dict, List, Optional, Tuple

from etils import epath
import numpy as np
import PIL.Image
import tensorflow_datasets as tfds

from tfds_builders.common import archives
from tfds_builders.common import errors
from tfds_builders.common import generation
from tfds_builders.common import images
from tfds_builders.common import manual as manual_lib

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg")
# File name of the k-th decoded frame (0-based, stream order) of a video file.
DECODED_FRAME_NAME = "{index:06d}.png"
# Folder, under the download manager's extract dir, of extracted archives and decoded videos.
EXTRACTED_FOLDER = "video_frames"
ARCHIVE_SUFFIXES = archives.ZIP_SUFFIXES + archives.TAR_SUFFIXES
INTRINSICS_FILENAME = "intrinsics.txt"
# Thumbnail (H, W) on which frame differences are computed: cheap, and insensitive to sensor noise.
STATIC_CHECK_SIZE = (48, 64)
# ITU-R BT.601 luma weights for the grey level used by the static check.
LUMA_WEIGHTS = (0.299, 0.587, 0.114)
HALF_PIXEL = 0.5
CLIP_LENGTH = 3

MANUAL_DOWNLOAD_INSTRUCTIONS = """\
Put one folder per video in the manual directory, each holding the video's frames as PNG or JPEG
files whose names sort in time order by their numbers (e.g. 000001.jpg, 000002.jpg, ...):
  <manual_dir>/<sequence>/<frames>.{png,jpg}
or the video files themselves (<manual_dir>/<sequence>.mp4, .avi, .mov, .mkv, .webm, ...: every
frame is decoded once with PyAV), or zip / tar archives of such folders; not a mix of folders
with archives or videos.
Optional: <sequence>/intrinsics.txt (or one <manual_dir>/intrinsics.txt for all) with
"fx fy cx cy" in pixels of the frames, 0-based pixel centres.
"""


@dataclasses.dataclass
class VideoFramesConfig(tfds.core.BuilderConfig):
  """Options of `video_frames`.

  Attributes:
    image_size: `(H, W)` to resize frames to, or None to keep the size on disk (then all
      sequences may differ in size).
    frame_stride: keep every k-th frame (frame-rate subsampling), k >= 1.
    static_threshold: mean absolute grey difference in [0, 1] below which a frame counts as
      static and is dropped; 0 disables the check.
    validation_sequences: sequence folder names that form the `validation` split (by sequence).
    use_beam: generate with Apache Beam.
  """
  image_size: Optional[Tuple[int, int]] = None
  frame_stride: int = 1
  static_threshold: float = 0.0
  validation_sequences: Tuple[str, ...] = ()
  use_beam: bool = False


def natural_key(name: str):
  """Sort key comparing digit runs as numbers: "f2.png" < "f10.png"."""
  return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def list_frames(sequence_dir) -> List[epath.Path]:
  """Frame files of a sequence in time order (natural sort)."""
  files = [p for p in epath.Path(sequence_dir).iterdir()
           if p.suffix.lower() in IMAGE_SUFFIXES]
  return sorted(files, key=lambda p: natural_key(p.name))


def read_intrinsics(path) -> np.ndarray:
  """Parses an intrinsics file into a `(3, 3)` float64 K (see module docstring)."""
  path = epath.Path(path)
  values = path.read_text().split()
  try:
    numbers = [float(v) for v in values]
  except ValueError:
    numbers = []
  if len(numbers) == 4:
    fx, fy, cx, cy = numbers
    k = np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])
  elif len(numbers) == 9:
    k = np.array(numbers).reshape(3, 3)
  else:
    raise errors.CorruptFileError(
        f"{path}: expected 4 numbers 'fx fy cx cy' or 9 numbers (3x3 K, row-major); got "
        f"{values[:12]!r}.")
  if not (k[0, 0] > 0 and k[1, 1] > 0 and np.array_equal(k[2], [0.0, 0.0, 1.0])):
    raise errors.CorruptFileError(
        f"{path}: fx, fy must be positive and the last row (0, 0, 1); got K = {k.tolist()}.")
  return k


def scale_intrinsics(k: np.ndarray, from_size, to_size) -> np.ndarray:
  """fx' = fx·W'/W, cx' = (cx + 0.5)·W'/W − 0.5 (and likewise for y); sizes are (H, W)."""
  sy, sx = to_size[0] / from_size[0], to_size[1] / from_size[1]
  k = np.array(k, dtype=np.float64)
  k[0, 0] *= sx
  k[1, 1] *= sy
  k[0, 2] = (k[0, 2] + HALF_PIXEL) * sx - HALF_PIXEL
  k[1, 2] = (k[1, 2] + HALF_PIXEL) * sy - HALF_PIXEL
  return k


def grey_thumbnail(image: np.ndarray) -> np.ndarray:
  """`STATIC_CHECK_SIZE` grey float64 in [0, 1] of a uint8 RGB frame (box-filter resize)."""
  grey = image.astype(np.float64) @ np.array(LUMA_WEIGHTS) / 255.0
  thumb = PIL.Image.fromarray(grey.astype(np.float32), mode="F").resize(
      (STATIC_CHECK_SIZE[1], STATIC_CHECK_SIZE[0]), PIL.Image.BOX)
  return np.asarray(thumb, dtype=np.float64)


def select_frames(thumbnails: List[np.ndarray], threshold: float) -> List[int]:
  """Indices kept by the static check: each frame is compared with the last kept one."""
  if threshold <= 0 or not thumbnails:
    return list(range(len(thumbnails)))
  kept = [0]
  for i in range(1, len(thumbnails)):
    if np.mean(np.abs(thumbnails[i] - thumbnails[kept[-1]])) >= threshold:
      kept.append(i)
  return kept


def _resize(image: np.ndarray, size: Optional[Tuple[int, int]]) -> np.ndarray:
  if size is None or tuple(image.shape[:2]) == tuple(size):
    return image
  return np.asarray(PIL.Image.fromarray(image).resize((size[1], size[0]), PIL.Image.LANCZOS))


def _read_frame(path: epath.Path, expected_size=None) -> np.ndarray:
  image = images.read_rgb(path)
  if expected_size is not None and tuple(image.shape[:2]) != tuple(expected_size):
    raise errors.CorruptFileError(
        f"{path}: size {image.shape[:2]} differs from the sequence's first frame "
        f"{tuple(expected_size)}; a sequence must have one frame size.")
  return image


@dataclasses.dataclass(frozen=True)
class ClipItem:
  """One clip to write: the three frame paths, the target's original index, intrinsics."""
  sequence: str
  paths: Tuple[str, str, str]
  target_index: int
  intrinsics: Optional[Tuple[float, ...]]  # Row-major 3×3 at the on-disk size, or None.


def plan_sequence(sequence_dir, config: VideoFramesConfig,
                  default_intrinsics: Optional[np.ndarray]) -> List[ClipItem]:
  """Lists the clips of one sequence after subsampling and static-frame removal."""
  sequence_dir = epath.Path(sequence_dir)
  frames = list_frames(sequence_dir)
  indices = list(range(0, len(frames), config.frame_stride))
  size = None
  thumbnails = []
  if config.static_threshold > 0:
    for i in indices:
      image = _read_frame(frames[i], size)
      size = image.shape[:2]
      thumbnails.append(grey_thumbnail(image))
    indices = [indices[j] for j in select_frames(thumbnails, config.static_threshold)]
  k_file = sequence_dir / INTRINSICS_FILENAME
  k = read_intrinsics(k_file) if k_file.exists() else default_intrinsics
  k_tuple = None if k is None else tuple(float(v) for v in np.asarray(k).reshape(-1))
  return [ClipItem(sequence_dir.name,
                   tuple(str(frames[i]) for i in indices[j - 1:j + 2]),
                   indices[j], k_tuple)
          for j in range(1, len(indices) - 1)]


def make_clip(item: ClipItem, image_size: Optional[Tuple[int, int]] = None):
  """`(key, example)` of a clip: frames `(3, H, W, 3)` uint8, intrinsics at the stored size."""
  first = _read_frame(epath.Path(item.paths[0]))
  clip = [first] + [_read_frame(epath.Path(p), first.shape[:2]) for p in item.paths[1:]]
  raw_size = first.shape[:2]
  stored = tuple(image_size) if image_size else raw_size
  if item.intrinsics is None:
    k, has_k = np.zeros((3, 3)), False
  else:
    k, has_k = scale_intrinsics(np.reshape(item.intrinsics, (3, 3)), raw_size, stored), True
  target = epath.Path(item.paths[1])
  return f"{item.sequence}_{target.stem}", {
      "frames": np.stack([_resize(f, image_size) for f in clip]),
      "intrinsics": k.astype(np.float32),
      "has_intrinsics": has_k,
      "sequence": item.sequence,
      "frame_id": target.stem,
      "frame_index": np.int32(item.target_index),
  }


def decode_video(video_path, target_dir) -> int:
  """Decodes every frame of the first video stream of a video file into PNG files.

  Args:
    video_path: the video file (any container / codec of the FFmpeg bundled with PyAV).
    target_dir: folder written with `DECODED_FRAME_NAME` files (000000.png, ...), created.

  Returns:
    The number of frames written.

  Raises:
    CorruptFileError naming the file: FFmpeg cannot open it, it has no video stream, a frame
      cannot be decoded, or it has no frame.
  """
  import av  # pylint: disable=g-import-not-at-top  (only needed when videos are given)
  video_path, target_dir = epath.Path(video_path), epath.Path(target_dir)
  target_dir.mkdir(parents=True, exist_ok=True)
  count = 0
  with video_path.open("rb") as stream:
    try:
      container = av.open(stream)
    except (av.FFmpegError, OSError, ValueError) as e:
      raise errors.CorruptFileError(
          f"{video_path}: not a video file FFmpeg can open ({e}); expected a video container "
          f"({', '.join(VIDEO_SUFFIXES)}). Re-encode or re-copy it.") from None
    with container:
      if not container.streams.video:
        raise errors.CorruptFileError(
            f"{video_path} has no video stream (streams: "
            f"{[s.type for s in container.streams]}).")
      video = container.streams.video[0]
      try:
        for frame in container.decode(video):
          (target_dir / DECODED_FRAME_NAME.format(index=count)).write_bytes(
              images.encode_png(frame.to_ndarray(format="rgb24")))
          count += 1
      except (av.FFmpegError, ValueError) as e:
        raise errors.CorruptFileError(
            f"{video_path}: frame {count} cannot be decoded (codec "
            f"{getattr(video.codec_context, 'name', None)!r}): {e}. The file is truncated or "
            "damaged.") from None
  if not count:
    raise errors.CorruptFileError(f"{video_path} has no decodable frame.")
  return count


def _decode_once(video: epath.Path, target: epath.Path) -> None:
  """Decodes `video` into `target/<stem>/` unless a marker says it was done; syncs its K file."""
  folder = target / video.stem
  started = target / f".{video.name}.decoding"
  done = target / f".{video.name}.decoded"
  if not done.exists():
    if folder.exists() and not started.exists():
      raise errors.InvalidInputError(
          f"Video file {video.name!r} would be decoded into the sequence {video.stem!r}, but an "
          f"archive already gave a sequence of that name ({str(folder)!r}); rename one of them.")
    target.mkdir(parents=True, exist_ok=True)
    started.write_text("")
    done.write_text(str(decode_video(video, folder)))
  own_k, stored_k = video.parent / video.stem / INTRINSICS_FILENAME, folder / INTRINSICS_FILENAME
  if own_k.exists():
    read_intrinsics(own_k)  # Checked here, so that the error names the user's file.
    stored_k.write_text(own_k.read_text())
  elif stored_k.exists():
    stored_k.unlink()


def prepare_root(manual_dir, extract_dir) -> epath.Path:
  """The folder holding the sequence folders.

  The manual directory itself, or, when it holds archives or video files,
  `<extract_dir>/video_frames` after extracting the archives safely and decoding the videos
  (once: marker files record finished decodes).

  Raises:
    InvalidInputError: sequence folders next to archives / videos (other than a video's folder
      holding its intrinsics.txt), or two sources of one sequence name.
    UnsafeArchiveError / CorruptFileError: from `archives.safe_extract` / `decode_video`.
  """
  manual_dir = epath.Path(manual_dir)
  entries = list(manual_dir.iterdir())
  videos = sorted((p for p in entries if p.suffix.lower() in VIDEO_SUFFIXES and not p.is_dir()),
                  key=lambda p: p.name)
  packed = [p for p in entries if p.name.lower().endswith(ARCHIVE_SUFFIXES)]
  if not packed and not videos:
    return manual_dir
  stems = [p.stem for p in videos]
  repeated = sorted({stem for stem in stems if stems.count(stem) > 1})
  if repeated:
    raise errors.InvalidInputError(
        f"Video files in {str(manual_dir)!r} share the sequence name(s) {repeated} "
        f"({[p.name for p in videos if p.stem in repeated]}); rename them.")
  target = epath.Path(extract_dir) / EXTRACTED_FOLDER
  for archive in packed:
    archives.safe_extract(archive, target)
  for video in videos:
    _decode_once(video, target)
  for p in entries:  # Plain folders are only accepted when the same sequence was extracted.
    if p.is_dir() and not (target / p.name).exists():
      raise errors.InvalidInputError(
          f"{str(manual_dir)!r} mixes archives / video files and sequence folders ({p.name}/); "
          "put all sequences either in archives or video files, or in folders.")
  return target


def global_intrinsics(manual_dir, root) -> Optional[np.ndarray]:
  """K for sequences without their own file: `<manual_dir>/intrinsics.txt`, else the one at the
  top of `root` (where archives were extracted), else None."""
  for folder in (manual_dir, root):
    path = epath.Path(folder) / INTRINSICS_FILENAME
    if path.exists():
      return read_intrinsics(path)
  return None


def find_sequences(root) -> List[epath.Path]:
  """Sequence folders (sub-folders with at least one image), sorted by name."""
  root = epath.Path(root)
  sequences = [p for p in sorted(root.iterdir(), key=lambda p: p.name)
               if p.is_dir() and list_frames(p)]
  if not sequences:
    raise errors.MissingFileError(
        f"No sequence folder with PNG/JPEG frames in {str(root)!r}.\n"
        f"{MANUAL_DOWNLOAD_INSTRUCTIONS}")
  return sequences


class Builder(tfds.core.GeneratorBasedBuilder):
  """User image sequences to (t-1, t, t+1) clips with optional intrinsics."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release."}
  MANUAL_DOWNLOAD_INSTRUCTIONS = MANUAL_DOWNLOAD_INSTRUCTIONS
  BUILDER_CONFIGS = [VideoFramesConfig(
      name="default", description="All frames, native size, no static-frame removal.")]

  def _info(self) -> tfds.core.DatasetInfo:
    config = self.builder_config
    if config.frame_stride < 1 or config.static_threshold < 0:
      raise errors.InvalidInputError(
          f"frame_stride must be >= 1 and static_threshold >= 0; got {config.frame_stride}, "
          f"{config.static_threshold}.")
    shape = (None, None, 3) if config.image_size is None else (*config.image_size, 3)
    return self.dataset_info_from_configs(
        features=tfds.features.FeaturesDict({
            "frames": tfds.features.Sequence(tfds.features.Image(shape=shape),
                                             length=CLIP_LENGTH,
                                             doc="Frames t-1, t, t+1 (after subsampling), uint8."),
            "intrinsics": tfds.features.Tensor(
                shape=(3, 3), dtype=np.float32,
                doc="K at the stored size, pixels, 0-based centres; zeros if unknown."),
            "has_intrinsics": tfds.features.Scalar(dtype=np.bool_, doc="A K file was given."),
            "sequence": tfds.features.Text(doc="Sequence folder name."),
            "frame_id": tfds.features.Text(doc="File stem of the target frame t."),
            "frame_index": tfds.features.Scalar(
                dtype=np.int32, doc="Index of t among the sequence's sorted frames."),
        }),
        homepage="https://github.com/tinghuiz/SfMLearner",
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    config = self.builder_config
    manual_dir = manual_lib.manual_dir(dl_manager, MANUAL_DOWNLOAD_INSTRUCTIONS)
    root = prepare_root(manual_dir, getattr(dl_manager, "_extract_dir", dl_manager.download_dir))
    global_k = global_intrinsics(manual_dir, root)
    sequences = find_sequences(root)
    names = {s.name for s in sequences}
    unknown = sorted(set(config.validation_sequences) - names)
    if unknown:
      raise errors.InvalidInputError(
          f"validation_sequences {unknown} are not sequence folders of {str(root)!r} "
          f"(found {sorted(names)}).")
    splits: Dict[str, List[ClipItem]] = {"train": []}
    if config.validation_sequences:
      splits["validation"] = []
    for sequence in sequences:
      split = "validation" if sequence.name in config.validation_sequences else "train"
      splits[split].extend(plan_sequence(sequence, config, global_k))
    return {name: self._generate_examples(items=items) for name, items in splits.items()}

  def _generate_examples(self, items):
    config = self.builder_config
    return generation.generate(
        items, functools.partial(make_clip, image_size=config.image_size),
        use_beam=config.use_beam)
