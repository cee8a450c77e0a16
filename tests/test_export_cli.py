"""Tests of export.report and export.cli: artefact + report, and the CLI's error paths."""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from export import cli
from export import report as report_lib
from export._testing import spread_fastdepth
from tfdepth.errors import ConfigError, InvalidInputError

INPUT_SIZE = (64, 64)
PROTOCOL = "synthetic_street"
# float32 TFLite vs Keras: 1e-4 relative per pixel (tests/test_export_tflite.py), so AbsRel
# against ground truth equal to the Keras prediction is at most 1e-4.
FP32_ABS_REL = 1e-4


@pytest.fixture(scope="module")
def model():
  return spread_fastdepth(INPUT_SIZE)


def _data(model, n=4, seed=0):
  images = np.random.default_rng(seed).uniform(size=(n,) + INPUT_SIZE + (3,)).astype(np.float32)
  return images, model(images)["depth"].numpy()


def test_tflite_report(model, tmp_path):
  images, depths = _data(model)
  rep = report_lib.export_and_report(model, {"experiment": "t"}, "tflite_fp32", str(tmp_path),
                                     test_images=images, test_depths=depths, protocol=PROTOCOL,
                                     num_runs=3)
  path = tmp_path / "model_tflite_fp32.tflite"
  assert rep["size_bytes"] == os.path.getsize(path)
  assert set(rep["latency"]) == {"1", "2"}
  assert all(s["num_runs"] == 3 and s["median_ms"] > 0 for s in rep["latency"].values())
  keras_table, tflite_table = rep["metrics"]["keras"], rep["metrics"]["tflite_fp32"]
  # Ground truth = the Keras prediction: the Keras row is exact, TFLite within float rounding.
  assert keras_table["abs_rel"] == 0.0 and keras_table["delta1"] == 1.0
  assert tflite_table["abs_rel"] <= FP32_ABS_REL and tflite_table["delta1"] == 1.0
  parity = rep["parity"]
  assert parity["num_images"] == 4 and parity["within_1.25"] == 1.0
  assert parity["max_rel_diff"] <= FP32_ABS_REL
  assert abs(parity["mean_log_ratio"]) <= parity["mean_abs_log_ratio"] <= FP32_ABS_REL
  with open(tmp_path / "export_report_tflite_fp32.json") as f:
    assert json.load(f)["size_bytes"] == rep["size_bytes"]
  md = (tmp_path / "export_report_tflite_fp32.md").read_text()
  assert "tflite_fp32" in md and "| 2 |" in md
  assert "(protocol `synthetic_street`; ground truth at the network's input size)" in md
  assert "Parity with the Keras model (evaluated pixels): depth ratio exp(mean ln) 1.0000" in md
  # FastDepth after export.rewrite: the whole float graph is one XNNPACK partition.
  assert rep["ops"]["num_delegate_partitions"] == 1 and "TILE" not in rep["ops"]["op_counts"]
  assert "- XNNPACK partitions: 1; QUANTIZE / DEQUANTIZE: 0 / 0; float ops: all" in md
  # The completed metadata (as the SavedModel's), not the caller's dict alone.
  with open(str(path) + ".metadata.json") as f:
    meta = json.load(f)
  assert meta["experiment"] == "t" and meta["input_size"] == list(INPUT_SIZE)
  assert {"depth_range", "normalization", "tfdepth_version"} <= set(meta)
  # A second format in the same directory gets its own report; the same format again is refused
  # (the first file and report stay).
  report_lib.export_and_report(model, {"experiment": "t"}, "tflite_fp16", str(tmp_path),
                               num_runs=1, threads=(1,))
  assert (tmp_path / "export_report_tflite_fp16.json").exists()
  assert (tmp_path / "export_report_tflite_fp32.json").exists()
  size = os.path.getsize(path)
  with pytest.raises(InvalidInputError, match=r"model_tflite_fp32.tflite' already exists"):
    report_lib.export_and_report(model, {"experiment": "u"}, "tflite_fp32", str(tmp_path),
                                 num_runs=1)
  assert os.path.getsize(path) == size
  with open(str(path) + ".metadata.json") as f:
    assert json.load(f)["experiment"] == "t"


