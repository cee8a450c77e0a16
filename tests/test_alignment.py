"""Tests of tfdepth.alignment: median scaling and least-squares scale-and-shift in disparity."""

import numpy as np
import pytest

from tfdepth import alignment
from tfdepth.errors import InvalidInputError


def _scene(seed=0, shape=(24, 32)):
  return np.random.default_rng(seed).uniform(1.0, 50.0, size=shape)


def test_median_recovers_known_scale_exactly():
  gt = _scene()
  pred = gt / 3.7  # a relative prediction off by a global scale
  sparse = np.zeros_like(gt)
  sparse[::5, ::7] = gt[::5, ::7]  # a sparse metric reference
  result = alignment.align_median(pred, sparse)
  # The ratio of medians of gt and gt / 3.7 is 3.7 up to float64 round-off (a few ulp).
  assert result.scale == pytest.approx(3.7, rel=1e-12)
  np.testing.assert_allclose(result.depth, gt, rtol=1e-6)  # float32 output: rel 6e-8 per value
  assert result.num_points == sparse[::5, ::7].size
  assert result.to_metadata()["depth_type"] == alignment.DEPTH_TYPE_METRIC


def test_median_hand_computed():
  pred = np.array([[1.0, 2.0], [4.0, 0.0]])
  ref = np.array([[3.0, 0.0], [10.0, 5.0]])
  # Valid pairs: (1, 3) and (4, 10) (ref 0 and pred 0 are excluded): ratio = 6.5 / 2.5 = 2.6.
  result = alignment.align_median(pred, ref)
  assert result.scale == pytest.approx(2.6, rel=1e-15)
  np.testing.assert_allclose(result.depth, [[2.6, 5.2], [10.4, 0.0]], rtol=1e-7)
  assert result.num_points == 2


def test_scale_shift_recovers_known_scale_and_shift_exactly():
  gt = _scene(1)
  # 1/pred = (1/gt - t) / s, i.e. 1/gt = s/pred + t; t < 1/50 keeps every pred positive.
  s_true, t_true = 0.4, 0.01
  pred = 1.0 / ((1.0 / gt - t_true) / s_true)
  sparse = np.zeros_like(gt)
  sparse[3::6, 1::9] = gt[3::6, 1::9]
  result = alignment.align_scale_shift(pred, sparse)
  # Noise-free linear data: the closed-form least squares is exact up to float64 round-off.
  assert result.scale == pytest.approx(s_true, rel=1e-10)
  assert result.shift == pytest.approx(t_true, abs=1e-12)
  assert result.rms_residual < 1e-12
  np.testing.assert_allclose(result.depth, gt, rtol=1e-6)  # float32 output


def test_fit_scale_shift_hand_computed():
  # Three points, not collinear: x̄ = 1, ȳ = 10/3.
  x = np.array([0.0, 1.0, 2.0])
  y = np.array([1.0, 3.0, 6.0])
  s, t = alignment.fit_scale_shift(x, y)
  # cov(x, y) = ((-1)(-7/3) + 0 + (1)(8/3)) / 3 = 5/3, var(x) = 2/3 -> s = 2.5,
  # t = ȳ - s·x̄ = 10/3 - 2.5 = 5/6. Tolerance: a few float64 ulp.
  assert s == pytest.approx(2.5, rel=1e-14)
  assert t == pytest.approx(5.0 / 6.0, rel=1e-14)


def test_scale_shift_clamps_far_and_keeps_invalid():
  pred = np.array([[1.0, 2.0, 100.0, 0.0]])
  ref = np.array([[0.5, 0.8, 0.0, 0.0]])
  # Two points: disparities 1 -> 2 and 0.5 -> 1.25 give s = 0.75 / 0.5 = 1.5, t = 2 - 1.5 = 0.5;
  # pred 100 gives 0.015 + 0.5 = 0.515 -> 1/0.515 m; pred 0 stays invalid (0).
  result = alignment.align_scale_shift(pred, ref, max_depth=10.0)
  assert result.scale == pytest.approx(1.5, rel=1e-14)
  assert result.shift == pytest.approx(0.5, rel=1e-14)
  np.testing.assert_allclose(result.depth, [[0.5, 0.8, 1.0 / 0.515, 0.0]], rtol=1e-7)
  # A fit whose disparity goes negative is clamped to 1 / max_depth -> depth max_depth.
  far = alignment.align_scale_shift(np.array([[1.0, 2.0, 8.0]]), np.array([[1.0, 3.0, 0.0]]),
                                    max_depth=10.0)
  # s, t from (1 -> 1), (0.5 -> 1/3): s = 4/3, t = -1/3; 1/8 -> 1/6 - 1/3 < 0 -> 10 m.
  assert far.depth[0, 2] == pytest.approx(10.0, rel=1e-7)


