"""Multi-worker training on one machine equals single-process training with the same global batch.

Two `tfdepth-train --strategy=multi_worker` processes (TF_CONFIG naming two workers on
127.0.0.1 with free ports; MultiWorkerMirroredStrategy, one CPU replica each) train the tiny
supervised experiment `tests._workers.tiny_experiment` (Eigen 2014 network without BatchNorm
or dropout, so a step computes the same function on any number of replicas) for 3 SGD steps of
global batch 4, i.e. per-replica batches of 2; and the tiny self-supervised Monodepth2
experiment (ResNet-18 depth + pose nets with cross-replica BatchNorm statistics) for 2 steps of
global batch 2. The same command runs in this process with the
default strategy (one device, batches of 4). The final weights, the momentum slots and the
logged losses must agree.

Determinism: SGD with a constant learning rate, no augmentation, shuffle buffer 1 (no
shuffling), fixed weight-initialisation seed; input sharding by DATA (every worker reads the
full pipeline and keeps its half of each global batch, `trainers.common.data_sharding_options`).
The loss scaling is the trainer's: each replica contributes `sum(per-image loss) / global batch`
and the replicas' gradients are summed (`trainers.supervised._global_batch_mean`).
"""

import json
import os

import numpy as np
import pytest

from tests._workers import procs
from tests._workers import tiny_experiment
from trainers import common
from trainers import experiments
from trainers import train as train_lib

GLOBAL_BATCH = 4
STEPS = 3
LEARNING_RATE = 0.01
_SGD = ["optimizer.name=sgd", "optimizer.schedule=constant",
        f"optimizer.learning_rate={LEARNING_RATE}"]
OVERRIDES = [
    "data.augment=false", "data.shuffle_buffer=1", f"train.batch_size={GLOBAL_BATCH}",
    "train.epochs=1", f"train.steps_per_epoch={STEPS}", "train.validation_steps=1",
] + _SGD
# Self-supervised: Monodepth2 ResNet-18 depth + pose nets with synchronized BatchNorm (see
# tests._workers.tiny_experiment), 2 steps of 2 clips (1 per replica).
SELF_SUPERVISED_GLOBAL_BATCH = 2
SELF_SUPERVISED_STEPS = 2
SELF_SUPERVISED_OVERRIDES = [
    "data.augment=false", "data.shuffle_buffer=1",
    f"train.batch_size={SELF_SUPERVISED_GLOBAL_BATCH}", "train.epochs=1",
    f"train.steps_per_epoch={SELF_SUPERVISED_STEPS}", "train.validation_steps=1",
] + _SGD
CASES = {
    "supervised": (tiny_experiment.NAME, OVERRIDES, GLOBAL_BATCH, STEPS),
    "self_supervised": (tiny_experiment.SELF_SUPERVISED_NAME, SELF_SUPERVISED_OVERRIDES,
                        SELF_SUPERVISED_GLOBAL_BATCH, SELF_SUPERVISED_STEPS),
}
# Each worker imports TensorFlow, builds the model and traces train + test functions; the
# cluster handshake and the steps add seconds. Generous bound for a loaded 2-core machine; the
# test kills both process groups on expiry or failure.
PROCESS_TIMEOUT_S = 420
# Same examples, same float32 ops; the differences are the summation order of a batch vs two
# halves plus a 2-term all-reduce (~1e-7 relative per gradient; with synchronized BatchNorm
# also the order of the statistics' sums), over 2-3 SGD steps of lr 0.01: far below 1e-5
# relative / 1e-6 absolute on weights of order 1e-2..1 (observed max differences ~1e-7).
RTOL, ATOL = 1e-5, 1e-6
# Keras stores the optimizer's iteration count and learning rate first in a weights file.
OPTIMIZER_ITERATIONS = "optimizer/vars/0"
OPTIMIZER_LEARNING_RATE = "optimizer/vars/1"


def _flags(name, overrides, model_dir, data_dir, strategy):
  return ([f"--experiment={name}", f"--model_dir={model_dir}",
           f"--data_dir={data_dir}", f"--strategy={strategy}", "--verbose=2"]
          + [f"--override={o}" for o in overrides])


