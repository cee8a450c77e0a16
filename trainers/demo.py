"""`tfdepth-demo` (`make demo`): the whole supervised pipeline end to end on 2 CPU cores.

1. Renders the synthetic `street` scene with the TFDS builder (`download_and_prepare`, no
   network) into `<output_dir>/tfds` -- inside the output folder so that the demo is
   self-contained and `make clean` removes it; pass `--data_dir` to use another TFDS data dir
   (e.g. `~/tensorflow_datasets`).
2. Trains FastDepth (Wofk et al., ICRA 2019) with `SupervisedDepthModel` + `model.fit`.
3. Evaluates the test split under the `synthetic_street` protocol, next to the baseline that
   predicts, at every pixel, the median of the valid training depths at that pixel.
4. Exports a SavedModel and an int8 TFLite file (`export`), runs the TFLite file with LiteRT on
   the test images and evaluates it too.
5. Writes colourised depth PNGs (magma on disparity, near = warm), `metrics.json`,
   `metrics.md`, and prints a summary table.

Sizes and epochs are flags so that tests run a tiny version (`--height=32 --width=64 ...`).
"""

import json
import os
import time

from absl import app
from absl import flags
from absl import logging
import numpy as np

from tfdepth.errors import ConfigError
from trainers import common
from trainers import evaluate as evaluate_lib
from trainers import experiments

FLAGS = flags.FLAGS

DEMO_EXPERIMENT = "fastdepth_synthetic_street"
# Demo defaults, chosen so that `make demo` finishes well within 15 minutes on 2 CPU cores (see
# benchmarks/demo_walltime.py for the measured time and the AbsRel against the baseline).
DEMO_HEIGHT = 64           # pixels; FastDepth needs multiples of 32
DEMO_WIDTH = 224           # pixels; 224/64 = 3.5, close to KITTI's 416/128 = 3.25
DEMO_NUM_TRAIN = 512
DEMO_NUM_VALIDATION = 32
DEMO_NUM_TEST = 64
DEMO_EPOCHS = 40
DEMO_BATCH_SIZE = 16
DEMO_WIDTH_MULTIPLIER = 0.5
DEMO_NUM_PNG = 8
# Calibration images for int8 post-training quantisation (drawn from the training split without
# augmentation).
DEMO_NUM_CALIBRATION = 64
TFLITE_FORMAT = "tflite_int8"
LITERT_THREADS = 2
# Depth range (metres) stored in the SavedModel metadata when the config has no max_depth:
# the synthetic_street protocol's range (KITTI, Eigen et al. 2014: 1e-3 .. 80 m).
EXPORT_MIN_DEPTH = 1e-3
EXPORT_MAX_DEPTH = 80.0
METRICS_JSON = "metrics.json"
METRICS_MD = "metrics.md"
# Written into --output_dir before anything else: marks a folder the demo created, whose outputs
# (model/, saved_model/, the TFLite file, metrics, PNGs) a re-run may replace without --overwrite.
DEMO_MARKER = ".tfdepth-demo.json"
# The demo's acceptance criterion: test AbsRel at most half the median baseline's.
BASELINE_FRACTION = 0.5


def _define_flags():
  return common.define_flags([
      (flags.DEFINE_string, "output_dir", "outputs/demo", "Output folder."),
      (flags.DEFINE_string, "data_dir", None, "TFDS data dir (default: <output_dir>/tfds)."),
      (flags.DEFINE_integer, "height", DEMO_HEIGHT, "Image height (multiple of 32)."),
      (flags.DEFINE_integer, "width", DEMO_WIDTH, "Image width (multiple of 32)."),
      (flags.DEFINE_integer, "num_train", DEMO_NUM_TRAIN, "Training clips to render."),
      (flags.DEFINE_integer, "num_validation", DEMO_NUM_VALIDATION, "Validation clips."),
      (flags.DEFINE_integer, "num_test", DEMO_NUM_TEST, "Test clips."),
      (flags.DEFINE_integer, "epochs", DEMO_EPOCHS, "Training epochs."),
      (flags.DEFINE_integer, "batch_size", DEMO_BATCH_SIZE, "Global batch size."),
      (flags.DEFINE_float, "width_multiplier", DEMO_WIDTH_MULTIPLIER, "FastDepth alpha."),
      (flags.DEFINE_string, "mixed_precision", "float32",
       "float32 | mixed_bfloat16 | mixed_float16."),
      (flags.DEFINE_integer, "num_png", DEMO_NUM_PNG, "Colourised test predictions to write."),
      (flags.DEFINE_integer, "num_calibration", DEMO_NUM_CALIBRATION, "int8 calibration images."),
      (flags.DEFINE_multi_string, "override", [], "Extra dotted.key=value config overrides."),
      (flags.DEFINE_integer, "verbose", 1, "Keras fit verbosity (1 = progress bars)."),
      (flags.DEFINE_boolean, "overwrite", False,
       "Replace demo outputs (model/, saved_model/, ...) in an --output_dir that tfdepth-demo did "
       "not create; without it such a folder is refused."),
  ])