def test_report_at_native_resolution_matches_tfdepth_eval(model, tmp_path):
  # Test images larger than the model (96x80 for 64x64) with their ground truth at that size:
  # the report's Keras row is what tfdepth-eval computes (images resized to the network with the
  # pipeline's resize, predictions resized to the GT as disparity), the exported row within
  # float rounding of it.
  from tfdepth import metrics  # pylint: disable=g-import-not-at-top
  from trainers import evaluate  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(5)
  images = rng.uniform(size=(3, 96, 80, 3)).astype(np.float32)
  depths = rng.uniform(3.0, 8.0, size=(3, 96, 80, 1)).astype(np.float32)
  depths[:, :10] = 0.0   # invalid rows
  rep = report_lib.export_and_report(model, {"experiment": "t"}, "tflite_fp32", str(tmp_path),
                                     test_images=list(images), test_depths=list(depths),
                                     protocol=PROTOCOL, num_runs=1, threads=(1,))
  assert rep["ground_truth_size"] == report_lib.GROUND_TRUTH_SIZE_NOTE["native"]
  dataset = tf.data.Dataset.from_tensor_slices({"image": images, "depth": depths}).batch(2)
  gts, preds = evaluate.predict_split(model, dataset, *INPUT_SIZE)
  expected, _ = metrics.evaluate_predictions([g[..., 0] for g in gts], [p[..., 0] for p in preds],
                                             PROTOCOL)
  for key, value in expected.items():
    # Same float32 ops in another order (resize back in numpy vs in the evaluator): 1e-5.
    assert rep["metrics"]["keras"][key] == pytest.approx(float(value), rel=1e-5), key
    assert rep["metrics"]["tflite_fp32"][key] == pytest.approx(float(value), rel=FP32_ABS_REL), key
  assert rep["parity"]["num_images"] == 3 and rep["parity"]["within_1.25"] == 1.0


def test_supervised_experiment_reports_metrics_at_the_stored_resolution(tmp_path):
  # The synthetic world rendered at 96x96 for a 64x64 network: tfdepth-export's metrics are
  # computed at 96x96 (as tfdepth-eval), not on ground truth shrunk to 64x64.
  from trainers import common  # pylint: disable=g-import-not-at-top
  from trainers import experiments  # pylint: disable=g-import-not-at-top
  overrides = ["data.height=64", "data.width=64", "data.builder_kwargs.height=96",
               "data.builder_kwargs.width=96", "data.builder_kwargs.num_train=2",
               "data.builder_kwargs.num_validation=1", "data.builder_kwargs.num_test=2",
               "model.kwargs.width_multiplier=0.25"]
  config = experiments.apply_overrides(
      experiments.get_experiment("fastdepth_synthetic_street"), overrides)
  path = str(tmp_path / "fd.weights.h5")
  common.build_network(config).save_weights(path)
  rep = cli.export_experiment("fastdepth_synthetic_street", path, "tflite_fp32",
                              str(tmp_path / "out"), overrides=overrides,
                              data_dir=str(tmp_path / "tfds"), num_test=2, num_runs=1)
  assert rep["num_test_images"] == 2
  assert rep["ground_truth_size"] == report_lib.GROUND_TRUTH_SIZE_NOTE["native"]
  keras_abs_rel = rep["metrics"]["keras"]["abs_rel"]
  assert rep["metrics"]["tflite_fp32"]["abs_rel"] == pytest.approx(keras_abs_rel, rel=FP32_ABS_REL)


def test_artefact_size_sums_directory(tmp_path):
  (tmp_path / "a").write_bytes(b"x" * 10)
  (tmp_path / "d").mkdir()
  (tmp_path / "d" / "b").write_bytes(b"y" * 5)
  assert report_lib.artefact_size(str(tmp_path)) == 15
  assert report_lib.artefact_size(str(tmp_path / "a")) == 10


