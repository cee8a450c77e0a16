"""Procedural scene layouts, camera trajectories and intrinsics of the synthetic world.

Two scenes:
  * "street" (imitates KITTI, Geiger et al. 2013): a straight road on the plane Y = 0, curbs and
    sidewalks, building facades on both sides, parked and moving cars, poles with signs, trees;
    the camera is 1.65 m above the road (KITTI's camera 2 height) and moves ~1 m per frame.
  * "indoor" (imitates NYU Depth v2, Silberman et al. 2012): a room (floor, ceiling, four walls)
    with furniture boxes and pictures, depths within 10 m, a hand-held camera.

World frame: X right, Y down, Z forward (the camera convention), ground at Y = 0. Labels are
Cityscapes label ids (Cordts et al. 2016, `cityscapesscripts/helpers/labels.py`).
Every random draw comes from the `np.random.Generator` passed in; nothing uses a global RNG.
"""

import dataclasses

import numpy as np

from tfds_builders.synthetic_world import renderer as R

# Cityscapes label ids (cityscapesscripts/helpers/labels.py).
LABEL_STATIC = 4
LABEL_GROUND = 6
LABEL_ROAD = 7
LABEL_SIDEWALK = 8
LABEL_BUILDING = 11
LABEL_WALL = 12
LABEL_POLE = 17
LABEL_TRAFFIC_SIGN = 20
LABEL_VEGETATION = 21
LABEL_SKY = 23
LABEL_CAR = 26

SCENES = ("street", "indoor")
DEFAULT_SIZES = {"street": (128, 416), "indoor": (192, 256)}

# --- Street (KITTI-like) -----------------------------------------------------------------------
# Camera height above the road: KITTI camera 2 is mounted 1.65 m above the ground (Geiger et al.
# 2013, "Vision meets Robotics: The KITTI Dataset", Fig. 3).
STREET_CAMERA_HEIGHT_M = 1.65
# KITTI's raw depth evaluation stops at 80 m (Eigen et al. 2014 cap; Monodepth2 MAX_DEPTH = 80).
STREET_MAX_DEPTH_M = 80.0
# Monodepth2 KITTI normalised intrinsics (kitti_dataset.py): fx = 0.58 W, fy = 1.92 H, cx = 0.5 W,
# cy = 0.5 H.
KITTI_FX_NORM = 0.58
KITTI_FY_NORM = 1.92
KITTI_CX_NORM = 0.5
KITTI_CY_NORM = 0.5
# Forward motion per frame: KITTI at 10 Hz and ~36 km/h is ~1 m per frame.
STREET_SPEED_RANGE_M = (0.8, 1.2)
# Heading of the car relative to the street at frame t, and per-frame yaw jitter (radians).
STREET_HEADING_RANGE_RAD = np.deg2rad(2.0)
STREET_YAW_RATE_RAD = np.deg2rad(0.5)
STREET_YAW_JITTER_RAD = np.deg2rad(0.3)
STREET_PITCH_ROLL_JITTER_RAD = np.deg2rad(0.2)
STREET_HEIGHT_JITTER_M = 0.01
STREET_LATERAL_JITTER_M = 0.02
# Extent of the generated street along Z relative to the camera at frame t (metres).
STREET_Z_MIN_M = -40.0
STREET_Z_MAX_M = 160.0
# Car dimensions (metres): typical compact car, length 3.8-4.8, width 1.6-1.9.
CAR_LENGTH_RANGE_M = (3.8, 4.8)
CAR_WIDTH_RANGE_M = (1.6, 1.9)
CAR_CLEARANCE_M = 0.2
# Speeds of moving cars relative to the ground (m/frame).
ONCOMING_SPEED_RANGE_M = (0.5, 1.5)
# Cars in the camera's lane are faster by 0.5-1.0 m/frame or slower by 0.4-0.6 m/frame (so their
# ground speed stays >= 0.2 m/frame with the camera's >= 0.8).
SAME_LANE_FASTER_RANGE_M = (0.5, 1.0)
SAME_LANE_SLOWER_RANGE_M = (0.4, 0.6)

