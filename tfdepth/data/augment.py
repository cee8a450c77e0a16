"""Joint geometric augmentation (image, depth, mask, intrinsics) and photometric jitter.

Geometric ops change every per-pixel tensor identically and update K with
`tfdepth.geometry.intrinsics` (integer pixel centres, `tf.image.resize`'s half-pixel sampling):

* crop (top, left, h, w):  cx -= left, cy -= top;
* resize (h, w) -> (H', W'): fx *= W'/w, cx' = (cx + 0.5)·W'/w - 0.5 (same for y);
* horizontal flip:         cx' = W - 1 - cx (the flipped image is the camera of the mirrored scene).

Depth and masks are resized with **nearest neighbour** so that invalid zeros never blend with valid
depths (a bilinear mix of 0 and 20 m would invent a 10 m point). Images use bilinear (antialiased
when shrinking).

Photometric jitter touches the image only: brightness, contrast, saturation, hue with the ranges of
Monodepth2 (Godard et al., ICCV 2019, `datasets/mono_dataset.py`: torchvision `ColorJitter`
brightness=(0.8, 1.2), contrast=(0.8, 1.2), saturation=(0.8, 1.2), hue=(-0.1, 0.1), applied with
probability 0.5). torchvision applies the four in a random order; here the order is fixed
(brightness, contrast, saturation, hue) so the op is cheap and XLA-friendly.

Randomness is stateless: every function takes a `seed` of shape `(2,)` int32/int64 and derives
per-op seeds with `tf.random.experimental.stateless_fold_in`, so the pipeline keys each element's
augmentation by (base seed, element index): no global RNG, identical results on every run.
"""

import tensorflow as tf

from tfdepth.errors import InvalidInputError
from tfdepth.geometry.intrinsics import crop_intrinsics
from tfdepth.geometry.intrinsics import flip_intrinsics_horizontal
from tfdepth.geometry.intrinsics import resize_intrinsics

# Monodepth2 `mono_dataset.py` colour augmentation (torchvision ColorJitter ranges).
BRIGHTNESS_RANGE = (0.8, 1.2)   # multiplicative factor
CONTRAST_RANGE = (0.8, 1.2)     # blend factor with the mean grey level
SATURATION_RANGE = (0.8, 1.2)   # blend factor with the greyscale image
HUE_RANGE = (-0.1, 0.1)         # hue shift, fraction of a full turn
# Monodepth2 `mono_dataset.py`: `do_color_aug = self.is_train and random.random() > 0.5`.
COLOR_JITTER_PROBABILITY = 0.5
FLIP_PROBABILITY = 0.5          # Monodepth2: `do_flip = self.is_train and random.random() > 0.5`
# Random crop: side of the crop window as a fraction of the largest window with the output aspect
# ratio that fits the image (1.0 = no zoom). 0.8 is a mild zoom (scale augmentation as in
# Eigen et al. 2014, who scale by s in [1, 1.5]; 1/0.8 = 1.25 is within that range).
MIN_CROP_FRACTION = 0.8
# ITU-R BT.601 luma weights (torchvision `rgb_to_grayscale`, tf.image.rgb_to_grayscale).
LUMA_WEIGHTS = (0.2989, 0.587, 0.114)

# Per-op salts folded into the element seed (any distinct ints).
_SALT_CROP_SIZE, _SALT_CROP_Y, _SALT_CROP_X, _SALT_FLIP = 1, 2, 3, 4
_SALT_JITTER, _SALT_BRIGHTNESS, _SALT_CONTRAST, _SALT_SATURATION, _SALT_HUE = 5, 6, 7, 8, 9

PER_PIXEL_KEYS = ("image", "depth", "mask")


def fold_seed(seed, salt):
  """Derives a new `(2,)` int64 stateless seed from `seed` and a Python int `salt`."""
  return tf.random.experimental.stateless_fold_in(tf.cast(seed, tf.int64), salt)


def _uniform(seed, salt, low, high):
  return tf.random.stateless_uniform([], fold_seed(seed, salt), minval=low, maxval=high)


def _spatial_size(element):
  key = "frames" if "frames" in element else "image"
  shape = tf.shape(element[key])
  return shape[-3], shape[-2]


def _per_pixel_keys(element):
  return [k for k in ("image", "frames", "depth", "mask") if k in element]


