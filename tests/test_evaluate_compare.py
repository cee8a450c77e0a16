"""tfdepth-eval outputs (protocol, per-image JSON), --compare, and --help of the console scripts."""

import json
import os
import subprocess
import sys

from absl import flags
import numpy as np
import pytest

from tfdepth import metrics
from tfdepth.errors import ConfigError
from tfdepth.errors import DataError
from tfdepth.errors import InvalidInputError
from trainers import evaluate as evaluate_lib

# Metrics are computed in float64 from float32 inputs that are exact small integers; 1e-6
# relative covers float32 rounding of the per-image ratios and means.
RTOL = 1e-6
# A protocol without crop and with median scaling, so the hand-computed cases stay tiny.
MEDIAN_PROTOCOL = metrics.EvalProtocol("test_median", 1e-3, 80.0, median_scaling=True)
SIZE = 4


def _synthetic():
  """3 images (SIZE x SIZE): gt 2 everywhere; gt 3 on 5 pixels; no valid pixel. pred = 1."""
  gts = np.zeros([3, SIZE, SIZE, 1], np.float32)
  gts[0] = 2.0
  gts[1].reshape(-1)[:5] = 3.0
  preds = np.ones_like(gts)
  return gts, preds


def test_per_image_unscaled_protocol(tmp_path):
  gts, preds = _synthetic()
  table, per_image = evaluate_lib.metric_table_per_image(gts, preds, "synthetic_street")
  # abs_rel = |gt - 1| / gt: 0.5 and 2/3; rmse = 1 and 2; the empty image is excluded.
  assert table["abs_rel"] == pytest.approx((0.5 + 2 / 3) / 2, rel=RTOL)
  assert table["rmse"] == pytest.approx(1.5, rel=RTOL)
  assert table[metrics.NUM_VALID_KEY] == 2
  assert [r["index"] for r in per_image] == [0, 1, 2]
  assert [r[metrics.NUM_VALID_KEY] for r in per_image] == [SIZE * SIZE, 5, 0]
  assert per_image[0]["abs_rel"] == pytest.approx(0.5, rel=RTOL)
  assert per_image[1]["rmse"] == pytest.approx(2.0, rel=RTOL)
  assert per_image[2]["abs_rel"] is None  # NaN -> null in JSON
  assert all(evaluate_lib.SCALE_KEY not in r for r in per_image)  # no scaling in this protocol

  evaluate_lib.write_tables({"run": table}, "synthetic_street", str(tmp_path), {"split": "test"},
                            per_image=per_image)
  description = metrics.get_protocol("synthetic_street").describe()
  with open(tmp_path / evaluate_lib.PER_IMAGE_JSON) as f:
    written = json.load(f)
  assert written["images"] == per_image
  assert written["protocol"] == "synthetic_street"
  assert written["protocol_description"] == description
  with open(tmp_path / evaluate_lib.METRICS_JSON) as f:
    assert json.load(f)["protocol_description"] == description
  md = (tmp_path / evaluate_lib.METRICS_MD).read_text()
  assert description in md and "no crop" in md and "| run | 0.5833 |" in md


def test_per_image_median_scaling_ratio(tmp_path):
  gts, preds = _synthetic()
  table, per_image = evaluate_lib.metric_table_per_image(gts, preds, MEDIAN_PROTOCOL)
  # Median scaling makes pred == gt: ratios 2 and 3, zero errors.
  assert [r[evaluate_lib.SCALE_KEY] for r in per_image[:2]] == pytest.approx([2.0, 3.0],
                                                                              rel=RTOL)
  assert per_image[2][evaluate_lib.SCALE_KEY] is None
  assert table["abs_rel"] == pytest.approx(0.0, abs=RTOL)
  # Raw evaluate_predictions dicts are converted by write_tables too.
  _, raw = metrics.evaluate_predictions(list(gts[..., 0]), list(preds[..., 0]), MEDIAN_PROTOCOL)
  evaluate_lib.write_tables({"run": table}, MEDIAN_PROTOCOL, str(tmp_path), per_image=raw)
  with open(tmp_path / evaluate_lib.PER_IMAGE_JSON) as f:
    assert json.load(f)["images"] == per_image
  assert "per-image median scaling" in (tmp_path / evaluate_lib.METRICS_MD).read_text()


