"""tfdepth-eval scores supervised experiments against the ground truth at its native resolution.

The images are resized to the network size; the network-size prediction is resized to each GT's
size as disparity by `tfdepth.metrics.evaluate_predictions`; the GT is never resized.
"""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from tfdepth import metrics
from tfdepth.data import augment
from tfdepth.data import make_supervised_dataset
from trainers import common
from trainers import evaluate as evaluate_lib
from trainers import experiments

# Metrics in float64 from float32 inputs that are exact small numbers (2, 3, 4): 1e-6 relative
# covers the float32 rounding of 1/3.
RTOL = 1e-6
NET_HEIGHT, NET_WIDTH = 2, 2


def _element(gt):
  h, w = gt.shape
  k = np.array([[w, 0, w / 2], [0, w, h / 2], [0, 0, 1]], np.float32)
  image = np.linspace(0.0, 1.0, h * w * 3, dtype=np.float32).reshape(h, w, 3)
  return {"image": image, "depth": gt[..., None].astype(np.float32), "intrinsics": k}


def _varying_size_dataset():
  """Two examples of different sizes (as KITTI's frames), sizes unknown to the element spec.

  Image 0, 4x4: gt 2 m everywhere but 4 m at (0, 0). Image 1, 4x6: gt 3 m with 2 invalid
  (0) pixels.
  """
  gt0 = np.full((4, 4), 2.0, np.float32)
  gt0[0, 0] = 4.0
  gt1 = np.full((4, 6), 3.0, np.float32)
  gt1[2, 3] = gt1[3, 5] = 0.0
  elements = [_element(gt0), _element(gt1)]
  signature = {"image": tf.TensorSpec([None, None, 3], tf.float32),
               "depth": tf.TensorSpec([None, None, 1], tf.float32),
               "intrinsics": tf.TensorSpec([3, 3], tf.float32)}
  return tf.data.Dataset.from_generator(lambda: iter(elements), output_signature=signature)


class _ConstantNetwork:
  """Predicts 2 m everywhere at the input size; records the input shapes it is called with."""

  def __init__(self):
    self.input_shapes = []

  def __call__(self, images, training=False):
    del training
    self.input_shapes.append(tuple(images.shape))
    return {"depth": tf.fill(tf.concat([tf.shape(images)[:3], [1]], 0), 2.0)}


def test_gt_keeps_its_size_and_only_the_image_is_resized():
  network = _ConstantNetwork()
  ds = evaluate_lib.native_resolution_dataset(_varying_size_dataset(), None, batch_size=4)
  gts, preds = evaluate_lib.predict_split(network, ds, NET_HEIGHT, NET_WIDTH)
  # Sizes vary: batches of one, every image resized to the network's 2x2.
  assert network.input_shapes == [(1, NET_HEIGHT, NET_WIDTH, 3)] * 2
  assert [g.shape for g in gts] == [(4, 4, 1), (4, 6, 1)]
  assert [p.shape for p in preds] == [(NET_HEIGHT, NET_WIDTH, 1)] * 2
  table, per_image = evaluate_lib.metric_table_per_image(gts, preds, "synthetic_street")
  # The constant 2 m prediction stays 2 m when resized as disparity. Image 0: 16 valid pixels,
  # abs_rel = (|4 - 2| / 4) / 16 = 1/32 (a nearest resize to 2x2 samples pixels (1|3, 1|3) and
  # would lose the 4 m pixel: abs_rel 0 on 4 pixels). Image 1: 22 valid pixels, each
  # |3 - 2| / 3 -> 1/3. Mean over images: (1/32 + 1/3) / 2 = 35/192.
  assert [r[metrics.NUM_VALID_KEY] for r in per_image] == [16, 22]
  assert per_image[0]["abs_rel"] == pytest.approx(1 / 32, rel=RTOL)
  assert per_image[1]["abs_rel"] == pytest.approx(1 / 3, rel=RTOL)
  assert table["abs_rel"] == pytest.approx(35 / 192, rel=RTOL)
  # rmse: image 0 sqrt(2^2 / 16) = 0.5, image 1: 1 -> 0.75.
  assert table["rmse"] == pytest.approx(0.75, rel=RTOL)


