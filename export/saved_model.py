"""SavedModel export of a tfdepth depth model with serving signatures and metadata.

The artefact is written with Keras 3's `keras.export.ExportArchive` (the Keras 3 replacement of
`model.save(..., save_format="tf")`; it wraps the model in a `tf.Module` and calls
`tf.saved_model.save`). Signatures:

``serving_default``
  ``images``: uint8 RGB, shape (B, H_in, W_in, 3) with ANY H_in, W_in. The batch is converted to
  float32 [0, 1] (divided by 255), resized to the model's (H, W) as the training pipeline does
  (`tfdepth.data.augment.resize_images`: bilinear, half-pixel centres, antialiased, clipped to
  [0, 1]), run through the model; the predicted depth is clamped to the metadata's
  ``depth_range``, inverted to disparity, and the DISPARITY is resized back to (H_in, W_in)
  bilinearly and only then inverted to depth (the KITTI evaluation convention,
  shared/docs/reference-conventions.md: "resized as disparity, bilinear, then inverted").
  Returns ``depth`` (metres, float32, (B, H_in, W_in, 1)) and ``disparity`` (1/m, same shape).
``native``
  ``images``: float32 RGB in [0, 1] at the model's size (B, H, W, 3), no resizing. Returns
  ``depth`` (clamped to ``depth_range``) and ``disparity`` = 1 / depth, both (B, H, W, 1).
``metadata``
  No input; returns ``metadata_json``: a scalar string with the metadata JSON.

The same metadata is also written to ``<export_dir>/assets.extra/tfdepth_metadata.json``.
"""

import dataclasses
import json
import os

import keras
import numpy as np
import tensorflow as tf

from export._common import (DEPTH_KEY, METADATA_DIR, METADATA_FILENAME, UINT8_MAX, depth_output,
                            make_metadata)
from tfdepth.data import augment
from tfdepth.errors import DataError, InvalidInputError

SERVING_SIGNATURE = "serving_default"
NATIVE_SIGNATURE = "native"
METADATA_SIGNATURE = "metadata"
DISPARITY_KEY = "disparity"
IMAGES_ARG = "images"


def export_saved_model(model, export_dir, metadata):
  """Writes ``model`` as a SavedModel with ``serving_default``, ``native`` and ``metadata``.

  Args:
    model: Keras 3 model, input float32 (None, H, W, 3) in [0, 1] with static H, W, output a
      dict with ``"depth"`` (B, H, W, 1) in metres.
    export_dir: directory to write (created; must not already contain a SavedModel).
    metadata: dict, see `export._common.make_metadata` (``"experiment"`` required;
      ``"depth_range"`` [min_m, max_m] defaults to [0.1, 100]).
  Returns:
    The completed metadata dict that was stored.
  Raises:
    InvalidInputError: bad model I/O, bad metadata, or an existing SavedModel at export_dir.
  """
  meta = make_metadata(model, metadata)
  export_dir = os.fspath(export_dir)
  if os.path.exists(os.path.join(export_dir, "saved_model.pb")):
    raise InvalidInputError(f"export_dir {export_dir!r} already contains a SavedModel")
  h, w = meta["input_size"]
  min_depth, max_depth = meta["depth_range"]
  meta_json = json.dumps(meta, sort_keys=True)

  def predict_depth(images):
    depth = depth_output(model(images, training=False))
    return tf.clip_by_value(tf.cast(depth, tf.float32), min_depth, max_depth)

  def serve(images):
    in_hw = tf.shape(images)[1:3]
    x = augment.resize_images(tf.cast(images, tf.float32) / UINT8_MAX, h, w)
    disparity = tf.image.resize(1.0 / predict_depth(x), in_hw, method="bilinear")
    return {DEPTH_KEY: 1.0 / disparity, DISPARITY_KEY: disparity}

  def native(images):
    depth = predict_depth(images)
    return {DEPTH_KEY: depth, DISPARITY_KEY: 1.0 / depth}

  def metadata_fn():
    return {"metadata_json": tf.constant(meta_json)}

  archive = keras.export.ExportArchive()
  archive.track(model)
  archive.add_endpoint(SERVING_SIGNATURE, serve, input_signature=[
      tf.TensorSpec((None, None, None, 3), tf.uint8, name=IMAGES_ARG)])
  archive.add_endpoint(NATIVE_SIGNATURE, native, input_signature=[
      tf.TensorSpec((None, h, w, 3), tf.float32, name=IMAGES_ARG)])
  archive.add_endpoint(METADATA_SIGNATURE, metadata_fn, input_signature=[])
  archive.write_out(export_dir, verbose=False)
  os.makedirs(os.path.join(export_dir, METADATA_DIR), exist_ok=True)
  with open(os.path.join(export_dir, METADATA_DIR, METADATA_FILENAME), "w") as f:
    json.dump(meta, f, indent=2, sort_keys=True)
    f.write("\n")
  return meta


