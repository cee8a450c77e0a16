"""Keras callbacks writing TensorBoard summaries of depth training (`tf.summary`, file writers).

Summaries are written by the callback, never inside model or loss code, so `train_step` stays a
pure compiled function (XLA, `tf.distribute`) and logging costs nothing between summary steps.

`DepthTensorBoard(log_dir, sample_batch, ...)` writes, into `<log_dir>/train` and
`<log_dir>/validation` (two TensorBoard runs, so train and validation curves share tags):

* scalars, from the `logs` dict that `model.fit` passes to callbacks (the trainers' per-term loss
  trackers `<term>_loss`, the total `loss` and every metric): every `scalar_every_n_steps` steps
  as `step/<group>/<name>` (epoch running means, Keras' convention), and at each epoch end as
  `epoch/<group>/<name>`, where group is "loss" for names ending in "loss", else "metric"; the
  `val_` prefix is dropped and the value goes to the validation run.
* images, every `image_every_n_steps` steps (and at the first step), of a fixed sample batch:
  `images/input`, `images/depth_pred` (magma colormap on disparity, near = warm,
  `tfdepth.visualization.colorize_depth`), `images/depth_gt` (same disparity scale as the
  prediction row when ground truth is present), `images/abs_rel_error` (|pred − gt| / gt mapped
  to the colormap, saturating at `ERROR_MAP_MAX_ABS_REL`; pixels without ground truth black), and
  for self-supervised models the target-view warps of the source frames `images/warped_-1`,
  `images/warped_+1` and Monodepth2's auto-mask `images/automask` (white = pixel kept).
* a histogram `depth/predicted` of the valid predicted depths (metres) of the sample batch.

The summaries are written with the generic `tf.summary.write` op and the summary metadata of
TensorBoard's scalars / images / histograms plugins (the exact tensors `tf.summary.scalar`,
`tf.summary.image` and `tf.summary.histogram` write), because those three functions are
implemented by the `tensorboard` package, which TensorFlow 2.21 no longer installs; the event files
are therefore written without it and read by any TensorBoard.

Self-supervised extras come from the model: a method `visualization_outputs(batch) ->
{name: (B, H, W, C) float [0, 1]}` if it has one, else, for models exposing `predict_poses` and a
`SelfSupervisedConfig` `config` (`trainers.self_supervised.SelfSupervisedDepthModel`), the warps
and auto-mask recomputed with `warp_sources` / `photometric_loss_map` at scale 0.
"""

import os

import keras
import numpy as np
import tensorflow as tf
from tensorflow.core.framework import summary_pb2

from tfdepth import visualization
from tfdepth.errors import InvalidInputError

TRAIN_RUN = "train"
VALIDATION_RUN = "validation"
VALIDATION_PREFIX = "val_"
# Default cadence (optimizer steps). Images cost a forward pass of the sample batch.
DEFAULT_IMAGE_EVERY_N_STEPS = 500
DEFAULT_SCALAR_EVERY_N_STEPS = 100
DEFAULT_MAX_IMAGES = 3
# AbsRel error shown brightest in the error map: 0.25 is the δ < 1.25 threshold's relative error
# (Eigen et al. 2014 accuracy thresholds), so saturated pixels are "wrong by more than δ1 allows".
ERROR_MAP_MAX_ABS_REL = 0.25
HISTOGRAM_BUCKETS = 30  # tf.summary.histogram's default
# TensorBoard plugin names (tensorboard/plugins/{scalar,image,histogram}/metadata.py).
SCALARS_PLUGIN = "scalars"
IMAGES_PLUGIN = "images"
HISTOGRAMS_PLUGIN = "histograms"
# A histogram whose values are all equal gets one bucket [v - 0.5, v + 0.5] (TensorBoard's
# histogram summary does the same).
CONSTANT_HISTOGRAM_HALF_WIDTH = 0.5


def _metadata(plugin, data_class):
  md = summary_pb2.SummaryMetadata()
  md.plugin_data.plugin_name = plugin
  md.data_class = data_class
  return md


