"""Gaussian kernel factors on equally spaced axes: the core's multiplicative recurrence (three exps
per row and axis) against extended-precision values, the exact path and the NumPy reference."""

from __future__ import annotations

import numpy as np
import pytest

from grid_helpers import reference_sums
from hetmtl import _core
from hetmtl.fusion.kernel_grid_core import grid_options


def core_sums(X, Y, folds, F, axes, h, *, recurrence, kernel="gaussian", fit="constant", support=3.0,
              n_threads=1):
    """The core's grid sums with the recurrence allowed or not (a core option only)."""
    opt = grid_options(kernel, fit, support, n_threads)
    opt.gauss_recurrence = recurrence
    h = np.ascontiguousarray(np.broadcast_to(np.asarray(h, float), (len(axes),)))
    res = _core.grid_sums(np.ascontiguousarray(X, float), np.ascontiguousarray(Y, float),
                          np.ascontiguousarray(folds, np.int32), F, [np.ascontiguousarray(a, float) for a in axes],
                          h, opt)
    assert res.status == _core.GridStatus.ok
    return res


def row_factors(x, axis, h, recurrence=True):
    """Each row in its own fold on a one-dimensional grid: S0 of fold i is row i's factors."""
    n = x.size
    res = core_sums(x[:, None], np.ones((n, 1)), np.arange(n), n, [axis], h, recurrence=recurrence)
    return res.M[:, :, 0, 0]


def extended_factors(x, axis, h):
    """exp(-u^2 / 2) in extended precision (np.longdouble: 64-bit mantissa on x86)."""
    u = (x[:, None].astype(np.longdouble) - axis[None].astype(np.longdouble)) / np.longdouble(h)
    return np.exp(-u * u / 2)


def awkward_rows(rng, axis, n=200):
    """Random rows plus the awkward ones: every node, every midpoint, both ends."""
    mid = (axis[1:] + axis[:-1]) / 2
    return np.concatenate([rng.uniform(axis[0], axis[-1], n), axis, mid, [axis[0], axis[-1]]])


# (points, spacing / bandwidth): the benchmark's grid, bandwidths from 1000x the spacing down to
# 1/1000 of it, the longest walk (65 points) and the widest eligible spacing ((m + 3) delta = 37).
CASES = [(20, 0.526), (20, 0.001), (20, 1.6), (21, 1000.0), (65, 0.5), (2, 3.0), (5, 4.6), (40, 0.02)]


@pytest.mark.parametrize("m, delta", CASES)
def test_factors_match_extended_precision(m, delta):
    rng = np.random.default_rng(m)
    axis = np.linspace(-2.0, 3.0, m)
    h = (axis[1] - axis[0]) / delta
    x = awkward_rows(rng, axis)
    ours = row_factors(x, axis, h)
    ref = extended_factors(x, axis, h)
    # Relative error bound of the recurrence: about (2k + u^2 + 4) eps for a point k steps from the
    # row's nearest node (k <= 64), plus 2 |u| 2^-46 from the axis' rounding; the exact path has the
    # u^2 eps part too. Values above 1e-12 (|u| < 7.5): below 1e-13. Down to 1e-300 (|u| up to 37):
    # u^2 eps ~ 3e-13 on both paths, so 1e-12.
    ref64 = ref.astype(float)
    big, small = ref > 1e-12, ref > 1e-300
    assert np.max(np.abs(ours[big] - ref64[big]) / ref64[big]) <= 1e-13
    assert np.max(np.abs(ours[small] - ref64[small]) / ref64[small]) <= 1e-12
    assert np.all(ours[ref <= 1e-300] <= 1e-290)  # beyond 37 bandwidths: 0 (or as tiny as the truth)
    np.testing.assert_array_equal(ours[np.arange(m) + 200, np.arange(m)], 1.0)  # k(0) = 1 at a node


def test_recurrence_is_used_and_agrees_with_the_exact_path():
    rng = np.random.default_rng(1)
    axis = np.linspace(0.0, 1.0, 20)
    x = awkward_rows(rng, axis)
    rec, exact = row_factors(x, axis, 0.1), row_factors(x, axis, 0.1, recurrence=False)
    assert np.any(rec != exact)  # the option switches the path on this axis
    np.testing.assert_allclose(rec, exact, rtol=1e-13, atol=1e-300)


