"""Self-supervised video pipeline (Monodepth2 augmentation) and a simulated sparse-LiDAR sampler.

Element produced by `make_self_supervised_dataset` (per example; batched adds a leading B):

* `frames`      `(3, H, W, 3)` float32 [0, 1], temporal order [t-1, t, t+1], **not** colour
  jittered: the photometric losses are computed on these (Godard et al. 2019, Sec. 4.1;
  Monodepth2 `mono_dataset.py` keeps `color` and `color_aug` separately).
* `frames_aug`  `(3, H, W, 3)` float32 [0, 1], the same frames after one colour-jitter draw shared by
  all three frames (what the depth and pose networks see).
* `intrinsics`  `(3, 3)` float32 pixels of (H, W), updated for the resize and the flip.
* `flipped`     `()` bool, True when the augmentation mirrored the example (False without
  augmentation): a learned per-video K must be mirrored too (`trainers.dynamic`).
* `video_index` `()` int32, when the source has it (`render_clip(video_index=...)`): the video,
  i.e. the camera, the clip comes from (per-video learned intrinsics).
* optional, when the source has them: `depth` `(H, W, 1)` metres (0 = invalid), `sparse_depth`
  `(H, W, 1)` (simulated LiDAR, `sample_lidar_scan_lines`), `semantic` `(H, W, 1)` int32
  Cityscapes label ids, `seg_labels` `(H, W, 1)` int32 Cityscapes train ids (255 = ignore),
  `seg_weights` `(H, W, 1)` float32 U-Net border weights, `moving_mask` `(H, W, 1)` float32,
  `target_from_source` `(2, 4, 4)` for sources [t-1, t+1].
* with `stereo=True` (Monodepth2 S / MS modes): `stereo_image` `(H, W, 3)` float32 [0, 1], the
  other camera of the rectified pair at time t, not jittered; `stereo_image_aug` the same after the
  colour-jitter draw of `frames_aug` (Monodepth2 jitters every loaded image alike); and
  `target_from_stereo` `(4, 4)` float32, the fixed stereo transform p_target = M @ p_stereo: a pure
  x translation of `+b` when the target is the left camera (KITTI `image_02`, side "l") and `-b`
  when it is the right one (`image_03`, "r"), with b = `MONODEPTH2_STEREO_BASELINE` = 0.1 by
  default (Monodepth2 `mono_dataset.py` `stereo_T`, which is the inverse, `stereo_from_target`:
  `stereo_T[0, 3] = side_sign * baseline_sign * 0.1` with side_sign = -1 for "l").

Augmentation (training only), as Monodepth2 (`mono_dataset.py`): the whole frame is resized to
(H, W) (no crop), horizontally flipped with probability 0.5 (tfdepth also maps K: cx' = W - 1 - cx,
and conjugates the poses by the mirror), colour jitter with probability 0.5. Monodepth2 does not
change K on flips because its cx = 0.5·W is (almost) symmetric; tfdepth updates it exactly.
The flip conjugates `target_from_stereo` by the mirror too, which negates its x translation: the
mirrored target camera is on the other side of its partner (Monodepth2: `baseline_sign = -1` when
flipped).
"""

import math

import numpy as np
import scipy.ndimage
import tensorflow as tf

from tfdepth.data import adapters
from tfdepth.data import augment
from tfdepth.data import pipeline
from tfdepth.errors import InvalidInputError
from tfdepth.geometry import backproject
from tfdepth.geometry import resize_intrinsics
from tfdepth.losses import unet_weight_map_numpy

# Velodyne HDL-64E (the KITTI LiDAR; Geiger et al. 2013, Sec. 2 and the HDL-64E S2 datasheet):
# 64 beams over a vertical field of view of +2.0 deg to -24.8 deg, horizontal angular resolution
# 0.08 deg (at 5 Hz; 0.1728 deg at 10 Hz, the KITTI rate), range 120 m.
HDL64_NUM_BEAMS = 64
HDL64_FOV_UP_DEG = 2.0
HDL64_FOV_DOWN_DEG = -24.8
HDL64_AZIMUTH_RESOLUTION_DEG = 0.1728
HDL64_MAX_RANGE_M = 120.0

