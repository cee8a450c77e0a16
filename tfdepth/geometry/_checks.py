"""Static argument checks shared by the geometry modules (private).

The checks look only at static information (ranks, known dimensions, dtypes), so they cost
nothing at run time and work eagerly, inside `tf.function` and under `jit_compile=True`. Unknown
dimensions (`None`, e.g. the batch size) are accepted.
"""

import tensorflow as tf

from tfdepth.errors import InvalidInputError


def to_float_tensor(x, name, dtype=None):
  """Converts `x` to a floating tensor; raises InvalidInputError for non-numeric input.

  Python numbers and numpy arrays become `dtype` (float32 when None). A tensor keeps its floating
  dtype unless `dtype` is given; an integer tensor is cast to `dtype` (float32 when None).
  """
  if not tf.is_tensor(x):
    target = dtype or tf.float32
    try:
      x = tf.convert_to_tensor(x)  # numbers, numpy arrays, (nested) lists, also of tensors
    except (TypeError, ValueError) as e:
      raise InvalidInputError(
          f"{name} must be numeric (convertible to {target.name}), got {x!r}.") from e
    if x.dtype.is_floating or x.dtype.is_integer:
      return tf.cast(x, target)
  if x.dtype.is_integer:
    return tf.cast(x, dtype or tf.float32)
  if not x.dtype.is_floating:
    raise InvalidInputError(
        f"{name} must be a floating-point tensor, got dtype {x.dtype.name} "
        f"(shape {x.shape}).")
  if dtype is not None and x.dtype != dtype:
    x = tf.cast(x, dtype)
  return x


def check_rank(x, rank, name, expected):
  """Raises InvalidInputError if the static rank of `x` is known and differs from `rank`."""
  if x.shape.rank is not None and x.shape.rank != rank:
    raise InvalidInputError(
        f"{name} must have rank {rank} with shape {expected}, got shape {x.shape} "
        f"(rank {x.shape.rank}).")


def check_min_rank(x, rank, name, expected):
  """Raises InvalidInputError if the static rank of `x` is known and below `rank`."""
  if x.shape.rank is not None and x.shape.rank < rank:
    raise InvalidInputError(
        f"{name} must have rank >= {rank} with shape {expected}, got shape {x.shape} "
        f"(rank {x.shape.rank}).")


def check_trailing_dims(x, dims, name, expected):
  """Raises InvalidInputError if the known trailing dimensions of `x` differ from `dims`."""
  check_min_rank(x, len(dims), name, expected)
  if x.shape.rank is None:
    return
  actual = x.shape.as_list()[-len(dims):]
  for got, want in zip(actual, dims):
    if want is not None and got is not None and got != want:
      raise InvalidInputError(
          f"{name} must have shape {expected}, got shape {x.shape}.")


def check_same_dim(a, a_axis, b, b_axis, a_name, b_name):
  """Raises InvalidInputError if two statically known dimensions differ."""
  if a.shape.rank is None or b.shape.rank is None:
    return
  da, db = a.shape[a_axis], b.shape[b_axis]
  if da is not None and db is not None and da != db:
    raise InvalidInputError(
        f"{a_name} (shape {a.shape}) and {b_name} (shape {b.shape}) must agree on dimension "
        f"{a_axis} / {b_axis}, got {da} and {db}.")
