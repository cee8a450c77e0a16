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

Saturating activations (`tighten_saturating_inputs`, applied to the calibrated model before
``mlir_quantize``): the calibrator records each tensor's min / max, and an int8 tensor spreads
its 256 levels over that range. The input of an ``ELU`` (a separate op in TFLite: the conv before
it outputs an int8 tensor with the whole calibrated range; the converter then runs the ELU in
float between ``DEQUANTIZE`` and ``QUANTIZE``) can reach far below the point where the ELU
saturates at -1: on the export benchmark's Monodepth2-R18 (192x640, 174 training steps) the
decoder's ELU inputs calibrate to -3110..1854, -1867..781, ..., with 17-67 % of the values below
-8 (Keras percentiles on 32 calibration images). The negative part of such a range only buys
resolution for values that the ELU maps to -1 +- e^-8. So the calibrated minimum of an ELU input
is raised to ``SATURATION_INPUT_RANGE["ELU"]`` = -8: the clipped inputs change the ELU's output
by at most e^-8 = 3.4e-4, under 1/11 of the finest step an ELU output can have (its range holds
at least [-1, 0]: step >= 1/255), and a -3110..1854 range gets a 2.7x finer step. ``LOGISTIC``
/ ``TANH`` inputs are tightened likewise to [-8, 8] / [-4.5, 4.5] (output changes <= 3.4e-4 /
2.5e-4, under 1/11 and 1/31 of their fixed int8 output steps 1/256 and 1/128), but only where the
op's output is quantised: a float op (the output tail's sigmoid) keeps its full input range,
whose far end carries the far depths. Only tensors that feed nothing but the saturating op are
changed. The bound must be far smaller than the output step, not just below half of it: every
saturated input shares the same clipped value, so a clip error that moves -1 across a rounding
boundary shifts all of them by one output step at once. Measured on that Monodepth2 (64 test
images, uint8 input; Keras AbsRel 0.1793 / delta1 0.8317): calibrated ranges 0.2073 / 0.5837,
ELU inputs clipped at -8 0.1826 / 0.6863, clipped where e^m = half the ELU output's step 0.3520.
"""

import numpy as np
import tensorflow as tf

from export import litert_runner
from export._common import ExportError

# Input ranges past which a saturating activation's output no longer changes measurably
# (`tighten_saturating_inputs`): ``(min, max)`` of the calibrated input kept, None = unbounded.
# ELU(-8) = -1 + 3.4e-4; sigmoid(-8) = 3.4e-4; 1 - tanh(4.5) = 2.5e-4.
SATURATION_INPUT_RANGE = {"ELU": (-8.0, None), "LOGISTIC": (-8.0, 8.0), "TANH": (-4.5, 4.5)}

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


def elu_shift_adds(model_content):
  """Output tensor names of the ``ADD`` ops that shift an ``ELU``'s output (`export.rewrite.
  ShiftedELU`: an ``ADD`` whose only non-constant input is an ``ELU`` output).

  The converter has no int8 ``ELU``: it runs in float between ``DEQUANTIZE`` and ``QUANTIZE``.
  Quantised, the shift's ``ADD`` would read the ELU output as an int8 tensor over [-alpha, M],
  whose -alpha is not exact, the rounding the shift is there to avoid; `quantize_with_float_tail`
  keeps these ``ADD`` ops float with the ELU, so the ``QUANTIZE`` comes after the shift (floor 0).
  """
  ops, tensors, _, produced, inputs = _graph(model_content)
  names = []
  for op in ops:
    if op["op_name"] != "ADD":
      continue
    dynamic = _dynamic_inputs(op, produced, inputs)
    if len(dynamic) == 1 and dynamic[0] in produced and produced[dynamic[0]]["op_name"] == "ELU":
      names.append(tensors[op["outputs"][0]]["name"])
  return names


def _private(obj, name):
  if not hasattr(obj, name):
    raise ExportError(
        f"this TensorFlow ({tf.__version__}) has no {type(obj).__name__}.{name}, which the int8 "
        "conversion with a float output tail uses (written for TF 2.21); convert with "
        "float_tail=False")
  return getattr(obj, name)


def _builtin_op_names(model):
  """TFLite builtin op name per operator code index of a flatbuffer object (``ModelT``)."""
  from tensorflow.lite.python import schema_py_generated as schema  # pylint: disable=g-import-not-at-top
  names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
  return [names.get(max(c.builtinCode, c.deprecatedBuiltinCode)) for c in model.operatorCodes]


def tighten_saturating_inputs(calibrated, keep_float=()):
  """Clips the calibrated ranges of saturating activations' inputs (see the module docstring).

  Args:
    calibrated: flatbuffer bytes of a calibrated model (``_experimental_calibrate_only``).
    keep_float: names of output tensors of ops that stay float (``denylisted_nodes``): their
      inputs keep their ranges.
  Returns:
    ``(flatbuffer bytes, changes)`` with ``changes`` a list of ``{"op", "tensor", "min", "max",
    "calibrated_min", "calibrated_max"}`` (empty: the bytes are ``calibrated`` itself).
  """
  from tensorflow.lite.tools import flatbuffer_utils  # pylint: disable=g-import-not-at-top
  model = flatbuffer_utils.convert_bytearray_to_object(bytearray(calibrated))
  op_names = _builtin_op_names(model)
  keep_float = set(keep_float)
  changes = []
  for graph in model.subgraphs:
    consumers = {}
    for op in graph.operators:
      for i in op.inputs:
        consumers[i] = consumers.get(i, 0) + 1
    graph_io = set(graph.inputs) | set(graph.outputs)
    for op in graph.operators:
      name = op_names[op.opcodeIndex]
      if name not in SATURATION_INPUT_RANGE or len(op.inputs) != 1:
        continue
      out = graph.tensors[op.outputs[0]]
      if out.name.decode() in keep_float:
        continue
      index = op.inputs[0]
      tensor = graph.tensors[index]
      q = tensor.quantization
      if (consumers.get(index) != 1 or index in graph_io or q is None or q.min is None
          or q.max is None or len(q.min) != 1 or q.scale is not None and len(q.scale)):
        continue  # shared, graph I/O, per-channel or already quantised (QAT): left as it is
      lo, hi = SATURATION_INPUT_RANGE[name]
      old = (float(q.min[0]), float(q.max[0]))
      new = (old[0] if lo is None else max(old[0], lo), old[1] if hi is None else min(old[1], hi))
      if new != old:
        q.min = np.array([new[0]], np.float32)
        q.max = np.array([new[1]], np.float32)
        changes.append({"op": name, "tensor": tensor.name.decode(), "min": new[0],
                        "max": new[1], "calibrated_min": old[0], "calibrated_max": old[1]})
  if not changes:
    return calibrated, changes
  return bytes(flatbuffer_utils.convert_object_to_bytearray(model)), changes


def calibrate(converter):
  """The converter's calibrated float model (flatbuffer bytes): the float graph it quantises,
  with each tensor's calibrated min / max (``_experimental_calibrate_only``)."""
  _private(converter, "_experimental_calibrate_only")
  converter._experimental_calibrate_only = True  # pylint: disable=protected-access
  try:
    return bytes(converter.convert())
  finally:
    converter._experimental_calibrate_only = False  # pylint: disable=protected-access


# Range of the models' image input (float32 RGB in [0, 1]; tfdepth.models).
IMAGE_INPUT_RANGE = (0.0, 1.0)


def pin_input_range(calibrated, value_range=IMAGE_INPUT_RANGE):
  """Sets the calibrated range of the model's float inputs to ``value_range``.

  The calibrator records the min / max of the representative images, so the int8 / uint8 input
  got a scale of (their max - min) / 255: with calibration images whose brightest pixel is 0.6 a
  uint8 input level meant 0.6 / 255, raw camera bytes were misread and brighter pixels clipped.
  With [0, 1] the input is quantised exactly as 8-bit images are: uint8 scale 1/255 and zero point
  0 (int8: zero point -128), so a uint8 model takes camera bytes as they are, and every pixel
  value of such an image is represented exactly.

  Args:
    calibrated: flatbuffer bytes of a calibrated model (``_experimental_calibrate_only``).
    value_range: ``(lo, hi)`` of the input values.
  Returns:
    ``(flatbuffer bytes, changes)``: ``changes`` lists ``{"tensor", "calibrated_min",
    "calibrated_max"}`` per changed input; inputs that are already quantised (QAT fake
    quantisation) or carry no calibration statistics are left as they are.
  """
  from tensorflow.lite.tools import flatbuffer_utils  # pylint: disable=g-import-not-at-top
  model = flatbuffer_utils.convert_bytearray_to_object(bytearray(calibrated))
  changes = []
  for graph in model.subgraphs:
    for index in graph.inputs:
      tensor = graph.tensors[index]
      q = tensor.quantization
      if (q is None or q.min is None or q.max is None or len(q.min) != 1
          or (q.scale is not None and len(q.scale))):
        continue
      old = (float(q.min[0]), float(q.max[0]))
      if old != tuple(value_range):
        q.min = np.array([value_range[0]], np.float32)
        q.max = np.array([value_range[1]], np.float32)
        changes.append({"tensor": tensor.name.decode(), "calibrated_min": old[0],
                        "calibrated_max": old[1]})
  if not changes:
    return calibrated, changes
  return bytes(flatbuffer_utils.convert_object_to_bytearray(model)), changes


def quantize_with_float_tail(converter, io_dtype=tf.float32, bias_correction_images=None):
  """Full-integer conversion with the output tail (`output_tail`) left in float.

  Args:
    converter: a `tf.lite.TFLiteConverter` configured for full-integer quantisation
      (``optimizations``, ``representative_dataset``, ``TFLITE_BUILTINS_INT8``); a model with
      fake-quantisation nodes (QAT) works too: their ranges are kept, the rest is calibrated.
    io_dtype: input dtype (``tf.float32``, ``tf.int8`` or ``tf.uint8``); also the output dtype
      when the tail is empty, else the output is float32.
    bias_correction_images: optional float32 [0, 1] images: correct the head convolution's bias
      by the int8 - float shift measured on them (`export.bias_correction.correct_head_bias`;
      nothing changes without a tail).
  Returns:
    ``(flatbuffer bytes, tail)`` with ``tail`` as `output_tail` returns it (the ops kept float).
    The image input is quantised over [0, 1] (`pin_input_range`), not the calibration images'
    range.
  """
  from tensorflow.lite.python import convert as convert_lib  # pylint: disable=g-import-not-at-top
  io_dtype = tf.as_dtype(io_dtype)
  mlir_quantize = _private(convert_lib, "mlir_quantize")
  calibrated = calibrate(converter)
  calibrated, _ = pin_input_range(calibrated)
  tail = output_tail(calibrated)
  calibrated, _ = tighten_saturating_inputs(calibrated, [t["output"] for t in tail])
  float_nodes = [t["output"] for t in tail] + elu_shift_adds(calibrated)
  # The arguments of the converter's own full-integer call (lite.py, ``_quantize``), plus the
  # denylist; the converter's per-channel settings are passed on.
  flatbuffer = mlir_quantize(
      calibrated,
      disable_per_channel=getattr(converter, "_experimental_disable_per_channel", False),
      input_data_type=io_dtype,
      output_data_type=tf.float32 if tail else io_dtype,
      denylisted_nodes=float_nodes or None,
      disable_per_channel_for_dense_layers=getattr(
          converter, "_experimental_disable_per_channel_quantization_for_dense_layers", False))
  flatbuffer = bytes(flatbuffer)
  if bias_correction_images is not None and tail:
    from export import bias_correction  # pylint: disable=g-import-not-at-top
    flatbuffer, _ = bias_correction.correct_head_bias(flatbuffer, calibrated,
                                                      bias_correction_images)
  return flatbuffer, tail


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
