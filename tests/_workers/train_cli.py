"""`tfdepth-train` (`trainers.train.run`) in a fresh process, for the multi-process tests.

    TFDEPTH_TEST_LOGICAL_CPUS=2 python -m tests._workers.train_cli --experiment=... --model_dir=...

`TFDEPTH_TEST_LOGICAL_CPUS=N` (N > 1) splits the CPU into N logical devices before TensorFlow
initialises, so that `--strategy=mirrored` runs N replicas on a CPU-only machine (as in
tests/conftest.py). Everything else is the real command line; the test experiment of
`tests._workers.tiny_experiment` is registered first.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import tensorflow as tf  # noqa: E402  pylint: disable=g-import-not-at-top

LOGICAL_CPUS_ENV = "TFDEPTH_TEST_LOGICAL_CPUS"


def _configure_logical_cpus():
  n = int(os.environ.get(LOGICAL_CPUS_ENV, "0") or 0)
  if n > 1:
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * n)


if __name__ == "__main__":
  _configure_logical_cpus()
  # pylint: disable-next=g-import-not-at-top,unused-import
  from tests._workers import tiny_experiment  # noqa: F401
  from trainers import train  # pylint: disable=g-import-not-at-top
  train.run()