def test_network_input_is_the_eval_pipeline_resize():
  image = np.linspace(0.0, 1.0, 4 * 6 * 3, dtype=np.float32).reshape(1, 4, 6, 3)
  got = evaluate_lib.network_input(image, NET_HEIGHT, NET_WIDTH).numpy()
  # The network sees what the evaluation input pipeline would give it (antialiased bilinear,
  # clipped to [0, 1]): the same function's output, bit for bit.
  element = {"image": image[0], "depth": np.ones((4, 6, 1), np.float32),
             "intrinsics": np.eye(3, dtype=np.float32)}
  expected = augment.resize(element, NET_HEIGHT, NET_WIDTH)["image"].numpy()
  np.testing.assert_array_equal(got[0], expected)
  # Already at the network size: unchanged.
  same = np.random.default_rng(0).random((1, NET_HEIGHT, NET_WIDTH, 3)).astype(np.float32)
  np.testing.assert_array_equal(evaluate_lib.network_input(same, NET_HEIGHT, NET_WIDTH), same)


def test_static_size_dataset_is_batched():
  gts = np.stack([np.full((4, 4), v, np.float32) for v in (1.0, 2.0, 3.0)])
  ds = tf.data.Dataset.from_tensor_slices(
      {"image": np.zeros((3, 4, 4, 3), np.float32), "depth": gts[..., None],
       "intrinsics": np.tile(np.eye(3, dtype=np.float32), (3, 1, 1))})
  batches = list(evaluate_lib.native_resolution_dataset(ds, None, batch_size=2))
  assert [tuple(b["depth"].shape) for b in batches] == [(2, 4, 4, 1), (1, 4, 4, 1)]
  np.testing.assert_array_equal(np.concatenate([b["depth"] for b in batches])[..., 0], gts)


def test_tfdepth_eval_uses_native_gt_of_the_synthetic_world(tmp_path):
  """evaluate() on a synthetic world stored at 48x96 with a 32x64 network (untrained weights)."""
  gt_h, gt_w = 48, 96
  config = experiments.apply_overrides(
      experiments.get_experiment("fastdepth_synthetic_street"),
      ["data.height=32", "data.width=64", f"data.builder_kwargs.height={gt_h}",
       f"data.builder_kwargs.width={gt_w}", "data.builder_kwargs.num_train=1",
       "data.builder_kwargs.num_validation=1", "data.builder_kwargs.num_test=2",
       "model.kwargs.width_multiplier=0.25", "train.batch_size=2"])
  data_dir = str(tmp_path / "tfds")
  model = common.build_trainer(config, total_steps=1)
  checkpoint = str(tmp_path / "run" / "checkpoints" / "random.weights.h5")
  os.makedirs(os.path.dirname(checkpoint))
  model.save_weights(checkpoint)
  table = evaluate_lib.evaluate(config, checkpoint, data_dir=data_dir)
  with open(tmp_path / "run" / evaluate_lib.PER_IMAGE_JSON) as f:
    records = json.load(f)["images"]

  builder = common.prepare_builder(config.data, data_dir)
  native = [b for b in make_supervised_dataset(builder, split=config.data.test_split,
                                               batch_size=1)]
  gts = [b["depth"].numpy()[0] for b in native]
  assert [g.shape for g in gts] == [(gt_h, gt_w, 1)] * 2
  # Valid-pixel counts are those of the 48x96 GT (4191 and 4200 of 4608 pixels with this seed),
  # more than the 32 * 64 = 2048 pixels a GT resized to the network size could have.
  counts = [int(metrics.evaluation_mask(g[..., 0], config.metrics_protocol).sum()) for g in gts]
  assert [r[metrics.NUM_VALID_KEY] for r in records] == counts
  assert min(counts) > 32 * 64
  # And the table is the offline evaluator's on (native GT, network-size prediction).
  preds = [model.network(evaluate_lib.network_input(b["image"], 32, 64),
                         training=False)["depth"].numpy()[0] for b in native]
  assert preds[0].shape == (32, 64, 1)
  reference, _ = metrics.evaluate_predictions([g[..., 0] for g in gts],
                                              [p[..., 0] for p in preds],
                                              config.metrics_protocol)
  for key in ("abs_rel", "rmse", "delta1"):
    assert table[key] == pytest.approx(reference[key], rel=1e-6), key
