"""The fused quadratic solver against a generic convex solver (CVXPY) and its optimality conditions.

The problem, for K sites with p-dimensional targets and A_k = n_k W_k::

    minimize over theta_1..theta_K, u
        sum_k (1/2) (theta_k - theta_hat_k)' A_k (theta_k - theta_hat_k) + lam * sum_k w_k pen(theta_k - u)

with pen = ||.||_2 ("l2") or ||.||_2^2 / 2 ("l2sq"). Every oracle here is computed in NumPy (or by
CVXPY) from the inputs, never from the solver's own diagnostics.
"""

from __future__ import annotations

import numpy as np
import pytest

from hetmtl import _core
from hetmtl.fusion import FusedFit, fused_path, fused_solve
from hetmtl.fusion.fused import make_options, prepare_problem, solve_batch

# --------------------------------------------------------------------------------------------------
# Random problems and NumPy references
# --------------------------------------------------------------------------------------------------


def random_spd(rng: np.random.Generator, p: int, cond: float) -> np.ndarray:
    """A random symmetric positive definite p x p matrix with condition number ``cond``."""
    q, _ = np.linalg.qr(rng.normal(size=(p, p)))
    evals = np.geomspace(1.0, cond, p) if p > 1 else np.ones(1)
    mat = (q * (evals * rng.uniform(0.5, 2.0))) @ q.T
    return 0.5 * (mat + mat.T)


