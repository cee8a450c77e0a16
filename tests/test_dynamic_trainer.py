"""`DynamicDepthModel.fit`: one step under MirroredStrategy over two logical CPUs (conftest.py)
equals one device; the residual field gets no update during burn-in; serialisation round trip;
the optional 3D geometric term; one `tfdepth-train` step then `tfdepth-eval` with the AbsRel on
moving-object pixels."""

import json
import os

from absl import flags
import keras
import numpy as np
import pytest
import tensorflow as tf

from tfdepth.errors import InvalidInputError, NonFiniteError
from tfdepth.models import motion_net
from tfdepth import geometry
from tfdepth import losses as losses_lib
from trainers import common
from trainers import dynamic
from trainers import evaluate as evaluate_lib
from trainers import experiments
from trainers import train as train_lib
from tests._strategies import cpu_mirrored_strategy
from tests._tiny_nets import tiny_disparity_net

H, W, BATCH = 32, 64, 2
# Gate = clip(2·0/10 − 1, 0, 1) = 0 at the first step: the residual field is off.
BURNIN_STEPS = 10


def _tiny_depth_net():
  return tiny_disparity_net(H, W)


def _build(strategy, weights=None, depth_net_fn=None):
  with strategy.scope():
    keras.utils.set_random_seed(0)
    model = dynamic.DynamicDepthModel(
        (depth_net_fn or _tiny_depth_net)(),
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
  assert single.term_names == [n for n in dynamic.TERM_NAMES if n not in dynamic.OPTIONAL_TERMS]
  for key in ["loss"] + [n + "_loss" for n in single.term_names]:
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


def _bn_depth_net():
  """Conv -> BatchNorm -> ELU -> sigmoid disparity: a NaN pixel makes the moving mean that the
  training forward pass assigns NaN (ELU keeps NaN, unlike a ReLU fused into the conv)."""
  inp = keras.Input((H, W, 3))
  x = keras.layers.Conv2D(4, 3, padding="same", name="bn_conv")(inp)
  x = keras.layers.BatchNormalization(momentum=0.5, name="bn_bn")(x)
  x = keras.layers.Activation("elu")(x)
  disp = keras.layers.Conv2D(1, 3, padding="same", activation="sigmoid", name="bn_disp")(x)
  return keras.Model(inp, {"disp_0": disp}, name="bn_tiny")


def test_non_finite_step_applies_nothing_batchnorm_statistics_included():
  model = _build(tf.distribute.get_strategy(), depth_net_fn=_bn_depth_net)
  frames = next(iter(_dataset()))["frames"].numpy()
  frames[1, 0, 5, 7, 2] = np.nan
  model.optimizer.build(model.trainable_variables)
  assert any("moving_mean" in v.path for v in model.weights)
  before = [v.numpy().copy() for v in model.weights + model.optimizer.variables]
  with pytest.raises(NonFiniteError, match=r"global step 1 \(epoch 0, batch 0\)"):
    model.fit(tf.data.Dataset.from_tensors({"frames": frames}), epochs=1, verbose=0)
  assert int(model.optimizer.iterations.numpy()) == 0
  for a, b in zip(before, model.weights + model.optimizer.variables):
    np.testing.assert_array_equal(a, b.numpy(), err_msg=getattr(b, "path", ""))
  with pytest.raises(NonFiniteError, match=r"non-finite evaluation loss at evaluation batch 0"):
    model.evaluate(tf.data.Dataset.from_tensors({"frames": frames}), verbose=0)


def test_serialization_round_trip_and_batch_errors():
  model = _build(tf.distribute.get_strategy())
  config = dynamic.DynamicConfig(ssim_weight=1.25, motion_field_burnin_steps=7,
                                 learn_intrinsics=True, invert_backward_motion=False)
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


def test_geometric3d_term_in_losses_and_gradients():
  """With geometric3d_weight > 0 the term is the pair mean of `geometric3d_loss` and trains both
  networks; with the default weight 0 it is neither computed nor tracked."""
  assert "geometric3d" not in dynamic.DynamicConfig().active_terms
  only_3d = {f"{n}_weight": 0.0 for n in dynamic.TERM_NAMES}
  only_3d.update(geometric3d_weight=0.5, motion_field_burnin_steps=0, auto_mask=False)
  config = dynamic.DynamicConfig(**only_3d)
  assert config.term_weights["geometric3d"] == 1.0  # 2·w of the released aggregator
  keras.utils.set_random_seed(1)
  model = dynamic.DynamicDepthModel(
      _tiny_depth_net(), motion_net.build_motion_net((H, W, 8), base_channels=1, name="mn3d"),
      config)
  assert model.term_names[-1] == "geometric3d"
  batch = next(iter(_dataset()))
  k = np.tile(np.array([[[40.0, 0, 31.5], [0, 40.0, 15.5], [0, 0, 1]]], np.float32), (BATCH, 1, 1))
  batch = {**batch, "intrinsics": tf.constant(k)}
  with tf.GradientTape() as tape:
    depths = model.predict_depths(batch["frames"], training=True)
    motion = model.predict_motion(batch["frames"], depths, training=True)
    total, terms = model.compute_loss_terms(batch, depths, motion, 1.0)
  # Reference: the pure loss per directed pair (a -> b), frame b's depth under stop-gradient.
  rot = motion["rotation"]  # (4B, 3, 3) b_from_a matrices
  pose = geometry.pose_from_rotation_translation(rot, tf.zeros_like(motion["translation"]))
  field = motion["residual_translation"] + motion["translation"][:, None, None, :]
  depth_a = tf.concat([depths[:, i] for i, _ in dynamic.PAIRS], axis=0)
  depth_b = tf.concat([depths[:, j] for _, j in dynamic.PAIRS], axis=0)
  per_pair = losses_lib.geometric3d_loss(depth_a, depth_b, pose, tf.concat([k] * 4, 0),
                                         translation_field=field)
  expected = tf.reduce_mean(tf.reshape(per_pair, [4, BATCH]), axis=0).numpy().mean()
  # Same float32 ops, different batching: rounding only.
  np.testing.assert_allclose(terms["geometric3d"].numpy(), expected, rtol=1e-5)
  np.testing.assert_allclose(total.numpy(), expected, rtol=1e-5)  # other weights 0, 2·0.5 = 1
  grads = tape.gradient(total, model.trainable_variables)
  by_net = {"depth": 0.0, "motion": 0.0}
  for v, g in zip(model.trainable_variables, grads):
    if g is not None:
      assert np.all(np.isfinite(g.numpy())), v.path
      by_net["motion" if v.path.startswith("mn3d") else "depth"] += float(tf.norm(g))
  assert by_net["depth"] > 0 and by_net["motion"] > 0, by_net


# One tiny step of dynamic_synthetic_street: 64x64 (the smallest size the depth decoder's reflection
# padding of the 1/32 feature map takes), 1-channel motion net, 2 test clips (both show moving cars
# at this size), the 3D term switched on through a loss kwarg.
TINY_DYNAMIC_OVERRIDES = [
    "data.height=64", "data.width=64", "data.builder_kwargs.height=64",
    "data.builder_kwargs.width=64", "data.builder_kwargs.num_train=2",
    "data.builder_kwargs.num_validation=1", "data.builder_kwargs.num_test=2",
    "model.kwargs.base_channels=1", "train.batch_size=2", "train.epochs=1",
    "train.steps_per_epoch=1", "data.validation_split=", "data.augment=false",
    "losses.rgb.kwargs.geometric3d_weight=0.1",
]


def test_train_one_step_then_evaluate_with_moving_object_abs_rel(tmp_path, monkeypatch):
  data_dir, model_dir = str(tmp_path / "tfds"), str(tmp_path / "run")
  config = experiments.apply_overrides(experiments.get_experiment("dynamic_synthetic_street"),
                                       TINY_DYNAMIC_OVERRIDES)
  build = dynamic.build_dynamic_trainer

  def build_eager(*args, **kwargs):
    # Same train_step, run eagerly: tracing the ResNet-18 + motion-net step and its 318 Adam
    # updates costs ~1 min on this CPU, the eager step a few seconds.
    model = build(*args, **kwargs)
    model.run_eagerly = True
    return model

  monkeypatch.setattr(dynamic, "build_dynamic_trainer", build_eager)
  model, history, _ = train_lib.train(config, model_dir, data_dir=data_dir, verbose=0)
  assert int(model.optimizer.iterations.numpy()) == 1
  assert np.isfinite(history.history["geometric3d_loss"][0])

  evaluate_lib._define_flags()  # pylint: disable=protected-access
  flags.FLAGS(["tfdepth-eval", "--experiment=dynamic_synthetic_street", f"--model_dir={model_dir}",
               f"--data_dir={data_dir}"] + [f"--override={o}" for o in TINY_DYNAMIC_OVERRIDES])
  try:
    evaluate_lib.main([])
  finally:
    flags.FLAGS.unparse_flags()
  with open(os.path.join(model_dir, evaluate_lib.METRICS_JSON)) as f:
    saved = json.load(f)
  table = saved["results"][config.name]
  assert saved["protocol"] == "synthetic_street_median"
  for key in ("abs_rel", "sq_rel", "rmse", "rmse_log", "delta1", dynamic.MOVING_ABS_REL_KEY):
    assert np.isfinite(table[key]), key
  assert table["num_valid"] == 2 and table[dynamic.MOVING_NUM_VALID_KEY] == 2

  # Hand recomputation from the per-image predictions of the evaluated checkpoint: per image the
  # median ratio over all valid pixels (1e-3 < gt < 80), then AbsRel over its moving pixels.
  model.load_weights(common.find_checkpoint(model_dir))
  builder = common.prepare_builder(config.data, data_dir)
  values = []
  for batch in dynamic.make_datasets(config, builder, ("test",))["test"]:
    pred = model(batch["frames"][:, 1], training=False)["depth"].numpy()[..., 0].astype(np.float64)
    gt = batch["depth"].numpy()[..., 0].astype(np.float64)
    moving = batch["moving_mask"].numpy()[..., 0] > 0
    for g, p, m in zip(gt, pred, moving):
      valid = (g > 1e-3) & (g < 80.0)
      ratio = np.median(g[valid]) / np.median(p[valid])
      sel = valid & m
      scaled = np.clip(p[sel] * ratio, 1e-3, 80.0)
      values.append(np.mean(np.abs(g[sel] - scaled) / g[sel]))
  assert len(values) == 2
  # float64 on both sides from the same float32 predictions; only the summation order differs.
  np.testing.assert_allclose(table[dynamic.MOVING_ABS_REL_KEY], np.mean(values), rtol=1e-9)
  with open(os.path.join(model_dir, evaluate_lib.PER_IMAGE_JSON)) as f:
    records = json.load(f)["images"]
  np.testing.assert_allclose([r[dynamic.MOVING_ABS_REL_KEY] for r in records], values, rtol=1e-9)
