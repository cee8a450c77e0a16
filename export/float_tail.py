"""Full-integer TFLite with the depth model's output tail in float (selective quantisation).

A depth network ends with a per-pixel map from its last convolution's output (the "head") to
metres, e.g. Monodepth2's ``disp_to_depth`` (Godard et al. 2019): ``depth = 1 / (1/max +
(1/min - 1/max) * sigmoid(logit))`` over 0.1..100 m, or FastDepth's ``sigmoid(logit) * 80 m``.
Fully quantised, that tail loses most of the head's precision:

* TFLite's int8 ``LOGISTIC`` has a FIXED output quantisation, scale 1/256 and zero point -128
  (the converter cannot calibrate it), so the sigmoid's output takes 256 values: with Monodepth2's
  range a 14 m pixel (sigmoid 0.0062) can only become 20.4 m (1/256) or 11.4 m (2/256); FastDepth's
  ``sigmoid * 80`` has a 0.31 m step at every depth (6 % at 5 m);
* an int8 tensor holds 256 evenly spaced values, so the linear int8 depth (or the scaled
  disparity that ``DIV`` inverts) has a fixed step in metres (or 1/m) over a range of three
  decades: coarse at one end; and the quantised ``DIV`` fails at run time when a divisor rounds to
  its zero point (LiteRT ``div.cc``: ``data[i] != zero_point``).

The head's output itself (the logits) is a fine int8 tensor: its calibrated step in logit is a
bounded RELATIVE step in depth, |d ln(depth) / d logit| = b s (1 - s) / (a + b s) <= 1 for
``disp_to_depth`` (a = 1/max, b = 1/min - 1/max, s = sigmoid(logit)). So the tail (a handful of
ops on a one-channel map: negligible work next to the network) is kept in float and the rest of
the graph stays int8.

The tail, found on the converter's calibrated TFLite graph (`output_tail`): walking back from
each model output, every op whose only non-constant input has the same shape as its output (a
per-pixel op: ``LOGISTIC``, ``MUL``, ``ADD``, ``DIV``, a 1x1 ``DEPTHWISE_CONV_2D`` scaling...),
up to the first op that is not (the head convolution, which changes the number of channels).
An activation fused into the head convolution (``CONV_2D`` + ``RELU``) is part of the head, so a
ReLU head has an empty tail: nothing changes for it.

Mechanism: the converter calibrates the float graph (``_experimental_calibrate_only``, the
calibration step of its own full-integer path) and the MLIR quantiser
(``tensorflow.lite.python.convert.mlir_quantize``, the call that the converter's full-integer
path makes next) quantises it with the tail ops' output tensors in ``denylisted_nodes``: they stay
float, with a ``DEQUANTIZE`` in front. This is what the public
``tf.lite.experimental.QuantizationDebugger(converter=..., debug_options=QuantizationDebugOptions(
denylisted_nodes=...)).get_nondebug_quantized_model()`` does, without its extra debug model and
with the integer input type kept (the debugger's model has float I/O). Only builtin ops are used;
LiteRT's XNNPACK delegate runs the float tail ops (``LOGISTIC``, ``MUL``, ``ADD``, ``DIV``).
For a QAT model (fake-quantisation nodes) the converter quantises the fake-quantised part while
it calibrates, including a ``LOGISTIC`` whose input is fake-quantised; so the QAT worker leaves
the tail's input without fake quantisation (`export._qat_worker`), the tail is then calibrated
float and kept so here.

The output of a model with a float tail is float32 metres; ``io_dtype`` then sets the input
alone (uint8 / int8 / float32 images).
"""

import numpy as np
import tensorflow as tf

from export import litert_runner
from export._common import ExportError

def _graph(model):
  """``(ops, tensors, outputs, producers, inputs)`` of a TFLite model (subgraph 0), via LiteRT.

  ``model``: flatbuffer bytes or a ``.tflite`` path.
  """
  interpreter = litert_runner.interpreter_for(model)
  tensors = {t["index"]: t for t in interpreter.get_tensor_details()}
  ops = interpreter._get_ops_details()  # pylint: disable=protected-access
  produced = {o: op for op in ops for o in op["outputs"]}
  inputs = {t["index"] for t in interpreter.get_input_details()}
  outputs = [t["index"] for t in interpreter.get_output_details()]
  return ops, tensors, outputs, produced, inputs


