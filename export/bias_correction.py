"""Empirical bias correction of a full-integer model's head convolution.

Rounding a layer's weights to int8 adds an error ``eps = W_q - W`` whose output effect
``eps @ x`` is not zero-mean when the layer's inputs are not: E[eps @ x] = eps @ E[x], a constant
shift per output channel (Nagel, van Baalen, Blankevoort, Welling 2019, "Data-Free Quantization
Through Weight Equalization and Bias Correction", ICCV, Sec. 4.2; their "empirical bias
correction" measures the shift on data). Shifts of earlier layers reach the head too. Before the
depth model's output tail (`export.float_tail`: a sigmoid and ``disp_to_depth``), a constant
shift of the disparity logits is a constant factor on depth over most of the range: on the export
benchmark's Monodepth2-R18 (192x640) the int8 logits are 0.27 above the float model's on average
(std of the difference 0.14), the int8 depths ~19 % nearer everywhere.

`correct_head_bias` measures that shift on calibration images, per output channel of the head
convolution (the op whose int8 output the float tail dequantises), as the mean of (int8 output,
dequantised) - (float output) over every pixel, and subtracts it from the convolution's int32
bias (in units of its quantisation scale, input scale x weight scale of the channel). Everything
else in the flatbuffer stays byte for byte. Float outputs come from the calibrated float model
that the converter quantised (the same graph and tensor names), both models run by LiteRT's
builtin kernels with every tensor kept (``experimental_preserve_all_tensors``).

A model without a float tail (a ReLU head: the head's fused activation produces the output) is
returned unchanged: the shift of a rectified output is not a bias shift.
"""

import numpy as np

from export import litert_runner
from export._common import ExportError
from tfdepth.errors import InvalidInputError

# Calibration images used to measure the shift (the first ones of the representative dataset).
# The shift is a mean over every pixel of each image: on the export benchmark's Monodepth2 it is
# 0.268 on 32 train images and 0.262 on the 64 test images (logit units).
DEFAULT_NUM_IMAGES = 32
# Ops whose third input is an int32 bias added to each output channel.
_BIASED_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D")
_INT32 = np.iinfo(np.int32)


