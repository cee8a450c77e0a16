"""U-Net border weight map and weighted cross-entropy (Ronneberger et al. 2015, Eq. 1–2).

The weight map needs exact Euclidean distance transforms, which TensorFlow has no op for. They are
computed with `scipy.ndimage.distance_transform_edt` in `unet_weight_map_numpy` (the pure-numpy
reference) and `unet_weight_map` wraps it in `tf.numpy_function`. Because of that the weight map is
meant to be **precomputed in the data pipeline** (`dataset.map(...)`, or offline), not inside a
model: `tf.numpy_function` cannot be XLA-compiled, exported to SavedModel/TFLite or run on a TPU.
`border_weighted_cross_entropy` is pure TensorFlow and takes the precomputed map.
"""

import numpy as np
import scipy.ndimage
import tensorflow as tf

from tfdepth.errors import InvalidInputError
from tfdepth.losses import _common

# Ronneberger et al. 2015, Sec. 3: "In our experiments we set w0 = 10 and σ ≈ 5 pixels."
UNET_W0 = 10.0
UNET_SIGMA = 5.0


def _class_weight_array(class_weights):
  if class_weights is None:
    return np.ones(2, np.float64)
  cw = np.asarray(class_weights, np.float64)
  if cw.shape != (2,) or not np.all(np.isfinite(cw)) or np.any(cw < 0):
    raise InvalidInputError(
        "class_weights: expected 2 non-negative numbers (background, object), received "
        f"{class_weights!r}")
  return cw


def _weight_map_2d(labels, class_weights, w0, sigma):
  """labels (H, W) int instance ids (0 = background) -> (H, W) float32 weights."""
  weights = class_weights[(labels > 0).astype(np.int64)]
  ids = np.unique(labels)
  ids = ids[ids > 0]
  if ids.size >= 2:
    # distance_transform_edt(x) is the distance of each nonzero pixel to the nearest zero pixel;
    # with zeros exactly on object k it is the distance to object k (in pixels, centre to centre).
    dist = np.stack([scipy.ndimage.distance_transform_edt(labels != k) for k in ids], axis=0)
    dist.sort(axis=0)
    d1, d2 = dist[0], dist[1]
    border = w0 * np.exp(-np.square(d1 + d2) / (2.0 * sigma * sigma))
    # Applied to background pixels (the gaps between touching objects), as in the usual
    # implementations; inside an object d1 = 0 and the paper's formula is not meant to apply.
    weights = weights + border * (labels == 0)
  return weights.astype(np.float32)


def unet_weight_map_numpy(labels, class_weights=None, w0=UNET_W0, sigma=UNET_SIGMA):
  """Pure-numpy U-Net weight map w(x) = w_c(x) + w0·exp(−(d1(x) + d2(x))² / (2σ²)).

  d1, d2 are the Euclidean distances (pixels) from a background pixel to the nearest and the
  second-nearest object; the border term is applied to background pixels only, and is 0 when an
  image has fewer than two objects. w_c is `class_weights[0]` on background and `class_weights[1]`
  on objects (Ronneberger et al. 2015 use it to balance class frequencies; default 1, 1).

  Args:
    labels: (H, W), (H, W, 1), (B, H, W) or (B, H, W, 1) integer instance map, 0 = background,
      k > 0 = object k.
    class_weights: None or (w_background, w_object).
    w0: border weight (paper: 10).
    sigma: border width in pixels (paper: 5).
  Returns:
    float32 array of the shape of `labels`.
  Raises:
    InvalidInputError: non-integer labels, bad rank, bad class weights, sigma <= 0.
  """
  labels = np.asarray(labels)
  if not np.issubdtype(labels.dtype, np.integer):
    raise InvalidInputError(f"labels: expected an integer instance map, received dtype {labels.dtype}")
  cw = _class_weight_array(class_weights)
  sigma = _common.check_positive(sigma, "sigma")
  w0 = float(w0)
  shape = labels.shape
  if labels.ndim == 4 and shape[-1] == 1:
    flat = labels[..., 0]
  elif labels.ndim == 3 and shape[-1] == 1:
    flat = labels[None, ..., 0]
  elif labels.ndim == 3:
    flat = labels
  elif labels.ndim == 2:
    flat = labels[None]
  else:
    raise InvalidInputError(
        f"labels: expected shape (H, W), (H, W, 1), (B, H, W) or (B, H, W, 1), received {shape}")
  out = np.stack([_weight_map_2d(l, cw, w0, sigma) for l in flat], axis=0)
  return out.reshape(shape)


