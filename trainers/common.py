"""Shared plumbing of the entry points: strategies, precision, datasets, models, optimizers.

Everything is driven by an `trainers.experiments.ExperimentConfig`; the entry points
(`trainers.train`, `trainers.evaluate`, `trainers.demo`) only add flags and reporting.
"""

import json
import math
import numbers
import os
import shutil

import keras
import tensorflow as tf

from tfdepth import models
from tfdepth.errors import ConfigError
from trainers import experiments
from trainers import schedules
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
    # Without GPUs, MirroredStrategy() uses /cpu:0 only; mirror over the logical CPU devices
    # when several are configured (tests and benchmarks/strategy_scaling.py do).
    cpus = tf.config.list_logical_devices("CPU")
    if not tf.config.list_logical_devices("GPU") and len(cpus) > 1:
      # Reduce to one device: collective all-reduce (the CPU default) of separate strategy
      # objects in one process collides on instance keys and aborts.
      return tf.distribute.MirroredStrategy(
          [d.name for d in cpus], cross_device_ops=tf.distribute.ReductionToOneDevice())
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


def cache_in_memory(config):
  """Whether the input pipeline caches decoded examples in memory (`data.cache`).

  "auto" caches the procedurally rendered synthetic world (small, and costly to decode again)
  and nothing else: real datasets at native resolution (KITTI 375x1242, NYU 480x640) would not
  fit in memory.
  """
  mode = config.data.cache
  if mode == "auto":
    return config.data.tfds_name.split("/")[0] == SYNTHETIC_WORLD
  return mode == "memory"


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
    out[role] = out[role].with_options(data_sharding_options())
  return out


def data_sharding_options():
  """`tf.data.Options` with auto-shard policy DATA for multi-worker input.

  Every worker runs the full (deterministic) pipeline and keeps its share of each global batch,
  so a multi-worker step sees exactly the batch a single process would (FILE sharding would
  hand workers different files, i.e. different examples and order). Batches are per-global-batch
  (`train.batch_size`); the strategy splits them into per-replica batches.
  """
  options = tf.data.Options()
  options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
  return options


def split_size(builder, split):
  return builder.info.splits[split].num_examples


def build_network(config):
  """`tfdepth.models.get_model(config.model.name, input_shape=(H, W, 3), **kwargs)`."""
  return models.get_model(config.model.name,
                          input_shape=(config.data.height, config.data.width, 3),
                          **dict(config.model.kwargs))


def build_optimizer(opt, total_steps):
  """Keras optimizer from an `OptimizerConfig`; schedules decay over `total_steps`.

  `opt.warmup_steps` > 0 ramps the rate up linearly first, for every schedule (cosine: Keras'
  built-in warm-up from 0; constant / polynomial: `schedules.LinearWarmup`); decays then run over
  the remaining `total_steps - warmup_steps`.
  """
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
  if opt.warmup_steps and opt.schedule != "cosine":   # CosineDecay has its own warm-up
    schedule = schedules.LinearWarmup(schedule, int(opt.warmup_steps))
  kwargs = {"learning_rate": schedule}
  if opt.clipnorm is not None:
    kwargs["clipnorm"] = opt.clipnorm
  name = opt.name.lower()
  if name == "adam":
    return keras.optimizers.Adam(**kwargs)
  if name == "adamw":
    return keras.optimizers.AdamW(weight_decay=opt.weight_decay, **kwargs)
  if name == "sgd":
    # Keras 3 decays decoupled (w -= lr·wd·w each step, `BaseOptimizer._apply_weight_decay`);
    # the papers' Caffe solvers (DORN, DeepLab: 5e-4) add coupled L2 to the gradient, which
    # momentum 0.9 amplifies ~10x: the same coefficient is a weaker decay here. 0 = none.
    return keras.optimizers.SGD(momentum=0.9, weight_decay=opt.weight_decay or None, **kwargs)
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
    if config.train.synchronized_batchnorm:
      models.synchronize_batchnorm(network)
    model = supervised.SupervisedDepthModel(
        network, supervised.loss_terms_from_config(config.losses),
        depth_metrics=metrics.standard_metrics(config.metrics_protocol),
        max_depth=config.max_depth, name="supervised")
    model.compile(optimizer=build_optimizer(config.optimizer, total_steps),
                  jit_compile=config.train.jit_compile)
    # Build the variables now (BackupAndRestore and load_weights need a built model).
    model(tf.zeros([1, config.data.height, config.data.width, 3]))
  return model


