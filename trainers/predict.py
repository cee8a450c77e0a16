r"""`tfdepth-predict`: depth maps (and point clouds) for image files, folders and frame sequences.

    tfdepth-predict --model=outputs/demo/saved_model --input=photos/ --output_dir=out/
    tfdepth-predict --model=model.keras --input=a.jpg --input=b.png --panel --save_ply
    tfdepth-predict --model=fastdepth_tflite_int8.tflite --input=clip.gif --output_dir=out/
    tfdepth-predict --model_dir=runs/street --input=a.jpg      # config + best checkpoint
    tfdepth-predict --model=mono.keras --input=a.png --alignment=scale_shift \
        --known_depth=100,40,7.5 --known_depth=20,60,3.2    # metric from a few known depths

Model sources: a `.keras` file (loaded with `safe_mode=True`), a SavedModel directory written by
`export.saved_model` (its `native` signature), a `.tflite` file (LiteRT), or a training run
(`--model_dir`, or `--experiment` with `--checkpoint`) of any trainer: supervised (metric depth),
self-supervised monocular and dynamic / Li et al. 2021 (relative depth), stereo-trained
self-supervised (Monodepth2 S / MS: metric depth, the network's depth x 5.4, the stereo scale
factor of their evaluation).

Inputs (`--input`, repeatable): image files, folders (their image and video files, sorted by
name, not recursive) and frame sequences. Any image Pillow decodes is read as upright RGB
(grayscale, RGBA, palette and EXIF-rotated files included, `tfdepth.io.load_rgb`); multi-frame
files (animated GIF / PNG / WebP, multi-page TIFF) are frame sequences. Video containers (.mp4,
.avi, .mov, .mkv, .webm, ...) are decoded with PyAV (FFmpeg); a container or codec FFmpeg
cannot decode gets an error entry naming the supported formats, and the other inputs go on.

Each frame is resized to the model's input size as in training (bilinear, half-pixel centres,
antialiased, clipped to [0, 1]: `tfdepth.data.augment.resize_images`, as the SavedModel's serving
signature), predicted in batches, and the depth is resized back to the
frame's size as DISPARITY (bilinear) and inverted (the KITTI evaluation convention,
shared/docs/reference-conventions.md). Outputs per frame in `--output_dir`, named after the input:

  <name>_depth.png      colourised depth (magma on disparity, near = warm; `tfdepth.visualization`)
  <name>_panel.png      input and colourised depth side by side (`--panel`)
  <name>_depth_mm.png   16-bit PNG, depth in millimetres, 0 = invalid (`--save_png16`)
  <name>_depth.npy      float32 (H, W) metres (`--save_npy`)
  <name>.ply            coloured point cloud (`--save_ply`), camera frame, metres

and `predictions.json` with the model, the settings and one entry per frame: status ("ok" or
"error" with the message), size, output files, depth type (metric / relative), intrinsics and
their source, and the scale alignment. The exit status is 0 when every frame succeeded, 1 when
some failed (the others are still written), 2 when nothing could run (no model, no input).
"""

import dataclasses
import json
import math
import os
import sys

from absl import app
from absl import flags
from absl import logging
import numpy as np

from tfdepth import alignment as alignment_lib
from tfdepth import io as io_lib
from tfdepth.errors import ConfigError, DataError, InvalidInputError, TfdepthError

FLAGS = flags.FLAGS

PREDICTIONS_JSON = "predictions.json"
# Video containers, decoded with PyAV (FFmpeg's libraries, bundled in its wheels).
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv")
SUPPORTED_FORMATS_MESSAGE = (
    "supported: still images Pillow decodes (" + ", ".join(io_lib.IMAGE_EXTENSIONS) + "), "
    "multi-frame GIF / PNG / WebP / TIFF sequences, folders of images, and video containers "
    "(" + ", ".join(VIDEO_EXTENSIONS) + ") with a codec FFmpeg decodes")

# Horizontal field of view assumed when no intrinsics are given: the KITTI camera, whose
# normalised focal length is fx / W = 0.58 (Monodepth2 `kitti_dataset.py`), i.e.
# 2·atan(1 / (2·0.58)) = 81.6°; the self-supervised experiments train at this geometry.
DEFAULT_HFOV_DEG = math.degrees(2.0 * math.atan(1.0 / (2.0 * 0.58)))
DEFAULT_BATCH_SIZE = 8
# Image formats that commonly hold several frames (animated GIF / WebP, multi-page TIFF).
SEQUENCE_IMAGE_EXTENSIONS = (".gif", ".webp", ".tif", ".tiff")
DEPTH_TYPES = ("auto", alignment_lib.DEPTH_TYPE_METRIC, alignment_lib.DEPTH_TYPE_RELATIVE)
# Model sources named in predictions.json.
SOURCE_KERAS, SOURCE_SAVED_MODEL, SOURCE_TFLITE, SOURCE_CHECKPOINT = (
    "keras", "saved_model", "tflite", "checkpoint")
