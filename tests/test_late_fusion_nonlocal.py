"""Robust EB's non-local outlying group: its density, posterior mean, draws and where it helps."""

from __future__ import annotations

import numpy as np
import pytest
from fusion_helpers import agreeing_sites_and_one_far
from scipy import stats

from hetmtl.fusion import LateFusion, outlying_groups
from hetmtl.fusion.eb_intervals import robust_eb_errors
from hetmtl.fusion.robust_eb import robust_eb
from hetmtl.studies.late_fusion_panel import DESIGNS, SummaryDesign, draw_effects, draw_estimates

C = outlying_groups.NONLOCAL_SCALE
GRID = np.linspace(-400, 400, 800001)


def _prior_density() -> np.ndarray:
    """The group's density of the shift on GRID, as the mixture it is defined by (no noise)."""
    lam = outlying_groups._LAMBDA
    mix = np.exp(outlying_groups._LOG_MIX)
    a = C**2 / lam
    return (mix * GRID[:, None] ** 2 / a * stats.norm.pdf(GRID[:, None], scale=np.sqrt(a))).sum(1)


def test_scale_puts_five_percent_of_the_group_inside_the_normal_range():
    prior = _prior_density()
    step = GRID[1] - GRID[0]
    assert prior.sum() * step == pytest.approx(1.0, abs=1e-3)
    inside = prior[np.abs(GRID) < stats.norm.ppf(0.975)].sum() * step
    assert inside == pytest.approx(0.05, abs=0.003)
    # The draws of the bootstrap follow the same density.
    draws = outlying_groups.draw_shift("nonlocal", (400000,), C, np.random.default_rng(0))
    assert np.mean(np.abs(draws) < 1.96) == pytest.approx(inside, abs=0.002)
    assert np.mean(np.abs(draws) > 20) == pytest.approx(
        prior[np.abs(GRID) > 20].sum() * step, abs=0.002)


@pytest.mark.parametrize("r", [1.0, 0.3])
def test_density_and_posterior_mean_are_the_prior_convolved_with_the_noise(r):
    # Numerical convolution of the shift's density with N(0, r) against the closed forms.
    prior = _prior_density()
    step = GRID[1] - GRID[0]
    z = np.array([0.0, 0.7, 2.0, 3.5, 8.0, 25.0])
    like = stats.norm.pdf(z[:, None], loc=GRID[None, :], scale=np.sqrt(r))
    marginal = (like * prior).sum(1) * step
    mean = (like * prior * GRID).sum(1) * step / marginal
    rr = np.full_like(z, r)
    np.testing.assert_allclose(np.exp(outlying_groups.log_density("nonlocal", z, rr, C)),
                               marginal, rtol=1e-4)
    np.testing.assert_allclose(outlying_groups.posterior_shift("nonlocal", z, rr, C), mean,
                               atol=1e-4)


def test_limits_and_a_far_outlier():
    v = np.array([0.01, 0.02, 0.015, 0.01])
    same = robust_eb(np.full(4, 0.3), v, outlying_group="nonlocal")
    np.testing.assert_allclose(same.estimate, 0.3, atol=1e-12)
    assert same.tau2[0] == 0.0 and same.outlier_prob.max() < 0.01
    # A site 27 SEs out is an outlier; its estimate (its posterior mean under the outlying
    # group) stays within a fifth of its SE of its own estimate.
    y = np.array([0.30, 0.31, 0.29, 3.0])
    fit = robust_eb(y, v, outlying_group="nonlocal")
    assert fit.outlier_prob[0, 3] > 0.999
    assert abs(fit.estimate[0, 3] - 3.0) < 0.2 * np.sqrt(v[3])
    w = 1 / v[:3]
    assert fit.mu[0] == pytest.approx(np.sum(w * y[:3]) / w.sum(), abs=1e-6)
    with pytest.raises(ValueError, match="outlying_group"):
        robust_eb(y, v, outlying_group="cauchy")


def test_bootstrap_draws_outliers_from_the_group():
    # With the center and tau^2 fixed by many normal sites, the bootstrap's outlying effects
    # follow the non-local density: none near the center.
    y = np.r_[np.zeros(30), 12.0][None, :]
    v = np.full_like(y, 0.04)
    fit = robust_eb(y, v, outlying_group="nonlocal")
    rng = np.random.default_rng(3)
    errs = robust_eb_errors(fit, y, v, n_boot=300, rng=rng)
    assert not errs.own_group[0, -1] and errs.own_group[0, :-1].all()
    assert np.isfinite(errs.abs_errors[0, :, -1]).sum() > 250


def test_late_fusion_option_runs_with_intervals():
    sums = agreeing_sites_and_one_far()
    fit = LateFusion(outlying_group="nonlocal", n_boot=100, random_state=0).fit(sums)
    assert fit.method_details_["outlier_prob"][-1, 0] > 0.99
    assert np.all(fit.inference_.lower <= fit.theta_) and np.all(fit.theta_ <= fit.inference_.upper)
    with pytest.raises(ValueError, match="outlying_group"):
        LateFusion(outlying_group="cauchy").fit(sums)


def test_helps_the_other_sites_when_outliers_are_far():
    # The study's finding the option rests on: with outliers 8-10 SEs out the other sites are
    # shrunk more (no site near the center is taken for an outlier).
    design = SummaryDesign(**DESIGNS["heldout_outliers_8to10se_10pct_K30"])
    rng = np.random.default_rng(11)
    theta, outlier = draw_effects(design, 300, rng)
    y, _ = draw_estimates(design, theta, rng)
    v = np.broadcast_to(1.0 / design.sizes, y.shape).copy()
    err = {g: (robust_eb(y, v, outlying_group=g).estimate - theta) ** 2 for g in ("t", "nonlocal")}
    assert err["nonlocal"][~outlier].mean() < 0.85 * err["t"][~outlier].mean()
    assert err["nonlocal"][outlier].mean() < 1.05 * err["t"][outlier].mean()
