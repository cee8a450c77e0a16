"""Helpers shared by the export modules: model I/O contract, metadata, errors.

The export contract of a tfdepth depth model (docs/DESIGN.md):
  input   float32 RGB in [0, 1], shape (B, H, W, 3) with static H and W (the model normalises
          internally);
  output  a dict with key ``"depth"``: z-depth in metres, float32, shape (B, H, W, 1).
"""

import json
import numbers

import numpy as np

import tfdepth
from tfdepth.errors import InvalidInputError, TfdepthError

# Name of the metadata file written next to the SavedModel's variables (TF Serving and
# `saved_model_cli` ignore `assets.extra/`, it exists for such side files: SavedModel docs).
METADATA_FILENAME = "tfdepth_metadata.json"
METADATA_DIR = "assets.extra"

# Normalisation performed by the exported pre-processing: uint8 RGB -> float32 [0, 1]
# (the model then applies its own normalisation inside: docs/DESIGN.md, "Models normalise
# internally").
UINT8_MAX = 255.0
DEFAULT_NORMALIZATION = "rgb_float32_0_1"

# Depth range clamps used when no range is given: Monodepth2's disp_to_depth defaults
# (min 0.1 m, max 100 m; shared/docs/reference-conventions.md "disp_to_depth").
DEFAULT_MIN_DEPTH = 0.1
DEFAULT_MAX_DEPTH = 100.0

DEPTH_KEY = "depth"


class ExportError(TfdepthError, RuntimeError):
  """A model cannot be exported in the requested format (e.g. an op has no TFLite builtin)."""


def model_input_size(model):
  """Returns ``(H, W)`` of a Keras model taking one (B, H, W, 3) image input.

  Raises:
    InvalidInputError: for several inputs, a non-NHWC-RGB input or dynamic H / W.
  """
  inputs = model.inputs if hasattr(model, "inputs") else None
  if not inputs or len(inputs) != 1:
    raise InvalidInputError(
        f"model must have exactly one image input, got inputs={inputs!r}")
  shape = tuple(inputs[0].shape)
  if len(shape) != 4 or shape[-1] != 3 or shape[1] is None or shape[2] is None:
    raise InvalidInputError(
        f"model input must be (None, H, W, 3) with static H and W, got {shape}")
  return int(shape[1]), int(shape[2])


def depth_output(outputs):
  """Picks the depth tensor (B, H, W, 1) out of a model's outputs (dict with "depth")."""
  if isinstance(outputs, dict):
    if DEPTH_KEY not in outputs:
      raise InvalidInputError(
          f"model output dict must have key {DEPTH_KEY!r}, got keys {sorted(outputs)}")
    return outputs[DEPTH_KEY]
  raise InvalidInputError(
      f"model must return a dict with key {DEPTH_KEY!r}, got {type(outputs).__name__}")


def make_metadata(model, metadata):
  """Validates and completes export metadata.

  Args:
    model: the Keras model (its input size fills / checks ``input_size``).
    metadata: dict with at least ``"experiment"`` (str). Optional: ``"input_size"`` [H, W]
      (must equal the model's), ``"depth_range"`` [min_m, max_m] (default [0.1, 100]),
      ``"normalization"`` (str), and any other JSON-serialisable keys, kept as given.
  Returns:
    A new dict with ``experiment``, ``input_size``, ``depth_range``, ``normalization`` and
    ``tfdepth_version`` set.
  Raises:
    InvalidInputError: naming the bad key and value.
  """
  if not isinstance(metadata, dict):
    raise InvalidInputError(f"metadata must be a dict, got {type(metadata).__name__}")
  out = dict(metadata)
  experiment = out.get("experiment")
  if not isinstance(experiment, str) or not experiment:
    raise InvalidInputError(
        f"metadata['experiment'] must be a non-empty string, got {experiment!r}")
  size = list(model_input_size(model))
  if "input_size" in out and [int(v) for v in out["input_size"]] != size:
    raise InvalidInputError(
        f"metadata['input_size'] {out['input_size']!r} does not match the model input {size}")
  out["input_size"] = size
  rng = out.get("depth_range", [DEFAULT_MIN_DEPTH, DEFAULT_MAX_DEPTH])
  if (not isinstance(rng, (list, tuple)) or len(rng) != 2
      or not all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in rng)
      or not 0 < rng[0] < rng[1] < float("inf")):
    raise InvalidInputError(
        f"metadata['depth_range'] must be [min_m, max_m] with 0 < min < max, got {rng!r}")
  out["depth_range"] = [float(rng[0]), float(rng[1])]
  out.setdefault("normalization", DEFAULT_NORMALIZATION)
  out["tfdepth_version"] = tfdepth.__version__
  try:
    json.dumps(out)
  except TypeError as e:
    raise InvalidInputError(f"metadata must be JSON-serialisable: {e}") from None
  return out


def check_images(images, arg="images"):
  """Validates a float [0, 1] image batch (N, H, W, 3); returns it as float32 numpy."""
  arr = np.asarray(images)
  if arr.ndim != 4 or arr.shape[-1] != 3 or arr.shape[0] == 0:
    raise InvalidInputError(f"{arg} must have shape (N, H, W, 3) with N >= 1, got {arr.shape}")
  if not np.issubdtype(arr.dtype, np.floating):
    raise InvalidInputError(f"{arg} must be float in [0, 1], got dtype {arr.dtype}")
  arr = arr.astype(np.float32, copy=False)
  if not np.all(np.isfinite(arr)) or arr.min() < 0.0 or arr.max() > 1.0:
    raise InvalidInputError(
        f"{arg} must be finite and in [0, 1], got range [{arr.min()}, {arr.max()}]")
  return arr
