"""Tests of trainers/callbacks.py: TensorBoard event files read back without TensorBoard."""

import glob
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfdepth.errors import InvalidInputError
from tfdepth.visualization import INVALID_COLOR, apply_colormap
from trainers import callbacks
from trainers import self_supervised
from trainers import supervised

HW = (24, 40)  # non-square, to check the [W, H] order of image summaries


def _events(run_dir):
  """{tag: [(step, plugin name, value)]} of every summary in the run's event files."""
  out = {}
  for path in sorted(glob.glob(os.path.join(run_dir, "events.out.tfevents.*"))):
    for raw in tf.data.TFRecordDataset(path):
      event = tf.compat.v1.Event.FromString(raw.numpy())
      for v in event.summary.value:
        tensor = tf.make_ndarray(v.tensor) if v.HasField("tensor") else None
        out.setdefault(v.tag, []).append(
            (event.step, v.metadata.plugin_data.plugin_name, tensor))
  return out


def _tiny_supervised():
  # A one-convolution depth network (sigmoid x 10 m): fast to trace, enough for summaries.
  keras.utils.set_random_seed(0)
  x = keras.Input(HW + (3,))
  depth = keras.layers.Rescaling(10.0)(keras.layers.Conv2D(1, 3, padding="same",
                                                           activation="sigmoid")(x))
  net = keras.Model(x, {"depth": depth})
  model = supervised.SupervisedDepthModel(net, [("l1", 1.0)], name="sup")
  model.compile(optimizer=keras.optimizers.SGD(1e-3), jit_compile=False)
  return model


def test_fit_writes_scalars_images_histogram(tmp_path):
  rng = np.random.default_rng(0)
  images = rng.uniform(size=(4,) + HW + (3,)).astype(np.float32)
  depths = rng.uniform(1.0, 9.0, size=(4,) + HW + (1,)).astype(np.float32)
  depths[:, :4] = 0.0  # rows without ground truth
  ds = tf.data.Dataset.from_tensor_slices({"image": images, "depth": depths}).batch(2)
  model = _tiny_supervised()
  cb = callbacks.DepthTensorBoard(tmp_path, sample_batch=ds, image_every_n_steps=2,
                                  scalar_every_n_steps=1, max_images=2)
  model.fit(ds, epochs=2, validation_data=ds, callbacks=[cb], verbose=0)
  train = _events(tmp_path / "train")
  val = _events(tmp_path / "validation")
  for tag in ("images/input", "images/depth_pred", "images/depth_gt", "images/abs_rel_error"):
    entries = train[tag]
    # Steps 1, 2 and 4 of 4 (the first step, then every 2nd); plugin "images".
    assert [e[0] for e in entries] == [1, 2, 4], tag
    assert entries[0][1] == "images"
    # Image summaries store [width, height, encoded PNG x max_images].
    assert entries[0][2].shape == (4,) and entries[0][2][:2].tolist() == [b"40", b"24"], tag
    decoded = tf.io.decode_png(entries[0][2][2]).numpy()
    assert decoded.shape == HW + (3,), tag
  hist = train["depth/predicted"]
  assert [e[0] for e in hist] == [1, 2, 4] and hist[0][1] == "histograms"
  # Every pixel of the 2 sample images has a valid (sigmoid, > 0) depth: counts sum to 2·H·W.
  assert hist[0][2].shape == (callbacks.HISTOGRAM_BUCKETS, 3)
  assert hist[0][2][:, 2].sum() == 2 * HW[0] * HW[1]
  # The input image summary is the sample batch itself, rounded to uint8.
  np.testing.assert_array_equal(tf.io.decode_png(train["images/input"][0][2][3]).numpy(),
                                np.round(images[1] * 255).astype(np.uint8))
  # Step scalars every step (running means of the epoch), epoch scalars at epoch 0 and 1.
  assert [e[0] for e in train["step/loss/loss"]] == [1, 2, 3, 4]
  assert [e[0] for e in train["step/loss/l1_loss"]] == [1, 2, 3, 4]
  assert [e[0] for e in train["epoch/loss/l1_loss"]] == [0, 1]
  assert train["epoch/loss/l1_loss"][0][1] == "scalars"
  # Validation values land in the validation run under the same tags, val_ prefix dropped.
  assert [e[0] for e in val["epoch/loss/l1_loss"]] == [0, 1]
  history_val = model.history.history["val_l1_loss"]
  np.testing.assert_allclose([float(e[2]) for e in val["epoch/loss/l1_loss"]], history_val,
                             rtol=1e-6)  # float32 scalar written from the same logs
  assert not any(t.startswith("step/") for t in val)


def test_error_map_values():
  pred = np.array([[[[1.0], [1.1]], [[2.0], [5.0]]]])
  gt = np.array([[[[1.0], [1.0]], [[0.0], [4.0]]]])
  rgb = callbacks.error_map(pred, gt, max_abs_rel=0.2)
  # AbsRel 0, 0.1, invalid, 0.25 -> colormap at 0, 0.5, black, 1 (saturated).
  np.testing.assert_array_equal(rgb[0, 0, 0], apply_colormap(0.0))
  np.testing.assert_array_equal(rgb[0, 0, 1], apply_colormap(0.5))
  np.testing.assert_array_equal(rgb[0, 1, 0], INVALID_COLOR)
  np.testing.assert_array_equal(rgb[0, 1, 1], apply_colormap(1.0))


