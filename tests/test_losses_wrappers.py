"""Tests of the Keras Loss wrappers in tfdepth.losses.wrappers."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfdepth import losses
from tfdepth.errors import InvalidInputError
from tests._strategies import cpu_mirrored_strategy

EDGES = [0.5, 1.0, 2.0, 4.0, 8.0]  # K = 4
# The same float32 computation is run twice; Keras' mean over the batch adds one reduction.
RTOL = 1e-6

# (wrapper with non-default options, pure function with the same options, pred channels)
CASES = [
    (losses.ScaleInvariantLogLoss(variance_focus=0.3, name="si"),
     lambda p, t: losses.scale_invariant_log_loss(p, t, variance_focus=0.3), 1),
    (losses.SILogLoss(variance_focus=0.5, scale=3.0, reduction="sum"),
     lambda p, t: losses.silog_bts_loss(p, t, variance_focus=0.5, scale=3.0), 1),
    (losses.BerHuLoss(threshold_fraction=0.5), lambda p, t: losses.berhu_loss(p, t, threshold_fraction=0.5), 1),
    (losses.MaskedL1Loss(name="l1"), losses.l1_loss, 1),
    (losses.MaskedL2Loss(), losses.l2_loss, 1),
    (losses.GradientLoss(), losses.gradient_loss, 1),
    (losses.GradientMatchingLoss(num_scales=2), lambda p, t: losses.gradient_matching_loss(p, t, num_scales=2), 1),
    (losses.OrdinalRegressionLoss(EDGES), lambda p, t: losses.ordinal_regression_loss(p, t, EDGES), 4),
    (losses.SIDCrossEntropy(np.array(EDGES)), lambda p, t: losses.sid_cross_entropy(p, t, EDGES), 4),
]


def _data(channels):
  rng = np.random.default_rng(0)
  target = rng.uniform(0.6, 7.0, (3, 4, 6, 1)).astype(np.float32)
  target[0, :2] = 0.0  # invalid ground truth
  if channels == 1:
    pred = rng.uniform(0.6, 7.0, (3, 4, 6, 1)).astype(np.float32)
  else:
    pred = rng.normal(size=(3, 4, 6, channels)).astype(np.float32)
  return target, pred


@pytest.mark.parametrize("loss,fn,channels", CASES, ids=lambda c: type(c).__name__)
def test_value_matches_pure_function(loss, fn, channels):
  target, pred = _data(channels)
  per_image = fn(pred, target).numpy()
  reduced = per_image.sum() if loss.reduction == "sum" else per_image.mean()
  np.testing.assert_allclose(loss(target, pred).numpy(), reduced, rtol=RTOL)


@pytest.mark.parametrize("loss,fn,channels", CASES, ids=lambda c: type(c).__name__)
def test_config_round_trip(loss, fn, channels):
  config = loss.get_config()
  clone = type(loss).from_config(config)
  assert clone.get_config() == config
  restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(loss))
  assert type(restored) is type(loss) and restored.get_config() == config
  target, pred = _data(channels)
  np.testing.assert_allclose(restored(target, pred), loss(target, pred), rtol=RTOL)


def test_non_default_values_survive():
  cfg = losses.SILogLoss(variance_focus=0.5, scale=3.0, reduction="sum").get_config()
  assert cfg["variance_focus"] == 0.5 and cfg["scale"] == 3.0 and cfg["reduction"] == "sum"
  cfg = losses.OrdinalRegressionLoss(EDGES, name="dorn").get_config()
  assert cfg["edges"] == EDGES and cfg["name"] == "dorn"
  assert keras.saving.get_registered_name(losses.BerHuLoss) == "tfdepth>BerHuLoss"


def test_compile_fit_under_mirrored_strategy_and_save(tmp_path):
  strategy = cpu_mirrored_strategy(["/cpu:0", "/cpu:1"])
  rng = np.random.default_rng(1)
  x = rng.uniform(size=(8, 4, 6, 3)).astype(np.float32)
  y = rng.uniform(1.0, 5.0, (8, 4, 6, 1)).astype(np.float32)
  y[:, 0] = 0.0
  with strategy.scope():
    inputs = keras.Input((4, 6, 3))
    out = keras.layers.Conv2D(1, 1, activation="softplus", name="head")(inputs)
    model = keras.Model(inputs, out)
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss=losses.SILogLoss(scale=2.0))
  history = model.fit(x, y, batch_size=4, epochs=2, verbose=0)
  assert all(np.isfinite(history.history["loss"]))
  # The evaluated loss equals the mean of the per-image pure function.
  expected = losses.silog_bts_loss(model.predict(x, verbose=0), y, scale=2.0).numpy().mean()
  np.testing.assert_allclose(model.evaluate(x, y, batch_size=8, verbose=0), expected, rtol=1e-5)
  path = str(tmp_path / "m.keras")
  model.save(path)
  restored = keras.saving.load_model(path)
  assert isinstance(restored.loss, losses.SILogLoss) and restored.loss.scale == 2.0


def test_bad_options_raise_typed_errors():
  with pytest.raises(InvalidInputError, match="variance_focus"):
    losses.SILogLoss(variance_focus=-0.1)
  with pytest.raises(InvalidInputError, match="threshold_fraction"):
    losses.BerHuLoss(threshold_fraction=0.0)
  with pytest.raises(InvalidInputError, match="num_scales"):
    losses.GradientMatchingLoss(num_scales=1.5)
  with pytest.raises(InvalidInputError, match="edges"):
    losses.OrdinalRegressionLoss([1.0])
  with pytest.raises(InvalidInputError, match=r"K \+ 1 = 5"):
    losses.SIDCrossEntropy([1.0, 2.0, 3.0])(np.ones((1, 2, 2, 1), np.float32),
                                            np.zeros((1, 2, 2, 4), np.float32))
