"""Fault tolerance of `tfdepth-train`: kill + restart, atomic checkpoints, non-finite guards.

* A `tfdepth-train` process is SIGKILLed at the end of epoch 2 of 3 (test-only hook
  `trainers.train.CRASH_AFTER_EPOCH_ENV`, after that epoch's backup was written), or right after
  a random training step (`CRASH_AFTER_STEP_ENV`, drawn anew on every run from steps 1-5 of 6:
  mid-epoch or before the epoch's backup); restarting the same command resumes from the last
  backup and ends with the weights of an uninterrupted run. The
  experiment keeps Adam + cosine schedule (optimizer slots and iteration count must be restored),
  seeded shuffling and seeded augmentation (the input stream must continue where it was:
  `trainers.common.resume_dataset`), and 6 training examples for 2 x batch 4 per epoch, so epochs
  and passes over the data do not line up.
* Truncated temporary files left by a kill during a write are never loaded.
* A non-finite loss stops training with `NonFiniteError` naming the step and the term; the last
  good checkpoint and backup are kept, and the bad step changes no weight.
* Losses and metrics stay finite on degenerate batches (all-invalid depth, constant images).
"""

import json
import os
import random
import signal

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests._workers import procs
from tests._workers import tiny_experiment
from tfdepth import losses
from tfdepth import metrics
from tfdepth.errors import NonFiniteError
from trainers import common
from trainers import experiments
from trainers import supervised
from trainers import train as train_lib

EPOCHS = 3
STEPS_PER_EPOCH = 2
CRASH_AFTER_EPOCH = 2
# `tests._workers.tiny_experiment` (Adam + cosine schedule, seeded shuffling, seeded flips and
# colour jitter) with 6 training examples for 2 steps of batch 4 per epoch.
OVERRIDES = [
    "data.builder_kwargs.num_train=6", "data.augment=true", f"train.epochs={EPOCHS}",
    f"train.steps_per_epoch={STEPS_PER_EPOCH}", "train.validation_steps=1",
]
# One process: import, build, trace, 2 epochs of 2 tiny steps (~30-60 s on a loaded 2-core box).
PROCESS_TIMEOUT_S = 240
# The resumed and the uninterrupted run execute the same float32 ops on the same batches on one
# device; only oneDNN threading may reorder sums (~1e-7 relative per step over 6 Adam steps).
RTOL, ATOL = 1e-5, 1e-6


def _command(model_dir, data_dir):
  return procs.train_command(
      [f"--experiment={tiny_experiment.NAME}", f"--model_dir={model_dir}",
       f"--data_dir={data_dir}",
       "--verbose=2"] + [f"--override={o}" for o in OVERRIDES])


def _assert_same_weights(actual, expected):
  assert set(actual) == set(expected)
  for key, value in expected.items():
    np.testing.assert_allclose(actual[key], value, rtol=RTOL, atol=ATOL, err_msg=key)


def _crash(when):
  """`(env, completed epochs in the last backup)` of a kill `when` = "epoch_end" | "random_step"."""
  if when == "epoch_end":
    return {train_lib.CRASH_AFTER_EPOCH_ENV: str(CRASH_AFTER_EPOCH)}, CRASH_AFTER_EPOCH
  # Any step but the last; a kill after step k (1-based) happens before the backup of the epoch
  # that step belongs to, so the backup holds (k - 1) // STEPS_PER_EPOCH epochs.
  step = random.SystemRandom().randint(1, EPOCHS * STEPS_PER_EPOCH - 1)
  return {train_lib.CRASH_AFTER_STEP_ENV: str(step)}, (step - 1) // STEPS_PER_EPOCH