def test_parity_table_by_hand():
  """Two 2x2 images, ground truth marks 4 and 2 pixels as evaluated (synthetic_street: 1e-3 <
  gt < 80 m). Image 0: reference 2 m, exported 3 m on one pixel (ratio 1.5), 2 m elsewhere;
  image 1: exported 0 m (clamped to min_depth 1e-3 m) against 1e-3 m, and 90 m (clamped to 80)
  against 40 m (ratio 2); its third and fourth pixels are not evaluated and would add ratios 10."""
  gts = np.array([[[1.0, 1.0], [1.0, 1.0]], [[5.0, 5.0], [0.0, 80.0]]], np.float32)[..., None]
  ref = np.array([[[2.0, 2.0], [2.0, 2.0]], [[1e-3, 40.0], [1.0, 1.0]]], np.float32)[..., None]
  pred = np.array([[[3.0, 2.0], [2.0, 2.0]], [[0.0, 90.0], [10.0, 10.0]]], np.float32)[..., None]
  p = report_lib.parity_table(gts, ref, pred, PROTOCOL)
  assert sorted(p) == sorted(report_lib.PARITY_KEYS + ("num_images",))
  # Image 0: r = (ln 1.5, 0, 0, 0); image 1: r = (0, ln 2). Means over images of per-image means.
  assert p["num_images"] == 2
  np.testing.assert_allclose(p["mean_log_ratio"], (np.log(1.5) / 4 + np.log(2.0) / 2) / 2,
                             rtol=1e-6)
  np.testing.assert_allclose(p["mean_abs_log_ratio"], p["mean_log_ratio"], rtol=1e-6)
  assert p["within_1.25"] == pytest.approx((3 / 4 + 1 / 2) / 2)
  assert p["max_rel_diff"] == pytest.approx(1.0)   # |80 - 40| / 40
  # Swapping the roles flips the sign of the log ratio (clamps are symmetric).
  q = report_lib.parity_table(gts, pred, ref, PROTOCOL)
  np.testing.assert_allclose(q["mean_log_ratio"], -p["mean_log_ratio"], rtol=1e-6)
  with pytest.raises(InvalidInputError, match=r"preds must be \(N, H, W, 1\) like gts \(image 0: "
                                              r"\(2, 2, 1\)\), got \(2, 2\)"):
    report_lib.parity_table(gts, ref, pred[..., 0], PROTOCOL)
  with pytest.raises(InvalidInputError, match="preds has NaN"):
    report_lib.parity_table(gts, ref, np.full_like(pred, np.nan), PROTOCOL)
  with pytest.raises(InvalidInputError, match="none of the 2 images"):
    report_lib.parity_table(np.zeros_like(gts), ref, pred, PROTOCOL)


def test_bad_inputs(model, tmp_path):
  images, depths = _data(model, n=2)
  with pytest.raises(InvalidInputError, match=r"'onnx'.*saved_model.*tflite_qat"):
    report_lib.check_format("onnx")
  with pytest.raises(InvalidInputError, match="empty"):
    report_lib.export_artefact(model, {"experiment": "t"}, "tflite_int8", str(tmp_path),
                               representative_dataset=[])
  with pytest.raises(InvalidInputError, match="qat_options"):
    report_lib.export_artefact(model, {"experiment": "t"}, "tflite_qat", str(tmp_path))
  with pytest.raises(InvalidInputError, match="bias_correction is a tflite_int8 option, got "
                                              "format 'tflite_fp32'"):
    report_lib.export_artefact(model, {"experiment": "t"}, "tflite_fp32", str(tmp_path),
                               bias_correction=True)
  with pytest.raises(InvalidInputError, match=r"one depth map per test image \(2\), got 1"):
    report_lib.export_and_report(model, {"experiment": "t"}, "tflite_fp32", str(tmp_path),
                                 test_images=images, test_depths=depths[:1], protocol=PROTOCOL)
  with pytest.raises(InvalidInputError, match="'onnx'"):
    cli.export_experiment("fastdepth_synthetic_street", "x.h5", "onnx", str(tmp_path))
  with pytest.raises(ConfigError, match="no_such_experiment"):
    cli.export_experiment("no_such_experiment", "x.h5", "saved_model", str(tmp_path))
  with pytest.raises(InvalidInputError, match="does not exist"):
    cli.export_experiment("fastdepth_synthetic_street", str(tmp_path / "none.weights.h5"),
                          "saved_model", str(tmp_path))


def test_checkpoint_of_another_model_is_refused(model, tmp_path):
  from trainers import experiments  # pylint: disable=g-import-not-at-top
  path = str(tmp_path / "other.weights.h5")
  model.save_weights(path)  # a 64x64 FastDepth-0.25: not the experiment's FastDepth-0.5
  config = experiments.get_experiment("fastdepth_synthetic_street")
  with pytest.raises(InvalidInputError, match=r"does not match the model of experiment "
                                              r"'fastdepth_synthetic_street'"):
    cli.load_experiment_network(config, path)


def _latency(ms1, ms2, cpu1):
  return {"1": {"median_ms": ms1, "median_cpu_ms": cpu1}, "2": {"median_ms": ms2}}


