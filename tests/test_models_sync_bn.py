"""`tfdepth.models.synchronize_batchnorm`: cross-replica BatchNorm statistics.

Under MirroredStrategy over the two logical CPUs of tests/conftest.py, a synchronized BN layer in
training mode normalises each replica's half batch with the statistics of the whole batch, i.e.
its output equals the single-device output on the full batch; unsynchronized, each half is
normalised with its own statistics.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests._strategies import cpu_mirrored_strategy
from tfdepth import models
from tfdepth.errors import InvalidInputError


def _bn_model():
  inputs = keras.Input((2, 2, 1))
  x = keras.layers.Conv2D(1, 1, use_bias=False, kernel_initializer="ones", name="conv")(inputs)
  x = keras.layers.BatchNormalization(epsilon=0.0, name="bn")(x)
  inner = keras.Model(inputs, x, name="inner")
  outer_in = keras.Input((2, 2, 1))
  y = keras.layers.BatchNormalization(epsilon=0.0, name="bn_outer")(inner(outer_in))
  return keras.Model(outer_in, y, name="outer")


def test_switches_nested_layers_and_round_trips_config():
  model = _bn_model()
  assert models.synchronize_batchnorm(model) == 2          # the nested model's layer too
  assert model.get_layer("inner").get_layer("bn").synchronized
  assert model.get_layer("bn_outer").get_config()["synchronized"] is True
  assert models.synchronize_batchnorm(model, False) == 2
  assert not model.get_layer("bn_outer").synchronized


def test_mirrored_batch_statistics_are_global_only_when_synchronized():
  devices = [d.name for d in tf.config.list_logical_devices("CPU")[:2]]
  # Two images with different means, one per replica: image 0 all 1, image 1 all 3. Global
  # batch mean 2, variance 1: synchronized -> (x - 2) / sqrt(1 + eps) = -+1/sqrt(1 + eps). Per
  # replica each image is its own batch: constant input, mean = x, variance 0 -> output 0.
  x = np.stack([np.full((2, 2, 1), 1.0), np.full((2, 2, 1), 3.0)]).astype(np.float32)
  eps = 1e-3
  for synchronized, expected in ((True, [-1.0 / np.sqrt(1 + eps), 1.0 / np.sqrt(1 + eps)]),
                                 (False, [0.0, 0.0])):
    strategy = cpu_mirrored_strategy(devices)
    with strategy.scope():
      layer = keras.layers.BatchNormalization(epsilon=eps, synchronized=False)
      inputs = keras.Input((2, 2, 1))
      model = keras.Model(inputs, layer(inputs))
      models.synchronize_batchnorm(model, synchronized)
    per_replica = strategy.run(lambda t: model(t, training=True),
                               args=(strategy.experimental_distribute_values_from_function(
                                   lambda ctx: x[ctx.replica_id_in_sync_group:
                                                 ctx.replica_id_in_sync_group + 1]),))
    out = np.concatenate([v.numpy() for v in strategy.experimental_local_results(per_replica)])
    np.testing.assert_allclose(out[:, 0, 0, 0], expected, atol=1e-6)  # float32 round-off


def test_bad_arguments_raise_typed_errors():
  with pytest.raises(InvalidInputError, match="keras.Model.*received str"):
    models.synchronize_batchnorm("model")
  with pytest.raises(InvalidInputError, match="bool.*received 1"):
    models.synchronize_batchnorm(_bn_model(), 1)
