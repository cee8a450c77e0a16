"""Tests of the tfdepth-train / tfdepth-eval code paths on a tiny synthetic experiment."""

import json
import os

from absl import flags
import keras
import numpy as np
import pytest

from tfdepth.errors import ConfigError
from trainers import common
from trainers import evaluate as evaluate_lib
from trainers import experiments
from trainers import train as train_lib

TINY_OVERRIDES = [
    "data.height=32", "data.width=64", "data.builder_kwargs.height=32",
    "data.builder_kwargs.width=64", "data.builder_kwargs.num_train=8",
    "data.builder_kwargs.num_validation=2", "data.builder_kwargs.num_test=3",
    "model.kwargs.width_multiplier=0.25", "train.batch_size=4", "train.epochs=1",
    "train.steps_per_epoch=2",
]


def test_train_then_evaluate_through_the_flags(tmp_path):
  data_dir, model_dir = str(tmp_path / "tfds"), str(tmp_path / "run")
  config = experiments.apply_overrides(
      experiments.get_experiment("fastdepth_synthetic_street"), TINY_OVERRIDES)
  model, history, _ = train_lib.train(config, model_dir, data_dir=data_dir, verbose=0)
  assert {"loss", "silog_loss", "l1_loss", "val_loss", "val_abs_rel"} <= set(history.history)
  assert experiments.load_resolved_config(model_dir) == config
  for name in (common.LAST_CHECKPOINT, common.BEST_CHECKPOINT):
    assert os.path.exists(os.path.join(model_dir, common.CHECKPOINT_DIR, name))
  with open(os.path.join(model_dir, train_lib.HISTORY_FILENAME)) as f:
    assert json.load(f)["loss"] == pytest.approx(history.history["loss"])

  # tfdepth-eval --model_dir=... (config and best checkpoint read from the model_dir).
  evaluate_lib._define_flags()  # pylint: disable=protected-access
  flags.FLAGS(["tfdepth-eval", f"--model_dir={model_dir}", f"--data_dir={data_dir}"])
  try:
    evaluate_lib.main([])
  finally:
    flags.FLAGS.unparse_flags()
  with open(os.path.join(model_dir, evaluate_lib.METRICS_JSON)) as f:
    table = json.load(f)["results"][config.name]
  with open(os.path.join(model_dir, evaluate_lib.METRICS_MD)) as f:
    assert f"| {config.name} |" in f.read()
  # The offline table and the streaming Keras metrics implement the same protocol (per-image
  # means): on the same checkpoint they agree up to float32 vs float64 rounding.
  model.load_weights(common.find_checkpoint(model_dir))
  builder = common.prepare_builder(config.data, data_dir)
  test_ds = common.make_datasets(config, builder, ("test",))["test"]
  streaming = model.evaluate(test_ds, verbose=0, return_dict=True)
  for key in ("abs_rel", "rmse", "delta1"):
    assert table[key] == pytest.approx(streaming[key], rel=1e-4, abs=1e-6)


def test_entrypoint_errors():
  with pytest.raises(ConfigError, match="unknown strategy 'gpu'"):
    common.get_strategy("gpu")
  with pytest.raises(ConfigError, match="no checkpoint"):
    common.find_checkpoint("/nonexistent/run")
  cfg = experiments.apply_overrides(experiments.get_experiment("fastdepth_synthetic_street"),
                                    ["optimizer.schedule=step"])
  with pytest.raises(ConfigError, match="constant|cosine|polynomial"):
    common.build_optimizer(cfg.optimizer, 10)
  data = experiments.apply_overrides(experiments.get_experiment("fastdepth_synthetic_street"),
                                     ["data.tfds_name=kitti_depth"]).data
  with pytest.raises(ConfigError, match="builder_kwargs is only supported"):
    common.prepare_builder(data, "/tmp/unused")


def test_cosine_schedule_decays_to_the_end_factor():
  cfg = experiments.get_experiment("fastdepth_synthetic_street").optimizer
  opt = common.build_optimizer(cfg, total_steps=100)
  lr = opt.learning_rate   # the schedule evaluated at iteration 0
  assert float(lr) == pytest.approx(cfg.learning_rate)
  schedule = opt._learning_rate  # pylint: disable=protected-access
  assert float(schedule(100)) == pytest.approx(cfg.learning_rate * cfg.end_learning_rate_factor)
  assert np.isclose(float(schedule(50)),
                    cfg.learning_rate * (cfg.end_learning_rate_factor
                                         + (1 - cfg.end_learning_rate_factor) * 0.5))


