"""Running exported depth models: LiteRT (TFLite) interpreter and SavedModel, one interface.

Both runners take float32 RGB images in [0, 1], (N, H_in, W_in, 3), and return depth in metres,
float32 (N, H_in, W_in, 1). Images at another size than the model's are resized to it (bilinear)
and the prediction is resized back as DISPARITY (bilinear) and inverted, the KITTI evaluation
convention (shared/docs/reference-conventions.md), exactly as the SavedModel's serving signature.
"""

import os
import time

import numpy as np
import tensorflow as tf

from export._common import check_images
from tfdepth.data import augment
from tfdepth.errors import DataError, InvalidInputError

# Smallest depth (metres) inverted to disparity when resizing a prediction back: avoids 1/0 for
# a ReLU depth head that outputs 0. Monodepth2's min_depth (disp_to_depth, 0.1 m).
MIN_DEPTH_FOR_RESIZE = 0.1
# Un-timed runs before latency timing (first invocations allocate and warm caches).
DEFAULT_WARMUP_RUNS = 3


def latency_stats(times_s):
  """Summary of per-run wall times (seconds) in milliseconds: median, p10, p90, mean, runs."""
  ms = np.asarray(times_s, np.float64) * 1e3
  return {"median_ms": float(np.median(ms)), "p10_ms": float(np.percentile(ms, 10)),
          "p90_ms": float(np.percentile(ms, 90)), "mean_ms": float(ms.mean()),
          "num_runs": int(ms.size)}


def _check_num_runs(num_runs):
  if isinstance(num_runs, bool) or not isinstance(num_runs, int) or num_runs < 1:
    raise InvalidInputError(f"num_runs must be a positive int, got {num_runs!r}")


def _resize_back(depth, out_hw):
  """Depth (N, h, w, 1) -> (N, H, W, 1) by bilinear resizing of the disparity."""
  if tuple(depth.shape[1:3]) == tuple(out_hw):
    return depth
  disp = 1.0 / np.maximum(depth, MIN_DEPTH_FOR_RESIZE)
  disp = tf.image.resize(disp, out_hw, method="bilinear").numpy()
  return (1.0 / disp).astype(np.float32)


# Ops that convert between float and integer tensors inside a quantised graph.
CONVERSION_OPS = ("QUANTIZE", "DEQUANTIZE")
# Op name of a delegate (XNNPACK) partition in `Interpreter._get_ops_details()`.
_DELEGATE_OP = "DELEGATE"


def interpreter_for(path_or_bytes, num_threads=None):
  """A LiteRT ``Interpreter`` (tensors not allocated) of a ``.tflite`` path or flatbuffer bytes.

  Raises:
    InvalidInputError: empty bytes. DataError: no file at the path.
  """
  from ai_edge_litert.interpreter import Interpreter  # pylint: disable=g-import-not-at-top
  if isinstance(path_or_bytes, (bytes, bytearray)):
    if not path_or_bytes:
      raise InvalidInputError("path_or_bytes is an empty bytes object; expected a flatbuffer")
    return Interpreter(model_content=bytes(path_or_bytes), num_threads=num_threads)
  path = os.fspath(path_or_bytes)
  if not os.path.isfile(path):
    raise DataError(f"no TFLite file at {path!r}")
  return Interpreter(model_path=path, num_threads=num_threads)


def op_summary(path_or_bytes):
  """Op types of a TFLite model as LiteRT prepares it (XNNPACK partitions included).

  Args:
    path_or_bytes: ``.tflite`` path or flatbuffer bytes.
  Returns:
    dict with ``op_counts`` ``{op name: count}`` of the model's own ops (delegate nodes left
    out), ``float_ops`` ``{op name: count}`` of compute ops whose first input is float32 (for an
    int8 model: the ops left unquantised; the float I/O ``QUANTIZE`` / ``DEQUANTIZE`` excluded),
    ``num_quantize`` / ``num_dequantize``, and ``num_delegate_partitions`` (XNNPACK subgraphs
    after `allocate_tensors`: 1 when the delegate runs the whole graph; every op it cannot run
    splits the graph).
  """
  interpreter = interpreter_for(path_or_bytes)
  interpreter.allocate_tensors()
  dtypes = {t["index"]: t["dtype"] for t in interpreter.get_tensor_details()}
  counts, float_ops, partitions = {}, {}, 0
  for op in interpreter._get_ops_details():  # pylint: disable=protected-access
    name = op["op_name"]
    if name == _DELEGATE_OP:
      partitions += 1
      continue
    counts[name] = counts.get(name, 0) + 1
    first = next((i for i in op["inputs"] if i >= 0), None)
    if (name not in CONVERSION_OPS and first is not None
        and dtypes.get(first) == np.float32):
      float_ops[name] = float_ops.get(name, 0) + 1
  return {"op_counts": dict(sorted(counts.items())), "float_ops": dict(sorted(float_ops.items())),
          "num_quantize": counts.get("QUANTIZE", 0), "num_dequantize": counts.get("DEQUANTIZE", 0),
          "num_delegate_partitions": partitions}


def quantize_input(image, detail):
  """float32 [0, 1] ``image`` as the interpreter input ``detail`` (`get_input_details()[i]`)
  takes it: unchanged for a float32 input, else rounded with its scale / zero point and clipped
  to the integer dtype's range."""
  dtype = detail["dtype"]
  if dtype == np.float32:
    return image
  scale, zero_point = detail["quantization"]
  info = np.iinfo(dtype)
  q = np.round(image / scale + zero_point)
  return np.clip(q, info.min, info.max).astype(dtype)