def test_benchmark_summary_and_markdown(tmp_path, capsys):
  from benchmarks import export_formats as bench  # pylint: disable=g-import-not-at-top
  keras_row = {"abs_rel": 0.1, "delta1": 0.9}
  per_format = {
      "keras_metrics": keras_row,
      "tflite_fp32": {"size_bytes": 16_000_000, "latency": _latency(30.0, 20.0, 24.0),
                      "metrics": {"keras": keras_row,
                                  "tflite_fp32": {"abs_rel": 0.1, "delta1": 0.9}}},
      "tflite_int8": {"size_bytes": 4_000_000, "latency": _latency(10.0, 8.0, 6.0),
                      "metrics": {"keras": keras_row,
                                  "tflite_int8": {"abs_rel": 0.102, "delta1": 0.89}},
                      "parity": {"within_1.25": 0.75, "mean_log_ratio": float(np.log(0.8))}},
      "tflite_qat": {"skipped": "no tf_keras twin"},
  }
  summary = bench.drift_summary(per_format)
  # 0.102 / 0.1 - 1 = +2 %; 30 / 10 = 3x, 20 / 8 = 2.5x faster; 16 / 4 = 4x smaller.
  assert summary["tflite_int8_abs_rel_drift"] == pytest.approx(0.02)
  assert summary["tflite_fp32_abs_rel_drift"] == pytest.approx(0.0)
  assert summary["int8_speedup_1thr"] == pytest.approx(3.0)
  assert summary["int8_speedup_2thr"] == pytest.approx(2.5)
  assert summary["int8_size_ratio"] == pytest.approx(4.0)
  assert summary["int8_speedup_1thr_cpu"] == pytest.approx(4.0)  # 24 / 6
  per_format["summary"] = summary
  record = {"figures": {"fastdepth_224": per_format}}
  path = tmp_path / "r.json"
  path.write_text(json.dumps(record))
  bench.main(["--markdown", f"--results={path}"])
  md = capsys.readouterr().out
  assert md == bench.markdown_table(record)
  lines = md.splitlines()
  assert lines[0] == ("| model | format | size (MB) | 1 thread (ms) | 2 threads (ms) | AbsRel | "
                      "δ1 | within 1.25× of Keras | depth scale vs Keras |")
  assert lines[2] == ("| FastDepth 224×224 | Keras (reference) | n/a | n/a | n/a | 0.1000 | "
                      "0.9000 | n/a | n/a |")
  # A result without parity figures (recorded before they existed) shows n/a there.
  assert lines[3] == "|  | TFLite fp32 | 16.0 | 30.0 | 20.0 | 0.1000 | 0.9000 | n/a | n/a |"
  assert lines[4] == ("|  | TFLite full int8 | 4.0 | 10.0 | 8.0 | 0.1020 | 0.8900 | 0.7500 | "
                      "0.800 |")
  assert lines[5] == "|  | TFLite QAT int8 | n/a | n/a | n/a | n/a | n/a | n/a | n/a |"
  assert ("- fastdepth_224: int8 AbsRel drift +2.0 %; int8 3.00x / 2.50x faster (1 / 2 threads) "
          "and 4.00x smaller than fp32; 4.00x in CPU time (1 thread).") in lines


# A Monodepth2 experiment shrunk to 64x64 (the depth net's minimum) on 2 / 1 / 2 rendered clips.
SELF_SUPERVISED_OVERRIDES = [
    "data.height=64", "data.width=64", "train.batch_size=2", "data.builder_kwargs.height=64",
    "data.builder_kwargs.width=64", "data.builder_kwargs.num_train=2",
    "data.builder_kwargs.num_validation=1", "data.builder_kwargs.num_test=2"]