def random_problem(
    seed: int, K: int, p: int, cond: float = 10.0, outliers: float = 0.2
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Site estimates around a common value, a fraction of outlying sites, unequal sizes."""
    rng = np.random.default_rng(seed)
    theta_hat = 1.0 + 0.5 * rng.normal(size=(K, p))
    n_out = int(round(outliers * K))
    if n_out:
        direction = rng.normal(size=(n_out, p))
        theta_hat[:n_out] += 2.0 * direction / np.linalg.norm(direction, axis=1, keepdims=True)
    W = np.stack([random_spd(rng, p, cond) for _ in range(K)])
    n = rng.integers(20, 300, size=K).astype(float)
    return theta_hat, W, n


def pooled_np(theta_hat: np.ndarray, W: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Inverse-variance pooled estimate (sum_k A_k)^-1 sum_k A_k theta_hat_k."""
    A = n[:, None, None] * W
    return np.linalg.solve(A.sum(axis=0), np.einsum("kij,kj->i", A, theta_hat))


def lambda_max_np(theta_hat, W, n, weights) -> float:
    """max_k ||A_k (theta_hat_k - u_bar)|| / w_k: the smallest lambda fusing every site."""
    A = n[:, None, None] * W
    grad = np.einsum("kij,kj->ki", A, theta_hat - pooled_np(theta_hat, W, n))
    return float(np.max(np.linalg.norm(grad, axis=1) / weights))


def gradient_scale(theta_hat, W, n) -> float:
    """Natural size of the site gradients: max_k ||A_k (theta_hat_k - u_bar)||.

    Floored at 1e-4 max_k ||A_k theta_hat_k||, the size of rounding in the gradients, for problems
    whose sites all agree (K = 1).
    """
    A = n[:, None, None] * W
    grad = np.einsum("kij,kj->ki", A, theta_hat - pooled_np(theta_hat, W, n))
    level = np.einsum("kij,kj->ki", A, theta_hat)
    scale = max(np.max(np.linalg.norm(grad, axis=1)), 1e-4 * np.max(np.linalg.norm(level, axis=1)))
    return float(scale) if scale > 0 else 1.0


def loss_np(theta_hat, W, n, theta) -> float:
    r = theta - theta_hat
    return float(0.5 * np.einsum("k,ki,kij,kj->", n, r, W, r))


def penalty_np(weights, theta, center, penalty: str) -> float:
    dist = np.linalg.norm(theta - center, axis=1)
    return float(weights @ dist) if penalty == "l2" else float(0.5 * weights @ dist**2)


def objective_np(theta_hat, W, n, weights, lam, theta, center, penalty) -> float:
    return loss_np(theta_hat, W, n, theta) + lam * penalty_np(weights, theta, center, penalty)


def assert_kkt(theta_hat, W, n, weights, lam, fit: FusedFit, penalty: str, rtol: float = 1e-9) -> None:
    """Check the optimality conditions at ``fit`` directly, each to ``rtol`` times the gradient scale.

    l2:   n_k W_k (theta_k - theta_hat_k) + lam w_k s_k = 0 with s_k = v_k / ||v_k|| (v_k = theta_k - u)
          for unfused sites and ||s_k|| <= 1 for fused ones, sum_k w_k s_k = 0, and site k is fused
          exactly when ||n_k W_k (u - theta_hat_k)|| <= lam w_k.
    l2sq: n_k W_k (theta_k - theta_hat_k) + lam w_k v_k = 0 and sum_k w_k v_k = 0.
    """
    theta, u = fit.theta, fit.center
    A = n[:, None, None] * W
    g = np.einsum("kij,kj->ki", A, theta - theta_hat)
    v = theta - u
    tau = lam * weights
    tol = rtol * gradient_scale(theta_hat, W, n)
    fused = np.asarray(fit.fused, dtype=bool)
    if penalty == "l2sq":
        assert not fused.any()
        site_res = np.linalg.norm(g + tau[:, None] * v, axis=1)
        assert site_res.max() <= tol, f"site stationarity residual {site_res.max():.3g} > {tol:.3g}"
        center_res = np.linalg.norm(tau @ v)
        assert center_res <= tol, f"center stationarity residual {center_res:.3g} > {tol:.3g}"
        return
    # fused means theta_k == u exactly, bit for bit
    vnorm = np.linalg.norm(v, axis=1)
    np.testing.assert_array_equal(vnorm == 0.0, fused)
    # the fusion condition, evaluated at the returned center
    pull = np.linalg.norm(np.einsum("kij,kj->ki", A, u - theta_hat), axis=1)
    assert np.all(pull[fused] <= tau[fused] + tol), "a fused site violates ||A_k(u - theta_hat_k)|| <= lam w_k"
    assert np.all(pull[~fused] >= tau[~fused] - tol), "an unfused site satisfies the fusion condition"
    s = np.zeros_like(v)
    s[~fused] = v[~fused] / vnorm[~fused, None]
    if lam > 0 and fused.any():
        s[fused] = -g[fused] / tau[fused, None]
        assert np.all(np.linalg.norm(s[fused], axis=1) <= 1.0 + tol / tau[fused])
    site_res = np.linalg.norm(g + tau[:, None] * s, axis=1)
    assert site_res.max() <= tol, f"site stationarity residual {site_res.max():.3g} > {tol:.3g}"
    center_res = lam * np.linalg.norm(weights @ s)
    assert center_res <= tol, f"sum_k lam w_k s_k = {center_res:.3g} > {tol:.3g}"


# --------------------------------------------------------------------------------------------------
# CVXPY oracle
# --------------------------------------------------------------------------------------------------


def cvxpy_solve(theta_hat, W, n, weights, lam, penalty, solver, **settings):
    """Solve the same problem with CVXPY; returns (theta, center, status)."""
    cp = pytest.importorskip("cvxpy")
    sparse = pytest.importorskip("scipy.sparse")
    K, p = theta_hat.shape
    # (1/2) r' A r = (1/2) ||L' r||^2 with A = L L': a sum of squares CVXPY hands over directly.
    factors = [np.linalg.cholesky(n[k] * W[k]).T for k in range(K)]
    L = sparse.block_diag(factors, format="csr")
    theta = cp.Variable((K, p))
    u = cp.Variable(p)
    loss = 0.5 * cp.sum_squares(L @ cp.vec(theta - theta_hat, order="C"))
    diff = theta - cp.reshape(u, (1, p), order="C")
    if penalty == "l2":
        pen = weights @ cp.norm(diff, 2, axis=1)
    else:
        pen = 0.5 * (weights @ cp.sum(cp.square(diff), axis=1))
    problem = cp.Problem(cp.Minimize(loss + lam * pen))
    problem.solve(solver=solver, **settings)
    return theta.value, u.value, problem.status


def objective_solver() -> tuple[str, dict]:
    """Clarabel (interior point) when installed, else SCS, with tolerances it reliably meets."""
    cp = pytest.importorskip("cvxpy")
    if "CLARABEL" in cp.installed_solvers():
        return "CLARABEL", {"tol_gap_abs": 1e-9, "tol_gap_rel": 1e-9, "tol_feas": 1e-9}
    return "SCS", {"eps_abs": 1e-12, "eps_rel": 1e-12, "max_iters": 200_000}


# (K, p, seed, custom weights): p = 1, K = 1, unequal n everywhere, moderate condition numbers.
CVX_CASES = [
    pytest.param(1, 2, 11, False, id="K1-p2"),
    pytest.param(6, 1, 12, False, id="K6-p1"),
    pytest.param(10, 2, 13, False, id="K10-p2"),
    pytest.param(12, 3, 14, False, id="K12-p3"),
    pytest.param(8, 5, 15, False, id="K8-p5"),
    pytest.param(7, 4, 16, True, id="K7-p4-weights"),
]
LAM_FRACTIONS = (0.0, 0.05, 0.3, 0.7, 0.99, 1.5)


def cvx_case(K, p, seed, custom_weights):
    theta_hat, W, n = random_problem(seed, K, p)
    rng = np.random.default_rng(seed + 1000)
    weights = rng.uniform(0.5, 2.0, size=K) * np.sqrt(n) if custom_weights else np.sqrt(n)
    # K = 1: lambda_max is 0 (up to rounding) and every lambda > 0 fuses; exercise several values
    lam_ref = lambda_max_np(theta_hat, W, n, weights) if K > 1 else 1.0
    return theta_hat, W, n, weights, [f * lam_ref for f in LAM_FRACTIONS]


@pytest.mark.parametrize("penalty", ["l2", "l2sq"])
@pytest.mark.parametrize("K, p, seed, custom_weights", CVX_CASES)
def test_objective_matches_cvxpy(K, p, seed, custom_weights, penalty):
    theta_hat, W, n, weights, lams = cvx_case(K, p, seed, custom_weights)
    solver, settings = objective_solver()
    # Relative error is measured against the optimum, floored (for lam = 0 and K = 1, where the
    # optimum is 0) at 1e-6 of the largest objective any lambda can have, the loss at the pooled
    # point, or of the loss at theta = 0 when that is larger.
    ubar = pooled_np(theta_hat, W, n)
    F0 = loss_np(theta_hat, W, n, np.broadcast_to(ubar, theta_hat.shape))
    floor = 1e-6 * max(F0, loss_np(theta_hat, W, n, np.zeros_like(theta_hat)))
    for lam in lams:
        fit = fused_solve(theta_hat, W, n, lam, weights=weights, penalty=penalty)
        assert fit.converged
        theta_c, u_c, status = cvxpy_solve(theta_hat, W, n, weights, lam, penalty, solver, **settings)
        assert status == "optimal"
        F_h = objective_np(theta_hat, W, n, weights, lam, fit.theta, fit.center, penalty)
        F_c = objective_np(theta_hat, W, n, weights, lam, theta_c, u_c, penalty)
        denom = max(abs(F_c), floor)
        assert abs(F_h - F_c) <= 1e-8 * denom, f"lam={lam:.4g}: hetmtl {F_h!r} vs CVXPY {F_c!r}"
        # an exact solver is never worse than an interior-point one
        assert F_h <= F_c + 1e-6 * floor, f"lam={lam:.4g}: hetmtl {F_h!r} > CVXPY {F_c!r}"


@pytest.mark.parametrize("penalty", ["l2", "l2sq"])
@pytest.mark.parametrize("K, p, seed, custom_weights", CVX_CASES)
def test_estimates_match_cvxpy(K, p, seed, custom_weights, penalty):
    # Interior-point solutions are accurate to about 1e-6 at best on these second-order-cone
    # problems; SCS run to 1e-13 reaches about 1e-10 here, so it is the oracle for the estimates.
    theta_hat, W, n, weights, lams = cvx_case(K, p, seed, custom_weights)
    for lam in lams:
        fit = fused_solve(theta_hat, W, n, lam, weights=weights, penalty=penalty)
        theta_c, u_c, status = cvxpy_solve(
            theta_hat, W, n, weights, lam, penalty, "SCS", eps_abs=1e-13, eps_rel=1e-13, max_iters=200_000
        )
        assert status == "optimal"
        np.testing.assert_allclose(fit.theta, theta_c, rtol=0, atol=1e-6, err_msg=f"theta, lam={lam:.4g}")
        if lam > 0:  # at lam = 0 the center is not identified
            np.testing.assert_allclose(fit.center, u_c, rtol=0, atol=1e-6, err_msg=f"center, lam={lam:.4g}")


# --------------------------------------------------------------------------------------------------
# Optimality conditions
# --------------------------------------------------------------------------------------------------

# K = 1 has its own tests in test_fused_edge_cases.py
KKT_CASES = [(2, 3, 21), (5, 1, 22), (20, 2, 23), (40, 5, 24), (15, 10, 25), (30, 50, 26), (300, 3, 27)]


@pytest.mark.parametrize("penalty", ["l2", "l2sq"])
@pytest.mark.parametrize("K, p, seed", KKT_CASES)
def test_kkt_conditions_hold(K, p, seed, penalty):
    theta_hat, W, n = random_problem(seed, K, p, cond=30.0)
    weights = np.sqrt(n)
    lmax = lambda_max_np(theta_hat, W, n, weights)
    for frac in (0.0, 1e-3, 0.02, 0.1, 0.3, 0.6, 0.9, 0.999, 1.0, 3.0):
        lam = frac * (lmax if lmax > 0 else 1.0)
        fit = fused_solve(theta_hat, W, n, lam, penalty=penalty)
        assert fit.converged and fit.kkt <= 1e-10
        assert_kkt(theta_hat, W, n, weights, lam, fit, penalty)


def test_kkt_with_custom_weights():
    theta_hat, W, n = random_problem(31, 25, 4)
    weights = np.random.default_rng(31).uniform(0.1, 10.0, size=25)
    lmax = lambda_max_np(theta_hat, W, n, weights)
    for frac in (0.05, 0.4, 0.8):
        fit = fused_solve(theta_hat, W, n, frac * lmax, weights=weights)
        assert_kkt(theta_hat, W, n, weights, frac * lmax, fit, "l2")


# --------------------------------------------------------------------------------------------------
# Special values of lambda
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("penalty", ["l2", "l2sq"])
def test_lambda_zero_returns_site_estimates(penalty):
    theta_hat, W, n = random_problem(41, 12, 4)
    fit = fused_solve(theta_hat, W, n, 0.0, penalty=penalty)
    np.testing.assert_allclose(fit.theta, theta_hat, rtol=1e-13, atol=1e-13)
    assert not fit.fused.any()


@pytest.mark.parametrize("K, p, seed", [(2, 1, 51), (9, 3, 52), (30, 6, 53)])
def test_at_and_above_lambda_max_everything_is_pooled(K, p, seed):
    theta_hat, W, n = random_problem(seed, K, p)
    weights = np.sqrt(n)
    ubar = pooled_np(theta_hat, W, n)
    lmax = lambda_max_np(theta_hat, W, n, weights)
    problem = prepare_problem(theta_hat, W, n)
    assert problem.lambda_max() == pytest.approx(lmax, rel=1e-12)
    np.testing.assert_allclose(problem.pooled(), ubar, rtol=1e-12, atol=1e-14)
    for lam in (lmax, lmax * (1 + 1e-9), 2 * lmax, 1e6 * lmax):
        fit = fused_solve(theta_hat, W, n, lam)
        assert fit.fused.all(), f"lam = {lam / lmax:.12g} lambda_max"
        np.testing.assert_allclose(fit.center, ubar, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(fit.theta, np.broadcast_to(ubar, (K, p)), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("K, p, seed", [(2, 1, 51), (9, 3, 52), (30, 6, 53)])
def test_just_below_lambda_max_only_the_extreme_site_splits(K, p, seed):
    # All sites fused forces u = u_bar, which is optimal only if lam >= lambda_max; by continuity of
    # the solution in lam, the sites whose fusion condition is slack at lambda_max stay fused.
    theta_hat, W, n = random_problem(seed, K, p)
    weights = np.sqrt(n)
    A = n[:, None, None] * W
    ratio = np.linalg.norm(np.einsum("kij,kj->ki", A, theta_hat - pooled_np(theta_hat, W, n)), axis=1) / weights
    order = np.argsort(ratio)[::-1]
    gap = 1.0 - ratio[order[1]] / ratio[order[0]]
    assert gap > 4e-4  # a unique extreme site, so the claim is sharp for eps below the gap
    # (closer to lambda_max than about 1e-5 the solver warns: see the xfail in the edge-case tests)
    for eps in (1e-4, 0.25 * gap):
        fit = fused_solve(theta_hat, W, n, ratio[order[0]] * (1 - eps))
        expected = np.ones(K, dtype=bool)
        expected[order[0]] = False
        np.testing.assert_array_equal(fit.fused, expected)
        assert_kkt(theta_hat, W, n, weights, ratio[order[0]] * (1 - eps), fit, "l2")


@pytest.mark.parametrize("p", [1, 3])
def test_identity_weights_give_group_soft_thresholding(p):
    # With W_k = c_k I the site problem given u is min (a_k/2)||v - z_k||^2 + lam w_k ||v||,
    # a_k = n_k c_k, z_k = theta_hat_k - u, solved by v_k = max(0, 1 - lam w_k / (a_k ||z_k||)) z_k.
    rng = np.random.default_rng(61 + p)
    K = 15
    theta_hat = rng.normal(size=(K, p))
    c = rng.uniform(0.5, 5.0, size=K)
    W = c[:, None, None] * np.eye(p)
    n = rng.integers(20, 300, size=K).astype(float)
    weights = np.sqrt(n)
    lmax = lambda_max_np(theta_hat, W, n, weights)
    for frac in (0.05, 0.3, 0.7):
        lam = frac * lmax
        fit = fused_solve(theta_hat, W, n, lam)
        z = theta_hat - fit.center
        shrink = np.maximum(0.0, 1.0 - lam * weights / (n * c * np.linalg.norm(z, axis=1)))
        np.testing.assert_allclose(fit.theta, fit.center + shrink[:, None] * z, rtol=1e-11, atol=1e-12)
        np.testing.assert_array_equal(fit.fused, shrink == 0.0)
        assert 0 < fit.fused.sum() < K or frac == 0.05  # a mix of fused and unfused sites
        assert_kkt(theta_hat, W, n, weights, lam, fit, "l2")


# --------------------------------------------------------------------------------------------------
# Paths, batches, memory layout, threads
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("tol", [1e-10, 1e-12])
@pytest.mark.parametrize("penalty", ["l2", "l2sq"])
@pytest.mark.parametrize("K, p, seed", [(8, 1, 71), (20, 3, 72), (12, 8, 73)])
def test_path_equals_cold_solves(K, p, seed, penalty, tol):
    # At small lambda the center is weakly determined (the reduced objective in u is nearly flat),
    # so at the default tolerance warm and cold centers differ by up to ~4e-8 while the site
    # estimates agree to ~3e-10; at tol = 1e-12 both agree to well within 1e-8.
    theta_hat, W, n = random_problem(seed, K, p)
    path = fused_path(theta_hat, W, n, penalty=penalty, tol=tol)
    lmax = lambda_max_np(theta_hat, W, n, np.sqrt(n))
    assert path.lambda_max == pytest.approx(lmax, rel=1e-12)
    assert path.lambdas.shape == (50,)
    np.testing.assert_allclose(path.lambdas[[0, -1]], [lmax, 1e-4 * lmax], rtol=1e-12)
    assert np.all(np.diff(path.lambdas) < 0)
    assert path.converged.all()
    for i, lam in enumerate(path.lambdas):
        cold = fused_solve(theta_hat, W, n, lam, penalty=penalty, tol=tol)
        np.testing.assert_allclose(path.theta[i], cold.theta, rtol=0, atol=1e-8, err_msg=f"lam[{i}]")
        center_atol = 1e-8 if tol <= 1e-12 else 1e-6
        np.testing.assert_allclose(path.center[i], cold.center, rtol=0, atol=center_atol, err_msg=f"lam[{i}]")
        np.testing.assert_array_equal(path.fused[i], cold.fused)
        fit = path.fit(i)
        assert fit.lam == lam and fit.converged
    if penalty == "l2":
        assert path.fused[0].all()  # the grid starts at lambda_max


def test_path_returns_results_in_the_order_given():
    theta_hat, W, n = random_problem(74, 10, 3)
    lmax = lambda_max_np(theta_hat, W, n, np.sqrt(n))
    lams = lmax * np.array([0.3, 1.2, 0.01, 0.0, 0.7, 0.3])
    path = fused_path(theta_hat, W, n, lams)
    np.testing.assert_array_equal(path.lambdas, lams)
    for i, lam in enumerate(lams):
        cold = fused_solve(theta_hat, W, n, lam)
        np.testing.assert_allclose(path.theta[i], cold.theta, rtol=0, atol=1e-8)
    # a repeated lambda gives the same answer (to the tolerance: the second is warm-started)
    np.testing.assert_allclose(path.theta[0], path.theta[5], rtol=0, atol=1e-9)


def test_path_value_functions_are_monotone_and_concave():
    # With F(lam) = min_x L(x) + lam P(x): F is concave and non-decreasing (a minimum of affine,
    # non-decreasing functions of lam), and comparing the optima at two lambdas shows the penalty
    # P(x(lam)) is non-increasing and the loss L(x(lam)) non-decreasing. The number of fused sites
    # need not be monotone, so it is not asserted.
    theta_hat, W, n = random_problem(75, 25, 3)
    weights = np.sqrt(n)
    path = fused_path(theta_hat, W, n, n_lambda=40, lambda_ratio=1e-3)
    lams = path.lambdas[::-1]  # increasing
    loss = np.array([loss_np(theta_hat, W, n, t) for t in path.theta[::-1]])
    pen = np.array([penalty_np(weights, t, c, "l2") for t, c in zip(path.theta[::-1], path.center[::-1])])
    F = loss + lams * pen
    slack = 1e-9 * F.max()
    assert np.all(np.diff(F) >= -slack)
    assert np.all(np.diff(loss) >= -slack)
    assert np.all(np.diff(pen) <= 1e-9 * pen.max())
    # concavity: every interior point lies on or above the chord of its neighbours
    t = (lams[1:-1] - lams[:-2]) / (lams[2:] - lams[:-2])
    chord = (1 - t) * F[:-2] + t * F[2:]
    assert np.all(F[1:-1] >= chord - slack)
    assert pen[-1] == 0.0 and path.fused[0].all()


@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("penalty", ["l2", "l2sq"])
def test_solve_batch_equals_separate_solves(penalty, n_threads):
    theta_hat, W, n = random_problem(81, 70, 3)
    rng = np.random.default_rng(81)
    draws = theta_hat + 0.3 * rng.normal(size=(6, 70, 3))
    lam = 0.2 * lambda_max_np(theta_hat, W, n, np.sqrt(n))
    problem = prepare_problem(theta_hat, W, n)
    out = solve_batch(problem, draws, lam, make_options(penalty=penalty, n_threads=n_threads))
    assert out.theta.shape == (6, 70, 3) and out.center.shape == (6, 3)
    for b in range(6):
        fit = fused_solve(draws[b], W, n, lam, penalty=penalty)
        np.testing.assert_allclose(out.theta[b], fit.theta, rtol=1e-12, atol=1e-13)
        np.testing.assert_allclose(out.center[b], fit.center, rtol=1e-12, atol=1e-13)
        np.testing.assert_array_equal(out.fused[b], fit.fused)
        assert out.status[b] == int(_core.SolveStatus.converged)


def test_threads_give_identical_results():
    theta_hat, W, n = random_problem(82, 400, 3)
    lmax = lambda_max_np(theta_hat, W, n, np.sqrt(n))
    for frac in (0.05, 0.5):
        one = fused_solve(theta_hat, W, n, frac * lmax, n_threads=1)
        two = fused_solve(theta_hat, W, n, frac * lmax, n_threads=2)
        np.testing.assert_array_equal(one.theta, two.theta)
        np.testing.assert_array_equal(one.center, two.center)
        np.testing.assert_array_equal(one.fused, two.fused)


def test_memory_layout_does_not_matter():
    theta_hat, W, n = random_problem(83, 9, 4)
    lam = 0.3 * lambda_max_np(theta_hat, W, n, np.sqrt(n))
    ref = fused_solve(theta_hat, W, n, lam)
    # Fortran order, and strided views into larger buffers
    W_big = np.zeros((18, 4, 8))
    W_big[::2, :, ::2] = W
    th_big = np.zeros((9, 12))
    th_big[:, ::3] = theta_hat
    n_big = np.zeros(27)
    n_big[::3] = n
    variants = [
        (np.asfortranarray(theta_hat), np.asfortranarray(W), n),
        (th_big[:, ::3], W_big[::2, :, ::2], n_big[::3]),
        (theta_hat, np.swapaxes(W, 1, 2), n),  # symmetric, so the transposed view is the same W
        (theta_hat.tolist(), W.tolist(), n.tolist()),
    ]
    for th_v, W_v, n_v in variants:
        fit = fused_solve(th_v, W_v, n_v, lam)
        np.testing.assert_array_equal(fit.theta, ref.theta)
        np.testing.assert_array_equal(fit.center, ref.center)
        np.testing.assert_array_equal(fit.fused, ref.fused)


# --------------------------------------------------------------------------------------------------
# Equivariance: transformed inputs give the correspondingly transformed solution
# --------------------------------------------------------------------------------------------------


_R = np.linalg.qr(np.random.default_rng(5).normal(size=(3, 3)))[0]  # a fixed rotation of R^3


def _rotate(th, W, n, w, lam):
    return th @ _R.T, _R @ W @ _R.T, n, w, lam


def _move_n_into_W(th, W, n, w, lam):
    # the loss only sees n_k W_k; the penalty weights are passed explicitly, so they do not change
    return th, W * n[:, None, None] / 4.0, np.full_like(n, 4.0), w, lam


TRANSFORMS = {
    # name: (map of (theta_hat, W, n, weights, lam), map of a solution back to the original problem)
    "translate": (lambda th, W, n, w, lam: (th + 7.5, W, n, w, lam), lambda t: t - 7.5),
    "rotate": (_rotate, lambda t: t @ _R),
    "scale_W_and_lam": (lambda th, W, n, w, lam: (th, 1e3 * W, n, w, 1e3 * lam), lambda t: t),
    "move_n_into_W": (_move_n_into_W, lambda t: t),
    "scale_weights": (lambda th, W, n, w, lam: (th, W, n, 10.0 * w, lam / 10.0), lambda t: t),
}


@pytest.mark.parametrize("penalty", ["l2", "l2sq"])
@pytest.mark.parametrize("name", sorted(TRANSFORMS))
def test_equivariance(name, penalty):
    theta_hat, W, n = random_problem(91, 14, 3)
    weights = np.sqrt(n)
    lam = 0.25 * lambda_max_np(theta_hat, W, n, weights)
    forward, back = TRANSFORMS[name]
    ref = fused_solve(theta_hat, W, n, lam, weights=weights, penalty=penalty)
    th2, W2, n2, w2, lam2 = forward(theta_hat, W, n, weights, lam)
    fit = fused_solve(th2, 0.5 * (W2 + np.swapaxes(W2, 1, 2)), n2, lam2, weights=w2, penalty=penalty)
    np.testing.assert_allclose(back(fit.theta), ref.theta, rtol=0, atol=1e-9)
    np.testing.assert_allclose(back(fit.center), ref.center, rtol=0, atol=1e-9)
    np.testing.assert_array_equal(fit.fused, ref.fused)


def test_permuting_sites_permutes_the_solution():
    theta_hat, W, n = random_problem(92, 14, 3)
    lam = 0.25 * lambda_max_np(theta_hat, W, n, np.sqrt(n))
    perm = np.random.default_rng(92).permutation(14)
    ref = fused_solve(theta_hat, W, n, lam)
    fit = fused_solve(theta_hat[perm], W[perm], n[perm], lam)
    np.testing.assert_allclose(fit.theta, ref.theta[perm], rtol=0, atol=1e-10)
    np.testing.assert_allclose(fit.center, ref.center, rtol=0, atol=1e-10)
    np.testing.assert_array_equal(fit.fused, ref.fused[perm])
