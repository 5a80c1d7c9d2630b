"""Nonparametric empirical Bayes (g-modeling): the grid NPMLE against a convex solver and its KKT
conditions, invariance, batching, few sites, bad input, intervals, and a reduced panel."""

from __future__ import annotations

import cvxpy as cp
import numpy as np
import pytest

from hetmtl import _core
from hetmtl._util.validation import ArgumentError
from hetmtl.fusion import LateFusion
from hetmtl.fusion.blup import random_effects
from hetmtl.fusion.gmodel_eb import (gmodel_eb, gradient, likelihood, make_grid,
                                     posterior_probs, standardize)
from hetmtl.fusion.gmodel_intervals import gmodel_errors
from hetmtl.fusion.summary import SiteSummary
from hetmtl.studies.late_fusion_panel import DESIGNS, SummaryDesign, draw_effects, draw_estimates


def _sites(K: int, seed: int, outliers: int = 2):
    rng = np.random.default_rng(seed)
    v = 1.0 / np.geomspace(100, 1000, K)
    theta = np.full(K, 0.3)
    theta[:outliers] += rng.uniform(3, 6, outliers) * np.sqrt(v[:outliers])
    return theta + np.sqrt(v) * rng.standard_normal(K), v


def _standardized_problem(y, v, n_grid):
    z, w, _, _ = standardize(np.atleast_2d(y), np.atleast_2d(v))
    grid = make_grid(z, n_grid)
    return z, w, grid, likelihood(z, w, grid)


def test_npmle_matches_a_convex_solver_and_meets_its_kkt_conditions():
    y, v = _sites(12, seed=3)
    fit = gmodel_eb(y, v, n_grid=40, tol=1e-7, max_iter=20000)
    z, w, grid, L = _standardized_problem(y, v, 40)
    g = cp.Variable(40, nonneg=True)
    cp.Problem(cp.Maximize(cp.sum(cp.log(L[0] @ g)) / 12), [cp.sum(g) == 1]).solve(
        solver=cp.CLARABEL)
    ref = np.maximum(g.value, 0) / np.maximum(g.value, 0).sum()

    def avg_loglik(weights):
        return np.mean(np.log(L[0] @ weights))

    # Both optima: the same likelihood and (nearly) the same posterior means.
    assert avg_loglik(fit.weights[0]) == pytest.approx(avg_loglik(ref), abs=1e-6)
    ref_post = posterior_probs(L, ref[None])
    ref_est = fit.location[0] + fit.scale[0] * (ref_post * grid[:, None, :]).sum(axis=2)
    np.testing.assert_allclose(fit.estimate, ref_est, atol=1e-3 * np.sqrt(v.min()))
    # KKT: the gradient is at most 1 everywhere and 1 where the weights are not negligible.
    D = gradient(L, fit.weights, np.full((1, 12), 1 / 12))[0]
    assert D.max() <= 1 + 1e-7 and fit.kkt_gap[0] <= 1e-7
    np.testing.assert_allclose(D[fit.weights[0] > 1e-4], 1.0, atol=1e-4)
    # A distribution that is not the maximum violates them.
    uniform = np.full((1, 40), 1 / 40)
    assert gradient(L, uniform, np.full((1, 12), 1 / 12)).max() > 1.01


def test_nothing_depends_on_units_or_location():
    y, v = _sites(10, seed=5)
    base = gmodel_eb(y, v)
    for scale, shift in ((1e-6, 0.0), (1e6, 3e7), (-2.0, 1.0)):
        other = gmodel_eb(scale * y + shift, scale**2 * v)
        np.testing.assert_allclose((other.estimate - shift) / scale, base.estimate,
                                   rtol=1e-9, atol=1e-9 * np.sqrt(v.max()))
        assert (other.mu[0] - shift) / scale == pytest.approx(base.mu[0], abs=1e-9)
    lo = LateFusion(method="gmodel_eb", n_boot=60, random_state=1).fit(_summaries(y, v))
    hi = LateFusion(method="gmodel_eb", n_boot=60, random_state=1).fit(
        _summaries(1e5 * y, 1e10 * v))
    np.testing.assert_allclose(hi.inference_.lower / 1e5, lo.inference_.lower, rtol=1e-8)


