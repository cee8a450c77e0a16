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
  assert cfg.model.kwargs["new_option"] == (1, 2)   # new kwargs parse as JSON (arrays: tuples)
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


# ------------------------------------------------------------------ supervised model zoo (issue 4)
SUPERVISED_ZOO = ("eigen2014_nyu", "eigen2015_nyu", "fcrn_nyu", "dorn_kitti", "sid_deeplab_kitti",
                  "dpt_nyu")


def test_sid_edges_closed_form_and_bad_input():
  # min_depth = 1 m makes DORN's shift xi = 0: plain SID t_i = 16^(i/4) = 1, 2, 4, 8, 16 m;
  # float64 exp/log: relative 1e-12.
  assert experiments.sid_edges(1.0, 16.0, 4) == pytest.approx([1, 2, 4, 8, 16], rel=1e-12)
  # With min_depth 0.5 the shift is 0.5: SID on [1, 16.5] shifted back; ends pinned exactly.
  edges = experiments.sid_edges(0.5, 16.0, 2)
  assert edges[0] == 0.5 and edges[-1] == 16.0
  assert edges[1] == pytest.approx(16.5 ** 0.5 - 0.5, rel=1e-12)
  for args in ((0.0, 80.0, 80), (80.0, 1.0, 80), (1e-3, 80.0, 1), (1e-3, 80.0, 2.5)):
    with pytest.raises(ConfigError, match="sid_edges expected"):
      experiments.sid_edges(*args)


def test_sid_edges_equal_the_model_decoders_edges():
  # The loss kwargs and the models' decoding layers must bin depth identically (float32, exact:
  # both are the same float64 closed form rounded once).
  import numpy as np  # pylint: disable=g-import-not-at-top
  from tfdepth.geometry import discretization  # pylint: disable=g-import-not-at-top
  for name, term in (("dorn_kitti", "ordinal"), ("sid_deeplab_kitti", "sid_cross_entropy")):
    cfg = experiments.get_experiment(name)
    kw = cfg.model.kwargs
    k = kw.get("num_bins", kw.get("num_classes"))
    edges = [l for l in cfg.losses if l.name == term][0].kwargs["edges"]
    expected = discretization.sid_edges(kw["min_depth"], kw["max_depth"], k, shift=True).numpy()
    np.testing.assert_array_equal(np.asarray(edges, np.float32), expected)


def test_supervised_zoo_experiments_carry_the_published_settings():
  assert set(SUPERVISED_ZOO) <= set(experiments.list_experiments())
  for name in SUPERVISED_ZOO:
    cfg = experiments.get_experiment(name)
    assert cfg.data.height % 32 == 0 and cfg.data.width % 32 == 0, name
  dorn = experiments.get_experiment("dorn_kitti")
  assert dorn.model.name == "dorn" and dorn.model.kwargs["num_bins"] == 80
  assert (dorn.data.height, dorn.data.width) == (384, 512)          # 385x513 crops, /32
  assert dorn.optimizer.name == "sgd" and dorn.optimizer.learning_rate == 1e-4
  assert dorn.optimizer.schedule == "polynomial" and dorn.optimizer.power == 0.9
  assert dorn.train.batch_size == 3
  assert dorn.train.epochs * dorn.train.steps_per_epoch == 300_000
  (ordinal,) = dorn.losses
  assert ordinal.name == "ordinal" and ordinal.prediction_key == "ordinal_logits"
  assert len(ordinal.kwargs["edges"]) == 81 and ordinal.kwargs["edges"][-1] == 80.0
  assert dorn.metrics_protocol == "kitti_eigen" and dorn.max_depth == 80.0
  sid = experiments.get_experiment("sid_deeplab_kitti")
  assert sid.model.name == "sid_classifier" and sid.model.kwargs["num_classes"] == 71
  assert sid.model.kwargs["max_depth"] == 80.0
  (ce,) = sid.losses
  assert ce.name == "sid_cross_entropy" and ce.prediction_key == "logits"
  assert len(ce.kwargs["edges"]) == 72
  assert sid.optimizer.learning_rate == 2.5e-4 and sid.train.batch_size == 10
  assert sid.train.epochs * sid.train.steps_per_epoch == 20_000
  dpt = experiments.get_experiment("dpt_nyu")
  assert dpt.model.name == "dpt" and dpt.model.kwargs["max_depth"] == 10.0
  assert (dpt.data.height, dpt.data.width) == (384, 512)
  assert dpt.losses[0].kwargs == {"variance_focus": 0.85} and dpt.metrics_protocol == "nyu"
  assert dpt.optimizer.warmup_steps == 100 and dpt.optimizer.learning_rate == 1e-4
  e14 = experiments.get_experiment("eigen2014_nyu")
  assert e14.model.name == "eigen2014" and e14.losses[0].kwargs == {"variance_focus": 0.5}
  assert e14.train.batch_size == 32 and (e14.data.height, e14.data.width) == (224, 288)
  e15 = experiments.get_experiment("eigen2015_nyu")
  assert e15.model.kwargs["tasks"] == ("depth",)
  # The paper's own gradient term (Eigen & Fergus 2015, Eq. 2), unit weight.
  assert [(l.name, l.weight) for l in e15.losses] == [("silog", 1.0), ("gradient", 1.0)]