INTRINSICS_FLAGS, INTRINSICS_CALIBRATION, INTRINSICS_HFOV = "flags", "calibration", "hfov_guess"
OK, ERROR = "ok", "error"
# Errors that fail one frame but not the run: tfdepth's own, Pillow / file-system ones and the
# ValueErrors numpy raises on malformed arrays.
FRAME_ERRORS = (TfdepthError, OSError, ValueError, SyntaxError)


# ------------------------------------------------------------------------------------------ model
@dataclasses.dataclass
class Predictor:
  """A depth model behind one interface.

  Attributes:
    predict_fn: float32 [0, 1] images `(N, H, W, 3)` at `input_size` -> depth `(N, H, W, 1)` m.
    input_size: `(H, W)` of the model input, pixels.
    source: one of "keras", "saved_model", "tflite", "checkpoint".
    path: the model file / directory / checkpoint.
    depth_type: "metric" or "relative" (scale-ambiguous, e.g. self-supervised monocular).
    depth_type_source: how `depth_type` was decided ("flag", "metadata", "experiment",
      "model", "assumed").
    metadata: extra JSON-serialisable facts (experiment name, exported metadata).
  """
  predict_fn: object
  input_size: tuple
  source: str
  path: str
  depth_type: str
  depth_type_source: str
  metadata: dict = dataclasses.field(default_factory=dict)

  def describe(self):
    return {"source": self.source, "path": self.path, "input_size": list(self.input_size),
            "depth_type": self.depth_type, "depth_type_source": self.depth_type_source,
            **self.metadata}


def _keras_input_size(model):
  from export._common import model_input_size  # pylint: disable=g-import-not-at-top
  for candidate in (model, getattr(model, "network", None), getattr(model, "depth_net", None)):
    if candidate is None:
      continue
    try:
      return model_input_size(candidate)
    except (InvalidInputError, AttributeError, ValueError):
      continue
  raise InvalidInputError(f"cannot find a static (None, H, W, 3) image input of model "
                          f"{getattr(model, 'name', model)!r}")


def _keras_predict_fn(model, input_size):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from export._common import depth_output  # pylint: disable=g-import-not-at-top

  # One trace for every batch size (the last batch of a run is usually smaller).
  @tf.function(input_signature=[tf.TensorSpec((None,) + tuple(input_size) + (3,), tf.float32)])
  def run(images):
    return tf.cast(depth_output(model(images, training=False)), tf.float32)

  return lambda images: run(tf.convert_to_tensor(images, tf.float32)).numpy()


def _experiment_depth_type(name):
  """"relative" for self-supervised experiments, "metric" for supervised ones, None if unknown."""
  from trainers import experiments  # pylint: disable=g-import-not-at-top
  try:
    config = experiments.get_experiment(name)
  except (ConfigError, KeyError):
    return None
  return _config_depth_type(config)


def _config_depth(config):
  """`(depth type, scale)` of the depth of an experiment's trained network: depth x scale is
  metric ("metric") or scale-ambiguous ("relative").

  Supervised: metric, 1. Self-supervised monocular (Monodepth2 M) and dynamic (Li et al. 2021):
  relative, 1. Stereo-trained self-supervised (Monodepth2 S / MS, `use_stereo`): the depth is in
  units of the 0.1 training baseline, metric after x `STEREO_SCALE_FACTOR` (5.4; Monodepth2
  `evaluate_depth.py`, as `self_supervised.eval_protocol`).
  """
  from trainers import dynamic  # pylint: disable=g-import-not-at-top
  from trainers import self_supervised  # pylint: disable=g-import-not-at-top
  if dynamic.is_dynamic(config):
    return alignment_lib.DEPTH_TYPE_RELATIVE, 1.0
  if self_supervised.is_self_supervised(config):
    if self_supervised.self_supervised_config(config).use_stereo:
      return alignment_lib.DEPTH_TYPE_METRIC, self_supervised.STEREO_SCALE_FACTOR
    return alignment_lib.DEPTH_TYPE_RELATIVE, 1.0
  return alignment_lib.DEPTH_TYPE_METRIC, 1.0


def _config_depth_type(config):
  """Depth type of the network's own output (without `_config_depth`'s scale): a stereo model's
  unscaled depth (e.g. an exported SavedModel) is reported as relative."""
  depth_type, scale = _config_depth(config)
  return depth_type if scale == 1.0 else alignment_lib.DEPTH_TYPE_RELATIVE