# --------------------------------------------------------------- multi-worker and fault tolerance
# Non-chief workers of MultiWorkerMirroredStrategy write their (identical) checkpoints and backups
# under `<model_dir>/workers/<task_type>_<task_id>` so that no two processes write one file
# (TensorFlow's multi-worker guide: only the chief saves to the real location).
WORKERS_DIR = "workers"
# BackupAndRestore files (AtomicBackupAndRestore): the metadata JSON is the commit record; it names
# the weights file of the last completed epoch.
BACKUP_METADATA = "training_metadata.json"
BACKUP_WEIGHTS_PATTERN = "epoch_{epoch}.weights.h5"
# Prefix of temporary files; they are renamed into place when complete and never loaded.
TMP_PREFIX = ".tmp-"


def cluster_task():
  """`(task_type, task_id)` of this process from the `TF_CONFIG` environment variable.

  `TF_CONFIG` is TensorFlow's JSON cluster description
  (`{"cluster": {"worker": ["host:port", ...]}, "task": {"type": "worker", "index": 0}}`);
  `(None, None)` when it is unset (single process).
  """
  tf_config = json.loads(os.environ.get("TF_CONFIG", "{}") or "{}")
  task = tf_config.get("task", {})
  return task.get("type"), task.get("index")


def is_chief():
  """True for the process that writes `model_dir` (TF_CONFIG "chief", else worker 0, or none)."""
  tf_config = json.loads(os.environ.get("TF_CONFIG", "{}") or "{}")
  task_type, task_id = cluster_task()
  if task_type is None or task_type == "chief":
    return True
  has_chief = bool(tf_config.get("cluster", {}).get("chief"))
  return task_type == "worker" and not has_chief and int(task_id or 0) == 0


def worker_model_dir(model_dir):
  """`model_dir` for the chief; `<model_dir>/workers/<type>_<index>` for the other workers."""
  if is_chief():
    return model_dir
  task_type, task_id = cluster_task()
  return os.path.join(model_dir, WORKERS_DIR, f"{task_type}_{task_id}")


def _tmp_weights_path(path):
  """Temporary name next to `path` (still ending in ".weights.h5", which Keras requires)."""
  head, tail = os.path.split(path)
  return os.path.join(head, f"{TMP_PREFIX}{os.getpid()}-{tail}")


def save_weights_atomic(model, path):
  """`model.save_weights(path)` through a temporary file and `os.replace` (atomic on POSIX).

  A process killed while writing leaves only a temporary file behind, never a truncated `path`.
  """
  tmp = _tmp_weights_path(path)
  model.save_weights(tmp, overwrite=True)
  os.replace(tmp, path)


def _write_json_atomic(path, data):
  tmp = os.path.join(os.path.dirname(path), f"{TMP_PREFIX}{os.getpid()}-{os.path.basename(path)}")
  with open(tmp, "w") as f:
    json.dump(data, f)
    f.flush()
    os.fsync(f.fileno())
  os.replace(tmp, path)


class AtomicModelCheckpoint(keras.callbacks.ModelCheckpoint):
  """`keras.callbacks.ModelCheckpoint(save_weights_only=True)` whose writes are atomic."""

  def _save_model(self, epoch, batch, logs):
    filepath = self._get_file_path(epoch, batch, logs)
    if self._should_save_model(epoch, batch, logs, filepath):
      os.makedirs(os.path.dirname(filepath) or ".", exist_ok=True)
      save_weights_atomic(self.model, filepath)


