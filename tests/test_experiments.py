"""Tests of trainers.experiments: registry, strict overrides, resolved config files."""

import dataclasses
import json
import os

import pytest

from tfdepth.errors import ConfigError
from trainers import experiments
from trainers.experiments import ExperimentConfig, LossConfig


def test_registered_experiments_and_unknown_name():
  names = experiments.list_experiments()
  assert {"fastdepth_synthetic_street", "fastdepth_synthetic_indoor"} <= set(names)
  street = experiments.get_experiment("fastdepth_synthetic_street")
  assert street.model.name == "fastdepth" and street.data.tfds_name == "synthetic_world/street"
  assert street.max_depth == 80.0 and street.metrics_protocol == "synthetic_street"
  with pytest.raises(ConfigError, match="unknown experiment 'nope'.*fastdepth_synthetic_street"):
    experiments.get_experiment("nope")
  with pytest.raises(dataclasses.FrozenInstanceError):
    street.name = "changed"


def test_overrides_parse_to_field_types_and_leave_original_untouched():
  base = experiments.get_experiment("fastdepth_synthetic_street")
  cfg = experiments.apply_overrides(base, [
      "train.batch_size=3", "optimizer.learning_rate=5e-4", "train.jit_compile=true",
      "optimizer.clipnorm=1.5", "losses.silog.weight=0.25", "model.kwargs.width_multiplier=1",
      "model.kwargs.new_option=[1, 2]", "max_depth=none", "data.tfds_name=synthetic_world/indoor"])
  assert cfg.train.batch_size == 3 and isinstance(cfg.train.batch_size, int)
  assert cfg.optimizer.learning_rate == 5e-4
  assert cfg.train.jit_compile is True
  assert cfg.optimizer.clipnorm == 1.5
  assert [l.weight for l in cfg.losses if l.name == "silog"] == [0.25]
  assert cfg.model.kwargs["width_multiplier"] == 1.0
  assert isinstance(cfg.model.kwargs["width_multiplier"], float)   # keeps the existing type
  assert cfg.model.kwargs["new_option"] == [1, 2]                  # new kwargs parse as JSON
  assert cfg.max_depth is None
  assert cfg.data.tfds_name == "synthetic_world/indoor"
  # The registered config is unchanged (frozen dataclasses, copies on override).
  assert base.train.batch_size == 16 and base.model.kwargs["width_multiplier"] == 0.5


@pytest.mark.parametrize("override, message", [
    ("train.batch_sise=3", r"'batch_sise' is not one of \['batch_size', 'epochs'"),
    ("nope=1", r"'nope' is not one of \['name', 'description', 'model'"),
    ("train.batch_size=three", "cannot parse 'three'"),
    ("train.jit_compile=maybe", "cannot parse 'maybe'"),
    ("losses.berhu.weight=1", r"'berhu' is not one of \['silog', 'l1'\]"),
    ("losses.silog.wait=1", "'wait' is not one of"),
    ("train=3", "is a section"),
    ("train.batch_size.x=3", "is a value, not a section"),
    ("train.batch_size", "not of the form"),
    ("train.batch_size=0", "train.batch_size must be a positive integer, received 0"),
    ("train.mixed_precision=float16", "must be one of"),
])
def test_overrides_are_strict(override, message):
  base = experiments.get_experiment("fastdepth_synthetic_street")
  with pytest.raises(ConfigError, match=message):
    experiments.apply_overrides(base, [override])


def test_resolved_config_round_trips_through_json(tmp_path):
  cfg = experiments.apply_overrides(experiments.get_experiment("fastdepth_synthetic_indoor"),
                                    ["train.epochs=2", "losses.l1.weight=0.5"])
  path = experiments.save_resolved_config(cfg, str(tmp_path / "run"))
  assert path == os.path.join(str(tmp_path / "run"), experiments.RESOLVED_CONFIG_FILENAME)
  with open(path) as f:
    data = json.load(f)
  assert data["train"]["epochs"] == 2 and data["losses"][1] == {
      "name": "l1", "weight": 0.5, "prediction_key": "depth", "target_key": "depth",
      "kwargs": {}, "target_kwargs": {}, "use_mask": True}
  assert experiments.load_resolved_config(str(tmp_path / "run")) == cfg
  data["train"]["bogus"] = 1
  with pytest.raises(ConfigError, match="unknown keys \\['bogus'\\]"):
    experiments.config_from_dict(data)
  with pytest.raises(ConfigError, match="no resolved config"):
    experiments.load_resolved_config(str(tmp_path / "missing"))


def test_register_experiment_rejects_duplicates_and_invalid_configs():
  cfg = ExperimentConfig(name="test_only_tiny", losses=(LossConfig("l1", 1.0),))
  experiments.register_experiment(cfg, overwrite=True)
  assert experiments.get_experiment("test_only_tiny") is cfg
  with pytest.raises(ConfigError, match="already registered"):
    experiments.register_experiment(cfg)
  with pytest.raises(ConfigError, match="unique"):
    experiments.register_experiment(dataclasses.replace(
        cfg, name="test_only_dup", losses=(LossConfig("l1"), LossConfig("l1"))))
  with pytest.raises(ConfigError, match="non-empty config.name"):
    experiments.register_experiment(ExperimentConfig())