def test_self_supervised_median_protocol_name(tmp_path):
  """`self_supervised.evaluate` passes "<registered>_median" names (`eval_protocol`)."""
  protocol = evaluate_lib.resolve_protocol("synthetic_street_median")
  assert protocol.median_scaling and protocol.name == "synthetic_street_median"
  assert protocol.max_depth == metrics.get_protocol("synthetic_street").max_depth
  evaluate_lib.write_tables({"run": {"abs_rel": 0.5}}, "synthetic_street_median", str(tmp_path))
  with open(tmp_path / evaluate_lib.METRICS_JSON) as f:
    assert json.load(f)["protocol_description"] == protocol.describe()
  with pytest.raises(ConfigError, match="no_such_protocol"):
    evaluate_lib.resolve_protocol("no_such_protocol")


def _write_run(root, name, protocol, abs_rel, rmse):
  run = root / name
  run.mkdir()
  data = {"protocol": protocol, "protocol_description": metrics.get_protocol(protocol).describe(),
          "results": {name: {"abs_rel": abs_rel, "rmse": rmse, "num_valid": 3}}}
  (run / evaluate_lib.METRICS_JSON).write_text(json.dumps(data))
  return str(run)


def test_compare_table_equals_inputs(tmp_path):
  a = _write_run(tmp_path, "a", "synthetic_street", 0.125, 2.5)
  b = _write_run(tmp_path, "b", "synthetic_street", 0.25, 3.75)
  out = tmp_path / "report"
  rows, md = evaluate_lib.compare_runs([a, b], output_dir=str(out))
  assert rows[a]["abs_rel"] == 0.125 and rows[a]["rmse"] == 2.5
  assert rows[b]["abs_rel"] == 0.25 and rows[b]["rmse"] == 3.75
  assert f"| {a} | 0.1250 | 2.5000 | synthetic_street |" in md
  assert f"| {b} | 0.2500 | 3.7500 | synthetic_street |" in md
  assert metrics.get_protocol("synthetic_street").describe() in md
  assert (out / evaluate_lib.COMPARE_MD).read_text().strip() == md
  with open(out / evaluate_lib.COMPARE_JSON) as f:
    assert json.load(f)["runs"] == rows


def test_compare_missing_file_names_path(tmp_path):
  a = _write_run(tmp_path, "a", "synthetic_street", 0.1, 1.0)
  missing = tmp_path / "never_evaluated"
  missing.mkdir()
  with pytest.raises(DataError, match=str(missing / evaluate_lib.METRICS_JSON)):
    evaluate_lib.compare_runs([a, str(missing)])


def test_compare_refuses_mixed_protocols(tmp_path):
  a = _write_run(tmp_path, "a", "synthetic_street", 0.1, 1.0)
  b = _write_run(tmp_path, "b", "kitti_eigen", 0.2, 2.0)
  with pytest.raises(ConfigError, match="allow_mixed_protocols"):
    evaluate_lib.compare_runs([a, b])
  rows, md = evaluate_lib.compare_runs([a, b], allow_mixed_protocols=True)
  assert rows[b]["protocol"] == "kitti_eigen" and "garg crop" in md


def test_compare_flag_through_main(tmp_path, capsys):
  a = _write_run(tmp_path, "a", "nyu", 0.5, 1.0)
  b = _write_run(tmp_path, "b", "nyu", 0.75, 2.0)
  evaluate_lib._define_flags()  # pylint: disable=protected-access
  flags.FLAGS(["tfdepth-eval", f"--compare={a},{b}", f"--output_dir={tmp_path / 'cmp'}"])
  try:
    evaluate_lib.main([])
  finally:
    flags.FLAGS.unparse_flags()
  assert f"| {b} | 0.7500 | 2.0000 | nyu |" in capsys.readouterr().out
  assert (tmp_path / "cmp" / evaluate_lib.COMPARE_MD).exists()