def _load_checkpoint(model_dir, experiment, checkpoint):
  """Builds the experiment's trainer, loads the checkpoint; returns (keras model, config, ckpt)."""
  from trainers import common  # pylint: disable=g-import-not-at-top
  from trainers import dynamic  # pylint: disable=g-import-not-at-top
  from trainers import experiments  # pylint: disable=g-import-not-at-top
  from trainers import self_supervised  # pylint: disable=g-import-not-at-top
  if experiment:
    config = experiments.get_experiment(experiment)
  elif model_dir:
    config = experiments.load_resolved_config(model_dir)
  else:
    raise InvalidInputError("a checkpoint needs --model_dir or --experiment, received neither")
  checkpoint = checkpoint or common.find_checkpoint(model_dir)
  if not os.path.isfile(checkpoint):
    raise DataError(f"checkpoint {checkpoint!r} does not exist")
  if self_supervised.is_self_supervised(config):
    model = self_supervised.build_self_supervised_trainer(config, 1, with_metrics=False)
  elif dynamic.is_dynamic(config):
    model = dynamic.build_dynamic_trainer(config, 1, with_metrics=False)
  else:
    model = common.build_trainer(config, 1)
  model.load_weights(checkpoint)
  return model, config, checkpoint


def load_predictor(model=None, model_dir=None, experiment=None, checkpoint=None,
                   depth_type="auto", num_threads=None):
  """Loads a depth model from one of the supported sources.

  Args:
    model: path of a `.keras` file, a SavedModel directory or a `.tflite` file.
    model_dir: a training run directory (`experiment_config.json` + `checkpoints/`).
    experiment: registered experiment name (with `checkpoint`, or overriding model_dir's config).
    checkpoint: `.weights.h5` file (default: best, else last, of `model_dir`).
    depth_type: "auto" (from metadata / experiment / model type), "metric" or "relative".
    num_threads: LiteRT interpreter threads (TFLite only; default 1).
  Returns:
    `Predictor`.
  Raises:
    DataError: missing or unreadable model; InvalidInputError: bad arguments;
    ConfigError: unknown experiment.
  """
  if depth_type not in DEPTH_TYPES:
    raise InvalidInputError(f"depth_type must be one of {DEPTH_TYPES}, received {depth_type!r}")
  resolved, resolved_from, meta = None, "assumed", {}
  if model:
    path = os.fspath(model)
    if not os.path.exists(path):
      raise DataError(f"model {path!r} does not exist; expected a .keras file, a SavedModel "
                      f"directory or a .tflite file")
    if os.path.isdir(path):
      from export import litert_runner  # pylint: disable=g-import-not-at-top
      runner = litert_runner.SavedModelRunner(path)
      source, predict_fn, input_size = SOURCE_SAVED_MODEL, runner._run_native, runner.input_size  # pylint: disable=protected-access
      meta = {"exported_metadata": runner.metadata}
      if runner.metadata.get("depth_type") in DEPTH_TYPES[1:]:
        resolved, resolved_from = runner.metadata["depth_type"], "metadata"
      elif runner.metadata.get("experiment"):
        resolved = _experiment_depth_type(runner.metadata["experiment"])
        resolved_from = "experiment" if resolved else "assumed"
    elif path.lower().endswith(".tflite"):
      from export import litert_runner  # pylint: disable=g-import-not-at-top
      runner = litert_runner.LiteRTRunner(path, num_threads=num_threads or 1)
      source, predict_fn, input_size = SOURCE_TFLITE, runner._run_native, runner.input_size  # pylint: disable=protected-access
    elif path.lower().endswith(".keras"):
      import keras  # pylint: disable=g-import-not-at-top
      import tfdepth  # pylint: disable=g-import-not-at-top,unused-import  (registers layers)
      import trainers.self_supervised  # pylint: disable=g-import-not-at-top,unused-import
      import trainers.supervised  # pylint: disable=g-import-not-at-top,unused-import
      try:
        net = keras.saving.load_model(path, safe_mode=True, compile=False)
      except (OSError, ValueError, TypeError) as e:
        raise DataError(f"cannot load Keras model {path!r}: {e}") from e
      input_size = _keras_input_size(net)
      source, predict_fn = SOURCE_KERAS, _keras_predict_fn(net, input_size)
      if hasattr(net, "depth_net"):
        resolved, resolved_from = alignment_lib.DEPTH_TYPE_RELATIVE, "model"
    else:
      raise DataError(f"model {path!r} is neither a directory (SavedModel) nor a .keras / .tflite "
                      f"file")
  elif model_dir or (experiment and checkpoint):
    net, config, path = _load_checkpoint(model_dir, experiment, checkpoint)
    input_size = (config.data.height, config.data.width)
    source, predict_fn = SOURCE_CHECKPOINT, _keras_predict_fn(net, input_size)
    meta = {"experiment": config.name}
    resolved, scale = _config_depth(config)
    resolved_from = "experiment"
    if scale != 1.0:   # stereo-trained: metric depth = network depth x STEREO_SCALE_FACTOR
      network_fn = predict_fn
      predict_fn = lambda images: np.float32(scale) * network_fn(images)  # noqa: E731
      meta["depth_scale_factor"] = scale
  else:
    raise InvalidInputError("no model given: pass --model (.keras / SavedModel dir / .tflite), "
                            "--model_dir, or --experiment with --checkpoint")
  if depth_type != "auto":
    resolved, resolved_from = depth_type, "flag"
  elif resolved is None:
    resolved, resolved_from = alignment_lib.DEPTH_TYPE_METRIC, "assumed"
  return Predictor(predict_fn, tuple(int(v) for v in input_size), source, path, resolved,
                   resolved_from, meta)


