"""The two forms of a site's weight matrix in the fused solver (p > 4).

A single solve works in each unfused site's tridiagonal basis; paths and batches of draws
eigendecompose every site first. Both must give the same solution, with the KKT conditions met,
across dimensions, condition numbers and lambdas from just below lambda_max (sites barely unfused,
where one form of the curvature is used) to small lambda (the other form).
"""

from __future__ import annotations

import numpy as np
import pytest

from hetmtl.fusion import fused_path, fused_solve
from hetmtl.fusion.fused import make_options, path_prepared, prepare_problem, solve_batch, solve_prepared

from fused_problems import kkt_residual_np, lambda_max_np, random_problem

FRACTIONS = (0.999, 0.7, 0.2, 0.02, 1e-4)


@pytest.mark.parametrize(
    "K, p, cond, seed",
    [(12, 5, 10.0, 1), (10, 12, 1e3, 2), (8, 40, 10.0, 3), (15, 9, 1e6, 4), (6, 25, 1e8, 5)],
)
def test_tridiagonal_solve_matches_eigenbasis_path(K, p, cond, seed):
    theta_hat, W, n = random_problem(seed, K, p, cond=cond)
    lams = lambda_max_np(theta_hat, W, n) * np.array(FRACTIONS)
    path = fused_path(theta_hat, W, n, lambdas=lams)  # eigenbasis
    assert path.converged.all()
    problem = prepare_problem(theta_hat, W, n)
    for i, lam in enumerate(lams):
        fit = fused_solve(theta_hat, W, n, lam)  # tridiagonal basis
        assert fit.converged, f"lambda fraction {FRACTIONS[i]}"
        # The same cold solve in the eigenbasis (a batch of two draws eigendecomposes first):
        # equal curvatures make Newton take the same steps, so a wrong curvature shows here.
        eig = solve_batch(problem, np.stack([theta_hat, theta_hat]), lam, make_options())
        assert abs(fit.iterations - int(eig.iterations[0])) <= 1
        assert kkt_residual_np(theta_hat, W, n, lam, fit) <= 1e-9
        np.testing.assert_array_equal(fit.fused, path.fused[i])
        spread = np.abs(theta_hat).max()
        np.testing.assert_allclose(fit.theta, path.theta[i], rtol=0, atol=1e-7 * spread)


def test_batch_of_draws_matches_single_solves():
    # A batch eigendecomposes first; a batch of one keeps the tridiagonal form: same answers.
    theta_hat, W, n = random_problem(6, 10, 7, cond=100.0)
    problem = prepare_problem(theta_hat, W, n)
    lam = 0.3 * problem.lambda_max()
    rng = np.random.default_rng(0)
    draws = theta_hat[None] + 0.3 * rng.normal(size=(4, *theta_hat.shape))
    options = make_options()
    singles = [solve_prepared(prepare_problem(d, W, n), lam, options) for d in draws]
    batch = solve_batch(problem, draws, lam, options)
    for b, single in enumerate(singles):
        np.testing.assert_allclose(batch.theta[b], single.theta, rtol=0, atol=1e-8)
        np.testing.assert_array_equal(batch.fused[b], single.fused)


def test_prepared_problem_mixes_forms_without_changing_answers():
    # A prepared problem solved once (tridiagonal forms), then along a path (eigendecompositions),
    # then once more (eigenbasis now at hand) returns the same solution both times.
    theta_hat, W, n = random_problem(7, 9, 20, cond=50.0)
    problem = prepare_problem(theta_hat, W, n)
    lam = 0.1 * problem.lambda_max()
    options = make_options()
    first = solve_prepared(problem, lam, options)
    path_prepared(problem, np.array([lam, 0.5 * lam]), options)
    second = solve_prepared(problem, lam, options)
    assert first.converged and second.converged
    np.testing.assert_allclose(first.theta, second.theta, rtol=0, atol=1e-9)
    np.testing.assert_array_equal(first.fused, second.fused)


def test_threads_give_identical_results_in_both_forms():
    # Sites build their tridiagonal forms (single solves) or eigendecompositions (paths) lazily,
    # from several threads at once: the answers must not depend on the thread count.
    theta_hat, W, n = random_problem(9, 120, 6)
    lmax = lambda_max_np(theta_hat, W, n)
    for frac in (0.5, 0.05):
        one = fused_solve(theta_hat, W, n, frac * lmax, n_threads=1)
        two = fused_solve(theta_hat, W, n, frac * lmax, n_threads=2)
        np.testing.assert_array_equal(one.theta, two.theta)
        np.testing.assert_array_equal(one.fused, two.fused)
    np.testing.assert_array_equal(fused_path(theta_hat, W, n, n_threads=1).theta,
                                  fused_path(theta_hat, W, n, n_threads=2).theta)
