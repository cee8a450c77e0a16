"""QAT worker: the tf_keras / tensorflow-model-optimization world, run in its own process.

Run by `export.qat.quantization_aware_training` as ``python -m export._qat_worker SPEC.json``;
never import this module in a process that holds Keras 3 objects (tfmot 0.8 works on tf_keras
2.x models only, and the two Keras libraries must not exchange layers or tensors).

SPEC.json keys: ``builder`` ("module:function", called as ``fn(layers=tf_keras.layers,
**builder_kwargs)``), ``builder_kwargs``, ``weights`` (.npz of the Keras 3 model's
``get_weights()``, keys ``w0000``...), ``data`` (.npz with ``images`` float32 (N, H, W, 3) in
[0, 1] and ``depth`` float32 (N, H, W, 1) metres, 0 = invalid), ``output`` (.tflite path),
``info`` (.json path), ``epochs``, ``batch_size``, ``learning_rate``, ``target_sparsity``
(null or in (0, 1)), ``prune_epochs``, ``io_dtype`` ("uint8" | "int8" | "float32"), ``seed``.

Layer handling (tfmot 0.8.1 ``Default8BitQuantizeRegistry``): Conv2D, DepthwiseConv2D (per-axis
int8 weights), ReLU, Add, Concatenate, ZeroPadding2D, Cropping2D (the reflection padding of
Monodepth2's tf_keras twin) are supported;
BatchNormalization after a convolution is folded by the default transforms. ``Rescaling``,
``Lambda`` (outside the output tail, below), ``Activation`` with a function the registry refuses
(Monodepth2's ELU) and any other layer the registry does not support get
`OutputOnlyQuantizeConfig` (no weight quantisation, an 8-bit moving-average
quantiser on the output: the scheme the registry uses for Add / ReLU), listed in the info JSON
under ``output_only_layers``. Layers that only copy values of one tensor (nearest
``UpSampling2D``; ``Concatenate`` of crops of one tensor, i.e. reflection padding) get
`SameScaleQuantizeConfig`: no quantiser, their output keeps their input's scale. Dict outputs
(``{"depth": ...}``) are kept by ``quantize_apply``.

The depth model's output tail (`float_tail_layers`: the per-pixel layers after the head
convolution, Monodepth2's sigmoid + ``disp_to_depth`` Lambda, FastDepth's sigmoid x max_depth)
gets `FloatQuantizeConfig` (no quantiser: it is not fake-quantised during QAT) and stays float in
the converted model (`export.float_tail.quantize_with_float_tail`, the same selective quantisation
as post-training ``tflite_int8``); the head's output (logits) is the last int8 tensor, the model
outputs float32 metres. A fully quantised ``disp_to_depth`` ends with an int8 ``DIV`` whose
divisor can round to its zero point: LiteRT then fails at run time (``div.cc``
``data[i] != zero_point``). The head (the layer feeding the tail) keeps its weight quantisation
but gets no output quantiser (`_head_config`); its int8 output range is calibrated at conversion.
Listed in the info JSON under ``float_tail_layers`` (and the TFLite ops under
``float_tail_ops``); the ``*_output_range`` entries are then None.

Saturating activations (`_clip_saturating_input_ranges`): the fake-quantisation range of a tensor
that feeds only an ELU / sigmoid / tanh is clipped where the activation saturates
(`export.float_tail.SATURATION_INPUT_RANGE`, ELU inputs >= -8), after the range initialisation
and again after fine-tuning; the count is in the info JSON under
``clipped_saturating_input_ranges``. Monodepth2-R18's decoder convolutions feeding ELUs
calibrate to ranges such as -3110..1854, so their int8 step was ~19 and the fine-tuning trained
through that noise: export benchmark (``--models=monodepth2 --formats=tflite_qat
--qat_train_images=128``) QAT AbsRel 0.2401 / delta1 0.5855 before, 0.1287 / 0.8534 with the
clipping (Keras 0.1793 / 0.8317: QAT fine-tunes on ground truth, so it also trains the briefly
trained float model further).
"""

import importlib
import json
import re
import sys
import time

import numpy as np
import tensorflow as tf
import tf_keras
import tensorflow_model_optimization as tfmot
from tensorflow_model_optimization.python.core.quantization.keras import quant_ops
from tensorflow_model_optimization.python.core.quantization.keras.default_8bit import (
    default_8bit_quantize_registry)
