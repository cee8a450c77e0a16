"""TFLite conversion of a tfdepth depth model: float32, float16, dynamic-range and full int8.

All formats are converted from a concrete function with a FIXED batch of 1 at the model's input
size, ``(1, H, W, 3)`` float32 [0, 1] -> depth ``(1, H, W, 1)`` metres, restricted to TFLite
builtin ops (no ``SELECT_TF_OPS``: the phone runtime then needs no Flex delegate). Formats follow
the TensorFlow Lite post-training quantization guide
(https://ai.google.dev/edge/litert/models/post_training_quantization):

``tflite_fp32``     no optimisation.
``tflite_fp16``     float16 weights (``Optimize.DEFAULT`` + ``supported_types=[float16]``).
``tflite_dynamic``  dynamic-range: int8 weights, float activations (``Optimize.DEFAULT`` alone).
``tflite_int8``     full-integer: int8 weights and activations calibrated on representative
                    dataset, ``TFLITE_BUILTINS_INT8`` only, except the depth model's OUTPUT TAIL
                    (the per-pixel ops after the head convolution: Monodepth2's sigmoid +
                    ``disp_to_depth``, FastDepth's sigmoid x max_depth), which stays float
                    (`export.float_tail`); input int8, uint8 or float32 (``io_dtype``); output
                    float32 metres (``io_dtype`` too when the model has no tail, e.g. a ReLU
                    head). ``float_tail=False`` quantises the tail as well (the converter's plain
                    full-integer model, integer output).

Before conversion the model goes through `export.rewrite.tflite_friendly` (bit-identical
replacements of ``ReflectionPadding2D`` and nearest ``UpSampling2D``, whose default lowerings,
``MIRROR_PAD`` and ``TILE``, have no XNNPACK kernel); ``rewrite=False`` converts the model as it
is.

Known float islands of the int8 graph: ``ELU`` (Monodepth2's decoder) has no quantised kernel in
the TF 2.21 converter (the MLIR quantizer leaves it float even under ``TFLITE_BUILTINS_INT8``; the
legacy quantizer refuses it: "Quantization not yet supported for op: 'ELU'"), so each ELU runs as
``DEQUANTIZE`` -> float ``ELU`` -> ``QUANTIZE``. Measured on Monodepth2-R18 192x640 (CPU time, 1
thread): replacing the 10 ELUs by ReLUs (for the measurement only) saves 3 % of the int8 time;
`export.litert_runner.op_summary` lists such ops.

Why the tail stays float (`export.float_tail`): TFLite's int8 ``LOGISTIC`` has a fixed output
scale of 1/256, so a fully quantised Monodepth2-R18 192x640 (depth 0.1..100 m) could only output a
few depths at far range. Measured on the export benchmark's trained models (``python -m
benchmarks.export_formats --formats=tflite_fp32,tflite_int8``, 64 synthetic street test images,
uint8 input): Monodepth2 AbsRel 0.2860 with the quantised tail (``float_tail=False``), 0.2073 with
the float tail, 0.1793 for the float model; FastDepth 224x224 (sigmoid x 80 m) 0.0927 and 0.0919
vs 0.0905. The rest of Monodepth2's int8 gap comes from its decoder (README, Export section).

ELU inputs (`export.float_tail.tighten_saturating_inputs`): each ELU input's calibrated minimum
is raised to -8, where the ELU has saturated (output change <= 3.4e-4). On that model, 64 test
images, uint8 input (Keras 0.1793 / delta1 0.8317): AbsRel 0.2073 / delta1 0.5837 before, 0.1826 /
0.6863 with it (+1.9 %; with the ELU shift below 0.1717 / 0.7881). What remained then was the decoder amplifying
every int8 rounding, much of it the saturated ELU outputs' rounding that the shift removes: its
activations reach 10^3 (the ELU inputs calibrate to -3110..1854) while the disparity logits have a
standard deviation of 1.2; the relative RMSE of the ELU outputs vs float grows from 0.02
(upconv4_0) to 0.40 (upconv0_1) and 0.50 at the logits (3 test images), although each layer on
its own adds 1-3 % (`tf.lite.experimental.QuantizationDebugger`). The per-pixel deviation from
the float model stays ~0.21 (mean |log(int8 / float)|), hence the lower delta1.

ELU outputs (``shift_elu=True``, the default for ``tflite_int8``,
`export.rewrite.shift_elu_outputs`): an int8 tensor holds 0 exactly but not -1, the value of
every saturated ELU output, and the decoder's ELU outputs calibrate to [-1, M] with M up to 1854
on that model: with a step (M + 1) / 255 > 2 the saturated values round to 0, all +1 off in the
same direction, and each following convolution sums that into a bias (with a smaller step, up to
half a step the same way). The conversion therefore converts ``elu(x) + 1`` (floor 0, exact)
and subtracts the shift's contribution from the next convolutions' biases (the same function in
float), and keeps the shift's ``ADD`` in float next to the float ``ELU``. On that model: AbsRel
0.1826 -> 0.1717, delta1 0.6863 -> 0.7881, 86 % of the pixels within 1.25x of the float model
instead of 54 %, same latency (`export.rewrite.shift_elu_outputs`; README, Export).

Head bias (``bias_correction=True``, `export.bias_correction`, off by default): int8 rounding shifts
the head's output by a constant (Nagel et al. 2019, Sec. 4.2), which the float tail turns into a
depth factor: Monodepth2's int8 depths are 0.81x the float model's. The option subtracts the shift
measured on the calibration images from the head's int32 bias: with the ELU shift, depth scale
1.00 and 96 % of the pixels within 1.25x of the float model (86 % without), but AbsRel 0.2156
instead of 0.1717 (the shift had offset the float model's error); FastDepth: no shift to correct
(README, Export).

Concatenations (``split_concat_convs=True``, `export.rewrite.split_concat_convs`, off by default):
an int8 ``CONCATENATION`` has one scale for all inputs and its output, and the MLIR quantiser
propagates it back to the inputs' producers. Monodepth2's decoder concatenates ELU features
(calibrated up to 1854) with the encoder's skips (|x| < 19), so the encoder's layer1 / layer2
outputs (which also feed the next encoder stage) are int8 with steps 2.24 and 7.27 for values of
std 1.1 and 1.5 (debugger RMSE / std 0.50 and 0.89, 0.01-0.04 for every other encoder tensor).
Splitting each convolution over a concatenation into one convolution per input plus an ``ADD``
gives each input its own scale: AbsRel 0.1925 alone, 0.1803 / delta1 0.7377 with the ELU ranges.
It is off by default because the TF 2.21 quantiser then leaves in float the encoder ops that
share a skip tensor with the split convolution's reflection padding (``STRIDED_SLICE`` /
``CONCATENATION``): on Monodepth2-R18 the ``PAD`` + ``CONV_2D`` of layers 1-4 and the max-pool,
a 19.3 MB file instead of 14.5 MB (reproduced on a 3-conv model: a ``ZeroPadding2D`` of the skip
on the encoder side, a reflection padding of it on the decoder side).
Parity with the float model (`export.report.parity_table`, same model): 0.76 of the pixels
within 1.25x (default 0.54), but 1.0 % of the pixels collapse to under 0.1x the float depth:
each partial convolution's output is requantised to int8 before the ``ADD`` (upconv3_1's first
part ranges over -1234..1029, a step of ~9, while the sum feeds an ELU whose input is tightened
to -8..1027), so the partial rounding errors add up where the ELU is curved; layer-wise (1 test
image, LiteRT builtin kernels) the logits then reach the top of their int8 range (0, sigmoid 0.5,
depth 0.2 m) where the float logits are -4 to -9.
"""

