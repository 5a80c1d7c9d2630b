"""The compiled proximal building blocks against NumPy references, optimality conditions and
CVXPY (head problem)."""

from __future__ import annotations

import numpy as np
import pytest

from hetmtl.prox import (
    ProxConvergenceWarning,
    geometric_median,
    group_soft_threshold,
    project_l2_ball,
    solve_heads,
)


def ref_soft(V, tau, c):
    D = V - c
    norm = np.linalg.norm(D, axis=1, keepdims=True)
    scale = np.maximum(0.0, 1.0 - np.asarray(tau)[:, None] / np.maximum(norm, 1e-300))
    return c + scale * D


def ref_ball(V, r, c):
    D = V - c
    norm = np.linalg.norm(D, axis=1, keepdims=True)
    return c + D * np.minimum(1.0, np.asarray(r)[:, None] / np.maximum(norm, 1e-300))


# --------------------------------------------------------------------------- row-wise proxes

def test_group_soft_threshold_matches_numpy():
    rng = np.random.default_rng(1)
    V, c = rng.normal(size=(40, 6)), rng.normal(size=6)
    tau = rng.uniform(0, 4, size=40)
    tau[:3] = 0.0
    tau[3] = np.inf
    out = group_soft_threshold(V, tau, c)
    np.testing.assert_allclose(out, ref_soft(V, tau, c), rtol=1e-13, atol=1e-13)
    # rows with tau >= distance land exactly on the center
    hit = np.linalg.norm(V - c, axis=1) <= tau
    assert hit.sum() > 3
    assert np.all(out[hit] == c)
    np.testing.assert_allclose(out[:3], V[:3], rtol=1e-14, atol=1e-15)


def test_group_soft_threshold_is_the_prox():
    # prox optimality: (v - out) / tau is a subgradient of ||. - c|| at out
    rng = np.random.default_rng(2)
    V, c, tau = rng.normal(size=(20, 4)), rng.normal(size=4), rng.uniform(0.1, 2, size=20)
    out = group_soft_threshold(V, tau, c)
    g = (V - out) / tau[:, None]
    d = out - c
    nd = np.linalg.norm(d, axis=1)
    moved = nd > 0
    np.testing.assert_allclose(g[moved], d[moved] / nd[moved, None], rtol=1e-10, atol=1e-12)
    assert np.all(np.linalg.norm(g[~moved], axis=1) <= 1 + 1e-12)


def test_project_l2_ball_matches_numpy():
    rng = np.random.default_rng(3)
    V, c = 3 * rng.normal(size=(30, 5)), rng.normal(size=5)
    r = rng.uniform(0, 5, size=30)
    r[0] = np.inf
    r[1] = 0.0
    out = project_l2_ball(V, r, c)
    np.testing.assert_allclose(out, ref_ball(V, r, c), rtol=1e-13, atol=1e-13)
    assert np.all(np.linalg.norm(out - c, axis=1) <= r * (1 + 1e-14))
    np.testing.assert_array_equal(out[1], c)
    one = project_l2_ball(V[2], 0.5)
    assert one.shape == (5,)
    np.testing.assert_allclose(np.linalg.norm(one), min(0.5, np.linalg.norm(V[2])))


@pytest.mark.parametrize("bad, match", [
    (dict(tau=-1.0), "tau: must be non-negative"),
    (dict(tau=np.nan), "tau: contains NaN"),
    (dict(tau=np.ones(3)), r"tau: expected a scalar or shape \(4,\)"),
    (dict(tau=1.0, center=np.ones(3)), r"center: expected shape \(2,\)"),
])
def test_row_prox_errors(bad, match):
    V = np.ones((4, 2))
    with pytest.raises(ValueError, match=match):
        group_soft_threshold(V, **bad)


def test_prox_rejects_nan_rows():
    with pytest.raises(ValueError, match="V: contains 1 NaN"):
        project_l2_ball(np.array([[1.0, np.nan]]), 1.0)


# --------------------------------------------------------------------------- geometric median

def geomedian_residual(x, P, w):
    """Distance of zero from the subdifferential of sum w_i ||x - p_i||, over sum w."""
    d = np.linalg.norm(P - x, axis=1)
    at = d <= 1e-12
    g = ((x - P[~at]) / d[~at, None] * w[~at, None]).sum(axis=0)
    return max(0.0, np.linalg.norm(g) - w[at].sum()) / w.sum()


