"""`tfdepth-eval`: evaluates a trained experiment on its test split and writes the metric table.

    tfdepth-eval --model_dir=runs/street                       # config + best checkpoint from there
    tfdepth-eval --experiment=fastdepth_synthetic_street --checkpoint=path/best.weights.h5

The table is computed with the offline evaluator `tfdepth.metrics.evaluate_predictions` (per
image, then the mean over images, under the experiment's protocol), printed, and written to
`<output_dir>/eval_metrics.json` and `<output_dir>/eval_metrics.md` (output_dir defaults to the
model_dir, or the checkpoint's directory). Both spell out the protocol (name, crop, depth range,
scaling: `EvalProtocol.describe()`). The per-image results (metrics, valid-pixel count, scale
ratio) go to `<output_dir>/eval_per_image.json`.

    tfdepth-eval --compare=runs/a,runs/b [--compare=runs/c] [--output_dir=reports]

reads the `eval_metrics.json` of earlier runs (a directory or the file itself) and prints a
side-by-side Markdown table (rows = runs, columns = metrics and protocol), written to
`<output_dir>/eval_compare.{json,md}` when --output_dir is given. Runs evaluated under different
protocols are refused unless --allow_mixed_protocols.
"""

import json
import os

from absl import app
from absl import flags
from absl import logging
import numpy as np

from tfdepth.errors import ConfigError
from tfdepth.errors import DataError
from trainers import common
from trainers import experiments

FLAGS = flags.FLAGS


def _define_flags():
  return common.define_flags([
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
      (flags.DEFINE_multi_string, "compare", [],
       "Compare earlier runs instead of evaluating: comma-separated run directories (or "
       "eval_metrics.json files) whose eval_metrics.json are tabulated side by side "
       "(repeatable)."),
      (flags.DEFINE_boolean, "allow_mixed_protocols", False,
       "With --compare: allow runs evaluated under different protocols."),
  ])


METRICS_JSON = "eval_metrics.json"
METRICS_MD = "eval_metrics.md"
PER_IMAGE_JSON = "eval_per_image.json"
COMPARE_JSON = "eval_compare.json"
COMPARE_MD = "eval_compare.md"
# Keys of a per-image record besides the metrics (tfdepth.metrics.evaluate_predictions).
SCALE_KEY = "scale"
INDEX_KEY = "index"
PROTOCOL_COLUMN = "protocol"
# Suffix of the protocols `trainers.self_supervised.eval_protocol` derives from a registered one
# by turning on per-image median scaling ("<name>_median", not in the registry).
MEDIAN_SUFFIX = "_median"


def resolve_protocol(protocol):
  """`EvalProtocol` for a name, an `EvalProtocol`, or a "<registered name>_median" name.

  Raises:
    tfdepth.errors.ConfigError: an unknown name (from `tfdepth.metrics.get_protocol`).
  """
  import dataclasses  # pylint: disable=g-import-not-at-top
  from tfdepth import metrics  # pylint: disable=g-import-not-at-top
  if isinstance(protocol, str) and protocol.strip().lower() not in metrics.PROTOCOLS:
    base = protocol.strip().lower()
    if base.endswith(MEDIAN_SUFFIX) and base[:-len(MEDIAN_SUFFIX)] in metrics.PROTOCOLS:
      return dataclasses.replace(metrics.PROTOCOLS[base[:-len(MEDIAN_SUFFIX)]], name=protocol,
                                 median_scaling=True)
  return metrics.get_protocol(protocol)


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


def metric_table_per_image(gts, preds, protocol):
  """`(table, per_image)` of `tfdepth.metrics.evaluate_predictions` as JSON-ready Python values.

  Args:
    gts: (N, H, W, 1) float ground-truth depth in metres (0 = invalid).
    preds: (N, H, W, 1) float predicted depth in metres.
    protocol: protocol name or `tfdepth.metrics.EvalProtocol`.

  Predictions are first clamped to at least the protocol's `min_depth` (the evaluator needs
  positive depths; the protocol clamps to that range anyway, Monodepth2 `evaluate_depth.py`).

  Returns:
    table: `{metric: mean over images with a valid pixel}` (+ "num_valid": such images).
    per_image: N records `{"index": i, metric: value (None without valid pixels), "num_valid":
      valid-pixel count, "scale": median-scaling ratio x fixed scale}`; "scale" only when the
      protocol scales the prediction (`median_scaling` or `fixed_scale`).
  """
  from tfdepth import metrics  # pylint: disable=g-import-not-at-top
  protocol = resolve_protocol(protocol)
  preds = np.maximum(np.asarray(preds, np.float32), protocol.min_depth)
  table, per_image = metrics.evaluate_predictions(list(gts[..., 0]), list(preds[..., 0]),
                                                  protocol)
  return {k: float(v) for k, v in table.items()}, per_image_records(per_image, protocol)