def unet_weight_map(labels, class_weights=None, w0=UNET_W0, sigma=UNET_SIGMA):
  """TensorFlow entry point of the U-Net weight map (`tf.numpy_function` around the numpy reference).

  Use it in `tf.data` (`ds.map(lambda x, y: (x, (y, unet_weight_map(y))))`) or eagerly; it cannot
  be XLA-compiled or exported (see the module docstring).

  Args:
    labels: (B, H, W, 1) or (H, W, 1) integer instance map, 0 = background.
    class_weights, w0, sigma: as in `unet_weight_map_numpy`.
  Returns:
    float32 tensor of the shape of `labels`.
  """
  labels = tf.convert_to_tensor(labels)
  if not labels.dtype.is_integer:
    raise InvalidInputError(f"labels: expected an integer instance map, received dtype {labels.dtype.name}")
  if labels.shape.rank not in (3, 4):
    raise InvalidInputError(f"labels: expected shape (B, H, W, 1) or (H, W, 1), received {labels.shape}")
  cw = _class_weight_array(class_weights)
  sigma = _common.check_positive(sigma, "sigma")
  w0 = float(w0)
  out = tf.numpy_function(lambda l: unet_weight_map_numpy(l, cw, w0, sigma), [labels], tf.float32,
                          stateful=False)
  out.set_shape(labels.shape)
  return out


def border_weighted_cross_entropy(logits, labels, weights, mask=None):
  """Pixel-weighted softmax cross-entropy of U-Net (Ronneberger et al. 2015, Eq. 1), per image.

  E = Σ_x m(x)·w(x)·CE(logits(x), label(x)) / Σ_x m(x), i.e. the weighted loss averaged over the
  valid pixels.

  Args:
    logits: (B, H, W, C) float class logits.
    labels: (B, H, W, 1) integer class indices in [0, C) (any value where `mask` is 0).
    weights: (B, H, W, 1) float per-pixel weights (e.g. `unet_weight_map`).
    mask: optional (B, H, W, 1) {0, 1} mask of pixels to use.
  Returns:
    (B,) float32 loss (nats); 0 for images without valid pixels.
  Raises:
    InvalidInputError: wrong ranks/shapes or non-integer labels.
  """
  logits = _common.to_float(logits, "logits")
  _common.check_rank(logits, 4, "logits")
  labels = tf.convert_to_tensor(labels)
  if not labels.dtype.is_integer:
    raise InvalidInputError(f"labels: expected integer class indices, received dtype {labels.dtype.name}")
  _common.check_rank(labels, 4, "labels", channels=1)
  _common.check_same_hw(logits, labels, "logits", "labels")
  weights = _common.to_float(weights, "weights")
  _common.check_rank(weights, 4, "weights", channels=1)
  _common.check_same_hw(weights, labels, "weights", "labels")
  valid = tf.ones_like(weights)
  if mask is not None:
    mask = _common.to_float(mask, "mask")
    _common.check_rank(mask, 4, "mask", channels=1)
    valid = tf.cast(mask > 0.0, tf.float32)
  # Masked pixels may carry an "ignore" label (e.g. 255); replace it by 0 so the op never sees an
  # out-of-range index (an error on CPU, NaN under XLA).
  labels = tf.where(valid[..., 0] > 0.0, tf.cast(labels[..., 0], tf.int32), 0)
  ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)[..., None]
  return _common.masked_image_mean(ce * weights, valid)