def write_scalar(tag, value, step):
  """Scalar summary (float32 rank-0 tensor, plugin "scalars") to the default writer."""
  return tf.summary.write(tag, tf.constant(float(value), tf.float32), step=step,
                          metadata=_metadata(SCALARS_PLUGIN, summary_pb2.DATA_CLASS_SCALAR))


def write_image(tag, images, step, max_outputs=DEFAULT_MAX_IMAGES):
  """Image summary of uint8 `(K, H, W, C)` images, C in {1, 3, 4}: the string tensor
  `[str(W), str(H), png_0, ..., png_{k-1}]` (first `max_outputs`), plugin "images"."""
  images = np.asarray(images)
  if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] not in (1, 3, 4):
    raise InvalidInputError(f"write_image expected uint8 (K, H, W, C) with C in 1, 3, 4, "
                            f"received {images.dtype} {images.shape}")
  pngs = [tf.io.encode_png(im).numpy() for im in images[:max_outputs]]
  tensor = tf.constant([str(images.shape[2]).encode(), str(images.shape[1]).encode()] + pngs)
  return tf.summary.write(tag, tensor, step=step,
                          metadata=_metadata(IMAGES_PLUGIN, summary_pb2.DATA_CLASS_BLOB_SEQUENCE))


def histogram_buckets(values, buckets=HISTOGRAM_BUCKETS):
  """`(buckets, 3)` float64 [left edge, right edge, count], equal widths over [min, max].

  Empty input gives `(0, 3)`; constant input one bucket [v - 0.5, v + 0.5].
  """
  v = np.asarray(values, np.float64).ravel()
  v = v[np.isfinite(v)]
  if v.size == 0:
    return np.zeros((0, 3), np.float64)
  lo, hi = float(v.min()), float(v.max())
  if lo == hi:
    return np.array([[lo - CONSTANT_HISTOGRAM_HALF_WIDTH, hi + CONSTANT_HISTOGRAM_HALF_WIDTH,
                      float(v.size)]])
  counts, edges = np.histogram(v, bins=buckets, range=(lo, hi))
  return np.stack([edges[:-1], edges[1:], counts.astype(np.float64)], axis=-1)


def write_histogram(tag, values, step, buckets=HISTOGRAM_BUCKETS):
  """Histogram summary (`histogram_buckets` tensor, plugin "histograms") to the default writer."""
  return tf.summary.write(tag, tf.constant(histogram_buckets(values, buckets)), step=step,
                          metadata=_metadata(HISTOGRAMS_PLUGIN, summary_pb2.DATA_CLASS_TENSOR))


def scalar_tag(name):
  """`"silog_loss"` -> `"loss/silog_loss"`, `"abs_rel"` -> `"metric/abs_rel"` (val_ dropped)."""
  if name.startswith(VALIDATION_PREFIX):
    name = name[len(VALIDATION_PREFIX):]
  return ("loss/" if name.endswith("loss") else "metric/") + name


def error_map(pred_depth, gt_depth, max_abs_rel=ERROR_MAP_MAX_ABS_REL):
  """Coloured AbsRel map `(B, H, W, 3)` uint8 of depth `(B, H, W, 1)` metres vs ground truth.

  |pred − gt| / gt in [0, max_abs_rel] spans the magma colormap (dark = small); pixels with
  gt <= 0 (no measurement) are `visualization.INVALID_COLOR`.
  """
  pred = np.asarray(pred_depth, np.float64)[..., 0]
  gt = np.asarray(gt_depth, np.float64)[..., 0]
  valid = np.isfinite(gt) & (gt > 0) & np.isfinite(pred)
  rel = np.zeros_like(gt)
  rel[valid] = np.abs(pred[valid] - gt[valid]) / gt[valid]
  rgb = visualization.apply_colormap(rel / max_abs_rel)
  rgb[~valid] = visualization.INVALID_COLOR
  return rgb


def _to_uint8(images):
  x = np.asarray(images, np.float32)
  if x.shape[-1] == 1:
    x = np.repeat(x, 3, axis=-1)
  return np.round(np.clip(x, 0.0, 1.0) * 255.0).astype(np.uint8)


def _resize_to(depth, hw):
  if tuple(depth.shape[1:3]) == tuple(hw):
    return depth
  return tf.image.resize(depth, hw, method="bilinear")