import re

import numpy as np
import tensorflow as tf

from export import float_tail as float_tail_lib
from export import rewrite as rewrite_lib
from export._common import ExportError, depth_output, model_input_size
from tfdepth.data import augment
from tfdepth.errors import InvalidInputError

TFLITE_FORMATS = ("tflite_fp32", "tflite_fp16", "tflite_dynamic", "tflite_int8")
# Dtypes allowed for the I/O of the full-integer model (TFLiteConverter.inference_input_type).
INT8_IO_DTYPES = (tf.float32, tf.int8, tf.uint8)

# Default number of calibration images. The post-training quantization guide suggests
# "around 100-500 samples"; 100 keeps calibration of a 224x224 model under a minute on 2 cores.
DEFAULT_NUM_CALIBRATION_SAMPLES = 100

# Op names in the converter's error for ops without a builtin kernel, e.g.
# "'tf.Erfinv' op is neither a custom op nor a flex op" (TF 2.21 MLIR converter).
_UNSUPPORTED_OP_RE = re.compile(r"'tf\.([A-Za-z0-9_]+)' op is neither a custom op nor a flex op")
_UNSUPPORTED_MARKERS = ("neither a custom op nor a flex op", "Custom ops:", "not supported",
                        "Select TF", "Flex")


class RepresentativeDataset:
  """Calibration images for full-integer quantisation, materialised once.

  Calling the object returns a fresh generator of ``[image]`` with ``image`` float32
  (1, H, W, 3) in [0, 1]: the form `tf.lite.TFLiteConverter.representative_dataset` expects.

  Attributes:
    images: float32 numpy array (N, H, W, 3), N >= 1.
  """

  def __init__(self, images):
    self.images = images

  def __len__(self):
    return len(self.images)

  def __call__(self):
    for image in self.images:
      yield [image[np.newaxis]]