# Cityscapes label id -> train id (cityscapesScripts `helpers/labels.py`, Cordts et al. 2016);
# every other id maps to the ignore value 255.
CITYSCAPES_IGNORE_ID = 255
CITYSCAPES_LABEL_TO_TRAIN_ID = {
    7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10, 24: 11, 25: 12,
    26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18,
}
CITYSCAPES_NUM_TRAIN_IDS = 19
# Cityscapes label ids of "object" classes (category "object": pole 17, traffic light 19, traffic
# sign 20; categories "human" 24, 25 and "vehicle" 26-33) whose connected components are the
# instances of the U-Net border weight map (Ronneberger et al. 2015, Eq. 2).
BORDER_OBJECT_LABEL_IDS = (17, 19, 20, 24, 25, 26, 27, 28, 31, 32, 33)

# Monodepth2 `datasets/mono_dataset.py`: `stereo_T[0, 3] = side_sign * baseline_sign * 0.1`; the
# network is trained for a 0.1 (unit-less) baseline and the KITTI evaluation multiplies its depth
# by 0.54 / 0.1 = 5.4 (`evaluate_depth.py` STEREO_SCALE_FACTOR).
MONODEPTH2_STEREO_BASELINE = 0.1
# KITTI side of the target camera: "l" = image_02 (left), "r" = image_03 (right); the stereo
# partner of a left target sits at +b along the target's x axis (Monodepth2 side_sign).
KITTI_LEFT_SIDE = "l"
STEREO_KEYS = ("stereo_image", "target_from_stereo")
_POSE_KEYS = ("target_from_source", "target_from_stereo")
# Per-example scalars that a flip leaves as they are.
_PER_EXAMPLE_KEYS = ("video_index", "flipped")

_SALT_FLIP, _SALT_JITTER, _SALT_LIDAR = 11, 12, 13
_NUM_FRAMES = 3


def cityscapes_train_ids(semantic):
  """Cityscapes label ids `(..., 1)` (any int dtype) -> train ids int32 (255 = ignore)."""
  table = np.full(256, CITYSCAPES_IGNORE_ID, np.int32)
  for label_id, train_id in CITYSCAPES_LABEL_TO_TRAIN_ID.items():
    table[label_id] = train_id
  return tf.gather(tf.constant(table), tf.cast(semantic, tf.int32))


def border_weights_numpy(semantic, object_label_ids=BORDER_OBJECT_LABEL_IDS):
  """U-Net border weights `(H, W, 1)` float32 from a Cityscapes label-id map `(H, W, 1)`.

  The instances are the 8-connected components of pixels whose label is in `object_label_ids`
  (background = everything else); `unet_weight_map_numpy` (w0 = 10, sigma = 5 px) then up-weights
  the background gaps between nearby objects.
  """
  sem = np.asarray(semantic)
  objects = np.isin(sem[..., 0], np.asarray(object_label_ids))
  instances, _ = scipy.ndimage.label(objects, structure=np.ones((3, 3), np.int32))
  return unet_weight_map_numpy(instances.astype(np.int32))[..., None]


def _beam_angles(num_beams, fov_up_deg, fov_down_deg):
  return tf.constant(np.deg2rad(np.linspace(fov_down_deg, fov_up_deg, num_beams)), tf.float32)