def demo_config(height=DEMO_HEIGHT, width=DEMO_WIDTH, num_train=DEMO_NUM_TRAIN,
                num_validation=DEMO_NUM_VALIDATION, num_test=DEMO_NUM_TEST, epochs=DEMO_EPOCHS,
                batch_size=DEMO_BATCH_SIZE, width_multiplier=DEMO_WIDTH_MULTIPLIER,
                mixed_precision="float32", overrides=()):
  """The demo's `ExperimentConfig`: `fastdepth_synthetic_street` resized by the demo flags."""
  base = experiments.get_experiment(DEMO_EXPERIMENT)
  return experiments.apply_overrides(base, [
      f"data.height={height}", f"data.width={width}",
      f"data.builder_kwargs.height={height}", f"data.builder_kwargs.width={width}",
      f"data.builder_kwargs.num_train={num_train}",
      f"data.builder_kwargs.num_validation={num_validation}",
      f"data.builder_kwargs.num_test={num_test}",
      f"train.epochs={epochs}", f"train.batch_size={batch_size}",
      f"model.kwargs.width_multiplier={width_multiplier}",
      f"train.mixed_precision={mixed_precision}",
  ] + list(overrides))


def per_pixel_median_depth(depths):
  """Per-pixel median over valid (> 0) depths `(N, H, W, 1)` -> `(H, W, 1)` metres.

  Pixels without any valid training depth get the median of all valid training depths.
  """
  d = np.where(depths > 0, depths, np.nan).astype(np.float64)
  with np.errstate(all="ignore"):
    import warnings  # pylint: disable=g-import-not-at-top
    with warnings.catch_warnings():
      warnings.simplefilter("ignore", RuntimeWarning)
      median = np.nanmedian(d, axis=0)
  fallback = float(np.median(depths[depths > 0]))
  return np.where(np.isnan(median), fallback, median).astype(np.float32)


def _collect(dataset):
  images, depths = [], []
  for b in dataset:
    images.append(b["image"].numpy())
    depths.append(b["depth"].numpy())
  return np.concatenate(images), np.concatenate(depths)


def _float32_copy(config, network):
  """The trained network rebuilt under the float32 policy (for export), same weights."""
  common.set_precision("float32")
  net32 = common.build_network(config)
  net32.set_weights(network.get_weights())
  return net32


def write_pngs(output_dir, images, gts, preds, tflite_preds, count):
  """Writes `depth_XXX.png`: rows image / ground truth / Keras prediction / TFLite prediction.

  The three depth rows share the disparity scale of the ground truth (95th percentile).
  """
  from tfdepth import visualization  # pylint: disable=g-import-not-at-top
  paths = []
  for i in range(min(count, len(images))):
    gt = gts[i]
    valid = gt[gt > 0]
    max_disp = float(np.percentile(1.0 / valid, visualization.DISPLAY_PERCENTILE)) \
        if valid.size else None
    rows = [np.round(images[i] * 255).astype(np.uint8),
            visualization.colorize_depth(gt, max_disparity=max_disp),
            visualization.colorize_depth(preds[i], max_disparity=max_disp)]
    if tflite_preds is not None:
      rows.append(visualization.colorize_depth(tflite_preds[i], max_disparity=max_disp))
    path = os.path.join(output_dir, f"depth_{i:03d}.png")
    visualization.save_png(path, np.concatenate(rows, axis=0))
    paths.append(path)
  return paths