# --- Indoor (NYU-like) --------------------------------------------------------------------------
# NYU Depth v2 Kinect intrinsics (toolbox camera_params.m): fx 518.86, fy 519.47, cx 325.58,
# cy 253.74 at 640x480, normalised by W and H.
NYU_FX_NORM = 518.857901 / 640.0
NYU_FY_NORM = 519.469611 / 480.0
NYU_CX_NORM = 325.582449 / 640.0
NYU_CY_NORM = 253.736166 / 480.0
# NYU evaluation caps depth at 10 m (Eigen et al. 2014).
INDOOR_MAX_DEPTH_M = 10.0
ROOM_WIDTH_RANGE_M = (3.0, 6.0)
ROOM_DEPTH_RANGE_M = (3.5, 7.0)
ROOM_HEIGHT_RANGE_M = (2.4, 3.0)
INDOOR_CAMERA_HEIGHT_RANGE_M = (1.2, 1.7)
INDOOR_PITCH_RANGE_RAD = (np.deg2rad(-20.0), np.deg2rad(5.0))
INDOOR_ROLL_STD_RAD = np.deg2rad(2.0)
# Hand-held motion per frame (NYU at 30 Hz, slow walking): translation and rotation scales.
INDOOR_STEP_RANGE_M = (0.02, 0.06)
INDOOR_TRANSLATION_JITTER_M = 0.01
INDOOR_ROTATION_STEP_RAD = np.deg2rad(1.0)
INDOOR_ROTATION_JITTER_RAD = np.deg2rad(0.3)
INDOOR_WALL_MARGIN_M = 0.7
# The camera looks towards the room centre, give or take this much yaw.
INDOOR_AIM_SPREAD_RAD = np.deg2rad(45.0)
INDOOR_FURNITURE_MARGIN_M = 0.5

# --- Random intrinsics ("unknown camera") -------------------------------------------------------
# Focal length scaled by U(0.75, 1.35) around the scene's default, pixel aspect within +-3 %,
# principal point within +-4 % of W and +-6 % of H around the default.
RANDOM_FOCAL_SCALE_RANGE = (0.75, 1.35)
RANDOM_ASPECT_RANGE = (0.97, 1.03)
RANDOM_CX_SHIFT = 0.04
RANDOM_CY_SHIFT = 0.06

_FACADE_COLORS = np.array([[0.62, 0.38, 0.30], [0.70, 0.55, 0.42], [0.80, 0.76, 0.66],
                           [0.55, 0.56, 0.58], [0.78, 0.68, 0.52], [0.66, 0.45, 0.36],
                           [0.85, 0.82, 0.76], [0.50, 0.52, 0.47]], np.float32)
_CAR_COLORS = np.array([[0.75, 0.08, 0.07], [0.10, 0.18, 0.55], [0.85, 0.85, 0.83],
                        [0.12, 0.12, 0.13], [0.55, 0.57, 0.60], [0.15, 0.40, 0.20],
                        [0.80, 0.62, 0.10], [0.35, 0.22, 0.45]], np.float32)
_WALL_COLORS = np.array([[0.85, 0.82, 0.74], [0.70, 0.78, 0.80], [0.82, 0.72, 0.62],
                         [0.75, 0.80, 0.68], [0.88, 0.86, 0.84]], np.float32)
_WOOD_COLORS = np.array([[0.55, 0.36, 0.20], [0.68, 0.50, 0.32], [0.40, 0.26, 0.16],
                         [0.75, 0.62, 0.45]], np.float32)
_FABRIC_COLORS = np.array([[0.35, 0.40, 0.55], [0.60, 0.30, 0.28], [0.45, 0.50, 0.40],
                           [0.70, 0.66, 0.60], [0.30, 0.30, 0.32]], np.float32)


@dataclasses.dataclass
class Clip:
  """A scene with a 3-frame camera trajectory.

  Attributes:
    scene: `renderer.Scene`.
    poses: (3, 4, 4) float64 world_from_camera of frames [t-1, t, t+1].
    times: (3,) float64 scene times of the frames, in frames: [-1, 0, 1].
  """
  scene: R.Scene
  poses: np.ndarray
  times: np.ndarray