@pytest.mark.parametrize("when", ["epoch_end", "random_step"])
def test_killed_run_resumes_to_the_uninterrupted_weights(when, tmp_path):
  crash_env, restored = _crash(when)
  data_dir, run_dir, ref_dir = (str(tmp_path / n) for n in ("tfds", "run", "ref"))
  config = experiments.apply_overrides(experiments.get_experiment(tiny_experiment.NAME),
                                       OVERRIDES)
  common.prepare_builder(config.data, data_dir)  # prepared once; the processes only read it

  crashing = procs.spawn(_command(run_dir, data_dir), crash_env, str(tmp_path / "crash.log"))
  with procs.running([crashing]):
    # Meanwhile, the uninterrupted reference run (same code path, in this process).
    _, ref_history, _ = train_lib.train(config, ref_dir, data_dir=data_dir, verbose=0)
    assert procs.wait_all([crashing], PROCESS_TIMEOUT_S) == [-signal.SIGKILL], procs.tail(crashing)

  backup = os.path.join(run_dir, common.BACKUP_DIR)
  metadata = common.read_backup_metadata(backup)
  if restored:
    assert {k: metadata[k] for k in ("epoch", "weights")} == {
        "epoch": restored, "weights": common.BACKUP_WEIGHTS_PATTERN.format(epoch=restored)}, crash_env
    assert metadata["best"]["monitor"] == "val_loss", crash_env   # restored into the best ckpt
  else:  # killed during epoch 1: no backup yet, the restart trains from scratch
    assert metadata is None, crash_env
  assert common.restored_epoch(run_dir) == restored, crash_env
  assert not os.path.exists(os.path.join(run_dir, train_lib.HISTORY_FILENAME))
  # A kill in the middle of the next writes leaves truncated temporary files (and, were a writer
  # not atomic, a truncated epoch file): none of them may be loaded on restart.
  garbage = b"\x89HDF\r\n\x1a\n" + b"\x00" * 40  # an HDF5 signature, then nothing
  os.makedirs(backup, exist_ok=True)
  for path in (os.path.join(backup, f"{common.TMP_PREFIX}4242-epoch_3.weights.h5"),
               os.path.join(backup, "epoch_3.weights.h5"),
               os.path.join(run_dir, common.CHECKPOINT_DIR,
                            f"{common.TMP_PREFIX}4242-{common.LAST_CHECKPOINT}")):
    with open(path, "wb") as f:
      f.write(garbage)

  resumed = procs.spawn(_command(run_dir, data_dir), {}, str(tmp_path / "resume.log"))
  with procs.running([resumed]):
    assert procs.wait_all([resumed], PROCESS_TIMEOUT_S) == [0], procs.tail(resumed)
  log = procs.tail(resumed, 10 ** 6)
  # Keras prints "Epoch k/3" only for the epochs it runs: the restart ran the missing ones.
  for epoch in range(1, EPOCHS + 1):
    assert (f"Epoch {epoch}/{EPOCHS}" in log) == (epoch > restored), (crash_env, log[-3000:])
  with open(os.path.join(run_dir, train_lib.HISTORY_FILENAME)) as f:
    history = json.load(f)
  assert len(history["loss"]) == EPOCHS - restored
  assert history["loss"][-1] == pytest.approx(ref_history.history["loss"][-1], rel=1e-5)

  last = os.path.join(common.CHECKPOINT_DIR, common.LAST_CHECKPOINT)
  resumed_weights = procs.read_h5(os.path.join(run_dir, last))
  ref_weights = procs.read_h5(os.path.join(ref_dir, last))
  _assert_same_weights(resumed_weights, ref_weights)
  # Keras stores the optimizer's iteration count first: Adam resumed at the backup's step and
  # ran 6 in all.
  assert int(resumed_weights["optimizer/vars/0"]) == EPOCHS * STEPS_PER_EPOCH
  # The backup is removed after a completed run (Keras BackupAndRestore, delete_checkpoint).
  assert not os.path.exists(backup)


# ------------------------------------------------------------------------------ atomic writes
def _tiny_network(height=8, width=8):
  x = keras.Input((height, width, 3))
  depth = keras.layers.Conv2D(1, 3, padding="same", activation="softplus",
                              name="tiny_depth")(x)
  return keras.Model(x, {"depth": depth}, name="tiny")


