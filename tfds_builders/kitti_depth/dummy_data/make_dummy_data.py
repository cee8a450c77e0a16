"""Writes the miniature KITTI raw tree used by `kitti_depth_dataset_builder_test.py`.

Run from anywhere: `python tfds_builders/kitti_depth/dummy_data/make_dummy_data.py`. Output is
deterministic (fixed seed) and tiny (24×80 images). All values are made up in the real formats:
- `2011_09_26/calib_cam_to_cam.txt`, `calib_velo_to_cam.txt`: every key of the real files, with
  `calib_time` containing a colon, `S_rect_0i = 80 24` and a projection scaled to 24×80;
- 8-bit RGB PNGs `image_0{2,3}/data/<10 digits>.png`;
- Velodyne scans `velodyne_points/data/<10 digits>.bin`: float32 N×4 (x, y, z, reflectance);
- one annotated depth map `proj_depth/groundtruth/image_02/0000000003.png`: uint16, metres·256;
- split files under `split_files/` (Monodepth2 and SfMLearner line formats), one per config
  tested on it; `eigen_benchmark/test_files.txt` lists the annotated frame (the built-in Eigen
  list needs the 652 maps of the real data, so the fixture supplies its own list).
Drives: 0002 (an Eigen test scene: frames 0-3, with scans), 0113 (training: frames 28-32, 30 is
static in SfMLearner's list, all with scans), 0022 (a default validation drive: frames 5-8, scans
for all but frame 7, so that `eigen_zhou_depth` skips its target 7 as a frame without a scan).
Every scan of 0113 / 0022 starts with `KNOWN_POINT` and has its random points farther forward, so
the known point is the nearest on its pixel: camera 2 sees it at row 12, col 41 with camera
z = 20.0 + 0.0025 (P_rect_02's z translation), camera 3 at row 12, col 40 with z = 20.0.
"""

import pathlib

import numpy as np
import PIL.Image
import tensorflow as tf

HERE = pathlib.Path(__file__).resolve().parent
DATE = "2011_09_26"
HEIGHT, WIDTH = 24, 80
SEED = 20260121
# Fixture camera: focal 46 px (721.5377·80/1242 ≈ 46.5 rounded), principal point (40, 12),
# P_rect_02 / P_rect_03 x-translations giving a 0.53 m baseline: (2.76 + 21.62) / 46 = 0.53.
FOCAL = 46.0
CX, CY = 40.0, 12.0
P2_TX, P3_TX = 2.76, -21.62
P2_TZ = 0.0025  # Small z translation, as the real P_rect_02 has (2.745884e-03).
# Velodyne -> camera 0: x_cam = -y_velo, y_cam = -z_velo, z_cam = x_velo, then T (metres).
VELO_R = np.array([[0.0, -1.0, 0.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]])
VELO_T = np.array([0.0, -0.08, -0.27])
DRIVES = {
    "2011_09_26_drive_0002_sync": range(0, 4),
    "2011_09_26_drive_0113_sync": range(28, 33),
    "2011_09_26_drive_0022_sync": range(5, 9),
}
SCAN_DRIVE = "2011_09_26_drive_0002_sync"
# Training / validation drives with scans, and their frames that have none.
TRAIN_SCAN_DRIVES = ("2011_09_26_drive_0113_sync", "2011_09_26_drive_0022_sync")
MISSING_SCANS = (("2011_09_26_drive_0022_sync", 7),)
TRAIN_SCAN_SEED = SEED + 1  # Separate stream: the scans of SCAN_DRIVE stay as they were.
# LiDAR (x fwd, y left, z up): camera 0 = (-y, -z - 0.08, x - 0.27) = (1.0, 0.34, 20.0) m.
# Camera 2: u = (46·1 + 40·20 + 2.76) / 20.0025 = 42.43 -> col 41 (round - 1),
#           v = (46·0.34 + 12·20) / 20.0025 = 12.78 -> row 12.
KNOWN_POINT = (20.27, -1.0, -0.42, 0.5)
ANNOTATED_FRAME = 3
NUM_POINTS = 48


def fmt(values):
  return " ".join(f"{v:e}" for v in np.ravel(values))


def write_calib(date_dir: pathlib.Path) -> None:
  lines = ["calib_time: 09-Jan-2012 13:57:47", "corner_dist: 9.950000e-02"]
  for cam in range(4):
    k = np.array([[FOCAL, 0, CX], [0, FOCAL, CY], [0, 0, 1]])
    p = np.concatenate([k, np.zeros((3, 1))], axis=1)
    if cam == 2:
      p[0, 3], p[2, 3] = P2_TX, P2_TZ
    if cam == 3:
      p[0, 3] = P3_TX
    lines += [f"S_0{cam}: {fmt([WIDTH + 8, HEIGHT + 8])}", f"K_0{cam}: {fmt(k)}",
              f"D_0{cam}: {fmt([-0.37, 0.2, 0.002, 0.001, -0.07])}",
              f"R_0{cam}: {fmt(np.eye(3))}", f"T_0{cam}: {fmt([0.06 * (cam == 2), 0, 0])}",
              f"S_rect_0{cam}: {fmt([WIDTH, HEIGHT])}",
              f"R_rect_0{cam}: {fmt(np.eye(3))}", f"P_rect_0{cam}: {fmt(p)}"]
  (date_dir / "calib_cam_to_cam.txt").write_text("\n".join(lines) + "\n")
  (date_dir / "calib_velo_to_cam.txt").write_text(
      f"calib_time: 15-Mar-2012 11:37:16\nR: {fmt(VELO_R)}\nT: {fmt(VELO_T)}\n"
      f"delta_f: {fmt([0, 0])}\ndelta_c: {fmt([0, 0])}\n")