def test_self_supervised_experiment_exports_its_depth_net(tmp_path):
  """tfdepth-export of a Monodepth2 checkpoint: the scale-0 depth model with the trained depth
  net's weights (same depth as the trainer), median-scaled metrics, float32 TFLite == Keras."""
  from trainers import experiments  # pylint: disable=g-import-not-at-top
  from trainers import self_supervised  # pylint: disable=g-import-not-at-top
  config = experiments.apply_overrides(
      experiments.get_experiment("monodepth2_synthetic_street"), SELF_SUPERVISED_OVERRIDES)
  trainer = self_supervised.build_self_supervised_trainer(config, 1, with_metrics=False)
  path = str(tmp_path / "md2.weights.h5")
  trainer.save_weights(path)
  network = cli.load_experiment_network(config, path)
  assert sorted(network.output) == ["depth"]
  assert len(network.get_weights()) < len(trainer.depth_net.get_weights())  # no disp_1..3 heads
  images = np.random.default_rng(0).uniform(size=(2, 64, 64, 3)).astype(np.float32)
  # Same layers and weights on the same input: the same float32 computation.
  np.testing.assert_allclose(network(images)["depth"].numpy(),
                             trainer(images, training=False)["depth"].numpy(), rtol=1e-6)
  rep = cli.export_experiment("monodepth2_synthetic_street", path, "tflite_fp32",
                              str(tmp_path / "out"), overrides=SELF_SUPERVISED_OVERRIDES,
                              data_dir=str(tmp_path / "tfds"), num_test=2, num_runs=1)
  assert rep["protocol"] == "synthetic_street_median"
  assert rep["metadata"]["metrics_protocol"] == "synthetic_street_median"
  assert rep["metadata"]["depth_range"] == [pytest.approx(0.1), pytest.approx(100.0)]
  keras_abs_rel = rep["metrics"]["keras"]["abs_rel"]
  assert rep["metrics"]["tflite_fp32"]["abs_rel"] == pytest.approx(keras_abs_rel, rel=FP32_ABS_REL)
  # A supervised checkpoint is not a Monodepth2 trainer's.
  other = str(tmp_path / "other.weights.h5")
  spread_fastdepth(INPUT_SIZE).save_weights(other)
  with pytest.raises(InvalidInputError, match="does not match the trainer of experiment "
                                              "'monodepth2_synthetic_street'"):
    cli.load_experiment_network(config, other)


def test_dynamic_experiment_exports_its_softplus_depth_net(tmp_path):
  """A Li et al. 2021 checkpoint exports its scale-0 softplus depth head (no disp_to_depth): the
  same depth as the trainer."""
  from trainers import dynamic  # pylint: disable=g-import-not-at-top
  from trainers import experiments  # pylint: disable=g-import-not-at-top
  config = experiments.apply_overrides(
      experiments.get_experiment("dynamic_synthetic_street"),
      SELF_SUPERVISED_OVERRIDES + ["model.kwargs.base_channels=2"])
  trainer = dynamic.build_dynamic_trainer(config, 1, with_metrics=False)
  path = str(tmp_path / "li.weights.h5")
  trainer.save_weights(path)
  assert cli.video_export_builder_kwargs(config, "dynamic_depth")["output"] == "depth"
  network = cli.load_experiment_network(config, path)
  assert not [l for l in network.layers if isinstance(l, keras.layers.Lambda)]
  images = np.random.default_rng(0).uniform(size=(2, 64, 64, 3)).astype(np.float32)
  np.testing.assert_allclose(network(images)["depth"].numpy(),
                             trainer(images, training=False)["depth"].numpy(), rtol=1e-6)
  # An experiment without a test split (dynamic_cityscapes_style: no ground truth) exports
  # without metrics instead of asking TFDS for split '' (an untyped ValueError before).
  rep = cli.export_experiment(
      "dynamic_synthetic_street", path, "tflite_fp32", str(tmp_path / "out"),
      overrides=SELF_SUPERVISED_OVERRIDES + ["model.kwargs.base_channels=2", "data.test_split="],
      data_dir=str(tmp_path / "tfds"), num_test=2, num_runs=1)
  assert "metrics" not in rep and "parity" not in rep and rep["size_bytes"] > 0


def test_benchmark_markdown_reports_a_failed_format():
  from benchmarks import export_formats as bench  # pylint: disable=g-import-not-at-top
  keras_row = {"abs_rel": 0.1, "delta1": 0.9}
  per_format = {"keras_metrics": keras_row,
                "tflite_qat": {"error": "RuntimeError: tflite/kernels/div.cc:262 failed to invoke.\n"
                                        "Node number 163 (DIV) failed to invoke."}}
  per_format["summary"] = bench.drift_summary(per_format)
  assert per_format["summary"] == {}          # nothing measured, nothing derived
  md = bench.markdown_table({"figures": {"monodepth2_r18_192x640": per_format}})
  lines = md.splitlines()
  assert lines[3] == ("|  | TFLite QAT int8 (failed) | n/a | n/a | n/a | n/a | n/a | n/a | "
                      "n/a |")
  assert ("- monodepth2_r18_192x640: TFLite QAT int8 failed (Node number 163 (DIV) failed to "
          "invoke.).") in lines