@pytest.mark.parametrize("case", sorted(CASES))
def test_two_localhost_workers_match_single_process_training(case, tmp_path):
  name, overrides, global_batch, steps = CASES[case]
  data_dir = str(tmp_path / "tfds")
  config = experiments.apply_overrides(experiments.get_experiment(name), overrides)
  # Prepare the synthetic data once, here, so the worker processes only read it.
  common.prepare_builder(config.data, data_dir)

  mw_dir, ref_dir = str(tmp_path / "multi_worker"), str(tmp_path / "single")
  ports = procs.free_ports(2)
  workers = [procs.spawn(procs.train_command(_flags(name, overrides, mw_dir, data_dir,
                                                    "multi_worker")),
                         {"TF_CONFIG": procs.tf_config(ports, i)},
                         str(tmp_path / f"worker{i}.log")) for i in range(2)]
  with procs.running(workers):
    # Meanwhile the single-process reference: the same entry point, default strategy.
    _, ref_history, _ = train_lib.train(config, ref_dir, data_dir=data_dir, verbose=0)
    codes = procs.wait_all(workers, PROCESS_TIMEOUT_S)
    assert codes == [0, 0], "\n\n".join(procs.tail(p) for p in workers)

  for p in workers:  # common.fit_experiment logs the replica count of the strategy
    assert f"(global batch {global_batch}, 2 replicas)" in procs.tail(p, 10 ** 7), procs.tail(p)

  last = os.path.join(common.CHECKPOINT_DIR, common.LAST_CHECKPOINT)
  chief = procs.read_h5(os.path.join(mw_dir, last))
  other = procs.read_h5(os.path.join(mw_dir, common.WORKERS_DIR, "worker_1", last))
  ref = procs.read_h5(os.path.join(ref_dir, last))
  assert set(chief) == set(ref) == set(other)
  assert int(ref[OPTIMIZER_ITERATIONS]) == int(chief[OPTIMIZER_ITERATIONS]) == steps
  assert float(chief[OPTIMIZER_LEARNING_RATE]) == pytest.approx(LEARNING_RATE)
  for key, value in ref.items():
    np.testing.assert_allclose(chief[key], value, rtol=RTOL, atol=ATOL, err_msg=key)
    # Synchronous training: the non-chief worker holds bit-identical weights to the chief.
    np.testing.assert_array_equal(other[key], chief[key], err_msg=key)
  # Training moved the weights (the comparison is not between two untouched initialisations):
  # SGD momentum slots are non-zero after the steps.
  momenta = [v for k, v in ref.items() if k.startswith("optimizer") and v.ndim > 0]
  assert momenta and all(np.abs(m).max() > 0 for m in momenta)
  # Logged losses are global-batch means on both sides.
  with open(os.path.join(mw_dir, train_lib.HISTORY_FILENAME)) as f:
    history = json.load(f)
  assert history["loss"] == pytest.approx(ref_history.history["loss"], rel=1e-5)
  assert history["val_loss"] == pytest.approx(ref_history.history["val_loss"], rel=1e-5)
  # Only the chief wrote model_dir's config; the other worker wrote into its own directory.
  assert experiments.load_resolved_config(mw_dir) == config
  assert not os.path.exists(os.path.join(mw_dir, common.WORKERS_DIR, "worker_1",
                                         experiments.RESOLVED_CONFIG_FILENAME))


# ------------------------------------------------------------------------------ plumbing
@pytest.mark.parametrize("tf_config, chief, subdir", [
    (None, True, None),                                                   # single process
    ({"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 0}}, True, None),
    ({"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 1}},
     False, "worker_1"),
    ({"cluster": {"chief": ["c:0"], "worker": ["a:1"]}, "task": {"type": "chief", "index": 0}},
     True, None),
    ({"cluster": {"chief": ["c:0"], "worker": ["a:1"]}, "task": {"type": "worker", "index": 0}},
     False, "worker_0"),                          # with an explicit chief, worker 0 is not it
])
def test_chief_and_worker_directories_follow_tf_config(tf_config, chief, subdir, monkeypatch):
  if tf_config is None:
    monkeypatch.delenv("TF_CONFIG", raising=False)
  else:
    monkeypatch.setenv("TF_CONFIG", json.dumps(tf_config))
  assert common.is_chief() is chief
  expected = "/run" if subdir is None else os.path.join("/run", common.WORKERS_DIR, subdir)
  assert common.worker_model_dir("/run") == expected


def test_mirrored_strategy_uses_the_logical_cpus_and_data_sharding_is_by_data():
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  # tests/conftest.py configures two logical CPU devices and no GPU is present.
  assert common.get_strategy("mirrored").num_replicas_in_sync == 2
  policy = common.data_sharding_options().experimental_distribute.auto_shard_policy
  assert policy == tf.data.experimental.AutoShardPolicy.DATA
