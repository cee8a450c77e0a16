"""`tfdepth-eval`: evaluates a trained experiment on its test split and writes the metric table.

    tfdepth-eval --model_dir=runs/street                       # config + best checkpoint from there
    tfdepth-eval --experiment=fastdepth_synthetic_street --checkpoint=path/best.weights.h5

The table is computed with the offline evaluator `tfdepth.metrics.evaluate_predictions` (per
image, then the mean over images, under the experiment's protocol), printed, and written to
`<output_dir>/eval_metrics.json` and `<output_dir>/eval_metrics.md` (output_dir defaults to the
model_dir, or the checkpoint's directory).
"""

import json
import os

from absl import app
from absl import flags
from absl import logging
import numpy as np

from tfdepth.errors import ConfigError
from trainers import common
from trainers import experiments

FLAGS = flags.FLAGS


def _define_flags():
  common.define_flags([
      (flags.DEFINE_string, "experiment", None,
       "Registered experiment (default: the config saved in model_dir)."),
      (flags.DEFINE_string, "model_dir", None, "A directory written by tfdepth-train."),
      (flags.DEFINE_string, "checkpoint", None,
       "A .weights.h5 file (default: model_dir's best, else last)."),
      (flags.DEFINE_multi_string, "override", [],
       "dotted.key=value config overrides (repeatable)."),
      (flags.DEFINE_string, "split", None, "Split to evaluate (default: the config's test split)."),
      (flags.DEFINE_string, "output_dir", None, "Where to write eval_metrics.{json,md}."),
      (flags.DEFINE_string, "data_dir", None, "TFDS data dir."),
  ])


METRICS_JSON = "eval_metrics.json"
METRICS_MD = "eval_metrics.md"


def predict_split(network, dataset):
  """Runs `network` over a supervised dataset; returns (gts, preds, images) numpy arrays."""
  gts, preds, images = [], [], []
  for batch in dataset:
    out = network(batch["image"], training=False)
    out = out["depth"] if isinstance(out, dict) else out
    preds.append(np.asarray(out, np.float32))
    gts.append(batch["depth"].numpy())
    images.append(batch["image"].numpy())
  return np.concatenate(gts), np.concatenate(preds), np.concatenate(images)


def metric_table(gts, preds, protocol):
  """`{metric: mean over images}` with `tfdepth.metrics.evaluate_predictions`.

  Predictions are first clamped to at least the protocol's `min_depth` (the evaluator needs
  positive depths; the protocol clamps to that range anyway, Monodepth2 `evaluate_depth.py`).
  """
  from tfdepth import metrics  # pylint: disable=g-import-not-at-top
  min_depth = metrics.get_protocol(protocol).min_depth
  preds = np.maximum(np.asarray(preds, np.float32), min_depth)
  table, _ = metrics.evaluate_predictions(list(gts[..., 0]), list(preds[..., 0]), protocol)
  return {k: float(v) for k, v in table.items()}


def write_tables(rows, protocol, output_dir, extra=None):
  """Writes `{row: {metric: value}}` as JSON and Markdown; returns the Markdown string."""
  from tfdepth import metrics  # pylint: disable=g-import-not-at-top
  os.makedirs(output_dir, exist_ok=True)
  names = list(metrics.METRIC_NAMES)
  md = common.markdown_table(rows, names)
  with open(os.path.join(output_dir, METRICS_JSON), "w") as f:
    json.dump({"protocol": protocol, "results": rows, **(extra or {})}, f, indent=2)
    f.write("\n")
  with open(os.path.join(output_dir, METRICS_MD), "w") as f:
    f.write(f"Protocol: `{protocol}`\n\n{md}\n")
  return md


def evaluate(config, checkpoint, split=None, output_dir=None, data_dir=None):
  """Loads `checkpoint` into the experiment's model and evaluates `split`; returns the table."""
  from trainers import self_supervised  # pylint: disable=g-import-not-at-top
  if self_supervised.is_self_supervised(config):  # Monodepth2 / segdepth experiments (issue 5)
    return self_supervised.evaluate(config, checkpoint, split, output_dir, data_dir)
  builder = common.prepare_builder(config.data, data_dir)
  split = split or config.data.test_split
  model = common.build_trainer(config, total_steps=1)
  model.load_weights(checkpoint)
  from tfdepth.data import make_supervised_dataset  # pylint: disable=g-import-not-at-top
  ds = make_supervised_dataset(builder, split=split, batch_size=config.train.batch_size,
                               height=config.data.height, width=config.data.width)
  gts, preds, _ = predict_split(model.network, ds)
  table = metric_table(gts, preds, config.metrics_protocol)
  output_dir = output_dir or os.path.dirname(os.path.dirname(os.path.abspath(checkpoint)))
  md = write_tables({config.name: table}, config.metrics_protocol, output_dir,
                    {"checkpoint": checkpoint, "split": split})
  print(md)
  return table


def main(argv):
  del argv
  if FLAGS.model_dir:
    config = (experiments.get_experiment(FLAGS.experiment) if FLAGS.experiment
              else experiments.load_resolved_config(FLAGS.model_dir))
  elif FLAGS.experiment and FLAGS.checkpoint:
    config = experiments.get_experiment(FLAGS.experiment)
  else:
    raise app.UsageError("pass --model_dir, or --experiment with --checkpoint")
  config = experiments.apply_overrides(config, FLAGS.override)
  checkpoint = FLAGS.checkpoint or common.find_checkpoint(FLAGS.model_dir)
  if not os.path.exists(checkpoint):
    raise ConfigError(f"checkpoint {checkpoint!r} does not exist")
  logging.info("evaluating %s from %s", config.name, checkpoint)
  evaluate(config, checkpoint, FLAGS.split, FLAGS.output_dir or FLAGS.model_dir, FLAGS.data_dir)


def run():
  """Console-script entry point (`tfdepth-eval`)."""
  _define_flags()
  app.run(main)


if __name__ == "__main__":
  run()