class AtomicBackupAndRestore(keras.callbacks.BackupAndRestore):
  """`keras.callbacks.BackupAndRestore` (save at epoch ends) with crash-consistent files.

  Keras writes `latest.weights.h5` in place and then the metadata, so a kill during or between
  the two writes leaves a truncated file or weights of epoch e+1 labelled epoch e. Here each
  epoch's weights go to `epoch_<e>.weights.h5` (temporary name + rename), then the metadata
  `{"epoch": e, "weights": file}` is replaced atomically: whatever the kill point, the metadata
  names a complete weights file of the epoch it records. Temporary files are never loaded.

  `best_checkpoint`: the `save_best_only` ModelCheckpoint of the run (placed before this callback,
  so that its `best` includes the epoch being backed up). Its monitored best goes into the
  metadata (`"best": {"monitor": name, "value": v}`) and is restored into it on resume: a restarted
  run only replaces `best.weights.h5` by a model better than every epoch before the restart
  (a fresh ModelCheckpoint starts with best = None and saves the first resumed epoch, whatever
  its value).
  """

  def __init__(self, backup_dir, best_checkpoint=None, **kwargs):
    super().__init__(backup_dir, **kwargs)
    self.best_checkpoint = best_checkpoint

  def _load_model(self):
    metadata = read_backup_metadata(self.backup_dir)
    if metadata is None:
      return
    if self.model.optimizer is not None and not self.model.optimizer.built:
      self.model.optimizer.build(self.model.trainable_variables)
    self.model.load_weights(os.path.join(self.backup_dir, metadata["weights"]))
    self.model._initial_epoch = metadata["epoch"]  # pylint: disable=protected-access
    best = metadata.get("best")
    if (self.best_checkpoint is not None and best is not None
        and best.get("monitor") == self.best_checkpoint.monitor):
      self.best_checkpoint.best = float(best["value"])

  def _save_model(self):
    os.makedirs(self.backup_dir, exist_ok=True)
    name = BACKUP_WEIGHTS_PATTERN.format(epoch=self._current_epoch)
    save_weights_atomic(self.model, os.path.join(self.backup_dir, name))
    metadata = {"epoch": self._current_epoch, "weights": name}
    best = None if self.best_checkpoint is None else self.best_checkpoint.best
    if best is not None and math.isfinite(float(best)):
      metadata["best"] = {"monitor": self.best_checkpoint.monitor, "value": float(best)}
    _write_json_atomic(os.path.join(self.backup_dir, BACKUP_METADATA), metadata)
    for old in os.listdir(self.backup_dir):  # earlier epochs and stale temporary files
      if old != name and (old.startswith(TMP_PREFIX) or old.endswith(".weights.h5")):
        os.remove(os.path.join(self.backup_dir, old))


def read_backup_metadata(backup_dir):
  """`{"epoch": completed epochs, "weights": file name[, "best": {"monitor", "value"}]}` of a
  backup, or None if there is none."""
  path = os.path.join(backup_dir, BACKUP_METADATA)
  if not os.path.exists(path):
    return None
  with open(path) as f:
    return json.load(f)


def restored_epoch(model_dir):
  """Number of epochs completed by the backup of this worker under `model_dir` (0 if none)."""
  metadata = read_backup_metadata(os.path.join(worker_model_dir(model_dir), BACKUP_DIR))
  return int(metadata["epoch"]) if metadata else 0


def resume_dataset(dataset, model_dir, steps_per_epoch_):
  """Skips the batches that the restored epochs consumed, so a resumed run sees the same stream.

  `fit` restarts the (repeated, deterministically shuffled and augmented) training dataset from
  its first batch after a restart; an uninterrupted run would be `epochs * steps` batches further.
  Skipping keeps the two runs identical (the skipped batches are read, not trained on).
  """
  done = restored_epoch(model_dir)
  return dataset.skip(done * steps_per_epoch_) if done else dataset


