"""`tf.data` pipelines: read, adapt, validate, (cache), shuffle, repeat, augment, batch.

Determinism: shuffling uses a fixed seed (TFDS file shuffling with `ReadConfig(shuffle_seed)` and
`Dataset.shuffle(seed)`), element `i` of the (shuffled, repeated) stream is augmented with the
stateless seed `fold_in([seed, 0], i)` (no global RNG), and `map` keeps its order
(`deterministic=True`). Two pipelines built with the same arguments yield identical batches.

Static shapes: training batches use `drop_remainder=True` by default so that the batch dimension
is static (TPU / XLA); evaluation keeps every example (`drop_remainder=False`).
"""

import tensorflow as tf

from tfdepth.data import adapters
from tfdepth.data import augment
from tfdepth.errors import InvalidInputError

AUTOTUNE = tf.data.AUTOTUNE
# Default shuffle buffer (elements). Small synthetic datasets fit entirely; large datasets rely on
# TFDS file-level shuffling in addition.
DEFAULT_SHUFFLE_BUFFER = 1024


def _check_positive_int(value, name):
  if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
    raise InvalidInputError(f"{name} expected a positive int, received {value!r}")


def _dataset_name(builder_or_ds):
  info = getattr(builder_or_ds, "info", None)
  name = getattr(builder_or_ds, "name", None)
  return name if isinstance(name, str) else (getattr(info, "name", "") if info else "")


def read_split(builder_or_ds, split, training, seed, data_dir=None):
  """Returns `(raw tf.data.Dataset, dataset name)` for a TFDS builder / name / Dataset.

  Args:
    builder_or_ds: a `tfds.core.DatasetBuilder` (already prepared), a TFDS name such as
      `"synthetic_world/street"` (must be prepared under `data_dir`), or a `tf.data.Dataset` of
      raw examples (then `split` is ignored).
  """
  if isinstance(builder_or_ds, tf.data.Dataset):
    return builder_or_ds, ""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  if isinstance(builder_or_ds, str):
    name = builder_or_ds
    builder_or_ds = tfds.builder(name, data_dir=data_dir)
  if not hasattr(builder_or_ds, "as_dataset"):
    raise InvalidInputError(
        "builder_or_ds expected a tfds builder, a TFDS name or a tf.data.Dataset, received "
        f"{type(builder_or_ds)}")
  read_config = tfds.ReadConfig(shuffle_seed=seed, interleave_cycle_length=1)
  ds = builder_or_ds.as_dataset(split=split, shuffle_files=training, read_config=read_config)
  return ds, builder_or_ds.name


def element_seeds(ds, seed):
  """Zips each element with its stateless seed `(2,)` int64 keyed by (seed, element index)."""
  base = tf.constant([seed, 0], tf.int64)
  return ds.enumerate().map(
      lambda i, e: (tf.random.experimental.stateless_fold_in(base, i), e))


def make_supervised_dataset(builder_or_ds, split="train", batch_size=8, height=None, width=None,
                            training=False, seed=0, augment_data=None, repeat=None,
                            drop_remainder=None, shuffle_buffer=DEFAULT_SHUFFLE_BUFFER,
                            cache=False, adapter=None, invalid_depth="mask", data_dir=None,
                            min_crop_fraction=augment.MIN_CROP_FRACTION,
                            flip_probability=augment.FLIP_PROBABILITY,
                            color_jitter_probability=augment.COLOR_JITTER_PROBABILITY,
                            prefetch=True, num_parallel_calls=AUTOTUNE):
  """Batched supervised dataset of `{"image", "depth", "intrinsics"}` (see `tfdepth.data`).

  Args:
    builder_or_ds: TFDS builder, TFDS name or `tf.data.Dataset` (see `read_split`).
    split: TFDS split name (e.g. "train", "test", "train[:10%]").
    batch_size: global batch size (positive int).
    height, width: output size in pixels; None keeps the dataset's size (no resize; then all
      examples must share one size to be batched).
    training: shuffle + repeat + augment (each default-able separately below).
    seed: int; fixes file shuffling, element shuffling and every augmentation draw.
    augment_data: apply `augment.augment_supervised` (default: `training`).
    repeat: repeat forever (default: `training`).
    drop_remainder: static batch dimension (default: `training`).
    shuffle_buffer: elements in the shuffle buffer (training only).
    cache: cache adapted elements in memory before shuffling (small datasets).
    adapter: example -> element function; default chosen from the dataset name / keys.
    invalid_depth: "mask" | "raise" (see `tfdepth.data.adapters`).
    data_dir: TFDS data dir when `builder_or_ds` is a name.
  Returns:
    `tf.data.Dataset` of dicts: image `(B, H, W, 3)` float32 [0, 1], depth `(B, H, W, 1)` float32
    metres (0 = invalid), intrinsics `(B, 3, 3)` float32 pixels.
  Raises:
    InvalidInputError: bad arguments or elements of the wrong structure / shape / dtype.
  """
  _check_positive_int(batch_size, "batch_size")
  if (height is None) != (width is None):
    raise InvalidInputError(
        f"height and width expected both None or both ints, received {height!r}, {width!r}")
  if height is not None:
    _check_positive_int(height, "height")
    _check_positive_int(width, "width")
  if not isinstance(seed, int) or isinstance(seed, bool):
    raise InvalidInputError(f"seed expected an int, received {seed!r}")
  augment_data = training if augment_data is None else augment_data
  repeat = training if repeat is None else repeat
  drop_remainder = training if drop_remainder is None else drop_remainder
  if augment_data and height is None:
    raise InvalidInputError("augmentation needs an output height and width, received None")

  ds, name = read_split(builder_or_ds, split, training, seed, data_dir)
  if not isinstance(ds.element_spec, dict):
    raise InvalidInputError(
        f"expected dataset elements to be dicts, received {ds.element_spec!r}")
  if adapter is None:
    adapter = (adapters.get_adapter(name, "supervised") if name
               else adapters.auto_adapter(ds.element_spec, "supervised"))

  def _adapt(example):
    return adapters.validate_supervised_element(adapter(example), invalid_depth)

  ds = ds.map(_adapt, num_parallel_calls=num_parallel_calls, deterministic=True)
  ds = ds.map(lambda e: {k: e[k] for k in ("image", "depth", "intrinsics")})
  ds = _cache_shuffle_augment(ds, cache, training, shuffle_buffer, seed, repeat, augment_data,
                              height, width, min_crop_fraction, flip_probability,
                              color_jitter_probability, num_parallel_calls)
  if height is not None:
    ds = ds.map(lambda e: {
        "image": tf.ensure_shape(e["image"], [height, width, 3]),
        "depth": tf.ensure_shape(e["depth"], [height, width, 1]),
        "intrinsics": tf.ensure_shape(e["intrinsics"], [3, 3])})
  ds = ds.batch(batch_size, drop_remainder=drop_remainder)
  if prefetch:
    ds = ds.prefetch(AUTOTUNE)
  return ds


