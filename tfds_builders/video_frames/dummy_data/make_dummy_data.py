"""Writes the miniature user-video tree used by the `video_frames` tests.

`python tfds_builders/video_frames/dummy_data/make_dummy_data.py` writes two sequences:
- `city_walk/`: 6 JPEG frames 24×32 named frame_1, frame_2, frame_3, frame_10, frame_11,
  frame_12 (natural order differs from lexicographic), the texture shifting 3 px right per frame,
  except frame_3 which is a byte-identical copy of frame_2 (a static frame); plus
  `intrinsics.txt` = "20 22 15.5 11.5".
- `parking/`: 5 PNG frames 24×32 (00.png ... 04.png), shifting 2 px down per frame, no
  intrinsics (the manual directory has no global intrinsics.txt).
"""

import pathlib
import shutil

import numpy as np
import PIL.Image

HERE = pathlib.Path(__file__).resolve().parent
HEIGHT, WIDTH = 24, 32
CITY_NAMES = ("frame_1", "frame_2", "frame_3", "frame_10", "frame_11", "frame_12")
CITY_SHIFTS = (0, 3, 3, 6, 9, 12)  # frame_3 repeats frame_2.
PARKING_FRAMES = 5
INTRINSICS = "20 22 15.5 11.5\n"


def texture(du: int, dv: int) -> np.ndarray:
  v, u = np.mgrid[0:HEIGHT, 0:WIDTH]
  u, v = u - du, v - dv
  red = (np.sin(u * 0.9) * 100 + 128)
  green = (np.cos(v * 0.7) * 100 + 128)
  blue = ((u * 8 + v * 5) % 256)
  return np.stack([red, green, blue], axis=-1).clip(0, 255).astype(np.uint8)


def main():
  city = HERE / "city_walk"
  city.mkdir(exist_ok=True)
  for name, shift in zip(CITY_NAMES, CITY_SHIFTS):
    if name == "frame_3":
      shutil.copyfile(city / "frame_2.jpg", city / "frame_3.jpg")
      continue
    PIL.Image.fromarray(texture(shift, 0)).save(city / f"{name}.jpg", quality=90)
  (city / "intrinsics.txt").write_text(INTRINSICS)
  parking = HERE / "parking"
  parking.mkdir(exist_ok=True)
  for i in range(PARKING_FRAMES):
    PIL.Image.fromarray(texture(0, 2 * i)).save(parking / f"{i:02d}.png")


if __name__ == "__main__":
  main()
