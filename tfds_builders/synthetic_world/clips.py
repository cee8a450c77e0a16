"""Pure-NumPy rendering of one synthetic-world clip (frames t-1, t, t+1) and its ground truth.

`render_clip` is what the TFDS builder stores per example and what tests call directly (no TFDS,
no TensorFlow). Per-clip randomness comes from `clip_rng(seed, split, index)`:
`np.random.default_rng(np.random.SeedSequence([seed, crc32(split), index]))`, so a clip depends only
on (seed, split, index) and splits never share a layout.
"""

import math
import zlib

import numpy as np

from tfds_builders.synthetic_world import renderer
from tfds_builders.synthetic_world import scenes

# Time offsets (frames) of the stored frames relative to the centre frame t, and of the sources.
FRAME_TIMES = (-1, 0, 1)
SOURCE_TIMES = (-1, 1)
CENTRE_INDEX = 1
# Stereo partner of the street scene: KITTI's image_02 / image_03 baseline, 0.54 m (Geiger et al.
# 2013, Fig. 3; Monodepth2 `evaluate_depth.py` STEREO_SCALE_FACTOR = 0.54 / 0.1), so models trained
# on it are evaluated exactly as on KITTI (x5.4 for Monodepth2's 0.1 training baseline).
KITTI_STEREO_BASELINE_M = 0.54


def clip_key(split, index):
  """Stable example key, e.g. 'train_000042'."""
  return f"{split}_{index:06d}"


def clip_rng(seed, split, index):
  """np.random.Generator of clip `index` of `split` for config seed `seed` (no global state)."""
  entropy = [int(seed), zlib.crc32(str(split).encode("utf-8")), int(index)]
  return np.random.default_rng(np.random.SeedSequence(entropy))


def _check_positive_int(name, value):
  if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
    raise ValueError(f"{name} must be a positive int, got {value!r}")