from tf_keras.src.saving import serialization_lib

from export import float_tail

_Q = tfmot.quantization.keras
# Bits of the activation quantiser (the default 8-bit scheme of tfmot and of TFLite int8).
ACTIVATION_BITS = 8
# Pruning mask update frequency in steps (tfmot ConstantSparsity default is 100; the few
# fine-tuning steps here need an update every step so the target is reached).
PRUNING_FREQUENCY = 1
# Images of the range-initialisation pass (one batch, see `_initialize_ranges`): the activation
# ranges become their min / max, as TFLite's post-training calibrator sets them.
RANGE_INIT_IMAGES = 16
# Names of activation-range variables of tfmot quantizers ("<layer>/post_activation_min:0",
# "<layer>/output_max:0"); weight quantizers use "kernel_min" etc.
_ACTIVATION_RANGE_RE = re.compile(r"(?:post_activation|output)_(min|max)(?::\d+)?$")


class OutputOnlyQuantizeConfig(_Q.QuantizeConfig):
  """Quantises only a layer's output (8-bit, asymmetric, per-tensor moving average)."""

  def get_weights_and_quantizers(self, layer):
    return []

  def get_activations_and_quantizers(self, layer):
    return []

  def set_quantize_weights(self, layer, quantize_weights):
    pass

  def set_quantize_activations(self, layer, quantize_activations):
    pass

  def get_output_quantizers(self, layer):
    return [_Q.quantizers.MovingAverageQuantizer(
        num_bits=ACTIVATION_BITS, per_axis=False, symmetric=False, narrow_range=False)]

  def get_config(self):
    return {}


class SameScaleQuantizeConfig(OutputOnlyQuantizeConfig):
  """No quantiser at all: the layer's output keeps its input's quantisation parameters.

  For layers that copy values of one tensor (`_copies_values`: nearest ``UpSampling2D``, the
  crops + ``Concatenate`` of reflection padding), whose output range is exactly their input's.
  tfmot's registry gives them an output quantiser of their own; the range it learns from
  fake-quantised (nudged) inputs differs from the input's in the last float bits (seen: scales
  0.00337304578 vs 0.00337304812 after Monodepth2's ELU at 64x192), and the converter then
  rejects TFLite's ``RESIZE_NEAREST_NEIGHBOR`` / ``CONCATENATION``, which require one scale for
  input and output ("quantization parameters violate the same scale constraint").
  """

  def get_output_quantizers(self, layer):
    return []


class FloatQuantizeConfig(SameScaleQuantizeConfig):
  """No quantiser: for the output tail, which the converted model runs in float.

  Its outputs carry no fake quantisation, so QAT trains the network with the float tail it runs
  with; the converter calibrates those tensors, and `export.float_tail` keeps the tail's ops out
  of quantisation.
  """


def masked_l1(y_true, y_pred):
  """Mean |pred - gt| over pixels with gt > 0 (metres); 0 for a batch without valid pixels."""
  mask = tf.cast(y_true > 0.0, tf.float32)
  return tf.reduce_sum(mask * tf.abs(y_pred - y_true)) / tf.maximum(tf.reduce_sum(mask), 1.0)


def _freeze_batch_norm(model):
  """Sets every BatchNormalization layer non-trainable: tf_keras then runs it in inference mode.

  Fine-tuning batches are small, so batch statistics are noisy and would overwrite the trained
  moving averages; Jacob et al. 2018 (Sec. 3.2) likewise switch BN to the long-term moving
  averages for quantised training. Batch norms stay foldable into the preceding convolutions.
  """
  for layer in model.layers:
    if isinstance(layer, tf_keras.layers.BatchNormalization):
      layer.trainable = False
  return model