@pytest.mark.parametrize("d", [1, 2, 3])
@pytest.mark.parametrize("fit", ["constant", "linear"])
def test_uniform_axes_match_numpy_and_the_exact_path(d, fit):
    rng = np.random.default_rng(10 * d + len(fit))
    n, F = 400, 3
    axes = [np.linspace(-1.0, 2.0, k) for k in (9, 7, 5)[:d]]
    X = rng.uniform(-1.0, 2.0, (n, d))
    Y = rng.normal(size=(n, 2))
    folds = rng.permutation(np.arange(n) % F)
    h = np.array([0.4, 0.6, 1.1])[:d]  # spacing / bandwidth 0.94, 0.83, 0.68: the recurrence applies
    rec = core_sums(X, Y, folds, F, axes, h, recurrence=True, fit=fit, support=2.0)
    exact = core_sums(X, Y, folds, F, axes, h, recurrence=False, fit=fit, support=2.0)
    M, V, count = reference_sums(X, Y, folds, F, axes, h, "gaussian", fit, 2.0)
    np.testing.assert_allclose(rec.M, M, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(rec.V, V, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(rec.count, count)
    np.testing.assert_array_equal(exact.count, count)
    assert np.any(rec.M != exact.M)
    # Sums of factors that agree to ~3e-14: positive sums (S0) to 1e-13 relative, signed ones
    # (S1, offsets) to 1e-13 of their scale.
    for key in ("M", "V"):
        np.testing.assert_allclose(getattr(rec, key), getattr(exact, key), rtol=1e-13,
                                   atol=1e-13 * np.abs(getattr(exact, key)).max())


@pytest.mark.parametrize("axis, h", [
    (np.linspace(0.0, 1.0, 20) + np.r_[0.0, 1e-7, np.zeros(18)], 0.1),  # not equally spaced
    (np.linspace(0.0, 1.0, 20), 0.01),      # spacing 5.3 bandwidths: the walk would pass 37
    (np.linspace(1000.0, 1001.0, 20), 0.1),  # coordinates' rounding too large for the bandwidth
    (np.linspace(0.0, 1.0, 70), 0.5),       # a walk longer than 64 steps
])
def test_other_axes_take_the_exact_path(axis, h):
    rng = np.random.default_rng(2)
    x = awkward_rows(rng, axis)
    rec = row_factors(x, axis, h)
    np.testing.assert_array_equal(rec, row_factors(x, axis, h, recurrence=False))
    ref = extended_factors(x, axis, h).astype(float)
    big = ref > 1e-12
    assert np.max(np.abs(rec[big] - ref[big]) / ref[big]) <= 1e-13


def test_row_far_outside_the_bulk():
    # Most rows near one corner of a wide grid; two rows at the far edge, alone in their region.
    rng = np.random.default_rng(3)
    axes = [np.linspace(-5.0, 5.0, 41)] * 2  # spacing / bandwidth 0.83: (41 + 3) * 0.83 < 37
    X = np.vstack([rng.uniform(-5.0, -4.5, (300, 2)), [[5.0, 5.0], [5.0, -5.0]]])
    Y = np.vstack([rng.uniform(1.0, 2.0, (300, 1)), [[5.0], [3.0]]])  # positive: sums without cancellation
    folds = np.zeros(len(X), int)
    rec = core_sums(X, Y, folds, 1, axes, 0.3, recurrence=True)
    exact = core_sums(X, Y, folds, 1, axes, 0.3, recurrence=False)
    assert np.any(rec.M != exact.M)
    M, V, count = reference_sums(X, Y, folds, 1, axes, np.array([0.3, 0.3]), "gaussian", "constant", 3.0)
    # Grid points near the far rows see only them and the far tails of the bulk's factors (down to
    # 1e-290): every sum must be accurate relative to its own size, however small.
    np.testing.assert_allclose(rec.M, M, rtol=1e-12, atol=1e-290)
    np.testing.assert_allclose(rec.V, V, rtol=1e-12, atol=1e-290)
    np.testing.assert_array_equal(rec.count, count)
    corner = 40 * 41 + 40  # grid point (5, 5): the far row alone, k(0) = 1
    assert rec.M[0, corner, 0, 0] == 1.0 and rec.V[0, corner, 0, 0] == 5.0


@pytest.mark.parametrize("fit", ["constant", "linear"])
def test_epanechnikov_ignores_the_recurrence(fit):
    rng = np.random.default_rng(4)
    axes = [np.linspace(0.0, 1.0, 11), np.linspace(0.0, 1.0, 6)]
    X = rng.uniform(0.0, 1.0, (300, 2))
    Y = rng.normal(size=(300, 1))
    folds = np.arange(300) % 2
    on = core_sums(X, Y, folds, 2, axes, 0.25, recurrence=True, kernel="epanechnikov", fit=fit)
    off = core_sums(X, Y, folds, 2, axes, 0.25, recurrence=False, kernel="epanechnikov", fit=fit)
    for key in ("M", "V", "count"):
        np.testing.assert_array_equal(getattr(on, key), getattr(off, key))
    M, V, count = reference_sums(X, Y, folds, 2, axes, np.array([0.25, 0.25]), "epanechnikov", fit, 1.0)
    np.testing.assert_allclose(on.M, M, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(on.V, V, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(on.count, count)


def test_threads_agree_on_uniform_axes():
    rng = np.random.default_rng(5)
    axes = [np.linspace(0.0, 1.0, 12), np.linspace(0.0, 1.0, 8)]
    X = rng.uniform(0.0, 1.0, (3000, 2))
    Y = rng.normal(size=(3000, 1))
    folds = np.arange(3000) % 4
    one = core_sums(X, Y, folds, 4, axes, 0.15, recurrence=True, n_threads=1)
    two = core_sums(X, Y, folds, 4, axes, 0.15, recurrence=True, n_threads=2)
    np.testing.assert_allclose(one.M, two.M, rtol=1e-12)
    np.testing.assert_allclose(one.V, two.V, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(one.count, two.count)
