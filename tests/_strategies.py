"""Distribution strategies for tests on the two logical CPU devices of tests/conftest.py."""

import tensorflow as tf


def cpu_mirrored_strategy(devices):
  """MirroredStrategy over logical CPU devices that stays usable across tests in one process.

  On CPUs MirroredStrategy picks collective all-reduce by default, and collective instance keys of
  separate strategy objects collide within a process: after one strategy has run, the next one's
  collectives abort with "Shape mismatch in the collective instance". Reducing to one device uses
  no collectives and gives the same sums.
  """
  names = [d if isinstance(d, str) else d.name for d in devices]
  return tf.distribute.MirroredStrategy(
      names, cross_device_ops=tf.distribute.ReductionToOneDevice())