def per_image_records(per_image, protocol):
  """JSON-ready records of `evaluate_predictions`' per-image dicts (NaN -> None, + "index")."""
  from tfdepth import metrics  # pylint: disable=g-import-not-at-top
  protocol = resolve_protocol(protocol)
  scaled = protocol.median_scaling or protocol.fixed_scale is not None
  records = []
  for i, entry in enumerate(per_image):
    record = {INDEX_KEY: i}
    for key, value in entry.items():
      if key == SCALE_KEY and not scaled:
        continue
      value = float(value) if key != metrics.NUM_VALID_KEY else int(value)
      record[key] = None if isinstance(value, float) and np.isnan(value) else value
    records.append(record)
  return records


def metric_table(gts, preds, protocol):
  """`{metric: mean over images}` (the table of `metric_table_per_image`)."""
  return metric_table_per_image(gts, preds, protocol)[0]


def protocol_info(protocol):
  """`{"protocol": name, "protocol_description": EvalProtocol.describe()}` for the outputs."""
  protocol = resolve_protocol(protocol)
  return {"protocol": protocol.name, "protocol_description": protocol.describe()}


def write_tables(rows, protocol, output_dir, extra=None, per_image=None):
  """Writes `{row: {metric: value}}` as JSON and Markdown; returns the Markdown string.

  Args:
    rows: `{run name: {metric: value}}`.
    protocol: protocol name or `EvalProtocol`; its name and description go into both files.
    output_dir: directory of `eval_metrics.{json,md}` (created if needed).
    extra: more top-level JSON keys (checkpoint, split, ...).
    per_image: records of `metric_table_per_image` (or raw `evaluate_predictions` dicts);
      written to `eval_per_image.json` when given.
  """
  from tfdepth import metrics  # pylint: disable=g-import-not-at-top
  os.makedirs(output_dir, exist_ok=True)
  names = list(metrics.METRIC_NAMES)
  md = common.markdown_table(rows, names)
  info = protocol_info(protocol)
  with open(os.path.join(output_dir, METRICS_JSON), "w") as f:
    json.dump({**info, "results": rows, **(extra or {})}, f, indent=2)
    f.write("\n")
  header = f"Protocol: `{info['protocol']}` ({info['protocol_description']})"
  with open(os.path.join(output_dir, METRICS_MD), "w") as f:
    f.write(f"{header}\n\n{md}\n")
  if per_image is not None:
    if per_image and INDEX_KEY not in per_image[0]:
      per_image = per_image_records(per_image, protocol)
    with open(os.path.join(output_dir, PER_IMAGE_JSON), "w") as f:
      json.dump({**info, "images": per_image, **(extra or {})}, f, indent=2)
      f.write("\n")
  return f"{header}\n\n{md}"


def load_run_metrics(run):
  """Reads the `eval_metrics.json` of `run` (a run directory or the JSON file itself).

  Raises:
    tfdepth.errors.DataError: the file is missing or not a tfdepth-eval metrics file.
  """
  path = run if run.endswith(".json") else os.path.join(run, METRICS_JSON)
  if not os.path.isfile(path):
    raise DataError(f"--compare: no metrics file {path!r} (from run {run!r}); expected the "
                    f"{METRICS_JSON} written by tfdepth-eval")
  with open(path) as f:
    try:
      data = json.load(f)
    except json.JSONDecodeError as e:
      raise DataError(f"--compare: {path!r} is not valid JSON: {e}") from e
  if not isinstance(data, dict) or "results" not in data or "protocol" not in data:
    raise DataError(f"--compare: {path!r} has no 'results'/'protocol' keys; expected a "
                    f"{METRICS_JSON} written by tfdepth-eval")
  return data