class _BoxList:
  """Accumulates boxes, then freezes them into a `renderer.Boxes`."""

  def __init__(self, rng):
    self.rng = rng
    self.rows = []

  def add(self, center, half, material, label, color, yaw=0.0, velocity=(0.0, 0.0, 0.0)):
    seed = int(self.rng.integers(0, 2**31))
    self.rows.append((np.asarray(center, np.float64), np.asarray(half, np.float64), float(yaw),
                      np.asarray(velocity, np.float64), material, label, seed,
                      np.asarray(color, np.float32)))

  def freeze(self):
    if not self.rows:
      z3 = np.zeros((0, 3))
      return R.Boxes(z3, z3, np.zeros(0), z3, np.zeros(0, np.int32), np.zeros(0, np.uint8),
                     np.zeros(0, np.uint32), np.zeros((0, 3), np.float32))
    cols = list(zip(*self.rows))
    return R.Boxes(center=np.stack(cols[0]), half=np.stack(cols[1]), yaw=np.array(cols[2]),
                   velocity=np.stack(cols[3]), material=np.array(cols[4], np.int32),
                   label=np.array(cols[5], np.uint8), seed=np.array(cols[6], np.uint32),
                   color=np.stack(cols[7]).astype(np.float32))


def _planes(rows, rng):
  """rows: list of (normal, point, axis_a, axis_b, material, label, color, param)."""
  normal = np.array([r[0] for r in rows], np.float64)
  offset = np.array([np.dot(r[0], r[1]) for r in rows], np.float64)
  return R.Planes(normal=normal, offset=offset,
                  axis_a=np.array([r[2] for r in rows], np.float64),
                  axis_b=np.array([r[3] for r in rows], np.float64),
                  material=np.array([r[4] for r in rows], np.int32),
                  label=np.array([r[5] for r in rows], np.uint8),
                  seed=rng.integers(0, 2**31, size=len(rows)).astype(np.uint32),
                  color=np.array([r[6] for r in rows], np.float32),
                  param=np.array([r[7] for r in rows], np.float64))


def _sun(rng, elevation_range_deg):
  elev = np.deg2rad(rng.uniform(*elevation_range_deg))
  azim = rng.uniform(0.0, 2.0 * np.pi)
  # Towards the light; "up" is -Y.
  return np.array([np.cos(elev) * np.sin(azim), -np.sin(elev), np.cos(elev) * np.cos(azim)])


def _add_car(boxes, rng, x, z, yaw, velocity):
  """Adds a car (body + cabin boxes) standing on the road centred at (x, z)."""
  length = rng.uniform(*CAR_LENGTH_RANGE_M)
  width = rng.uniform(*CAR_WIDTH_RANGE_M)
  body_h = rng.uniform(0.6, 0.8)
  cabin_h = rng.uniform(0.45, 0.6)
  color = _CAR_COLORS[rng.integers(len(_CAR_COLORS))] * rng.uniform(0.85, 1.1)
  color = np.clip(color, 0.02, 0.95)
  body_y = -(CAR_CLEARANCE_M + 0.5 * body_h)
  boxes.add((x, body_y, z), (0.5 * width, 0.5 * body_h, 0.5 * length), R.MAT_CAR_BODY,
            LABEL_CAR, color, yaw, velocity)
  cabin_len = length * rng.uniform(0.45, 0.6)
  back = -0.5 * length + rng.uniform(0.25, 0.4) * length * 0.5 + 0.5 * cabin_len
  cx = x + np.sin(yaw) * back
  cz = z + np.cos(yaw) * back
  cabin_y = -(CAR_CLEARANCE_M + body_h + 0.5 * cabin_h)
  boxes.add((cx, cabin_y, cz), (0.5 * width * 0.92, 0.5 * cabin_h, 0.5 * cabin_len),
            R.MAT_CAR_CABIN, LABEL_CAR, color, yaw, velocity)
  return length