def test_save_weights_atomic_never_leaves_a_truncated_file(tmp_path, monkeypatch):
  model = _tiny_network()
  path = str(tmp_path / "last.weights.h5")
  common.save_weights_atomic(model, path)
  with open(path, "rb") as f:
    good = f.read()
  assert os.listdir(tmp_path) == ["last.weights.h5"]  # the temporary file was renamed

  def dying_save(filepath, overwrite=True):  # a writer killed halfway
    with open(filepath, "wb") as f:
      f.write(good[: len(good) // 2])
    raise KeyboardInterrupt("killed while writing")

  monkeypatch.setattr(model, "save_weights", dying_save)
  with pytest.raises(KeyboardInterrupt):
    common.save_weights_atomic(model, path)
  with open(path, "rb") as f:
    assert f.read() == good  # the previous complete file is untouched
  leftovers = [n for n in os.listdir(tmp_path) if n != "last.weights.h5"]
  assert len(leftovers) == 1 and leftovers[0].startswith(common.TMP_PREFIX)


# ------------------------------------------------------------------------------ non-finite guard
NAN_ELEMENT = 4  # first element of the first batch of epoch 2 (batch 2, 2 steps per epoch)


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
  keras.utils.set_random_seed(0)
  images = np.full((6, 8, 8, 3), 0.5, np.float32) + np.linspace(
      0, 0.4, 6, dtype=np.float32)[:, None, None, None]
  images[NAN_ELEMENT, 3, 3, 0] = np.nan
  depth = np.full((6, 8, 8, 1), 2.0, np.float32)
  ds = tf.data.Dataset.from_tensor_slices({"image": images, "depth": depth}).batch(2)
  model = supervised.SupervisedDepthModel(_tiny_network(), [("l1", 1.0), ("silog", 0.5)])
  # The non-finite step is not applied at all (tests/test_trainer_supervised.py checks Adam).
  model.compile(optimizer=keras.optimizers.SGD(0.1))
  model(tf.zeros([1, 8, 8, 3]))
  good = {}

  class Remember(keras.callbacks.Callback):

    def on_epoch_end(self, epoch, logs=None):
      good[epoch] = [w.numpy().copy() for w in self.model.weights]

  model_dir = str(tmp_path)
  with pytest.raises(NonFiniteError) as info:
    model.fit(ds.repeat(), epochs=2, steps_per_epoch=2, verbose=0,
              callbacks=[Remember()] + common.checkpoint_callbacks(model_dir, monitor="loss"))
  message = str(info.value)
  assert "global step 3" in message and "epoch 1, batch 0" in message
  assert "l1_loss" in message and "silog_loss" in message and "nan" in message
  assert list(good) == [0]
  # The bad step applied no update.
  for w, w0 in zip(model.weights, good[0]):
    if w.path.startswith("tiny"):
      np.testing.assert_array_equal(w.numpy(), w0)
  # Checkpoint and backup hold the end of epoch 0 (epoch 1 never completed).
  for name in (common.LAST_CHECKPOINT, common.BEST_CHECKPOINT):
    restored = supervised.SupervisedDepthModel(_tiny_network(), [("l1", 1.0), ("silog", 0.5)])
    restored(tf.zeros([1, 8, 8, 3]))
    restored.load_weights(os.path.join(model_dir, common.CHECKPOINT_DIR, name))
    for w, w0 in zip(restored.network.weights, model.network.weights):
      np.testing.assert_array_equal(w.numpy(), w0.numpy())
  assert common.read_backup_metadata(os.path.join(model_dir, common.BACKUP_DIR))["epoch"] == 1


# ------------------------------------------------------------------------------ best after resume
class _Preempted(Exception):
  pass


def test_resumed_run_replaces_best_checkpoint_only_with_a_better_model(tmp_path):
  """A restart must not save its first (worse) epoch as best.weights.h5: the best val_loss of the
  epochs before the restart is kept in the backup and restored into the best checkpoint."""
  images = np.linspace(0.1, 0.9, 4 * 8 * 8 * 3, dtype=np.float32).reshape(4, 8, 8, 3)
  ds = tf.data.Dataset.from_tensor_slices(
      {"image": images, "depth": np.full((4, 8, 8, 1), 3.0, np.float32)}).batch(2)

  def model():
    keras.utils.set_random_seed(0)
    m = supervised.SupervisedDepthModel(_tiny_network(), [("l1", 1.0)])
    m.compile(optimizer=keras.optimizers.SGD(0.05))
    m(tf.zeros([1, 8, 8, 3]))
    return m

  class Preempt(keras.callbacks.Callback):   # after the backup of epoch 2

    def on_epoch_end(self, epoch, logs=None):
      if epoch == 1:
        raise _Preempted()

  class ValLoss(keras.callbacks.Callback):   # placed first: sees every epoch's logs
    values = []

    def on_epoch_end(self, epoch, logs=None):
      self.values.append(logs["val_loss"])

  model_dir = str(tmp_path)
  best_path = os.path.join(model_dir, common.CHECKPOINT_DIR, common.BEST_CHECKPOINT)
  with pytest.raises(_Preempted):
    model().fit(ds.repeat(), steps_per_epoch=2, epochs=4, validation_data=ds, verbose=0,
                callbacks=[ValLoss()] + common.checkpoint_callbacks(model_dir) + [Preempt()])
  best_before = min(ValLoss.values)
  metadata = common.read_backup_metadata(os.path.join(model_dir, common.BACKUP_DIR))
  assert metadata["epoch"] == 2
  assert metadata["best"] == {"monitor": "val_loss", "value": pytest.approx(best_before, rel=1e-7)}
  with open(best_path, "rb") as f:
    best_bytes = f.read()

  class Worse(keras.callbacks.Callback):   # a resumed epoch whose val_loss goes up

    def on_epoch_begin(self, epoch, logs=None):
      for v in self.model.network.trainable_variables:
        v.assign(v + 0.5)

  callbacks = common.checkpoint_callbacks(model_dir)
  resumed = model()
  ValLoss.values = []
  resumed.fit(ds.repeat(), steps_per_epoch=2, epochs=3, validation_data=ds, verbose=0,
              callbacks=[ValLoss()] + callbacks + [Worse()])
  assert len(ValLoss.values) == 1 and ValLoss.values[0] > best_before   # epoch 3 only, worse
  assert callbacks[1].best == pytest.approx(best_before, rel=1e-7)      # restored, kept
  with open(best_path, "rb") as f:
    assert f.read() == best_bytes


# ------------------------------------------------------------------------------ degenerate batches
B, H, W = 2, 8, 8
EDGES = np.linspace(1.0, 10.0, 5).astype(np.float32)  # 4 SID bins for the ordinal losses


def _degenerate_cases():
  pred = tf.fill([B, H, W, 1], 3.0)
  zero_depth = tf.zeros([B, H, W, 1])           # no valid pixel at all
  zero_mask = tf.zeros([B, H, W, 1])
  logits = tf.zeros([B, H, W, len(EDGES) - 1])
  ordinal_logits = tf.zeros([B, H, W, len(EDGES) - 1])
  return {
      "silog": lambda: losses.scale_invariant_log_loss(pred, zero_depth),
      "silog_bts": lambda: losses.silog_bts_loss(pred, zero_depth),
      "berhu": lambda: losses.berhu_loss(pred, zero_depth),
      "l1": lambda: losses.l1_loss(pred, zero_depth),
      "l2": lambda: losses.l2_loss(pred, zero_depth),
      "gradient": lambda: losses.gradient_loss(pred, zero_depth),
      "gradient_matching": lambda: losses.gradient_matching_loss(pred, zero_depth),
      "eigen_pairwise": lambda: losses.eigen_pairwise_loss(pred, zero_depth),
      "silog_masked_out": lambda: losses.scale_invariant_log_loss(
          pred, tf.fill([B, H, W, 1], 2.0), mask=zero_mask),
      "sid_cross_entropy": lambda: losses.sid_cross_entropy(logits, zero_depth, EDGES),
      "ordinal": lambda: losses.ordinal_regression_loss(ordinal_logits, zero_depth, EDGES),
      "ssim_constant_images": lambda: losses.ssim_loss_map(
          tf.fill([B, H, W, 3], 0.5), tf.fill([B, H, W, 3], 0.5)),
      "photometric_constant_images": lambda: losses.photometric_error(
          tf.zeros([B, H, W, 3]), tf.ones([B, H, W, 3])),
      "smoothness_constant": lambda: losses.edge_aware_smoothness(
          tf.fill([B, H, W, 1], 0.2), tf.fill([B, H, W, 3], 0.5)),
      "smoothness_zero_disp": lambda: losses.edge_aware_smoothness(
          tf.zeros([B, H, W, 1]), tf.fill([B, H, W, 3], 0.5)),
  }


@pytest.mark.parametrize("name", sorted(_degenerate_cases()))
def test_losses_are_finite_on_degenerate_batches(name):
  value = _degenerate_cases()[name]().numpy()
  assert np.all(np.isfinite(value)), (name, value)


def test_trainer_step_and_metrics_are_finite_without_valid_pixels():
  # An all-invalid batch contributes 0 loss and 0 gradient; metrics ignore it.
  model = supervised.SupervisedDepthModel(
      _tiny_network(), [("silog", 1.0), ("l1", 0.1), ("berhu", 1.0)],
      depth_metrics=metrics.standard_metrics("synthetic_street"))
  model.compile(optimizer=keras.optimizers.SGD(0.1))
  logs = model.train_on_batch(tf.fill([B, H, W, 3], 0.5), tf.zeros([B, H, W, 1]),
                              return_dict=True)
  assert all(np.isfinite(v) for v in logs.values()), logs
  assert logs["loss"] == 0.0
