"""Robust EB's point-mass group (sites exactly at the center): posterior means, fit, draws."""

from __future__ import annotations

import numpy as np
import pytest
from fusion_helpers import agreeing_sites_and_one_far
from scipy import stats

from hetmtl.fusion import LateFusion
from hetmtl.fusion import robust_eb as reb
from hetmtl.fusion.eb_intervals import _draw_data


def test_posterior_mean_is_the_three_group_posterior_by_numerical_integration():
    mu, tau2, pi0, eps = 0.2, 0.09, 0.5, 1e-12     # outlying group negligible here
    y = np.array([[-0.4, 0.1, 0.25, 0.6, 1.1]])
    v = np.array([[0.04, 0.01, 0.02, 0.05, 0.03]])
    m, t = np.array([mu]), np.array([tau2])
    p, p0 = reb._group_probs(y, v, m, t, np.array([eps]), np.array([pi0]), "t", 5.0)
    est = reb.posterior_mean(y, v, m, t, p, p0)
    grid = np.linspace(mu - 3, mu + 3, 600001)
    step = grid[1] - grid[0]
    like = stats.norm.pdf(y[0][:, None], loc=grid, scale=np.sqrt(v[0])[:, None])
    prior = stats.norm.pdf(grid, loc=mu, scale=np.sqrt(tau2))
    normal_mass = (1 - pi0 - eps) * (like * prior).sum(1) * step
    spike_mass = pi0 * stats.norm.pdf(y[0], loc=mu, scale=np.sqrt(v[0]))
    normal_first = (1 - pi0 - eps) * (like * prior * grid).sum(1) * step
    expected = (spike_mass * mu + normal_first) / (spike_mass + normal_mass)
    np.testing.assert_allclose(p0[0], spike_mass / (spike_mass + normal_mass), rtol=1e-6)
    np.testing.assert_allclose(est[0], expected, rtol=1e-6)
    assert p.max() < 1e-9


def test_agreeing_sites_are_pulled_to_the_center_and_a_far_outlier_keeps_its_estimate():
    # Six sites agree exactly, three spread widely, one is 30 SEs out.
    v = np.full(10, 0.01)
    y = np.r_[np.full(6, 0.5), 0.2, 0.85, 0.9, 3.5]
    two = reb.robust_eb(y, v)
    three = reb.robust_eb(y, v, spike=True)
    assert three.spike_prob[0, :6].min() > 0.5
    # The agreeing sites end up (nearly) at the center; the two-group fit lets its tau^2 move
    # them towards their estimates.
    assert np.abs(three.estimate[0, :6] - three.mu[0]).max() < 0.5 * np.abs(
        two.estimate[0, :6] - two.mu[0]).max() + 1e-12
    assert three.outlier_prob[0, 9] > 0.999
    assert abs(three.estimate[0, 9] - 3.5) < 0.01
    assert abs(three.mu[0] - 0.5) < 0.05


def test_identical_estimates_pool_and_the_default_is_unchanged():
    v = np.array([0.01, 0.02, 0.015, 0.01])
    same = reb.robust_eb(np.full(4, 0.3), v, spike=True)
    np.testing.assert_allclose(same.estimate, 0.3, atol=1e-12)
    rng = np.random.default_rng(2)
    y = rng.normal(size=(50, 8)) * 0.2
    vv = np.full_like(y, 0.02)
    plain = reb.robust_eb(y, vv)
    assert plain.spike_prob is None and not plain.spike
    # Without sites at the center (weight at its floor) the three-group model is the two-group one.
    p, p0 = reb._group_probs(y, vv, plain.mu, plain.tau2, plain.eps,
                             np.full(50, 1e-300), "t", 5.0)
    np.testing.assert_allclose(p, plain.outlier_prob, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(reb.posterior_mean(y, vv, plain.mu, plain.tau2, p, p0),
                               plain.estimate, rtol=1e-9, atol=1e-12)


def test_bootstrap_draws_point_mass_sites_at_the_center():
    y = np.r_[np.zeros(12), 0.3, -0.4][None, :]
    v = np.full_like(y, 0.01)
    fit = reb.robust_eb(y, v, spike=True)
    rng = np.random.default_rng(0)
    tau2 = np.full((1, 400), 0.05)
    slab, theta, _ = _draw_data(fit, v, 400, rng, tau2)
    at_center = (theta == fit.mu[0]) & ~slab
    # Each site is at the center in about its point-mass probability of the draws.
    np.testing.assert_allclose(at_center.mean(axis=1)[0], fit.spike_prob[0], atol=0.08)
    assert fit.spike_prob[0, :12].min() > 0.5


def test_late_fusion_option_runs_with_intervals():
    sums = agreeing_sites_and_one_far()
    fit = LateFusion(spike=True, n_boot=100, random_state=0).fit(sums)
    # The agreeing sites take the point mass; the far site keeps its own estimate (here through
    # a normal group with a large tau^2, which the point mass leaves free to take it).
    assert fit.method_details_["spike_prob"][:7, 0].min() > 0.5
    own = sums["s7"].theta[0]
    assert abs(fit.theta_[-1, 0] - own) < 0.1 * 0.05
    assert np.all(fit.inference_.lower <= fit.theta_) and np.all(fit.theta_ <= fit.inference_.upper)
    with pytest.raises(ValueError, match="spike"):
        LateFusion(spike="yes").fit(sums)