def _initialize_ranges(qat, images):
  """Sets every moving-average activation range to its min / max on ``images`` (one batch).

  tfmot 0.8's `MovingAverageQuantizer` starts every activation range at [-6, 6] and moves it by
  an exponential moving average with the hard-coded decay 0.999 per training step, so a
  fine-tuning of a few hundred steps keeps ranges near [-6, 6]: a depth output in (0, 80) m
  would be clipped at ~6-10 m in the converted model. One forward pass in training mode with
  decay 0 (the EMA then assigns the batch range itself) starts QAT from the calibrated ranges
  instead (Jacob et al. 2018, Sec. 3.1, collect ranges during training; Krishnamoorthi 2018,
  "Quantizing deep convolutional networks for efficient inference", Sec. 3.2: QAT from a
  calibrated model). Batch norms are frozen (inference mode), so nothing else changes.
  """
  original = quant_ops.MovingAvgQuantize

  def no_decay(*args, **kwargs):
    kwargs["ema_decay"] = 0.0
    return original(*args, **kwargs)

  quant_ops.MovingAvgQuantize = no_decay
  try:
    qat(tf.constant(images[:RANGE_INIT_IMAGES]), training=True)
  finally:
    quant_ops.MovingAvgQuantize = original


def _pin_input_ranges(qat):
  """Sets the fake-quantisation range of the model's image input (tfmot's `QuantizeLayer`) to
  `float_tail.IMAGE_INPUT_RANGE` [0, 1]: the QAT counterpart of `float_tail.pin_input_range`,
  so that a uint8 model takes camera bytes (scale 1/255, zero point 0). The moving average
  pulls the range towards the batch ranges during fine-tuning, so the worker pins it before
  and after `fit`. Returns the number of ranges set."""
  lo, hi = float_tail.IMAGE_INPUT_RANGE
  pinned = 0
  for layer in qat.layers:
    if type(layer).__name__ != "QuantizeLayer":
      continue
    for weight in layer.weights:
      name = weight.name.split("/")[-1].split(":")[0]
      if name.endswith("_min"):
        weight.assign(lo)
      elif name.endswith("_max"):
        weight.assign(hi)
      else:
        continue
      pinned += 1
  return pinned // 2


def _saturating_activation(layer):
  """``float_tail.SATURATION_INPUT_RANGE`` key of a (wrapped) ``Activation`` layer, or None."""
  layer = getattr(layer, "layer", layer)  # QuantizeWrapper -> the wrapped layer
  if not isinstance(layer, tf_keras.layers.Activation):
    return None
  name = getattr(layer.activation, "__name__", layer.activation)
  return {"elu": "ELU", "sigmoid": "LOGISTIC", "tanh": "TANH"}.get(name)


def _clip_saturating_input_ranges(qat, float_tail_layers=()):
  """Clips the fake-quantisation range of every tensor that feeds only a saturating activation
  (ELU / sigmoid / tanh outside the float tail) to `float_tail.SATURATION_INPUT_RANGE`: the
  QAT counterpart of `export.float_tail.tighten_saturating_inputs` (same reasoning: the clipped
  inputs change the activation's output by <= 3.4e-4). The moving averages pull a clipped range
  back towards the batch ranges during fine-tuning (decay 0.999 per step), so the worker clips
  before and after `fit`. Returns the number of ranges changed.
  """
  consumers = {}
  for layer in qat.layers:
    for inbound in _inbound_layers(layer):
      consumers.setdefault(inbound.name, []).append(layer)
  changed = 0
  for layer in qat.layers:
    users = consumers.get(layer.name, [])
    if len(users) != 1 or getattr(users[0], "layer", users[0]).name in float_tail_layers:
      continue
    kind = _saturating_activation(users[0])
    if kind is None:
      continue
    lo, hi = float_tail.SATURATION_INPUT_RANGE[kind]
    for w in layer.weights:
      match = _ACTIVATION_RANGE_RE.search(w.name)
      if not match:
        continue
      value = np.asarray(w.numpy())
      bound = lo if match.group(1) == "min" else hi
      if bound is None:
        continue
      new = np.maximum(value, bound) if match.group(1) == "min" else np.minimum(value, bound)
      if not np.array_equal(new, value):
        w.assign(new.astype(value.dtype))
        changed += 1
  return changed


def _output_range(qat, float_tail_layers=()):
  """[min, max] of the depth output's activation range after QAT (metres); None when the model
  has a float tail (its output is not fake-quantised)."""
  if float_tail_layers:
    return None
  for layer in reversed(qat.layers):  # the output layer comes last in topological order
    found = {}
    for w in layer.weights:
      match = _ACTIVATION_RANGE_RE.search(w.name)
      if match:
        found[match.group(1)] = float(np.asarray(w.numpy()).reshape(-1)[0])
    if len(found) == 2:
      return [found["min"], found["max"]]
  return None


