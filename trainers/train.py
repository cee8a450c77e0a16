"""`tfdepth-train`: trains a registered experiment with `model.fit`.

    tfdepth-train --experiment=fastdepth_synthetic_street --model_dir=runs/street \
        [--override=train.batch_size=8 --override=optimizer.learning_rate=1e-3] \
        [--strategy=default|mirrored|multi_worker|tpu] [--data_dir=...]

Writes into --model_dir: `experiment_config.json` (the resolved config),
`checkpoints/last.weights.h5` (every epoch), `checkpoints/best.weights.h5` (lowest `val_loss`),
`backup/` (BackupAndRestore: a killed run resumes from its last epoch when restarted with the
same flags) and `history.json`.
"""

import json
import os
import signal

from absl import app
from absl import flags
from absl import logging
import keras

from trainers import common
from trainers import experiments

FLAGS = flags.FLAGS


def _define_flags():
  return common.define_flags([
      (flags.DEFINE_string, "experiment", None, "Registered experiment name."),
      (flags.DEFINE_string, "model_dir", None,
       "Directory for checkpoints and the resolved config."),
      (flags.DEFINE_multi_string, "override", [],
       "dotted.key=value config overrides (repeatable)."),
      (flags.DEFINE_string, "strategy", "default",
       f"tf.distribute strategy, one of {common.STRATEGIES}."),
      (flags.DEFINE_string, "data_dir", None,
       "TFDS data dir (default: the config's, then ~/tensorflow_datasets)."),
      (flags.DEFINE_integer, "verbose", 1,
       "Keras fit verbosity (1 = progress bar, 2 = one line per epoch)."),
  ])


HISTORY_FILENAME = "history.json"
# Test-only hook (tests/test_fault_tolerance.py): when set to k, the process SIGKILLs itself at
# the end of epoch k (after that epoch's backup), simulating a preempted machine.
CRASH_AFTER_EPOCH_ENV = "TFDEPTH_TEST_CRASH_AFTER_EPOCH"


class _CrashAfterEpoch(keras.callbacks.Callback):

  def __init__(self, epoch):
    super().__init__()
    self.epoch = epoch

  def on_epoch_end(self, epoch, logs=None):
    if epoch + 1 == self.epoch:
      os.kill(os.getpid(), signal.SIGKILL)


def _test_crash_callbacks():
  value = os.environ.get(CRASH_AFTER_EPOCH_ENV)
  return [_CrashAfterEpoch(int(value))] if value else []


def train(config, model_dir, strategy_name="default", data_dir=None, verbose=1):
  """Trains `config`; returns `(trainer model, keras History, prepared builder)`."""
  from trainers import self_supervised  # pylint: disable=g-import-not-at-top
  from trainers import dynamic  # pylint: disable=g-import-not-at-top
  if self_supervised.is_self_supervised(config):  # Monodepth2 / segdepth experiments (issue 5)
    return self_supervised.train(config, model_dir, strategy_name, data_dir, verbose)
  if dynamic.is_dynamic(config):  # Li et al. 2021 experiments (issue 6)
    return dynamic.train(config, model_dir, strategy_name, data_dir, verbose)
  strategy = common.get_strategy(strategy_name)
  if common.is_chief():  # multi-worker: only the chief writes model_dir itself
    experiments.save_resolved_config(config, model_dir)
  builder = common.prepare_builder(config.data, data_dir)
  # tf.data's seeded shuffle also depends on the global seed: fix it before building the input
  # so the sample order does not depend on what ran earlier in the process.
  keras.utils.set_random_seed(config.train.seed)
  datasets = common.make_datasets(config, builder, ("train", "validation"))
  steps = common.steps_per_epoch(config, builder)
  # After a restart from a backup, continue the input stream where the killed run was.
  datasets["train"] = common.resume_dataset(datasets["train"], model_dir, steps)
  model = common.build_trainer(config, steps * config.train.epochs, strategy)
  logging.info("training %s for %d epochs x %d steps (global batch %d, %d replicas)",
               config.name, config.train.epochs, steps, config.train.batch_size,
               strategy.num_replicas_in_sync)
  history = model.fit(
      datasets["train"], epochs=config.train.epochs, steps_per_epoch=steps,
      validation_data=datasets["validation"],
      validation_steps=config.train.validation_steps or None,
      callbacks=(common.checkpoint_callbacks(model_dir) + _test_crash_callbacks()
                 + [common.tensorboard_callback(model_dir, datasets["validation"])]),
      verbose=verbose)
  with open(os.path.join(common.worker_model_dir(model_dir), HISTORY_FILENAME), "w") as f:
    json.dump({k: [float(x) for x in v] for k, v in history.history.items()}, f, indent=2)
  return model, history, builder


def main(argv):
  del argv
  if not FLAGS.experiment or not FLAGS.model_dir:
    raise app.UsageError("--experiment and --model_dir are required")
  config = experiments.apply_overrides(experiments.get_experiment(FLAGS.experiment),
                                       FLAGS.override)
  train(config, FLAGS.model_dir, FLAGS.strategy, FLAGS.data_dir, FLAGS.verbose)
  logging.info("done; checkpoints in %s", os.path.join(FLAGS.model_dir, common.CHECKPOINT_DIR))


def run():
  """Console-script entry point (`tfdepth-train`)."""
  common.complete_help(__doc__, _define_flags())
  app.run(main)


if __name__ == "__main__":
  run()