# ----------------------------------------------------------------------------------------- inputs
@dataclasses.dataclass
class FrameSource:
  """One input file (image, multi-frame image or video) or an input error."""
  path: str
  name: str
  error: str = None


def _is_video(path):
  return os.path.splitext(path)[1].lower() in VIDEO_EXTENSIONS


def _is_supported(path):
  ext = os.path.splitext(path)[1].lower()
  return ext in io_lib.IMAGE_EXTENSIONS or ext in VIDEO_EXTENSIONS


def collect_inputs(inputs):
  """Expands files and folders into `FrameSource`s (unique output names; errors as entries).

  Raises:
    InvalidInputError: if `inputs` is empty.
  """
  if not inputs:
    raise InvalidInputError(f"no input given; expected image / video files or folders "
                            f"({SUPPORTED_FORMATS_MESSAGE}), received {inputs!r}")
  sources, used = [], set()

  def unique(stem):
    name, i = stem, 2
    while name in used:
      name, i = f"{stem}_{i}", i + 1
    used.add(name)
    return name

  for item in inputs:
    path = os.fspath(item)
    stem = os.path.splitext(os.path.basename(os.path.normpath(path)))[0] or "input"
    if os.path.isdir(path):
      files = sorted(f for f in os.listdir(path)
                     if not f.startswith(".") and os.path.isfile(os.path.join(path, f))
                     and _is_supported(f))
      if not files:
        sources.append(FrameSource(path, unique(stem), error=(
            f"folder {path!r} contains no image or video file ({SUPPORTED_FORMATS_MESSAGE})")))
      for f in files:
        sources.append(FrameSource(os.path.join(path, f), unique(os.path.splitext(f)[0])))
    elif os.path.isfile(path):
      sources.append(FrameSource(path, unique(stem)))
    else:
      sources.append(FrameSource(path, unique(stem),
                                 error=f"input {path!r} does not exist"))
  return sources


def _video_frames(path, stride, max_frames):
  """Decodes a video container with PyAV (FFmpeg): yields `(frame index, (H, W, 3) uint8 RGB)`.

  Every `stride`-th frame of the first video stream, at most `max_frames` of them.

  Raises:
    DataError: the file is not a container FFmpeg can open, has no video stream, uses a codec
      this FFmpeg build cannot decode, or has no decodable frame.
  """
  import av  # pylint: disable=g-import-not-at-top
  try:
    container = av.open(path)
  except (av.FFmpegError, OSError, ValueError) as e:
    raise DataError(f"cannot open video {path!r}: {e}. {SUPPORTED_FORMATS_MESSAGE}") from e
  with container:
    streams = container.streams.video
    if not streams:
      raise DataError(f"video {path!r} has no video stream (streams: "
                      f"{[s.type for s in container.streams]})")
    stream = streams[0]
    index = emitted = 0
    try:
      for frame in container.decode(stream):
        if max_frames is not None and emitted >= max_frames:
          break
        if index % stride == 0:
          yield index, frame.to_ndarray(format="rgb24")
          emitted += 1
        index += 1
    except (av.FFmpegError, ValueError) as e:
      codec = getattr(stream.codec_context, "name", None)
      raise DataError(f"cannot decode frame {index} of video {path!r} (codec {codec!r}): "
                      f"{e}") from e
    if index == 0:
      raise DataError(f"video {path!r} has no decodable frame (codec "
                      f"{getattr(stream.codec_context, 'name', None)!r})")


def _image_frames(path, stride, max_frames):
  """Frames of a still or multi-frame image: one frame (index None) or (index, rgb) pairs."""
  from PIL import Image, ImageSequence, UnidentifiedImageError  # pylint: disable=g-import-not-at-top
  try:
    with Image.open(path) as image:
      n = getattr(image, "n_frames", 1)
  except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
    raise DataError(f"cannot decode image {path!r}: {e}") from e
  if n <= 1:
    yield None, io_lib.load_rgb(path)
    return
  emitted = 0
  with Image.open(path) as image:
    for index, frame in enumerate(ImageSequence.Iterator(image)):
      if max_frames is not None and emitted >= max_frames:
        break
      if index % stride == 0:
        yield index, io_lib.image_to_rgb(frame.copy())
        emitted += 1


