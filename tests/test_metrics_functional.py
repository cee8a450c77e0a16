"""Tests of tfdepth.metrics.functional: per-image errors, NumPy reference, offline evaluator."""

import math

import numpy as np
import pytest
import tensorflow as tf

from tfdepth import errors
from tfdepth import metrics as M

# float32 TF vs float64 NumPy on <= 1000 pixels: measured worst relative error 1.3e-7 over
# 5 seeds; 1e-6 is ~8 float32 ulp.
RTOL_F32 = 1e-6

# Hand case (one image, three valid pixels): g = (2, 4, 1), p = (1.5, 4, 1.8).
HAND_GT = (2.0, 4.0, 1.0)
HAND_PRED = (1.5, 4.0, 1.8)
HAND_EXPECTED = {
    # mean(|g-p|/g) = (0.5/2 + 0 + 0.8/1) / 3 = 1.05 / 3
    "abs_rel": 0.35,
    # mean((g-p)^2/g) = (0.25/2 + 0 + 0.64/1) / 3 = 0.765 / 3
    "sq_rel": 0.255,
    # sqrt((0.25 + 0 + 0.64) / 3) = sqrt(0.29667) = 0.544671
    "rmse": math.sqrt(0.89 / 3),
    # sqrt((ln(4/3)^2 + 0 + ln(1.8)^2) / 3) = sqrt((0.082761 + 0.345493) / 3) = 0.377825
    "rmse_log": math.sqrt((math.log(4 / 3) ** 2 + math.log(1.8) ** 2) / 3),
    # (log10(4/3) + 0 + log10(1.8)) / 3 = (0.124939 + 0.255273) / 3 = 0.126737
    "log10": (math.log10(4 / 3) + math.log10(1.8)) / 3,
    # d = ln p - ln g = (-ln(4/3), 0, ln 1.8) = (-0.287682, 0, 0.587787);
    # mean d^2 = 0.142751, mean d = 0.100035 -> 100 sqrt(0.142751 - 0.010007) = 36.4341
    "silog": 100 * math.sqrt((math.log(4 / 3) ** 2 + math.log(1.8) ** 2) / 3
                             - ((math.log(1.8) - math.log(4 / 3)) / 3) ** 2),
    # max(g/p, p/g) = (1.333, 1, 1.8): < 1.25 -> 1 of 3; < 1.5625 -> 2; < 1.953125 -> 3.
    "delta1": 1 / 3,
    "delta2": 2 / 3,
    "delta3": 1.0,
}


def _hand_batch():
  """Two images of 2x3: image 0 holds the hand case (+ 3 invalid pixels), image 1 is exact."""
  gt = np.zeros((2, 2, 3, 1), np.float32)
  pred = np.full((2, 2, 3, 1), 7.0, np.float32)
  gt[0, 0, :, 0] = HAND_GT
  pred[0, 0, :, 0] = HAND_PRED
  gt[1, :, :, 0] = [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]
  pred[1] = gt[1]
  return gt, pred


def test_numpy_reference_hand_computed():
  got = M.compute_depth_errors_numpy(np.array(HAND_GT), np.array(HAND_PRED))
  assert set(got) == set(M.METRIC_NAMES)
  for name, value in HAND_EXPECTED.items():
    assert got[name] == pytest.approx(value, rel=1e-12), name  # float64 throughout


def test_tf_hand_computed_per_image():
  gt, pred = _hand_batch()
  got = M.compute_depth_errors(gt, pred)  # mask None -> gt > 0
  np.testing.assert_array_equal(got[M.NUM_VALID_KEY].numpy(), [3.0, 6.0])
  for name, value in HAND_EXPECTED.items():
    perfect = 1.0 if name.startswith("delta") else 0.0
    np.testing.assert_allclose(got[name].numpy(), [value, perfect], rtol=RTOL_F32, atol=1e-7,
                               err_msg=name)