def make_video_dataset(builder_or_ds, split="train", batch_size=4, height=None, width=None,
                       training=False, seed=0, augment_data=None, repeat=None, drop_remainder=None,
                       shuffle_buffer=DEFAULT_SHUFFLE_BUFFER, cache=False, adapter=None,
                       data_dir=None, min_crop_fraction=augment.MIN_CROP_FRACTION,
                       flip_probability=augment.FLIP_PROBABILITY,
                       color_jitter_probability=augment.COLOR_JITTER_PROBABILITY, prefetch=True,
                       num_parallel_calls=AUTOTUNE):
  """Batched video dataset for self-supervised training (arguments as `make_supervised_dataset`).

  Returns:
    `tf.data.Dataset` of dicts: frames `(B, 3, H, W, 3)` float32 [0, 1] in temporal order
    [t-1, t, t+1] (one crop / flip draw shared by the three frames), with augmentation also
    `frames_aug`, the same frames colour-jittered (one draw per clip; the networks' input, while
    the photometric loss uses `frames`), intrinsics
    `(B, 3, 3)` pixels, plus `depth` `(B, H, W, 1)` and `target_from_source` `(B, 2, 4, 4)` when
    the dataset has them (mirrored consistently on flips).
  """
  _check_positive_int(batch_size, "batch_size")
  augment_data = training if augment_data is None else augment_data
  repeat = training if repeat is None else repeat
  drop_remainder = training if drop_remainder is None else drop_remainder
  if augment_data and height is None:
    raise InvalidInputError("augmentation needs an output height and width, received None")
  ds, name = read_split(builder_or_ds, split, training, seed, data_dir)
  if adapter is None:
    adapter = (adapters.get_adapter(name, "video") if name
               else adapters.auto_adapter(ds.element_spec, "video"))

  def _adapt(example):
    e = adapter(example)
    frames = e["frames"]
    if frames.shape.rank is not None and (frames.shape.rank != 4 or frames.shape[-1] != 3):
      raise InvalidInputError(f"frames expected shape (T, H, W, 3), received {frames.shape}")
    if "depth" in e:
      e["depth"] = adapters.sanitize_depth(tf.cast(e["depth"], tf.float32))
    return e

  ds = ds.map(_adapt, num_parallel_calls=num_parallel_calls, deterministic=True)
  ds = _cache_shuffle_augment(ds, cache, training, shuffle_buffer, seed, repeat, augment_data,
                              height, width, min_crop_fraction, flip_probability,
                              color_jitter_probability, num_parallel_calls)
  ds = ds.batch(batch_size, drop_remainder=drop_remainder)
  if prefetch:
    ds = ds.prefetch(AUTOTUNE)
  return ds


def _cache_shuffle_augment(ds, cache, training, shuffle_buffer, seed, repeat, augment_data, height,
                           width, min_crop_fraction, flip_probability, color_jitter_probability,
                           num_parallel_calls):
  """The steps both pipelines share: cache, seeded shuffle, repeat, then augment or resize."""
  if cache:
    ds = ds.cache()
  if training:
    ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
  if repeat:
    ds = ds.repeat()
  if augment_data:
    ds = element_seeds(ds, seed)
    return ds.map(lambda s, e: augment.augment_supervised(
        e, s, height, width, min_crop_fraction, flip_probability, color_jitter_probability),
                  num_parallel_calls=num_parallel_calls, deterministic=True)
  if height is not None:
    return ds.map(lambda e: augment.resize_for_eval(e, height, width),
                  num_parallel_calls=num_parallel_calls, deterministic=True)
  return ds