def _demo_outputs(output_dir):
  """Names of the demo's outputs already in `output_dir`."""
  names = ["model", "saved_model", f"fastdepth_{TFLITE_FORMAT}.tflite", METRICS_JSON, METRICS_MD]
  found = [n for n in names if os.path.exists(os.path.join(output_dir, n))]
  if os.path.isdir(output_dir):
    found += sorted(n for n in os.listdir(output_dir)
                    if n.startswith("depth_") and n.endswith(".png"))
  return found


def check_output_dir(output_dir, overwrite=False):
  """Refuses to replace outputs in a folder the demo did not create (no `DEMO_MARKER`).

  Returns True when `output_dir` is the demo's own (marked) or new; then marks it.

  Raises:
    ConfigError: `output_dir` holds files with the demo's output names (e.g. a `saved_model/`
      the demo would delete) but no `DEMO_MARKER`, and `overwrite` is False.
  """
  marked = os.path.exists(os.path.join(output_dir, DEMO_MARKER))
  found = _demo_outputs(output_dir)
  if found and not marked and not overwrite:
    raise ConfigError(
        f"output_dir {output_dir!r} holds {found}, which tfdepth-demo did not write (no "
        f"{DEMO_MARKER}) and would replace; expected an empty folder or a previous demo output. "
        "Pass --overwrite to replace them, or use another --output_dir.")
  os.makedirs(output_dir, exist_ok=True)
  with open(os.path.join(output_dir, DEMO_MARKER), "w") as f:
    json.dump({"written_by": "tfdepth-demo"}, f)
  return True