def _load_builder(spec):
  module_name, _, fn_name = spec.partition(":")
  return getattr(importlib.import_module(module_name), fn_name)


def _annotate(model):
  """Annotates every layer for QAT: the output tail gets FloatQuantizeConfig, unsupported
  layers OutputOnlyQuantizeConfig. Returns ``(annotated model, output-only names, tail names)``.
  """
  registry = default_8bit_quantize_registry.Default8BitQuantizeRegistry()
  output_only = []
  tail, heads = float_tail_layers(model)

  def annotate(layer):
    # The annotation wraps the trained layer itself (as tfmot's quantize_annotate_model does);
    # quantize_apply clones the annotated model and copies the weights.
    if isinstance(layer, tf_keras.layers.InputLayer):
      return layer
    if layer.name in tail:
      return _Q.quantize_annotate_layer(layer, quantize_config=FloatQuantizeConfig())
    if layer.name in heads:
      return _Q.quantize_annotate_layer(layer, quantize_config=_head_config(registry, layer))
    if _copies_values(layer):
      return _Q.quantize_annotate_layer(layer, quantize_config=SameScaleQuantizeConfig())
    if ((registry.supports(layer) and _supported_activation(layer))
        or isinstance(layer, tf_keras.layers.BatchNormalization)):
      return _Q.quantize_annotate_layer(layer)
    output_only.append(layer.name)
    return _Q.quantize_annotate_layer(layer, quantize_config=OutputOnlyQuantizeConfig())

  return tf_keras.models.clone_model(model, clone_function=annotate), output_only, tail


def _is_relu(layer):
  """ReLU layers: the converter fuses them into the preceding convolution (part of the head)."""
  if isinstance(layer, tf_keras.layers.ReLU):
    return True
  activation = getattr(layer, "activation", None)
  return (isinstance(layer, tf_keras.layers.Activation)
          and getattr(activation, "__name__", activation) in ("relu", "relu6"))


def float_tail_layers(model):
  """The output tail of a functional tf_keras model: ``(tail names, head names)``.

  The Keras-side twin of `export.float_tail.output_tail` (which finds the same ops in the TFLite
  graph): walking back from each output, every layer with one input whose output has its input's
  shape (a per-pixel map such as an ``Activation``, a ``Lambda`` or a 1x1 ``DepthwiseConv2D``
  scaling), output side first, up to the first that is not: the head (the convolution that
  changes the number of channels), whose name goes to the second list when the tail is not
  empty. A ReLU stops the walk as well: TFLite fuses it into the head convolution.
  """
  names, heads = [], []
  for tensor in model.outputs:
    layer = tensor._keras_history.layer  # pylint: disable=protected-access
    start = len(names)
    while (not isinstance(layer, tf_keras.layers.InputLayer) and not _is_relu(layer)
           and layer.name not in names):
      inbound = _inbound_layers(layer)
      if (len(inbound) != 1 or len(layer.inbound_nodes) != 1
          or tuple(layer.input_shape[1:]) != tuple(layer.output_shape[1:])):
        break
      names.append(layer.name)
      layer = inbound[0]
    if len(names) > start and not isinstance(layer, tf_keras.layers.InputLayer):
      heads.append(layer.name)
  return names, [h for h in heads if h not in names]


def _head_config(registry, layer):
  """QuantizeConfig of the layer that feeds the float tail: its weights as the registry
  quantises them, no quantiser on its output.

  The tail must receive a tensor without fake quantisation: the TFLite converter quantises a
  ``LOGISTIC`` whose input is quantised as a QAT op already (fixed output scale 1/256) before any
  selective quantisation can keep it float. The head's int8 output range comes from the
  converter's calibration on the training images instead.
  """
  config = registry.get_quantize_config(layer) if registry.supports(layer) else None
  if isinstance(config, default_8bit_quantize_registry.Default8BitQuantizeConfig):
    return type(config)(config.weight_attrs, [], False)
  return FloatQuantizeConfig()


def _inbound_layers(layer):
  layers = layer.inbound_nodes[0].inbound_layers if layer.inbound_nodes else []
  return layers if isinstance(layers, (list, tuple)) else [layers]