def make_street(rng):
  """Street scene around the camera of frame t (placed at X = lane centre, Z = 0)."""
  lane_w = rng.uniform(3.0, 3.7)
  park_w = rng.uniform(2.0, 2.5)
  road_half = lane_w + park_w
  sidewalk_w = rng.uniform(2.5, 4.5)
  curb_h = rng.uniform(0.12, 0.18)
  asphalt = np.float32([0.32, 0.32, 0.33]) * rng.uniform(0.85, 1.15)
  planes = _planes([((0.0, -1.0, 0.0), (0.0, 0.0, 0.0), (1.0, 0.0, 0.0), (0.0, 0.0, 1.0),
                     R.MAT_ASPHALT, LABEL_ROAD, asphalt, lane_w)], rng)
  boxes = _BoxList(rng)
  z_len = STREET_Z_MAX_M - STREET_Z_MIN_M
  z_mid = 0.5 * (STREET_Z_MAX_M + STREET_Z_MIN_M)
  concrete = np.float32([0.62, 0.61, 0.58]) * rng.uniform(0.85, 1.1)
  for side in (-1.0, 1.0):
    x_in = side * road_half
    boxes.add((x_in + side * 0.5 * sidewalk_w, -0.5 * curb_h, z_mid),
              (0.5 * sidewalk_w, 0.5 * curb_h, 0.5 * z_len), R.MAT_SIDEWALK, LABEL_SIDEWALK,
              concrete)
    # Buildings.
    z = STREET_Z_MIN_M
    while z < STREET_Z_MAX_M:
      width = rng.uniform(6.0, 20.0)
      if rng.uniform() < 0.2:
        z += rng.uniform(2.0, 6.0)  # alley
      setback = rng.uniform(0.0, 1.5)
      bh = rng.uniform(6.0, 25.0)
      bd = rng.uniform(8.0, 15.0)
      x0 = side * (road_half + sidewalk_w + setback)
      mat = R.MAT_BRICK if rng.uniform() < 0.5 else R.MAT_PLASTER
      color = _FACADE_COLORS[rng.integers(len(_FACADE_COLORS))] * rng.uniform(0.85, 1.1)
      boxes.add((x0 + side * 0.5 * bd, -0.5 * bh, z + 0.5 * width), (0.5 * bd, 0.5 * bh,
                                                                     0.5 * width),
                mat, LABEL_BUILDING, np.clip(color, 0.05, 0.95))
      z += width
    # Parked cars in the parking strip.
    z = STREET_Z_MIN_M * 0.5 + rng.uniform(0.0, 5.0)
    while z < 90.0:
      if rng.uniform() < 0.3:
        z += rng.uniform(10.0, 25.0)
      x = side * (road_half - 0.5 * park_w - rng.uniform(-0.15, 0.15))
      length = _add_car(boxes, rng, x, z, rng.normal(0.0, np.deg2rad(1.5)), (0.0, 0.0, 0.0))
      z += length + rng.uniform(1.0, 8.0)
    # Poles with signs, and trees, on the sidewalk near the curb.
    z = rng.uniform(-10.0, 5.0)
    while z < 100.0:
      px = side * (road_half + 0.5)
      if rng.uniform() < 0.6:
        ph = rng.uniform(4.0, 7.0)
        boxes.add((px, -0.5 * ph - curb_h, z), (0.07, 0.5 * ph, 0.07), R.MAT_POLE, LABEL_POLE,
                  np.float32([0.45, 0.46, 0.48]) * rng.uniform(0.8, 1.2))
        if rng.uniform() < 0.5:
          sy = -rng.uniform(2.2, 2.8) - curb_h
          sign_color = np.float32([[0.8, 0.1, 0.1], [0.1, 0.25, 0.7], [0.9, 0.75, 0.1]][
              rng.integers(3)])
          boxes.add((px, sy, z - 0.1), (0.3, 0.3, 0.025), R.MAT_SIGN, LABEL_TRAFFIC_SIGN,
                    sign_color)
      else:
        th = rng.uniform(2.5, 3.5)
        boxes.add((px + side * 0.3, -0.5 * th - curb_h, z), (0.12, 0.5 * th, 0.12), R.MAT_WOOD,
                  LABEL_VEGETATION, np.float32([0.35, 0.25, 0.17]))
        cr = rng.uniform(1.2, 2.0)
        boxes.add((px + side * 0.3, -th - curb_h - cr * 0.8, z), (cr, cr * 0.9, cr),
                  R.MAT_FOLIAGE, LABEL_VEGETATION,
                  np.float32([0.22, 0.42, 0.15]) * rng.uniform(0.8, 1.2), yaw=rng.uniform(0, 1.5))
      z += rng.uniform(12.0, 30.0)

  # Camera trajectory: right lane, level at frame t.
  speed = rng.uniform(*STREET_SPEED_RANGE_M)
  heading = rng.uniform(-STREET_HEADING_RANGE_RAD, STREET_HEADING_RANGE_RAD)
  yaw_rate = rng.uniform(-STREET_YAW_RATE_RAD, STREET_YAW_RATE_RAD)
  cam_x = 0.5 * lane_w
  poses = []
  for tau in (-1.0, 0.0, 1.0):
    yaw = heading + tau * yaw_rate
    pos = np.array([cam_x, -STREET_CAMERA_HEIGHT_M, 0.0])
    pitch = roll = 0.0
    if tau != 0.0:
      yaw += rng.normal(0.0, STREET_YAW_JITTER_RAD)
      pitch = rng.normal(0.0, STREET_PITCH_ROLL_JITTER_RAD)
      roll = rng.normal(0.0, STREET_PITCH_ROLL_JITTER_RAD)
      lateral = rng.normal(0.0, STREET_LATERAL_JITTER_M)
      pos = pos + np.array([np.sin(heading) * speed * tau + lateral,
                            rng.normal(0.0, STREET_HEIGHT_JITTER_M),
                            np.cos(heading) * speed * tau])
    poses.append(R.pose_matrix(pos, yaw, pitch, roll))

  # Moving cars: one guaranteed in view ahead, plus up to two more.
  lanes = {-1: [], 1: []}  # z positions per lane (-1: oncoming left lane, +1: camera lane)

  def place_moving(lane, z):
    if lane == -1:
      vz = -rng.uniform(*ONCOMING_SPEED_RANGE_M)
    else:
      if rng.uniform() < 0.5:  # faster than the camera
        vz = speed + rng.uniform(*SAME_LANE_FASTER_RANGE_M)
      else:  # slower, but still moving (>= 0.2 m/frame)
        vz = speed - rng.uniform(*SAME_LANE_SLOWER_RANGE_M)
    _add_car(boxes, rng, lane * 0.5 * lane_w + rng.uniform(-0.2, 0.2), z, 0.0 if lane > 0 else
             np.pi, (0.0, 0.0, vz))
    lanes[lane].append(z)

  first_lane = -1 if rng.uniform() < 0.5 else 1
  place_moving(first_lane, rng.uniform(12.0, 30.0))
  for _ in range(int(rng.integers(0, 3))):
    lane = -1 if rng.uniform() < 0.5 else 1
    z = rng.uniform(-10.0 if lane == -1 else 12.0, 80.0)
    if all(abs(z - z0) > 10.0 for z0 in lanes[lane]):
      place_moving(lane, z)

  sun = _sun(rng, (25.0, 60.0))
  scene = R.Scene(planes=planes, boxes=boxes.freeze(), sun=sun,
                  ambient=float(rng.uniform(0.42, 0.55)), sun_strength=float(rng.uniform(0.5, 0.7)),
                  max_depth=STREET_MAX_DEPTH_M, sky_seed=int(rng.integers(0, 2**31)),
                  sky_label=LABEL_SKY)
  return Clip(scene=scene, poses=np.stack(poses), times=np.array([-1.0, 0.0, 1.0]))