def crop(element, top, left, height, width):
  """Crops every per-pixel tensor to rows [top, top+height), cols [left, left+width); updates K.

  Per-pixel tensors have shape `(..., H, W, C)` (`image`, `depth`, `mask`, `frames`).
  """
  out = dict(element)
  for key in _per_pixel_keys(element):
    x = element[key]
    begin = tf.concat([tf.zeros([x.shape.rank - 3], tf.int32),
                       tf.stack([tf.cast(top, tf.int32), tf.cast(left, tf.int32), 0])], 0)
    size = tf.concat([tf.fill([x.shape.rank - 3], -1),
                      tf.stack([tf.cast(height, tf.int32), tf.cast(width, tf.int32), -1])], 0)
    out[key] = tf.slice(x, begin, size)
  out["intrinsics"] = crop_intrinsics(element["intrinsics"], top, left)
  return out


def resize_images(images, height, width):
  """Images float32 [0, 1] ``(..., H, W, C)`` resized to ``(height, width)``: bilinear with
  antialiasing (an area-weighted triangle filter when shrinking), clipped to [0, 1] (the
  antialiasing kernel overshoots slightly at edges).

  The one image resize of tfdepth: the training and evaluation pipelines, `tfdepth-eval`,
  `tfdepth-predict` and the exported models' serving code all use it, so that a network sees
  the same preprocessing in training and in serving. Static or dynamic sizes.
  """
  return tf.clip_by_value(
      tf.image.resize(images, [height, width], method="bilinear", antialias=True), 0.0, 1.0)


def resize(element, height, width):
  """Resizes per-pixel tensors to (height, width): image/frames bilinear, depth/mask nearest.

  K is mapped with `resize_intrinsics` (integer pixel centres; exact for `tf.image.resize`'s
  half-pixel sampling).
  """
  h, w = _spatial_size(element)
  out = dict(element)
  for key in _per_pixel_keys(element):
    x = element[key]
    if key in ("image", "frames"):
      out[key] = resize_images(x, height, width)
    else:
      out[key] = tf.image.resize(x, [height, width], method="nearest")
  out["intrinsics"] = resize_intrinsics(element["intrinsics"], tf.stack([h, w]),
                                        tf.constant([height, width]))
  return out


def flip_horizontal(element):
  """Mirrors every per-pixel tensor left-right and maps K (cx' = W - 1 - cx).

  Poses `target_from_source` `(..., 4, 4)`, if present, are conjugated by the mirror
  F = diag(-1, 1, 1, 1): M' = F M F. Applying this function twice is the identity.
  """
  _, w = _spatial_size(element)
  out = dict(element)
  for key in _per_pixel_keys(element):
    out[key] = tf.reverse(element[key], axis=[-2])
  out["intrinsics"] = flip_intrinsics_horizontal(element["intrinsics"], w)
  if "target_from_source" in element:
    mirror = tf.constant([-1.0, 1.0, 1.0, 1.0], tf.float32)
    pose = tf.cast(element["target_from_source"], tf.float32)
    out["target_from_source"] = pose * mirror[:, tf.newaxis] * mirror[tf.newaxis, :]
  return out


def random_crop_resize(element, seed, height, width, min_crop_fraction=MIN_CROP_FRACTION):
  """Random crop with the output aspect ratio, then resize to (height, width).

  The crop side is `f` times the largest window of aspect width/height that fits the image, with
  `f ~ U[min_crop_fraction, 1]`; its position is uniform over the valid offsets.
  """
  if not 0.0 < min_crop_fraction <= 1.0:
    raise InvalidInputError(f"min_crop_fraction expected in (0, 1], received {min_crop_fraction!r}")
  h, w = _spatial_size(element)
  hf, wf = tf.cast(h, tf.float32), tf.cast(w, tf.float32)
  aspect = width / height
  base_h = tf.minimum(hf, wf / aspect)
  frac = _uniform(seed, _SALT_CROP_SIZE, min_crop_fraction, 1.0)
  ch = tf.clip_by_value(tf.cast(tf.round(base_h * frac), tf.int32), 1, h)
  cw = tf.clip_by_value(tf.cast(tf.round(base_h * frac * aspect), tf.int32), 1, w)
  top = tf.random.stateless_uniform([], fold_seed(seed, _SALT_CROP_Y), 0, h - ch + 1, tf.int32)
  left = tf.random.stateless_uniform([], fold_seed(seed, _SALT_CROP_X), 0, w - cw + 1, tf.int32)
  return resize(crop(element, top, left, ch, cw), height, width)


