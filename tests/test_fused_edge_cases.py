"""The fused solver at the edges: invalid input, convergence warnings, special and extreme values.

Oracles are computed here in NumPy from the inputs (pooled estimate, lambda_max, the optimality
conditions); the agreement with CVXPY on ordinary problems is in test_fused_solver.py.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from hetmtl import _core

from hetmtl.fusion import ConvergenceWarning, fused_path, fused_solve
from hetmtl.fusion.fused import make_options, prepare_problem, solve_batch

from fused_problems import kkt_residual_np, lambda_max_np, pooled_np, random_problem


# --------------------------------------------------------------------------------------------------
# Invalid input: a ValueError that names the argument
# --------------------------------------------------------------------------------------------------

K0, P0 = 4, 2
TH0, W0, N0 = random_problem(1, K0, P0)


def _with(**changes):
    args = {"theta_hat": TH0, "W": W0, "n": N0, "lam": 0.5, "weights": None}
    args.update(changes)
    return args


def _set(arr, index, value):
    out = np.array(arr, dtype=float)
    out[index] = value
    return out


_ASYM = W0.copy()
_ASYM[1, 0, 1] += 0.1
_SINGULAR = W0.copy()
_SINGULAR[2] = np.outer([1.0, 2.0], [1.0, 2.0])
_NEGATIVE = W0.copy()
_NEGATIVE[0] = -W0[0]
_INDEFINITE = W0.copy()
_INDEFINITE[3] = np.diag([1.0, -1e-3])

INVALID = [
    pytest.param(_with(theta_hat=_set(TH0, (0, 0), np.nan)), "theta_hat", id="theta_hat-nan"),
    pytest.param(_with(theta_hat=_set(TH0, (1, 1), np.inf)), "theta_hat", id="theta_hat-inf"),
    pytest.param(_with(theta_hat=np.zeros((K0, P0, 1))), "theta_hat", id="theta_hat-3d"),
    pytest.param(_with(theta_hat=np.zeros((K0, 0))), "theta_hat", id="theta_hat-p0"),
    pytest.param(_with(theta_hat=[["a", "b"]] * K0), "theta_hat", id="theta_hat-text"),
    pytest.param(
        _with(theta_hat=np.zeros((0, P0)), W=np.zeros((0, P0, P0)), n=np.zeros(0)), "theta_hat", id="K0"
    ),
    pytest.param(_with(W=_set(W0, (0, 1, 1), np.nan)), "W", id="W-nan"),
    pytest.param(_with(W=_set(W0, (2, 0, 0), -np.inf)), "W", id="W-inf"),
    pytest.param(_with(W=W0[:, :, :1]), "W", id="W-not-square"),
    pytest.param(_with(W=W0[:-1]), "W", id="W-too-few-sites"),
    pytest.param(_with(W=W0[:, 0, :]), "W", id="W-2d"),
    pytest.param(_with(W=_ASYM), "W: matrix 1 is not symmetric", id="W-asymmetric"),
    pytest.param(_with(W=_SINGULAR), "W: matrix 2 is not positive definite", id="W-singular"),
    pytest.param(_with(W=_NEGATIVE), "W: matrix 0 is not positive definite", id="W-negative"),
    pytest.param(_with(W=_INDEFINITE), "W: matrix 3 is not positive definite", id="W-indefinite"),
    pytest.param(_with(W=np.zeros_like(W0)), "W: matrix 0 is not positive definite", id="W-zero"),
    pytest.param(_with(n=_set(N0, 0, np.nan)), "n", id="n-nan"),
    pytest.param(_with(n=_set(N0, 3, np.inf)), "n", id="n-inf"),
    pytest.param(_with(n=_set(N0, 1, -5.0)), "n: all values must be positive", id="n-negative"),
    pytest.param(_with(n=_set(N0, 2, 0.0)), "n: all values must be positive", id="n-zero"),
    pytest.param(_with(n=N0[:-1]), "n", id="n-wrong-length"),
    pytest.param(_with(n=N0[:, None]), "n", id="n-2d"),
    pytest.param(_with(weights=_set(np.ones(K0), 0, -1.0)), "weights: all values must be positive", id="weights-negative"),
    pytest.param(_with(weights=np.zeros(K0)), "weights: all values must be positive", id="weights-zero"),
    pytest.param(_with(weights=_set(np.ones(K0), 2, np.nan)), "weights", id="weights-nan"),
    pytest.param(_with(weights=np.ones(K0 + 1)), "weights", id="weights-wrong-length"),
    pytest.param(_with(lam=-0.1), "lam", id="lam-negative"),
    pytest.param(_with(lam=np.nan), "lam", id="lam-nan"),
    pytest.param(_with(lam=np.inf), "lam", id="lam-inf"),
]


@pytest.mark.parametrize("args, message", INVALID)
def test_invalid_input_names_the_argument(args, message):
    args = dict(args)
    lam = args.pop("lam")
    with pytest.raises(ValueError, match=re.escape(message)):
        fused_solve(args["theta_hat"], args["W"], args["n"], lam, weights=args["weights"])


@pytest.mark.parametrize(
    "options, name",
    [
        ({"penalty": "l1"}, "penalty"),
        ({"penalty": "L2"}, "penalty"),
        ({"tol": 0.0}, "tol"),
        ({"tol": -1e-8}, "tol"),
        ({"tol": np.nan}, "tol"),
        ({"max_iter": 0}, "max_iter"),
        ({"n_threads": 0}, "n_threads"),
    ],
)
def test_invalid_options_name_the_option(options, name):
    with pytest.raises(ValueError, match=name):
        fused_solve(TH0, W0, N0, 0.5, **options)
    with pytest.raises(ValueError, match=name):
        fused_path(TH0, W0, N0, **options)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"lambdas": [0.5, -0.1]}, "lambdas"),
        ({"lambdas": [0.5, np.nan]}, "lambdas"),
        ({"lambdas": []}, "lambdas"),
        ({"lambdas": [[0.5, 0.1]]}, "lambdas"),
        ({"n_lambda": 1}, "n_lambda"),
        ({"n_lambda": 4194294.0}, "n_lambda"),         # a path this long would exhaust memory
        ({"lambdas": np.ones(10_001)}, "lambdas"),
        ({"lambda_ratio": 0.0}, "ratio"),
        ({"lambda_ratio": 1.0}, "ratio"),
    ],
)
def test_invalid_path_arguments(kwargs, name):
    with pytest.raises(ValueError, match=name):
        fused_path(TH0, W0, N0, **kwargs)


def test_slightly_asymmetric_W_is_accepted_and_symmetrized():
    # rounding-level asymmetry (as from a computed inverse) is below the 1e-8 relative check
    W = W0.copy()
    W[:, 0, 1] *= 1 + 1e-12
    sym = 0.5 * (W + np.swapaxes(W, 1, 2))
    a = fused_solve(TH0, W, N0, 0.5)
    b = fused_solve(TH0, sym, N0, 0.5)
    np.testing.assert_allclose(a.theta, b.theta, rtol=0, atol=1e-10)


def test_inputs_are_not_modified():
    th, W, n = TH0.copy(), W0.copy(), N0.copy()
    w = np.sqrt(n)
    fused_solve(th, W, n, 0.5, weights=w)
    fused_path(th, W, n, weights=w, n_lambda=5)
    np.testing.assert_array_equal(th, TH0)
    np.testing.assert_array_equal(W, W0)
    np.testing.assert_array_equal(n, N0)
    np.testing.assert_array_equal(w, np.sqrt(N0))


# --------------------------------------------------------------------------------------------------
# Not reaching the tolerance
# --------------------------------------------------------------------------------------------------


def _hard_problem():
    theta_hat, W, n = random_problem(11, 200, 5, cond=100.0)
    return theta_hat, W, n, 0.3 * lambda_max_np(theta_hat, W, n)


def test_max_iter_reached_warns_with_the_residual():
    theta_hat, W, n, lam = _hard_problem()
    with pytest.warns(ConvergenceWarning, match=r"relative KKT residual") as record:
        fit = fused_solve(theta_hat, W, n, lam, max_iter=1)
    assert len(record) == 1
    assert not fit.converged
    assert fit.kkt > 1e-10
    # the residual in the message is the one returned, and an honest one
    reported = float(re.search(r"relative KKT residual ([0-9.eE+-]+)", str(record[0].message)).group(1))
    assert reported == pytest.approx(fit.kkt, rel=5e-3)
    assert kkt_residual_np(theta_hat, W, n, lam, fit) == pytest.approx(fit.kkt, rel=1e-3)
    assert issubclass(ConvergenceWarning, UserWarning)
    # with the default iteration budget the same problem converges without a warning
    fit = fused_solve(theta_hat, W, n, lam)
    assert fit.converged and fit.kkt <= 1e-10


def test_path_max_iter_reached_warns_once_with_a_count():
    theta_hat, W, n, _ = _hard_problem()
    with pytest.warns(ConvergenceWarning, match=r"relative KKT residual .* of 50 lambda value\(s\) affected") as record:
        path = fused_path(theta_hat, W, n, max_iter=1)
    assert len(record) == 1
    assert not path.converged.all()
    np.testing.assert_array_equal(path.converged, path.kkt <= 1e-10)


def test_a_loose_tolerance_is_respected():
    theta_hat, W, n, lam = _hard_problem()
    loose = fused_solve(theta_hat, W, n, lam, tol=1e-3)
    assert loose.converged and loose.kkt <= 1e-3
    assert kkt_residual_np(theta_hat, W, n, lam, loose) <= 1e-3


# --------------------------------------------------------------------------------------------------
# Size: many sites, many coordinates
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("K, p", [(2000, 3), (30, 50)])
def test_large_problems_converge(K, p):
    theta_hat, W, n = random_problem(12, K, p, cond=20.0)
    lmax = lambda_max_np(theta_hat, W, n)
    for frac in (1e-3, 0.05, 0.3, 0.7, 0.99):
        fit = fused_solve(theta_hat, W, n, frac * lmax)
        assert fit.converged and fit.kkt <= 1e-10, f"lam = {frac} lambda_max: kkt {fit.kkt:.3g}"
        assert kkt_residual_np(theta_hat, W, n, frac * lmax, fit) <= 1e-9


# --------------------------------------------------------------------------------------------------
# Special values
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("penalty", ["l2", "l2sq"])
def test_single_site_keeps_its_estimate(penalty):
    theta_hat, W, n = random_problem(13, 1, 3)
    assert prepare_problem(theta_hat, W, n).lambda_max() <= 1e-12
    for lam in (0.0, 1e-6, 1.0, 1e6):
        fit = fused_solve(theta_hat, W, n, lam, penalty=penalty)
        np.testing.assert_allclose(fit.theta, theta_hat, rtol=1e-13)
        if lam > 0:
            np.testing.assert_allclose(fit.center, theta_hat[0], rtol=1e-13)
            assert fit.fused.all() == (penalty == "l2")


@pytest.mark.parametrize("penalty", ["l2", "l2sq"])
def test_identical_sites_stay_put(penalty):
    K, p = 6, 3
    theta_hat = np.tile([0.3, -1.7, 2.9], (K, 1))
    _, W, n = random_problem(14, K, p)
    assert prepare_problem(theta_hat, W, n).lambda_max() <= 1e-12
    for lam in (0.0, 0.1, 10.0):
        fit = fused_solve(theta_hat, W, n, lam, penalty=penalty)
        np.testing.assert_allclose(fit.theta, theta_hat, rtol=1e-13)
        if lam > 0 and penalty == "l2":
            assert fit.fused.all()


def test_duplicated_sites_get_identical_estimates():
    theta_hat, W, n = random_problem(15, 8, 3)
    theta_hat[5], W[5], n[5] = theta_hat[2], W[2], n[2]
    for frac in (0.05, 0.3, 0.8):
        fit = fused_solve(theta_hat, W, n, frac * lambda_max_np(theta_hat, W, n))
        np.testing.assert_allclose(fit.theta[5], fit.theta[2], rtol=0, atol=1e-12)
        assert fit.fused[5] == fit.fused[2]


def test_scalar_problem_accepts_flat_arrays():
    theta_hat, W, n = random_problem(16, 9, 1)
    lam = 0.4 * lambda_max_np(theta_hat, W, n)
    full = fused_solve(theta_hat, W, n, lam)
    flat = fused_solve(theta_hat[:, 0], W[:, 0, 0], n.astype(int), lam)
    np.testing.assert_array_equal(flat.theta, full.theta)
    np.testing.assert_array_equal(flat.fused, full.fused)
    # p = 1 with W_k = c_k: scalar soft-thresholding toward the center
    z = theta_hat[:, 0] - full.center[0]
    tau = lam * np.sqrt(n) / (n * W[:, 0, 0])
    expected = full.center[0] + np.sign(z) * np.maximum(np.abs(z) - tau, 0.0)
    np.testing.assert_allclose(full.theta[:, 0], expected, rtol=0, atol=1e-12)


def test_enormous_lambda_pools_everything():
    theta_hat, W, n = random_problem(17, 10, 3)
    fit = fused_solve(theta_hat, W, n, 1e12 * lambda_max_np(theta_hat, W, n))
    assert fit.fused.all()
    np.testing.assert_allclose(fit.center, pooled_np(theta_hat, W, n), rtol=1e-12)


@pytest.mark.parametrize("scale", [1e-8, 1e8])
def test_extreme_scales_of_W(scale):
    # scaling W and lam together leaves the solution unchanged
    theta_hat, W, n = random_problem(18, 12, 3)
    lam = 0.3 * lambda_max_np(theta_hat, W, n)
    ref = fused_solve(theta_hat, W, n, lam)
    fit = fused_solve(theta_hat, scale * W, n, scale * lam)
    assert fit.converged
    np.testing.assert_allclose(fit.theta, ref.theta, rtol=0, atol=1e-10)
    np.testing.assert_array_equal(fit.fused, ref.fused)


def _assert_converges_over_lambda(theta_hat, W, n):
    lmax = lambda_max_np(theta_hat, W, n)
    for frac in (0.01, 0.1, 0.5, 0.9):
        fit = fused_solve(theta_hat, W, n, frac * lmax)
        assert fit.converged
        assert kkt_residual_np(theta_hat, W, n, frac * lmax, fit) <= 1e-9


@pytest.mark.parametrize("cond", [1e3, 1e6])
def test_ill_conditioned_W_converges(cond):
    _assert_converges_over_lambda(*random_problem(19, 20, 4, cond=cond))


def test_very_unequal_site_sizes():
    theta_hat, W, _ = random_problem(20, 20, 3)
    _assert_converges_over_lambda(theta_hat, W, np.geomspace(1.0, 1e6, 20))


def test_moderate_offset_is_translation_equivariant():
    theta_hat, W, n = random_problem(21, 20, 3)
    lmax = lambda_max_np(theta_hat, W, n)
    for frac in (0.1, 0.5, 0.9):
        ref = fused_solve(theta_hat, W, n, frac * lmax)
        fit = fused_solve(theta_hat + 1e3, W, n, frac * lmax)
        np.testing.assert_allclose(fit.theta - 1e3, ref.theta, rtol=0, atol=1e-9)
        np.testing.assert_array_equal(fit.fused, ref.fused)


# --------------------------------------------------------------------------------------------------
# Numerical corner cases: tolerances near rounding, sites on the fusion boundary, and the
# validation of secondary entry points.
# --------------------------------------------------------------------------------------------------

# Three sites with identity weights: the smallest reproducer found for the numerical issues below.
_BASE = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
_EYE3 = np.stack([np.eye(2)] * 3)
_N3 = np.full(3, 100.0)


def test_converges_just_below_lambda_max():
    theta_hat = np.array([[0.12573022, -0.13210486], [0.64042265, 0.10490012], [-0.53566937, 0.36159505]])
    lmax = lambda_max_np(theta_hat, _EYE3, _N3)
    fit = fused_solve(theta_hat, _EYE3, _N3, lmax * (1 - 1e-8))
    assert fit.converged


@pytest.mark.parametrize("offset, spread, lam", [(1e6, 1.0, 4.0), (5.0, 1e-9, 2e-9)])
def test_large_offset_or_tiny_spread(offset, spread, lam):
    fit = fused_solve(offset + spread * _BASE, _EYE3, _N3, lam)
    assert fit.converged
    # Translation equivariance: the same answer as the problem around zero, shifted.
    ref = fused_solve(spread * _BASE, _EYE3, _N3, lam)
    np.testing.assert_allclose(fit.theta - offset, ref.theta, rtol=0, atol=1e-15 * offset + 1e-7 * spread)
    np.testing.assert_array_equal(fit.fused, ref.fused)


def test_single_site_tiny_lambda():
    theta_hat = np.array([[1.017096383626592, 1.6798737701549808]])
    W = np.array([[[0.9102412728362177, 1.2520166469040115], [1.2520166469040115, 5.75169823370803]]])
    fit = fused_solve(theta_hat, W, [171.0], 2.1794598695904236e-15)
    assert fit.converged
    np.testing.assert_array_equal(fit.theta, theta_hat)
    np.testing.assert_array_equal(fit.center, theta_hat[0])


def test_l2sq_converged_implies_tolerance():
    theta_hat, W, n = random_problem(21, 1, 3, cond=30.0)
    fit = fused_solve(theta_hat, W, n, 0.0, penalty="l2sq")
    assert fit.converged == (fit.kkt <= 1e-10)


def test_text_lambda_names_lam():
    with pytest.raises(ValueError, match="lam"):
        fused_solve(TH0, W0, N0, "abc")


def test_lambda_ratio_named():
    with pytest.raises(ValueError, match="lambda_ratio"):
        fused_path(TH0, W0, N0, lambda_ratio=2.0)


@pytest.mark.parametrize(
    "draws",
    [np.zeros((3, K0 + 1, P0)), np.zeros((3, K0, P0 + 1)), np.full((2, K0, P0), np.nan)],
    ids=["sites", "dim", "nan"],
)
def test_solve_batch_validates_draws(draws):
    problem = prepare_problem(TH0, W0, N0)
    with pytest.raises(ValueError, match="theta_hats"):
        solve_batch(problem, draws, 0.5, make_options())


def test_path_with_a_non_unique_center_converges():
    """Two sites of equal weight, both unfused: any center between them is optimal, and warm
    starts drift to one end, leaving that site a hair's breadth from the center. Zero weights
    (grid points a site did not release) in the diagonal mode, as nuisance fusion builds them."""
    D = np.array([[0.0, 0.2006, 0.2450, 0.2129], [0.2148, 0.2546, 0.2529, 0.0]])
    theta_hat = np.array([[0.0, 0.3286, -0.0885, -0.6662], [1.4830, 1.1611, 1.0663, 0.0]])
    n = np.array([143.0, 143.0])
    lambdas = list(np.append(2.0493 * 0.5336 ** np.arange(12), 0.0))
    problem = _core.FusedProblem.diagonal(D, n, np.sqrt(n), True)
    out = problem.path(theta_hat, lambdas, make_options(tol=1e-9))
    assert np.all(out.status == int(_core.SolveStatus.converged))
    assert out.kkt.max() <= 1e-9
    for i in (4, 8):  # the same points as cold solves, where the center is unique to rounding
        cold = problem.solve(theta_hat, lambdas[i], make_options(tol=1e-9))
        np.testing.assert_allclose(out.theta[i], cold.theta[0], atol=1e-7)


def test_numerically_singular_W_is_explained():
    # Positive definite in exact arithmetic, but the smallest eigenvalue is below rounding of the
    # largest entry: the message says why a positive eigenvalue is rejected.
    W = W0.copy()
    q, _ = np.linalg.qr(np.random.default_rng(5).normal(size=(P0, P0)))
    W[1] = (q * np.array([1e-14, 1.0])) @ q.T
    W[1] = 0.5 * (W[1] + W[1].T)
    with pytest.raises(ValueError, match=r"W: matrix 1 is not positive definite \(smallest eigenvalue "
                                         r"[0-9.e+-]+, below 1e-12 times its largest entry .*working precision"):
        fused_solve(TH0, W, N0, 0.1)