def image(index: int, camera: int) -> np.ndarray:
  v, u = np.mgrid[0:HEIGHT, 0:WIDTH]
  red = (u * 3 + index * 7) % 256
  green = (v * 10 + camera * 40) % 256
  blue = ((u + v) * 2 + index * 13) % 256
  return np.stack([red, green, blue], axis=-1).astype(np.uint8)


def scan(rng: np.random.Generator) -> np.ndarray:
  forward = rng.uniform(2.0, 60.0, NUM_POINTS)
  left = rng.uniform(-0.9, 0.9, NUM_POINTS) * forward
  up = rng.uniform(-0.25, 0.25, NUM_POINTS) * forward
  points = np.stack([forward, left, up, rng.uniform(0, 1, NUM_POINTS)], axis=1)
  points[:4, 0] *= -1.0  # Behind the LiDAR: removed by the x >= 0 rule.
  return points.astype(np.float32)


def train_scan(rng: np.random.Generator) -> np.ndarray:
  """`KNOWN_POINT`, then random points in front of the camera at least 5 m farther forward."""
  forward = rng.uniform(KNOWN_POINT[0] + 5.0, 60.0, NUM_POINTS - 1)
  left = rng.uniform(-0.9, 0.9, NUM_POINTS - 1) * forward
  up = rng.uniform(-0.25, 0.25, NUM_POINTS - 1) * forward
  points = np.stack([forward, left, up, rng.uniform(0, 1, NUM_POINTS - 1)], axis=1)
  return np.concatenate([np.array([KNOWN_POINT]), points]).astype(np.float32)


def main() -> None:
  rng = np.random.default_rng(SEED)
  date_dir = HERE / DATE
  date_dir.mkdir(parents=True, exist_ok=True)
  write_calib(date_dir)
  for drive, frames in DRIVES.items():
    for index in frames:
      for camera in (2, 3):
        folder = date_dir / drive / f"image_0{camera}" / "data"
        folder.mkdir(parents=True, exist_ok=True)
        PIL.Image.fromarray(image(index, camera)).save(folder / f"{index:010d}.png")
      if drive == SCAN_DRIVE:
        folder = date_dir / drive / "velodyne_points" / "data"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{index:010d}.bin").write_bytes(scan(rng).tobytes())
  train_rng = np.random.default_rng(TRAIN_SCAN_SEED)
  for drive in TRAIN_SCAN_DRIVES:
    folder = date_dir / drive / "velodyne_points" / "data"
    folder.mkdir(parents=True, exist_ok=True)
    for index in DRIVES[drive]:
      if (drive, index) not in MISSING_SCANS:
        (folder / f"{index:010d}.bin").write_bytes(train_scan(train_rng).tobytes())
  depth = np.zeros((HEIGHT, WIDTH, 1), np.uint16)
  depth[HEIGHT // 2:, ::3, 0] = (np.linspace(5.0, 40.0, WIDTH)[::3] * 256).astype(np.uint16)
  folder = date_dir / SCAN_DRIVE / "proj_depth" / "groundtruth" / "image_02"
  folder.mkdir(parents=True, exist_ok=True)
  (folder / f"{ANNOTATED_FRAME:010d}.png").write_bytes(tf.io.encode_png(depth).numpy())
  splits = HERE / "split_files"
  for name, text in {
      "eigen/test_files.txt": f"{DATE}/{SCAN_DRIVE} 0 l\n{DATE}/{SCAN_DRIVE} 3 l\n",
      "eigen_lidar_x/test_files.txt": (f"{DATE}/{SCAN_DRIVE}/image_02/data/0000000000.png\n"
                                       f"{DATE}/{SCAN_DRIVE}/image_02/data/0000000003.png\n"),
      # The built-in list needs all 652 annotated maps; the fixture has one.
      "eigen_benchmark/test_files.txt": f"{DATE}/{SCAN_DRIVE} {ANNOTATED_FRAME} l\n",
      "eigen_zhou_custom/train_files.txt": (f"{DATE}/2011_09_26_drive_0113_sync 29 l\n"
                                            f"{DATE}/2011_09_26_drive_0113_sync 30 r\n"),
      "eigen_zhou_custom/val_files.txt": f"{DATE}/2011_09_26_drive_0022_sync 6 l\n",
  }.items():
    (splits / name).parent.mkdir(parents=True, exist_ok=True)
    (splits / name).write_text(text)


if __name__ == "__main__":
  main()