def iter_frames(sources, stride=1, max_frames=None):
  """Yields `(record, rgb uint8 (H, W, 3) or None)`; a failing source yields an error record."""
  for src in sources:
    base = {"input": src.path}
    if src.error:
      yield dict(base, name=src.name, status=ERROR, error=src.error), None
      continue
    frames = (_video_frames if _is_video(src.path) else _image_frames)(src.path, stride,
                                                                       max_frames)
    try:
      for index, rgb in frames:
        name = src.name if index is None else f"{src.name}_{index:06d}"
        yield dict(base, name=name, frame=index), rgb
    except FRAME_ERRORS as e:
      yield dict(base, name=src.name, status=ERROR, error=str(e)), None


# ------------------------------------------------------------------------------------- intrinsics
def resolve_intrinsics(height, width, fx=None, fy=None, cx=None, cy=None, calibration=None,
                       hfov_deg=DEFAULT_HFOV_DEG):
  """K `(3, 3)` float32 in pixels of an (height, width) image, and a dict saying where it came from.

  Priority: focal length flags (fy defaults to fx; cx, cy default to the image centre
  ((W - 1) / 2, (H - 1) / 2), integer pixel centres per docs/DESIGN.md), then a calibration
  file (`tfdepth.io.read_intrinsics`, used as is: it must describe this image size), then a guess
  from the horizontal field of view: fx = fy = (W / 2) / tan(hfov / 2).
  """
  centre_u, centre_v = (width - 1) / 2.0, (height - 1) / 2.0
  if fx is not None:
    if not fx > 0 or (fy is not None and not fy > 0):
      raise InvalidInputError(f"focal lengths must be > 0 pixels, received fx={fx!r}, fy={fy!r}")
    k = np.array([[fx, 0.0, centre_u if cx is None else cx],
                  [0.0, fx if fy is None else fy, centre_v if cy is None else cy],
                  [0.0, 0.0, 1.0]], np.float32)
    info = {"source": INTRINSICS_FLAGS}
  elif calibration:
    k = io_lib.read_intrinsics(calibration)
    info = {"source": INTRINSICS_CALIBRATION, "file": os.fspath(calibration)}
  else:
    if not 0.0 < hfov_deg < 180.0:
      raise InvalidInputError(f"hfov_deg must be in (0, 180) degrees, received {hfov_deg!r}")
    f = (width / 2.0) / math.tan(math.radians(hfov_deg) / 2.0)
    k = np.array([[f, 0.0, centre_u], [0.0, f, centre_v], [0.0, 0.0, 1.0]], np.float32)
    info = {"source": INTRINSICS_HFOV, "hfov_deg": float(hfov_deg),
            "note": "guessed from an assumed horizontal field of view; point clouds are only "
                    "as accurate as this guess"}
  info["K"] = k.astype(float).tolist()
  return k, info


# -------------------------------------------------------------------------------------- alignment
def parse_known_depths(texts):
  """["u,v,depth_m", ...] -> [(u, v, depth)]; InvalidInputError on a malformed entry."""
  points = []
  for t in texts or ():
    parts = [p.strip() for p in str(t).split(",")]
    try:
      if len(parts) != 3:
        raise ValueError
      points.append((int(parts[0]), int(parts[1]), float(parts[2])))
    except ValueError:
      raise InvalidInputError(f"known depth {t!r} must be 'u,v,depth_m' (integer pixel column, "
                              f"row, metres)") from None
  return points


def _reference_depth(record, shape, sparse_depth, known_points, png_scale):
  """Sparse metric reference `(H, W)` for one frame, or None when none is available."""
  ref = None
  if sparse_depth:
    path = sparse_depth
    if os.path.isdir(sparse_depth):
      path = None
      for ext in (".npy", ".png"):
        candidate = os.path.join(sparse_depth, record["name"] + ext)
        if os.path.isfile(candidate):
          path = candidate
          break
    if path:
      ref = io_lib.load_depth(path, scale=png_scale)
      if ref.shape != shape:
        raise InvalidInputError(f"sparse depth {path!r} has shape {ref.shape}, expected the "
                                f"input's {shape}")
      record["alignment_reference"] = path
  if known_points:
    pts = alignment_lib.sparse_depth_from_points(known_points, shape[0], shape[1])
    ref = pts if ref is None else np.where(pts > 0, pts, ref)
  return ref