def test_tf_equals_numpy_reference_on_random_data():
  rng = np.random.default_rng(0)
  gt = rng.uniform(0.5, 79.0, (4, 24, 40, 1)).astype(np.float32)
  gt[rng.uniform(size=gt.shape) < 0.3] = 0.0
  pred = (gt * np.exp(rng.normal(0.0, 0.3, gt.shape)) + rng.uniform(0.1, 1.0, gt.shape)
          ).astype(np.float32)
  mask = (gt > 0) & (rng.uniform(size=gt.shape) < 0.8)
  got = M.compute_depth_errors(gt, pred, mask)
  for b in range(4):
    ref = M.compute_depth_errors_numpy(gt[b][mask[b]], pred[b][mask[b]])
    for name in M.METRIC_NAMES:
      np.testing.assert_allclose(got[name].numpy()[b], ref[name], rtol=RTOL_F32, err_msg=name)
    assert got[M.NUM_VALID_KEY].numpy()[b] == mask[b].sum()


def test_scale_invariance_of_silog_and_global_scale():
  rng = np.random.default_rng(3)
  gt = rng.uniform(1.0, 50.0, (2, 8, 8, 1)).astype(np.float32)
  got = M.compute_depth_errors(gt, gt * 3.0)
  # d = ln 3 everywhere: SILog 0 (centred form: exactly 0 up to float32 rounding of ln), while
  # AbsRel = |g - 3g| / g = 2 and delta1..3 = 0 (3 > 1.953125).
  np.testing.assert_allclose(got["silog"].numpy(), [0.0, 0.0], atol=1e-3)  # 1e-5 log units x100
  np.testing.assert_allclose(got["abs_rel"].numpy(), [2.0, 2.0], rtol=RTOL_F32)
  np.testing.assert_allclose(got["rmse_log"].numpy(), [math.log(3.0)] * 2, rtol=RTOL_F32)
  np.testing.assert_array_equal(got["delta3"].numpy(), [0.0, 0.0])


def test_delta_thresholds_are_strict():
  # Ratios exactly 1.25, 1.5625 and 1.953125 (exact binary fractions) do not count.
  gt = np.array([1.0, 1.0, 1.0], np.float32).reshape(1, 1, 3, 1)
  pred = np.array([1.25, 1.5625, 1.953125], np.float32).reshape(1, 1, 3, 1)
  got = M.compute_depth_errors(gt, pred)
  assert got["delta1"].numpy()[0] == 0.0
  assert got["delta2"].numpy()[0] == pytest.approx(1 / 3, rel=1e-7)
  assert got["delta3"].numpy()[0] == pytest.approx(2 / 3, rel=1e-7)
  ref = M.compute_depth_errors_numpy(gt.ravel(), pred.ravel())
  assert (ref["delta1"], ref["delta2"], ref["delta3"]) == (0.0, 1 / 3, 2 / 3)


def test_image_without_valid_pixels_is_finite_and_excluded():
  gt, pred = _hand_batch()
  gt = np.concatenate([gt, np.zeros_like(gt[:1])])  # image 2: all invalid
  pred = np.concatenate([pred, pred[:1]])
  got = M.compute_depth_errors(gt, pred)
  for name in M.METRIC_NAMES:
    values = got[name].numpy()
    assert np.isfinite(values).all(), name
    assert values[2] == 0.0, name
  table = M.mean_over_images(got)
  assert table[M.NUM_VALID_KEY].numpy() == 2.0
  # mean over the two valid images: (0.35 + 0) / 2
  np.testing.assert_allclose(table["abs_rel"].numpy(), 0.175, rtol=RTOL_F32)
  empty = M.mean_over_images(M.compute_depth_errors(np.zeros_like(gt), pred))
  assert all(np.isfinite(v.numpy()) and v.numpy() == 0.0 for v in empty.values())


def test_eager_function_and_jit_with_unknown_batch_agree():
  rng = np.random.default_rng(5)
  gt = rng.uniform(0.0, 60.0, (3, 6, 10, 1)).astype(np.float32)
  pred = rng.uniform(0.5, 60.0, (3, 6, 10, 1)).astype(np.float32)
  spec = tf.TensorSpec([None, 6, 10, 1], tf.float32)
  graph_fn = tf.function(M.compute_depth_errors, input_signature=[spec, spec])
  jit_fn = tf.function(M.compute_depth_errors, input_signature=[spec, spec], jit_compile=True)
  eager = M.compute_depth_errors(gt, pred)
  for fn in (graph_fn, jit_fn):
    got = fn(tf.constant(gt), tf.constant(pred))
    for name in M.METRIC_NAMES:
      # XLA may fuse / reorder float32 sums: a few ulp.
      np.testing.assert_allclose(got[name].numpy(), eager[name].numpy(), rtol=RTOL_F32,
                                 err_msg=name)