def _to_image_batch(element):
  """An element of a dataset -> float32 numpy (N, H, W, 3)."""
  if isinstance(element, dict):
    if "image" not in element:
      raise InvalidInputError(
          f"dataset dict elements must have key 'image', got keys {sorted(element)}")
    element = element["image"]
  elif isinstance(element, (tuple, list)):  # (image, target) pairs or [image] lists
    element = element[0]
  arr = np.asarray(element.numpy() if hasattr(element, "numpy") else element)
  if arr.ndim == 3:
    arr = arr[np.newaxis]
  if arr.ndim != 4 or arr.shape[-1] != 3:
    raise InvalidInputError(
        f"representative images must be (H, W, 3) or (N, H, W, 3), got shape {arr.shape}")
  if not np.issubdtype(arr.dtype, np.floating):
    raise InvalidInputError(
        f"representative images must be float32 in [0, 1], got dtype {arr.dtype}")
  arr = arr.astype(np.float32)
  if arr.size and (not np.all(np.isfinite(arr)) or arr.min() < 0.0 or arr.max() > 1.0):
    raise InvalidInputError(
        f"representative images must be in [0, 1], got range [{arr.min()}, {arr.max()}]")
  return arr


def representative_dataset_from(ds, num_samples=DEFAULT_NUM_CALIBRATION_SAMPLES,
                                input_size=None):
  """Draws calibration images from a dataset through the caller's preprocessing.

  Args:
    ds: an iterable or `tf.data.Dataset` whose elements are float32 [0, 1] images (H, W, 3) or
      batches (N, H, W, 3), or dicts with key ``"image"`` / tuples whose first item is the image
      (e.g. the training pipeline's output on a TFDS split).
    num_samples: number of images to draw (positive int), or None for all of them.
    input_size: optional ``(H, W)``: images of another size are resized (bilinear) to it.
  Returns:
    `RepresentativeDataset` holding ``min(num_samples, len(ds))`` images (all if None).
  Raises:
    InvalidInputError: non-positive ``num_samples``, bad images, or an empty dataset.
  """
  if num_samples is not None and (isinstance(num_samples, bool) or
                                  not isinstance(num_samples, int) or num_samples < 1):
    raise InvalidInputError(f"num_samples must be a positive int or None, got {num_samples!r}")
  limit = float("inf") if num_samples is None else num_samples
  images, count = [], 0
  for element in ds:
    batch = _to_image_batch(element)
    if input_size is not None and tuple(batch.shape[1:3]) != tuple(input_size):
      batch = augment.resize_images(batch, *input_size).numpy()
    if limit != float("inf"):
      batch = batch[:limit - count]
    images.append(batch)
    count += len(batch)
    if count >= limit:
      break
  if count == 0:
    raise InvalidInputError(
        "representative dataset is empty: full-integer quantisation needs at least one "
        "calibration image (got 0 images from the dataset)")
  return RepresentativeDataset(np.concatenate(images, axis=0))


def _as_representative(representative_dataset, input_size):
  """Accepts a RepresentativeDataset, a converter-style callable or an iterable."""
  if representative_dataset is None:
    raise InvalidInputError(
        "fmt='tflite_int8' requires a representative_dataset (calibration images), got None")
  if isinstance(representative_dataset, RepresentativeDataset):
    rep = representative_dataset
    if len(rep) == 0:
      raise InvalidInputError("representative dataset is empty (0 calibration images)")
  elif callable(representative_dataset):  # converter-style generator function
    rep = representative_dataset_from(representative_dataset(), num_samples=None,
                                      input_size=input_size)
  else:
    rep = representative_dataset_from(representative_dataset, num_samples=None,
                                      input_size=input_size)
  if tuple(rep.images.shape[1:3]) != tuple(input_size):
    raise InvalidInputError(
        f"representative images are {rep.images.shape[1:3]}, the model takes {input_size}")
  return rep