def run_demo(output_dir, data_dir=None, config=None, num_png=DEMO_NUM_PNG,
             num_calibration=DEMO_NUM_CALIBRATION, verbose=1, overwrite=False):
  """Runs the demo; returns the dict written to `<output_dir>/metrics.json`.

  `output_dir` must be new, a previous demo output, or `overwrite` must be True
  (`check_output_dir`); an interrupted demo of the same config resumes its training
  (`common.prepare_model_dir`), any other previous demo run in it is replaced.
  """
  from export import litert_runner  # pylint: disable=g-import-not-at-top
  from export import saved_model as saved_model_lib  # pylint: disable=g-import-not-at-top
  from export import tflite as tflite_lib  # pylint: disable=g-import-not-at-top
  from tfdepth.data import make_supervised_dataset  # pylint: disable=g-import-not-at-top

  config = config or demo_config()
  t_start = time.time()
  timings = {}
  check_output_dir(output_dir, overwrite)
  data_dir = data_dir or os.path.join(output_dir, "tfds")
  model_dir = os.path.join(output_dir, "model")
  try:   # resume an interrupted demo of the same config ...
    common.prepare_model_dir(config, model_dir)
  except ConfigError:   # ... else replace the demo's own (or, with --overwrite, any) previous run
    common.prepare_model_dir(config, model_dir, overwrite=True)
  experiments.save_resolved_config(config, model_dir)

  t = time.time()
  builder = common.prepare_builder(config.data, data_dir)
  timings["dataset_s"] = time.time() - t
  logging.info("dataset ready in %.1f s under %s", timings["dataset_s"], data_dir)

  t = time.time()
  datasets = common.make_datasets(config, builder, ("train", "validation"))
  steps = common.steps_per_epoch(config, builder)
  model = common.build_trainer(config, steps * config.train.epochs)
  model.fit(datasets["train"], epochs=config.train.epochs, steps_per_epoch=steps,
            validation_data=datasets["validation"],
            callbacks=common.checkpoint_callbacks(model_dir), verbose=verbose)
  timings["train_s"] = time.time() - t

  t = time.time()
  plain = {split: make_supervised_dataset(builder, split=split, batch_size=config.train.batch_size)
           for split in (config.data.train_split, config.data.test_split)}
  train_images, train_depths = _collect(plain[config.data.train_split])
  test_images, test_depths = _collect(plain[config.data.test_split])
  net32 = _float32_copy(config, model.network)
  keras_preds = np.asarray(net32.predict(test_images, batch_size=config.train.batch_size,
                                         verbose=0)["depth"], np.float32)
  protocol = config.metrics_protocol
  baseline = per_pixel_median_depth(train_depths)
  rows = {
      "median_baseline": evaluate_lib.metric_table(
          test_depths, np.broadcast_to(baseline, test_depths.shape), protocol),
      "fastdepth_keras": evaluate_lib.metric_table(test_depths, keras_preds, protocol),
  }
  timings["evaluate_s"] = time.time() - t

  t = time.time()
  export_dir = os.path.join(output_dir, "saved_model")
  if os.path.exists(os.path.join(export_dir, "saved_model.pb")):
    # The demo's own previous export (or --overwrite): checked by check_output_dir above.
    import shutil  # pylint: disable=g-import-not-at-top
    shutil.rmtree(export_dir)
  depth_range = [EXPORT_MIN_DEPTH, float(config.max_depth or EXPORT_MAX_DEPTH)]
  saved_model_lib.export_saved_model(
      net32, export_dir, {"experiment": config.name, "depth_range": depth_range})
  representative = tflite_lib.representative_dataset_from(
      train_images, num_samples=num_calibration)
  flatbuffer = tflite_lib.convert_to_tflite(net32, TFLITE_FORMAT,
                                            representative_dataset=representative)
  tflite_path = os.path.join(output_dir, f"fastdepth_{TFLITE_FORMAT}.tflite")
  with open(tflite_path, "wb") as f:
    f.write(flatbuffer)
  timings["export_s"] = time.time() - t

  t = time.time()
  runner = litert_runner.LiteRTRunner(tflite_path, num_threads=LITERT_THREADS)
  tflite_preds = runner.predict(test_images)
  rows[f"fastdepth_{TFLITE_FORMAT}"] = evaluate_lib.metric_table(test_depths, tflite_preds,
                                                                 protocol)
  timings["litert_s"] = time.time() - t

  pngs = write_pngs(output_dir, test_images, test_depths, keras_preds, tflite_preds, num_png)
  timings["total_s"] = time.time() - t_start
  abs_rel = rows["fastdepth_keras"]["abs_rel"]
  baseline_abs_rel = rows["median_baseline"]["abs_rel"]
  result = {
      "experiment": config.name,
      "protocol": protocol,
      "results": rows,
      "criterion": {"abs_rel": abs_rel, "baseline_abs_rel": baseline_abs_rel,
                    "threshold": BASELINE_FRACTION * baseline_abs_rel,
                    "passed": bool(abs_rel <= BASELINE_FRACTION * baseline_abs_rel)},
      "timings_s": timings,
      "files": {"saved_model": export_dir, "tflite": tflite_path, "pngs": pngs,
                "checkpoints": os.path.join(model_dir, common.CHECKPOINT_DIR)},
      "config": experiments.config_to_dict(config),
  }
  with open(os.path.join(output_dir, METRICS_JSON), "w") as f:
    json.dump(result, f, indent=2)
    f.write("\n")
  from tfdepth import metrics  # pylint: disable=g-import-not-at-top
  md = common.markdown_table(rows, list(metrics.METRIC_NAMES))
  with open(os.path.join(output_dir, METRICS_MD), "w") as f:
    f.write(f"Protocol: `{protocol}`, {len(test_images)} test images\n\n{md}\n")
  _print_summary(result, md)
  return result


def _print_summary(result, md):
  c = result["criterion"]
  print(f"\nTest metrics ({result['protocol']}):\n{md}\n")
  print(f"AbsRel {c['abs_rel']:.4f} vs median baseline {c['baseline_abs_rel']:.4f} "
        f"(target <= {c['threshold']:.4f}): {'PASS' if c['passed'] else 'FAIL'}")
  print("Timings (s): " + ", ".join(f"{k} {v:.1f}" for k, v in result["timings_s"].items()))
  print(f"Outputs: {result['files']['saved_model']}, {result['files']['tflite']}, "
        f"{len(result['files']['pngs'])} PNGs")


def main(argv):
  del argv
  config = demo_config(FLAGS.height, FLAGS.width, FLAGS.num_train, FLAGS.num_validation,
                       FLAGS.num_test, FLAGS.epochs, FLAGS.batch_size, FLAGS.width_multiplier,
                       FLAGS.mixed_precision, FLAGS.override)
  run_demo(FLAGS.output_dir, FLAGS.data_dir, config, FLAGS.num_png, FLAGS.num_calibration,
           FLAGS.verbose, FLAGS.overwrite)


def run():
  """Console-script entry point (`tfdepth-demo`)."""
  common.complete_help(__doc__, _define_flags())
  app.run(main)


if __name__ == "__main__":
  run()