def _preserving_interpreter(model_content):
  from ai_edge_litert.interpreter import Interpreter, OpResolverType  # pylint: disable=g-import-not-at-top
  interpreter = Interpreter(
      model_content=bytes(model_content), experimental_preserve_all_tensors=True,
      experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
  interpreter.allocate_tensors()
  return interpreter


def _set_input(interpreter, image):
  detail = interpreter.get_input_details()[0]
  interpreter.set_tensor(detail["index"],
                         litert_runner.quantize_input(image[np.newaxis].astype(np.float32), detail))


def _tensor_index(interpreter, name):
  for t in interpreter.get_tensor_details():
    if t["name"] == name:
      return t["index"]
  raise ExportError(f"bias correction: no tensor {name!r} in the calibrated float model")


def find_head(quantized):
  """The head convolution of a quantised model with a float tail, or None.

  Returns:
    ``{"op_index", "op", "output", "output_name", "bias", "scale", "zero_point"}`` (tensor
    indices; scale / zero point of the int8 head output), or None when the first output is not
    computed by a float tail after a ``DEQUANTIZE`` of a ``CONV_2D`` / ``DEPTHWISE_CONV_2D`` with
    a bias.
  """
  # pylint: disable=protected-access
  from export import float_tail  # pylint: disable=g-import-not-at-top
  ops, tensors, outputs, produced, inputs = float_tail._graph(quantized)
  tensor = outputs[0]
  while tensor in produced and tensors[tensor]["dtype"] == np.float32:
    op = produced[tensor]
    dynamic = float_tail._dynamic_inputs(op, produced, inputs)
    if len(set(dynamic)) != 1:
      return None
    if op["op_name"] == "DEQUANTIZE":
      if tensor == outputs[0]:
        return None          # the model's own output dequantised: no float tail
      head_out = dynamic[0]
      head = produced.get(head_out)
      if head is None or head["op_name"] not in _BIASED_OPS or len(head["inputs"]) < 3:
        return None
      bias = head["inputs"][2]
      if bias < 0 or tensors[bias]["dtype"] != np.int32:
        return None
      scale, zero_point = tensors[head_out]["quantization"]
      return {"op_index": head["index"], "op": head["op_name"], "output": head_out,
              "output_name": tensors[head_out]["name"], "bias": bias, "scale": float(scale),
              "zero_point": int(zero_point)}
    tensor = dynamic[0]
  return None


def head_output_error(quantized, calibrated, images, head=None):
  """Per-channel mean and std of (int8 head output, dequantised) - (float head output).

  Args:
    quantized: flatbuffer bytes of the full-integer model.
    calibrated: flatbuffer bytes of the calibrated float model it was quantised from.
    images: sequence of float32 [0, 1] images (H, W, 3) at the model's input size.
    head: `find_head(quantized)` (computed when None).
  Returns:
    ``(mean (C,), std (C,))`` float64 over every pixel of every image.
  """
  head = head or find_head(quantized)
  if head is None:
    raise InvalidInputError("bias correction needs an int8 model whose output tail is float "
                            "(export.float_tail); this model has none")
  q_interp = _preserving_interpreter(quantized)
  f_interp = _preserving_interpreter(calibrated)
  f_index = _tensor_index(f_interp, head["output_name"])
  diffs = []
  for image in images:
    _set_input(q_interp, image)
    q_interp.invoke()
    _set_input(f_interp, image)
    f_interp.invoke()
    q = (q_interp.get_tensor(head["output"]).astype(np.float64) - head["zero_point"]) * head["scale"]
    f = f_interp.get_tensor(f_index).astype(np.float64)
    if q.shape != f.shape:
      raise ExportError(f"bias correction: head output {head['output_name']!r} is {q.shape} in "
                        f"the int8 model, {f.shape} in the float one")
    diffs.append((q - f).reshape(-1, q.shape[-1]))
  if not diffs:
    raise InvalidInputError("bias correction needs at least one calibration image, got none")
  diffs = np.concatenate(diffs)
  return diffs.mean(axis=0), diffs.std(axis=0)


def correct_head_bias(quantized, calibrated, images, num_images=DEFAULT_NUM_IMAGES):
  """``quantized`` with its head convolution's bias corrected by the measured mean shift.

  Args:
    quantized: flatbuffer bytes of a full-integer model with a float output tail.
    calibrated: flatbuffer bytes of the calibrated float model it was quantised from
      (``_experimental_calibrate_only``; `export.float_tail.quantize_with_float_tail`).
    images: float32 [0, 1] images (H, W, 3) or (1, H, W, 3) at the model's input size; the first
      ``num_images`` are used.
    num_images: positive int.
  Returns:
    ``(flatbuffer bytes, info)``; ``info`` is None when the model has no float tail (returned
    unchanged), else ``{"tensor", "num_images", "mean_error" (per channel, before),
    "std_error", "bias_delta" (int32 units)}``.
  Raises:
    InvalidInputError: no images or a bad ``num_images``.
  """
  if isinstance(num_images, bool) or not isinstance(num_images, int) or num_images < 1:
    raise InvalidInputError(f"num_images must be a positive int, got {num_images!r}")
  head = find_head(quantized)
  if head is None:
    return quantized, None
  picked = []
  for image in images:
    image = np.asarray(image, np.float32)
    picked.append(image[0] if image.ndim == 4 else image)
    if len(picked) == num_images:
      break
  mean, std = head_output_error(quantized, calibrated, picked, head)

  from tensorflow.lite.tools import flatbuffer_utils  # pylint: disable=g-import-not-at-top
  model = flatbuffer_utils.convert_bytearray_to_object(bytearray(quantized))
  graph = model.subgraphs[0]
  bias_tensor = graph.tensors[head["bias"]]
  buffer = model.buffers[bias_tensor.buffer]
  bias = np.frombuffer(bytes(bytearray(buffer.data)), dtype="<i4").astype(np.int64)
  scales = np.asarray(bias_tensor.quantization.scale, np.float64)
  if scales.size == 1:
    scales = np.full(bias.shape, scales[0])
  if bias.shape != mean.shape or scales.shape != mean.shape:
    raise ExportError(f"bias correction: head bias has {bias.shape[0]} channels and "
                      f"{scales.size} scales, its output {mean.shape[0]} channels")
  delta = np.round(mean / scales).astype(np.int64)
  corrected = np.clip(bias - delta, _INT32.min, _INT32.max).astype("<i4")
  buffer.data = np.frombuffer(corrected.tobytes(), np.uint8)
  info = {"tensor": head["output_name"], "num_images": len(picked),
          "mean_error": mean.tolist(), "std_error": std.tolist(), "bias_delta": (-delta).tolist()}
  return bytes(flatbuffer_utils.convert_object_to_bytearray(model)), info


__all__ = ["DEFAULT_NUM_IMAGES", "correct_head_bias", "find_head", "head_output_error"]