def lidar_scan_mask(height, width, intrinsics, num_beams=HDL64_NUM_BEAMS,
                    fov_up_deg=HDL64_FOV_UP_DEG, fov_down_deg=HDL64_FOV_DOWN_DEG,
                    azimuth_resolution_deg=HDL64_AZIMUTH_RESOLUTION_DEG):
  """Pixels hit by a simulated spinning LiDAR co-located with the camera, `(H, W, 1)` float32.

  Each beam b sweeps a cone of constant elevation e_b (uniform in [fov_down, fov_up]); in the
  image it is a curved scan line. A pixel (u, v) has elevation atan(-y / sqrt(x² + 1)) and azimuth
  atan(x) with x = (u - cx)/fx, y = (v - cy)/fy. In every column the row whose elevation is closest
  to e_b is hit when it is within half a row (1 / (2 fy) rad) of it; columns are kept where the
  azimuth is closest to a multiple of the azimuth resolution (every column when the resolution is
  finer than a pixel).

  Args:
    height, width: Python ints, image size.
    intrinsics: `(3, 3)` float32 K in pixels of (height, width).
    num_beams, fov_up_deg, fov_down_deg, azimuth_resolution_deg: sensor model (HDL-64E default).
  Returns:
    `(height, width, 1)` float32 mask in {0, 1}.
  Raises:
    InvalidInputError: non-positive sizes / beam count / resolution or fov_down >= fov_up.
  """
  for name, value in (("height", height), ("width", width), ("num_beams", num_beams)):
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
      raise InvalidInputError(f"{name} expected a positive int, received {value!r}")
  if not fov_down_deg < fov_up_deg:
    raise InvalidInputError(
        f"expected fov_down_deg < fov_up_deg, received {fov_down_deg!r}, {fov_up_deg!r}")
  if not azimuth_resolution_deg > 0:
    raise InvalidInputError(
        f"azimuth_resolution_deg expected > 0, received {azimuth_resolution_deg!r}")
  k = tf.cast(intrinsics, tf.float32)
  fx, fy, cx, cy = k[0, 0], k[1, 1], k[0, 2], k[1, 2]
  u = tf.range(width, dtype=tf.float32)
  v = tf.range(height, dtype=tf.float32)
  x = (u - cx) / fx                                          # (W,)
  y = (v - cy) / fy                                          # (H,)
  elevation = tf.atan(-y[:, None] / tf.sqrt(x[None, :] ** 2 + 1.0))   # (H, W)
  beams = _beam_angles(num_beams, fov_up_deg, fov_down_deg)            # (NB,)
  diff = tf.abs(elevation[None] - beams[:, None, None])                # (NB, H, W)
  rows = tf.argmin(diff, axis=1, output_type=tf.int32)                 # (NB, W)
  hit = tf.reduce_min(diff, axis=1) <= 0.5 / fy                        # (NB, W)
  row_mask = tf.one_hot(rows, height, axis=1) * tf.cast(hit, tf.float32)[:, None, :]  # (NB, H, W)
  mask = tf.reduce_max(row_mask, axis=0)                               # (H, W)
  azimuth = tf.atan(x)                                                 # (W,)
  res = math.radians(azimuth_resolution_deg)
  steps = tf.round(azimuth / res)
  # A column is kept when it is the closest column to its azimuth step k·res.
  dist = tf.abs(azimuth - steps * res)
  same_prev = tf.concat([[False], tf.equal(steps[1:], steps[:-1])], 0)
  same_next = tf.concat([tf.equal(steps[:-1], steps[1:]), [False]], 0)
  prev_dist = tf.concat([[np.inf], dist[:-1]], 0)
  next_dist = tf.concat([dist[1:], [np.inf]], 0)
  keep_col = ~((same_prev & (prev_dist <= dist)) | (same_next & (next_dist < dist)))
  return (mask * tf.cast(keep_col, tf.float32)[None, :])[..., None]


def sample_lidar_scan_lines(depth, intrinsics, max_range=HDL64_MAX_RANGE_M, **sensor_kwargs):
  """Simulated sparse LiDAR ground truth: `depth` kept on `lidar_scan_mask` pixels.

  Args:
    depth: `(H, W, 1)` float32 dense z-depth in metres (0 = invalid), static H, W.
    intrinsics: `(3, 3)` K in pixels.
    max_range: metres; points whose range (distance from the camera centre,
      z·sqrt(1 + x² + y²) with x = (u - cx)/fx, y = (v - cy)/fy) exceeds it are dropped.
    **sensor_kwargs: passed to `lidar_scan_mask`.
  Returns:
    `(H, W, 1)` float32 sparse depth (0 where no return).
  """
  depth = tf.convert_to_tensor(depth, tf.float32)
  if depth.shape.rank != 3 or depth.shape[-1] != 1 or None in depth.shape[:2]:
    raise InvalidInputError(f"depth expected a static shape (H, W, 1), received {depth.shape}")
  h, w = int(depth.shape[0]), int(depth.shape[1])
  mask = lidar_scan_mask(h, w, intrinsics, **sensor_kwargs)
  points = backproject(depth[tf.newaxis], tf.cast(intrinsics, tf.float32)[tf.newaxis])[0]
  distance = tf.norm(points, axis=-1, keepdims=True)   # (H, W, 1) metres from the camera
  keep = mask * tf.cast((depth > 0.0) & (distance <= max_range), tf.float32)
  return depth * keep