def _copy_source(layer):
  """The layer whose output ``layer``'s output copies through ``Cropping2D`` layers only."""
  while isinstance(layer, tf_keras.layers.Cropping2D):
    inbound = _inbound_layers(layer)
    if len(inbound) != 1:
      break
    layer = inbound[0]
  return layer


def _copies_values(layer):
  """True for layers whose output only copies values of one input tensor: nearest
  ``UpSampling2D``, and a ``Concatenate`` of crops of one tensor (the reflection padding of
  `tfdepth.layers.reflection_pad`). Their output range is their input's, so they get
  `SameScaleQuantizeConfig`."""
  if isinstance(layer, tf_keras.layers.UpSampling2D):
    return getattr(layer, "interpolation", None) == "nearest"
  if isinstance(layer, tf_keras.layers.Concatenate):
    sources = {id(_copy_source(l)) for l in _inbound_layers(layer)}
    return len(sources) == 1
  return False


def _supported_activation(layer):
  """False for an ``Activation`` layer whose function tfmot's registry refuses.

  The registry "supports" every ``Activation`` layer, but its config raises at
  ``quantize_apply`` for functions other than relu / relu6 / swish / gelu / linear / softmax /
  sigmoid / tanh (tfmot 0.8.1 ``Default8BitActivationQuantizeConfig``), e.g. Monodepth2's ELU.
  Those get `OutputOnlyQuantizeConfig`, as the converter runs ELU in float between a
  DEQUANTIZE and a QUANTIZE (`export.tflite`): its output is the tensor that gets quantised.
  """
  if not isinstance(layer, tf_keras.layers.Activation):
    return True
  try:
    default_8bit_quantize_registry.Default8BitActivationQuantizeConfig().get_output_quantizers(
        layer)
  except ValueError:
    return False
  return True


def _prune(model, images, depth, spec):
  sparsity = tfmot.sparsity.keras
  schedule = sparsity.ConstantSparsity(spec["target_sparsity"], begin_step=0,
                                       frequency=PRUNING_FREQUENCY)
  pruned = sparsity.prune_low_magnitude(model, pruning_schedule=schedule)
  pruned.compile(optimizer=tf_keras.optimizers.Adam(spec["learning_rate"]),
                 loss={"depth": masked_l1})
  history = pruned.fit(images, {"depth": depth}, batch_size=spec["batch_size"],
                       epochs=spec["prune_epochs"], shuffle=True, verbose=0,
                       callbacks=[sparsity.UpdatePruningStep()])
  zeros = total = 0
  for layer in pruned.layers:  # PruneLowMagnitude wrappers hold (weight, mask, threshold)
    for _, mask, _ in getattr(layer, "pruning_vars", []):
      m = mask.numpy()
      zeros += int(np.sum(m == 0))
      total += m.size
  mask_sparsity = zeros / max(total, 1)
  return (sparsity.strip_pruning(pruned), [float(v) for v in history.history["loss"]],
          mask_sparsity)


def _kernel_sparsity(model):
  """Fraction of exactly-zero entries over all kernels (pruned or not, e.g. 1x1 heads)."""
  zeros = total = 0
  for w in model.weights:
    if "kernel" in w.name:
      arr = w.numpy()
      zeros += int(np.sum(arr == 0))
      total += arr.size
  return zeros / max(total, 1)


def _lambda_cloning():
  """Scope in which tf_keras may clone ``Lambda`` layers (tfmot clones through configs).

  tf_keras refuses to deserialise a ``Lambda`` holding a Python function (the config carries its
  bytecode) unless safe mode is off. The worker clones only the model that it built itself, in
  this process, from the project's builder (weights arrive as numpy arrays; no model file is
  loaded), so there is no untrusted code to guard against.
  """
  return serialization_lib.SafeModeScope(False)


