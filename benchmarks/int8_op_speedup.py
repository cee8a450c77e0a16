"""Where FastDepth's int8 TFLite time goes: int8 vs float32 speed-up of each of its convolutions.

Run: ``python -m benchmarks.int8_op_speedup`` (about 6 minutes on 2 cores). Prints a table and
writes ``benchmarks/results/int8_op_speedup.json``.

Issue 7 asks for full-integer int8 >= 2.5x faster than float32 TFLite; the export benchmark
(`benchmarks.export_formats`) measures FastDepth 224x224 at ~2.2x and Monodepth2-R18 at ~3.5x.
This benchmark shows why, one layer at a time: every ``Conv2D`` / ``DepthwiseConv2D`` of
FastDepth 224x224 (Wofk et al. 2019; width 1.0, the export benchmark's model) is converted alone
(its input shape, ReLU fused, random weights) with the TFLite converter's plain settings: float32,
and full-integer int8 with int8 input and output calibrated on 8 random inputs (no QUANTIZE /
DEQUANTIZE around the op, so the op alone is timed). Each file runs in LiteRT
(``ai-edge-litert``, XNNPACK, 1 thread); the figure is the median CPU time of the invoking thread
over ``--num_runs`` interleaved runs (robust to other jobs on the machine; includes LiteRT's
per-invoke overhead of a few microseconds, visible on the 7x7 layers).

Two alternatives are measured too: the depthwise convolutions with per-tensor int8 weights
(``int8_per_tensor_ms``; XNNPACK's QS8 kernels instead of the per-channel QC8 ones), and the whole
model (random weights, `export.tflite`'s conversion) under TFLite's builtin kernels instead of the
XNNPACK delegate (``whole_model_kernels``).

The rows are grouped by kind (first full 3x3 conv, 3x3 depthwise stride 1 / 2, 5x5 depthwise,
1x1 pointwise). The summary gives each kind's float32 and int8 sums and, against the export
benchmark's whole-model FastDepth figures (``benchmarks/results/export_formats.json``, its
``tflite_fp32`` / ``tflite_int8`` 1-thread ``median_cpu_ms``), the speed-up that the depthwise
convolutions would need for the whole model to reach ``TARGET_SPEEDUP`` with every other int8
time unchanged.
"""

import argparse
import json
import os
import time

import numpy as np

from benchmarks.common import print_table, result_path, write_result

NAME = "int8_op_speedup"
INPUT_SIZE = (224, 224)  # FastDepth's NYU Depth v2 input (Wofk et al. 2019, Sec. IV)
TARGET_SPEEDUP = 2.5  # issue 7: full-integer int8 vs float32 TFLite on this CPU
NUM_CALIBRATION = 8
DEFAULT_NUM_RUNS = 50
WARMUP_RUNS = 5
DEPTHWISE_KINDS = ("depthwise 3x3 s1", "depthwise 3x3 s2", "depthwise 5x5")
EXPORT_RESULT = "export_formats"
EXPORT_MODEL_KEY = "fastdepth_224"


def layer_kind(layer):
  """"conv 3x3 s2" | "depthwise 3x3 s1" | "depthwise 3x3 s2" | "depthwise 5x5" | "pointwise" |
  None (FastDepth's 1x1 scaling depthwise convs: input normalisation, x max depth)."""
  import keras  # pylint: disable=g-import-not-at-top
  if not isinstance(layer, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D)):
    return None
  k, s = layer.kernel_size, layer.strides
  if isinstance(layer, keras.layers.DepthwiseConv2D):
    if k == (1, 1):
      return None
    return f"depthwise {k[0]}x{k[1]}" + (f" s{s[0]}" if k == (3, 3) else "")
  return "pointwise" if k == (1, 1) else f"conv {k[0]}x{k[1]} s{s[0]}"