class _Runner:
  """Shared predict / latency logic; subclasses implement `_run_native(images (N,H,W,3))`."""

  input_size = None
  runs_in_calling_thread = False

  def predict(self, images):
    """float32 [0, 1] images (N, H_in, W_in, 3) -> depth float32 (N, H_in, W_in, 1) metres."""
    images = check_images(images)
    in_hw = images.shape[1:3]
    if tuple(in_hw) != tuple(self.input_size):
      images = augment.resize_images(images, *self.input_size).numpy()
    return _resize_back(self._run_native(images), in_hw)

  def latency(self, num_runs, warmup=DEFAULT_WARMUP_RUNS):
    """Times ``num_runs`` single-image inferences at model size (after ``warmup`` runs).

    Returns:
      dict ``latency_stats`` of wall time: ``median_ms``, ``p10_ms``, ``p90_ms``, ``mean_ms``,
      ``num_runs``; for a runner whose whole inference runs in the calling thread
      (``runs_in_calling_thread``: a 1-thread LiteRT interpreter) also ``median_cpu_ms``, the
      median CPU time of that thread, which other processes competing for the cores do not
      inflate (wall time on a shared machine is an upper bound).
    """
    _check_num_runs(num_runs)
    image = np.random.default_rng(0).uniform(
        size=(1,) + tuple(self.input_size) + (3,)).astype(np.float32)
    for _ in range(warmup):
      self._run_native(image)
    times, cpu_times = [], []
    for _ in range(num_runs):
      start, cpu_start = time.perf_counter(), time.thread_time()
      self._run_native(image)
      cpu_times.append(time.thread_time() - cpu_start)
      times.append(time.perf_counter() - start)
    stats = latency_stats(times)
    if self.runs_in_calling_thread:
      stats["median_cpu_ms"] = float(np.median(cpu_times) * 1e3)
    return stats


class LiteRTRunner(_Runner):
  """Runs a TFLite flatbuffer with `ai_edge_litert.interpreter.Interpreter`.

  Args:
    path_or_bytes: path to a ``.tflite`` file or the flatbuffer bytes; the model has one input
      (1, H, W, 3) and one output (1, H, W, 1), float32 or int8/uint8 quantised.
    num_threads: CPU threads of the interpreter (positive int).
  """

  def __init__(self, path_or_bytes, num_threads=1):
    if isinstance(num_threads, bool) or not isinstance(num_threads, int) or num_threads < 1:
      raise InvalidInputError(f"num_threads must be a positive int, got {num_threads!r}")
    self._interpreter = interpreter_for(path_or_bytes, num_threads)
    self._interpreter.allocate_tensors()
    inputs = self._interpreter.get_input_details()
    outputs = self._interpreter.get_output_details()
    if len(inputs) != 1 or len(outputs) != 1:
      raise InvalidInputError(
          f"expected a model with 1 input and 1 output, got {len(inputs)} and {len(outputs)}")
    self._input, self._output = inputs[0], outputs[0]
    shape = tuple(self._input["shape"])
    if len(shape) != 4 or shape[0] != 1 or shape[3] != 3:
      raise InvalidInputError(f"expected model input (1, H, W, 3), got {shape}")
    self.input_size = (int(shape[1]), int(shape[2]))
    self.num_threads = num_threads
    # With one thread, LiteRT and its XNNPACK delegate run every op in the invoking thread.
    self.runs_in_calling_thread = num_threads == 1

  @property
  def input_details(self):
    """The interpreter's input tensor details (dtype, shape, quantization)."""
    return dict(self._input)

  @property
  def output_details(self):
    """The interpreter's output tensor details (dtype, shape, quantization)."""
    return dict(self._output)

  def _quantize(self, image):
    return quantize_input(image, self._input)

  def _dequantize(self, out):
    if self._output["dtype"] == np.float32:
      return out.astype(np.float32)
    scale, zero_point = self._output["quantization"]
    return ((out.astype(np.float32) - zero_point) * scale).astype(np.float32)

  def _run_native(self, images):
    out = []
    for image in images:
      self._interpreter.set_tensor(self._input["index"], self._quantize(image[np.newaxis]))
      self._interpreter.invoke()
      out.append(self._dequantize(self._interpreter.get_tensor(self._output["index"])))
    return np.concatenate(out, axis=0)


class SavedModelRunner(_Runner):
  """Runs the ``native`` signature of a SavedModel written by `export.saved_model`.

  Args:
    path: export directory.
    num_threads: ``None`` keeps TensorFlow's thread pools; an int sets intra- and inter-op
      parallelism, which TensorFlow only allows before its runtime starts: in a process that
      already ran TensorFlow ops this raises `InvalidInputError` (measure in a fresh process,
      as `export.report` does).
  """

  def __init__(self, path, num_threads=None):
    from export.saved_model import load_saved_model  # pylint: disable=g-import-not-at-top
    if num_threads is not None:
      if isinstance(num_threads, bool) or not isinstance(num_threads, int) or num_threads < 1:
        raise InvalidInputError(f"num_threads must be None or a positive int, got "
                                f"{num_threads!r}")
      try:
        tf.config.threading.set_intra_op_parallelism_threads(num_threads)
        tf.config.threading.set_inter_op_parallelism_threads(num_threads)
      except RuntimeError as e:
        if tf.config.threading.get_intra_op_parallelism_threads() != num_threads:
          raise InvalidInputError(
              f"num_threads={num_threads} cannot be applied: the TensorFlow runtime of this "
              f"process is already initialised ({e}); run in a fresh process") from None
    self.num_threads = num_threads
    self._loaded = load_saved_model(path)
    self.metadata = self._loaded.metadata
    self.input_size = tuple(self._loaded.input_size)

  def _run_native(self, images):
    return self._loaded.native(images)["depth"].numpy()