def run(spec):
  """Executes the QAT pipeline described by ``spec`` (see module docstring); returns info."""
  start = time.time()
  tf_keras.utils.set_random_seed(spec["seed"])
  builder = _load_builder(spec["builder"])
  model = builder(layers=tf_keras.layers, **spec["builder_kwargs"])
  with np.load(spec["weights"]) as f:
    weights = [f[k] for k in sorted(f.files)]
  expected = [tuple(w.shape) for w in model.get_weights()]
  received = [tuple(w.shape) for w in weights]
  if expected != received:
    raise ValueError(f"weights do not match the tf_keras twin: {len(received)} arrays with shapes "
                     f"{received[:5]}..., expected {len(expected)} with {expected[:5]}...")
  model.set_weights(weights)
  _freeze_batch_norm(model)
  with np.load(spec["data"]) as f:
    images, depth = f["images"].astype(np.float32), f["depth"].astype(np.float32)
  info = {"num_train_images": int(len(images)), "timings_s": {}}
  timings = info["timings_s"]
  timings["build"] = time.time() - start

  scheme = None
  if spec.get("target_sparsity"):
    with _lambda_cloning():
      model, info["prune_loss"], info["prunable_kernel_sparsity"] = _prune(
          model, images, depth, spec)
    timings["prune"] = time.time() - start
    info["kernel_sparsity_after_pruning"] = _kernel_sparsity(model)
    scheme = tfmot.experimental.combine.Default8BitPrunePreserveQuantizeScheme()

  annotated, info["output_only_layers"], info["float_tail_layers"] = _annotate(
      _freeze_batch_norm(model))
  with _lambda_cloning(), _Q.quantize_scope(
      {"OutputOnlyQuantizeConfig": OutputOnlyQuantizeConfig,
       "SameScaleQuantizeConfig": SameScaleQuantizeConfig,
       "FloatQuantizeConfig": FloatQuantizeConfig}):
    qat = (_Q.quantize_apply(annotated, scheme) if scheme is not None
           else _Q.quantize_apply(annotated))
  timings["quantize_apply"] = time.time() - start
  _initialize_ranges(qat, images)
  info["pinned_input_ranges"] = _pin_input_ranges(qat)
  info["clipped_saturating_input_ranges"] = _clip_saturating_input_ranges(
      qat, info["float_tail_layers"])
  info["initial_output_range"] = _output_range(qat, info["float_tail_layers"])
  qat.compile(optimizer=tf_keras.optimizers.Adam(spec["learning_rate"]),
              loss={"depth": masked_l1})
  history = qat.fit(images, {"depth": depth}, batch_size=spec["batch_size"],
                    epochs=spec["epochs"], shuffle=True, verbose=0)
  info["qat_loss"] = [float(v) for v in history.history["loss"]]
  _clip_saturating_input_ranges(qat, info["float_tail_layers"])
  _pin_input_ranges(qat)
  info["final_output_range"] = _output_range(qat, info["float_tail_layers"])
  timings["fit"] = time.time() - start

  h, w = images.shape[1:3]

  @tf.function(input_signature=[tf.TensorSpec((1, h, w, 3), tf.float32, name="images")])
  def depth_fn(x):
    return qat(x, training=False)["depth"]

  converter = tf.lite.TFLiteConverter.from_concrete_functions(
      [depth_fn.get_concrete_function()], qat)
  # Freeze the concrete function directly: lowering through a SavedModel (the default) saves the
  # whole tf_keras QAT model first, 15x slower (28 s vs 1.8 s for a 64x64 FastDepth-0.25).
  converter.experimental_lower_to_saved_model = False
  converter.optimizations = [tf.lite.Optimize.DEFAULT]
  # Tensors that QAT left without fake-quant nodes are calibrated on the training images.
  converter.representative_dataset = lambda: ([img[np.newaxis]] for img in images)
  converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
  io_dtype = tf.as_dtype(spec["io_dtype"])
  converter.inference_input_type = io_dtype
  converter.inference_output_type = io_dtype
  # The output tail's ops stay float (selective quantisation; see the module docstring).
  flatbuffer, tail_ops = float_tail.quantize_with_float_tail(converter, io_dtype)
  info["float_tail_ops"] = [op["op"] for op in tail_ops]
  timings["convert"] = time.time() - start
  with open(spec["output"], "wb") as f:
    f.write(flatbuffer)
  info.update(tflite_bytes=len(flatbuffer), seconds=time.time() - start)
  return info


def main(argv):
  with open(argv[1]) as f:
    spec = json.load(f)
  info = run(spec)
  with open(spec["info"], "w") as f:
    json.dump(info, f, indent=2)
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv))