def test_bad_inputs_raise_typed_errors_naming_the_value():
  gt, pred = _hand_batch()
  with pytest.raises(errors.InvalidInputError, match=r"\(2, 2, 3, 1\).*\(2, 2, 4, 1\)"):
    M.compute_depth_errors(gt, np.ones((2, 2, 4, 1), np.float32))
  with pytest.raises(errors.InvalidInputError, match=r"\(2, 2, 3\)"):
    M.compute_depth_errors(gt[..., 0], pred[..., 0])
  bad_pred = pred.copy()
  bad_pred[1, 1, 2, 0] = -2.5
  with pytest.raises(errors.InvalidInputError, match=r"-2\.5 at index \(1, 1, 2, 0\)"):
    M.compute_depth_errors(gt, bad_pred)
  bad_gt = gt.copy()
  bad_gt[0, 1, 1, 0] = np.nan
  with pytest.raises(errors.InvalidInputError, match=r"NaN.*\(0, 1, 1, 0\)"):
    M.compute_depth_errors(bad_gt, pred)
  with pytest.raises(errors.InvalidInputError, match="'rmse_lg'"):
    M.compute_depth_errors(gt, pred, metrics=("rmse_lg",))
  # In a (non-XLA) graph, the value checks are tf.debugging assertions.
  graph_fn = tf.function(M.compute_depth_errors)
  with pytest.raises(tf.errors.InvalidArgumentError, match="pred depth must be >= 0"):
    graph_fn(tf.constant(gt), tf.constant(bad_pred))
  with pytest.raises(errors.InvalidInputError, match="0 pixels"):
    M.compute_depth_errors_numpy(np.array([]), np.array([]))
  with pytest.raises(errors.InvalidInputError, match="pred must be finite and > 0.*0.0"):
    M.compute_depth_errors_numpy(np.array([1.0, 2.0]), np.array([1.0, 0.0]))


def test_resize_bilinear_numpy_matches_tf_image_resize():
  rng = np.random.default_rng(7)
  image = rng.uniform(0.01, 1.0, (6, 10))
  for out_size in ((15, 31), (3, 4), (6, 10), (12, 5)):
    ours = M.resize_bilinear_numpy(image, *out_size)
    ref = tf.image.resize(image[None, :, :, None].astype(np.float32), out_size,
                          method="bilinear", antialias=False).numpy()[0, :, :, 0]
    np.testing.assert_allclose(ours, ref, rtol=1e-6, atol=1e-7)  # TF runs in float32


def test_evaluate_resizes_as_disparity_hand_computed():
  # Prediction 2x2 with depth rows (1, 1) and (2, 2) -> disparity rows 1 and 0.5. Upsampled to
  # 4 rows with half-pixel centres: source rows clamp(-0.25, 0.25, 0.75, 1.25) = (0, .25, .75, 1)
  # -> disparity (1, 0.875, 0.625, 0.5) -> depth (1, 8/7, 1.6, 2).
  pred = np.array([[1.0, 1.0], [2.0, 2.0]])
  gt = np.repeat(np.array([1.0, 8.0 / 7.0, 1.6, 2.0])[:, None], 4, axis=1)
  table, per_image = M.evaluate_predictions([gt], [pred], "synthetic_street")
  assert table["abs_rel"] == pytest.approx(0.0, abs=1e-15)
  assert per_image[0][M.NUM_VALID_KEY] == 16
  # Resizing depth instead gives rows (1, 1.25, 1.75, 2): AbsRel rows 0, |8/7 - 1.25| / (8/7)
  # = 0.09375, |1.6 - 1.75| / 1.6 = 0.09375, 0 -> mean 0.046875.
  table_depth, _ = M.evaluate_predictions([gt], [pred], "synthetic_street",
                                          resize_as_disparity=False)
  assert table_depth["abs_rel"] == pytest.approx(0.046875, rel=1e-12)


