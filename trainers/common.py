"""Shared plumbing of the entry points: strategies, precision, datasets, models, optimizers.

Everything is driven by an `trainers.experiments.ExperimentConfig`; the entry points
(`trainers.train`, `trainers.evaluate`, `trainers.demo`) only add flags and reporting.
"""

import os

import keras
import tensorflow as tf

from tfdepth.errors import ConfigError
from trainers import experiments
from trainers import supervised

STRATEGIES = ("default", "mirrored", "multi_worker", "tpu")
# Checkpoint layout inside --model_dir.
CHECKPOINT_DIR = "checkpoints"
LAST_CHECKPOINT = "last.weights.h5"
BEST_CHECKPOINT = "best.weights.h5"
BACKUP_DIR = "backup"
# The synthetic_world builder takes its sizes from a BuilderConfig; tfdepth names that config
# after its values so that different sizes never share a prepared directory.
SYNTHETIC_WORLD = "synthetic_world"


def get_strategy(name="default"):
  """Returns a `tf.distribute.Strategy` for "default" | "mirrored" | "multi_worker" | "tpu"."""
  if name == "default":
    return tf.distribute.get_strategy()
  if name == "mirrored":
    return tf.distribute.MirroredStrategy()
  if name == "multi_worker":
    return tf.distribute.MultiWorkerMirroredStrategy()
  if name == "tpu":
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return tf.distribute.TPUStrategy(resolver)
  raise ConfigError(f"unknown strategy {name!r}; expected one of {STRATEGIES}")


def set_precision(policy):
  """Sets the global Keras dtype policy ("float32", "mixed_float16", "mixed_bfloat16")."""
  if policy not in experiments.MIXED_PRECISION_POLICIES:
    raise ConfigError(f"mixed precision policy must be one of "
                      f"{experiments.MIXED_PRECISION_POLICIES}, received {policy!r}")
  keras.mixed_precision.set_global_policy(policy)


def synthetic_world_config(tfds_name, builder_kwargs):
  """`SyntheticWorldConfig` for "synthetic_world/<scene>" with the given field overrides."""
  # pylint: disable-next=g-import-not-at-top
  from tfds_builders.synthetic_world import SyntheticWorldConfig
  parts = tfds_name.split("/")
  scene = parts[1] if len(parts) > 1 else "street"
  kwargs = dict(builder_kwargs)
  kwargs.setdefault("scene", "indoor" if scene == "indoor" else "street")
  if scene == "street_unknown_camera":
    kwargs.setdefault("random_intrinsics", True)
  tag = "_".join(f"{k}{kwargs[k]}" for k in sorted(kwargs) if k != "scene")
  name = f"{scene}_{tag}" if tag else scene
  return SyntheticWorldConfig(name=name, **kwargs)


def prepare_builder(data_config, data_dir=None):
  """Returns a prepared TFDS builder for `data_config` (generates synthetic data locally).

  `data_dir` (or `data_config.data_dir`, or TFDS' default `~/tensorflow_datasets`) is where the
  prepared files live. Nothing is downloaded: tfds_builders disables TFDS' GCS look-ups.
  """
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  import tfds_builders  # pylint: disable=g-import-not-at-top,unused-import
  data_dir = data_dir or data_config.data_dir or None
  base = data_config.tfds_name.split("/")[0]
  if data_config.builder_kwargs:
    if base != SYNTHETIC_WORLD:
      raise ConfigError(f"data.builder_kwargs is only supported for {SYNTHETIC_WORLD!r}, "
                        f"received tfds_name={data_config.tfds_name!r}")
    builder = tfds.builder(SYNTHETIC_WORLD, data_dir=data_dir,
                           config=synthetic_world_config(data_config.tfds_name,
                                                         data_config.builder_kwargs))
  else:
    builder = tfds.builder(data_config.tfds_name, data_dir=data_dir)
  builder.download_and_prepare()
  return builder


def make_datasets(config, builder, splits=("train", "validation"), cache=True):
  """`{split_role: dataset}` for roles "train", "validation", "test" of `config.data`."""
  from tfdepth.data import make_supervised_dataset  # pylint: disable=g-import-not-at-top
  d, t = config.data, config.train
  split_names = {"train": d.train_split, "validation": d.validation_split, "test": d.test_split}
  out = {}
  for role in splits:
    training = role == "train"
    out[role] = make_supervised_dataset(
        builder, split=split_names[role], batch_size=t.batch_size, height=d.height,
        width=d.width, training=training, seed=t.seed, augment_data=training and d.augment,
        drop_remainder=training and t.drop_remainder, shuffle_buffer=d.shuffle_buffer,
        cache=cache, min_crop_fraction=d.min_crop_fraction)
  return out


def split_size(builder, split):
  return builder.info.splits[split].num_examples


def build_network(config):
  """`tfdepth.models.get_model(config.model.name, input_shape=(H, W, 3), **kwargs)`."""
  from tfdepth import models  # pylint: disable=g-import-not-at-top
  return models.get_model(config.model.name,
                          input_shape=(config.data.height, config.data.width, 3),
                          **dict(config.model.kwargs))


