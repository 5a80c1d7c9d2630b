"""Posterior site intervals of robust EB (hetmtl.fusion.eb_posterior), checked against an
independent derivation: Gaussian conditioning by linear algebra with a vague prior on the center,
and numerical root finding of the mixture's distribution function."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy import optimize, stats

from hetmtl.fusion import LateFusion, SiteSummary
from hetmtl.fusion.eb_intervals import tau_posterior
from hetmtl.fusion.eb_posterior import mixture_quantile, posterior_site_intervals, site_mixture
from hetmtl.fusion.robust_eb import robust_eb
from hetmtl.fusion.summary_methods import SITE_INTERVALS
from hetmtl._util.validation import ArgumentError

N = np.geomspace(100, 1000, 8)


def data(seed: int, tau: float = 0.05, shift: float = 0.0):
    rng = np.random.default_rng(seed)
    v = 1.0 / N
    theta = 0.3 + tau * rng.standard_normal(N.size)
    theta[0] += shift
    return theta + np.sqrt(v) * rng.standard_normal(N.size), v


@pytest.mark.parametrize("prob", [0.025, 0.5, 0.975])
def test_mixture_quantile_solves_the_distribution_function(prob):
    rng = np.random.default_rng(1)
    w = rng.dirichlet(np.ones(5), size=(3, 4))
    m = rng.normal(0, 3, size=(3, 4, 5))
    s = rng.uniform(0.01, 2, size=(3, 4, 5))
    x = mixture_quantile(w, m, s, prob)
    for i, j in np.ndindex(3, 4):
        cdf = lambda t: (w[i, j] * stats.norm.cdf((t - m[i, j]) / s[i, j])).sum() - prob  # noqa: E731
        assert x[i, j] == pytest.approx(optimize.brentq(cdf, -50, 50, xtol=1e-13), abs=1e-9)
    # One component: the normal quantile.
    one = mixture_quantile(np.ones((1, 1)), np.full((1, 1), 2.0), np.full((1, 1), 0.5), prob)
    assert one[0] == pytest.approx(2.0 + 0.5 * stats.norm.ppf(prob), abs=1e-10)


def test_components_match_gaussian_conditioning_with_a_flat_center_prior():
    # At each tau of the grid, theta | y is what Gaussian conditioning gives under the prior
    # theta = mu + u, u ~ N(0, tau^2 I), mu flat: the prior precision of theta is then
    # (I - 11'/K) / tau^2 (the limit of a vague normal prior on mu), so the posterior precision
    # is that plus diag(1 / v). The grid weights are the marginal likelihood p(y | tau) under a
    # vague N(mean(y), big^2) prior on mu (its big^-1 constant cancels), normalized. The
    # outlying group is switched off.
    y, v = data(2, tau=0.1)
    y = y - y.mean()
    fit = robust_eb(y, v)
    fit = dataclasses.replace(fit, outlier_prob=np.zeros_like(fit.outlier_prob))
    mix = site_mixture(fit, y[None], v[None])
    tau, prob = tau_posterior(fit, y[None], v[None])
    big, K = 1e2, y.size
    grid_points = [20, 57, 199, 399]
    logml = []
    for j in grid_points:
        t2 = tau[0, j] ** 2
        precision = (np.eye(K) - 1.0 / K) / t2 + np.diag(1.0 / v)
        cov = np.linalg.inv(precision)
        np.testing.assert_allclose(mix.means[0, :, j], cov @ (y / v), rtol=0, atol=1e-9)
        np.testing.assert_allclose(mix.sds[0, :, j], np.sqrt(np.diag(cov)), rtol=1e-7)
        marginal = t2 * np.eye(K) + big**2 + np.diag(v)
        logml.append(stats.multivariate_normal(np.zeros(K), marginal).logpdf(y))
    np.testing.assert_allclose(np.diff(logml), np.diff(np.log(prob[0, grid_points])), atol=1e-5)
    # The outlying component: the site's own estimate and variance.
    np.testing.assert_allclose(mix.means[0, :, -1], y)
    np.testing.assert_allclose(mix.sds[0, :, -1], np.sqrt(v))


def test_outlier_probability_mixes_in_the_own_interval():
    y, v = data(3, shift=0.8)                                     # site 0 about 8 SEs out
    fit = robust_eb(y, v)
    assert fit.outlier_prob[0, 0] > 0.99
    lo, hi = posterior_site_intervals(fit, y[None], v[None], 0.95)
    z = stats.norm.ppf(0.975)
    assert lo[0, 0] == pytest.approx(y[0] - z * np.sqrt(v[0]), abs=2e-3)
    assert hi[0, 0] == pytest.approx(y[0] + z * np.sqrt(v[0]), abs=2e-3)


def test_batch_equals_one_at_a_time_and_intervals_contain_estimates():
    ys, vs = zip(*(data(s, tau=t, shift=d) for s, t, d in
                   [(4, 0.0, 0.0), (5, 0.05, 0.0), (6, 0.1, 0.5), (7, 0.02, -0.3)]))
    y, v = np.stack(ys), np.stack(vs)
    fit = robust_eb(y, v)
    lo, hi = posterior_site_intervals(fit, y, v, 0.9)
    for b in range(y.shape[0]):
        one = robust_eb(y[b], v[b])
        lo1, hi1 = posterior_site_intervals(one, y[b:b + 1], v[b:b + 1], 0.9)
        np.testing.assert_allclose(lo1[0], lo[b], atol=1e-10)
        np.testing.assert_allclose(hi1[0], hi[b], atol=1e-10)
    assert np.all(lo <= fit.estimate) and np.all(fit.estimate <= hi)
    lo80, hi80 = posterior_site_intervals(fit, y, v, 0.8)
    assert np.all(lo <= lo80) and np.all(hi80 <= hi)


def test_shift_and_scale_equivariance():
    y, v = data(8, tau=0.06)
    lo, hi = posterior_site_intervals(robust_eb(y, v), y[None], v[None], 0.95)
    a, c = 3.0, 2.5
    y2, v2 = a + c * y, c**2 * v
    lo2, hi2 = posterior_site_intervals(robust_eb(y2, v2), y2[None], v2[None], 0.95)
    np.testing.assert_allclose(lo2, a + c * lo, rtol=1e-6)
    np.testing.assert_allclose(hi2, a + c * hi, rtol=1e-6)


def sites(seed: int = 9) -> dict[str, SiteSummary]:
    y, v = data(seed, tau=0.08)
    return {f"s{k}": SiteSummary.from_estimate(float(t), se=float(np.sqrt(vk)), n=int(n))
            for k, (t, vk, n) in enumerate(zip(y, v, N))}


def test_late_fusion_default_uses_posterior_site_intervals():
    fit = LateFusion(random_state=0).fit(sites())
    assert fit.site_intervals_ == "posterior" and fit.inference_.method == "eb_posterior"
    inf = fit.inference_
    assert np.all(inf.lower <= fit.theta_) and np.all(fit.theta_ <= inf.upper)
    boot = LateFusion(random_state=0, site_intervals="bootstrap").fit(sites())
    assert boot.inference_.method == "eb_bootstrap"
    # Same estimates and the same center interval; only the sites' intervals differ.
    np.testing.assert_array_equal(boot.theta_, fit.theta_)
    np.testing.assert_array_equal(boot.inference_.center_lower, inf.center_lower)
    assert not np.allclose(boot.inference_.lower, inf.lower)
    # Another level: recomputed from the stored mixtures, nested in the 95% interval.
    at90 = inf.at_level(0.9)
    assert np.all(inf.lower <= at90.lower) and np.all(at90.upper <= inf.upper)
    again = LateFusion(random_state=0, level=0.9).fit(sites()).inference_
    np.testing.assert_allclose(at90.lower, again.lower, atol=1e-12)
    np.testing.assert_allclose(at90.center_upper, again.center_upper, atol=1e-12)


@pytest.mark.parametrize("options, blocked", [({"spike": True}, "spike"),
                                              ({"model_average": True}, "model_average"),
                                              ({"outlying_group": "nonlocal"}, "nonlocal"),
                                              ({"interval_calibration": "double"}, "double")])
def test_models_without_the_mixture_fall_back_to_the_bootstrap(options, blocked):
    assert LateFusion(inference="none", **options).fit(sites()).site_intervals_ == "bootstrap"
    with pytest.raises(ArgumentError, match=f"site_intervals.*{blocked}"):
        LateFusion(site_intervals="posterior", **options).fit(sites())


def test_bad_site_intervals_are_refused():
    assert SITE_INTERVALS == ("posterior", "bootstrap")
    with pytest.raises(ArgumentError, match="site_intervals: must be one of"):
        LateFusion(site_intervals="wald").fit(sites())
    with pytest.raises(ArgumentError, match="site_intervals: applies to method='robust_eb' only"):
        LateFusion(method="blup", site_intervals="posterior").fit(sites())