def depth_concrete_function(model):
  """Concrete function (1, H, W, 3) float32 -> depth (1, H, W, 1) float32 of a Keras model."""
  h, w = model_input_size(model)

  # No Python control flow inside: autograph off (it only adds tracing time and warnings).
  @tf.function(input_signature=[tf.TensorSpec((1, h, w, 3), tf.float32, name="images")],
               autograph=False)
  def depth_fn(images):
    return tf.cast(depth_output(model(images, training=False)), tf.float32)

  return depth_fn.get_concrete_function()


def converter_from_model(model, rewrite=True, split_concat_convs=False, shift_elu=False):
  """`tf.lite.TFLiteConverter` for the fixed-batch-1 depth function of a Keras 3 model.

  With ``shift_elu`` the model first goes through `export.rewrite.shift_elu_outputs` (same
  function up to float rounding; for the full-integer format, see the module docstring).
  With ``rewrite`` the function runs `export.rewrite.tflite_friendly(model)` (same values); with
  ``split_concat_convs`` too, it also splits the convolutions of channel concatenations
  (`export.rewrite.split_concat_convs`; same values up to float summation order; for the
  full-integer format, see the module docstring).

  ``experimental_lower_to_saved_model = False`` selects the converter's path that freezes the
  concrete function's variables into constants. The default path (lowering through a temporary
  SavedModel) keeps Keras 3 variables as resource variables that the TFLite runtime reads
  uninitialised (NaN outputs, READ_VARIABLE failures at calibration), and is ~5x slower
  (6.5 s vs 1.4 s for a 64x64 FastDepth-0.25 on 2 cores).
  """
  if shift_elu:
    model = rewrite_lib.shift_elu_outputs(model)
  if rewrite:
    model = rewrite_lib.tflite_friendly(model)
  if split_concat_convs:
    model = rewrite_lib.split_concat_convs(model)
  converter = tf.lite.TFLiteConverter.from_concrete_functions(
      [depth_concrete_function(model)], model)
  converter.experimental_lower_to_saved_model = False
  return converter


def configure_converter(converter, fmt, representative=None, io_dtype=tf.float32,
                        allow_select_tf_ops=False):
  """Sets optimisation / target options of a `tf.lite.TFLiteConverter` for ``fmt``."""
  builtins = tf.lite.OpsSet.TFLITE_BUILTINS
  if fmt == "tflite_int8":
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = io_dtype
    converter.inference_output_type = io_dtype
  else:
    converter.target_spec.supported_ops = [builtins]
    if fmt == "tflite_fp16":
      converter.optimizations = [tf.lite.Optimize.DEFAULT]
      converter.target_spec.supported_types = [tf.float16]
    elif fmt == "tflite_dynamic":
      converter.optimizations = [tf.lite.Optimize.DEFAULT]
  if allow_select_tf_ops:
    converter.target_spec.supported_ops = list(converter.target_spec.supported_ops) + [
        tf.lite.OpsSet.SELECT_TF_OPS]
  return converter


def run_converter(converter, fmt, float_tail=False, io_dtype=tf.float32,
                  bias_correction_images=None):
  """Runs the converter; an op without a TFLite builtin raises `ExportError` naming it.

  With ``float_tail`` (``tflite_int8`` only) the conversion goes through
  `export.float_tail.quantize_with_float_tail(converter, io_dtype, bias_correction_images)`.
  """
  try:
    if float_tail:
      return float_tail_lib.quantize_with_float_tail(converter, io_dtype,
                                                     bias_correction_images)[0]
    return converter.convert()
  except ExportError:
    raise
  except Exception as e:  # ConverterError is not exported under a stable public name.
    msg = str(e)
    if any(marker in msg for marker in _UNSUPPORTED_MARKERS):
      ops = sorted(set(_UNSUPPORTED_OP_RE.findall(msg)))
      raise ExportError(
          f"cannot convert to {fmt} with TFLite builtin ops only: the model uses ops without a "
          f"builtin kernel {ops or '(see converter log)'}. Replace them with builtin-friendly "
          "layers, or pass allow_select_tf_ops=True (the runtime then needs the Flex delegate). "
          f"Converter said: {msg[:2000]}") from e
    raise


