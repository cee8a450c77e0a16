"""Tests of tfdepth.metrics.streaming: per-image streaming Keras metrics."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfdepth import errors
from tfdepth import metrics as M
from tests._strategies import cpu_mirrored_strategy

# float32 accumulation vs the float64 NumPy evaluator over <= 8 images of <= 1000 pixels:
# ~1e-7 relative per image (see test_metrics_functional), 2e-6 leaves room for the sums.
RTOL_F32 = 2e-6
H, W = 20, 48  # small KITTI-like aspect; the Garg crop keeps rows [8, 19), cols [1, 46)


def _data(seed, batch=6, scale=0.05):
  """GT with invalid pixels (0) and a far region (> 80 m), prediction = noisy scaled GT."""
  rng = np.random.default_rng(seed)
  gt = rng.uniform(1.0, 90.0, (batch, H, W, 1)).astype(np.float32)
  gt[rng.uniform(size=gt.shape) < 0.3] = 0.0
  pred = (np.maximum(gt, 5.0) * scale * np.exp(rng.normal(0.0, 0.2, gt.shape))).astype(np.float32)
  return gt, pred


def _subset(protocol):
  """AbsRel, SILog and delta2: one metric per code path, to keep graph tracing short."""
  return [M.AbsRel.from_protocol(protocol), M.SILog.from_protocol(protocol),
          M.DeltaAccuracy.from_protocol(protocol, power=2)]


def _results(metrics):
  return {m.name: float(m.result()) for m in metrics}


def test_standard_metrics_match_the_offline_evaluator():
  gt, pred = _data(0)
  metrics = M.standard_metrics("kitti_eigen_mono")
  assert [m.name for m in metrics] == list(M.METRIC_NAMES)
  for m in metrics:
    m.update_state(gt, pred)
  table, _ = M.evaluate_predictions(list(gt[..., 0]), list(pred[..., 0]), M.KITTI_EIGEN_MONO)
  got = _results(metrics)
  for name in M.METRIC_NAMES:
    np.testing.assert_allclose(got[name], table[name], rtol=RTOL_F32, err_msg=name)


def test_two_batches_equal_one_pass_and_reset():
  gt, pred = _data(1)
  one = M.standard_metrics("kitti_eigen_mono")
  two = M.standard_metrics("kitti_eigen_mono")
  for a, b in zip(one, two):
    a.update_state(gt, pred)
    b.update_state(gt[:2], pred[:2])
    b.update_state(gt[2:], pred[2:])
  for name, value in _results(one).items():
    # Same per-image values, summed in a different order: float32 rounding of 6 terms.
    np.testing.assert_allclose(_results(two)[name], value, rtol=1e-6, err_msg=name)
  for m in two:
    m.reset_state()
    assert float(m.result()) == 0.0 and float(m.count) == 0.0


def test_per_image_mean_not_pooled():
  # Image A: one valid pixel g = 1, p = 2 (AbsRel 1); image B: three exact pixels (AbsRel 0).
  # Per-image mean (1 + 0) / 2 = 0.5; pooled would be 1 / 4 = 0.25.
  gt = np.array([[[1, 0], [0, 0]], [[3, 4], [5, 0]]], np.float32)[..., None]
  pred = np.array([[[2, 1], [1, 1]], [[3, 4], [5, 1]]], np.float32)[..., None]
  metric = M.AbsRel(crop=None)
  metric.update_state(gt, pred)
  assert float(metric.result()) == 0.5
  assert float(metric.count) == 2.0


def test_median_scaling_makes_a_global_scale_exact():
  gt, _ = _data(2)
  pred = np.where(gt > 0, gt * 0.031, 3.0).astype(np.float32)
  for m in M.standard_metrics(M.KITTI_EIGEN_MONO):
    expected = 1.0 if m.name.startswith("delta") else 0.0
    m.update_state(gt, pred)
    # float32: ratio * pred differs from gt by a few ulp -> errors ~1e-6 (SILog ~1e-4 = 1e-6 x100).
    assert float(m.result()) == pytest.approx(expected, abs=3e-4), m.name


def test_clamp_after_scaling_in_streaming_metric():
  # One image, pixels g = (50, 10), p = (100, 10) with no median scaling: 100 is clamped to 80
  # after the x1 scale -> AbsRel ((80 - 50) / 50 + 0) / 2 = 0.3; without the clamp 0.5.
  gt = np.array([50.0, 10.0], np.float32).reshape(1, 1, 2, 1)
  pred = np.array([100.0, 10.0], np.float32).reshape(1, 1, 2, 1)
  clamped = M.AbsRel()
  clamped.update_state(gt, pred)
  assert float(clamped.result()) == pytest.approx(0.3, rel=1e-7)
  unclamped = M.AbsRel(clamp_after_scaling=False)
  unclamped.update_state(gt, pred)
  assert float(unclamped.result()) == pytest.approx(0.5, rel=1e-7)
  # Stereo protocol: x5.4 first, then clamp: (100*5.4 -> 80, 10*5.4 = 54): (0.6 + 4.4) / 2 = 2.5.
  stereo = M.AbsRel(fixed_scale=M.STEREO_SCALE_FACTOR)
  stereo.update_state(gt, pred)
  assert float(stereo.result()) == pytest.approx(2.5, rel=1e-6)


def test_all_invalid_images_stay_finite():
  gt, pred = _data(3, batch=2)
  for m in M.standard_metrics("kitti_eigen_mono"):
    m.update_state(np.zeros_like(gt), pred)
    assert float(m.result()) == 0.0 and float(m.count) == 0.0, m.name
    m.update_state(gt[:1], pred[:1])
    m.update_state(np.zeros_like(gt), pred)  # must not change the mean
    single = M.metric_by_name(m.name, "kitti_eigen_mono")
    single.update_state(gt[:1], pred[:1])
    assert np.isfinite(float(m.result()))
    assert float(m.result()) == float(single.result()), m.name


def test_eager_tf_function_and_jit_with_unknown_batch():
  gt, pred = _data(4)
  spec = tf.TensorSpec([None, H, W, 1], tf.float32)
  reference = _results(_update_all(_subset("kitti_eigen_mono"), gt, pred))
  for jit in (False, True):
    metrics = _subset("kitti_eigen_mono")

    @tf.function(input_signature=[spec, spec], jit_compile=jit)
    def step(g, p, metrics=metrics):
      for m in metrics:
        m.update_state(g, p)

    step(tf.constant(gt[:4]), tf.constant(pred[:4]))
    step(tf.constant(gt[4:]), tf.constant(pred[4:]))  # other batch size, same trace
    for name, value in _results(metrics).items():
      np.testing.assert_allclose(value, reference[name], rtol=1e-6, err_msg=f"{name} jit={jit}")


def _update_all(metrics, gt, pred):
  for m in metrics:
    m.update_state(gt, pred)
  return metrics


def test_mirrored_strategy_equals_single_device():
  gt, pred = _data(5, batch=8)
  reference = _results(_update_all(_subset("kitti_eigen_mono"), gt, pred))
  devices = [d.name for d in tf.config.list_logical_devices("CPU")][:2]
  assert len(devices) == 2  # tests/conftest.py splits the CPU in two logical devices
  strategy = cpu_mirrored_strategy(devices)
  with strategy.scope():
    metrics = _subset("kitti_eigen_mono")
  dataset = tf.data.Dataset.from_tensor_slices((gt, pred)).batch(4)
  dist = strategy.experimental_distribute_dataset(dataset)

  @tf.function
  def step(batch):
    def replica_fn(g, p):
      for m in metrics:
        m.update_state(g, p)
    strategy.run(replica_fn, args=batch)

  for batch in dist:
    step(batch)
  got = _results(metrics)
  for name, value in reference.items():
    np.testing.assert_allclose(got[name], value, rtol=1e-6, err_msg=name)
  # Replica counts are summed on read (cross-replica context).
  assert float(strategy.extended.read_var(metrics[0].count.value)) == 8.0


class ConstantDepthModel(keras.Model):
  """Predicts depth = 0.05 * gt-like input, with a custom test_step updating depth metrics."""

  def __init__(self, protocol, **kwargs):
    super().__init__(**kwargs)
    self.scale = keras.layers.Rescaling(0.05)
    self.depth_metrics = _subset(protocol)

  def call(self, inputs):
    return self.scale(inputs)

  def test_step(self, data):
    x, y = data
    pred = self(x, training=False)
    for m in self.depth_metrics:
      m.update_state(y, pred)
    return {m.name: m.result() for m in self.depth_metrics}

  @property
  def metrics(self):
    return list(self.depth_metrics)


# MirroredStrategy + jit_compile=True cannot run over *logical* CPU devices: XLA refuses the
# replica-1 variable on CPU:1 (tensorflow.org/xla/known_issues "tf.Variable on a different
# device"); keras.metrics.Mean fails the same way there. So the mirrored case runs without XLA and
# the XLA case on one device (jit under unknown batch size is also covered above).
@pytest.mark.parametrize("mirrored, jit", [(True, False), (False, True)])
def test_custom_test_step_in_model_evaluate(mirrored, jit):
  gt, _ = _data(6, batch=8)
  x = np.maximum(gt, 5.0)  # the "image": the model scales it by 0.05
  reference = _results(_update_all(_subset("kitti_eigen_mono"), gt, 0.05 * x))
  if mirrored:
    devices = [d.name for d in tf.config.list_logical_devices("CPU")][:2]
    strategy = cpu_mirrored_strategy(devices)
  else:
    strategy = tf.distribute.get_strategy()
  with strategy.scope():
    model = ConstantDepthModel("kitti_eigen_mono")
    model.compile(jit_compile=jit)
  # Batches of 4 over 2 replicas: 2 images per replica, 2 steps.
  dataset = tf.data.Dataset.from_tensor_slices((x, gt)).batch(4)
  logs = model.evaluate(dataset, return_dict=True, verbose=0)
  for name, value in reference.items():
    np.testing.assert_allclose(logs[name], value, rtol=1e-6, err_msg=name)


def test_get_config_round_trip_with_non_default_values():
  gt, pred = _data(7, batch=2)
  originals = [
      M.AbsRel(min_depth=0.5, max_depth=60.0, crop="eigen", median_scaling=True, name="a"),
      M.SqRel(fixed_scale=5.4, clamp_after_scaling=False, name="b"),
      M.RMSE(crop="garg", filter_gt_range=False, name="c"),
      M.RMSELog(resize_pred_as_disparity=True, median_scaling=True, name="d"),
      M.Log10(max_depth=10.0, crop="nyu", name="e"),
      M.SILog(min_depth=0.1, median_scaling=True, name="f"),
      M.DeltaAccuracy(power=3, min_depth=2.0, median_scaling=True, name="g"),
  ]
  for original in originals:
    config = original.get_config()
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(original))
    assert type(restored) is type(original)
    assert restored.get_config() == config
    original.update_state(gt, pred)
    restored.update_state(gt, pred)
    assert float(restored.result()) == float(original.result()), original.name
  assert originals[-1].get_config()["power"] == 3
  assert originals[0].get_config()["crop"] == "eigen"


def test_sample_weight_per_image_and_pixel_mask():
  gt, pred = _data(8, batch=3)
  plain = M.RMSE()
  plain.update_state(gt[1:2], pred[1:2])
  weighted = M.RMSE()
  weighted.update_state(gt, pred, sample_weight=np.array([0.0, 1.0, 0.0], np.float32))
  assert float(weighted.result()) == pytest.approx(float(plain.result()), rel=1e-7)
  # Pixel mask: keep the left half only == GT zeroed on the right half.
  pixel = np.zeros_like(gt)
  pixel[:, :, : W // 2] = 1.0
  masked = M.RMSE()
  masked.update_state(gt, pred, sample_weight=pixel)
  zeroed = M.RMSE()
  zeroed.update_state(gt * pixel, pred)
  assert float(masked.result()) == pytest.approx(float(zeroed.result()), rel=1e-7)


def test_resize_pred_as_disparity_matches_offline_evaluator():
  gt, pred = _data(9, batch=2)
  small = pred[:, ::2, ::2]  # network-size prediction (10 x 24)
  metric = M.AbsRel.from_protocol("kitti_eigen_mono", resize_pred_as_disparity=True)
  metric.update_state(gt, small)
  table, _ = M.evaluate_predictions(list(gt[..., 0]), list(small[..., 0]), "kitti_eigen_mono")
  np.testing.assert_allclose(float(metric.result()), table["abs_rel"], rtol=RTOL_F32)
  with pytest.raises(errors.InvalidInputError, match=r"\(2, 20, 48, 1\).*\(2, 10, 24, 1\)"):
    M.AbsRel().update_state(gt, small)


def test_bad_inputs_raise_typed_errors():
  gt, pred = _data(10, batch=2)
  with pytest.raises(errors.InvalidInputError, match=r"y_true.*\(2, 20, 48\)"):
    M.RMSE().update_state(gt[..., 0], pred)
  bad = pred.copy()
  bad[0, 3, 4, 0] = -1.5
  with pytest.raises(errors.InvalidInputError, match=r"-1\.5 at index \(0, 3, 4, 0\)"):
    M.RMSE().update_state(gt, bad)
  nan_gt = gt.copy()
  nan_gt[1, 0, 0, 0] = np.nan
  with pytest.raises(errors.InvalidInputError, match="NaN"):
    M.SILog().update_state(nan_gt, pred)
  with pytest.raises(errors.InvalidInputError, match="power must be 1, 2 or 3, got 4"):
    M.DeltaAccuracy(power=4)
  with pytest.raises(errors.InvalidInputError, match="'kitti'"):
    M.AbsRel(crop="kitti")
  with pytest.raises(errors.InvalidInputError, match=r"sample_weight.*\(2, 3, 4\)"):
    M.RMSE().update_state(gt, pred, sample_weight=np.ones((2, 3, 4), np.float32))
  with pytest.raises(errors.ConfigError, match="'delta4'"):
    M.metric_by_name("delta4")


def test_resize_with_unknown_spatial_dims_in_tf_function():
  # Prediction 2x2 with depth rows (1, 1), (2, 2) -> disparity rows 1, 0.5; resized to 4 rows
  # (half-pixel centres, source rows clamp(-0.25, 0.25, 0.75, 1.25)) -> disparity
  # (1, 0.875, 0.625, 0.5) -> depth rows (1, 8/7, 1.6, 2). Against gt = 1 everywhere:
  # abs_rel = (0 + 1/7 + 0.6 + 1) / 4 = 61/140.
  gt = np.ones((1, 4, 4, 1), np.float32)
  pred = np.array([[1.0, 1.0], [2.0, 2.0]], np.float32).reshape(1, 2, 2, 1)
  expected = 61.0 / 140.0
  metric = M.AbsRel(resize_pred_as_disparity=True)
  spec = tf.TensorSpec([None, None, None, 1], tf.float32)

  @tf.function(input_signature=[spec, spec])
  def update(y_true, y_pred):
    # TensorShape([None, None]) == TensorShape([None, None]) is True: the static sizes cannot
    # tell whether to resize (the old code skipped it and failed on the shapes).
    metric.update_state(y_true, y_pred)
    return metric.result()

  assert float(update(gt, pred)) == pytest.approx(expected, rel=RTOL_F32)
  eager = M.AbsRel(resize_pred_as_disparity=True)
  eager.update_state(gt, pred)
  assert float(eager.result()) == pytest.approx(expected, rel=RTOL_F32)
  # Same traced function, sizes equal at run time: no resize, pred = gt exactly -> abs_rel 0 for
  # this image; the mean over the 2 images seen is expected / 2.
  assert float(update(gt, gt)) == pytest.approx(expected / 2, rel=RTOL_F32)


def test_resized_prediction_is_checked_before_the_resize():
  # A negative depth at a smaller size was floored at RESIZE_MIN_DEPTH by the disparity resize
  # and scored (abs_rel 0.375 here); at GT size the same value raises.
  gt = np.ones((1, 4, 4, 1), np.float32)
  pred = np.array([[1.0, 1.0], [-5.0, 1.0]], np.float32).reshape(1, 2, 2, 1)
  for metric in (M.AbsRel(resize_pred_as_disparity=True), M.AbsRel()):
    with pytest.raises(errors.InvalidInputError, match=r"pred depth must be >= 0 metres, got -5"):
      metric.update_state(gt, pred if metric.resize_pred_as_disparity else
                          np.full((1, 4, 4, 1), -5.0, np.float32))
  spec = tf.TensorSpec([None, None, None, 1], tf.float32)
  traced = M.AbsRel(resize_pred_as_disparity=True)
  update = tf.function(traced.update_state, input_signature=[spec, spec])
  with pytest.raises(tf.errors.InvalidArgumentError, match="pred depth must be >= 0"):
    update(gt, pred)


def test_per_image_sample_weight_must_match_the_batch():
  # gt = 2 everywhere; the three images predict 1, 2, 3 -> per-image abs_rel 0.5, 0, 0.5.
  gt = np.full((3, 2, 2, 1), 2.0, np.float32)
  pred = np.concatenate([np.full((1, 2, 2, 1), v, np.float32) for v in (1.0, 2.0, 3.0)])
  weights = np.array([1.0, 2.0, 1.0], np.float32)
  weighted = M.AbsRel()
  weighted.update_state(gt, pred, sample_weight=weights)
  assert float(weighted.result()) == pytest.approx((0.5 + 0.0 + 0.5) / 4.0, rel=1e-7)  # 0.25
  single = M.AbsRel()  # one weight for every image: the unweighted mean 1/3
  single.update_state(gt, pred, sample_weight=np.array([2.0], np.float32))
  assert float(single.result()) == pytest.approx(1.0 / 3.0, rel=1e-7)
  with pytest.raises(errors.InvalidInputError, match=r"got 2 weights .*batch of 3 images"):
    M.AbsRel().update_state(gt, pred, sample_weight=weights[:2])
  with pytest.raises(errors.InvalidInputError, match=r"\(B,\) or \(B, 1\), got \(3, 2\)"):
    M.AbsRel().update_state(gt, pred, sample_weight=np.ones((3, 2), np.float32))
  # In a graph with an unknown batch size: a run-time assertion with the same text.
  metric = M.AbsRel()
  image_spec = tf.TensorSpec([None, 2, 2, 1], tf.float32)

  @tf.function(input_signature=[image_spec, image_spec, tf.TensorSpec([None], tf.float32)])
  def update(y_true, y_pred, w):
    metric.update_state(y_true, y_pred, sample_weight=w)
    return metric.result()

  assert float(update(gt, pred, weights)) == pytest.approx(0.25, rel=1e-7)
  with pytest.raises(tf.errors.InvalidArgumentError, match="one weight per image"):
    update(gt, pred, weights[:2])