def _flip_element(e):
  out = augment.flip_horizontal({k: e[k] for k in ("frames", "intrinsics", "target_from_source")
                                 if k in e})
  if "target_from_stereo" in e:
    out["target_from_stereo"] = mirror_pose(e["target_from_stereo"])
  out.update({k: tf.reverse(v, axis=[-2]) for k, v in e.items()
              if k not in ("frames", "intrinsics") + _POSE_KEYS + _PER_EXAMPLE_KEYS})
  out.update({k: e[k] for k in _PER_EXAMPLE_KEYS if k in e})
  out["flipped"] = tf.constant(True)
  return out


def mirror_pose(pose):
  """A pose `(..., 4, 4)` of the horizontally mirrored scene: F M F with F = diag(-1, 1, 1, 1).

  For a pure x translation (the stereo transform) this negates the translation.
  """
  mirror = tf.constant([-1.0, 1.0, 1.0, 1.0], tf.float32)
  return tf.cast(pose, tf.float32) * mirror[:, tf.newaxis] * mirror[tf.newaxis, :]


def target_from_stereo_transform(baseline, target_is_left=True):
  """The fixed stereo transform `target_from_stereo` `(4, 4)` float32 of a rectified pair.

  Args:
    baseline: scalar float (metres, or Monodepth2's unit-less 0.1), distance between the cameras.
    target_is_left: bool or scalar bool tensor; True when the target is the left camera, whose
      partner is at +baseline along x (camera frame x right), so p_target = p_stereo + (b, 0, 0).
  Returns:
    `(4, 4)` float32 identity rotation, translation `(+-baseline, 0, 0)`.
  """
  b = tf.cast(baseline, tf.float32)
  tx = tf.where(tf.cast(target_is_left, tf.bool), b, -b)
  return tf.tensor_scatter_nd_update(tf.eye(4), [[0, 3]], tf.reshape(tx, [1]))


def _stereo_baseline(example, baseline):
  if baseline is None:
    return tf.cast(example["stereo_baseline"], tf.float32)
  if isinstance(baseline, bool) or not isinstance(baseline, (int, float)) or not baseline > 0:
    raise InvalidInputError(
        f"stereo baseline expected a number > 0 or None (metric baseline of the example), "
        f"received {baseline!r}")
  return tf.constant(baseline, tf.float32)


def _resize_element(e, height, width):
  frames = e["frames"]
  h, w = tf.shape(frames)[-3], tf.shape(frames)[-2]
  out = dict(e)
  out["frames"] = augment.resize_images(frames, height, width)
  for key in ("depth", "sparse_depth", "semantic", "moving_mask", "seg_labels", "seg_weights"):
    if key in e:
      out[key] = tf.cast(tf.image.resize(e[key], [height, width], method="nearest"), e[key].dtype)
  if "stereo_image" in e:   # same size and K as the target (rectified pair)
    out["stereo_image"] = augment.resize_images(e["stereo_image"], height, width)
  out["intrinsics"] = resize_intrinsics(e["intrinsics"], tf.stack([h, w]),
                                                tf.constant([height, width]))
  return out


def synthetic_world_to_self_supervised(example, stereo_baseline=MONODEPTH2_STEREO_BASELINE):
  """`synthetic_world` example -> self-supervised element (before resize / augmentation).

  Examples rendered with a stereo partner (`render_clip(stereo_baseline=...)`, config
  `street_stereo`) also give `stereo_image` and `target_from_stereo`: the target is the left
  camera, so the translation is `+stereo_baseline` (default Monodepth2's 0.1; None = the
  example's metric `stereo_baseline`).
  """
  out = adapters.synthetic_world_to_video(example)
  if "stereo_image" in example:
    out["stereo_image"] = adapters.image_to_float(example["stereo_image"], "stereo_image")
    out["target_from_stereo"] = target_from_stereo_transform(
        _stereo_baseline(example, stereo_baseline), True)
  out["depth"] = adapters.sanitize_depth(out["depth"])
  if "semantic" in example:
    out["semantic"] = tf.cast(example["semantic"], tf.int32)
  if "moving_mask" in example:
    out["moving_mask"] = tf.cast(example["moving_mask"], tf.float32)
  if "video_index" in example:
    out["video_index"] = tf.cast(example["video_index"], tf.int32)
  return out