def checkpoint_callbacks(model_dir, monitor="val_loss"):
  """ModelCheckpoint (last + best on `monitor`) and BackupAndRestore under `model_dir`.

  All writes are atomic (temporary file + rename). Non-chief multi-worker processes write under
  `worker_model_dir(model_dir)`. The backup records the best `monitor` value, and a resumed run
  restores it into the best checkpoint's callback (`AtomicBackupAndRestore`).
  """
  model_dir = worker_model_dir(model_dir)
  ckpt = os.path.join(model_dir, CHECKPOINT_DIR)
  os.makedirs(ckpt, exist_ok=True)
  best = AtomicModelCheckpoint(os.path.join(ckpt, BEST_CHECKPOINT), save_weights_only=True,
                               save_best_only=True, monitor=monitor, mode="min")
  return [
      AtomicModelCheckpoint(os.path.join(ckpt, LAST_CHECKPOINT), save_weights_only=True),
      best,
      AtomicBackupAndRestore(os.path.join(model_dir, BACKUP_DIR), best_checkpoint=best),
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


def _cell(value):
  """Numbers as "%.4f" (None / NaN as "nan"); anything else (e.g. a protocol name) as str."""
  if value is None:
    return "nan"
  if isinstance(value, numbers.Real) and not isinstance(value, bool):
    return f"{value:.4f}"
  return str(value)


def markdown_table(rows, columns):
  """rows: {row name: {column: value}} -> GitHub Markdown table string.

  Numeric cells are written with 4 decimals, other cells (strings) as they are.
  """
  lines = ["| | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
  for name, values in rows.items():
    cells = [_cell(values[c]) if c in values else "" for c in columns]
    lines.append(f"| {name} | " + " | ".join(cells) + " |")
  return "\n".join(lines)


def define_flags(definitions):
  """Defines absl flags lazily (in `run()`), skipping names another entry point already defined.

  `definitions`: list of `(absl define function, name, default, help[, kwargs dict])`. Defining
  at import time would make `trainers.train`, `trainers.evaluate` and `trainers.demo` collide
  (absl raises DuplicateFlagError for one name defined by two modules) when imported together.
  Returns the list of the flag names (defined now or before), for `complete_help`.
  """
  from absl import flags  # pylint: disable=g-import-not-at-top
  names = []
  for item in definitions:
    fn, name, default, help_text = item[:4]
    kwargs = item[4] if len(item) > 4 else {}
    if name not in flags.FLAGS:
      fn(name, default, help_text, **kwargs)
    else:  # defined by another entry point in this process: use this entry point's default
      flags.FLAGS.set_default(name, default)
    names.append(name)
  return names


def complete_help(doc, flag_names, program=None):
  """Makes absl's `--help` of a console script list `flag_names` and print `doc` as usage.

  absl's `--help` shows the key flags of the module named by `sys.argv[0]` (`program`) and the
  docstring of `__main__`; under the setuptools console-script wrapper both are the wrapper's,
  which has neither, so `--help` would print only "Try --helpfull". This registers the flags as
  key flags of `program` and gives a docstring-less `__main__` the entry point's `doc`. Call it
  in `run()` after defining the flags, before `app.run`.

  Args:
    doc: the entry point's module docstring (str).
    flag_names: names of already-defined flags (e.g. the list `define_flags` returns).
    program: module name the flags are registered for (default `sys.argv[0]`).
  """
  import sys  # pylint: disable=g-import-not-at-top
  from absl import flags  # pylint: disable=g-import-not-at-top
  main_module = sys.modules.get("__main__")
  if doc and main_module is not None and not getattr(main_module, "__doc__", None):
    main_module.__doc__ = doc
  program = program or sys.argv[0]
  for name in flag_names:
    flags.FLAGS.register_key_flag_for_module(program, flags.FLAGS[name])


TENSORBOARD_DIR = "tensorboard"


def tensorboard_callback(model_dir, sample_dataset):
  """TensorBoard scalars, depth images and histograms under `<model_dir>/tensorboard/`.

  `sample_dataset`: the images are computed on its first batch (validation data).
  """
  from trainers import callbacks  # pylint: disable=g-import-not-at-top
  return callbacks.DepthTensorBoard(os.path.join(worker_model_dir(model_dir), TENSORBOARD_DIR),
                                    sample_batch=sample_dataset.take(1))


# ------------------------------------------------------------------------------ fit an experiment
HISTORY_FILENAME = "history.json"
# Test-only hooks (tests/test_fault_tolerance.py) simulating a preempted machine: the process
# SIGKILLs itself at the end of epoch k (after that epoch's backup), or right after training
# step k (1-based, counted by the optimizer; in the middle of an epoch, after the last backup).
CRASH_AFTER_EPOCH_ENV = "TFDEPTH_TEST_CRASH_AFTER_EPOCH"
CRASH_AFTER_STEP_ENV = "TFDEPTH_TEST_CRASH_AFTER_STEP"


class _Crash(keras.callbacks.Callback):

  def __init__(self, epoch=None, step=None):
    super().__init__()
    self.epoch, self.step = epoch, step

  @staticmethod
  def _kill():
    import signal  # pylint: disable=g-import-not-at-top
    os.kill(os.getpid(), signal.SIGKILL)

  def on_train_batch_end(self, batch, logs=None):
    if self.step is not None and int(self.model.optimizer.iterations.numpy()) == self.step:
      self._kill()

  def on_epoch_end(self, epoch, logs=None):
    if self.epoch is not None and epoch + 1 == self.epoch:
      self._kill()


def _test_crash_callbacks():
  epoch, step = os.environ.get(CRASH_AFTER_EPOCH_ENV), os.environ.get(CRASH_AFTER_STEP_ENV)
  if not (epoch or step):
    return []
  return [_Crash(int(epoch) if epoch else None, int(step) if step else None)]


# Written into this worker's model_dir when training starts and removed when it has finished: its
# presence marks an interrupted run (killed before its first backup, too) that may be restarted.
IN_PROGRESS_MARKER = "training_in_progress.json"


def _flatten_config(value, prefix=""):
  """`{dotted key: leaf}` of a config dict (loss terms addressed by name, as overrides do)."""
  if isinstance(value, dict):
    out = {}
    for k, v in value.items():
      out.update(_flatten_config(v, f"{prefix}{k}."))
    return out
  if (isinstance(value, list) and value and all(isinstance(v, dict) and "name" in v
                                                 for v in value)):
    out = {}
    for v in value:
      out.update(_flatten_config(v, f"{prefix}{v['name']}."))
    return out
  return {prefix[:-1]: value}


def config_differences(saved, config):
  """Sorted dotted keys whose values differ between a saved config dict and `config`."""
  new = json.loads(json.dumps(experiments.config_to_dict(config)))
  a, b = _flatten_config(saved), _flatten_config(new)
  return sorted(k for k in set(a) | set(b) if a.get(k, "<absent>") != b.get(k, "<absent>"))


def _model_dir_outputs(model_dir):
  """Paths (relative to `model_dir`) of the training outputs already in it, for this worker (the
  resolved config is the chief's: another worker may find the one its chief just wrote)."""
  wdir = worker_model_dir(model_dir)
  candidates = [os.path.join(model_dir, experiments.RESOLVED_CONFIG_FILENAME)] if is_chief() else []
  candidates += [os.path.join(wdir, CHECKPOINT_DIR, n) for n in (LAST_CHECKPOINT, BEST_CHECKPOINT)]
  candidates += [os.path.join(wdir, n) for n in (HISTORY_FILENAME, BACKUP_DIR, TENSORBOARD_DIR,
                                                 IN_PROGRESS_MARKER)]
  return [os.path.relpath(p, model_dir) for p in candidates if os.path.exists(p)]


def prepare_model_dir(config, model_dir, overwrite=False):
  """Checks that training `config` into `model_dir` loses nothing; returns what it will do.

  * "new": `model_dir` has no training outputs.
  * "resume": an interrupted run of the **same** config (its backup or the in-progress marker is
    there; a run killed before its first backup restarts from scratch): `BackupAndRestore` resumes.
  * "overwrite": `overwrite=True` (`--overwrite`); the previous checkpoints, backup, history and
    TensorBoard logs of this worker are deleted first, so nothing of the old run mixes with the
    new one (the best checkpoint, the resume point).

  Raises:
    ConfigError: `model_dir` holds a finished run (or outputs of an unknown run) and
      `overwrite` is False; or an interrupted run whose saved config differs from `config` (the
      message lists the differing keys).
  """
  existing = _model_dir_outputs(model_dir)
  if not existing:
    return "new"
  wdir = worker_model_dir(model_dir)
  if overwrite:
    for name in (CHECKPOINT_DIR + "/" + LAST_CHECKPOINT, CHECKPOINT_DIR + "/" + BEST_CHECKPOINT,
                 HISTORY_FILENAME, IN_PROGRESS_MARKER):
      path = os.path.join(wdir, name)
      if os.path.exists(path):
        os.remove(path)
    for name in (BACKUP_DIR, TENSORBOARD_DIR):
      shutil.rmtree(os.path.join(wdir, name), ignore_errors=True)
    return "overwrite"
  config_path = os.path.join(model_dir, experiments.RESOLVED_CONFIG_FILENAME)
  interrupted = (os.path.exists(os.path.join(wdir, IN_PROGRESS_MARKER))
                 or read_backup_metadata(os.path.join(wdir, BACKUP_DIR)) is not None)
  differing = []
  if os.path.exists(config_path):
    with open(config_path) as f:
      differing = config_differences(json.load(f), config)
  if interrupted and not differing:
    return "resume"
  if existing == [experiments.RESOLVED_CONFIG_FILENAME] and not differing:
    return "new"   # killed between writing the config and the in-progress marker
  if interrupted:
    raise ConfigError(
        f"model_dir {model_dir!r} holds an interrupted run of another config: keys {differing} "
        f"differ from {config_path!r}. Expected the same experiment and overrides to resume it; "
        "pass --overwrite to discard it and train the new config, or use another --model_dir.")
  raise ConfigError(
      f"model_dir {model_dir!r} already holds training outputs {existing} and no interrupted run "
      "to resume; expected an empty or new directory. Pass --overwrite to replace them, or use "
      "another --model_dir."
      + (f" (the saved config also differs in {differing})" if differing else ""))


def _write_in_progress_marker(model_dir):
  wdir = worker_model_dir(model_dir)
  os.makedirs(wdir, exist_ok=True)
  _write_json_atomic(os.path.join(wdir, IN_PROGRESS_MARKER), {"pid": os.getpid()})


def fit_experiment(config, model_dir, make_datasets_fn, build_trainer_fn, strategy_name="default",
                   data_dir=None, verbose=1, overwrite=False):
  """The training run behind `tfdepth-train`, shared by every trainer.

  Checks `model_dir` (`prepare_model_dir`: a finished run is never silently replaced, an
  interrupted one is resumed only with the same config); creates the strategy; the chief writes
  the resolved config into `model_dir`; prepares the TFDS
  builder; builds the train (and validation) datasets with multi-worker DATA sharding; skips the
  batches a restored backup already consumed; builds the compiled trainer inside the strategy
  scope; fits with atomic last/best checkpoints, BackupAndRestore and TensorBoard; writes the
  history JSON (per worker).

  Args:
    config: `ExperimentConfig`.
    model_dir: output directory (checkpoints, backup, tensorboard, config, history).
    make_datasets_fn: `(config, builder, roles) -> {role: tf.data.Dataset}` of global batches.
    build_trainer_fn: `(config, total_steps, strategy) -> compiled keras.Model`.
    strategy_name: one of `STRATEGIES`.
    data_dir: TFDS data dir.
    verbose: `fit` verbosity.
    overwrite: replace the outputs of a previous run in `model_dir` (`--overwrite`).

  Returns:
    `(model, keras History, builder)`.

  Raises:
    ConfigError: from `prepare_model_dir`, before anything is written.
  """
  from absl import logging  # pylint: disable=g-import-not-at-top
  mode = prepare_model_dir(config, model_dir, overwrite)
  logging.info("model_dir %s: %s", model_dir, mode)
  strategy = get_strategy(strategy_name)
  if is_chief():  # multi-worker: only the chief writes model_dir itself
    experiments.save_resolved_config(config, model_dir)
  _write_in_progress_marker(model_dir)
  builder = prepare_builder(config.data, data_dir)
  # tf.data's seeded shuffle also depends on the global seed: fix it before building the input
  # so the sample order does not depend on what ran earlier in the process.
  keras.utils.set_random_seed(config.train.seed)
  roles = ("train", "validation") if config.data.validation_split else ("train",)
  datasets = {role: ds.with_options(data_sharding_options())
              for role, ds in make_datasets_fn(config, builder, roles,
                                               cache=cache_in_memory(config)).items()}
  steps = steps_per_epoch(config, builder)
  # After a restart from a backup, continue the input stream where the killed run was.
  datasets["train"] = resume_dataset(datasets["train"], model_dir, steps)
  model = build_trainer_fn(config, steps * config.train.epochs, strategy)
  logging.info("training %s for %d epochs x %d steps (global batch %d, %d replicas)",
               config.name, config.train.epochs, steps, config.train.batch_size,
               strategy.num_replicas_in_sync)
  validation = datasets.get("validation")
  callbacks = (checkpoint_callbacks(model_dir, "val_loss" if validation is not None else "loss")
               + _test_crash_callbacks())
  callbacks.append(tensorboard_callback(model_dir, validation or datasets["train"]))
  history = model.fit(datasets["train"], epochs=config.train.epochs, steps_per_epoch=steps,
                      validation_data=validation,
                      validation_steps=config.train.validation_steps or None,
                      callbacks=callbacks, verbose=verbose)
  with open(os.path.join(worker_model_dir(model_dir), HISTORY_FILENAME), "w") as f:
    json.dump({k: [float(x) for x in v] for k, v in history.history.items()}, f, indent=2)
  os.remove(os.path.join(worker_model_dir(model_dir), IN_PROGRESS_MARKER))   # finished
  return model, history, builder
