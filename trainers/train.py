"""`tfdepth-train`: trains a registered experiment with `model.fit`.

    tfdepth-train --experiment=fastdepth_synthetic_street --model_dir=runs/street \
        [--override=train.batch_size=8 --override=optimizer.learning_rate=1e-3] \
        [--strategy=default|mirrored|multi_worker|tpu] [--data_dir=...]

Writes into --model_dir: `experiment_config.json` (the resolved config),
`checkpoints/last.weights.h5` (every epoch), `checkpoints/best.weights.h5` (lowest `val_loss`),
`backup/` (BackupAndRestore: a killed run resumes from its last epoch when restarted with the
same flags; another config is refused) and `history.json`. A --model_dir that already holds a
finished run is refused unless --overwrite is given (which deletes that run's checkpoints, backup,
history and TensorBoard logs first).
"""

import os

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
      (flags.DEFINE_boolean, "overwrite", False,
       "Replace the outputs of a finished (or differently configured) run in --model_dir; "
       "without it such a --model_dir is refused."),
  ])


# Re-exported for callers and tests of this entry point.
HISTORY_FILENAME = common.HISTORY_FILENAME
CRASH_AFTER_EPOCH_ENV = common.CRASH_AFTER_EPOCH_ENV
CRASH_AFTER_STEP_ENV = common.CRASH_AFTER_STEP_ENV


def train(config, model_dir, strategy_name="default", data_dir=None, verbose=1, overwrite=False):
  """Trains `config`; returns `(trainer model, keras History, prepared builder)`.

  Dispatches on the model: Monodepth2 / segdepth experiments to `trainers.self_supervised`
  (issue 5), Li et al. 2021 experiments to `trainers.dynamic` (issue 6), everything else to the
  supervised trainer. All share `common.fit_experiment`, which refuses a `model_dir` holding a
  finished run unless `overwrite` (`common.prepare_model_dir`).
  """
  from trainers import self_supervised  # pylint: disable=g-import-not-at-top
  from trainers import dynamic  # pylint: disable=g-import-not-at-top
  if self_supervised.is_self_supervised(config):
    return self_supervised.train(config, model_dir, strategy_name, data_dir, verbose, overwrite)
  if dynamic.is_dynamic(config):
    return dynamic.train(config, model_dir, strategy_name, data_dir, verbose, overwrite)
  return common.fit_experiment(config, model_dir, common.make_datasets, common.build_trainer,
                               strategy_name, data_dir, verbose, overwrite)


def main(argv):
  del argv
  if not FLAGS.experiment or not FLAGS.model_dir:
    raise app.UsageError("--experiment and --model_dir are required")
  config = experiments.apply_overrides(experiments.get_experiment(FLAGS.experiment),
                                       FLAGS.override)
  train(config, FLAGS.model_dir, FLAGS.strategy, FLAGS.data_dir, FLAGS.verbose, FLAGS.overwrite)
  logging.info("done; checkpoints in %s", os.path.join(FLAGS.model_dir, common.CHECKPOINT_DIR))


def run():
  """Console-script entry point (`tfdepth-train`)."""
  common.complete_help(__doc__, _define_flags())
  app.run(main)


if __name__ == "__main__":
  run()