class DepthTensorBoard(keras.callbacks.Callback):
  """TensorBoard scalars, images and a depth histogram for depth training (see module doc).

  Args:
    log_dir: folder of the event files (runs `train/` and `validation/` are created in it).
    sample_batch: the batch the images are computed on: a dict with `"image"` `(B, H, W, 3)`
      float [0, 1] and optionally `"depth"` `(B, H, W, 1)` metres (supervised), or `"frames"`
      `(B, 3, H, W, 3)` and `"intrinsics"` `(B, 3, 3)` (self-supervised; the target frame is the
      input); an `(image, depth)` tuple; or a `tf.data.Dataset` whose first element is used.
      None writes scalars only.
    image_every_n_steps: positive int; images and histogram every this many optimizer steps.
    scalar_every_n_steps: positive int, or 0 for epoch-end scalars only.
    max_images: at most this many images of the sample batch are shown.
  """

  def __init__(self, log_dir, sample_batch=None, image_every_n_steps=DEFAULT_IMAGE_EVERY_N_STEPS,
               scalar_every_n_steps=DEFAULT_SCALAR_EVERY_N_STEPS, max_images=DEFAULT_MAX_IMAGES):
    super().__init__()
    for value, name, low in ((image_every_n_steps, "image_every_n_steps", 1),
                             (scalar_every_n_steps, "scalar_every_n_steps", 0),
                             (max_images, "max_images", 1)):
      if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise InvalidInputError(f"{name} must be an int >= {low}, received {value!r}")
    self.log_dir = os.fspath(log_dir)
    self.image_every_n_steps = image_every_n_steps
    self.scalar_every_n_steps = scalar_every_n_steps
    self.max_images = max_images
    self._batch = None if sample_batch is None else self._normalize_batch(sample_batch)
    self._writers = {}
    self._step = 0

  # ------------------------------------------------------------------------------ inputs
  def _normalize_batch(self, batch):
    if isinstance(batch, tf.data.Dataset):
      batch = next(iter(batch))
    if isinstance(batch, (tuple, list)):
      if len(batch) < 1:
        raise InvalidInputError("sample_batch tuple is empty; expected (image, depth)")
      items = tuple(batch)
      if isinstance(items[0], dict):
        batch = dict(items[0])
      else:
        batch = {"image": items[0]}
        if len(items) > 1 and not isinstance(items[1], dict):
          batch["depth"] = items[1]
    if not isinstance(batch, dict):
      raise InvalidInputError(f"sample_batch must be a dict, an (image, depth) tuple or a "
                              f"tf.data.Dataset, received {type(batch).__name__}")
    out = {}
    n = self.max_images
    for key in ("image", "depth", "frames", "intrinsics"):
      if key in batch:
        out[key] = tf.convert_to_tensor(batch[key])[:n]
    if "image" not in out and "frames" not in out:
      raise InvalidInputError(f"sample_batch needs 'image' (B, H, W, 3) or 'frames' "
                              f"(B, 3, H, W, 3), received keys {sorted(batch)}")
    if "image" not in out:
      from trainers.self_supervised import TARGET_INDEX  # pylint: disable=g-import-not-at-top
      out["image"] = out["frames"][:, TARGET_INDEX]
    image = out["image"]
    if image.shape.rank != 4 or image.shape[-1] != 3:
      raise InvalidInputError(f"sample_batch['image'] must be (B, H, W, 3), received "
                              f"{image.shape}")
    out["image"] = tf.cast(image, tf.float32)
    return out

  # ------------------------------------------------------------------------------ writers
  def _writer(self, run):
    if run not in self._writers:
      self._writers[run] = tf.summary.create_file_writer(os.path.join(self.log_dir, run))
    return self._writers[run]

  def _write_scalars(self, logs, prefix, step):
    train, val = {}, {}
    for k, v in (logs or {}).items():
      try:
        value = float(v)
      except (TypeError, ValueError):
        continue
      (val if k.startswith(VALIDATION_PREFIX) else train)[scalar_tag(k)] = value
    for run, values in ((TRAIN_RUN, train), (VALIDATION_RUN, val)):
      if values:
        with self._writer(run).as_default(step=step):
          for tag, value in values.items():
            write_scalar(f"{prefix}/{tag}", value, step)

  # ------------------------------------------------------------------------------ callbacks
  def on_train_begin(self, logs=None):
    optimizer = getattr(self.model, "optimizer", None)
    iterations = getattr(optimizer, "iterations", None)
    self._step = int(iterations.numpy()) if iterations is not None else 0

  def on_train_batch_end(self, batch, logs=None):
    self._step += 1
    step = self._step
    if self.scalar_every_n_steps and step % self.scalar_every_n_steps == 0:
      self._write_scalars(logs, "step", step)
    if self._batch is not None and (step == 1 or step % self.image_every_n_steps == 0):
      self.write_images(step)

  def on_epoch_end(self, epoch, logs=None):
    self._write_scalars(logs, "epoch", epoch)
    for w in self._writers.values():
      w.flush()

  def on_train_end(self, logs=None):
    for w in self._writers.values():
      w.flush()

  # ------------------------------------------------------------------------------ images
  def _self_supervised_images(self, batch, depth):
    hook = getattr(self.model, "visualization_outputs", None)
    if callable(hook):
      return dict(hook(batch))
    if not (hasattr(self.model, "predict_poses") and hasattr(self.model, "config")
            and "frames" in batch and "intrinsics" in batch):
      return {}
    from trainers import self_supervised as ss  # pylint: disable=g-import-not-at-top
    frames = tf.cast(batch["frames"], tf.float32)
    target = frames[:, ss.TARGET_INDEX]
    sources = {f: frames[:, i] for f, i in ss.SOURCE_INDEX.items()}
    poses = self.model.predict_poses(frames, training=False)
    warped = ss.warp_sources(sources, depth, poses, tf.cast(batch["intrinsics"], tf.float32))
    _, automask = ss.photometric_loss_map(target, sources, {f: v[0] for f, v in warped.items()},
                                          self.model.config)
    out = {f"warped_{f:+d}": warped[f][0] for f in sorted(warped)}
    out["automask"] = automask
    return out

  def write_images(self, step):
    """Runs the model on the sample batch and writes the image and histogram summaries."""
    batch = self._batch
    image = batch["image"]
    outputs = self.model(image, training=False)
    if not isinstance(outputs, dict) or "depth" not in outputs:
      raise InvalidInputError(
          f"DepthTensorBoard needs a model returning a dict with 'depth', received "
          f"{type(outputs).__name__} {sorted(outputs) if isinstance(outputs, dict) else ''}")
    depth = _resize_to(tf.cast(outputs["depth"], tf.float32), image.shape[1:3])
    pred = depth.numpy()
    gt = batch["depth"].numpy().astype(np.float32) if "depth" in batch else None
    pred_rows, gt_rows = [], []
    for i in range(pred.shape[0]):
      ref = gt[i] if gt is not None else pred[i]
      valid = ref[np.isfinite(ref) & (ref > 0)]
      max_disp = (float(np.percentile(1.0 / valid, visualization.DISPLAY_PERCENTILE))
                  if valid.size else None)
      pred_rows.append(visualization.colorize_depth(pred[i], max_disparity=max_disp))
      if gt is not None:
        gt_rows.append(visualization.colorize_depth(gt[i], max_disparity=max_disp))
    extras = self._self_supervised_images(batch, depth)
    valid_pred = pred[np.isfinite(pred) & (pred > 0)]
    with self._writer(TRAIN_RUN).as_default(step=step):
      n = self.max_images
      write_image("images/input", _to_uint8(image.numpy()), step, n)
      write_image("images/depth_pred", np.stack(pred_rows), step, n)
      if gt is not None:
        write_image("images/depth_gt", np.stack(gt_rows), step, n)
        write_image("images/abs_rel_error", error_map(pred, gt), step, n)
      for name, value in extras.items():
        write_image(f"images/{name}", _to_uint8(tf.convert_to_tensor(value).numpy()), step, n)
      write_histogram("depth/predicted", valid_pred, step)
    self._writer(TRAIN_RUN).flush()


__all__ = ["DepthTensorBoard", "error_map", "scalar_tag", "write_scalar", "write_image",
           "write_histogram", "histogram_buckets", "ERROR_MAP_MAX_ABS_REL"]