def test_evaluate_median_scaling_makes_a_scaled_prediction_exact():
  rng = np.random.default_rng(11)
  gts, preds = [], []
  for size in ((30, 100), (24, 90)):
    gt = rng.uniform(2.0, 70.0, size)
    gt[rng.uniform(size=size) < 0.4] = 0.0
    pred = gt * 0.037 + (gt == 0) * 9.0  # globally scaled where valid, junk elsewhere
    gts.append(gt)
    preds.append(pred)
  table, per_image = M.evaluate_predictions(gts, preds, M.KITTI_EIGEN_MONO)
  for name in M.METRIC_NAMES:
    expected = 1.0 if name.startswith("delta") else 0.0
    assert table[name] == pytest.approx(expected, abs=1e-6), name  # float64 rounding
  assert per_image[0]["scale"] == pytest.approx(1 / 0.037, rel=1e-12)
  # Stereo: x5.4 exactly undoes a /5.4 prediction, no median scaling.
  stereo, per_stereo = M.evaluate_predictions(gts, [g / 5.4 + (g == 0) for g in gts],
                                              M.KITTI_EIGEN_STEREO)
  assert stereo["abs_rel"] == pytest.approx(0.0, abs=1e-12)
  assert per_stereo[1]["scale"] == 5.4


def test_evaluate_is_a_mean_over_images_not_pooled():
  # Image A: one valid pixel, g = 1, p = 2 -> AbsRel 1. Image B: three valid pixels, exact -> 0.
  # Mean over images: (1 + 0) / 2 = 0.5; pooled over the 4 pixels it would be 1 / 4 = 0.25.
  gt_a = np.array([[1.0, 0.0], [0.0, 0.0]])
  pred_a = np.array([[2.0, 1.0], [1.0, 1.0]])
  gt_b = np.array([[3.0, 4.0], [5.0, 0.0]])
  pred_b = np.array([[3.0, 4.0], [5.0, 1.0]])
  table, per_image = M.evaluate_predictions([gt_a, gt_b], [pred_a, pred_b], "synthetic_street")
  assert table["abs_rel"] == 0.5
  assert [e["abs_rel"] for e in per_image] == [1.0, 0.0]
  tf_errs = M.compute_depth_errors(np.stack([gt_a, gt_b])[..., None],
                                   np.stack([pred_a, pred_b])[..., None])
  assert float(M.mean_over_images(tf_errs)["abs_rel"]) == 0.5


def test_evaluate_clamps_after_scaling_and_skips_empty_images():
  # pred 100 m is clamped to 80 after scaling: AbsRel |50 - 80| / 50 = 0.6 on that pixel; pixel
  # 2: exact -> mean (0.6 + 0) / 2 = 0.3. The third image has no valid pixel: NaN entry, skipped.
  gt = np.array([[50.0, 10.0]])
  pred = np.array([[100.0, 10.0]])
  table, per_image = M.evaluate_predictions([gt, gt, np.zeros((1, 2))], [pred, pred, pred],
                                            "synthetic_street")
  assert table["abs_rel"] == pytest.approx(0.3, rel=1e-12)
  assert table[M.NUM_VALID_KEY] == 2
  assert per_image[2][M.NUM_VALID_KEY] == 0 and math.isnan(per_image[2]["abs_rel"])


def test_evaluate_bad_inputs():
  gt = np.ones((4, 5))
  with pytest.raises(errors.InvalidInputError, match="2 ground truths but 1 predictions"):
    M.evaluate_predictions([gt, gt], [gt], "kitti_eigen")
  nan_gt = gt.copy()
  nan_gt[1, 1] = np.nan
  with pytest.raises(errors.InvalidInputError, match=r"gts\[0\] contains NaN"):
    M.evaluate_predictions([nan_gt], [gt], "kitti_eigen")
  with pytest.raises(errors.InvalidInputError, match=r"preds\[0\].*-1\.0"):
    M.evaluate_predictions([gt], [-gt], "kitti_eigen")
  with pytest.raises(errors.InvalidInputError, match="none of the 1 images"):
    M.evaluate_predictions([np.zeros((4, 5))], [gt], "nyu")
  with pytest.raises(errors.ConfigError, match="'kitti'"):
    M.evaluate_predictions([gt], [gt], "kitti")


