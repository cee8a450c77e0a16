"""Adapters from dataset examples to tfdepth's common elements, and element validation.

Common supervised element (one example, unbatched):

    {"image":      (H, W, 3) float32 in [0, 1],
     "depth":      (H, W, 1) float32, metres (z-depth), 0 = invalid,
     "intrinsics": (3, 3)    float32, pixels of this (H, W)}

Common video element (self-supervised, frames in temporal order [t-1, t, t+1]):

    {"frames":             (3, H, W, 3) float32 in [0, 1],
     "intrinsics":         (3, 3) float32 pixels,
     "depth":              (H, W, 1) float32 metres of the centre frame t (if the dataset has it),
     "target_from_source": (2, 4, 4) float32 (if the dataset has it; sources t-1 and t+1)}

Invalid depth handling (`invalid_depth=`): ground truth that is NaN, +-inf or negative is
  * `"mask"` (default): set to 0, i.e. treated as "no measurement" like sky / missing LiDAR;
  * `"raise"`: iteration fails with `tf.errors.InvalidArgumentError` whose message says which
    values were found (a `tf.data` map cannot raise a Python exception type of its own).
Wrong ranks, channel counts and dtypes are detected when the pipeline is built and raise
`tfdepth.errors.InvalidInputError`.
"""

import tensorflow as tf

from tfdepth.errors import InvalidInputError

INVALID_DEPTH_MODES = ("mask", "raise")
# uint8 images are scaled by 1/255 to [0, 1] (DESIGN.md: images reaching losses are in [0, 1]).
UINT8_MAX = 255.0
# Index of the centre (target) frame in the synthetic_world `frames` triplet [t-1, t, t+1].
SYNTHETIC_WORLD_TARGET_FRAME = 1


def image_to_float(image, name="image"):
  """uint8 [0, 255] -> float32 [0, 1]; float images are cast to float32 unchanged."""
  image = tf.convert_to_tensor(image)
  if image.dtype == tf.uint8:
    return tf.cast(image, tf.float32) / UINT8_MAX
  if image.dtype.is_floating:
    return tf.cast(image, tf.float32)
  raise InvalidInputError(f"{name} expected dtype uint8 or float, received {image.dtype.name}")


def _check_static(tensor, rank, last_dims, name, expected):
  shape = tensor.shape
  if shape.rank is not None and shape.rank != rank:
    raise InvalidInputError(f"{name} expected shape {expected}, received {shape}")
  if shape.rank is not None:
    for axis, size in last_dims.items():
      if shape[axis] is not None and shape[axis] != size:
        raise InvalidInputError(f"{name} expected shape {expected}, received {shape}")


def sanitize_depth(depth, invalid_depth="mask"):
  """Applies the invalid-depth policy (see module docstring) to a float32 depth map."""
  if invalid_depth not in INVALID_DEPTH_MODES:
    raise InvalidInputError(
        f"invalid_depth expected one of {INVALID_DEPTH_MODES}, received {invalid_depth!r}")
  bad = tf.logical_or(tf.logical_not(tf.math.is_finite(depth)), depth < 0.0)
  if invalid_depth == "raise":
    check = tf.debugging.Assert(
        tf.logical_not(tf.reduce_any(bad)),
        ["depth expected finite values >= 0 (metres, 0 = invalid); received",
         tf.reduce_sum(tf.cast(bad, tf.int32)), "NaN/inf/negative values, e.g.",
         tf.boolean_mask(depth, bad)], summarize=8)
    with tf.control_dependencies([check]):
      return tf.identity(depth)
  return tf.where(bad, tf.zeros_like(depth), depth)


def validate_supervised_element(element, invalid_depth="mask"):
  """Checks/normalises a supervised element (unbatched). Returns a new dict.

  Shapes: image `(H, W, 3)` uint8 or float (cast to float32 [0, 1]); depth `(H, W)` or
  `(H, W, 1)` float (-> `(H, W, 1)` float32, invalid values per `invalid_depth`); intrinsics
  `(3, 3)`. Image and depth must have the same (H, W).

  Raises:
    InvalidInputError: missing key, wrong rank / channels / dtype, mismatched sizes (static).
  """
  for key in ("image", "depth", "intrinsics"):
    if key not in element:
      raise InvalidInputError(
          f"supervised element expected keys ('image', 'depth', 'intrinsics'), received "
          f"{sorted(element)}")
  image = image_to_float(element["image"])
  _check_static(image, 3, {-1: 3}, "image", "(H, W, 3)")
  depth = tf.convert_to_tensor(element["depth"])
  if not depth.dtype.is_floating:
    raise InvalidInputError(f"depth expected a float dtype (metres), received {depth.dtype.name}")
  depth = tf.cast(depth, tf.float32)
  if depth.shape.rank == 2:
    depth = depth[..., tf.newaxis]
  _check_static(depth, 3, {-1: 1}, "depth", "(H, W, 1)")
  if (image.shape[:2].is_fully_defined() and depth.shape[:2].is_fully_defined()
      and image.shape[:2] != depth.shape[:2]):
    raise InvalidInputError(
        f"image and depth expected the same (H, W), received image {image.shape} and depth "
        f"{depth.shape}")
  intrinsics = tf.cast(tf.convert_to_tensor(element["intrinsics"]), tf.float32)
  _check_static(intrinsics, 2, {0: 3, 1: 3}, "intrinsics", "(3, 3)")
  out = dict(element)
  out.update(image=image, depth=sanitize_depth(depth, invalid_depth), intrinsics=intrinsics)
  return out