def build_optimizer(opt, total_steps):
  """Keras optimizer from an `OptimizerConfig`; schedules decay over `total_steps`."""
  lr = opt.learning_rate
  decay_steps = max(1, total_steps - opt.warmup_steps)
  if opt.schedule == "constant":
    schedule = lr
  elif opt.schedule == "cosine":
    schedule = keras.optimizers.schedules.CosineDecay(
        0.0 if opt.warmup_steps else lr, decay_steps, alpha=opt.end_learning_rate_factor,
        warmup_target=lr if opt.warmup_steps else None, warmup_steps=opt.warmup_steps)
  elif opt.schedule == "polynomial":
    # BTS / DORN use poly decay with power 0.9 (Lee et al. 2019; Fu et al. 2018).
    schedule = keras.optimizers.schedules.PolynomialDecay(
        lr, decay_steps, end_learning_rate=lr * opt.end_learning_rate_factor, power=opt.power)
  else:
    raise ConfigError(f"optimizer.schedule must be constant|cosine|polynomial, received "
                      f"{opt.schedule!r}")
  kwargs = {"learning_rate": schedule}
  if opt.clipnorm is not None:
    kwargs["clipnorm"] = opt.clipnorm
  name = opt.name.lower()
  if name == "adam":
    return keras.optimizers.Adam(**kwargs)
  if name == "adamw":
    return keras.optimizers.AdamW(weight_decay=opt.weight_decay, **kwargs)
  if name == "sgd":
    return keras.optimizers.SGD(momentum=0.9, **kwargs)
  raise ConfigError(f"optimizer.name must be adam|adamw|sgd, received {opt.name!r}")


def build_trainer(config, total_steps, strategy=None):
  """Builds and compiles a `SupervisedDepthModel` for `config` inside `strategy.scope()`.

  Sets the global dtype policy first (`config.train.mixed_precision`).
  """
  from tfdepth import metrics  # pylint: disable=g-import-not-at-top
  strategy = strategy or tf.distribute.get_strategy()
  set_precision(config.train.mixed_precision)
  keras.utils.set_random_seed(config.train.seed)
  with strategy.scope():
    network = build_network(config)
    model = supervised.SupervisedDepthModel(
        network, supervised.loss_terms_from_config(config.losses),
        depth_metrics=metrics.standard_metrics(config.metrics_protocol),
        max_depth=config.max_depth, name="supervised")
    model.compile(optimizer=build_optimizer(config.optimizer, total_steps),
                  jit_compile=config.train.jit_compile)
    # Build the variables now (BackupAndRestore and load_weights need a built model).
    model(tf.zeros([1, config.data.height, config.data.width, 3]))
  return model


def checkpoint_callbacks(model_dir, monitor="val_loss"):
  """ModelCheckpoint (last + best on `monitor`) and BackupAndRestore under `model_dir`."""
  ckpt = os.path.join(model_dir, CHECKPOINT_DIR)
  os.makedirs(ckpt, exist_ok=True)
  return [
      keras.callbacks.ModelCheckpoint(os.path.join(ckpt, LAST_CHECKPOINT),
                                      save_weights_only=True),
      keras.callbacks.ModelCheckpoint(os.path.join(ckpt, BEST_CHECKPOINT),
                                      save_weights_only=True, save_best_only=True,
                                      monitor=monitor, mode="min"),
      keras.callbacks.BackupAndRestore(os.path.join(model_dir, BACKUP_DIR)),
  ]


def find_checkpoint(model_dir):
  """Best checkpoint of `model_dir` if present, else the last one; ConfigError if none."""
  for name in (BEST_CHECKPOINT, LAST_CHECKPOINT):
    path = os.path.join(model_dir, CHECKPOINT_DIR, name)
    if os.path.exists(path):
      return path
  raise ConfigError(f"no checkpoint in {os.path.join(model_dir, CHECKPOINT_DIR)!r}; expected "
                    f"{BEST_CHECKPOINT} or {LAST_CHECKPOINT} written by tfdepth-train")


def steps_per_epoch(config, builder):
  if config.train.steps_per_epoch > 0:
    return config.train.steps_per_epoch
  n = split_size(builder, config.data.train_split)
  return max(1, n // config.train.batch_size)


def evaluate_to_table(model, dataset):
  """Runs `model.evaluate` and returns `{metric name: float}` (losses and depth metrics)."""
  results = model.evaluate(dataset, verbose=0, return_dict=True)
  return {k: float(v) for k, v in results.items()}


def markdown_table(rows, columns):
  """rows: {row name: {column: value}} -> GitHub Markdown table string."""
  lines = ["| | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
  for name, values in rows.items():
    cells = [f"{values[c]:.4f}" if c in values else "" for c in columns]
    lines.append(f"| {name} | " + " | ".join(cells) + " |")
  return "\n".join(lines)


def define_flags(definitions):
  """Defines absl flags lazily (in `run()`), skipping names another entry point already defined.

  `definitions`: list of `(absl define function, name, default, help[, kwargs dict])`. Defining
  at import time would make `trainers.train`, `trainers.evaluate` and `trainers.demo` collide
  (absl raises DuplicateFlagError for one name defined by two modules) when imported together.
  """
  from absl import flags  # pylint: disable=g-import-not-at-top
  for item in definitions:
    fn, name, default, help_text = item[:4]
    kwargs = item[4] if len(item) > 4 else {}
    if name not in flags.FLAGS:
      fn(name, default, help_text, **kwargs)