def fastdepth_convolutions(input_size=INPUT_SIZE):
  """``[(layer, kind, input shape (H, W, C))]`` of every convolution of FastDepth (width 1.0,
  the sigmoid x max-depth head of tfdepth's experiments) but the 1x1 scaling ones."""
  from tfdepth.models import fastdepth  # pylint: disable=g-import-not-at-top
  model = fastdepth.build_fastdepth(tuple(input_size) + (3,), depth_activation="sigmoid",
                                    max_depth=80.0)
  out = []
  for layer in model.layers:
    kind = layer_kind(layer)
    if kind is not None:
      out.append((layer, kind, tuple(int(d) for d in layer.input.shape[1:])))
  return out


def single_op_model(layer, input_shape, seed):
  """A Keras model of ``layer`` alone (same config, fresh random weights) + ReLU, which the
  converter fuses into the op as it fuses FastDepth's BN + ReLU."""
  import keras  # pylint: disable=g-import-not-at-top
  keras.utils.set_random_seed(seed)
  inputs = keras.Input(input_shape)
  x = type(layer).from_config(layer.get_config())(inputs)
  return keras.Model(inputs, keras.layers.ReLU()(x))


def convert(model, int8, seed, per_channel=True):
  """float32 or full-integer int8 (int8 input and output) TFLite flatbuffer of ``model``;
  ``per_channel=False``: int8 weights with one scale per tensor instead of per output channel
  (the converter's ``_experimental_disable_per_channel``)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  shape = (1,) + tuple(int(d) for d in model.inputs[0].shape[1:])
  function = tf.function(model.__call__, input_signature=[tf.TensorSpec(shape, tf.float32)])
  converter = tf.lite.TFLiteConverter.from_concrete_functions(
      [function.get_concrete_function()], model)
  # Freezes the Keras 3 variables into constants (see export.tflite.converter_from_model).
  converter.experimental_lower_to_saved_model = False
  if int8:
    rng = np.random.default_rng(seed)

    def representative():
      for _ in range(NUM_CALIBRATION):
        yield [rng.uniform(size=shape).astype(np.float32)]

    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    converter._experimental_disable_per_channel = not per_channel  # pylint: disable=protected-access
  return bytes(converter.convert())


def _interpreter(flatbuffer, builtin_kernels=False):
  """A 1-thread LiteRT interpreter of ``flatbuffer`` with a fixed random input set, warmed up;
  ``builtin_kernels``: TFLite's own optimised kernels instead of the default XNNPACK delegate."""
  from export import litert_runner  # pylint: disable=g-import-not-at-top
  if builtin_kernels:
    from ai_edge_litert.interpreter import Interpreter, OpResolverType  # pylint: disable=g-import-not-at-top,g-multiple-import
    interpreter = Interpreter(
        model_content=flatbuffer, num_threads=1,
        experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
  else:
    interpreter = litert_runner.interpreter_for(flatbuffer, num_threads=1)
  interpreter.allocate_tensors()
  detail = interpreter.get_input_details()[0]
  rng = np.random.default_rng(0)
  if detail["dtype"] == np.float32:
    x = rng.uniform(size=detail["shape"]).astype(np.float32)
  else:
    x = rng.integers(-128, 128, size=detail["shape"]).astype(detail["dtype"])
  interpreter.set_tensor(detail["index"], x)
  for _ in range(WARMUP_RUNS):
    interpreter.invoke()
  return interpreter


def median_cpu_ms(interpreters, num_runs):
  """Median CPU time (ms) of ``invoke`` per interpreter, the runs interleaved round-robin."""
  times = [[] for _ in interpreters]
  for _ in range(num_runs):
    for t, interpreter in zip(times, interpreters):
      start = time.thread_time()
      interpreter.invoke()
      t.append(time.thread_time() - start)
  return [float(np.median(t) * 1e3) for t in times]


def summarise(rows, whole_model=None, target=TARGET_SPEEDUP):
  """Per-kind sums and the depthwise speed-up that ``target`` would need.

  Args:
    rows: dicts with ``kind``, ``fp32_ms``, ``int8_ms``.
    whole_model: optional ``{"fp32_ms", "int8_ms"}`` of the whole converted model.
    target: the whole-model int8 speed-up asked for.
  Returns:
    ``{"kinds": {kind: {"fp32_ms", "int8_ms", "speedup", "layers"}}, "convs": {...},
    "depthwise": {...}}`` plus, with ``whole_model``: ``"whole_model"`` (with its speed-up),
    ``"int8_ms_for_target"`` (fp32 / target), ``"depthwise_int8_ms_for_target"`` (that budget
    minus the int8 time outside the depthwise convs) and ``"depthwise_speedup_needed"``
    (depthwise fp32 sum / that; None when no depthwise time would fit).
  """
  def block(selected):
    fp32 = float(sum(r["fp32_ms"] for r in selected))
    int8 = float(sum(r["int8_ms"] for r in selected))
    return {"fp32_ms": fp32, "int8_ms": int8, "speedup": fp32 / int8 if int8 else None,
            "layers": len(selected)}

  kinds = sorted({r["kind"] for r in rows})
  out = {"kinds": {k: block([r for r in rows if r["kind"] == k]) for k in kinds},
         "convs": block(rows),
         "depthwise": block([r for r in rows if r["kind"] in DEPTHWISE_KINDS])}
  if whole_model:
    fp32, int8 = float(whole_model["fp32_ms"]), float(whole_model["int8_ms"])
    budget = fp32 / target
    dw_budget = budget - (int8 - out["depthwise"]["int8_ms"])
    out["whole_model"] = {"fp32_ms": fp32, "int8_ms": int8, "speedup": fp32 / int8}
    out["int8_ms_for_target"] = budget
    out["depthwise_int8_ms_for_target"] = dw_budget
    out["depthwise_speedup_needed"] = (out["depthwise"]["fp32_ms"] / dw_budget
                                       if dw_budget > 0 else None)
  return out


def export_whole_model(path=None):
  """FastDepth's whole-model 1-thread CPU times (fp32, int8) and date from the export benchmark's
  result file, or None when it has no such figures."""
  path = path or result_path(EXPORT_RESULT)
  if not os.path.exists(path):
    return None
  with open(path) as f:
    record = json.load(f)
  entry = record.get("figures", {}).get(EXPORT_MODEL_KEY, {})
  try:
    fp32 = entry["tflite_fp32"]["latency"]["1"]["median_cpu_ms"]
    int8 = entry["tflite_int8"]["latency"]["1"]["median_cpu_ms"]
  except KeyError:
    return None
  return {"fp32_ms": fp32, "int8_ms": int8, "source": os.path.relpath(path),
          "date": record.get("date")}


def runtime_alternatives(num_runs, input_size=INPUT_SIZE):
  """Whole-model FastDepth (width 1.0, random weights with a spread head:
  `export._testing.spread_fastdepth`, the export benchmark's converter and rewrites) float32 and
  int8 (float I/O, 8 random calibration images) under LiteRT's default XNNPACK delegate and under
  TFLite's builtin kernels (``BUILTIN_WITHOUT_DEFAULT_DELEGATES``), 1 thread, median CPU ms."""
  from export import tflite  # pylint: disable=g-import-not-at-top
  from export._testing import spread_fastdepth  # pylint: disable=g-import-not-at-top
  model = spread_fastdepth(input_size, width_multiplier=1.0)
  rng = np.random.default_rng(0)
  rep = tflite.RepresentativeDataset(
      rng.uniform(size=(NUM_CALIBRATION,) + tuple(input_size) + (3,)).astype(np.float32))
  files = {fmt: bytes(tflite.convert_to_tflite(model, fmt, representative_dataset=rep
                                               if fmt == "tflite_int8" else None))
           for fmt in ("tflite_fp32", "tflite_int8")}
  keys = [(fmt, builtin) for builtin in (False, True) for fmt in files]
  times = median_cpu_ms([_interpreter(files[fmt], builtin) for fmt, builtin in keys], num_runs)
  out = {}
  for (fmt, builtin), ms in zip(keys, times):
    out.setdefault("builtin_kernels" if builtin else "xnnpack", {})[fmt] = ms
  for v in out.values():
    v["speedup"] = v["tflite_fp32"] / v["tflite_int8"]
  return out


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--num_runs", type=int, default=DEFAULT_NUM_RUNS)
  parser.add_argument("--result_name", default=NAME)
  args = parser.parse_args(argv)
  if args.num_runs < 1:
    parser.error(f"--num_runs must be >= 1, got {args.num_runs}")
  rows = []
  for i, (layer, kind, shape) in enumerate(fastdepth_convolutions()):
    model = single_op_model(layer, shape, seed=i)
    depthwise = kind in DEPTHWISE_KINDS
    files = [convert(model, False, seed=i), convert(model, True, seed=i)]
    if depthwise:   # also per-tensor weights: another XNNPACK kernel family (QS8 vs QC8)
      files.append(convert(model, True, seed=i, per_channel=False))
    times = median_cpu_ms([_interpreter(f) for f in files], args.num_runs)
    fp32_ms, int8_ms = times[:2]
    rows.append({"layer": layer.name, "kind": kind, "input_shape": list(shape),
                 "filters": int(layer.compute_output_shape((1,) + shape)[-1]),
                 "fp32_ms": fp32_ms, "int8_ms": int8_ms, "speedup": fp32_ms / int8_ms})
    if depthwise:
      rows[-1]["int8_per_tensor_ms"] = times[2]
    print(f"{layer.name:34s} {kind:17s} {str(shape):16s} fp32 {fp32_ms:6.3f} ms  int8 "
          f"{int8_ms:6.3f} ms  {fp32_ms / int8_ms:4.2f}x"
          + (f"  int8 per-tensor {times[2]:6.3f} ms" if depthwise else ""), flush=True)
  whole = export_whole_model()
  summary = summarise(rows, whole)
  table = [[k, v["layers"], v["fp32_ms"], v["int8_ms"], v["speedup"]]
           for k, v in list(summary["kinds"].items()) + [("all depthwise", summary["depthwise"]),
                                                         ("all convolutions", summary["convs"])]]
  if whole:
    table.append(["whole model (export benchmark)", "", whole["fp32_ms"], whole["int8_ms"],
                  summary["whole_model"]["speedup"]])
  print_table(table, ["kind", "layers", "fp32_ms", "int8_ms", "speedup"])
  if whole:
    needed = summary["depthwise_speedup_needed"]
    print(f"For {TARGET_SPEEDUP}x the int8 model must take {summary['int8_ms_for_target']:.2f} ms;"
          f" with its other ops as they are, the depthwise convs would have to run in "
          f"{summary['depthwise_int8_ms_for_target']:.2f} ms int8 ("
          + (f"{needed:.2f}x faster than float32" if needed else "impossible") + ").")
  per_tensor = sum(r["int8_per_tensor_ms"] for r in rows if "int8_per_tensor_ms" in r)
  print(f"depthwise int8 with per-tensor weights: {per_tensor:.3f} ms "
        f"(per-channel {summary['depthwise']['int8_ms']:.3f} ms)")
  alternatives = runtime_alternatives(args.num_runs)
  print_table([[k, v["tflite_fp32"], v["tflite_int8"], v["speedup"]]
               for k, v in alternatives.items()],
              ["whole model, kernels", "fp32_ms", "int8_ms", "speedup"])
  figures = {"model": "fastdepth 224x224, width 1.0", "num_runs": args.num_runs,
             "threads": 1, "target_speedup": TARGET_SPEEDUP, "layers": rows,
             "summary": summary, "whole_model_source": whole,
             "depthwise_int8_per_tensor_ms": per_tensor,
             "whole_model_kernels": alternatives}
  write_result(args.result_name, figures)


if __name__ == "__main__":
  main()
