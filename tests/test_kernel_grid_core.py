"""The kernel grid core against plain NumPy references: grid sums, interpolation, fused grid solve."""

from __future__ import annotations

import cvxpy as cp
import numpy as np
import pytest
from scipy.interpolate import RegularGridInterpolator

from grid_helpers import reference_sums
from hetmtl.fusion import fused_solve
from hetmtl.fusion.kernel_grid_core import fused_grid_solve, grid_interpolate, grid_sums


def _axes(rng, d, sizes=(7, 5, 4)):
    """Non-uniform axes spanning [0, 1] exactly."""
    out = []
    for j in range(d):
        a = np.sort(rng.uniform(0.05, 0.95, sizes[j] - 2))
        out.append(np.concatenate([[0.0], a, [1.0]]))
    return out


@pytest.mark.parametrize("d", [1, 2, 3])
@pytest.mark.parametrize("kernel", ["gaussian", "epanechnikov"])
@pytest.mark.parametrize("fit", ["constant", "linear"])
def test_grid_sums_match_numpy(d, kernel, fit):
    rng = np.random.default_rng(10 * d + len(kernel) + len(fit))
    n, F = 400, 3
    X = rng.uniform(0, 1, (n, d))
    Y = rng.normal(size=(n, 2))
    folds = rng.permutation(np.arange(n) % F)
    axes = _axes(rng, d)
    h = rng.uniform(0.1, 0.4, d)
    res = grid_sums(X, Y, axes, h, folds=folds, kernel=kernel, fit=fit, support=2.0)
    M, V, count = reference_sums(X, Y, folds, F, axes, h, kernel, fit, 2.0)
    P = 1 if fit == "constant" else d + 1
    G = int(np.prod([a.size for a in axes]))
    assert res.M.shape == (F, G, P, P) and res.V.shape == (F, G, P, 2)
    np.testing.assert_allclose(res.M, M, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(res.V, V, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(res.count, count)


def test_grid_sums_threads_and_defaults():
    rng = np.random.default_rng(3)
    X = rng.uniform(-1, 2, (3000, 2))
    y = rng.normal(size=3000)
    axes = [np.linspace(-1, 2, 9), np.linspace(-1, 2, 6)]
    one = grid_sums(X, y, axes, 0.3, n_threads=1)
    two = grid_sums(X, y, axes, 0.3, n_threads=2)
    np.testing.assert_allclose(one.M, two.M, rtol=1e-12)
    np.testing.assert_allclose(one.V, two.V, rtol=1e-12)
    assert one.M.shape[0] == 1 and one.V.shape[-1] == 1  # one fold, one target by default
    # Gaussian with k(0) = 1: S0 never exceeds the number of rows, and the whole sum matches.
    M, V, _ = reference_sums(X, y[:, None], np.zeros(3000, int), 1, axes, np.array([0.3, 0.3]),
                             "gaussian", "constant", 3.0)
    np.testing.assert_allclose(one.M, M, rtol=1e-12)


@pytest.mark.parametrize("d", [1, 2, 3])
def test_interpolation_matches_scipy(d):
    rng = np.random.default_rng(d)
    axes = _axes(rng, d)
    shape = tuple(a.size for a in axes)
    values = rng.normal(size=shape + (2,))
    X = rng.uniform(0, 1, (500, d))
    X[:3] = [a[[0, -1, 1][i % 3]] for i, a in enumerate(axes)]  # grid nodes and corners
    ours = grid_interpolate(axes, values.reshape(-1, 2), X)
    ref = np.stack([RegularGridInterpolator(axes, values[..., t])(X) for t in range(2)], -1)
    np.testing.assert_allclose(ours, ref, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(grid_interpolate(axes, values[..., 0].ravel(), X), ref[:, 0], rtol=1e-12,
                               atol=1e-13)


def test_interpolation_skips_missing_values():
    axes = [np.array([0.0, 1.0, 2.0])]
    values = np.array([1.0, np.nan, 3.0])
    out = grid_interpolate(axes, values, np.array([[0.25], [1.0], [1.5], [2.0]]))
    # In [0, 1] only the left corner remains; the node itself is missing; in [1, 2] the right one.
    np.testing.assert_allclose(out[[0, 2, 3]], [1.0, 3.0, 3.0])
    assert np.isnan(out[1])


def _random_grid_problem(rng, K=6, G=8, missing=0.0):
    D = rng.uniform(0.5, 3.0, (K, G))
    D[rng.uniform(size=(K, G)) < missing] = 0.0
    theta_hat = np.sin(np.linspace(0, 3, G))[None] + 0.3 * rng.normal(size=(K, G))
    theta_hat[: K // 3] += 1.5  # some outlying functions
    n = rng.integers(50, 300, K).astype(float)
    return D, theta_hat, n


def test_fused_grid_function_penalty_equals_dense_solver():
    rng = np.random.default_rng(0)
    D, theta_hat, n = _random_grid_problem(rng)
    W = np.stack([np.diag(row) for row in D])
    for lam in (0.0, 0.05, 0.5, 50.0):
        ours = fused_grid_solve(D, theta_hat, n, lam)
        ref = fused_solve(theta_hat, W, n, lam)
        np.testing.assert_allclose(ours.theta, ref.theta, atol=1e-7)
        np.testing.assert_allclose(ours.center, ref.center, atol=1e-7)
        np.testing.assert_array_equal(ours.fused, ref.fused)
    np.testing.assert_allclose(fused_grid_solve(D, theta_hat, n, 0.0).theta, theta_hat, atol=1e-9)


def test_fused_grid_pointwise_equals_scalar_problems():
    rng = np.random.default_rng(1)
    D, theta_hat, n = _random_grid_problem(rng)
    lam = 0.2
    ours = fused_grid_solve(D, theta_hat, n, lam, penalty="pointwise", n_threads=2)
    for g in range(D.shape[1]):
        ref = fused_solve(theta_hat[:, g], D[:, g], n, lam)
        np.testing.assert_allclose(ours.theta[:, g], ref.theta[:, 0], atol=1e-7)
        np.testing.assert_allclose(ours.center[g], ref.center[0], atol=1e-7)


@pytest.mark.parametrize("penalty", ["function", "pointwise"])
def test_fused_grid_missing_values_against_cvxpy(penalty):
    rng = np.random.default_rng(2)
    D, theta_hat, n = _random_grid_problem(rng, K=5, G=6, missing=0.3)
    D[:, 0] = 0.0  # a grid point no site released
    D[0, 1:] = np.maximum(D[0, 1:], 0.5)
    lam = 0.3
    ours = fused_grid_solve(D, theta_hat, n, lam, penalty=penalty)
    assert np.all(np.isnan(ours.theta[:, 0])) and np.isnan(ours.center[0])
    K, G = D.shape
    a = cp.Variable((K, G - 1))
    u = cp.Variable(G - 1)
    loss = sum(0.5 * n[k] * cp.sum(cp.multiply(D[k, 1:], cp.square(a[k] - theta_hat[k, 1:]))) for k in range(K))
    w = np.sqrt(n)
    if penalty == "function":
        pen = sum(w[k] * cp.norm(a[k] - u, 2) for k in range(K))
    else:
        pen = sum(w[k] * cp.norm(a[k] - u, 1) for k in range(K))
    prob = cp.Problem(cp.Minimize(loss + lam * pen))
    prob.solve(solver=cp.CLARABEL)

    def objective(A, U):
        r = A - theta_hat[:, 1:]
        P = np.linalg.norm(A - U, axis=1) if penalty == "function" else np.abs(A - U).sum(1)
        return 0.5 * np.sum(n[:, None] * D[:, 1:] * r ** 2) + lam * w @ P

    # Unreleased coordinates are not identified by the loss; compare objectives, and values where
    # the site has weight.
    assert objective(ours.theta[:, 1:], ours.center[1:]) <= objective(a.value, u.value) + 1e-7
    has = D[:, 1:] > 0
    np.testing.assert_allclose(ours.theta[:, 1:][has], a.value[has], atol=1e-4)


def test_errors_name_the_problem():
    rng = np.random.default_rng(0)
    X = rng.uniform(0, 1, (50, 2))
    y = rng.normal(size=50)
    axes = [np.linspace(0, 1, 5)] * 2
    folds = np.arange(50) % 3
    with pytest.raises(ValueError, match="X: row 7 lies outside the grid's range"):
        Xo = X.copy()
        Xo[7, 1] = 1.5
        grid_sums(Xo, y, axes, 0.2)
    with pytest.raises(ValueError, match="folds: fold 3 has no rows"):
        grid_sums(X, y, axes, 0.2, folds=folds, n_folds=4)
    with pytest.raises(ValueError, match="folds: row 0 has a fold label outside"):
        grid_sums(X, y, axes, 0.2, folds=-folds - 1, n_folds=3)
    for bad in (0.0, -1.0, np.nan):
        with pytest.raises(ValueError, match="bandwidth: entry 1 must be a finite positive"):
            grid_sums(X, y, axes, [0.2, bad])
    Xn = X.copy()
    Xn[4, 0] = np.nan
    with pytest.raises(ValueError, match="X: row 4 contains NaN"):
        grid_sums(Xn, y, axes, 0.2)
    yn = y.copy()
    yn[9] = np.inf
    with pytest.raises(ValueError, match="Y: row 9 contains NaN"):
        grid_sums(X, yn, axes, 0.2)
    with pytest.raises(ValueError, match="axes\\[1\\]: needs at least 2 strictly increasing"):
        grid_sums(X, y, [axes[0], axes[1][::-1]], 0.2)
    with pytest.raises(ValueError, match="X: expected shape \\(n, 3\\)"):
        grid_sums(X, y, [axes[0]] * 3, 0.2)
    with pytest.raises(ValueError, match="kernel: must be one of"):
        grid_sums(X, y, axes, 0.2, kernel="box")
    with pytest.raises(ValueError, match="X: row 2 lies outside"):
        grid_interpolate(axes, np.zeros(25), np.vstack([X[:2], [[2.0, 0.5]]]))
    with pytest.raises(ValueError, match="values: expected 25 rows"):
        grid_interpolate(axes, np.zeros(24), X)
    with pytest.raises(ValueError, match="D: all values must be non-negative"):
        fused_grid_solve(-np.ones((2, 3)), np.zeros((2, 3)), [10, 10], 0.1)
    with pytest.raises(ValueError, match="D: no grid point has positive weight"):
        fused_grid_solve(np.zeros((2, 3)), np.zeros((2, 3)), [10, 10], 0.1)
    with pytest.raises(ValueError, match="penalty: must be one of"):
        fused_grid_solve(np.ones((2, 3)), np.zeros((2, 3)), [10, 10], 0.1, penalty="l2")