def test_format_table_exact_string():
  table = {"abs_rel": 0.11549, "rmse": 4.8632, "delta1": 0.8771, M.NUM_VALID_KEY: 697}
  text = M.format_table(table, "kitti_eigen_mono")
  assert text == (
      "**kitti_eigen_mono** (gt in (0.001, 80) m, garg crop, per-image median scaling, pred "
      "clamped to [0.001, 80]), 697 images\n"
      "\n"
      "| AbsRel ↓ | RMSE ↓ | δ<1.25 ↑ |\n"
      "|---:|---:|---:|\n"
      "| 0.115 | 4.863 | 0.877 |\n")
  with pytest.raises(errors.InvalidInputError, match="'absrel'"):
    M.format_table({"absrel": 0.1}, "kitti_eigen")


def test_infinite_gt_is_never_a_valid_pixel():
  # One image of 2x2: g = (2, +inf, 4, 0), p = (1, 1, 5, 1). Valid: g = 2 and g = 4 only (+inf is
  # "no measurement" as in evaluation_mask, 0 is invalid). abs_rel = (1/2 + 1/4) / 2 = 0.375;
  # rmse = sqrt((1 + 1) / 2) = 1; rmse_log = sqrt((ln 2^2 + ln 1.25^2) / 2) = 0.522553.
  # Before the fix the inf pixel was valid: abs_rel NaN, rmse inf.
  gt = np.array([2.0, np.inf, 4.0, 0.0], np.float32).reshape(1, 2, 2, 1)
  pred = np.array([1.0, 1.0, 5.0, 1.0], np.float32).reshape(1, 2, 2, 1)
  expected_rmse_log = math.sqrt((math.log(2.0) ** 2 + math.log(1.25) ** 2) / 2)
  all_pixels = np.ones_like(gt, bool)
  for label, fn in (("eager", M.compute_depth_errors),
                    ("graph", tf.function(M.compute_depth_errors))):
    for mask in (None, all_pixels):  # an explicit mask cannot make +inf valid either
      got = {k: float(v[0]) for k, v in fn(gt, pred, mask).items()}
      assert got[M.NUM_VALID_KEY] == 2.0, (label, mask is None)
      assert got["abs_rel"] == pytest.approx(0.375, rel=RTOL_F32), (label, mask is None)
      assert got["rmse"] == pytest.approx(1.0, rel=RTOL_F32), (label, mask is None)
      assert got["rmse_log"] == pytest.approx(expected_rmse_log, rel=RTOL_F32)
      assert all(math.isfinite(v) for v in got.values()), (label, got)


def test_integer_or_bool_gt_is_refused_offline_as_in_the_streaming_path():
  # Raw KITTI depth PNG value for 5 m: 5 * 256 = 1280 (uint16). Scored as metres against a 5 m
  # prediction it gave abs_rel |1280 - 5| / 1280 = 0.99609375 before the fix.
  raw = np.full((4, 4), 1280, np.uint16)
  pred = np.full((4, 4), 5.0)
  with pytest.raises(errors.InvalidInputError, match=r"gts\[0\].*floating-point.*uint16"):
    M.evaluate_predictions([raw], [pred], "kitti_benchmark")
  with pytest.raises(errors.InvalidInputError, match=r"gts\[1\].*int64"):
    M.evaluate_predictions([raw / 256.0, raw.astype(np.int64)], [pred, pred], "kitti_benchmark")
  with pytest.raises(errors.InvalidInputError, match=r"gts\[0\].*bool"):
    M.evaluate_predictions([np.ones((4, 4), bool)], [pred], "kitti_benchmark")
  with pytest.raises(errors.InvalidInputError, match=r"compute_depth_errors_numpy: gt.*uint16"):
    M.compute_depth_errors_numpy(raw, pred)
  with pytest.raises(errors.InvalidInputError, match="got dtype uint16"):  # the streaming path
    M.compute_depth_errors(raw[None, ..., None], pred[None, ..., None])
  # Converted to metres the same values are exact.
  table, _ = M.evaluate_predictions([raw / 256.0], [pred], "kitti_benchmark")
  assert table["abs_rel"] == 0.0
  assert M.compute_depth_errors_numpy(raw / 256.0, pred)["abs_rel"] == 0.0
