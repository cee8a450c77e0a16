"""Tests of trainers.supervised.SupervisedDepthModel (train/test steps, trackers, distribution)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfdepth import losses
from tfdepth import metrics as depth_metrics
from tfdepth.errors import InvalidInputError, NonFiniteError
from trainers import supervised
from trainers.supervised import LossTerm, SupervisedDepthModel
from tests._strategies import cpu_mirrored_strategy

H, W = 16, 16
# Softplus head offset (metres) keeping predicted depth strictly positive for the log losses.
MIN_PRED_DEPTH = 0.5


def _network(seed=0):
  """Tiny conv net: image (B, 16, 16, 3) -> {"depth": (B, 16, 16, 1)} metres. No BatchNorm."""
  init = keras.initializers.GlorotUniform(seed=seed)
  inputs = keras.Input((H, W, 3), name="image")
  x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", kernel_initializer=init,
                          name="tiny_conv1")(inputs)
  x = keras.layers.Conv2D(1, 3, padding="same", kernel_initializer=init, name="tiny_conv2")(x)
  depth = keras.layers.Activation("softplus", name="tiny_softplus")(x)
  depth = keras.layers.Rescaling(10.0, offset=MIN_PRED_DEPTH, name="tiny_scale")(depth)
  return keras.Model(inputs, {"depth": depth}, name="tiny")


def _data(n=8, seed=0, sparse=True):
  rng = np.random.default_rng(seed)
  image = rng.uniform(0, 1, (n, H, W, 3)).astype(np.float32)
  depth = (2.0 + 20.0 * image[..., :1] + rng.uniform(0, 1, (n, H, W, 1))).astype(np.float32)
  if sparse:   # LiDAR-like: a third of the pixels without ground truth
    depth[rng.uniform(0, 1, depth.shape) < 0.33] = 0.0
  k = np.tile(np.array([[20, 0, 8], [0, 20, 8], [0, 0, 1]], np.float32), (n, 1, 1))
  return {"image": image, "depth": depth, "intrinsics": k}


def _dataset(batch, n=8, seed=0):
  return tf.data.Dataset.from_tensor_slices(_data(n, seed)).batch(batch)


TERMS = [LossTerm("silog", 1.0, kwargs={"variance_focus": 0.85}), LossTerm("l1", 0.1)]


def _model(terms=TERMS, lr=1e-2, seed=0, jit_compile=False, **kwargs):
  model = SupervisedDepthModel(_network(seed), terms,
                               depth_metrics=depth_metrics.standard_metrics("synthetic_street"),
                               **kwargs)
  model.compile(optimizer=keras.optimizers.SGD(lr), jit_compile=jit_compile)
  return model


def test_one_step_fit_logs_every_term_total_and_metrics_with_hand_computed_values():
  d = _data(4)
  model = _model()
  pred = model.network(d["image"])["depth"]   # weights before the (only) update
  mask = tf.cast(d["depth"] > 0, tf.float32)
  silog = losses.scale_invariant_log_loss(pred, d["depth"], mask, variance_focus=0.85).numpy()
  l1 = losses.l1_loss(pred, d["depth"], mask).numpy()
  abs_rel = depth_metrics.AbsRel.from_protocol("synthetic_street")
  abs_rel.update_state(d["depth"], pred)
  before = [w.numpy().copy() for w in model.network.trainable_weights]

  hist = model.fit(_dataset(4, n=4), epochs=1, verbose=0)
  logs = {k: v[-1] for k, v in hist.history.items()}
  assert {"loss", "silog_loss", "l1_loss", "abs_rel", "rmse", "delta1"} <= set(logs)
  # float32 reductions over 4x256 pixels: 1e-5 relative.
  np.testing.assert_allclose(logs["silog_loss"], silog.mean(), rtol=1e-5)
  np.testing.assert_allclose(logs["l1_loss"], l1.mean(), rtol=1e-5)
  np.testing.assert_allclose(logs["loss"], silog.mean() + 0.1 * l1.mean(), rtol=1e-5)
  np.testing.assert_allclose(logs["abs_rel"], float(abs_rel.result()), rtol=1e-5)
  after = [w.numpy() for w in model.network.trainable_weights]
  assert any(np.abs(a - b).max() > 0 for a, b in zip(after, before))


def test_evaluate_and_tuple_inputs_give_the_same_losses():
  d = _data(4)
  model = _model()
  res_dict = model.evaluate(_dataset(2, n=4), verbose=0, return_dict=True)
  tuples = tf.data.Dataset.from_tensor_slices((d["image"], d["depth"])).batch(2)
  res_tuple = model.evaluate(tuples, verbose=0, return_dict=True)
  for key in ("loss", "silog_loss", "l1_loss", "abs_rel"):
    np.testing.assert_allclose(res_dict[key], res_tuple[key], rtol=1e-6)


def test_max_depth_masks_far_ground_truth_out_of_the_losses():
  d = _data(2, sparse=False)
  near = np.where(d["depth"] <= 12.0, d["depth"], 0.0).astype(np.float32)
  model_cap = _model(max_depth=12.0)
  model_zero = _model()
  cap = model_cap.evaluate(tf.data.Dataset.from_tensor_slices(d).batch(2), verbose=0,
                           return_dict=True)
  assert (d["depth"] > 12.0).any() and (d["depth"] <= 12.0).any()
  zeroed = model_zero.evaluate(
      tf.data.Dataset.from_tensor_slices((d["image"], near)).batch(2), verbose=0,
      return_dict=True)
  np.testing.assert_allclose(cap["silog_loss"], zeroed["silog_loss"], rtol=1e-6)


def _train_weights(strategy, steps=3, batch=4):
  with strategy.scope():
    model = _model(lr=0.05)
  ds = _dataset(batch, n=batch * steps)
  hist = model.fit(ds, epochs=1, verbose=0)
  return [w.numpy() for w in model.network.trainable_weights], hist.history


def test_mirrored_strategy_matches_single_device():
  devices = [d.name for d in tf.config.list_logical_devices("CPU")]
  assert len(devices) >= 2, "tests/conftest.py configures two logical CPUs"
  single_w, single_h = _train_weights(tf.distribute.OneDeviceStrategy(devices[0]))
  mirror_w, mirror_h = _train_weights(cpu_mirrored_strategy(devices[:2]))
  for a, b in zip(single_w, mirror_w):
    # Same global-batch mean gradient; only the summation order differs (float32): 1e-5.
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
  for key in ("loss", "silog_loss", "l1_loss", "abs_rel", "rmse", "delta1"):
    np.testing.assert_allclose(mirror_h[key][-1], single_h[key][-1], rtol=1e-5)


def test_non_finite_term_raises_naming_step_and_term_and_skips_update():
  def fragile_l1(pred, target, mask=None):
    # NaN for batches whose ground truth contains a depth above 100 m (the second batch here).
    per_image = losses.l1_loss(pred, target, mask)
    return tf.where(tf.reduce_max(target) > 100.0, np.nan, per_image)

  d = _data(4)
  d["depth"][2:, 0, 0, 0] = 150.0
  model = _model(terms=[LossTerm("silog", 1.0), LossTerm("fragile", 0.5, fn=fragile_l1)])
  model.fit(tf.data.Dataset.from_tensor_slices(d).take(2).batch(2), verbose=0)
  after_first = [w.numpy().copy() for w in model.network.trainable_weights]
  model2 = _model(terms=[LossTerm("silog", 1.0), LossTerm("fragile", 0.5, fn=fragile_l1)])
  with pytest.raises(NonFiniteError, match=r"global step 2 .*fragile_loss"):
    model2.fit(tf.data.Dataset.from_tensor_slices(d).batch(2), verbose=0)
  for a, b in zip(after_first, model2.network.trainable_weights):
    np.testing.assert_array_equal(a, b.numpy())   # the NaN step applied a zero update


def test_bad_configuration_raises_typed_errors():
  with pytest.raises(InvalidInputError, match="unknown loss term 'nope'"):
    SupervisedDepthModel(_network(), [LossTerm("nope")])
  with pytest.raises(InvalidInputError, match="unique"):
    SupervisedDepthModel(_network(), [LossTerm("l1"), LossTerm("l1")])
  with pytest.raises(InvalidInputError, match="finite float weight"):
    SupervisedDepthModel(_network(), [LossTerm("l1", float("nan"))])
  model = SupervisedDepthModel(_network(), [LossTerm("l1", prediction_key="logits")])
  model.compile(optimizer="sgd")
  with pytest.raises(InvalidInputError, match="needs network output 'logits'"):
    model.evaluate(_dataset(2, n=2), verbose=0)


def test_mixed_bfloat16_and_jit_compile_train_in_float32_losses():
  keras.mixed_precision.set_global_policy("mixed_bfloat16")
  try:
    model = _model(jit_compile=True)
    assert model.network.compute_dtype == "bfloat16"
    hist = model.fit(_dataset(4, n=8), epochs=1, verbose=0)
  finally:
    keras.mixed_precision.set_global_policy("float32")
  assert np.isfinite(hist.history["loss"][-1])
  assert model.network.trainable_weights[0].dtype == "float32"   # float32 master weights


def test_loss_terms_from_experiment_config():
  from trainers import experiments  # pylint: disable=g-import-not-at-top
  config = experiments.get_experiment("fastdepth_synthetic_street")
  terms = supervised.loss_terms_from_config(config.losses)
  assert [t.name for t in terms] == [l.name for l in config.losses]
  assert all(callable(t.resolved_fn()) for t in terms)


def _seeded_run(seed, steps=3):
  from tfdepth.data import make_supervised_dataset  # pylint: disable=g-import-not-at-top
  keras.utils.set_random_seed(seed)
  model = SupervisedDepthModel(_network(seed), TERMS)
  model.compile(optimizer=keras.optimizers.Adam(1e-2))
  raw = tf.data.Dataset.from_tensor_slices(_data(8, seed=1))
  ds = make_supervised_dataset(raw, batch_size=2, height=H, width=W, training=True, seed=seed)
  model.fit(ds, steps_per_epoch=steps, epochs=1, verbose=0)
  return [w.numpy() for w in model.network.trainable_weights]


def test_same_seed_gives_identical_weights_after_n_steps():
  a, b, c = _seeded_run(5), _seeded_run(5), _seeded_run(6)
  for x, y in zip(a, b):
    np.testing.assert_array_equal(x, y)   # bitwise: stateless augmentation, fixed shuffling
  assert any(not np.array_equal(x, z) for x, z in zip(a, c))


# ------------------------------------------------------------------ non-finite steps, clipping
class _Snapshot(keras.callbacks.Callback):
  """Copies network weights, optimizer variables and metric results at the end of each batch."""

  def __init__(self):
    super().__init__()
    self.after = {}

  def on_train_batch_end(self, batch, logs=None):
    self.after[batch] = (
        [w.numpy().copy() for w in self.model.network.weights],
        [v.numpy().copy() for v in self.model.optimizer.variables],
        {m.name: float(m.result()) for m in self.model.depth_metrics})


def _linear_network():
  """image -> {"depth": softplus(conv3x3(image)) + 0.5}: no ReLU, so a NaN pixel stays NaN in the
  predicted depth also in graph mode (the fused conv + ReLU of TF's graph optimiser maps NaN to 0)."""
  inputs = keras.Input((H, W, 3), name="image")
  x = keras.layers.Conv2D(1, 3, padding="same", activation="softplus", name="lin_conv",
                          kernel_initializer=keras.initializers.GlorotUniform(seed=0))(inputs)
  return keras.Model(inputs, {"depth": keras.layers.Rescaling(1.0, offset=MIN_PRED_DEPTH)(x)})


def _linear_bn_network():
  """`_linear_network` with a BatchNormalization after the conv: a NaN pixel makes its batch mean,
  and so the moving mean the training forward pass assigns, NaN."""
  inputs = keras.Input((H, W, 3), name="image")
  x = keras.layers.Conv2D(1, 3, padding="same", name="lin_conv",
                          kernel_initializer=keras.initializers.GlorotUniform(seed=0))(inputs)
  x = keras.layers.BatchNormalization(momentum=0.5, name="lin_bn")(x)
  x = keras.layers.Activation("softplus")(x)
  return keras.Model(inputs, {"depth": keras.layers.Rescaling(1.0, offset=MIN_PRED_DEPTH)(x)})


def _nan_fit(strategy, data, batch, network_fn=_network, terms=TERMS):
  with strategy.scope():
    model = SupervisedDepthModel(network_fn(), terms,
                                 depth_metrics=depth_metrics.standard_metrics("synthetic_street"))
    # AdamW: moments, iterations and decoupled weight decay would all move on a zero gradient.
    model.compile(optimizer=keras.optimizers.AdamW(1e-2, weight_decay=0.1))
  snap = _Snapshot()
  with pytest.raises(NonFiniteError) as err:
    model.fit(tf.data.Dataset.from_tensor_slices(data).batch(batch), verbose=0, callbacks=[snap])
  return model, snap, str(err.value)


def _assert_unchanged_since_first_step(model, snap):
  assert set(snap.after) == {0, 1}   # NonFiniteLossCheck raised at the end of batch 1
  weights, opt_vars, metric_values = snap.after[0]
  assert int(model.optimizer.iterations.numpy()) == 1
  for a, b in zip(weights, model.network.weights):
    np.testing.assert_array_equal(a, b.numpy())
  # iterations, learning rate and the two Adam moments of each variable
  assert len(opt_vars) == len(model.optimizer.variables) == 2 + 2 * len(model.trainable_weights)
  for a, b in zip(opt_vars, model.optimizer.variables):
    np.testing.assert_array_equal(a, b.numpy())
  # The depth metrics were not updated with the skipped step.
  assert snap.after[1][2] == metric_values


@pytest.mark.parametrize("replicas", [1, 2])
@pytest.mark.parametrize("network_fn", [_linear_network, _linear_bn_network])
def test_non_finite_prediction_step_leaves_weights_adam_state_and_metrics_unchanged(
    replicas, network_fn):
  devices = [d.name for d in tf.config.list_logical_devices("CPU")]
  strategy = (tf.distribute.OneDeviceStrategy(devices[0]) if replicas == 1
              else cpu_mirrored_strategy(devices[:2]))
  d = _data(8, sparse=False)
  # Step 2 (images 4..7): one NaN pixel in image 7 only (with 2 replicas: on the second only).
  d["image"][7, 5, 5, 0] = np.nan
  model, snap, message = _nan_fit(strategy, d, batch=4, network_fn=network_fn)
  # Depth metrics are attached: the typed error is raised, not the metrics' in-graph assertion
  # ("abs_rel: pred must be finite", an InvalidArgumentError, before the fix).
  assert "non-finite training loss at global step 2 (epoch 0, batch 1)" in message
  # `network.weights` includes BatchNorm's moving mean / variance: the skipped step's NaN batch
  # statistics were assigned in its forward pass and are restored (bit for bit).
  _assert_unchanged_since_first_step(model, snap)
  if network_fn is _linear_bn_network:
    bn = model.network.get_layer("lin_bn")
    # Step 1 did move them (momentum 0.5 from the initial 0 / 1): the check above is not vacuous.
    assert float(bn.moving_mean.numpy()[0]) != 0.0
    assert np.all(np.isfinite(bn.moving_variance.numpy()))


def test_non_finite_validation_prediction_raises_typed_error_naming_the_batch():
  model = SupervisedDepthModel(_linear_network(), TERMS,
                               depth_metrics=depth_metrics.standard_metrics("synthetic_street"))
  model.compile(optimizer="adam")
  val = _data(4, sparse=False)
  val["image"][3, 2, 2, 0] = np.nan   # evaluation batch 1 (images 2, 3): NaN predicted depth
  val_ds = tf.data.Dataset.from_tensor_slices(val).batch(2)
  # Before: the depth metrics' in-graph assertion ("abs_rel: pred must be finite"), a raw
  # InvalidArgumentError from inside the graph.
  with pytest.raises(NonFiniteError, match=r"evaluation batch 1 \(0-based\)"):
    model.evaluate(val_ds, verbose=0)
  with pytest.raises(NonFiniteError, match=r"non-finite evaluation loss at evaluation batch 1"):
    model.fit(_dataset(2, n=2), validation_data=val_ds, epochs=1, verbose=0)
  # Finite evaluation data: the metrics count every image (2 batches of 2).
  val["image"][3, 2, 2, 0] = 0.5
  logs = model.evaluate(tf.data.Dataset.from_tensor_slices(val).batch(2), verbose=0,
                        return_dict=True)
  assert np.isfinite(logs["loss"])
  assert all(float(m.count.numpy()) == 4 for m in model.depth_metrics)


def test_non_finite_term_under_adam_names_the_term_and_applies_nothing():
  d = _data(4)
  d["image"][3, 5, 5, 0] = np.nan   # NaN depth at a valid pixel: the silog term is NaN
  model, snap, message = _nan_fit(tf.distribute.get_strategy(), d, batch=2,
                                  network_fn=_linear_network)
  assert "global step 2 (epoch 0, batch 1)" in message and "silog_loss" in message
  _assert_unchanged_since_first_step(model, snap)


def sqrt_l1(pred, target, mask=None):
  """L1, but on batches with a depth above 100 m: value 0 = sqrt(0), and d sqrt(u)/du = inf at
  u = 0 times du/dpred = 0, a NaN gradient under a finite loss. tf.cond backpropagates the taken
  branch only."""
  per_image = losses.l1_loss(pred, target, mask)
  return tf.cond(tf.reduce_max(target) > 100.0,
                 lambda: tf.reduce_mean(tf.sqrt(0.0 * tf.cast(pred, tf.float32)), axis=[1, 2, 3]),
                 lambda: per_image)


def test_non_finite_gradient_with_finite_loss_terms_is_skipped_and_raises():
  d = _data(4)
  d["depth"][2:, 0, 0, 0] = 150.0
  model, snap, message = _nan_fit(tf.distribute.get_strategy(), d, batch=2,
                                  terms=[LossTerm("fragile", 1.0, fn=sqrt_l1)])
  # The terms are finite; the logged total shows the skipped step.
  assert "global step 2 (epoch 0, batch 1): term(s) ['loss'] = {'loss': nan}" in message
  _assert_unchanged_since_first_step(model, snap)


def test_mixed_float16_loss_scale_collapse_raises():
  # Every batch has a NaN gradient under a finite loss: Keras' LossScaleOptimizer skips each step
  # and halves its scale from 2**15; the 16th skip takes it to 0.5 < MIN_LOSS_SCALE = 1.
  d = _data(20)
  d["depth"][:, 0, 0, 0] = 150.0
  keras.mixed_precision.set_global_policy("mixed_float16")
  try:
    model = SupervisedDepthModel(_linear_network(), [LossTerm("fragile", 1.0, fn=sqrt_l1)])
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    assert supervised.is_loss_scale_optimizer(model.optimizer)
    with pytest.raises(NonFiniteError, match=r"loss scale fell to 0\.5 \(below 1\) at epoch 0, "
                                             r"batch 15, optimizer step 0"):
      model.fit(tf.data.Dataset.from_tensor_slices(d).batch(1), verbose=0)
  finally:
    keras.mixed_precision.set_global_policy("float32")
  assert float(model.optimizer.dynamic_scale.numpy()) == 0.5


def _clipped_update(strategy, optimizer_fn):
  """Weight change of one SGD step (lr 1, momentum 0.9: first update = lr · clipped gradient)
  on the 4-image global batch, per variable."""
  with strategy.scope():
    model = SupervisedDepthModel(_network(), [LossTerm("l1", 1.0)])
    model.compile(optimizer=optimizer_fn())
    model(tf.zeros([1, H, W, 3]))
  before = [w.numpy().copy() for w in model.network.trainable_weights]
  model.fit(_dataset(4, n=4), epochs=1, verbose=0)
  return [w.numpy() - b for w, b in zip(model.network.trainable_weights, before)]


@pytest.mark.parametrize("kind", ["clipnorm", "global_clipnorm"])
def test_gradient_clipping_bounds_the_global_gradient_under_mirrored_strategy(kind):
  from trainers import common, experiments  # pylint: disable=g-import-not-at-top
  if kind == "clipnorm":   # the experiment optimizer builder: SGD(momentum 0.9, clipnorm)
    make = lambda: common.build_optimizer(  # noqa: E731
        experiments.OptimizerConfig("sgd", learning_rate=1.0, clipnorm=0.01), 10)
  else:                    # trainers.dynamic uses global_clipnorm
    make = lambda: keras.optimizers.SGD(1.0, momentum=0.9, global_clipnorm=0.01)  # noqa: E731
  devices = [d.name for d in tf.config.list_logical_devices("CPU")]
  one = _clipped_update(tf.distribute.OneDeviceStrategy(devices[0]), make)
  two = _clipped_update(cpu_mirrored_strategy(devices[:2]), make)
  norms_one = [np.linalg.norm(u) for u in one]
  # The unclipped L1 gradients are far larger than 0.01, so clipping is active: each variable's
  # update has norm exactly 0.01 (clipnorm), or all of them together (global_clipnorm).
  if kind == "clipnorm":
    np.testing.assert_allclose(norms_one, [0.01] * len(one), rtol=1e-5)
  else:
    np.testing.assert_allclose(np.linalg.norm(norms_one), 0.01, rtol=1e-5)
  # Two replicas take the same step as one device (before the fix: up to twice as long).
  for a, b in zip(two, one):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-8)