def render_clip(scene="street", height=None, width=None, seed=0, split="train", index=0,
                random_intrinsics=False, include_all_depths=False, stereo_baseline=None):
  """Renders one clip and its ground truth.

  Args:
    scene: "street" (KITTI-like) or "indoor" (NYU-like).
    height, width: image size in pixels; None for the scene default (street 128x416, indoor
      192x256).
    seed: config seed (int).
    split: split name, part of the clip's seed.
    index: clip index within the split, part of the clip's seed.
    random_intrinsics: draw the clip's own K around the scene default ("unknown camera").
    include_all_depths: also return 'depth_all' and 'world_from_camera' (for tests).
    stereo_baseline: None (default: no stereo partner, the output is unchanged) or metres > 0:
      also render frame t from a second camera shifted by +stereo_baseline along camera t's x axis
      (the right camera of a rectified pair whose left camera is frame t; same K, same scene
      time). It costs one more render (a clip renders 3 views otherwise).
  Returns:
    dict of numpy arrays (H, W the image size):
      'frames': (3, H, W, 3) uint8 RGB of frames [t-1, t, t+1];
      'depth': (H, W, 1) float32 z-depth of frame t, metres; 0 = invalid (sky, nothing hit, or
        beyond the scene's max depth: 80 m street, 10 m indoor);
      'semantic': (H, W, 1) uint8 Cityscapes label ids of frame t;
      'normals': (H, W, 3) float16 unit surface normals in camera-t coordinates, facing the
        camera; 0 where depth is invalid;
      'moving_mask': (H, W, 1) uint8, 1 on pixels of frame t showing independently moving objects;
      'object_motion': (2, H, W, 3) float32, for sources [t-1, t+1]: displacement (metres, camera-t
        coordinates) of the scene point seen at each pixel of frame t from time t to the source
        time; 0 on static pixels;
      'intrinsics': (3, 3) float32 K in pixels at (H, W), integer pixel centres;
      'target_from_source': (2, 4, 4) float32 for sources [t-1, t+1]: p_t = M @ p_source for static
        points (x right, y down, z forward);
      'clip_id': str, clip_key(split, index);
      with include_all_depths: 'depth_all' (3, H, W, 1) float32 (same validity rule) and
      'world_from_camera' (3, 4, 4) float64;
      with stereo_baseline: 'stereo_image' (H, W, 3) uint8 RGB of the right camera at time t and
      'stereo_baseline' float32 scalar metres (p_t = p_right + (baseline, 0, 0)).
  Raises:
    ValueError: unknown scene, non-positive / non-int sizes or a bad stereo_baseline.
  """
  if scene not in scenes.SCENES:
    raise ValueError(f"unknown scene {scene!r}; expected one of {scenes.SCENES}")
  dh, dw = scenes.DEFAULT_SIZES[scene]
  height = dh if height is None else height
  width = dw if width is None else width
  _check_positive_int("height", height)
  _check_positive_int("width", width)
  if stereo_baseline is not None and (
      isinstance(stereo_baseline, bool) or not isinstance(stereo_baseline, (int, float))
      or not math.isfinite(stereo_baseline) or stereo_baseline <= 0):
    raise ValueError(f"stereo_baseline must be None or a finite number of metres > 0, got "
                     f"{stereo_baseline!r}")
  if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or index < 0:
    raise ValueError(f"index must be a non-negative int, got {index!r}")
  rng = clip_rng(seed, split, index)
  clip = scenes.make_clip(rng, scene)
  if random_intrinsics:
    k = scenes.sample_intrinsics(rng, scene, height, width)
  else:
    k = scenes.default_intrinsics(scene, height, width)
  max_depth = clip.scene.max_depth

  frames = np.zeros((3, height, width, 3), np.uint8)
  depth_all = np.zeros((3, height, width, 1), np.float32)
  centre = None
  for f, (pose, tau) in enumerate(zip(clip.poses, clip.times)):
    view = renderer.render_view(clip.scene, pose, k, height, width, time=tau)
    frames[f] = np.round(view["rgb"] * 255.0).astype(np.uint8)
    d = view["depth"]
    depth_all[f, ..., 0] = np.where(d <= max_depth, d, 0.0)
    if f == CENTRE_INDEX:
      centre = view

  depth = depth_all[CENTRE_INDEX]
  valid = depth[..., 0] > 0.0
  normals = np.where(valid[..., None], centre["normal"], 0.0).astype(np.float16)
  cam_t = clip.poses[CENTRE_INDEX]
  rot_wc = cam_t[:3, :3]
  vel_cam = centre["velocity"] @ rot_wc  # R^T v as row vectors, metres per frame
  motion = np.stack([vel_cam * s for s in SOURCE_TIMES]).astype(np.float32)
  moving = centre["moving"]
  t_from_s = np.stack([np.linalg.inv(cam_t) @ clip.poses[CENTRE_INDEX + s]
                       for s in SOURCE_TIMES]).astype(np.float32)
  out = {
      "frames": frames,
      "depth": depth,
      "semantic": centre["label"][..., None].astype(np.uint8),
      "normals": normals,
      "moving_mask": moving[..., None].astype(np.uint8),
      "object_motion": motion,
      "intrinsics": k.astype(np.float32),
      "target_from_source": t_from_s,
      "clip_id": clip_key(split, index),
  }
  if stereo_baseline is not None:
    left_from_right = np.eye(4)
    left_from_right[0, 3] = stereo_baseline
    view = renderer.render_view(clip.scene, cam_t @ left_from_right, k, height, width,
                                time=clip.times[CENTRE_INDEX])
    out["stereo_image"] = np.round(view["rgb"] * 255.0).astype(np.uint8)
    out["stereo_baseline"] = np.float32(stereo_baseline)
  if include_all_depths:
    out["depth_all"] = depth_all
    out["world_from_camera"] = clip.poses.copy()
  return out