@dataclasses.dataclass(frozen=True)
class LoadedSavedModel:
  """A reloaded tfdepth SavedModel.

  Attributes:
    module: the object returned by `tf.saved_model.load`.
    metadata: the stored metadata dict.
  """
  module: object
  metadata: dict

  @property
  def input_size(self):
    """Model input size ``(H, W)`` in pixels."""
    return tuple(self.metadata["input_size"])

  def serve(self, images_uint8):
    """``serving_default``: uint8 (B, H_in, W_in, 3) -> dict depth/disparity (B, H_in, W_in, 1).

    Raises:
      InvalidInputError: ``images_uint8`` is not uint8 (a float image in [0, 1] would become
        black and 16-bit values would wrap if cast) or not (B, H, W, 3).
    """
    dtype = getattr(images_uint8, "dtype", None)
    if dtype is None or tf.as_dtype(dtype) != tf.uint8:
      raise InvalidInputError(
          f"serve expects uint8 RGB images (0..255), received dtype {dtype}; convert float "
          "[0, 1] images with np.round(x * 255).astype(np.uint8), or use `native` at the "
          "model's size")
    shape = tuple(images_uint8.shape)
    if len(shape) != 4 or shape[-1] != 3:
      raise InvalidInputError(f"serve expects images (B, H, W, 3), received shape {shape}")
    return self.module.signatures[SERVING_SIGNATURE](
        **{IMAGES_ARG: tf.convert_to_tensor(images_uint8, tf.uint8)})

  def native(self, images):
    """``native``: float32 [0, 1] (B, H, W, 3) at model size -> dict depth/disparity."""
    return self.module.signatures[NATIVE_SIGNATURE](
        **{IMAGES_ARG: tf.convert_to_tensor(images, tf.float32)})


def load_saved_model(path):
  """Loads a SavedModel written by `export_saved_model`.

  Args:
    path: the export directory.
  Returns:
    `LoadedSavedModel` with the signatures and the metadata.
  Raises:
    DataError: if there is no SavedModel at ``path`` or it lacks the tfdepth signatures.
  """
  path = os.fspath(path)
  if not os.path.exists(os.path.join(path, "saved_model.pb")):
    raise DataError(f"no SavedModel (saved_model.pb) found at {path!r}")
  module = tf.saved_model.load(path)
  missing = [s for s in (SERVING_SIGNATURE, NATIVE_SIGNATURE, METADATA_SIGNATURE)
             if s not in module.signatures]
  if missing:
    raise DataError(f"SavedModel at {path!r} lacks the tfdepth signatures {missing}; "
                    f"it has {sorted(module.signatures)}")
  stored = module.signatures[METADATA_SIGNATURE]()["metadata_json"].numpy().decode("utf-8")
  metadata = json.loads(stored)
  return LoadedSavedModel(module=module, metadata=metadata)


def read_metadata(path):
  """Reads ``assets.extra/tfdepth_metadata.json`` of an exported SavedModel without loading it."""
  file = os.path.join(os.fspath(path), METADATA_DIR, METADATA_FILENAME)
  if not os.path.exists(file):
    raise DataError(f"no tfdepth metadata file at {file!r}")
  with open(file) as f:
    return json.load(f)


def as_uint8(images):
  """float [0, 1] images -> uint8 by rounding (the inverse of the serving normalisation)."""
  return np.clip(np.round(np.asarray(images, np.float32) * UINT8_MAX), 0, UINT8_MAX).astype(
      np.uint8)