def test_histogram_buckets_hand_computed():
  b = callbacks.histogram_buckets([0.0, 1.0, 1.0, 4.0], buckets=4)
  np.testing.assert_array_equal(b, [[0, 1, 1], [1, 2, 2], [2, 3, 0], [3, 4, 1]])
  np.testing.assert_array_equal(callbacks.histogram_buckets([2.0, 2.0]), [[1.5, 2.5, 2]])
  assert callbacks.histogram_buckets([]).shape == (0, 3)


def test_scalar_tags():
  assert callbacks.scalar_tag("silog_loss") == "loss/silog_loss"
  assert callbacks.scalar_tag("val_loss") == "loss/loss"
  assert callbacks.scalar_tag("val_abs_rel") == "metric/abs_rel"


# Self-supervised fixture: constant depth Z, fx = 8 px, and a source camera translated by
# tx = Z / fx along x, so that a target pixel u projects to u + fx·tx/Z = u + 1 in the source.
SS_DEPTH = 5.0
SS_FX = 8.0
SS_TX = SS_DEPTH / SS_FX


class _ShiftPoseModel(keras.Model):
  """Constant depth `SS_DEPTH` and source_from_target = translation (SS_TX, 0, 0) for both sources."""

  def __init__(self):
    super().__init__()
    self.config = self_supervised.SelfSupervisedConfig()

  def call(self, x, training=False):
    return {"depth": tf.fill(tf.concat([tf.shape(x)[:3], [1]], 0), SS_DEPTH)}

  def predict_poses(self, frames, training=False):
    b = tf.shape(frames)[0]
    pose = tf.constant([[1, 0, 0, SS_TX], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], tf.float32)
    return {f: tf.tile(pose[tf.newaxis], [b, 1, 1]) for f in self_supervised.SOURCE_INDEX}


def test_self_supervised_warps_and_automask(tmp_path):
  rng = np.random.default_rng(1)
  h, w = 8, 12
  target = rng.uniform(size=(h, w, 3)).astype(np.float32)
  source = np.roll(target, 1, axis=1)  # source[:, u] = target[:, u - 1]
  frames = np.stack([source, target, source])[np.newaxis]
  k = np.array([[[SS_FX, 0, 5.5], [0, SS_FX, 3.5], [0, 0, 1]]], np.float32)
  cb = callbacks.DepthTensorBoard(tmp_path, {"frames": frames, "intrinsics": k},
                                  image_every_n_steps=1, scalar_every_n_steps=0)
  cb.set_model(_ShiftPoseModel())
  cb.on_train_begin()
  cb.on_train_batch_end(0, {"loss": 1.0})
  train = _events(tmp_path / "train")
  for tag in ("images/input", "images/depth_pred", "images/warped_-1", "images/warped_+1",
              "images/automask"):
    assert train[tag][0][0] == 1, tag
  assert "images/depth_gt" not in train  # no ground truth in the batch
  assert "step/loss/loss" not in train   # scalar_every_n_steps=0: epoch scalars only
  # warped(u) = source(u + 1) = target(u) except the last column (sample clamped to the border).
  warped = tf.io.decode_png(train["images/warped_-1"][0][2][2]).numpy().astype(int)
  expected = np.round(target * 255).astype(int)
  # uint8 rounding of a sample off by the projection eps (Z + 1e-7): at most 1 level.
  assert np.max(np.abs(warped[:, :w - 1] - expected[:, :w - 1])) <= 1
  # The warps explain the target where the unwarped sources do not: the auto-mask keeps every
  # pixel whose 3x3 SSIM window avoids the clamped last column (columns 0 .. W - 3).
  mask = tf.io.decode_png(train["images/automask"][0][2][2]).numpy()[..., 0]
  assert np.all(mask[:, :w - 2] == 255)


def test_visualization_outputs_hook(tmp_path):
  class _Hooked(keras.Model):
    def call(self, x, training=False):
      return {"depth": tf.ones_like(x[..., :1])}

    def visualization_outputs(self, batch):
      return {"custom": tf.fill(tf.shape(batch["image"]), 0.5)}

  cb = callbacks.DepthTensorBoard(tmp_path, {"image": np.zeros((1, 4, 6, 3), np.float32)},
                                  image_every_n_steps=1)
  cb.set_model(_Hooked())
  cb.on_train_batch_end(0)
  png = _events(tmp_path / "train")["images/custom"][0][2][2]
  np.testing.assert_array_equal(tf.io.decode_png(png).numpy(), np.full((4, 6, 3), 128))  # 127.5


def test_bad_arguments(tmp_path):
  with pytest.raises(InvalidInputError, match="image_every_n_steps"):
    callbacks.DepthTensorBoard(tmp_path, image_every_n_steps=0)
  with pytest.raises(InvalidInputError, match="'mask'"):
    callbacks.DepthTensorBoard(tmp_path, sample_batch={"mask": np.zeros((1, 2, 2, 1))})