def test_linear_warmup_ramps_then_hands_over_to_the_schedule():
  from trainers import schedules  # pylint: disable=g-import-not-at-top
  # Constant 1e-3 after 4 warm-up steps: (step + 1) / 4 of the rate, then the rate.
  constant = schedules.LinearWarmup(1e-3, 4)
  assert [float(constant(s)) for s in range(6)] == pytest.approx(
      [2.5e-4, 5e-4, 7.5e-4, 1e-3, 1e-3, 1e-3], rel=1e-6)
  # Polynomial decay (power 1, 1e-3 -> 1e-4 over 10 steps) starts its own step 0 after the ramp.
  poly = keras.optimizers.schedules.PolynomialDecay(1e-3, 10, end_learning_rate=1e-4, power=1.0)
  warm = schedules.LinearWarmup(poly, 2)
  assert float(warm(0)) == pytest.approx(5e-4, rel=1e-6)
  assert float(warm(2)) == pytest.approx(1e-3, rel=1e-6)
  assert float(warm(7)) == pytest.approx(1e-3 - 5 * 9e-5, rel=1e-6)   # poly step 5
  assert float(warm(12)) == pytest.approx(1e-4, rel=1e-6)
  # Round trip with a schedule inside, and through the optimizer config.
  clone = schedules.LinearWarmup.from_config(warm.get_config())
  assert [float(clone(s)) for s in (0, 3, 9)] == pytest.approx(
      [float(warm(s)) for s in (0, 3, 9)], rel=1e-7)
  cfg = experiments.apply_overrides(experiments.get_experiment("fastdepth_synthetic_street"),
                                    ["optimizer.schedule=constant", "optimizer.warmup_steps=5",
                                     "optimizer.learning_rate=0.002"]).optimizer
  opt = common.build_optimizer(cfg, total_steps=100)
  restored = keras.optimizers.Adam.from_config(opt.get_config())
  for s in (0, 4, 50):
    assert float(restored._learning_rate(s)) == pytest.approx(  # pylint: disable=protected-access
        0.002 * min(1.0, (s + 1) / 5), rel=1e-6)
  with pytest.raises(ConfigError, match="warmup_steps expected an int >= 1, received 0"):
    schedules.LinearWarmup(1e-3, 0)
  with pytest.raises(ConfigError, match="received -1.0"):
    schedules.LinearWarmup(-1.0, 3)


# ------------------------------------------------------------------------------ model_dir guard
def _tiny_eigen():
  from tests._workers import tiny_experiment  # pylint: disable=g-import-not-at-top
  return experiments.get_experiment(tiny_experiment.NAME)


def _read(path):
  with open(path, "rb") as f:
    return f.read()


def test_finished_model_dir_is_refused_unless_overwrite(tmp_path):
  data_dir, model_dir = str(tmp_path / "tfds"), str(tmp_path / "run")
  config = _tiny_eigen()
  train_lib.train(config, model_dir, data_dir=data_dir, verbose=0)
  files = [experiments.RESOLVED_CONFIG_FILENAME, train_lib.HISTORY_FILENAME,
           os.path.join(common.CHECKPOINT_DIR, common.BEST_CHECKPOINT),
           os.path.join(common.CHECKPOINT_DIR, common.LAST_CHECKPOINT)]
  before = {n: _read(os.path.join(model_dir, n)) for n in files}
  assert not os.path.exists(os.path.join(model_dir, common.IN_PROGRESS_MARKER))   # finished

  # The same command again, and another config: refused before anything is written.
  other = experiments.apply_overrides(config, ["optimizer.learning_rate=0.002"])
  for cfg in (config, other):
    with pytest.raises(ConfigError) as err:
      train_lib.train(cfg, model_dir, data_dir=data_dir, verbose=0)
    message = str(err.value)
    assert repr(model_dir) in message and "--overwrite" in message
    assert "checkpoints/best.weights.h5" in message and "history.json" in message
  assert "['optimizer.learning_rate']" in message
  assert {n: _read(os.path.join(model_dir, n)) for n in files} == before

  # tfdepth-train --overwrite replaces the run (and its config).
  train_lib._define_flags()  # pylint: disable=protected-access
  flags.FLAGS(["tfdepth-train", f"--experiment={config.name}", f"--model_dir={model_dir}",
               f"--data_dir={data_dir}", "--override=optimizer.learning_rate=0.002",
               "--overwrite", "--verbose=0"])
  try:
    train_lib.main([])
  finally:
    flags.FLAGS.unparse_flags()
  assert experiments.load_resolved_config(model_dir) == other
  assert _read(os.path.join(model_dir, files[3])) != before[files[3]]


def test_prepare_model_dir_resumes_only_an_interrupted_run_of_the_same_config(tmp_path):
  config = _tiny_eigen()
  model_dir = str(tmp_path)
  assert common.prepare_model_dir(config, model_dir) == "new"
  experiments.save_resolved_config(config, model_dir)
  assert common.prepare_model_dir(config, model_dir) == "new"   # config only: nothing trained
  backup = os.path.join(model_dir, common.BACKUP_DIR)
  os.makedirs(backup)
  with open(os.path.join(backup, common.BACKUP_METADATA), "w") as f:
    json.dump({"epoch": 1, "weights": "epoch_1.weights.h5"}, f)
  assert common.prepare_model_dir(config, model_dir) == "resume"
  changed = experiments.apply_overrides(config, ["train.batch_size=2", "losses.l1.weight=0.5"])
  with pytest.raises(ConfigError, match=r"interrupted run of another config: keys "
                     r"\['losses.l1.weight', 'train.batch_size'\] differ"):
    common.prepare_model_dir(changed, model_dir)
  # --overwrite discards the old run's backup (BackupAndRestore would resume it otherwise).
  assert common.prepare_model_dir(changed, model_dir, overwrite=True) == "overwrite"
  assert not os.path.exists(backup)
  assert os.path.exists(os.path.join(model_dir, experiments.RESOLVED_CONFIG_FILENAME))
  # A run killed before its first backup: only the in-progress marker says it was interrupted.
  experiments.save_resolved_config(changed, model_dir)
  common._write_in_progress_marker(model_dir)  # pylint: disable=protected-access
  assert common.prepare_model_dir(changed, model_dir) == "resume"
  with pytest.raises(ConfigError, match="interrupted run of another config"):
    common.prepare_model_dir(config, model_dir)
