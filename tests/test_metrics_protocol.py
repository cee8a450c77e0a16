"""Tests of tfdepth.metrics.protocol: constants, presets, crops, masks and median scaling."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from tfdepth import errors
from tfdepth import metrics as M


def test_constants_are_the_reference_values():
  # Monodepth2 evaluate_depth.py / BTS bts_eval.py, copied from the papers' code.
  assert (M.KITTI_MIN_DEPTH, M.KITTI_MAX_DEPTH) == (1e-3, 80.0)
  assert (M.NYU_MIN_DEPTH, M.NYU_MAX_DEPTH) == (1e-3, 10.0)
  assert M.GARG_CROP_FRACTIONS == (0.40810811, 0.99189189, 0.03594771, 0.96405229)
  assert M.EIGEN_CROP_FRACTIONS == (0.3324324, 0.91351351, 0.0359477, 0.96405229)
  assert M.NYU_EVAL_CROP == (45, 471, 41, 601)
  assert M.STEREO_SCALE_FACTOR == 5.4


def test_presets():
  assert M.KITTI_EIGEN == M.EvalProtocol("kitti_eigen", 1e-3, 80.0, "garg", False, None, True)
  assert M.KITTI_EIGEN_MONO.median_scaling and M.KITTI_EIGEN_MONO.crop == "garg"
  assert M.KITTI_EIGEN_MONO.fixed_scale is None
  assert M.KITTI_EIGEN_STEREO.fixed_scale == 5.4 and not M.KITTI_EIGEN_STEREO.median_scaling
  assert M.KITTI_BENCHMARK.crop is None and not M.KITTI_BENCHMARK.filter_gt_range
  assert (M.NYU.min_depth, M.NYU.max_depth, M.NYU.crop) == (1e-3, 10.0, "nyu")
  assert (M.SYNTHETIC_STREET.max_depth, M.SYNTHETIC_STREET.crop) == (80.0, None)
  assert (M.SYNTHETIC_INDOOR.max_depth, M.SYNTHETIC_INDOOR.crop) == (10.0, None)
  with pytest.raises(dataclasses.FrozenInstanceError):
    M.KITTI_EIGEN.min_depth = 0.5  # frozen


def test_get_protocol():
  assert M.get_protocol("kitti_eigen_mono") is M.KITTI_EIGEN_MONO
  assert M.get_protocol(" NYU ") is M.NYU
  custom = dataclasses.replace(M.KITTI_EIGEN, name="mine", max_depth=50.0)
  assert M.get_protocol(custom) is custom
  with pytest.raises(errors.ConfigError, match="'kitti_eigne'.*kitti_eigen"):
    M.get_protocol("kitti_eigne")
  with pytest.raises(TypeError, match="got 3"):
    M.get_protocol(3)


@pytest.mark.parametrize("kwargs, match", [
    (dict(min_depth=10.0, max_depth=5.0), "min_depth=10.0"),
    (dict(min_depth=-1.0), "min_depth=-1.0"),
    (dict(crop="garrg"), "'garrg'"),
    (dict(fixed_scale=-5.4), "-5.4"),
    (dict(median_scaling="yes"), "'yes'"),
])
def test_eval_protocol_rejects_bad_values(kwargs, match):
  base = dict(name="p", min_depth=1e-3, max_depth=80.0)
  base.update(kwargs)
  with pytest.raises(errors.InvalidInputError, match=match):
    M.EvalProtocol(**base)


def test_garg_crop_on_375x1242_is_the_reference_window():
  # int(0.40810811 * 375) = int(153.04) = 153; int(0.99189189 * 375) = int(371.96) = 371;
  # int(0.03594771 * 1242) = int(44.65) = 44; int(0.96405229 * 1242) = int(1197.35) = 1197.
  assert M.crop_bounds(375, 1242, "garg") == (153, 371, 44, 1197)
  mask = M.crop_mask(375, 1242, "garg")
  assert mask.shape == (375, 1242) and mask.dtype == bool
  assert mask.sum() == (371 - 153) * (1197 - 44)
  rows = np.flatnonzero(mask.any(axis=1))
  cols = np.flatnonzero(mask.any(axis=0))
  assert (rows[0], rows[-1], cols[0], cols[-1]) == (153, 370, 44, 1196)


def test_crop_truncates_like_the_reference_near_integers():
  # 370x1224 (KITTI 2011_10_03): 0.40810811*370 = 151.0000007 -> 151, 0.99189189*370 =
  # 366.9999993 -> 366 (truncation, not rounding), 0.03594771*1224 = 43.99999704 -> 43,
  # 0.96405229*1224 = 1180.00000296 -> 1180; equal to np.array([...]).astype(np.int32).
  assert M.crop_bounds(370, 1224, "garg") == (151, 366, 43, 1180)
  reference = np.array([0.40810811 * 370, 0.99189189 * 370,
                        0.03594771 * 1224, 0.96405229 * 1224]).astype(np.int32)
  assert tuple(reference) == (151, 366, 43, 1180)
  # Eigen crop: int(0.3324324*375) = int(124.66) = 124, int(0.91351351*375) = int(342.57) = 342.
  assert M.crop_bounds(375, 1242, "eigen") == (124, 342, 44, 1197)


def test_nyu_crop():
  assert M.crop_bounds(480, 640, "nyu") == (45, 471, 41, 601)
  # Scaled with floor division: 45*240//480 = 22, 471*240//480 = 235, 41*320//640 = 20,
  # 601*320//640 = 300.
  assert M.crop_bounds(240, 320, "nyu") == (22, 235, 20, 300)
  assert M.crop_bounds(4, 5, None) == (0, 4, 0, 5)
  with pytest.raises(errors.InvalidInputError, match="-3"):
    M.crop_bounds(-3, 5, "garg")


@pytest.mark.parametrize("size, crop", [((370, 1224), "garg"), ((375, 1242), "eigen"),
                                        ((240, 320), "nyu")])
def test_tf_crop_with_dynamic_size_matches_numpy(size, crop):
  protocol = M.EvalProtocol("c", 1e-3, 80.0, crop=crop)
  gt = np.full((1,) + size + (1,), 5.0, np.float32)

  @tf.function(input_signature=[tf.TensorSpec([None, None, None, 1], tf.float32)])
  def dynamic(x):
    return M.evaluation_mask(x, protocol)

  expected = M.crop_mask(*size, crop)[None, :, :, None]
  np.testing.assert_array_equal(dynamic(tf.constant(gt)).numpy(), expected)
  np.testing.assert_array_equal(M.evaluation_mask(tf.constant(gt), protocol).numpy(), expected)


def test_evaluation_mask_is_strict_and_rejects_nan():
  gt = np.array([[0.0, 1e-3, 1.1e-3, 79.99, 80.0, 80.5, np.nan]], np.float32)
  expected = np.array([[False, False, True, True, False, False, False]])
  np.testing.assert_array_equal(M.evaluation_mask(gt, "synthetic_street"), expected)
  np.testing.assert_array_equal(M.evaluation_mask(tf.constant(gt), "synthetic_street").numpy(),
                                expected)
  # KITTI benchmark: gt > 0 only (80.0 and 80.5 m kept), NaN still invalid.
  bench = np.array([[False, True, True, True, True, True, False]])
  np.testing.assert_array_equal(M.evaluation_mask(gt, "kitti_benchmark"), bench)
  np.testing.assert_array_equal(M.evaluation_mask(tf.constant(gt), "kitti_benchmark").numpy(),
                                bench)


def test_evaluation_mask_applies_the_crop_on_each_layout():
  gt = np.full((2, 375, 1242, 1), 10.0, np.float32)
  crop = M.crop_mask(375, 1242, "garg")
  np.testing.assert_array_equal(M.evaluation_mask(gt, M.KITTI_EIGEN)[1, ..., 0], crop)
  np.testing.assert_array_equal(M.evaluation_mask(gt[..., 0], M.KITTI_EIGEN)[0], crop)
  np.testing.assert_array_equal(M.evaluation_mask(gt[0, ..., 0], M.KITTI_EIGEN), crop)
  with pytest.raises(errors.InvalidInputError, match="rank 1"):
    M.evaluation_mask(np.ones(5), M.KITTI_EIGEN)


def test_median_scale_hand_computed_even_count():
  # Even count: median(gt) = (4 + 6) / 2 = 5, median(pred) = (2 + 3) / 2 = 2.5 -> ratio 2.
  # The 100 is masked out. A lower median (as in Monodepth2's training-time log) would also give
  # 4 / 2 = 2 here; the second case below separates the two.
  gt = np.array([[2.0, 4.0, 6.0, 8.0, 100.0]])
  pred = np.array([[1.0, 2.0, 3.0, 4.0, 1.0]])
  mask = np.array([[True, True, True, True, False]])
  scaled, ratio = M.median_scale(pred, gt, mask)
  assert ratio == 2.0
  np.testing.assert_array_equal(scaled, [[2.0, 4.0, 6.0, 8.0, 2.0]])
  # median(gt) = 5, median(pred) = (2 + 3.5) / 2 = 2.75 -> ratio 5 / 2.75 = 1.8181...
  # (the lower median would give 4 / 2 = 2).
  pred2 = np.array([[1.0, 2.0, 3.5, 4.0, 1.0]])
  _, ratio2 = M.median_scale(pred2, gt, mask)
  assert ratio2 == pytest.approx(5.0 / 2.75, rel=1e-15)  # float64 arithmetic only
  _, ratio_tf = M.median_scale(tf.constant(pred2[None], tf.float32),
                               tf.constant(gt[None], tf.float32), tf.constant(mask[None]))
  np.testing.assert_allclose(ratio_tf.numpy(), [5.0 / 2.75], rtol=1e-7)  # float32: 1 ulp


def test_median_scale_clamps_after_scaling():
  # ratio = median(10, 20, 30) / median(0.1, 0.2, 0.3) = 100 -> (10, 20, 30), then clamp to
  # [1e-3, 25] -> (10, 20, 25). Clamping before scaling would leave 30 (0.3 * 100).
  gt = np.array([[10.0, 20.0, 30.0]])
  pred = np.array([[0.1, 0.2, 0.3]])
  mask = np.ones_like(gt, bool)
  scaled, ratio = M.median_scale(pred, gt, mask, min_depth=1e-3, max_depth=25.0)
  assert ratio == pytest.approx(100.0, rel=1e-15)
  np.testing.assert_allclose(scaled, [[10.0, 20.0, 25.0]], rtol=1e-15)
  scaled_tf, _ = M.median_scale(tf.constant(pred[None], tf.float32),
                                tf.constant(gt[None], tf.float32), tf.constant(mask[None]),
                                min_depth=1e-3, max_depth=25.0)
  np.testing.assert_allclose(scaled_tf.numpy()[0], [[10.0, 20.0, 25.0]], rtol=2e-7)  # 1-2 ulp
  unclamped, _ = M.median_scale(pred, gt, mask, clamp=False)
  np.testing.assert_allclose(unclamped, [[10.0, 20.0, 30.0]], rtol=1e-15)


def test_median_scale_tf_matches_numpy_per_image_and_handles_empty_images():
  rng = np.random.default_rng(1)
  gt = rng.uniform(1.0, 70.0, (4, 9, 11, 1)).astype(np.float32)
  pred = rng.uniform(0.1, 3.0, (4, 9, 11, 1)).astype(np.float32)
  mask = rng.uniform(size=gt.shape) < 0.5
  mask[2] = False  # no valid pixel: ratio 1, finite
  mask[3] = False
  mask[3, 0, :6] = True  # 6 valid pixels: even count
  scaled_tf, ratio_tf = M.median_scale(tf.constant(pred), tf.constant(gt), tf.constant(mask))
  scaled_np, ratio_np = M.median_scale(pred, gt, mask)
  for b in (0, 1, 3):
    expected = np.median(gt[b][mask[b]]) / np.median(pred[b][mask[b]])
    # float32 medians and one division: a few ulp.
    np.testing.assert_allclose(ratio_tf.numpy()[b], expected, rtol=1e-6)
    np.testing.assert_allclose(ratio_np[b], expected, rtol=1e-6)
  assert ratio_tf.numpy()[2] == 1.0 and ratio_np[2] == 1.0
  assert np.isfinite(scaled_tf.numpy()).all()
  np.testing.assert_allclose(scaled_tf.numpy(), scaled_np, rtol=1e-6)


def test_median_scale_jit_with_unknown_batch():
  rng = np.random.default_rng(2)
  gt = rng.uniform(1.0, 70.0, (3, 5, 7, 1)).astype(np.float32)
  pred = rng.uniform(0.1, 3.0, (3, 5, 7, 1)).astype(np.float32)
  mask = gt > 20.0
  spec = tf.TensorSpec([None, 5, 7, 1], tf.float32)

  @tf.function(jit_compile=True, input_signature=[spec, spec, tf.TensorSpec([None, 5, 7, 1],
                                                                              tf.bool)])
  def jitted(p, g, m):
    return M.median_scale(p, g, m)

  eager = M.median_scale(tf.constant(pred), tf.constant(gt), tf.constant(mask))
  compiled = jitted(tf.constant(pred), tf.constant(gt), tf.constant(mask))
  np.testing.assert_allclose(compiled[1].numpy(), eager[1].numpy(), rtol=1e-7)  # same ops
  np.testing.assert_allclose(compiled[0].numpy(), eager[0].numpy(), rtol=1e-7)


def test_describe_names_the_choices():
  text = M.KITTI_EIGEN_STEREO.describe()
  assert "garg crop" in text and "x5.4" in text and "[0.001, 80]" in text
  assert "gt > 0" in M.KITTI_BENCHMARK.describe()


def test_tf_median_is_exactly_numpy_median_with_ties_and_small_counts():
  # The TF median is a bisection on float32 bit patterns (no sort); it must return the same
  # float32 as np.median, bit for bit: the k-th order statistics are exact and
  # 0.5*a + 0.5*b rounds like np.mean's (a + b) / 2.
  rng = np.random.default_rng(4)
  values = np.round(rng.uniform(0.0, 9.0, (7, 6, 5)), 1).astype(np.float32)  # many ties
  values[6] = rng.uniform(1e-3, 80.0, (6, 5)).astype(np.float32)
  mask = rng.uniform(size=values.shape) < 0.6
  mask[0] = False
  mask[0, 0, 0] = True  # count 1
  mask[1] = False
  mask[1, 2, :2] = True  # count 2
  mask[2] = False
  mask[2, 1, 1:4] = True  # count 3
  mask[3] = True  # count 30 (even)
  mask[4] = False  # count 0 -> 0
  values[5, 0, 0] = 0.0  # a zero depth counts like any value
  mask[5, 0, 0] = True
  got = M.protocol._masked_median_tf(tf.constant(values), tf.constant(mask)).numpy()
  for b in range(7):
    expected = np.median(values[b][mask[b]]) if mask[b].any() else np.float32(0.0)
    assert got[b] == expected, (b, got[b], expected)
