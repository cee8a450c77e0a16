"""`tfdepth-export`: export a trained experiment and report size, latency and metrics.

    tfdepth-export --experiment=fastdepth_synthetic_street \
        --checkpoint=runs/street/best.weights.h5 --format=tflite_int8 \
        --output_dir=exports/street_int8

Formats: saved_model, tflite_fp32, tflite_fp16, tflite_dynamic, tflite_int8, tflite_qat.
The model is the experiment's network (float32 policy) with the checkpoint's weights (a
`tfdepth-train` checkpoint of the trainer, or a weights file of the network alone). Calibration
(int8) and QAT images come from the experiment's train split through the training pipeline's
own preprocessing (`tfdepth.data.make_supervised_dataset`, no augmentation). The metrics come
from its test split at the stored resolution, as `tfdepth-eval` computes them (each image
resized to the network, the depth back to the ground truth's size as disparity;
`trainers.evaluate.native_resolution_dataset`). The report is
`export.report.export_and_report`'s.

Self-supervised (Monodepth2, segdepth) and dynamic (Li et al. 2021) experiments export their depth
net at scale 0 with ``disp_to_depth`` (dynamic: its softplus depth head;
`tfdepth.models.monodepth2.build_monodepth2_depth_model`,
weights copied by layer name from the trainer checkpoint; no pose / motion net, no segmentation
head). Their images are the target frames of the video pipeline (`tfdepth.data.video`), their
metrics (at the network size) use the experiment's evaluation protocol (per-image median scaling for monocular
training), and QAT self-distils (the float model's own depth is the target: metric ground truth
would turn QAT into supervised fine-tuning of a scale-ambiguous model).
"""

import os

from absl import app
from absl import flags
import numpy as np

from export import report as report_lib
from export._common import DEFAULT_MIN_DEPTH
from tfdepth.errors import InvalidInputError

FLAGS = flags.FLAGS

# Defaults: calibration size from the post-training quantization guide (100-500 samples);
# 64 test images keep a CLI run to about a minute for the synthetic experiments.
DEFAULT_NUM_CALIBRATION = 100
DEFAULT_NUM_TEST = 64
DEFAULT_QAT_TRAIN_IMAGES = 256


def _define_flags():
  flags.DEFINE_string("experiment", None, "Registered experiment name.")
  flags.DEFINE_string("checkpoint", None, "Weights file (.weights.h5) of the experiment.")
  flags.DEFINE_enum("format", "saved_model", list(report_lib.FORMATS), "Export format.")
  flags.DEFINE_string("output_dir", None, "Where the artefact and the report go.")
  flags.DEFINE_multi_string("override", [], "dotted.key=value config overrides (repeatable).")
  flags.DEFINE_string("data_dir", None, "TFDS data dir.")
  flags.DEFINE_integer("num_test", DEFAULT_NUM_TEST, "Test images for the metrics (0: none).")
  flags.DEFINE_integer("num_calibration", DEFAULT_NUM_CALIBRATION,
                       "Calibration images for tflite_int8.")
  flags.DEFINE_integer("num_runs", report_lib.DEFAULT_NUM_RUNS, "Timed runs per latency.")
  flags.DEFINE_enum("io_dtype", "uint8", ["uint8", "int8", "float32"],
                    "Input dtype of tflite_int8 / tflite_qat (the output is float32 metres "
                    "when the model has a float output tail, export.float_tail; else this "
                    "dtype too).")
  flags.DEFINE_integer("qat_epochs", 2, "QAT fine-tuning epochs.")
  flags.DEFINE_integer("qat_train_images", DEFAULT_QAT_TRAIN_IMAGES, "QAT fine-tuning images.")
  flags.DEFINE_float("target_sparsity", None, "Prune to this sparsity before QAT (tflite_qat).")
  flags.DEFINE_bool("bias_correction", False,
                    "tflite_int8: correct the head's bias by the int8 - float shift measured on "
                    "the calibration images (export.bias_correction).")


def _video_module(config):
  """`trainers.self_supervised` or `trainers.dynamic` for video experiments, else None."""
  from trainers import dynamic  # pylint: disable=g-import-not-at-top
  from trainers import self_supervised  # pylint: disable=g-import-not-at-top
  if self_supervised.is_self_supervised(config):
    return self_supervised
  if dynamic.is_dynamic(config):
    return dynamic
  return None


def video_export_builder_kwargs(config, depth_net_name):
  """kwargs of `build_monodepth2_depth_model` for the depth net (layer-name prefix
  ``depth_net_name``) of a video experiment: its input size, ResNet depth, the trainer's
  ``disp_to_depth`` range and, for the dynamic trainer, its head (``output="depth"``)."""
  module = _video_module(config)
  settings_fn = (getattr(module, "self_supervised_config", None)
                 or getattr(module, "dynamic_config"))
  settings = settings_fn(config)
  kwargs = {"input_shape": [config.data.height, config.data.width, 3],
            "num_layers": int(dict(config.model.kwargs).get("num_layers", 18)),
            "min_depth": float(settings.min_depth), "max_depth": float(settings.max_depth),
            "name": depth_net_name}
  output = getattr(module, "DEPTH_NET_OUTPUT", None)   # dynamic: softplus depth heads
  if output is not None:
    kwargs["output"] = output
  return kwargs