def _dynamic_inputs(op, produced, inputs):
  """Input tensors of ``op`` computed by the graph (not constants): other ops' outputs or model
  inputs."""
  return [i for i in op["inputs"] if i >= 0 and (i in produced or i in inputs)]


def output_tail(model_content):
  """The per-pixel ops between the head and each output of a float / calibrated TFLite model.

  Args:
    model_content: flatbuffer bytes or ``.tflite`` path (float32, or calibrated by the
      converter).
  Returns:
    list of ``{"op": op name, "output": output tensor name}``, output first, head side last
    (empty when the head convolution produces the output itself, e.g. with a fused ReLU).
  """
  ops, tensors, outputs, produced, inputs = _graph(model_content)
  tail, seen = [], set()
  for out in outputs:
    shape = tuple(tensors[out]["shape"])
    tensor = out
    while tensor in produced and tensor not in seen:
      op = produced[tensor]
      dynamic = _dynamic_inputs(op, produced, inputs)
      if (len(set(dynamic)) != 1 or tuple(tensors[dynamic[0]]["shape"]) != shape
          or op["op_name"] in litert_runner.CONVERSION_OPS):
        break
      seen.add(tensor)
      tail.append({"op": op["op_name"], "output": tensors[tensor]["name"]})
      tensor = dynamic[0]
  return tail


def _private(obj, name):
  if not hasattr(obj, name):
    raise ExportError(
        f"this TensorFlow ({tf.__version__}) has no {type(obj).__name__}.{name}, which the int8 "
        "conversion with a float output tail uses (written for TF 2.21); convert with "
        "float_tail=False")
  return getattr(obj, name)


def quantize_with_float_tail(converter, io_dtype=tf.float32):
  """Full-integer conversion with the output tail (`output_tail`) left in float.

  Args:
    converter: a `tf.lite.TFLiteConverter` configured for full-integer quantisation
      (``optimizations``, ``representative_dataset``, ``TFLITE_BUILTINS_INT8``); a model with
      fake-quantisation nodes (QAT) works too: their ranges are kept, the rest is calibrated.
    io_dtype: input dtype (``tf.float32``, ``tf.int8`` or ``tf.uint8``); also the output dtype
      when the tail is empty, else the output is float32.
  Returns:
    ``(flatbuffer bytes, tail)`` with ``tail`` as `output_tail` returns it (the ops kept float).
  """
  from tensorflow.lite.python import convert as convert_lib  # pylint: disable=g-import-not-at-top
  io_dtype = tf.as_dtype(io_dtype)
  _private(converter, "_experimental_calibrate_only")
  mlir_quantize = _private(convert_lib, "mlir_quantize")
  converter._experimental_calibrate_only = True  # pylint: disable=protected-access
  try:
    calibrated = converter.convert()
  finally:
    converter._experimental_calibrate_only = False  # pylint: disable=protected-access
  tail = output_tail(calibrated)
  # The arguments of the converter's own full-integer call (lite.py, ``_quantize``), plus the
  # denylist; the converter's per-channel settings are passed on.
  flatbuffer = mlir_quantize(
      calibrated,
      disable_per_channel=getattr(converter, "_experimental_disable_per_channel", False),
      input_data_type=io_dtype,
      output_data_type=tf.float32 if tail else io_dtype,
      denylisted_nodes=[t["output"] for t in tail] or None,
      disable_per_channel_for_dense_layers=getattr(
          converter, "_experimental_disable_per_channel_quantization_for_dense_layers", False))
  return bytes(flatbuffer), tail


def tail_input_quantization(model_content):
  """``(scale, zero_point)`` of the int8 tensor that a quantised model's float tail reads.

  ``model_content``: flatbuffer bytes or ``.tflite`` path.

  That tensor is the head's output (Monodepth2's disparity logits): its step bounds the
  quantisation error that reaches the tail. Walks back from the first output through the float
  tail to the ``DEQUANTIZE`` in front of it.

  Returns:
    ``(scale, zero_point)``, or None when the output is not computed by a float tail (a fully
    quantised or a float model).
  """
  _, tensors, outputs, produced, inputs = _graph(model_content)
  tensor = outputs[0]
  while tensor in produced and tensors[tensor]["dtype"] == np.float32:
    op = produced[tensor]
    dynamic = _dynamic_inputs(op, produced, inputs)
    if op["op_name"] == "DEQUANTIZE":
      return tuple(tensors[dynamic[0]]["quantization"]) if tensor != outputs[0] else None
    if len(set(dynamic)) != 1:
      return None
    tensor = dynamic[0]
  return None
