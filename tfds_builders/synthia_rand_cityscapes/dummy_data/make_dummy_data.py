"""Writes the miniature SYNTHIA-RAND-CITYSCAPES tree used by the builder tests.

`python tfds_builders/synthia_rand_cityscapes/dummy_data/make_dummy_data.py` writes 3 frames of
12×20 pixels under `RAND_CITYSCAPES/` in the real formats:
- `RGB/<7 digits>.png`: 8-bit RGB, pixel (r, c) of frame i = (10r + i, 12c, 100 + i);
- `Depth/Depth/<7 digits>.png`: 16-bit, 3 identical channels, value = 500 + 1000·i + 37·r + 301·c
  (centimetres; above 255 everywhere, up to 9,126);
- `GT/LABELS/<7 digits>.png`: 16-bit, 3 channels: class id (r + c + i) mod 23, instance id
  1000 + r (above 255, so an 8-bit decode would differ), 0.
"""

import pathlib

import numpy as np
import PIL.Image
import tensorflow as tf

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE / "RAND_CITYSCAPES"
FRAMES = ("0000000", "0000001", "0000042")
HEIGHT, WIDTH = 12, 20


def frame_arrays(i):
  r, c = np.mgrid[0:HEIGHT, 0:WIDTH]
  rgb = np.stack([10 * r + i, 12 * c, np.full_like(r, 100 + i)], axis=-1).astype(np.uint8)
  depth = (500 + 1000 * i + 37 * r + 301 * c).astype(np.uint16)
  labels = ((r + c + i) % 23).astype(np.uint16)
  instance = (1000 + r).astype(np.uint16)
  return rgb, depth, labels, instance


def main():
  for folder in ("RGB", "Depth/Depth", "GT/LABELS"):
    (ROOT / folder).mkdir(parents=True, exist_ok=True)
  for i, name in enumerate(FRAMES):
    rgb, depth, labels, instance = frame_arrays(i)
    PIL.Image.fromarray(rgb).save(ROOT / "RGB" / f"{name}.png")
    (ROOT / "Depth/Depth" / f"{name}.png").write_bytes(
        tf.io.encode_png(np.stack([depth] * 3, axis=-1)).numpy())
    (ROOT / "GT/LABELS" / f"{name}.png").write_bytes(tf.io.encode_png(
        np.stack([labels, instance, np.zeros_like(labels)], axis=-1)).numpy())


if __name__ == "__main__":
  main()