def compare_runs(runs, allow_mixed_protocols=False, output_dir=None):
  """Side-by-side table of the `eval_metrics.json` of several runs.

  Args:
    runs: run directories or `eval_metrics.json` paths (strings).
    allow_mixed_protocols: if False, runs evaluated under different protocols (name or
      description) raise `ConfigError`.
    output_dir: if given, `eval_compare.{json,md}` are written there.

  Returns:
    `(rows, markdown)`: rows maps "<run>: <experiment>" (or "<run>" for a single experiment in
    the file) to `{metric: value, "protocol": name}`; markdown has one row per run and the
    protocol descriptions below it.
  """
  from tfdepth import metrics  # pylint: disable=g-import-not-at-top
  if not runs:
    raise ConfigError("--compare: received no runs; expected one or more run directories")
  rows, protocols = {}, {}
  for run in runs:
    data = load_run_metrics(run)
    protocol = (data["protocol"], data.get("protocol_description"))
    for name, table in data["results"].items():
      label = run if len(data["results"]) == 1 else f"{run}: {name}"
      rows[label] = {**table, PROTOCOL_COLUMN: data["protocol"]}
      protocols[label] = protocol
  if not allow_mixed_protocols and len(set(protocols.values())) > 1:
    listing = "; ".join(f"{k}: {p[0]} ({p[1]})" for k, p in protocols.items())
    raise ConfigError(f"--compare: runs were evaluated under different protocols ({listing}); "
                      "pass --allow_mixed_protocols to compare them anyway")
  columns = [m for m in metrics.METRIC_NAMES if any(m in r for r in rows.values())]
  md = common.markdown_table(rows, columns + [PROTOCOL_COLUMN])
  described = sorted({p for p in protocols.values()}, key=str)
  md += "\n\n" + "\n".join(f"Protocol `{n}`: {d or 'no description recorded'}"
                             for n, d in described)
  if output_dir:
    os.makedirs(output_dir, exist_ok=True)
    with open(os.path.join(output_dir, COMPARE_JSON), "w") as f:
      json.dump({"runs": rows, "protocols": {n: d for n, d in described}}, f, indent=2)
      f.write("\n")
    with open(os.path.join(output_dir, COMPARE_MD), "w") as f:
      f.write(md + "\n")
  return rows, md


def evaluate(config, checkpoint, split=None, output_dir=None, data_dir=None):
  """Loads `checkpoint` into the experiment's model and evaluates `split`; returns the table."""
  from trainers import dynamic  # pylint: disable=g-import-not-at-top
  from trainers import self_supervised  # pylint: disable=g-import-not-at-top
  if self_supervised.is_self_supervised(config):  # Monodepth2 / segdepth experiments (issue 5)
    return self_supervised.evaluate(config, checkpoint, split, output_dir, data_dir)
  if dynamic.is_dynamic(config):  # Li et al. 2021 experiments (issue 6), + moving-object AbsRel
    return dynamic.evaluate(config, checkpoint, split, output_dir, data_dir)
  builder = common.prepare_builder(config.data, data_dir)
  split = split or config.data.test_split
  model = common.build_trainer(config, total_steps=1)
  model.load_weights(checkpoint)
  from tfdepth.data import make_supervised_dataset  # pylint: disable=g-import-not-at-top
  ds = make_supervised_dataset(builder, split=split, batch_size=config.train.batch_size,
                               height=config.data.height, width=config.data.width)
  gts, preds, _ = predict_split(model.network, ds)
  table, per_image = metric_table_per_image(gts, preds, config.metrics_protocol)
  output_dir = output_dir or os.path.dirname(os.path.dirname(os.path.abspath(checkpoint)))
  md = write_tables({config.name: table}, config.metrics_protocol, output_dir,
                    {"checkpoint": checkpoint, "split": split}, per_image=per_image)
  print(md)
  return table


def main(argv):
  del argv
  if FLAGS.compare:
    runs = [r.strip() for item in FLAGS.compare for r in item.split(",") if r.strip()]
    _, md = compare_runs(runs, FLAGS.allow_mixed_protocols, FLAGS.output_dir)
    print(md)
    return
  if FLAGS.model_dir:
    config = (experiments.get_experiment(FLAGS.experiment) if FLAGS.experiment
              else experiments.load_resolved_config(FLAGS.model_dir))
  elif FLAGS.experiment and FLAGS.checkpoint:
    config = experiments.get_experiment(FLAGS.experiment)
  else:
    raise app.UsageError("pass --model_dir, or --experiment with --checkpoint, or --compare")
  config = experiments.apply_overrides(config, FLAGS.override)
  checkpoint = FLAGS.checkpoint or common.find_checkpoint(FLAGS.model_dir)
  if not os.path.exists(checkpoint):
    raise ConfigError(f"checkpoint {checkpoint!r} does not exist")
  logging.info("evaluating %s from %s", config.name, checkpoint)
  evaluate(config, checkpoint, FLAGS.split, FLAGS.output_dir or FLAGS.model_dir, FLAGS.data_dir)


def run():
  """Console-script entry point (`tfdepth-eval`)."""
  common.complete_help(__doc__, _define_flags())
  app.run(main)


if __name__ == "__main__":
  run()