def make_indoor(rng):
  """Room scene; the camera of frame t is at a random free position inside."""
  rw = rng.uniform(*ROOM_WIDTH_RANGE_M)
  rd = rng.uniform(*ROOM_DEPTH_RANGE_M)
  rh = rng.uniform(*ROOM_HEIGHT_RANGE_M)
  wall = _WALL_COLORS[rng.integers(len(_WALL_COLORS))]
  floor_mat = R.MAT_WOOD_FLOOR if rng.uniform() < 0.6 else R.MAT_TILE_FLOOR
  floor_col = (_WOOD_COLORS[rng.integers(len(_WOOD_COLORS))] if floor_mat == R.MAT_WOOD_FLOOR
               else np.float32([0.75, 0.74, 0.70]) * rng.uniform(0.8, 1.1))
  ceil_col = np.float32([0.9, 0.9, 0.88])
  up = (0.0, -1.0, 0.0)
  planes = _planes([
      ((0.0, -1.0, 0.0), (0, 0, 0), (1, 0, 0), (0, 0, 1), floor_mat, LABEL_GROUND, floor_col, 0),
      ((0.0, 1.0, 0.0), (0, -rh, 0), (1, 0, 0), (0, 0, 1), R.MAT_CEILING, LABEL_WALL, ceil_col,
       0),
      ((1.0, 0.0, 0.0), (-0.5 * rw, 0, 0), (0, 0, 1), up, R.MAT_WALL, LABEL_WALL, wall, 0),
      ((-1.0, 0.0, 0.0), (0.5 * rw, 0, 0), (0, 0, 1), up, R.MAT_WALL, LABEL_WALL, wall, 0),
      ((0.0, 0.0, 1.0), (0, 0, -0.5 * rd), (1, 0, 0), up, R.MAT_WALL, LABEL_WALL, wall, 0),
      ((0.0, 0.0, -1.0), (0, 0, 0.5 * rd), (1, 0, 0), up, R.MAT_WALL, LABEL_WALL, wall, 0),
  ], rng)
  boxes = _BoxList(rng)
  footprints = []  # (x0, x1, z0, z1) of furniture on the floor
  walls = [(-1, 0), (1, 0), (0, -1), (0, 1)]  # outward direction of each wall (x, z)
  for _ in range(int(rng.integers(3, 8))):
    kind = rng.integers(4)
    if kind == 0:  # cabinet / wardrobe
      w, h, dpt, mat, col = (rng.uniform(0.6, 1.6), rng.uniform(0.8, 2.1), rng.uniform(0.4, 0.6),
                             R.MAT_WOOD, _WOOD_COLORS[rng.integers(len(_WOOD_COLORS))])
    elif kind == 1:  # sofa / bed
      w, h, dpt, mat, col = (rng.uniform(1.4, 2.2), rng.uniform(0.4, 0.7), rng.uniform(0.8, 1.8),
                             R.MAT_FABRIC, _FABRIC_COLORS[rng.integers(len(_FABRIC_COLORS))])
    elif kind == 2:  # shelf
      w, h, dpt, mat, col = (rng.uniform(0.6, 1.2), rng.uniform(1.2, 2.0), rng.uniform(0.3, 0.4),
                             R.MAT_WOOD, _WOOD_COLORS[rng.integers(len(_WOOD_COLORS))])
    else:  # table (top slab on a central block)
      w, h, dpt, mat, col = (rng.uniform(0.8, 1.6), 0.74, rng.uniform(0.6, 1.0), R.MAT_WOOD,
                             _WOOD_COLORS[rng.integers(len(_WOOD_COLORS))])
    wx, wz = walls[rng.integers(4)]
    if kind == 3:  # tables stand away from the walls
      x = rng.uniform(-0.5 * rw + 0.5 * w + 0.3, 0.5 * rw - 0.5 * w - 0.3)
      z = rng.uniform(-0.5 * rd + 0.5 * dpt + 0.3, 0.5 * rd - 0.5 * dpt - 0.3)
      yaw = rng.uniform(-0.4, 0.4)
    elif wx != 0:
      yaw = np.pi / 2  # local x along world Z
      x = wx * (0.5 * rw - 0.5 * dpt - 0.01)
      z = rng.uniform(-0.5 * rd + 0.5 * w, 0.5 * rd - 0.5 * w)
    else:
      yaw = 0.0
      x = rng.uniform(-0.5 * rw + 0.5 * w, 0.5 * rw - 0.5 * w)
      z = wz * (0.5 * rd - 0.5 * dpt - 0.01)
    col = np.clip(np.asarray(col) * rng.uniform(0.85, 1.1), 0.03, 0.95)
    if kind == 3:
      boxes.add((x, -h + 0.02, z), (0.5 * w, 0.02, 0.5 * dpt), mat, LABEL_STATIC, col, yaw)
      boxes.add((x, -0.5 * (h - 0.04), z), (0.12, 0.5 * (h - 0.04), 0.12), mat, LABEL_STATIC,
                col * 0.7, yaw)
    else:
      boxes.add((x, -0.5 * h, z), (0.5 * w, 0.5 * h, 0.5 * dpt), mat, LABEL_STATIC, col, yaw)
    ext = 0.5 * np.hypot(w, dpt)
    footprints.append((x - ext, x + ext, z - ext, z + ext))
  # Pictures on the walls.
  for _ in range(int(rng.integers(1, 4))):
    wx, wz = walls[rng.integers(4)]
    pw, ph = rng.uniform(0.4, 1.2), rng.uniform(0.3, 0.9)
    py = -rng.uniform(1.3, min(2.0, rh - 0.5))
    col = rng.uniform(0.2, 0.8, size=3)
    if wx != 0:
      boxes.add((wx * (0.5 * rw - 0.015), py, rng.uniform(-0.5 * rd + pw, 0.5 * rd - pw)),
                (0.015, 0.5 * ph, 0.5 * pw), R.MAT_POSTER, LABEL_STATIC, col)
    else:
      boxes.add((rng.uniform(-0.5 * rw + pw, 0.5 * rw - pw), py, wz * (0.5 * rd - 0.015)),
                (0.5 * pw, 0.5 * ph, 0.015), R.MAT_POSTER, LABEL_STATIC, col)

  # Camera: a free spot for all three frames.
  step = rng.uniform(*INDOOR_STEP_RANGE_M)
  direction = rng.normal(size=3)
  direction /= np.linalg.norm(direction)
  rot_rate = rng.normal(0.0, INDOOR_ROTATION_STEP_RAD, size=3)
  pitch0 = rng.uniform(*INDOOR_PITCH_RANGE_RAD)
  roll0 = rng.normal(0.0, INDOOR_ROLL_STD_RAD)
  height = rng.uniform(*INDOOR_CAMERA_HEIGHT_RANGE_M)
  margin = INDOOR_WALL_MARGIN_M
  pos0 = None
  for _ in range(200):
    cand = np.array([rng.uniform(-0.5 * rw + margin, 0.5 * rw - margin), -height,
                     rng.uniform(-0.5 * rd + margin, 0.5 * rd - margin)])
    m = INDOOR_FURNITURE_MARGIN_M
    if all(not (f[0] - m < cand[0] < f[1] + m and f[2] - m < cand[2] < f[3] + m)
           for f in footprints):
      pos0 = cand
      break
  if pos0 is None:  # Crowded room: stand in the middle above everything (still inside).
    pos0 = np.array([0.0, -min(height + 0.6, rh - 0.3), 0.0])
  # Look across the room: towards its centre, +- INDOOR_AIM_SPREAD_RAD.
  yaw0 = np.arctan2(-pos0[0], -pos0[2]) + rng.uniform(-INDOOR_AIM_SPREAD_RAD,
                                                      INDOOR_AIM_SPREAD_RAD)
  poses = []
  for tau in (-1.0, 0.0, 1.0):
    jit_t = rng.normal(0.0, INDOOR_TRANSLATION_JITTER_M, size=3) if tau else np.zeros(3)
    jit_r = rng.normal(0.0, INDOOR_ROTATION_JITTER_RAD, size=3) if tau else np.zeros(3)
    pos = pos0 + tau * step * direction + jit_t
    ang = np.array([yaw0, pitch0, roll0]) + tau * rot_rate + jit_r
    poses.append(R.pose_matrix(pos, *ang))
  sun = _sun(rng, (20.0, 50.0))
  scene = R.Scene(planes=planes, boxes=boxes.freeze(), sun=sun,
                  ambient=float(rng.uniform(0.45, 0.6)), sun_strength=float(rng.uniform(0.35, 0.5)),
                  max_depth=INDOOR_MAX_DEPTH_M, sky_seed=int(rng.integers(0, 2**31)),
                  sky_label=0)
  return Clip(scene=scene, poses=np.stack(poses), times=np.array([-1.0, 0.0, 1.0]))


