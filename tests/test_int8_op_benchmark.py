"""Cheap checks of benchmarks/int8_op_speedup.py (issue 7): the FastDepth layer inventory, the
single-op int8 files it times, and its summary arithmetic by hand."""

import json

import keras
import numpy as np
import pytest

from benchmarks import int8_op_speedup as bench
from export import litert_runner


def test_fastdepth_inventory_matches_the_architecture():
  convs = bench.fastdepth_convolutions()
  kinds = [k for _, k, _ in convs]
  # MobileNet v1 (Howard et al. 2017, Table 1): a full 3x3 stride-2 conv, then 13 depthwise
  # separable blocks, 4 of them stride 2; NNConv5: 5 separable 5x5 stages; the 1x1 head.
  assert kinds.count("conv 3x3 s2") == 1
  assert kinds.count("depthwise 3x3 s2") == 4 and kinds.count("depthwise 3x3 s1") == 9
  assert kinds.count("depthwise 5x5") == 5
  assert kinds.count("pointwise") == 13 + 5 + 1
  shapes = {layer.name: shape for layer, _, shape in convs}
  assert shapes["fastdepth_encoder_block1_dw"] == (112, 112, 32)
  assert shapes["fastdepth_decoder5_dw"] == (112, 112, 64)
  assert shapes["fastdepth_head_conv"] == (224, 224, 32)


def test_single_op_int8_file_is_one_integer_op_close_to_float():
  layer = keras.layers.DepthwiseConv2D(5, padding="same", name="dw")
  model = bench.single_op_model(layer, (8, 8, 4), seed=0)
  fp32, int8 = (bench.convert(model, q, seed=0) for q in (False, True))
  s_fp32, s_int8 = litert_runner.op_summary(fp32), litert_runner.op_summary(int8)
  assert s_fp32["op_counts"] == s_int8["op_counts"] == {"DEPTHWISE_CONV_2D": 1}
  assert s_fp32["float_ops"] == {"DEPTHWISE_CONV_2D": 1} and s_int8["float_ops"] == {}
  assert s_int8["num_quantize"] == s_int8["num_dequantize"] == 0
  # The int8 file computes the same function: dequantised outputs within 2 output steps of
  # float32 (input rounding <= 1/2 step through 25 taps plus the output's own rounding).
  x = np.random.default_rng(1).uniform(size=(1, 8, 8, 4)).astype(np.float32)
  expected = model(x).numpy()
  it = litert_runner.interpreter_for(int8)
  it.allocate_tensors()
  inp, out = it.get_input_details()[0], it.get_output_details()[0]
  it.set_tensor(inp["index"], litert_runner.quantize_input(x, inp))
  it.invoke()
  scale, zero = out["quantization"]
  got = (it.get_tensor(out["index"]).astype(np.float32) - zero) * scale
  assert np.max(np.abs(got - expected)) <= 2 * scale


def test_summary_by_hand():
  rows = [{"kind": "pointwise", "fp32_ms": 8.0, "int8_ms": 2.0},
          {"kind": "pointwise", "fp32_ms": 4.0, "int8_ms": 1.0},
          {"kind": "depthwise 5x5", "fp32_ms": 2.0, "int8_ms": 2.0},
          {"kind": "depthwise 3x3 s1", "fp32_ms": 1.0, "int8_ms": 1.0}]
  s = bench.summarise(rows, {"fp32_ms": 16.0, "int8_ms": 8.0}, target=2.5)
  assert s["kinds"]["pointwise"] == {"fp32_ms": 12.0, "int8_ms": 3.0, "speedup": 4.0,
                                     "layers": 2}
  assert s["depthwise"] == {"fp32_ms": 3.0, "int8_ms": 3.0, "speedup": 1.0, "layers": 2}
  assert s["convs"]["fp32_ms"] == 15.0 and s["convs"]["int8_ms"] == 6.0
  assert s["whole_model"]["speedup"] == 2.0
  # 16 / 2.5 = 6.4 ms in all; 8 - 3 = 5 ms outside the depthwise convs leaves them 1.4 ms:
  # 3 / 1.4 = 2.14x faster than float32.
  assert s["int8_ms_for_target"] == pytest.approx(6.4)
  assert s["depthwise_int8_ms_for_target"] == pytest.approx(1.4)
  assert s["depthwise_speedup_needed"] == pytest.approx(3.0 / 1.4)
  # When the rest alone exceeds the budget no depthwise speed-up suffices.
  s = bench.summarise(rows, {"fp32_ms": 10.0, "int8_ms": 8.0}, target=2.5)
  assert s["depthwise_int8_ms_for_target"] == pytest.approx(-1.0)
  assert s["depthwise_speedup_needed"] is None
  assert "whole_model" not in bench.summarise(rows)


def test_export_whole_model_reads_the_export_benchmark(tmp_path):
  path = tmp_path / "export_formats.json"
  latency = lambda ms: {"latency": {"1": {"median_cpu_ms": ms}}}  # noqa: E731
  path.write_text(json.dumps({"date": "2026-12-05", "figures": {bench.EXPORT_MODEL_KEY: {
      "tflite_fp32": latency(17.5), "tflite_int8": latency(7.0)}}}))
  got = bench.export_whole_model(str(path))
  assert (got["fp32_ms"], got["int8_ms"], got["date"]) == (17.5, 7.0, "2026-12-05")
  path.write_text(json.dumps({"figures": {bench.EXPORT_MODEL_KEY: {"tflite_fp32": latency(1)}}}))
  assert bench.export_whole_model(str(path)) is None
  assert bench.export_whole_model(str(tmp_path / "missing.json")) is None


def test_per_tensor_weights_and_builtin_kernels():
  layer = keras.layers.DepthwiseConv2D(5, padding="same", name="dw")
  model = bench.single_op_model(layer, (8, 8, 4), seed=0)

  def weight_scales(flatbuffer):
    it = litert_runner.interpreter_for(flatbuffer)
    it.allocate_tensors()
    (kernel,) = [t for t in it.get_tensor_details()
                 if t["dtype"] == np.int8 and len(t["shape"]) == 4 and t["shape"][0] == 1
                 and t["shape"][1] == 5]
    return kernel["quantization_parameters"]["scales"]

  per_channel = bench.convert(model, True, seed=0)
  per_tensor = bench.convert(model, True, seed=0, per_channel=False)
  assert len(weight_scales(per_channel)) == 4 and len(weight_scales(per_tensor)) == 1
  # XNNPACK and TFLite's builtin kernels run the same int8 file to the same integers (both
  # implement TFLite's int8 rounding; at most one step apart where their requantisation differs).
  outputs = []
  for builtin in (False, True):
    it = bench._interpreter(per_channel, builtin_kernels=builtin)  # pylint: disable=protected-access
    it.invoke()
    outputs.append(it.get_tensor(it.get_output_details()[0]["index"]).astype(np.int32))
  assert outputs[0].shape == (1, 8, 8, 4)
  assert np.max(np.abs(outputs[0] - outputs[1])) <= 1
