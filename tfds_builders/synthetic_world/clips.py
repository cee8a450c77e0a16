"""Pure-NumPy rendering of one synthetic-world clip (frames t-1, t, t+1) and its ground truth.

`render_clip(..., num_frames=N)` renders a longer sequence around the same frame t (for pose
evaluation over 5-frame snippets, Zhou et al. 2017): frames t-1, t, t+1 are those of the 3-frame
clip, and the camera continues before and after them with the mean per-frame motion of
t-1 -> t+1 (`mean_step`: constant speed and turn rate).

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
# Sequence length of `render_clip(num_frames=...)`: 3 is the training clip [t-1, t, t+1].
DEFAULT_NUM_FRAMES = 3
# Longest sequence: the indoor camera is placed >= INDOOR_WALL_MARGIN_M (0.7 m) from every wall and
# moves <= INDOOR_STEP_RANGE_M[1] (0.06 m) per frame, so 11 frames on each side of t stay inside
# the room (the street extends 40 m behind and 160 m ahead of t at ~1 m per frame).
MAX_NUM_FRAMES = 2 * int(scenes.INDOOR_WALL_MARGIN_M / scenes.INDOOR_STEP_RANGE_M[1]) + 1


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


def frame_times(num_frames):
  """Time offsets (frames) from t of a `num_frames` sequence: -(N-1)//2 ... N-1-(N-1)//2.

  3 -> (-1, 0, 1) (`FRAME_TIMES`), 5 -> (-2, ..., 2), 4 -> (-1, 0, 1, 2); frame t is at index
  (N-1)//2.
  """
  first = -((num_frames - 1) // 2)
  return tuple(range(first, first + num_frames))


def _rotation_power(rot, power):
  """R^power of a (3, 3) rotation with angle < pi: same axis, angle x power (Rodrigues)."""
  cos = np.clip((np.trace(rot) - 1.0) / 2.0, -1.0, 1.0)
  angle = math.acos(cos)
  skew = np.array([rot[2, 1] - rot[1, 2], rot[0, 2] - rot[2, 0], rot[1, 0] - rot[0, 1]])
  norm = np.linalg.norm(skew)  # = 2 sin(angle)
  if norm == 0.0:
    return np.eye(3)
  axis = skew / norm
  k = np.array([[0.0, -axis[2], axis[1]], [axis[2], 0.0, -axis[0]], [-axis[1], axis[0], 0.0]])
  part = power * angle
  return np.eye(3) + math.sin(part) * k + (1.0 - math.cos(part)) * (k @ k)


def mean_step(first_from_last):
  """The rigid (4, 4) S with S @ S = `first_from_last` (a screw motion halved).

  Used as the per-frame camera motion `prev_from_next` beyond frames t-1, t+1 of a sequence:
  `first_from_last` = inv(world_from_camera(t-1)) @ world_from_camera(t+1).
  R_S = the rotation of half the angle about the same axis; t_S solves (R_S + I) t_S = t.
  """
  m = np.asarray(first_from_last, np.float64)
  rot_h = _rotation_power(m[:3, :3], 0.5)
  out = np.eye(4)
  out[:3, :3] = rot_h
  out[:3, 3] = np.linalg.solve(rot_h + np.eye(3), m[:3, 3])
  return out


def retime_clip(clip, frame_interval):
  """The clip's frames t-1, t+1 moved to times t -+ frame_interval (frames of the scene default).

  Camera: `world_from_camera(t + s)` becomes `P_t @ F(inv(P_t) @ P_{t+s}, frame_interval)`, where
  F scales the rotation angle (same axis) and the translation of the relative motion by
  `frame_interval`, so a camera at 1 m per frame moves 1/3 m with `frame_interval=1/3`
  (including the per-frame jitter). Moving objects are rendered at the scaled times, so their
  displacement scales alike. frame_interval = 1 returns `clip` itself.
  """
  if frame_interval == 1.0:
    return clip
  centre = clip.poses[CENTRE_INDEX]
  poses = []
  for i, pose in enumerate(clip.poses):
    if i == CENTRE_INDEX:
      poses.append(centre)
      continue
    rel = np.linalg.inv(centre) @ pose
    part = np.eye(4)
    part[:3, :3] = _rotation_power(rel[:3, :3], frame_interval)
    part[:3, 3] = rel[:3, 3] * frame_interval
    poses.append(centre @ part)
  t0 = clip.times[CENTRE_INDEX]
  times = t0 + (np.asarray(clip.times, np.float64) - t0) * frame_interval
  return scenes.Clip(scene=clip.scene, poses=np.stack(poses), times=times)


def sequence_poses(clip_poses, num_frames):
  """(num_frames, 4, 4) float64 world_from_camera at `frame_times(num_frames)`.

  Frames t-1, t, t+1 are `clip_poses` (3, 4, 4) unchanged; each further frame moves by
  `mean_step` of t-1 -> t+1 from its neighbour (after t+1: P @ S, before t-1: P @ inv(S)).
  """
  times = frame_times(num_frames)
  step = mean_step(np.linalg.inv(clip_poses[0]) @ clip_poses[2])
  back = np.linalg.inv(step)
  poses = {tau: clip_poses[tau + CENTRE_INDEX] for tau in FRAME_TIMES}
  for tau in range(2, times[-1] + 1):
    poses[tau] = poses[tau - 1] @ step
  for tau in range(-2, times[0] - 1, -1):
    poses[tau] = poses[tau + 1] @ back
  return np.stack([poses[tau] for tau in times])


def pan_clip(clip, pan_rad, tilt_rad=0.0):
  """The clip with its camera panning (and tilting): frame t + s turned by s·pan_rad about its
  own y axis and then by s·tilt_rad about its x axis.

  `world_from_camera(t + s)` becomes `P_{t+s} @ R_y(s·pan_rad) @ R_x(s·tilt_rad)` (the
  `pose_matrix` convention: positive yaw turns right, positive pitch looks up); frame t, the
  positions and the scene are unchanged. pan_rad = tilt_rad = 0 returns `clip` itself.
  """
  if pan_rad == 0.0 and tilt_rad == 0.0:
    return clip
  poses = []
  for i, pose in enumerate(clip.poses):
    turn = np.eye(4)
    s = i - CENTRE_INDEX
    turn[:3, :3] = renderer.rot_y(s * pan_rad) @ renderer.rot_x(s * tilt_rad)
    poses.append(pose @ turn)
  return scenes.Clip(scene=clip.scene, poses=np.stack(poses), times=clip.times)


def render_clip(scene="street", height=None, width=None, seed=0, split="train", index=0,
                random_intrinsics=False, include_all_depths=False, stereo_baseline=None,
                num_frames=DEFAULT_NUM_FRAMES, frame_interval=1.0, pan_deg=0.0, tilt_deg=0.0,
                video_index=None):
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
    num_frames: int in [3, MAX_NUM_FRAMES]; 3 (default) is the training clip (output unchanged).
      N > 3 renders a sequence of N frames at `frame_times(N)` around the same frame t (for pose
      evaluation): frames [t-1, t, t+1] and every ground-truth field of frame t are exactly those
      of the 3-frame clip; the camera moves by `mean_step` per frame beyond them, moving objects
      keep their velocity. Costs N views.
    frame_interval: float in (0, 1], time between consecutive frames as a fraction of the scene's
      default (street: KITTI's 10 Hz, ~1 m of camera motion per frame; indoor: NYU's 30 Hz).
      1 (default) leaves the output unchanged; 1/3 renders the street as a 30 Hz camera would
      see it (`retime_clip`): the same scene and frame t, a third of the camera and object
      motion (object_motion and target_from_source scale alike).
    pan_deg: finite float, degrees per frame that the camera turns about its own vertical axis
      (`pan_clip`, applied after `frame_interval`; > 0 turns right). 0 (default) leaves the output
      unchanged. The street camera itself turns by at most ~0.5 deg per frame; under a pure
      translation the focal length is not observable from the images, so learned-intrinsics
      checks use panning clips.
    tilt_deg: finite float, degrees per frame that the camera turns about its own horizontal
      axis after panning (> 0 looks up); 0 (default) leaves the output unchanged. Without it the
      vertical focal length fy is not observable either (only fx is, through the yaw).
    video_index: None (default, output unchanged) or an int >= 0: the clip belongs to that video
      of the split's camera set: with `random_intrinsics` its K is drawn once per
      (seed, split, video_index) instead of per clip, so all clips of a video share one unknown
      camera (per-video learned intrinsics); the output gains 'video_index'. The scene is the
      clip's own either way.
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
      with video_index: 'video_index' int32 scalar;
      with include_all_depths: 'depth_all' (3, H, W, 1) float32 (same validity rule) and
      'world_from_camera' (3, 4, 4) float64;
      with num_frames = N > 3: 'frames' is (N, H, W, 3) at `frame_times(N)` (frame t at index
      (N-1)//2), 'depth_all' / 'world_from_camera' have N entries, and 'target_from_frame'
      (N, 4, 4) float32 is added: p_t = M[i] @ p_i for static points (identity at frame t;
      M[i]^-1 @ M[i+1] is the motion prev_from_next of each consecutive pair);
      with stereo_baseline: 'stereo_image' (H, W, 3) uint8 RGB of the right camera at time t and
      'stereo_baseline' float32 scalar metres (p_t = p_right + (baseline, 0, 0)).
  Raises:
    ValueError: unknown scene, non-positive / non-int sizes, a bad stereo_baseline or num_frames
      not an int in [3, MAX_NUM_FRAMES].
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
  if (isinstance(num_frames, bool) or not isinstance(num_frames, (int, np.integer))
      or not DEFAULT_NUM_FRAMES <= num_frames <= MAX_NUM_FRAMES):
    raise ValueError(f"num_frames must be an int in [{DEFAULT_NUM_FRAMES}, {MAX_NUM_FRAMES}], got "
                     f"{num_frames!r}")
  if (isinstance(frame_interval, bool) or not isinstance(frame_interval, (int, float, np.floating))
      or not math.isfinite(frame_interval) or not 0.0 < frame_interval <= 1.0):
    raise ValueError(f"frame_interval must be a number in (0, 1], got {frame_interval!r}")
  frame_interval = float(frame_interval)
  for name, value in (("pan_deg", pan_deg), ("tilt_deg", tilt_deg)):
    if (isinstance(value, bool) or not isinstance(value, (int, float, np.floating))
        or not math.isfinite(value)):
      raise ValueError(f"{name} must be a finite number of degrees, got {value!r}")
  if video_index is not None and (isinstance(video_index, bool)
                                  or not isinstance(video_index, (int, np.integer))
                                  or video_index < 0):
    raise ValueError(f"video_index must be None or a non-negative int, got {video_index!r}")
  rng = clip_rng(seed, split, index)
  clip = pan_clip(retime_clip(scenes.make_clip(rng, scene), frame_interval),
                  math.radians(float(pan_deg)), math.radians(float(tilt_deg)))
  if random_intrinsics and video_index is not None:
    k = scenes.sample_intrinsics(clip_rng(seed, f"{split}/video", video_index), scene, height,
                                 width)
  elif random_intrinsics:
    k = scenes.sample_intrinsics(rng, scene, height, width)
  else:
    k = scenes.default_intrinsics(scene, height, width)
  max_depth = clip.scene.max_depth

  centre_index = (num_frames - 1) // 2
  if num_frames == DEFAULT_NUM_FRAMES:
    world_from_camera, times = clip.poses, clip.times
  else:
    world_from_camera = sequence_poses(clip.poses, num_frames)
    times = clip.times[CENTRE_INDEX] + frame_interval * np.asarray(frame_times(num_frames),
                                                                   np.float64)
  frames = np.zeros((num_frames, height, width, 3), np.uint8)
  depth_all = np.zeros((num_frames, height, width, 1), np.float32)
  centre = None
  for f, (pose, tau) in enumerate(zip(world_from_camera, times)):
    view = renderer.render_view(clip.scene, pose, k, height, width, time=tau)
    frames[f] = np.round(view["rgb"] * 255.0).astype(np.uint8)
    d = view["depth"]
    depth_all[f, ..., 0] = np.where(d <= max_depth, d, 0.0)
    if f == centre_index:
      centre = view

  depth = depth_all[centre_index]
  valid = depth[..., 0] > 0.0
  normals = np.where(valid[..., None], centre["normal"], 0.0).astype(np.float16)
  cam_t = clip.poses[CENTRE_INDEX]
  rot_wc = cam_t[:3, :3]
  vel_cam = centre["velocity"] @ rot_wc  # R^T v as row vectors, metres per frame
  motion = np.stack([vel_cam * (s * frame_interval) for s in SOURCE_TIMES]).astype(np.float32)
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
  if video_index is not None:
    out["video_index"] = np.int32(video_index)
  if stereo_baseline is not None:
    left_from_right = np.eye(4)
    left_from_right[0, 3] = stereo_baseline
    view = renderer.render_view(clip.scene, cam_t @ left_from_right, k, height, width,
                                time=clip.times[CENTRE_INDEX])
    out["stereo_image"] = np.round(view["rgb"] * 255.0).astype(np.uint8)
    out["stereo_baseline"] = np.float32(stereo_baseline)
  if num_frames != DEFAULT_NUM_FRAMES:
    out["target_from_frame"] = (np.linalg.inv(cam_t)[None] @ world_from_camera).astype(
        np.float32)
  if include_all_depths:
    out["depth_all"] = depth_all
    out["world_from_camera"] = np.array(world_from_camera, np.float64)
  return out
