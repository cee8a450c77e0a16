"""The supervised model-zoo experiments (issue 4) resolve, build and run `fit` through
`trainers.train.train` on the synthetic world stand-in (tiny sizes, one step)."""

import dataclasses
import math
import os

import numpy as np
import pytest

from trainers import experiments
from trainers import train as train_lib

# 32x64 frames, 4 training examples, batch 2, one training and one validation step: the smallest
# run that goes through the whole tfdepth-train path (builder, pipeline, trainer, checkpoints).
STAND_IN_OVERRIDES = [
    "data.height=32", "data.width=64", "data.builder_kwargs.height=32",
    "data.builder_kwargs.width=64", "data.builder_kwargs.num_train=4",
    "data.builder_kwargs.num_validation=2", "data.builder_kwargs.num_test=2",
    "train.batch_size=2", "train.epochs=1", "train.steps_per_epoch=1",
    "train.validation_steps=1", "data.train_split=train", "data.validation_split=validation",
    "data.test_split=test",
]
STREET = ["data.tfds_name=synthetic_world/street", "metrics_protocol=synthetic_street"]
INDOOR = ["data.tfds_name=synthetic_world/indoor", "metrics_protocol=synthetic_indoor"]
# Per experiment: the synthetic scene standing in for its dataset and widths shrunk so that one
# step traces in seconds (the architecture is the registered one).
SHRINK = {
    "eigen2014_nyu": INDOOR + ["model.kwargs.fc_units=16"],
    "eigen2015_nyu": INDOOR + ["model.kwargs.fc_units=16"],
    "dorn_kitti": STREET + ["model.kwargs.num_layers=18", "model.kwargs.width_multiplier=0.0625"],
    "sid_deeplab_kitti": STREET + ["model.kwargs.num_layers=18"],
    "fcrn_nyu": INDOOR + ["model.kwargs.num_layers=18", "model.kwargs.width_multiplier=0.0625"],
    "dpt_nyu": INDOOR + ["model.kwargs.hidden_size=32", "model.kwargs.num_layers=4",
                         "model.kwargs.num_heads=2", "model.kwargs.mlp_dim=64",
                         "model.kwargs.hooks=[0, 1, 2, 3]",
                         "model.kwargs.reassemble_channels=[8, 16, 32, 32]",
                         "model.kwargs.features=16"],
}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  return str(tmp_path_factory.mktemp("tfds"))


@pytest.mark.parametrize("name", sorted(SHRINK))
def test_experiment_runs_one_fit_step_through_tfdepth_train(name, data_dir, tmp_path):
  base = experiments.get_experiment(name)
  config = experiments.apply_overrides(base, STAND_IN_OVERRIDES + SHRINK[name])
  # The registered (published) settings other than size and data survive the overrides.
  assert config.losses == base.losses and config.optimizer == base.optimizer
  model_dir = str(tmp_path / "run")
  model, history, _ = train_lib.train(config, model_dir, data_dir=data_dir, verbose=0)
  logs = {k: v[-1] for k, v in history.history.items()}
  terms = [f"{l.name}_loss" for l in config.losses]
  assert set(terms + ["loss", "val_loss", "abs_rel", "val_abs_rel", "val_delta1"]) <= set(logs)
  assert all(math.isfinite(v) for v in logs.values()), logs
  # The total is the weighted sum of the per-term trackers (both are means over the same batch;
  # float32 sums of <= 2 terms: relative 1e-6).
  weighted = sum(l.weight * logs[f"{l.name}_loss"] for l in config.losses)
  assert logs["loss"] == pytest.approx(weighted, rel=1e-6)
  assert experiments.load_resolved_config(model_dir) == config
  assert os.path.exists(os.path.join(model_dir, "checkpoints", "last.weights.h5"))
  # The trained network predicts metric depth inside its range at the stand-in size.
  image = np.random.default_rng(0).uniform(0, 1, (1, 32, 64, 3)).astype(np.float32)
  depth = np.asarray(model.network(image, training=False)["depth"])   # eager: no extra trace
  assert depth.shape == (1, 32, 64, 1) and np.all(np.isfinite(depth))
  upper = config.model.kwargs.get("max_depth")
  if upper is not None:   # bounded heads: DORN / SID bin centres, DPT sigmoid x max_depth
    assert 0.0 < depth.min() and depth.max() <= upper
  else:                   # Eigen: exp(log depth); FCRN: softplus
    assert depth.min() > 0.0


# dorn_kitti on the real-format KITTI fixture (tfds_builders/kitti_depth/dummy_data: 24x80 frames,
# calibration files, Velodyne scans): kitti_depth/eigen_zhou_depth is prepared from it as a user
# would with --manual_dir, then tfdepth-train runs one step at 32x64 (the stand-in size; DORN's
# input must be a multiple of 32).
KITTI_DUMMY_OVERRIDES = [
    "data.height=32", "data.width=64", "train.batch_size=2", "train.epochs=1",
    "train.steps_per_epoch=1", "train.validation_steps=1",
    "model.kwargs.num_layers=18", "model.kwargs.width_multiplier=0.0625",
]
# dummy_data: train = 0113 frames 29, 31; validation = 0022 frame 6 (frame 7 has no scan);
# test = split_files/eigen (0002 frames 0, 3). See kitti_depth_dataset_builder_test.py.
KITTI_DUMMY_SPLITS = {"train": 2, "validation": 1, "test": 2}


def test_dorn_kitti_runs_one_fit_step_on_the_kitti_fixture(tmp_path):
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  from tfds_builders.kitti_depth import kitti_depth_dataset_builder as kd  # pylint: disable=g-import-not-at-top
  base = experiments.get_experiment("dorn_kitti")
  data_dir = str(tmp_path / "tfds")
  manual_dir = os.path.join(os.path.dirname(kd.__file__), "dummy_data")
  tfds.builder(base.data.tfds_name, data_dir=data_dir).download_and_prepare(
      download_config=tfds.download.DownloadConfig(
          manual_dir=manual_dir, compute_stats=tfds.download.ComputeStatsMode.SKIP))
  config = experiments.apply_overrides(base, KITTI_DUMMY_OVERRIDES)
  assert config.data == dataclasses.replace(base.data, height=32, width=64)
  assert config.losses == base.losses and config.optimizer == base.optimizer
  model_dir = str(tmp_path / "run")
  model, history, builder = train_lib.train(config, model_dir, data_dir=data_dir, verbose=0)
  assert builder.info.full_name == "kitti_depth/eigen_zhou_depth/1.1.0"
  assert {s: builder.info.splits[s].num_examples for s in KITTI_DUMMY_SPLITS} == KITTI_DUMMY_SPLITS
  logs = {k: v[-1] for k, v in history.history.items()}
  assert {"ordinal_loss", "loss", "val_loss", "abs_rel", "val_abs_rel"} <= set(logs)
  assert all(math.isfinite(v) for v in logs.values()), logs
  # One term of weight 1: the total is that term (same float32 mean; relative 1e-6).
  assert logs["loss"] == pytest.approx(logs["ordinal_loss"], rel=1e-6)
  assert model.optimizer.weight_decay == pytest.approx(5e-4, rel=1e-7)  # Fu et al. 2018, Sec. 4
  assert model.optimizer.iterations.numpy() == 1
  image = np.random.default_rng(0).uniform(0, 1, (1, 32, 64, 3)).astype(np.float32)
  depth = np.asarray(model.network(image, training=False)["depth"])
  # DORN decodes to SID bin centres inside [1e-3, 80] m.
  assert depth.shape == (1, 32, 64, 1) and 0.0 < depth.min() and depth.max() <= 80.0
