"""Tiny networks shared by the trainer tests (fast to build and to step)."""

import keras


def tiny_disparity_net(height, width):
  """Two convolutions -> sigmoid disparity {"disp_0": (B, H, W, 1)}; no BatchNorm, so that the
  replicas of a distributed step compute identical maths."""
  inp = keras.Input((height, width, 3), name="tiny_image")
  x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="tiny_conv")(inp)
  disp = keras.layers.Conv2D(1, 3, padding="same", activation="sigmoid", name="tiny_disp")(x)
  return keras.Model(inp, {"disp_0": disp}, name="tiny")
