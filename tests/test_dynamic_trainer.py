"""`DynamicDepthModel.fit`: one step under MirroredStrategy over two logical CPUs (conftest.py)
equals one device; the residual field gets no update during burn-in; serialisation round trip."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfdepth.errors import InvalidInputError
from tfdepth.models import motion_net
from trainers import dynamic
from tests._strategies import cpu_mirrored_strategy

H, W, BATCH = 32, 64, 2
# Gate = clip(2·0/10 − 1, 0, 1) = 0 at the first step: the residual field is off.
BURNIN_STEPS = 10


def _tiny_depth_net():
  """Two convolutions -> sigmoid disparity (no BatchNorm: replicas then compute identical maths)."""
  inp = keras.Input((H, W, 3), name="tiny_image")
  x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="tiny_conv")(inp)
  disp = keras.layers.Conv2D(1, 3, padding="same", activation="sigmoid", name="tiny_disp")(x)
  return keras.Model(inp, {"disp_0": disp}, name="tiny")


def _build(strategy, weights=None):
  with strategy.scope():
    keras.utils.set_random_seed(0)
    model = dynamic.DynamicDepthModel(
        _tiny_depth_net(),
        motion_net.build_motion_net((H, W, 8), learn_intrinsics=True, base_channels=2, name="mn"),
        dynamic.DynamicConfig(motion_field_burnin_steps=BURNIN_STEPS, learn_intrinsics=True))
    # No XLA: compiling the graph costs more than the one step it runs.
    model.compile(optimizer=dynamic.make_optimizer(), jit_compile=False)
    frames = tf.zeros([1, 3, H, W, 3])
    model.predict_motion(frames, model.predict_depths(frames))
    if weights is not None:
      model.set_weights(weights)
  return model


def _dataset():
  rng = np.random.default_rng(0)
  # Smooth random frames (a blurred noise image shifted by one pixel per frame).
  base = rng.uniform(size=(BATCH, H + 8, W + 8, 3)).astype(np.float32)
  base = tf.nn.avg_pool2d(base, 3, 1, "SAME").numpy()
  frames = np.stack([base[:, 4:4 + H, 3 + i:3 + i + W] for i in range(3)], axis=1)
  return tf.data.Dataset.from_tensor_slices({"frames": frames}).batch(BATCH)


@pytest.fixture(scope="module")
def single_device_run():
  model = _build(tf.distribute.OneDeviceStrategy("/cpu:0"))
  before = [w.copy() for w in model.get_weights()]
  hist = model.fit(_dataset(), epochs=1, verbose=0)
  return model, before, hist.history


def test_one_step_mirrored_matches_one_device(single_device_run):
  single, before, hist = single_device_run
  devices = [d.name for d in tf.config.list_logical_devices("CPU")][:2]
  assert len(devices) == 2, devices
  mirrored = _build(cpu_mirrored_strategy(devices), weights=before)
  mhist = mirrored.fit(_dataset(), epochs=1, verbose=0).history
  # Loss: the global-batch mean either way (per-replica sums / global batch, then summed);
  # float32 reduction order only.
  for key in ["loss"] + [n + "_loss" for n in dynamic.TERM_NAMES]:
    np.testing.assert_allclose(mhist[key], hist[key], rtol=1e-5, atol=1e-7, err_msg=key)
  # One Adam step moves each weight by ~lr·g/|g| = 2e-4; gradients summed over replicas vs
  # computed at once agree to float32 rounding, so the weights agree far below the step size.
  changed = 0
  for w_single, w_mirror, w0 in zip(single.get_weights(), mirrored.get_weights(), before):
    np.testing.assert_allclose(w_mirror, w_single, rtol=0, atol=2e-6)
    changed += int(np.any(w_single != w0))
  assert changed > 10  # the step did train (depth net, encoder, heads, scales)


def test_burn_in_freezes_residual_field_and_loss_is_finite(single_device_run):
  model, before, hist = single_device_run
  assert np.isfinite(hist["loss"][0])
  names = [w.path for w in model.weights]
  residual_layers = [i for i, n in enumerate(names) if "refine" in n or "unrefined" in n]
  assert len(residual_layers) > 20
  after = model.get_weights()
  # Gate 0 multiplies the residual field: its layers get exactly zero gradients, and Adam's first
  # update with g = 0 is 0 / (0 + eps) = 0.
  for i in residual_layers:
    np.testing.assert_array_equal(after[i], before[i], err_msg=names[i])
  rot = [i for i, n in enumerate(names) if "mn_rotation/kernel" in n]
  assert rot and not np.array_equal(after[rot[0]], before[rot[0]])
  assert int(model.optimizer.iterations.numpy()) == 1


def test_serialization_round_trip_and_batch_errors():
  model = _build(tf.distribute.get_strategy())
  config = dynamic.DynamicConfig(ssim_weight=1.25, motion_field_burnin_steps=7,
                                 learn_intrinsics=True)
  model = dynamic.DynamicDepthModel(model.depth_net, model.motion_net, config, name="dyn")
  again = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(model))
  assert again.config == config and again.name == "dyn"
  x = np.random.default_rng(3).uniform(size=(1, H, W, 3)).astype(np.float32)
  again.set_weights(model.get_weights())
  np.testing.assert_allclose(again(x)["depth"].numpy(), model(x)["depth"].numpy(), rtol=1e-6)
  known_k = dynamic.DynamicDepthModel(
      _tiny_depth_net(), motion_net.build_motion_net((H, W, 8), base_channels=1),
      dynamic.DynamicConfig())
  unpack = known_k._unpack  # pylint: disable=protected-access
  with pytest.raises(InvalidInputError, match="intrinsics"):
    unpack({"frames": np.zeros((1, 3, H, W, 3), np.float32)})
  with pytest.raises(InvalidInputError, match="frames"):
    unpack({"image": np.zeros((1, H, W, 3), np.float32)})