def random_flip(element, seed, probability=FLIP_PROBABILITY):
  """Flips with `probability` (stateless)."""
  do_flip = _uniform(seed, _SALT_FLIP, 0.0, 1.0) < probability
  flipped = flip_horizontal(element)
  out = dict(element)
  for key in _per_pixel_keys(element) + ["intrinsics", "target_from_source"]:
    if key in element:
      out[key] = tf.where(do_flip, flipped[key], tf.cast(element[key], flipped[key].dtype))
  return out


def _grayscale(image):
  weights = tf.constant(LUMA_WEIGHTS, image.dtype)
  return tf.reduce_sum(image * weights, axis=-1, keepdims=True)


def adjust_color(image, brightness, contrast, saturation, hue):
  """torchvision-style colour adjustment of float [0, 1] images `(..., H, W, 3)`.

  brightness: x·b; contrast: (x - mean(grey))·c + mean(grey) (mean per image); saturation:
  grey + s·(x - grey); hue: HSV hue shift by `hue` turns. Each step is clipped to [0, 1].
  """
  x = tf.clip_by_value(image * brightness, 0.0, 1.0)
  mean = tf.reduce_mean(_grayscale(x), axis=[-3, -2, -1], keepdims=True)
  x = tf.clip_by_value((x - mean) * contrast + mean, 0.0, 1.0)
  grey = _grayscale(x)
  x = tf.clip_by_value(grey + saturation * (x - grey), 0.0, 1.0)
  return tf.clip_by_value(tf.image.adjust_hue(x, hue), 0.0, 1.0)


def random_color_jitter(image, seed, probability=COLOR_JITTER_PROBABILITY,
                        brightness=BRIGHTNESS_RANGE, contrast=CONTRAST_RANGE,
                        saturation=SATURATION_RANGE, hue=HUE_RANGE):
  """With `probability`, applies `adjust_color` with factors drawn uniformly from the ranges.

  For video `(3, H, W, 3)` the same factors are applied to all frames (Monodepth2 applies one
  `ColorJitter` draw to every frame of a sample).
  """
  apply = _uniform(seed, _SALT_JITTER, 0.0, 1.0) < probability
  b = _uniform(seed, _SALT_BRIGHTNESS, *brightness)
  c = _uniform(seed, _SALT_CONTRAST, *contrast)
  s = _uniform(seed, _SALT_SATURATION, *saturation)
  hshift = _uniform(seed, _SALT_HUE, *hue)
  if image.shape.rank == 4:
    jittered = tf.map_fn(lambda f: adjust_color(f, b, c, s, hshift), image)
  else:
    jittered = adjust_color(image, b, c, s, hshift)
  return tf.where(apply, jittered, image)


def augment_supervised(element, seed, height, width, min_crop_fraction=MIN_CROP_FRACTION,
                       flip_probability=FLIP_PROBABILITY,
                       color_jitter_probability=COLOR_JITTER_PROBABILITY):
  """Training augmentation of a supervised (or video) element, deterministic given `seed`.

  Random crop + resize to (height, width), random horizontal flip (image, depth, mask, K, poses),
  colour jitter on the image only. For a video element the jittered clip is added as
  `frames_aug` (the networks' input) and `frames` keeps the geometric augmentation only: the
  photometric loss compares un-jittered frames (Monodepth2's `color` vs `color_aug`, Godard et
  al. 2019, Sec. 4.1; as `tfdepth.data.video.make_self_supervised_dataset`).

  Args:
    element: dict with `image` `(H, W, 3)` float32 [0, 1] (or `frames` `(3, H, W, 3)`), optional
      `depth`/`mask` `(H, W, 1)`, `intrinsics` `(3, 3)` pixels.
    seed: `(2,)` integer stateless seed.
    height, width: output size in pixels (Python ints).
  Returns:
    dict with the same keys (plus `frames_aug` for a video element); per-pixel tensors
    `(height, width, C)`, K in output pixels.
  """
  out = random_crop_resize(element, fold_seed(seed, 100), height, width, min_crop_fraction)
  out = random_flip(out, fold_seed(seed, 200), flip_probability)
  if "frames" in out:   # one jitter draw shared by the frames of the clip
    out["frames_aug"] = random_color_jitter(out["frames"], fold_seed(seed, 300),
                                            color_jitter_probability)
  else:
    out["image"] = random_color_jitter(out["image"], fold_seed(seed, 300),
                                       color_jitter_probability)
  return out


def resize_for_eval(element, height, width):
  """Deterministic evaluation transform: resize the whole image to (height, width) (no crop)."""
  if (isinstance(height, int) and isinstance(width, int)
      and element.get("image", element.get("frames")).shape[-3:-1] == (height, width)):
    return dict(element)
  return resize(element, height, width)