# -------------------------------------------------------------------------------------- prediction
@dataclasses.dataclass
class PredictOptions:
  """Settings of `predict` (the flags of `tfdepth-predict`)."""
  batch_size: int = DEFAULT_BATCH_SIZE
  panel: bool = False
  save_png16: bool = True
  save_npy: bool = True
  save_ply: bool = False
  fx: float = None
  fy: float = None
  cx: float = None
  cy: float = None
  calibration: str = None
  hfov_deg: float = DEFAULT_HFOV_DEG
  alignment: str = alignment_lib.METHOD_NONE
  sparse_depth: str = None
  known_depths: tuple = ()
  depth_png_scale: float = io_lib.DEPTH_PNG_SCALE_MM
  max_depth: float = alignment_lib.DEFAULT_MAX_DEPTH
  frame_stride: int = 1
  max_frames: int = None
  progress: bool = True

  def check(self):
    for name in ("batch_size", "frame_stride"):
      v = getattr(self, name)
      if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise InvalidInputError(f"{name} must be a positive int, received {v!r}")
    if self.max_frames is not None and (not isinstance(self.max_frames, int) or
                                        self.max_frames < 1):
      raise InvalidInputError(f"max_frames must be None or a positive int, received "
                              f"{self.max_frames!r}")
    if self.alignment not in alignment_lib.METHODS:
      raise InvalidInputError(f"alignment must be one of {alignment_lib.METHODS}, received "
                              f"{self.alignment!r}")


def _to_model_size(rgb, input_size):
  """uint8 RGB (H, W, 3) -> float32 [0, 1] at the model's size, resized as in training
  (`tfdepth.data.augment.resize_images`)."""
  from tfdepth.data import augment  # pylint: disable=g-import-not-at-top
  x = rgb.astype(np.float32) / io_lib.UINT8_MAX
  if x.shape[:2] == tuple(input_size):
    return x
  return augment.resize_images(x, *input_size).numpy()


def resize_depth_back(depth, out_hw):
  """Depth `(h, w, 1)` -> `(H, W)` by bilinear resizing of the disparity, then inverting.

  Depths are clamped below at `export.litert_runner.MIN_DEPTH_FOR_RESIZE` (0.1 m) before the
  inversion; non-positive (invalid) predictions thus become that near depth.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from export.litert_runner import MIN_DEPTH_FOR_RESIZE  # pylint: disable=g-import-not-at-top
  depth = np.asarray(depth, np.float32)
  if depth.shape[:2] == tuple(out_hw):
    return depth[..., 0]
  disp = 1.0 / np.maximum(depth, MIN_DEPTH_FOR_RESIZE)
  disp = tf.image.resize(disp, out_hw, method="bilinear", antialias=False).numpy()
  return (1.0 / disp[..., 0]).astype(np.float32)


def _write_outputs(record, rgb, depth, predictor, options, output_dir):
  from tfdepth import visualization  # pylint: disable=g-import-not-at-top
  h, w = depth.shape
  record["size"] = [int(h), int(w)]
  depth_type = predictor.depth_type
  if options.alignment != alignment_lib.METHOD_NONE:
    ref = _reference_depth(record, (h, w), options.sparse_depth, options.known_depths,
                           options.depth_png_scale)
    if ref is None:
      record["alignment"] = {"method": options.alignment, "applied": False,
                             "reason": "no reference depth for this frame (--sparse_depth / "
                                       "--known_depth)"}
    else:
      result = alignment_lib.align(depth, ref, options.alignment, max_depth=options.max_depth)
      depth = result.depth
      depth_type = result.depth_type
      record["alignment"] = dict(result.to_metadata(), applied=True)
  else:
    record["alignment"] = {"method": alignment_lib.METHOD_NONE, "applied": False}
  record["depth_type"] = depth_type
  valid = depth[np.isfinite(depth) & (depth > 0)]
  record["depth_range_m"] = [float(valid.min()), float(valid.max())] if valid.size else None
  k, record["intrinsics"] = resolve_intrinsics(h, w, options.fx, options.fy, options.cx,
                                               options.cy, options.calibration, options.hfov_deg)
  outputs = {}
  base = os.path.join(output_dir, record["name"])
  color = visualization.colorize_depth(depth)
  outputs["depth_color"] = visualization.save_png(base + "_depth.png", color)
  if options.panel:
    outputs["panel"] = visualization.save_png(base + "_panel.png",
                                              np.concatenate([rgb, color], axis=1))
  if options.save_png16:
    outputs["depth_mm_png"] = io_lib.write_depth_png(base + "_depth_mm.png", depth)
  if options.save_npy:
    outputs["depth_npy"] = io_lib.save_depth_npy(base + "_depth.npy", depth)
  if options.save_ply:
    from tfdepth.geometry import pointcloud  # pylint: disable=g-import-not-at-top
    points, colors = pointcloud.depth_to_point_cloud(depth[..., np.newaxis], k, image=rgb)
    pointcloud.write_ply(base + ".ply", points, colors, binary=True)
    outputs["ply"] = base + ".ply"
  record["outputs"] = {key: os.fspath(v) for key, v in outputs.items()}
  record["status"] = OK


def _model_errors():
  """FRAME_ERRORS plus TensorFlow's runtime errors (a model that fails on one batch)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  return FRAME_ERRORS + (tf.errors.OpError,)


def _is_sequence_file(path):
  return _is_video(path) or os.path.splitext(path)[1].lower() in SEQUENCE_IMAGE_EXTENSIONS


