"""Quantisation-aware training (QAT) of a trained Keras 3 depth model, to a full-int8 TFLite file.

tensorflow-model-optimization 0.8 (tfmot) only understands tf_keras 2.x models, so QAT runs in a
SEPARATE PROCESS (`export._qat_worker`) that never sees a Keras 3 object: this module (main
process) writes the trained weights (``model.get_weights()``) and the fine-tuning data to .npz
files, and the worker

1. builds the tf_keras twin with the same functional builder (``layers=tf_keras.layers``),
2. loads the weights (same order: both libraries list a functional model's weights by layer),
3. optionally prunes to ``target_sparsity`` (`tfmot.sparsity.keras.prune_low_magnitude`,
   constant sparsity) for ``prune_epochs`` and strips the wrappers,
4. applies `quantize_apply` (pruning-preserving scheme after pruning; see the worker's docstring
   for the per-layer handling: Rescaling gets an output-only 8-bit QuantizeConfig) and sets the
   activation ranges from one batch of the data (tfmot would start them at [-6, 6]),
5. fine-tunes ``epochs`` epochs with a masked L1 loss on depth (pixels with target > 0),
6. converts to a full-integer TFLite model (``TFLITE_BUILTINS_INT8`` only, input ``io_dtype``)
   whose output tail (the per-pixel layers after the head convolution: Monodepth2's sigmoid +
   ``disp_to_depth``, FastDepth's sigmoid x max_depth) is neither fake-quantised during QAT nor
   quantised in the file (`export.float_tail`): the output is float32 metres (``io_dtype`` for a
   model without a tail, e.g. a ReLU head).

Reference: Jacob et al., "Quantization and Training of Neural Networks for Efficient
Integer-Arithmetic-Only Inference", CVPR 2018; tfmot QAT guide.
"""

import json
import os
import subprocess
import sys
import tempfile

import numpy as np

from export._common import ExportError, check_images, model_input_size
from tfdepth.errors import InvalidInputError

# Fine-tuning defaults: a few epochs at a small learning rate (the tfmot QAT guide fine-tunes a
# trained model for ~1 epoch; Adam at 1e-4 is 1/10 of the experiments' default 1e-3).
DEFAULT_EPOCHS = 2
DEFAULT_BATCH_SIZE = 8
DEFAULT_LEARNING_RATE = 1e-4
IO_DTYPES = ("uint8", "int8", "float32")
# Builders of depth models with a ``layers=`` namespace (tf_keras twin) and a "depth" output:
# FastDepth (Wofk et al. 2019) and Monodepth2-R18/34/50's depth net + disp_to_depth (Godard et
# al. 2019; ``num_layers`` picks the ResNet).
QAT_BUILDERS = ("tfdepth.models.fastdepth:build_fastdepth",
                "tfdepth.models.monodepth2:build_monodepth2_depth_model",
                "export._testing:monodepth2_depth_model")
# Wall-clock limit of the worker process (seconds).
DEFAULT_TIMEOUT_S = 3600
# Characters of the worker's stderr quoted in errors.
_STDERR_TAIL = 3000


def _repo_root():
  return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _check_data(model, train_data):
  """-> (images, depth) float32 numpy arrays; depth from the model (distillation) if absent."""
  if isinstance(train_data, (str, os.PathLike)):
    with np.load(train_data) as f:
      train_data = {k: f[k] for k in f.files}
  if not isinstance(train_data, dict) or "images" not in train_data:
    raise InvalidInputError(
        "train_data must be a dict / .npz with key 'images' (and optionally 'depth'), got "
        f"{type(train_data).__name__} with keys "
        f"{sorted(train_data) if isinstance(train_data, dict) else None}")
  images = check_images(train_data["images"], "train_data['images']")
  size = model_input_size(model)
  if tuple(images.shape[1:3]) != size:
    raise InvalidInputError(
        f"train_data['images'] are {images.shape[1:3]}, the model takes {size}")
  if "depth" in train_data:
    depth = np.asarray(train_data["depth"], np.float32)
    if depth.shape != images.shape[:3] + (1,):
      raise InvalidInputError(
          f"train_data['depth'] must be {images.shape[:3] + (1,)}, got {depth.shape}")
  else:  # Self-distillation: the float model's own predictions are the targets.
    depth = np.asarray(model.predict(images, verbose=0)["depth"], np.float32)
  return images, depth