@pytest.mark.parametrize("seed", range(4))
def test_geometric_median_optimality(seed):
    rng = np.random.default_rng(seed)
    P = rng.standard_t(2, size=(25, 3))
    w = rng.uniform(0.1, 3, size=25)
    x = geometric_median(P, w)
    assert geomedian_residual(x, P, w) < 1e-8
    obj = lambda z: float(w @ np.linalg.norm(P - z, axis=1))  # noqa: E731
    for _ in range(20):  # no nearby point is better
        assert obj(x) <= obj(x + 1e-4 * rng.normal(size=3)) + 1e-12


def test_geometric_median_one_dimension_is_weighted_median():
    P = np.array([[0.0], [1.0], [2.0], [10.0], [11.0]])
    assert geometric_median(P)[0] == 2.0
    assert geometric_median(P, [1, 1, 1, 5, 1])[0] == 10.0


def test_geometric_median_at_a_heavy_data_point():
    # the weighted mean starts on (0, 0), which is also the optimum (Weiszfeld would divide by 0)
    P = np.array([[0.0, 0.0], [1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])
    np.testing.assert_array_equal(geometric_median(P), [0.0, 0.0])
    # the mean is (0.2, 0.2), the optimum the heavy point (0, 0): reached exactly
    P2 = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    np.testing.assert_array_equal(geometric_median(P2, [3.0, 1.0, 1.0]), [0.0, 0.0])


def test_geometric_median_leaves_a_light_data_point():
    # a light point sits on the weighted mean (the start) but is not optimal
    P = np.array([[3.0, 0.0], [-3.0, 0.0], [0.0, 4.0], [2.0, 2.0], [-2.0, -1.0]])
    w = np.array([1.0, 1.0, 1.0, 4.0, 1.0])
    mean = w @ P / w.sum()
    P, w = np.vstack([mean, P]), np.r_[0.01, w]
    x = geometric_median(P, w)
    assert np.linalg.norm(x - mean) > 1e-2
    assert geomedian_residual(x, P, w) < 1e-8


def test_geometric_median_coincident_and_zero_weights():
    P = np.array([[1.0, 2.0]] * 4 + [[5.0, 5.0]])
    np.testing.assert_array_equal(geometric_median(P), [1.0, 2.0])
    np.testing.assert_array_equal(geometric_median(P, [0, 0, 0, 0, 1]), [5.0, 5.0])


def test_geometric_median_errors_and_warning():
    with pytest.raises(ValueError, match="weights: must not all be zero"):
        geometric_median(np.ones((3, 2)), np.zeros(3))
    with pytest.raises(ValueError, match="points: contains 1 NaN"):
        geometric_median(np.array([[np.nan, 1.0]]))
    rng = np.random.default_rng(0)
    with pytest.warns(ProxConvergenceWarning, match="max_iter"):
        geometric_median(rng.normal(size=(30, 3)), max_iter=1, tol=1e-14)


# --------------------------------------------------------------------------- head problem

def make_heads_problem(seed, sizes=(15, 25, 8, 40), q=3, p=4):
    rng = np.random.default_rng(seed)
    N = int(np.sum(sizes))
    Z, H = rng.normal(size=(N, q)), rng.normal(size=(N, p)) + 0.5
    beta0 = rng.normal(size=p)
    task = np.repeat(np.arange(len(sizes)), sizes)
    betas = beta0 + 0.3 * rng.normal(size=(len(sizes), p))
    y = (H * betas[task]).sum(1) + Z @ rng.normal(size=q) + rng.normal(size=N) + task
    return Z, H, y, np.asarray(sizes), task, beta0


def cvxpy_heads(Z, H, y, task, w, pen_a, pen_b, ca, cb, form_a, form_b):
    cp = pytest.importorskip("cvxpy")
    R = task.max() + 1
    q, p = Z.shape[1], H.shape[1]
    A, B, b = cp.Variable((R, q)), cp.Variable((R, p)), cp.Variable(R)
    obj, cons = 0, []

    def pen(v, c, lev, form):
        if form == "l2":
            return lev * cp.norm(v - c, 2)
        if form == "l2sq":
            return lev / 2 * cp.sum_squares(v - c)
        if form == "ball":
            cons.append(cp.norm(v - c, 2) <= lev)
        return 0

    for r in range(R):
        m = task == r
        res = y[m] - Z[m] @ A[r] - H[m] @ B[r] - b[r]
        obj += w[r] / m.sum() * cp.sum_squares(res)
        obj += pen(B[r], cb, pen_b[r], form_b) + pen(A[r], ca, pen_a[r], form_a)
    prob = cp.Problem(cp.Minimize(obj), cons)
    prob.solve(solver=cp.CLARABEL, tol_gap_abs=1e-9, tol_gap_rel=1e-9, tol_feas=1e-9)
    return A.value, B.value, b.value, prob.value


def head_objective(fit, Z, H, y, task, w, pen_a, pen_b, ca, cb, form_a, form_b):
    pred = (Z * fit.alpha[task]).sum(1) + (H * fit.beta[task]).sum(1) + fit.intercept[task]
    n = np.bincount(task)
    obj = float(np.sum(w[task] / n[task] * (y - pred) ** 2))
    for V, c, lev, form in ((fit.beta, cb, pen_b, form_b), (fit.alpha, ca, pen_a, form_a)):
        d = np.linalg.norm(V - c, axis=1)
        obj += float(lev @ d) if form == "l2" else float(lev @ d**2) / 2 if form == "l2sq" else 0.0
    return obj


@pytest.mark.parametrize("form_b, form_a", [("l2", "none"), ("l2", "l2"), ("l2sq", "l2sq"),
                                            ("ball", "none"), ("l2", "ball")])
@pytest.mark.parametrize("seed", [0, 1])
def test_solve_heads_matches_cvxpy(seed, form_b, form_a):
    Z, H, y, sizes, task, beta0 = make_heads_problem(seed)
    R = sizes.size
    rng = np.random.default_rng(100 + seed)
    w = rng.uniform(0.5, 2, size=R)
    pen_b = rng.uniform(0.05, 0.6, size=R)
    pen_a = rng.uniform(0.05, 0.6, size=R)
    cb, ca = beta0 + 0.1, rng.normal(size=Z.shape[1])
    fit = solve_heads(Z, H, y, sizes, loss_weights=w, pen_beta=pen_b, pen_alpha=pen_a,
                      beta_center=cb, alpha_center=ca, penalty_beta=form_b, penalty_alpha=form_a,
                      tol=1e-10)
    assert fit.converged.all() and np.all(fit.kkt <= 1e-10)
    A, B, b, val = cvxpy_heads(Z, H, y, task, w, pen_a, pen_b, ca, cb, form_a, form_b)
    ours = head_objective(fit, Z, H, y, task, w, pen_a, pen_b, ca, cb, form_a, form_b)
    assert ours <= val + 1e-7 * (1 + abs(val))
    np.testing.assert_allclose(fit.beta, B, atol=2e-4)
    np.testing.assert_allclose(fit.alpha, A, atol=2e-4)
    np.testing.assert_allclose(fit.intercept, b, atol=2e-4)
    if form_b == "ball":
        assert np.all(np.linalg.norm(fit.beta - cb, axis=1) <= pen_b * (1 + 1e-12))


def test_solve_heads_kkt_conditions():
    """Stationarity in the intercept and alpha, subgradient conditions for the l2-penalized beta."""
    Z, H, y, sizes, task, beta0 = make_heads_problem(5, sizes=(30, 12, 60, 25, 9))
    R = sizes.size
    pen = np.array([0.01, 5.0, 0.2, 0.5, 50.0])
    fit = solve_heads(Z, H, y, sizes, pen_beta=pen, beta_center=beta0, tol=1e-12, max_iter=100000)
    assert fit.fused_beta[[1, 4]].all() and not fit.fused_beta[[0, 2]].any()
    for r in range(R):
        m = task == r
        res = y[m] - Z[m] @ fit.alpha[r] - H[m] @ fit.beta[r] - fit.intercept[r]
        n = m.sum()
        assert abs(res.sum()) / n < 1e-9
        np.testing.assert_allclose(-2 / n * Z[m].T @ res, 0, atol=1e-8)
        g = -2 / n * H[m].T @ res
        d = fit.beta[r] - beta0
        if fit.fused_beta[r]:
            np.testing.assert_array_equal(fit.beta[r], beta0)
            assert np.linalg.norm(g) <= pen[r] * (1 + 1e-8)
        else:
            np.testing.assert_allclose(g + pen[r] * d / np.linalg.norm(d), 0, atol=1e-7)


def test_solve_heads_without_penalty_is_least_squares_per_task():
    Z, H, y, sizes, task, _ = make_heads_problem(7)
    fit = solve_heads(Z, H, y, sizes, pen_beta=0.0, tol=1e-12, max_iter=100000)
    for r in range(sizes.size):
        m = task == r
        F = np.column_stack([Z[m], H[m], np.ones(m.sum())])
        coef = np.linalg.lstsq(F, y[m], rcond=None)[0]
        np.testing.assert_allclose(np.r_[fit.alpha[r], fit.beta[r], fit.intercept[r]], coef, atol=1e-7)


def test_solve_heads_ridge_is_ridge_regression_per_task():
    Z, H, y, sizes, task, _ = make_heads_problem(4)
    ridge = 0.3
    fit = solve_heads(Z, H, y, sizes, ridge=ridge, tol=1e-12, max_iter=100000)
    for r in range(sizes.size):
        m = task == r
        F = np.column_stack([Z[m], H[m]])
        Fc, yc = F - F.mean(0), y[m] - y[m].mean()
        n = m.sum()
        # stationarity of (1/n)||yc - Fc c||^2 + (ridge/2)||c||^2
        coef = np.linalg.solve(2 / n * Fc.T @ Fc + ridge * np.eye(F.shape[1]), 2 / n * Fc.T @ yc)
        np.testing.assert_allclose(np.r_[fit.alpha[r], fit.beta[r]], coef, atol=1e-8)
        np.testing.assert_allclose(fit.intercept[r], y[m].mean() - F.mean(0) @ coef, atol=1e-8)
    # with fewer rows than head coefficients the ridge keeps the solution unique and finite
    few = solve_heads(Z[:4], H[:4], y[:4], [4], ridge=0.1, pen_beta=0.05)
    assert few.converged.all() and np.all(np.isfinite(few.beta))


def test_solve_heads_large_penalty_fuses_every_task():
    Z, H, y, sizes, task, beta0 = make_heads_problem(8)
    fit = solve_heads(Z, H, y, sizes, pen_beta=1e6, beta_center=beta0)
    assert fit.fused_beta.all()
    np.testing.assert_array_equal(fit.beta, np.tile(beta0, (sizes.size, 1)))


def test_solve_heads_warm_start_threads_and_empty_blocks():
    Z, H, y, sizes, task, beta0 = make_heads_problem(9)
    cold = solve_heads(Z, H, y, sizes, pen_beta=0.2, tol=1e-11)
    warm = solve_heads(Z, H, y, sizes, pen_beta=0.2, tol=1e-11, alpha0=cold.alpha, beta0=cold.beta)
    assert warm.iterations.sum() < cold.iterations.sum()
    np.testing.assert_allclose(warm.beta, cold.beta, atol=1e-8)
    threaded = solve_heads(Z, H, y, sizes, pen_beta=0.2, tol=1e-11, n_threads=2)
    np.testing.assert_array_equal(threaded.beta, cold.beta)
    # shared-only (q = 0) and specific-only (p = 0) heads
    only_h = solve_heads(np.zeros((y.size, 0)), H, y, sizes, pen_beta=0.2)
    only_z = solve_heads(Z, np.zeros((y.size, 0)), y, sizes)
    assert only_h.alpha.shape == (sizes.size, 0) and only_z.beta.shape == (sizes.size, 0)
    # a one-row task gets its center and its response as intercept
    one = solve_heads(Z[:1], H[:1], y[:1], [1], pen_beta=0.1, beta_center=beta0)
    np.testing.assert_array_equal(one.beta[0], beta0)
    np.testing.assert_allclose(one.intercept[0], y[0] - H[0] @ beta0)


@pytest.mark.parametrize("kwargs, match", [
    (dict(sizes=[10, 10]), "sizes: sum to 20"),
    (dict(sizes=[60, 0, 28]), "sizes: every task needs at least one row"),
    (dict(sizes=[44.0, 44.0]), "sizes: expected a non-empty 1-d integer array"),
    (dict(pen_beta=-1.0), "pen_beta: must be non-negative"),
    (dict(penalty_beta="lasso"), "penalty_beta: must be one of"),
    (dict(beta_center=np.zeros(2)), r"beta_center: expected shape \(4,\)"),
    (dict(beta0=np.zeros((3, 4))), r"beta0: expected shape \(4, 4\)"),
    (dict(tol=0.0), "tol: must be a positive number"),
    (dict(ridge=-1.0), "ridge: must be a finite non-negative"),
])
def test_solve_heads_errors(kwargs, match):
    Z, H, y, sizes, task, _ = make_heads_problem(0)
    args = dict(sizes=sizes)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        solve_heads(Z, H, y, **args)


def test_solve_heads_row_mismatch_and_nan():
    Z, H, y, sizes, task, _ = make_heads_problem(0)
    with pytest.raises(ValueError, match="H: has 87 rows but y has 88"):
        solve_heads(Z, H[1:], y, sizes)
    y = y.copy()
    y[3] = np.nan
    with pytest.raises(ValueError, match="y: contains 1 NaN"):
        solve_heads(Z, H, y, sizes)


def test_solve_heads_warns_at_max_iter():
    Z, H, y, sizes, task, _ = make_heads_problem(0)
    with pytest.warns(ProxConvergenceWarning, match="max_iter"):
        fit = solve_heads(Z, H, y, sizes, pen_beta=0.1, max_iter=2, tol=1e-14)
    assert not fit.converged.any()