def _batches(frames, batch_size):
  batch = []
  for item in frames:
    batch.append(item)
    if len(batch) == batch_size:
      yield batch
      batch = []
  if batch:
    yield batch


def predict(inputs, output_dir, predictor, options=None):
  """Runs `predictor` on every frame of `inputs`, writes the outputs and `predictions.json`.

  Args:
    inputs: list of image / video files and folders.
    output_dir: folder for the outputs (created).
    predictor: `Predictor` (see `load_predictor`).
    options: `PredictOptions`.
  Returns:
    The dict written to `<output_dir>/predictions.json`: "model", "settings", "frames" (one
    record per frame, with "status" "ok" or "error"), "num_ok", "num_errors".
  Raises:
    InvalidInputError: no inputs or bad options (per-frame problems become error records).
  """
  from tqdm import tqdm  # pylint: disable=g-import-not-at-top
  options = options or PredictOptions()
  options.check()
  sources = collect_inputs(inputs)
  os.makedirs(output_dir, exist_ok=True)
  records = []
  frames = iter_frames(sources, options.frame_stride, options.max_frames)
  # The total is known when no input can hold several frames (APNGs may still overshoot it).
  bar = tqdm(total=None if any(_is_sequence_file(s.path) for s in sources) else len(sources),
             unit="frame", disable=not options.progress, desc="tfdepth-predict")
  for batch in _batches(frames, options.batch_size):
    good = []
    for record, rgb in batch:
      records.append(record)
      if rgb is None:
        logging.error("%s: %s", record["input"], record["error"])
        continue
      try:
        good.append((record, rgb, _to_model_size(rgb, predictor.input_size)))
      except FRAME_ERRORS as e:
        record.update(status=ERROR, error=str(e))
    if good:
      try:
        depths = predictor.predict_fn(np.stack([g[2] for g in good]))
      except _model_errors() as e:
        depths = None
        for record, _, _ in good:
          record.update(status=ERROR, error=f"model failed on this batch: {e}")
      if depths is not None:
        for (record, rgb, _), depth in zip(good, depths):
          try:
            _write_outputs(record, rgb, resize_depth_back(depth, rgb.shape[:2]), predictor,
                           options, output_dir)
          except FRAME_ERRORS as e:
            record.update(status=ERROR, error=str(e))
            logging.error("%s: %s", record["input"], e)
    bar.update(len(batch))
  bar.close()
  num_errors = sum(r.get("status") == ERROR for r in records)
  settings = dataclasses.asdict(options)
  settings["known_depths"] = [list(p) for p in settings["known_depths"]]
  summary = {"model": predictor.describe(), "settings": settings, "frames": records,
             "num_ok": len(records) - num_errors, "num_errors": num_errors}
  with open(os.path.join(output_dir, PREDICTIONS_JSON), "w") as f:
    json.dump(summary, f, indent=2)
    f.write("\n")
  return summary


# ------------------------------------------------------------------------------------------ flags
def _define(definitions):
  """Defines absl flags once (skips names already defined, as `trainers.common.define_flags`).

  `definitions`: `(define function, name, default, help[, enum values])`; kept local so that
  `--help` does not import TensorFlow.
  """
  for item in definitions:
    fn, name, default, help_text = item[:4]
    if name in FLAGS:  # defined by another entry point in this process: use our default
      FLAGS.set_default(name, default)
      continue
    if len(item) > 4:
      fn(name, default, item[4], help_text)
    else:
      fn(name, default, help_text)