def _check_builder_matches(model, builder, builder_kwargs):
  """Builds the Keras 3 model of ``builder(**builder_kwargs)`` and compares weight shapes.

  The tf_keras twin is built by the same builder, so a mismatch found here (cheaply, in this
  process) is one the worker would hit after its start-up.
  """
  import importlib  # pylint: disable=g-import-not-at-top
  import inspect  # pylint: disable=g-import-not-at-top
  module_name, _, fn_name = builder.partition(":")
  try:
    fn = getattr(importlib.import_module(module_name), fn_name)
  except (ImportError, AttributeError) as e:
    raise InvalidInputError(f"builder {builder!r} cannot be imported: {e}") from None
  if "layers" not in inspect.signature(fn).parameters:
    raise InvalidInputError(
        f"builder {builder!r} has no 'layers' parameter, so it cannot build the tf_keras twin "
        f"that QAT needs (tfmot works on tf_keras models only); builders that can: {QAT_BUILDERS}")
  reference = fn(**builder_kwargs)
  outputs = reference.output
  if not isinstance(outputs, dict) or "depth" not in outputs:
    raise InvalidInputError(
        f"builder {builder!r} builds a model with outputs "
        f"{sorted(outputs) if isinstance(outputs, dict) else type(outputs).__name__}; QAT "
        f"fine-tunes a {{'depth': (B, H, W, 1) metres}} output (builders that have one: "
        f"{QAT_BUILDERS})")
  expected = [tuple(w.shape) for w in reference.get_weights()]
  received = [tuple(w.shape) for w in model.get_weights()]
  if expected != received:
    diff = next((i for i, (a, b) in enumerate(zip(expected, received)) if a != b),
                min(len(expected), len(received)))
    raise InvalidInputError(
        f"model weights do not match {builder}(**{builder_kwargs}): {len(received)} arrays vs "
        f"{len(expected)} expected; first difference at index {diff}: "
        f"{received[diff] if diff < len(received) else None} vs "
        f"{expected[diff] if diff < len(expected) else None}")