def default_intrinsics(scene, height, width):
  """(3, 3) float64 default K of `scene` in pixels at (height, width)."""
  if scene == "street":
    fx, fy, cx, cy = KITTI_FX_NORM, KITTI_FY_NORM, KITTI_CX_NORM, KITTI_CY_NORM
  else:
    fx, fy, cx, cy = NYU_FX_NORM, NYU_FY_NORM, NYU_CX_NORM, NYU_CY_NORM
  return np.array([[fx * width, 0.0, cx * width], [0.0, fy * height, cy * height],
                   [0.0, 0.0, 1.0]])


def sample_intrinsics(rng, scene, height, width):
  """Random K around the scene default (the "unknown camera" case), (3, 3) float64 pixels."""
  k = default_intrinsics(scene, height, width)
  f = rng.uniform(*RANDOM_FOCAL_SCALE_RANGE)
  aspect = rng.uniform(*RANDOM_ASPECT_RANGE)
  k[0, 0] *= f
  k[1, 1] *= f * aspect
  k[0, 2] += rng.uniform(-RANDOM_CX_SHIFT, RANDOM_CX_SHIFT) * width
  k[1, 2] += rng.uniform(-RANDOM_CY_SHIFT, RANDOM_CY_SHIFT) * height
  return k


def make_clip(rng, scene):
  """Dispatches to make_street / make_indoor; raises ValueError on an unknown scene name."""
  if scene == "street":
    return make_street(rng)
  if scene == "indoor":
    return make_indoor(rng)
  raise ValueError(f"unknown scene {scene!r}; expected one of {SCENES}")