def _define_flags():
  _define([
      (flags.DEFINE_multi_string, "input", [],
       "Image file, folder of images, multi-frame GIF/PNG/WebP/TIFF, or video file (.mp4, "
       ".mov, .mkv, .webm, ..., decoded with FFmpeg via PyAV). Repeatable."),
      (flags.DEFINE_string, "output_dir", "predictions", "Folder for the outputs."),
      (flags.DEFINE_string, "model", None,
       "A .keras file (loaded with safe_mode=True), a SavedModel directory written by "
       "tfdepth-export, or a .tflite file."),
      (flags.DEFINE_string, "model_dir", None,
       "Alternatively: a training run directory (experiment_config.json + checkpoints/)."),
      (flags.DEFINE_string, "experiment", None,
       "Registered experiment name (with --checkpoint, or to override --model_dir's config)."),
      (flags.DEFINE_string, "checkpoint", None,
       "A .weights.h5 checkpoint (default: best, else last, checkpoint of --model_dir)."),
      (flags.DEFINE_enum, "depth_type", "auto",
       "Whether the model predicts metric or relative (scale-ambiguous) depth; auto reads the "
       "export metadata / experiment (self-supervised = relative), else assumes metric.",
       list(DEPTH_TYPES)),
      (flags.DEFINE_integer, "batch_size", DEFAULT_BATCH_SIZE, "Frames per model call."),
      (flags.DEFINE_integer, "num_threads", 1, "LiteRT interpreter threads (.tflite models)."),
      (flags.DEFINE_boolean, "panel", False, "Also write input | depth side-by-side PNGs."),
      (flags.DEFINE_boolean, "save_png16", True, "Write 16-bit PNG depth in millimetres."),
      (flags.DEFINE_boolean, "save_npy", True, "Write float32 .npy depth in metres."),
      (flags.DEFINE_boolean, "save_ply", False,
       "Write coloured .ply point clouds (binary little endian), camera frame, metres."),
      (flags.DEFINE_float, "fx", None, "Focal length in pixels of the input image (x)."),
      (flags.DEFINE_float, "fy", None, "Focal length in pixels (y); default --fx."),
      (flags.DEFINE_float, "cx", None, "Principal point column; default (W - 1) / 2."),
      (flags.DEFINE_float, "cy", None, "Principal point row; default (H - 1) / 2."),
      (flags.DEFINE_string, "calibration", None,
       "Calibration file giving K for the input size: 3x3 matrix text file or a KITTI "
       "calib_cam_to_cam.txt (P_rect_02 line)."),
      (flags.DEFINE_float, "hfov_deg", DEFAULT_HFOV_DEG,
       "Horizontal field of view (degrees) assumed when neither --fx nor --calibration is "
       "given (default: KITTI's); recorded in predictions.json."),
      (flags.DEFINE_enum, "alignment", alignment_lib.METHOD_NONE,
       "Scale alignment to a metric reference: median ratio, or least-squares scale and shift "
       "in disparity space (MiDaS).", list(alignment_lib.METHODS)),
      (flags.DEFINE_string, "sparse_depth", None,
       "Reference depth for --alignment: a .npy (metres) / 16-bit PNG file of the input's size, "
       "or a folder with <input name>.npy|.png per frame."),
      (flags.DEFINE_multi_string, "known_depth", [],
       "Reference depth point 'u,v,metres' (pixel column, row) for --alignment. Repeatable."),
      (flags.DEFINE_float, "depth_png_scale", io_lib.DEPTH_PNG_SCALE_MM,
       "Units per metre of --sparse_depth PNGs (1000 = millimetres, 256 = KITTI)."),
      (flags.DEFINE_float, "max_depth", alignment_lib.DEFAULT_MAX_DEPTH,
       "Far clamp (metres) of scale-and-shift alignment."),
      (flags.DEFINE_integer, "frame_stride", 1, "Use every n-th frame of sequences / videos."),
      (flags.DEFINE_integer, "max_frames", None, "At most this many frames per sequence."),
      (flags.DEFINE_boolean, "progress", True, "Show a progress bar."),
  ])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected positional arguments {argv[1:]}; use --input")
  try:
    options = PredictOptions(
        batch_size=FLAGS.batch_size, panel=FLAGS.panel, save_png16=FLAGS.save_png16,
        save_npy=FLAGS.save_npy, save_ply=FLAGS.save_ply, fx=FLAGS.fx, fy=FLAGS.fy, cx=FLAGS.cx,
        cy=FLAGS.cy, calibration=FLAGS.calibration, hfov_deg=FLAGS.hfov_deg,
        alignment=FLAGS.alignment, sparse_depth=FLAGS.sparse_depth,
        known_depths=tuple(parse_known_depths(FLAGS.known_depth)),
        depth_png_scale=FLAGS.depth_png_scale, max_depth=FLAGS.max_depth,
        frame_stride=FLAGS.frame_stride, max_frames=FLAGS.max_frames, progress=FLAGS.progress)
    options.check()
    if not FLAGS.input:
      raise InvalidInputError("no --input given; expected image / video files or folders")
    predictor = load_predictor(FLAGS.model, FLAGS.model_dir, FLAGS.experiment, FLAGS.checkpoint,
                               FLAGS.depth_type, FLAGS.num_threads)
    summary = predict(FLAGS.input, FLAGS.output_dir, predictor, options)
  except TfdepthError as e:
    print(f"tfdepth-predict: error: {e}", file=sys.stderr)
    return 2
  out = os.path.join(FLAGS.output_dir, PREDICTIONS_JSON)
  print(f"tfdepth-predict: {summary['num_ok']} frame(s) written, {summary['num_errors']} "
        f"error(s); see {out}")
  for r in summary["frames"]:
    if r.get("status") == ERROR:
      print(f"  error: {r['input']}: {r['error']}", file=sys.stderr)
  return 1 if summary["num_errors"] else 0


def run():
  """Console-script entry point (`tfdepth-predict`)."""
  from trainers import common  # pylint: disable=g-import-not-at-top
  _define_flags()
  common.complete_help(__doc__, [f.name for f in FLAGS.get_flags_for_module(__name__)])
  app.run(main)


if __name__ == "__main__":
  run()