def test_batch_equals_one_at_a_time():
    data = [_sites(8, seed=s, outliers=s % 3) for s in range(6)]
    y, v = np.stack([d[0] for d in data]), np.stack([d[1] for d in data])
    batch = gmodel_eb(y, v)
    for i in range(len(data)):
        one = gmodel_eb(y[i], v[i])
        np.testing.assert_allclose(batch.estimate[i], one.estimate[0], rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(batch.mu[i], one.mu[0], rtol=1e-12)


def _summaries(y, v):
    return {f"s{k}": SiteSummary.from_estimate(np.array([t]), cov=np.array([[s]]))
            for k, (t, s) in enumerate(zip(y, v))}


def test_estimates_and_center_inside_their_intervals_and_far_outliers_keep_their_own():
    y, v = _sites(10, seed=11, outliers=0)
    y[0] = 0.3 + 15 * np.sqrt(v[0])
    fit = LateFusion(method="gmodel_eb", n_boot=100, random_state=2).fit(_summaries(y, v))
    inf, theta = fit.inference_, fit.theta_[:, 0]
    assert np.all((inf.lower[:, 0] <= theta) & (theta <= inf.upper[:, 0]))
    assert inf.center_lower[0] <= fit.center_[0] <= inf.center_upper[0]
    assert abs(theta[0] - y[0]) < 0.1 * np.sqrt(v[0])
    assert abs(fit.center_[0] - 0.3) < 3 * np.sqrt(v.mean() / 10)
    # The others are pooled far below their own standard errors' spread.
    assert np.ptp(theta[1:]) < 0.5 * np.ptp(y[1:])


def test_one_site_keeps_its_own_estimate_and_two_sites_pool_or_not():
    one = gmodel_eb([0.7], [0.04])
    assert one.estimate[0, 0] == pytest.approx(0.7) and one.mu[0] == pytest.approx(0.7)
    errs = gmodel_errors(one, np.array([[0.7]]), np.array([[0.04]]), n_boot=2000,
                         rng=np.random.default_rng(0))
    # Its interval is its own Wald interval (up to the bootstrap's quantile error).
    assert errs.halfwidths(0.95)[0][0, 0] == pytest.approx(1.96 * 0.2, rel=0.08)
    # Pooled to one atom, at the grid point nearest to the pooled mean (half a step: 0.5 / 98).
    close = gmodel_eb([0.0, 0.5], [1.0, 1.0]).estimate[0]
    assert close[0] == close[1] and close[0] == pytest.approx(0.25, abs=0.5 / 98 + 1e-12)
    far = gmodel_eb([0.0, 8.0], [1.0, 1.0]).estimate[0]
    assert far == pytest.approx([0.0, 8.0], abs=1e-2)


@pytest.mark.parametrize("y, v, kwargs, arg", [
    ([0.1, 0.2], [0.1, 0.0], {}, "v"),
    ([0.1, np.nan], [0.1, 0.1], {}, "y"),
    ([0.1, 0.2], [0.1, 0.1, 0.1], {}, "v"),
    ([0.1, 0.2], [0.1, 0.1], {"n_grid": 1}, "n_grid"),
    ([0.1, 0.2], [0.1, 0.1], {"tol": 0.0}, "tol"),
    (np.zeros((2, 2, 2)), 0.1, {}, "y"),
])
def test_bad_input_names_the_argument(y, v, kwargs, arg):
    with pytest.raises(ArgumentError, match=f"^{arg}:"):
        gmodel_eb(y, v, **kwargs)


def test_core_refuses_shapes_that_do_not_describe_problems():
    z = np.zeros((2, 3))
    with pytest.raises(ValueError, match="npmle_fit"):
        _core.npmle_fit(z, np.ones((2, 3)), np.full((2, 3), 1 / 3), np.zeros((1, 5)), 1e-3, 10)
    with pytest.raises(ValueError, match="npmle_fit"):
        _core.npmle_fit(z, np.zeros((2, 3)), np.full((2, 3), 1 / 3), np.zeros((2, 5)), 1e-3, 10)


def _panel_data(name: str, n_reps: int, rng: np.random.Generator):
    """True effects, outlier mask, estimates and variances of a panel design."""
    design = SummaryDesign(**DESIGNS[name])
    theta, outlier = draw_effects(design, n_reps, rng)
    y, _ = draw_estimates(design, theta, rng)
    return theta, outlier, y, np.broadcast_to(1.0 / design.sizes, y.shape).copy()


def test_reduced_panel_far_outliers_keep_their_estimate_where_blup_does_not():
    theta, outlier, y, v = _panel_data("heldout_outliers_8to10se_10pct_K30", 60,
                                       np.random.default_rng(7))
    pooled = random_effects(y, v, tau2=np.zeros(len(y))).mu[:, None] + 0 * y
    est = {"gmodel": gmodel_eb(y, v).estimate, "blup": random_effects(y, v).blup, "own": y,
           "fixed": pooled}
    mse = {name: {kind: ((e - theta) ** 2)[mask].mean()
                  for kind, mask in (("outlier", outlier), ("normal", ~outlier))}
           for name, e in est.items()}
    assert mse["gmodel"]["outlier"] <= 1.2 * mse["own"]["outlier"]
    assert mse["fixed"]["outlier"] > 10 * mse["own"]["outlier"]
    assert mse["blup"]["outlier"] > mse["gmodel"]["outlier"]
    assert mse["gmodel"]["normal"] < 0.5 * mse["blup"]["normal"]


def test_intervals_cover_under_gradual_heterogeneity():
    rng = np.random.default_rng(4)
    theta, _, y, v = _panel_data("normal_tau1_K10", 40, rng)
    fit = gmodel_eb(y, v)
    half, center_half = gmodel_errors(fit, y, v, n_boot=100, rng=rng).halfwidths(0.95)
    cover = np.abs(fit.estimate - theta) <= half
    assert 0.85 <= cover.mean() <= 0.995
    # Without the uncertainty of G (the posterior spread under G-hat alone) they are shorter.
    _, _, grid, L = _standardized_problem(y, v, 50)
    post = posterior_probs(L, fit.weights)
    mean = (post * grid[:, None, :]).sum(axis=2, keepdims=True)
    post_sd = fit.scale[:, None] * np.sqrt((post * (grid[:, None, :] - mean) ** 2).sum(axis=2))
    assert np.mean(half) > np.mean(1.96 * post_sd)
    assert np.all(center_half > 0)
