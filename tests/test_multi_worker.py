"""Multi-worker training on one machine equals single-process training with the same global batch.

Two `tfdepth-train --strategy=multi_worker` processes (TF_CONFIG with two localhost workers,
MultiWorkerMirroredStrategy, one CPU replica each) train a tiny supervised experiment; a third
process runs `tfdepth-train --strategy=mirrored` over two logical CPU devices in one process.
Both see global batch 4 split into two per-replica batches of 2, so the final weights (and SGD
momentum slots) must agree.

Why MirroredStrategy(2 replicas) and not one device as the reference: FastDepth has
BatchNormalization, which normalises with *per-replica* batch statistics under every
tf.distribute strategy, so only a 2-replica single process computes the same function. The
gradient reduction (sum over replicas of per-replica `sum(loss)/global_batch`,
`trainers.supervised._global_batch_mean`) is the same in both.

Determinism: SGD with a constant learning rate, no augmentation, shuffle buffer 1 (no
shuffling), fixed weight-initialisation seed; input sharding is by DATA (every worker reads the
full pipeline and keeps its half of each global batch, `trainers.common.data_sharding_options`).
"""

import json
import os

import numpy as np
import pytest

from tests._workers import procs
from trainers import common
from trainers import experiments

EXPERIMENT = "fastdepth_synthetic_street"
# Tiny: 32x64 input, FastDepth width 0.25, global batch 4, 3 SGD steps in 1 epoch.
GLOBAL_BATCH = 4
OVERRIDES = [
    "data.height=32", "data.width=64", "data.builder_kwargs.height=32",
    "data.builder_kwargs.width=64", "data.builder_kwargs.num_train=12",
    "data.builder_kwargs.num_validation=4", "data.builder_kwargs.num_test=2",
    "data.augment=false", "data.shuffle_buffer=1",
    "model.kwargs.width_multiplier=0.25",
    f"train.batch_size={GLOBAL_BATCH}", "train.epochs=1", "train.steps_per_epoch=3",
    "train.validation_steps=1",
    "optimizer.name=sgd", "optimizer.schedule=constant", "optimizer.learning_rate=0.01",
]
# Each process imports TensorFlow and builds the model (~10-20 s on a loaded 2-core machine);
# the cluster handshake and 3 steps add seconds. Generous bound; the test kills on expiry.
PROCESS_TIMEOUT_S = 240
# Same sub-batches, same ops, a two-term all-reduce sum (commutative, exact) on both sides: the
# only differences are oneDNN/Eigen threading reorderings of float32 sums inside convolutions
# (~1e-7 relative per step), amplified a little over 3 steps.
RTOL, ATOL = 1e-5, 1e-6


def _flags(model_dir, data_dir, strategy):
  return ([f"--experiment={EXPERIMENT}", f"--model_dir={model_dir}", f"--data_dir={data_dir}",
           f"--strategy={strategy}", "--verbose=2"]
          + [f"--override={o}" for o in OVERRIDES])


def test_two_localhost_workers_match_single_process_mirrored(tmp_path):
  data_dir = str(tmp_path / "tfds")
  # Prepare the synthetic data once, here, so the three processes only read it.
  config = experiments.apply_overrides(experiments.get_experiment(EXPERIMENT), OVERRIDES)
  common.prepare_builder(config.data, data_dir)

  mw_dir, ref_dir = str(tmp_path / "multi_worker"), str(tmp_path / "mirrored")
  ports = procs.free_ports(2)
  workers = [procs.spawn(procs.train_command(_flags(mw_dir, data_dir, "multi_worker")),
                         {"TF_CONFIG": procs.tf_config(ports, i)},
                         str(tmp_path / f"worker{i}.log")) for i in range(2)]
  reference = procs.spawn(procs.train_command(_flags(ref_dir, data_dir, "mirrored")),
                          {"TFDEPTH_TEST_LOGICAL_CPUS": "2"}, str(tmp_path / "ref.log"))
  with procs.running(workers + [reference]) as all_procs:
    codes = procs.wait_all(all_procs, PROCESS_TIMEOUT_S)
    assert codes == [0, 0, 0], "\n\n".join(procs.tail(p) for p in all_procs)

  # Both ran 2 replicas: the logged line of trainers.train names them.
  for p in workers + [reference]:
    assert "(global batch 4, 2 replicas)" in procs.tail(p, 10 ** 6), procs.tail(p)

  last = os.path.join(common.CHECKPOINT_DIR, common.LAST_CHECKPOINT)
  chief = procs.read_h5(os.path.join(mw_dir, last))
  other = procs.read_h5(os.path.join(mw_dir, common.WORKERS_DIR, "worker_1", last))
  ref = procs.read_h5(os.path.join(ref_dir, last))
  assert set(chief) == set(ref) == set(other)
  iterations = [k for k in ref if k.startswith("optimizer") and ref[k].ndim == 0]
  assert [int(ref[k]) for k in iterations] == [3]  # three SGD steps were applied
  moved = 0
  for key, value in ref.items():
    np.testing.assert_allclose(chief[key], value, rtol=RTOL, atol=ATOL, err_msg=key)
    # Synchronous training: the non-chief worker holds bit-identical weights to the chief.
    np.testing.assert_array_equal(other[key], chief[key], err_msg=key)
    moved += int(key.startswith("layers") and value.size > 1)
  assert moved > 10
  # The chief wrote the resolved config and history into model_dir; the worker into its own dir.
  with open(os.path.join(mw_dir, "history.json")) as f:
    history = json.load(f)
  with open(os.path.join(ref_dir, "history.json")) as f:
    ref_history = json.load(f)
  # Logged losses are global-batch means on both sides.
  assert history["loss"] == pytest.approx(ref_history["loss"], rel=1e-5)
  assert experiments.load_resolved_config(mw_dir) == config