def test_kitti_zoo_experiments_use_eigen_zhou_depth_and_weight_decay():
  import keras  # pylint: disable=g-import-not-at-top
  from tfds_builders.kitti_depth import kitti_depth_dataset_builder as kd  # pylint: disable=g-import-not-at-top
  from trainers import common  # pylint: disable=g-import-not-at-top
  builder_configs = {c.name: c for c in kd.Builder.BUILDER_CONFIGS}
  for name in ("dorn_kitti", "sid_deeplab_kitti"):
    cfg = experiments.get_experiment(name)
    assert cfg.data.tfds_name == "kitti_depth/eigen_zhou_depth", name
    assert builder_configs["eigen_zhou_depth"].kind == "eigen_zhou_depth"
    assert (cfg.data.train_split, cfg.data.validation_split, cfg.data.test_split) == (
        "train", "validation", "test")
    assert "Needs a supervised KITTI source" not in cfg.description
    # Fu et al. 2018 Sec. 4 / DeepLab v2 solver: 5e-4, handed to Keras SGD by build_optimizer.
    assert cfg.optimizer.weight_decay == 5e-4
    optimizer = common.build_optimizer(cfg.optimizer, total_steps=10)
    assert isinstance(optimizer, keras.optimizers.SGD)
    assert optimizer.weight_decay == 5e-4 and optimizer.momentum == 0.9


def test_dorn_edges_override_and_json_round_trip(tmp_path):
  edges = experiments.sid_edges(1e-3, 80.0, 4)
  cfg = experiments.apply_overrides(experiments.get_experiment("dorn_kitti"), [
      "model.kwargs.num_bins=4", "losses.ordinal.kwargs.edges=" + json.dumps(edges)])
  assert cfg.model.kwargs["num_bins"] == 4
  assert cfg.losses[0].kwargs["edges"] == tuple(edges)   # JSON floats round-trip exactly
  experiments.save_resolved_config(cfg, str(tmp_path))
  assert experiments.load_resolved_config(str(tmp_path)) == cfg


def test_data_cache_mode_auto_caches_only_the_synthetic_world():
  from trainers import common  # pylint: disable=g-import-not-at-top
  street = experiments.get_experiment("fastdepth_synthetic_street")
  kitti = experiments.get_experiment("dorn_kitti")
  assert street.data.cache == kitti.data.cache == "auto"
  assert common.cache_in_memory(street) is True
  assert common.cache_in_memory(kitti) is False          # 375x1242 frames: no in-memory cache
  assert common.cache_in_memory(experiments.apply_overrides(kitti, ["data.cache=memory"]))
  assert not common.cache_in_memory(experiments.apply_overrides(street, ["data.cache=none"]))
  with pytest.raises(ConfigError, match=r"data.cache must be one of .*received 'disk'"):
    experiments.apply_overrides(street, ["data.cache=disk"])


def test_free_form_kwargs_parse_literals_strictly():
  base = experiments.get_experiment("fastdepth_synthetic_street")
  cfg = experiments.apply_overrides(base, [
      "model.kwargs.a=False", "model.kwargs.b=TRUE", "model.kwargs.c=None", "model.kwargs.d=Null",
      "model.kwargs.e=.5", "model.kwargs.f=bilinear", 'model.kwargs.g="no"', "model.kwargs.h=2"])
  kwargs = cfg.model.kwargs
  assert kwargs["a"] is False and kwargs["b"] is True   # not the truthy strings "False", "TRUE"
  assert kwargs["c"] is None and kwargs["d"] is None
  assert kwargs["e"] == 0.5 and kwargs["f"] == "bilinear" and kwargs["g"] == "no"
  assert kwargs["h"] == 2 and isinstance(kwargs["h"], int)


@pytest.mark.parametrize("override, message", [
    ("model.kwargs.flag=no", r"model.kwargs.flag='no': ambiguous bare word 'no'; expected "
                             r"true/false"),
    ("model.kwargs.flag=Yes", "ambiguous bare word 'Yes'"),
    ("model.kwargs.scale=nan", r"model.kwargs.scale='nan': expected finite numbers, received nan"),
    ("model.kwargs.scales=[1, Infinity]", "expected finite numbers, received inf"),
    ("model.kwargs.width_multiplier=inf", "expected a finite float, received inf"),
    ("optimizer.learning_rate=nan", r"optimizer.learning_rate must be a finite float > 0, "
                                    r"received nan"),
    ("optimizer.learning_rate=-1e-3", "optimizer.learning_rate must be a finite float > 0"),
    ("optimizer.clipnorm=-1", r"optimizer.clipnorm must be a finite float >= 0 \(0 = no "
                              r"clipping\) or None, received -1.0"),
    ("optimizer.weight_decay=inf", "optimizer.weight_decay must be a finite float >= 0"),
    ("optimizer.warmup_steps=-5", "optimizer.warmup_steps must be a non-negative integer"),
    ("train.steps_per_epoch=-3", r"train.steps_per_epoch must be a non-negative integer \(0 = "
                                 r"default\), received -3"),
    ("train.validation_steps=-1", "train.validation_steps must be a non-negative integer"),
    ("max_depth=-1", r"max_depth must be a finite float > 0 \(metres\) or None, received -1.0"),
    ("max_depth=nan", "max_depth must be a finite float > 0"),
    ("losses.silog.weight=nan", "losses.silog.weight must be a finite float >= 0, received nan"),
    ("data.min_crop_fraction=0", r"data.min_crop_fraction must be in \(0, 1\], received 0.0"),
])
def test_overrides_reject_non_finite_and_out_of_range_values(override, message):
  base = experiments.get_experiment("fastdepth_synthetic_street")
  with pytest.raises(ConfigError, match=message):
    experiments.apply_overrides(base, [override])