def synthetic_world_to_supervised(example):
  """`synthetic_world` example -> supervised element of its centre frame t.

  Uses `frames[1]` (uint8 (H, W, 3)), `depth` ((H, W, 1) float32 metres, 0 = sky) and
  `intrinsics` ((3, 3) pixels); other features are dropped.
  """
  return {
      "image": image_to_float(example["frames"][SYNTHETIC_WORLD_TARGET_FRAME]),
      "depth": tf.cast(example["depth"], tf.float32),
      "intrinsics": tf.cast(example["intrinsics"], tf.float32),
  }


def synthetic_world_to_video(example):
  """`synthetic_world` (or any) example -> video element: frames [t-1, t, t+1] float32 [0, 1] and
  intrinsics; `depth` and `target_from_source` (float32) when the example has them."""
  out = {"frames": image_to_float(example["frames"], "frames"),
         "intrinsics": tf.cast(example["intrinsics"], tf.float32)}
  for key in ("depth", "target_from_source"):
    if key in example:
      out[key] = tf.cast(example[key], tf.float32)
  return out


def generic_to_supervised(example):
  """Examples that already carry `image`, `depth`, `intrinsics` (NYU/KITTI-style builders)."""
  return {"image": image_to_float(example["image"]), "depth": example["depth"],
          "intrinsics": example["intrinsics"]}


# NYU Depth v2 RGB camera intrinsics at 480x640, pixels (NYU toolbox `camera_params.m`:
# fx_rgb = 5.1885790117450188e+02, fy_rgb = 5.1946961112127485e+02,
# cx_rgb = 3.2558244941119034e+02, cy_rgb = 2.5373616633400465e+02; MATLAB 1-based pixel
# centres, so cx, cy - 1 here).
NYU_RGB_FX = 518.85790117450188
NYU_RGB_FY = 519.46961112127485
NYU_RGB_CX = 325.58244941119034 - 1.0
NYU_RGB_CY = 253.73616633400465 - 1.0
NYU_IMAGE_SIZE = (480, 640)


def nyu_to_supervised(example):
  """`nyu_depth_v2_labeled` example -> supervised element (dense in-painted depth, Kinect K).

  The builder stores no intrinsics; K is `NYU_RGB_*` scaled to the stored image size.
  """
  image = image_to_float(example["image"])
  shape = tf.cast(tf.shape(image), tf.float32)
  sx = shape[1] / NYU_IMAGE_SIZE[1]
  sy = shape[0] / NYU_IMAGE_SIZE[0]
  k = tf.stack([tf.stack([NYU_RGB_FX * sx, 0.0, (NYU_RGB_CX + 0.5) * sx - 0.5]),
                tf.stack([0.0, NYU_RGB_FY * sy, (NYU_RGB_CY + 0.5) * sy - 0.5]),
                tf.constant([0.0, 0.0, 1.0])])
  return {"image": image, "depth": tf.cast(example["depth"], tf.float32), "intrinsics": k}


# Dataset name (TFDS builder name without config) -> (supervised adapter, video adapter).
ADAPTERS = {
    "synthetic_world": (synthetic_world_to_supervised, synthetic_world_to_video),
    "nyu_depth_v2_labeled": (nyu_to_supervised, None),
    "kitti_depth": (generic_to_supervised, None),
}


def get_adapter(dataset_name, kind="supervised"):
  """Returns the adapter for `dataset_name` ("name" or "name/config"); `kind` supervised|video.

  Unknown names fall back to `generic_to_supervised` for `kind="supervised"`.
  """
  if kind not in ("supervised", "video"):
    raise InvalidInputError(f"kind expected 'supervised' or 'video', received {kind!r}")
  base = (dataset_name or "").split("/")[0].split(":")[0]
  if base in ADAPTERS and ADAPTERS[base][0 if kind == "supervised" else 1] is not None:
    return ADAPTERS[base][0 if kind == "supervised" else 1]
  if kind == "supervised":
    return generic_to_supervised
  raise InvalidInputError(
      f"no video adapter for dataset {dataset_name!r}; expected one of {sorted(ADAPTERS)}")


def auto_adapter(element_spec, kind="supervised"):
  """Chooses an adapter from the keys of a dataset's `element_spec` (dict)."""
  keys = set(element_spec)
  if kind == "supervised":
    if {"image", "depth", "intrinsics"} <= keys:
      return lambda e: e
    if {"frames", "depth", "intrinsics"} <= keys:
      return synthetic_world_to_supervised
  else:
    if {"frames", "intrinsics"} <= keys:
      return synthetic_world_to_video
  expected = ("('image', 'depth', 'intrinsics') or ('frames', 'depth', 'intrinsics')"
              if kind == "supervised" else
              "('frames', 'intrinsics'), optionally 'depth' and 'target_from_source'")
  raise InvalidInputError(
      f"cannot adapt dataset elements with keys {sorted(keys)} to a {kind} element; expected "
      f"{expected}")