def kitti_to_self_supervised(example, stereo_baseline=MONODEPTH2_STEREO_BASELINE):
  """`kitti_depth/eigen_zhou` example -> self-supervised element (frames t-1, t, t+1; K).

  Also gives the stereo partner `stereo_image` (float32 [0, 1]) and `target_from_stereo`
  (`target_from_stereo_transform`): `+b` along x when the example's `side` is "l" (the target is
  image_02), `-b` for "r" (image_03), b = `stereo_baseline` (default Monodepth2's 0.1; None = the
  calibrated `stereo_baseline` in metres). `make_self_supervised_dataset` drops both unless
  `stereo=True`. The split has no ground-truth depth.
  """
  out = {
      "frames": adapters.image_to_float(example["frames"], "frames"),
      "intrinsics": tf.cast(example["intrinsics"], tf.float32),
  }
  if "stereo_image" in example:
    out["stereo_image"] = adapters.image_to_float(example["stereo_image"], "stereo_image")
    out["target_from_stereo"] = target_from_stereo_transform(
        _stereo_baseline(example, stereo_baseline),
        tf.equal(example["side"], KITTI_LEFT_SIDE))
  return out


def make_self_supervised_dataset(builder_or_ds, split="train", batch_size=4, height=None,
                                 width=None, training=False, seed=0, augment_data=None,
                                 repeat=None, drop_remainder=None,
                                 shuffle_buffer=pipeline.DEFAULT_SHUFFLE_BUFFER, cache=False,
                                 adapter=None, data_dir=None, sparse_depth=False,
                                 segmentation=False, flip_probability=augment.FLIP_PROBABILITY,
                                 color_jitter_probability=augment.COLOR_JITTER_PROBABILITY,
                                 prefetch=True, num_parallel_calls=pipeline.AUTOTUNE,
                                 lidar_kwargs=None, stereo=False):
  """Batched self-supervised dataset (see the module docstring for the element).

  Args:
    builder_or_ds: TFDS builder, TFDS name or `tf.data.Dataset` of raw examples
      (`tfdepth.data.pipeline.read_split`).
    split, batch_size, training, seed, augment_data, repeat, drop_remainder, shuffle_buffer,
      cache, data_dir, num_parallel_calls, prefetch: as `make_supervised_dataset`.
    height, width: network input size (Python ints); None keeps the stored size (no augmentation
      then).
    adapter: raw example -> element with `frames` (3, H, W, 3) float32 [0, 1] and `intrinsics`;
      default `synthetic_world_to_self_supervised`.
    sparse_depth: add `sparse_depth` simulated from `depth` with `sample_lidar_scan_lines`
      (at the output resolution, after augmentation).
    segmentation: add `seg_labels` (train ids) and `seg_weights` (U-Net border weights), which
      need `semantic`.
    flip_probability, color_jitter_probability: Monodepth2 uses 0.5 and 0.5.
    lidar_kwargs: dict passed to `lidar_scan_mask`.
    stereo: keep the adapter's `stereo_image` / `target_from_stereo` (resized, flipped with the
      frames, `stereo_image_aug` jittered with the frames' draw); False drops them.
  Returns:
    `tf.data.Dataset` of dicts (batched).
  Raises:
    InvalidInputError: bad arguments, or a requested output the data cannot provide.
  """
  pipeline._check_positive_int(batch_size, "batch_size")  # pylint: disable=protected-access
  if (height is None) != (width is None):
    raise InvalidInputError(
        f"height and width expected both None or both ints, received {height!r}, {width!r}")
  augment_data = training if augment_data is None else augment_data
  repeat = training if repeat is None else repeat
  drop_remainder = training if drop_remainder is None else drop_remainder
  if augment_data and height is None:
    raise InvalidInputError("augmentation needs an output height and width, received None")
  ds, _ = pipeline.read_split(builder_or_ds, split, training, seed, data_dir)
  adapter = adapter or synthetic_world_to_self_supervised
  lidar_kwargs = dict(lidar_kwargs or {})

  def _adapt(example):
    e = adapter(example)
    if not stereo:
      e = {k: v for k, v in e.items() if k not in STEREO_KEYS}
    frames = e["frames"]
    if frames.shape.rank is not None and (frames.shape.rank != 4 or frames.shape[0] != _NUM_FRAMES
                                          or frames.shape[-1] != 3):
      raise InvalidInputError(
          f"frames expected shape (3, H, W, 3) [t-1, t, t+1], received {frames.shape}")
    return e

  ds = ds.map(_adapt, num_parallel_calls=num_parallel_calls, deterministic=True)
  keys = set(ds.element_spec)
  if (sparse_depth and "depth" not in keys) or (segmentation and "semantic" not in keys):
    raise InvalidInputError(
        f"sparse_depth needs 'depth' and segmentation needs 'semantic'; the adapted element has "
        f"{sorted(keys)}")
  if stereo and not set(STEREO_KEYS) <= keys:
    raise InvalidInputError(
        f"stereo=True needs {list(STEREO_KEYS)} from the adapter (a dataset with a stereo pair, "
        f"e.g. kitti_depth/eigen_zhou or synthetic_world/street_stereo); the adapted element has "
        f"{sorted(keys)}")
  if cache:
    ds = ds.cache()
  if training:
    ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
  if repeat:
    ds = ds.repeat()
  ds = pipeline.element_seeds(ds, seed)

  def _transform(s, e):
    if height is not None:
      e = _resize_element(e, height, width)
    if augment_data:
      do_flip = augment._uniform(augment.fold_seed(s, _SALT_FLIP), 0, 0.0, 1.0) < flip_probability  # pylint: disable=protected-access
      e["flipped"] = tf.constant(False)
      flipped = _flip_element(e)
      e = {k: tf.where(do_flip, flipped[k], e[k]) for k in e}
      stack = e["frames"]
      if stereo:   # one jitter draw for the frames and the stereo partner
        stack = tf.concat([stack, e["stereo_image"][tf.newaxis]], axis=0)
      jittered = augment.random_color_jitter(
          stack, augment.fold_seed(s, _SALT_JITTER), color_jitter_probability)
      e["frames_aug"] = jittered[:_NUM_FRAMES]
      if stereo:
        e["stereo_image_aug"] = jittered[_NUM_FRAMES]
    else:
      e["flipped"] = tf.constant(False)
      e["frames_aug"] = e["frames"]
      if stereo:
        e["stereo_image_aug"] = e["stereo_image"]
    if sparse_depth:
      e["sparse_depth"] = sample_lidar_scan_lines(e["depth"], e["intrinsics"], **lidar_kwargs)
    if segmentation:
      e["seg_labels"] = cityscapes_train_ids(e["semantic"])
      weights = tf.numpy_function(border_weights_numpy, [e["semantic"]], tf.float32,
                                  stateful=False)
      e["seg_weights"] = tf.ensure_shape(weights, e["semantic"].shape)
    return e

  ds = ds.map(_transform, num_parallel_calls=num_parallel_calls, deterministic=True)
  ds = ds.batch(batch_size, drop_remainder=drop_remainder)
  if prefetch:
    ds = ds.prefetch(pipeline.AUTOTUNE)
  return ds