def load_experiment_network(config, checkpoint):
  """The experiment's network (float32 policy) with ``checkpoint``'s weights.

  For video experiments (self-supervised, dynamic): the scale-0 depth model
  ``{"depth": metres}`` of `build_monodepth2_depth_model` with the trained depth net's weights.

  Raises:
    InvalidInputError: missing checkpoint, or one that does not match the experiment's model.
  """
  from trainers import common  # pylint: disable=g-import-not-at-top
  from trainers import experiments  # pylint: disable=g-import-not-at-top
  if not checkpoint or not os.path.exists(checkpoint):
    raise InvalidInputError(f"checkpoint {checkpoint!r} does not exist")
  config = experiments.apply_overrides(config, ["train.mixed_precision=float32"])
  module = _video_module(config)
  if module is not None:
    from tfdepth.models import monodepth2  # pylint: disable=g-import-not-at-top
    build = (getattr(module, "build_self_supervised_trainer", None)
             or getattr(module, "build_dynamic_trainer"))
    trainer = build(config, total_steps=1, with_metrics=False)
    try:
      trainer.load_weights(checkpoint)
    except (ValueError, KeyError, OSError) as e:
      raise InvalidInputError(
          f"checkpoint {checkpoint!r} does not match the trainer of experiment {config.name!r} "
          f"({config.model.name} {dict(config.model.kwargs)} at {config.data.height}x"
          f"{config.data.width}): {str(e)[:300]}") from None
    network = monodepth2.build_monodepth2_depth_model(
        **video_export_builder_kwargs(config, trainer.depth_net.name))
    monodepth2.copy_weights_by_name(trainer.depth_net, network)
    return network
  trainer = common.build_trainer(config, total_steps=1)
  errors = []
  for target in (trainer, trainer.network):
    try:
      target.load_weights(checkpoint)
      return trainer.network
    except (ValueError, KeyError, OSError) as e:
      errors.append(f"{type(target).__name__}: {str(e)[:300]}")
  raise InvalidInputError(
      f"checkpoint {checkpoint!r} does not match the model of experiment {config.name!r} "
      f"({config.model.name} {dict(config.model.kwargs)} at {config.data.height}x"
      f"{config.data.width}): {' | '.join(errors)}")


def _collect_native(dataset, limit):
  """(images, depths): lists of up to ``limit`` per-image arrays (H_i, W_i, 3) / (H_i, W_i, 1)
  from batches of a native-resolution dataset (`trainers.evaluate.native_resolution_dataset`)."""
  images, depths = [], []
  for batch in dataset:
    images.extend(batch["image"].numpy())
    depths.extend(batch["depth"].numpy())
    if len(images) >= limit:
      break
  return images[:limit], depths[:limit]


def _collect(dataset, limit, target_index=None):
  """(images, depths) numpy arrays of up to ``limit`` examples; ``target_index``: take the image
  from ``frames[:, target_index]`` (video pipelines)."""
  images, depths = [], []
  count = 0
  for batch in dataset:
    image = batch["image"] if target_index is None else batch["frames"][:, target_index]
    images.append(image.numpy())
    depths.append(batch["depth"].numpy() if "depth" in batch
                  else np.zeros(image.shape[:3] + (1,), np.float32))
    count += len(images[-1])
    if count >= limit:
      break
  if not images:
    return np.zeros((0,)), np.zeros((0,))
  return np.concatenate(images)[:limit], np.concatenate(depths)[:limit]


