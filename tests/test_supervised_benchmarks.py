"""Cheap checks of benchmarks/supervised_learning.py and benchmarks/train_throughput.py (issue 4):
every (model, scene) / (model, variant) resolves to a valid experiment config, the baseline and the
README tables are computed correctly, and a subprocess over its time limit is recorded as such."""

import numpy as np
import pytest

from benchmarks import supervised_learning as sl
from benchmarks import train_throughput as tt
from trainers import experiments


@pytest.mark.parametrize("model", sorted(sl.MODELS))
def test_every_learning_pair_resolves_to_its_experiment_at_the_benchmark_size(model):
  for scene in sl.MODELS[model][1]:
    cfg = sl.model_config(model, scene)
    s = sl.SCENES[scene]
    assert (cfg.data.height, cfg.data.width) == (s["height"], s["width"])
    assert cfg.data.tfds_name == f"synthetic_world/{scene}"
    assert cfg.metrics_protocol == s["protocol"] and cfg.max_depth == s["max_depth"]
    assert cfg.optimizer.name == "adam" and cfg.optimizer.schedule == "constant"
    assert cfg.optimizer.learning_rate == sl.LEARNING_RATES.get(model, sl.DEFAULT_LEARNING_RATE)
    # The experiment's loss terms are kept.
    assert cfg.losses == experiments.get_experiment(sl.MODELS[model][0]).losses
    if "max_depth" in cfg.model.kwargs:
      assert cfg.model.kwargs["max_depth"] == s["max_depth"]
  with pytest.raises(ValueError, match="runs on scenes"):
    sl.model_config("dorn", "indoor")


def test_median_baseline_is_the_per_image_median_of_valid_ground_truth():
  # Image 0: valid depths 1, 2, 3 (0 = invalid, 90 > the 80 m cap) -> 2 everywhere.
  # Image 1: valid 4, 6 -> median 5 (mean of the two middle values).
  gt = np.array([[[1.0, 2.0], [3.0, 0.0]], [[4.0, 6.0], [90.0, 0.0]]], np.float32)[..., None]
  preds = sl.median_baseline(gt, "synthetic_street")
  np.testing.assert_array_equal(preds[0], np.full((2, 2, 1), 2.0, np.float32))
  np.testing.assert_array_equal(preds[1], np.full((2, 2, 1), 5.0, np.float32))


def test_learning_markdown_table_from_a_record():
  record = {"figures": {
      "baselines": {"street": {"abs_rel": 0.4, "delta1": 0.3}},
      "results": {"fastdepth/street": {"height": 64, "width": 192, "steps": 120,
                                       "train_seconds": 149.6, "abs_rel": 0.1, "delta1": 0.9}}}}
  lines = sl.markdown(record).splitlines()
  assert len(lines) == 3
  # AbsRel / baseline = 0.1 / 0.4 = 0.25.
  assert lines[2] == ("| fastdepth | street | 64x192 | 120 | 150 | 0.100 | 0.900 | 0.400 | "
                      "0.300 | 0.25 |")


@pytest.mark.parametrize("model", sorted(tt.MODELS))
def test_every_throughput_model_resolves_at_its_standard_size(model):
  for variant, (policy, jit) in tt.VARIANTS.items():
    cfg = tt.worker_config(model, policy, jit, batch_size=2)
    assert (cfg.data.height, cfg.data.width) == tt.MODELS[model][1], variant
    assert cfg.data.height % 32 == 0 and cfg.data.width % 32 == 0
    assert cfg.train.mixed_precision == policy and cfg.train.jit_compile is jit
    assert cfg.train.batch_size == 2


def test_throughput_markdown_marks_timeouts_and_errors():
  record = {"figures": {"results": {"fastdepth": {
      "fp32": {"status": "ok", "images_per_s": 2.345, "params": 3_900_000},
      "fp32_xla": {"status": "timeout", "timeout_s": 600},
      "bf16": {"status": "error", "message": "boom"}}}}}
  lines = tt.markdown(record).splitlines()
  assert lines[0] == ("| model | size | params | float32 | float32 + XLA | mixed_bfloat16 | "
                      "mixed_bfloat16 + XLA |")
  assert lines[2] == "| fastdepth | 224x224 | 3.9 M | 2.35 | timeout | error | - |"


def test_subprocess_over_its_limit_is_recorded_as_timeout():
  # Importing TensorFlow alone takes seconds, so 0.5 s always expires; the record says so.
  result = tt.run_in_subprocess("fastdepth", "fp32", batch_size=1, steps=1, warmup=1,
                                timeout_s=0.5)
  assert result["status"] == "timeout" and result["timeout_s"] == 0.5


def test_merge_variants_keeps_other_variants_of_the_same_settings(tmp_path, monkeypatch):
  """Variants run in parallel processes (`--merge`) end up in one JSON; other settings refuse."""
  from benchmarks import common  # pylint: disable=g-import-not-at-top
  monkeypatch.setattr(common, "RESULTS_DIR", str(tmp_path))
  settings = {"height": 64, "cpu_minutes_per_variant": 10.0, "render_seconds": 3.0}
  common.write_result("r", {**settings, "variants": {"a": {"abs_rel": 0.3},
                                                      "b": {"abs_rel": 0.9}}}, "cmd")
  figures = {**settings, "render_seconds": 5.0, "variants": {"b": {"abs_rel": 0.2}}}
  common.merge_variants(figures, "r", ["b"], check_only=True)
  assert figures["variants"] == {"b": {"abs_rel": 0.2}}        # checking merges nothing
  common.merge_variants(figures, "r", ["b"])
  # "a" comes from the file, this run's "b" wins; render time is not a setting.
  assert figures["variants"] == {"b": {"abs_rel": 0.2}, "a": {"abs_rel": 0.3}}
  other = {**settings, "cpu_minutes_per_variant": 2.0, "variants": {"c": {}}}
  with pytest.raises(SystemExit, match="cpu_minutes_per_variant"):
    common.merge_variants(other, "r", ["c"], check_only=True)
  common.merge_variants(other, "r", ["c"])   # after a run: its results are kept, not merged
  assert other["variants"] == {"c": {}}
  common.merge_variants(other, "missing", ["c"])   # no earlier file: nothing to merge
  assert other["variants"] == {"c": {}}