def quantization_aware_training(model, builder, output_path, train_data, builder_kwargs=None,
                                epochs=DEFAULT_EPOCHS, batch_size=DEFAULT_BATCH_SIZE,
                                learning_rate=DEFAULT_LEARNING_RATE, target_sparsity=None,
                                prune_epochs=1, io_dtype="uint8", seed=0,
                                timeout_s=DEFAULT_TIMEOUT_S):
  """Fine-tunes ``model`` with QAT in a subprocess and writes a full-int8 ``.tflite`` file.

  Args:
    model: trained Keras 3 model built by ``builder(**builder_kwargs)`` (input float32
      (None, H, W, 3) in [0, 1], output ``{"depth": (B, H, W, 1)}`` metres).
    builder: ``"module:function"`` of the functional builder, which must accept
      ``layers=tf_keras.layers`` and build a ``{"depth": ...}`` model (`QAT_BUILDERS`:
      ``"tfdepth.models.fastdepth:build_fastdepth"``, and
      ``"export._testing:monodepth2_depth_model"`` for the Monodepth2 depth net with
      ``disp_to_depth``).
    output_path: where to write the ``.tflite`` file; ``output_path + ".json"`` gets the info
      (losses, output-only layers, float-tail layers and ops, sparsity).
    train_data: dict or .npz path with ``images`` float32 (N, H, W, 3) in [0, 1] at the model
      size and optionally ``depth`` float32 (N, H, W, 1) metres (0 = invalid); without
      ``depth`` the model's own predictions are the targets.
    builder_kwargs: JSON-serialisable kwargs of ``builder`` (the experiment's model kwargs).
    epochs, batch_size, learning_rate: QAT fine-tuning (Adam).
    target_sparsity: ``None`` or a float in (0, 1): prune to this fraction of zero weights first.
    prune_epochs: fine-tuning epochs while pruning.
    io_dtype: ``"uint8"``, ``"int8"`` or ``"float32"`` input of the TFLite model, and output
      when the model has no output tail (otherwise the output is float32 metres).
    seed: random seed of the worker.
    timeout_s: worker time limit in seconds.
  Returns:
    ``output_path`` (str).
  Raises:
    InvalidInputError: bad arguments or data, or model weights that do not match
      ``builder(**builder_kwargs)``.
    ExportError: the worker failed (its stderr tail is in the message), e.g. weights that do not
      match the tf_keras twin.
  """
  if not isinstance(builder, str) or builder.count(":") != 1:
    raise InvalidInputError(f"builder must be 'module:function', got {builder!r}")
  if io_dtype not in IO_DTYPES:
    raise InvalidInputError(f"io_dtype must be one of {IO_DTYPES}, got {io_dtype!r}")
  if target_sparsity is not None and not (
      isinstance(target_sparsity, float) and 0.0 < target_sparsity < 1.0):
    raise InvalidInputError(f"target_sparsity must be None or a float in (0, 1), got "
                            f"{target_sparsity!r}")
  for name, value in (("epochs", epochs), ("batch_size", batch_size),
                      ("prune_epochs", prune_epochs)):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
      raise InvalidInputError(f"{name} must be a positive int, got {value!r}")
  if not (isinstance(learning_rate, float) and learning_rate > 0):
    raise InvalidInputError(f"learning_rate must be a positive float, got {learning_rate!r}")
  builder_kwargs = dict(builder_kwargs or {})
  try:
    json.dumps(builder_kwargs)
  except TypeError as e:
    raise InvalidInputError(f"builder_kwargs must be JSON-serialisable: {e}") from None
  _check_builder_matches(model, builder, builder_kwargs)
  images, depth = _check_data(model, train_data)
  output_path = os.path.abspath(os.fspath(output_path))
  os.makedirs(os.path.dirname(output_path), exist_ok=True)

  with tempfile.TemporaryDirectory(prefix="tfdepth_qat_") as tmp:
    weights_path = os.path.join(tmp, "weights.npz")
    np.savez(weights_path, **{f"w{i:04d}": w for i, w in enumerate(model.get_weights())})
    data_path = os.path.join(tmp, "data.npz")
    np.savez(data_path, images=images, depth=depth)
    spec = {"builder": builder, "builder_kwargs": builder_kwargs, "weights": weights_path,
            "data": data_path, "output": output_path, "info": output_path + ".json",
            "epochs": epochs, "batch_size": batch_size, "learning_rate": learning_rate,
            "target_sparsity": target_sparsity, "prune_epochs": prune_epochs,
            "io_dtype": io_dtype, "seed": seed}
    spec_path = os.path.join(tmp, "spec.json")
    with open(spec_path, "w") as f:
      json.dump(spec, f)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [_repo_root(), os.getcwd()] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    try:
      proc = subprocess.run([sys.executable, "-m", "export._qat_worker", spec_path],
                            capture_output=True, text=True, env=env, timeout=timeout_s,
                            check=False)
    except subprocess.TimeoutExpired as e:
      raise ExportError(f"QAT worker exceeded timeout_s={timeout_s}") from e
    if proc.returncode != 0:
      raise ExportError(f"QAT worker failed (exit code {proc.returncode}):\n"
                        f"{proc.stderr[-_STDERR_TAIL:]}")
  return output_path


def read_qat_info(tflite_path):
  """The info JSON written next to a QAT ``.tflite`` file (losses, output-only layers...)."""
  with open(os.fspath(tflite_path) + ".json") as f:
    return json.load(f)