def export_experiment(experiment, checkpoint, fmt, output_dir, overrides=(), data_dir=None,
                      num_test=DEFAULT_NUM_TEST, num_calibration=DEFAULT_NUM_CALIBRATION,
                      num_runs=report_lib.DEFAULT_NUM_RUNS, io_dtype="uint8", qat_epochs=2,
                      qat_train_images=DEFAULT_QAT_TRAIN_IMAGES, target_sparsity=None,
                      bias_correction=False):
  """Exports a trained experiment as ``fmt`` into ``output_dir``; returns the report dict."""
  from tfdepth import models  # pylint: disable=g-import-not-at-top
  from tfdepth.data import make_supervised_dataset  # pylint: disable=g-import-not-at-top
  from trainers import common  # pylint: disable=g-import-not-at-top
  from trainers import evaluate  # pylint: disable=g-import-not-at-top
  from trainers import experiments  # pylint: disable=g-import-not-at-top
  report_lib.check_format(fmt)
  if not output_dir:
    raise InvalidInputError(f"output_dir must be a directory path, got {output_dir!r}")
  config = experiments.apply_overrides(experiments.get_experiment(experiment), list(overrides))
  network = load_experiment_network(config, checkpoint)
  d = config.data
  builder = common.prepare_builder(d, data_dir)

  video_module = _video_module(config)
  depth_kwargs = None
  if video_module is not None:   # the kwargs `load_experiment_network` built `network` with
    from tfdepth.models import monodepth2  # pylint: disable=g-import-not-at-top
    depth_kwargs = video_export_builder_kwargs(
        config, network.name[:-len(monodepth2.INFERENCE_SUFFIX)])

  def split_arrays(split, limit):
    if video_module is not None:
      from tfdepth.data import video  # pylint: disable=g-import-not-at-top
      ds = video.make_self_supervised_dataset(
          builder, split=split, batch_size=config.train.batch_size, height=d.height,
          width=d.width, training=False, adapter=video_module._video_adapter(config))  # pylint: disable=protected-access
      return _collect(ds, limit, target_index=video_module.TARGET_INDEX)
    ds = make_supervised_dataset(builder, split=split, batch_size=config.train.batch_size,
                                 height=d.height, width=d.width, training=False)
    return _collect(ds, limit)

  representative, qat_options = None, None
  if fmt == "tflite_int8":
    from export import tflite  # pylint: disable=g-import-not-at-top
    images, _ = split_arrays(d.train_split, num_calibration)
    representative = tflite.representative_dataset_from(list(images), num_calibration)
  elif fmt == "tflite_qat":
    images, depths = split_arrays(d.train_split, qat_train_images)
    if len(images) == 0:
      raise InvalidInputError(f"train split {d.train_split!r} is empty: QAT needs images")
    if video_module is not None:   # self-distillation (see the module docstring)
      fn = monodepth2.build_monodepth2_depth_model
      builder_kwargs = depth_kwargs
      train_data = {"images": images}
    else:
      fn = models.MODEL_BUILDERS[config.model.name]
      builder_kwargs = {"input_shape": [d.height, d.width, 3], **dict(config.model.kwargs)}
      train_data = {"images": images, "depth": depths}
    qat_options = {"builder": f"{fn.__module__}:{fn.__name__}",
                   "builder_kwargs": builder_kwargs,
                   "train_data": train_data, "epochs": qat_epochs,
                   "learning_rate": config.optimizer.learning_rate * 0.1,
                   "batch_size": config.train.batch_size, "target_sparsity": target_sparsity}
  test_images = test_depths = None
  if num_test > 0 and d.test_split:   # experiments without ground truth have no test split
    if video_module is not None:
      test_images, test_depths = split_arrays(d.test_split, num_test)
    else:   # at the stored resolution, as tfdepth-eval evaluates (`export.report`)
      test_images, test_depths = _collect_native(
          evaluate.native_resolution_dataset(builder, d.test_split, config.train.batch_size),
          num_test)
  min_depth = DEFAULT_MIN_DEPTH
  if video_module is not None:
    protocol = video_module.eval_protocol(config)
    min_depth, max_depth = depth_kwargs["min_depth"], depth_kwargs["max_depth"]
  else:
    protocol = config.metrics_protocol
    max_depth = config.max_depth or dict(config.model.kwargs).get("max_depth")
  metadata = {"experiment": config.name, "checkpoint": os.path.abspath(checkpoint),
              "model": config.model.name, "model_kwargs": dict(config.model.kwargs),
              "metrics_protocol": protocol if isinstance(protocol, str) else protocol.name}
  if max_depth and max_depth > min_depth:
    metadata["depth_range"] = [float(min_depth), float(max_depth)]
  return report_lib.export_and_report(
      network, metadata, fmt, output_dir, test_images=test_images, test_depths=test_depths,
      protocol=protocol, representative_dataset=representative,
      io_dtype=io_dtype, qat_options=qat_options, num_runs=num_runs,
      bias_correction=bias_correction)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments {argv[1:]}")
  if not FLAGS.experiment or not FLAGS.checkpoint or not FLAGS.output_dir:
    raise app.UsageError("pass --experiment, --checkpoint and --output_dir")
  rep = export_experiment(
      FLAGS.experiment, FLAGS.checkpoint, FLAGS.format, FLAGS.output_dir, FLAGS.override,
      FLAGS.data_dir, FLAGS.num_test, FLAGS.num_calibration, FLAGS.num_runs, FLAGS.io_dtype,
      FLAGS.qat_epochs, FLAGS.qat_train_images, FLAGS.target_sparsity, FLAGS.bias_correction)
  print(report_lib.report_markdown(rep))


def run():
  """Console-script entry point (`tfdepth-export`)."""
  from trainers import common  # pylint: disable=g-import-not-at-top
  _define_flags()
  common.complete_help(__doc__, [f.name for f in FLAGS.get_flags_for_module(__name__)])
  app.run(main)


if __name__ == "__main__":
  run()
