"""Test setup shared by the whole suite.

Two logical CPU devices are configured before TensorFlow initialises, so that tests can compare
`tf.distribute.MirroredStrategy` over two replicas with a single device on a CPU-only machine.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import tensorflow as tf  # noqa: E402

_cpus = tf.config.list_physical_devices("CPU")
if _cpus:
  try:
    tf.config.set_logical_device_configuration(
        _cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2)
  except RuntimeError:  # already initialised by an earlier import in this process
    pass
