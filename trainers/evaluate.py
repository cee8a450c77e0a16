"""`tfdepth-eval`: evaluates a trained experiment on its test split and writes the metric table.

    tfdepth-eval --model_dir=runs/street                       # config + best checkpoint from there
    tfdepth-eval --experiment=fastdepth_synthetic_street --checkpoint=path/best.weights.h5

Supervised experiments are scored at the ground truth's native resolution, as the KITTI / NYU
protocols are (Monodepth2 `evaluate_depth.py`, BTS `bts_eval.py`): each test image is resized
(bilinear, antialiased, as the input pipeline does) to the network size `data.height` x
`data.width`, the network-size depth goes to the offline evaluator
`tfdepth.metrics.evaluate_predictions`, which resizes it to the GT size as disparity and applies
the protocol (range mask, crop at GT resolution, e.g. Garg or NYU 45:471 x 41:601 on 480x640,
scaling, clamp after scaling); the GT itself is never resized. The table (per image, then the
mean over images) is printed and written to
`<output_dir>/eval_metrics.json` and `<output_dir>/eval_metrics.md` (output_dir defaults to the
model_dir, or the checkpoint's directory). Both spell out the protocol (name, crop, depth range,
scaling: `EvalProtocol.describe()`). The per-image results (metrics, valid-pixel count, scale
ratio) go to `<output_dir>/eval_per_image.json`.

The validation metrics that `tfdepth-train` logs (`val_abs_rel`, ...) are different: the streaming
Keras metrics on the validation pipeline, whose GT is nearest-resized to the network size. They
equal this table only when the dataset is stored at the network size.

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
from tfdepth.errors import InvalidInputError
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


def native_resolution_dataset(builder_or_ds, split, batch_size):
  """Test split at the GT's native size (no resize): `{"image", "depth", "intrinsics"}` batches.

  Batches of `batch_size` when every example has one static size (the dataset's element spec
  has a fully defined (H, W), e.g. NYU 480x640 or the synthetic world), else batches of 1
  (sizes vary, e.g. KITTI's 370..376 x 1224..1242 frames).

  Args:
    builder_or_ds: as `tfdepth.data.make_supervised_dataset`.
    split: TFDS split name.
    batch_size: positive int, used when the size is static.

  Returns:
    `tf.data.Dataset`: image (B, H, W, 3) float32 [0, 1], depth (B, H, W, 1) float32 metres
    (0 = invalid) at the stored resolution.
  """
  from tfdepth.data import make_supervised_dataset  # pylint: disable=g-import-not-at-top
  ds = make_supervised_dataset(builder_or_ds, split=split, batch_size=1)
  if ds.element_spec["depth"].shape[1:3].is_fully_defined() and batch_size > 1:
    ds = make_supervised_dataset(builder_or_ds, split=split, batch_size=batch_size)
  return ds


def network_input(images, height, width):
  """Images (B, H, W, 3) in [0, 1] resized to the network size (B, height, width, 3).

  The same transform as the input pipelines (`tfdepth.data.augment.resize_images`: bilinear
  with antialiasing, clipped to [0, 1]); unchanged when already (height, width).
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from tfdepth.data import augment  # pylint: disable=g-import-not-at-top
  images = tf.convert_to_tensor(images, tf.float32)
  if tuple(images.shape[1:3]) == (height, width):
    return images
  return augment.resize_images(images, height, width)


def predict_split(network, dataset, height, width):
  """Runs `network` over a native-resolution supervised dataset at the network size.

  Args:
    network: Keras model, images (B, height, width, 3) -> depth (B, height, width, 1) metres (or
      a dict with "depth").
    dataset: batches of `{"image": (B, H, W, 3), "depth": (B, H, W, 1)}` at the GT's size
      (`native_resolution_dataset`); H, W may differ between batches.
    height, width: network input size in pixels.

  Returns:
    (gts, preds): lists of N numpy float32 arrays, gts[i] (H_i, W_i, 1) metres at native size,
    preds[i] (height', width', 1) metres at the network's output size (not resized:
    `tfdepth.metrics.evaluate_predictions` resizes it to the GT size as disparity).
  """
  gts, preds = [], []
  for batch in dataset:
    out = network(network_input(batch["image"], height, width), training=False)
    out = out["depth"] if isinstance(out, dict) else out
    preds.extend(np.asarray(out, np.float32))
    gts.extend(batch["depth"].numpy())
  return gts, preds


def metric_table_per_image(gts, preds, protocol):
  """`(table, per_image)` of `tfdepth.metrics.evaluate_predictions` as JSON-ready Python values.

  Args:
    gts: N float ground-truth depth maps in metres (0 = invalid): an (N, H, W, 1) array or a
      list of (H_i, W_i, 1) / (H_i, W_i) arrays (sizes may differ).
    preds: N predicted depth maps in metres, same form; any positive size (a prediction whose
      size differs from its GT's is resized to it as disparity by the evaluator).
    protocol: protocol name or `tfdepth.metrics.EvalProtocol`.

  Zero predicted depths (a ReLU head's output) are replaced by
  `tfdepth.metrics.streaming.RESIZE_MIN_DEPTH` (1e-6 m), the value the streaming metrics invert
  for them, since the evaluator needs positive depths; nothing else is changed before the
  protocol's fixed scale and median scaling, and the protocol's clamp to [min_depth, max_depth]
  comes after scaling (Monodepth2 `evaluate_depth.py`), so a scale-free prediction with values
  below min_depth is median-scaled as it is.

  Returns:
    table: `{metric: mean over images with a valid pixel}` (+ "num_valid": such images).
    per_image: N records `{"index": i, metric: value (None without valid pixels), "num_valid":
      valid-pixel count, "scale": median-scaling ratio x fixed scale}`; "scale" only when the
      protocol scales the prediction (`median_scaling` or `fixed_scale`).

  Raises:
    tfdepth.errors.InvalidInputError: negative, NaN or infinite predictions (as the streaming
      metrics), integer GT, or anything else `evaluate_predictions` refuses.
  """
  from tfdepth import metrics  # pylint: disable=g-import-not-at-top
  from tfdepth.metrics import streaming  # pylint: disable=g-import-not-at-top
  protocol = resolve_protocol(protocol)
  if len(gts) != len(preds):
    raise InvalidInputError(
        f"metric_table_per_image: got {len(gts)} ground truths but {len(preds)} predictions.")
  positive = []
  for i, pred in enumerate(preds):
    pred = np.asarray(pred, np.float32)
    bad = ~(np.isfinite(pred) & (pred >= 0))
    if bad.any():
      raise InvalidInputError(
          f"metric_table_per_image: preds[{i}] must be finite depth >= 0 metres, got "
          f"{pred[bad][0]!r} at index {tuple(int(j) for j in np.argwhere(bad)[0])}.")
    positive.append(np.where(pred > 0, pred, np.float32(streaming.RESIZE_MIN_DEPTH)))
  table, per_image = metrics.evaluate_predictions(list(gts), positive, protocol)
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
  """Loads `checkpoint` into the experiment's model and evaluates `split`; returns the table.

  Supervised experiments: at the GT's native resolution (images resized to the network size,
  predictions resized to the GT size as disparity by `evaluate_predictions`; module docstring).
  Self-supervised and dynamic experiments go to their own `evaluate`.
  """
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
  # GT at its stored size; only the images are resized to the network size (module docstring).
  ds = native_resolution_dataset(builder, split, config.train.batch_size)
  gts, preds = predict_split(model.network, ds, config.data.height, config.data.width)
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