# Console script -> a flag only that entry point defines.
HELP_CASES = {"tfdepth-train": "--experiment", "tfdepth-eval": "--compare",
              "tfdepth-demo": "--num_png", "tfdepth-export": "--format"}


def test_help_of_console_scripts_lists_own_flags():
  bindir = os.path.dirname(sys.executable)
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
  procs = {name: subprocess.Popen([os.path.join(bindir, name), "--help"], env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
           for name in HELP_CASES}
  for name, proc in procs.items():
    out, _ = proc.communicate(timeout=120)
    assert HELP_CASES[name] in out, (name, out[-2000:])
    assert f"`{name}`" in out, (name, out[-2000:])  # the module docstring is the usage


def test_scale_free_prediction_below_min_depth_is_scaled_before_the_clamp():
  # gt (2, 4, 6, 8) m; a scale-free prediction 1e-4 * (1, 2, 3, 5), below min_depth = 1e-3.
  # Median ratio 5 / 2.5e-4 = 2e4 -> (2, 4, 6, 10): abs_rel = (0 + 0 + 0 + 2/8) / 4 = 0.0625.
  # Clamping to 1e-3 first (the old order) made it constant -> 5 everywhere after scaling:
  # (3/2 + 1/4 + 1/6 + 3/8) / 4 = 0.572917.
  gts = np.array([2.0, 4.0, 6.0, 8.0], np.float32).reshape(1, 1, 4, 1)
  preds = (np.array([1.0, 2.0, 3.0, 5.0]) * 1e-4).astype(np.float32).reshape(1, 1, 4, 1)
  table, per_image = evaluate_lib.metric_table_per_image(gts, preds, MEDIAN_PROTOCOL)
  assert table["abs_rel"] == pytest.approx(0.0625, rel=RTOL)
  assert per_image[0][evaluate_lib.SCALE_KEY] == pytest.approx(2e4, rel=RTOL)
  # Same through the "<name>_median" protocol of the self-supervised experiments.
  assert evaluate_lib.metric_table(gts, preds, "synthetic_street_median")["abs_rel"] == (
      pytest.approx(0.0625, rel=RTOL))


def test_zero_prediction_like_the_streaming_metric_and_bad_predictions_refused():
  # A ReLU head's 0 m on a valid pixel (gt 2 m): replaced by RESIZE_MIN_DEPTH, then clamped to
  # min_depth = 1e-3 after scaling -> abs_rel |2 - 0.001| / 2 = 0.9995 (the other pixel is
  # exact). Mean over the 2 pixels: 0.49975; the streaming metric gives the same.
  gts = np.full((1, 1, 2, 1), 2.0, np.float32)
  preds = np.array([0.0, 2.0], np.float32).reshape(1, 1, 2, 1)
  table = evaluate_lib.metric_table(gts, preds, "synthetic_street")
  assert table["abs_rel"] == pytest.approx(0.9995 / 2, rel=RTOL)
  streaming = metrics.AbsRel.from_protocol("synthetic_street")
  streaming.update_state(gts, preds)
  assert float(streaming.result()) == pytest.approx(0.9995 / 2, rel=RTOL)
  for bad, shown in ((-0.5, r"-0\.5"), (np.nan, "nan"), (np.inf, "inf")):
    preds_bad = preds.copy()
    preds_bad[0, 0, 1, 0] = bad
    with pytest.raises(InvalidInputError, match=rf"preds\[0\].*{shown}.*\(0, 1, 0\)"):
      evaluate_lib.metric_table(gts, preds_bad, "synthetic_street")