def test_scale_shift_refuses_a_non_positive_scale():
  # Audit case: pred increases left to right but the two references say the nearer pixel is
  # farther. Disparities x = [1/2, 1/4] -> y = [1/10, 1/9]: s = (1/10 - 1/9) / (1/4) = -2/45 < 0,
  # which would map pred 8 and 16 to 8.57 m and 8.37 m (order reversed) labelled "metric".
  pred = np.array([[2.0, 4.0, 8.0, 16.0]])
  ref = np.array([[10.0, 9.0, 0.0, 0.0]])
  with pytest.raises(InvalidInputError,
                     match=r"s = -0\.0444.*from 2 reference pixels.*expected s > 0.*disparity.*'median'"):
    alignment.align_scale_shift(pred, ref)
  with pytest.raises(InvalidInputError, match="expected s > 0"):
    alignment.align(pred, ref, alignment.METHOD_SCALE_SHIFT)
  # The suggested alternative works on the same data: ratio = median(10, 9) / median(2, 4) = 9.5/3.
  assert alignment.align_median(pred, ref).scale == pytest.approx(9.5 / 3.0, rel=1e-15)
  # A disparity map passed as depth (MiDaS output): the fitted scale is negative as well.
  depth = np.array([[2.0, 4.0, 8.0, 16.0]])
  with pytest.raises(InvalidInputError, match=r"s = -0\.026"):
    alignment.align_scale_shift(1.0 / depth, depth)
  # s = 0 exactly (x = [1, 2, 3], y = [1, 2, 1]: cov = 0) would flatten the map to 1/t: refused.
  with pytest.raises(InvalidInputError, match=r"s = 0\.0 "):
    alignment.align_scale_shift(np.array([[1.0, 0.5, 1.0 / 3.0]]), np.array([[1.0, 0.5, 1.0]]))


def test_sparse_depth_from_points_and_alignment():
  gt = _scene(2, (10, 12))
  pred = gt * 0.25
  pts = [(0, 0, gt[0, 0]), (11, 9, gt[9, 11]), (5, 4, gt[4, 5])]
  sparse = alignment.sparse_depth_from_points(pts, 10, 12)
  assert np.count_nonzero(sparse) == 3 and sparse[9, 11] == np.float32(gt[9, 11])
  result = alignment.align(pred, sparse, alignment.METHOD_MEDIAN)
  # float32 storage of the points: relative error <= 6e-8.
  assert result.scale == pytest.approx(4.0, rel=1e-7)


def test_errors_name_values():
  with pytest.raises(InvalidInputError, match="at least 2"):
    alignment.align_scale_shift(np.ones((2, 2)), np.array([[1.0, 0], [0, 0]]))
  with pytest.raises(InvalidInputError, match="different predicted disparities"):
    alignment.align_scale_shift(np.ones((2, 2)), np.full((2, 2), 3.0))
  with pytest.raises(InvalidInputError, match=r"\(3, 3\)"):
    alignment.align_median(np.ones((2, 2)), np.ones((3, 3)))
  with pytest.raises(InvalidInputError, match="0 <= u < 4"):
    alignment.sparse_depth_from_points([(4, 0, 1.0)], 3, 4)
  with pytest.raises(InvalidInputError, match="positive"):
    alignment.sparse_depth_from_points([(1, 0, -1.0)], 3, 4)
  with pytest.raises(InvalidInputError, match="bogus"):
    alignment.align(np.ones((2, 2)), np.ones((2, 2)), "bogus")
  none = alignment.align(np.full((2, 2), 2.0), None, alignment.METHOD_NONE)
  assert none.depth_type is None and none.scale == 1.0