def convert_to_tflite(model, fmt, representative_dataset=None, io_dtype=tf.float32,
                      allow_select_tf_ops=False, rewrite=True, float_tail=True,
                      split_concat_convs=False, bias_correction=False, shift_elu=True):
  """Converts a Keras depth model to a TFLite flatbuffer.

  Args:
    model: Keras 3 model, input (None, H, W, 3) float32 [0, 1] with static H, W, output dict
      with ``"depth"`` (B, H, W, 1) metres.
    fmt: one of ``TFLITE_FORMATS``.
    representative_dataset: for ``tflite_int8`` only (required, non-empty): a
      `RepresentativeDataset` (see `representative_dataset_from`), a converter-style callable
      yielding ``[image (1, H, W, 3)]``, or an iterable of images.
    io_dtype: input/output dtype; ``tf.float32`` for every format, or ``tf.int8`` / ``tf.uint8``
      for ``tflite_int8`` (quantisation parameters are in the tensor details). With a float
      tail (below) it sets the input alone: the output is float32 metres.
    allow_select_tf_ops: also allow TensorFlow (Flex) ops. Off by default.
    rewrite: convert `export.rewrite.tflite_friendly(model)` (bit-identical, faster kernels).
    float_tail: ``tflite_int8`` only: keep the output tail (the per-pixel ops after the head
      convolution, `export.float_tail.output_tail`) in float; nothing changes for a model
      without one; the image input is quantised over [0, 1] (`export.float_tail.
      pin_input_range`). ``False``: the converter's plain full-integer model (input quantised
      over the calibration images' range).
    split_concat_convs: also convert `export.rewrite.split_concat_convs(model)` (one int8 scale
      per input of a convolution over a concatenation; off by default, see above).
    bias_correction: ``tflite_int8`` with a float tail only: subtract from the head
      convolution's bias the mean int8 - float shift of its output measured on the first
      `export.bias_correction.DEFAULT_NUM_IMAGES` calibration images (off by default, see above).
    shift_elu: ``tflite_int8`` only: convert `export.rewrite.shift_elu_outputs(model)` (ELU
      outputs floored at 0, exact in int8; on by default, see above).
  Returns:
    The flatbuffer bytes of a model with fixed input (1, H, W, 3), output (1, H, W, 1).
  Raises:
    InvalidInputError: unknown format, bad ``io_dtype`` or missing / empty representative data.
    ExportError: the model needs ops that have no TFLite builtin.
  """
  if fmt not in TFLITE_FORMATS:
    raise InvalidInputError(f"unknown TFLite format {fmt!r}; valid formats: {TFLITE_FORMATS}")
  io_dtype = tf.as_dtype(io_dtype)
  if fmt == "tflite_int8":
    if io_dtype not in INT8_IO_DTYPES:
      raise InvalidInputError(
          f"io_dtype for tflite_int8 must be one of {[d.name for d in INT8_IO_DTYPES]}, "
          f"got {io_dtype.name}")
  elif io_dtype != tf.float32:
    raise InvalidInputError(f"io_dtype for {fmt} must be float32, got {io_dtype.name}")
  if fmt != "tflite_int8" and representative_dataset is not None:
    raise InvalidInputError(
        f"representative_dataset is only used by tflite_int8, got one for {fmt!r}")
  if bias_correction and (fmt != "tflite_int8" or not float_tail):
    raise InvalidInputError(
        f"bias_correction needs fmt='tflite_int8' with float_tail=True, got fmt={fmt!r}, "
        f"float_tail={float_tail!r}")
  input_size = model_input_size(model)
  representative = (_as_representative(representative_dataset, input_size)
                    if fmt == "tflite_int8" else None)
  converter = converter_from_model(model, rewrite=rewrite,
                                   split_concat_convs=split_concat_convs,
                                   shift_elu=bool(shift_elu) and fmt == "tflite_int8")
  configure_converter(converter, fmt, representative, io_dtype, allow_select_tf_ops)
  return run_converter(converter, fmt, float_tail=bool(float_tail) and fmt == "tflite_int8",
                       io_dtype=io_dtype,
                       bias_correction_images=representative.images if bias_correction else None)