def clips_to_dataset(clip_list):
  """`tf.data.Dataset` of raw synthetic_world-like examples from a list of numpy clip dicts
  (e.g. `tfds_builders.synthetic_world.clips.render_clip` outputs; `clip_id` is dropped)."""
  if not clip_list:
    raise InvalidInputError("clips_to_dataset expected a non-empty list of clips, received []")
  keys = [k for k in clip_list[0] if k != "clip_id"]
  stacked = {k: np.stack([c[k] for c in clip_list]) for k in keys}
  return tf.data.Dataset.from_tensor_slices(stacked)


__all__ = [
    "BORDER_OBJECT_LABEL_IDS", "CITYSCAPES_IGNORE_ID", "CITYSCAPES_LABEL_TO_TRAIN_ID",
    "CITYSCAPES_NUM_TRAIN_IDS", "HDL64_AZIMUTH_RESOLUTION_DEG", "HDL64_FOV_DOWN_DEG",
    "HDL64_FOV_UP_DEG", "HDL64_MAX_RANGE_M", "HDL64_NUM_BEAMS", "KITTI_LEFT_SIDE",
    "MONODEPTH2_STEREO_BASELINE", "STEREO_KEYS", "border_weights_numpy",
    "cityscapes_train_ids", "clips_to_dataset", "kitti_to_self_supervised", "lidar_scan_mask", "make_self_supervised_dataset",
    "mirror_pose", "sample_lidar_scan_lines", "synthetic_world_to_self_supervised",
    "target_from_stereo_transform",
]
