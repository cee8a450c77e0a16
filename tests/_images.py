"""Random test images shared by the model and export tests."""

import numpy as np


def uniform_images(batch, shape, seed=0):
  """float32 images ``(batch,) + shape`` (shape ``(H, W, C)``), uniform in [0, 1), drawn from
  ``np.random.default_rng(seed)``: the same seed gives the same images in every test."""
  return np.random.default_rng(seed).uniform(0.0, 1.0, (batch,) + tuple(shape)).astype(np.float32)
