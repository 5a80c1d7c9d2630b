"""Posterior site intervals of robust EB (hetmtl.fusion.eb_posterior), checked against an
independent derivation: Gaussian conditioning by linear algebra with a vague prior on the center,
and numerical root finding of the mixture's distribution function."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy import optimize, stats

from hetmtl.fusion import LateFusion, SiteSummary
from hetmtl.fusion.eb_posterior import mixture_quantile, posterior_site_intervals, site_posterior
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
    # Components a million apart, the quantile in the gap; SDs from 1e-12 to 1e6.
    w2, m2 = np.array([[0.5, 0.5]]), np.array([[0.0, 1e6]])
    assert mixture_quantile(w2, m2, np.array([[1.0, 1.0]]), 0.25)[0] == pytest.approx(0.0, abs=1e-9)
    assert mixture_quantile(w2, m2, np.array([[1.0, 1.0]]), 0.75)[0] == pytest.approx(1e6, abs=1e-6)
    s3 = np.array([[1e-12, 1.0, 1e6]])
    w3, m3 = np.array([[0.3, 0.4, 0.3]]), np.array([[0.0, 5.0, 0.0]])
    for q in (0.1, 0.5, 0.9):
        x3 = mixture_quantile(w3, m3, s3, q)[0]
        assert (w3 * stats.norm.cdf((x3 - m3) / s3)).sum() == pytest.approx(q, abs=1e-9)
    # One component: the normal quantile.
    one = mixture_quantile(np.ones((1, 1)), np.full((1, 1), 2.0), np.full((1, 1), 0.5), prob)
    assert one[0] == pytest.approx(2.0 + 0.5 * stats.norm.ppf(prob), abs=1e-10)


def flat_prior_posterior(y, v, t2):
    """Mean and SDs of theta | y under theta = mu + u, u ~ N(0, t2 I), mu flat: Gaussian
    conditioning with the prior precision of theta (I - 11'/K) / t2 (the limit of a vague normal
    prior on mu), plus the log marginal likelihood under a vague N(0, big^2) prior on mu (up to
    the big^-1 constant, which cancels between values of tau)."""
    K, big = y.size, 1e2
    cov = np.linalg.inv((np.eye(K) - 1.0 / K) / t2 + np.diag(1.0 / v))
    logml = stats.multivariate_normal(np.zeros(K), t2 * np.eye(K) + big**2 + np.diag(v)).logpdf(y)
    return cov @ (y / v), np.sqrt(np.diag(cov)), logml


GRID_POINTS = [20, 57, 199, 399]


def check_normal_components(weights, means, sds, tau, y, v, sites):
    """The normal components of ``sites`` (columns of y) against flat_prior_posterior."""
    logml = []
    for j in GRID_POINTS:
        mean, sd, lm = flat_prior_posterior(y, v, tau[j] ** 2)
        np.testing.assert_allclose(means[sites, j], mean[sites], rtol=0, atol=1e-9)
        np.testing.assert_allclose(sds[sites, j], sd[sites], rtol=1e-7)
        logml.append(lm)
    for k in sites:
        np.testing.assert_allclose(np.log(weights[k, GRID_POINTS] / weights[k, GRID_POINTS[0]]),
                                   np.array(logml) - logml[0], atol=1e-5)


def test_components_match_gaussian_conditioning_with_a_flat_center_prior():
    # Every site normal: each tau's component is the flat-prior Gaussian posterior, and the grid
    # weights are the marginal likelihood p(y | tau). (Data centered so that a moderate big is
    # vague and the algebra well conditioned.)
    y, v = data(2, tau=0.1)
    y = y - y.mean()
    fit = robust_eb(y, v)
    fit = dataclasses.replace(fit, outlier_prob=np.zeros_like(fit.outlier_prob))
    post = site_posterior(fit, y[None], v[None])
    weights, means, sds = (a[0] for a in post.mixture())
    check_normal_components(weights, means, sds, post.tau[0], y, v, list(range(y.size)))
    # The outlying component: the site's own estimate and variance, with weight 0 here.
    np.testing.assert_allclose(means[:, -1], y)
    np.testing.assert_allclose(sds[:, -1], np.sqrt(v))
    assert np.all(weights[:, -1] == 0)


def test_a_certain_outlier_leaves_the_normal_group_and_a_doubtful_site_counts_in_full():
    # Site 0 surely outlying (probability 1), site 1 doubtful (probability 0.6). Given that it
    # is normal, site 1 counts in full, so its normal components are the flat-prior posterior of
    # the data set without site 0, with total weight 0.4, and its outlying component N(y_1, v_1)
    # has weight 0.6. (The other sites' components count site 1 with weight 0.4.)
    y, v = data(5, tau=0.08, shift=0.6)
    y = y - y[1:].mean()
    fit = robust_eb(y, v)
    prob = np.zeros_like(fit.outlier_prob)
    prob[0, 0], prob[0, 1] = 1.0, 0.6
    post = site_posterior(dataclasses.replace(fit, outlier_prob=prob), y[None], v[None])
    weights, means, sds = (a[0] for a in post.mixture())
    rest = slice(1, None)
    check_normal_components(weights[rest], means[rest], sds[rest], post.tau[0], y[rest], v[rest], [0])
    assert weights[1, :-1].sum() == pytest.approx(0.4) and weights[1, -1] == pytest.approx(0.6)
    assert weights[0, :-1].sum() == 0 and weights[0, -1] == 1
    lo, hi = post.interval(0.95)
    z = stats.norm.ppf(0.975)
    assert lo[0, 0] == pytest.approx(min(y[0] - z * np.sqrt(v[0]), fit.estimate[0, 0]), abs=1e-9)
    # Site 1's ends solve the mixture's distribution function, assembled independently.
    comps = [flat_prior_posterior(y[rest], v[rest], t**2)[:2] for t in post.tau[0]]
    m = np.array([c[0][0] for c in comps] + [y[1]])
    sd = np.array([c[1][0] for c in comps] + [np.sqrt(v[1])])
    lik = np.array([flat_prior_posterior(y[rest], v[rest], t**2)[2] for t in post.tau[0]])
    w = np.append(0.4 * np.exp(lik - lik.max()) / np.exp(lik - lik.max()).sum(), 0.6)
    cdf = lambda x, q: (w * stats.norm.cdf((x - m) / sd)).sum() - q  # noqa: E731
    assert lo[0, 1] == pytest.approx(min(optimize.brentq(cdf, -5, 5, args=(0.025,)), fit.estimate[0, 1]),
                                     abs=1e-7)
    assert hi[0, 1] == pytest.approx(max(optimize.brentq(cdf, -5, 5, args=(0.975,)), fit.estimate[0, 1]),
                                     abs=1e-7)


def test_every_site_outlying_gives_the_own_intervals():
    y, v = data(6)
    fit = robust_eb(y, v)
    fit = dataclasses.replace(fit, outlier_prob=np.ones_like(fit.outlier_prob), estimate=y[None])
    lo, hi = posterior_site_intervals(fit, y[None], v[None], 0.95)
    z = stats.norm.ppf(0.975)
    np.testing.assert_allclose(lo[0], y - z * np.sqrt(v), atol=1e-9)
    np.testing.assert_allclose(hi[0], y + z * np.sqrt(v), atol=1e-9)


def test_an_uninformative_site_does_not_widen_the_others():
    # A site with an SE a hundred times the others' (estimate at the others' center) carries no
    # information about tau; the tau grid must stay fine where the others' likelihood is.
    y, v = data(7, tau=0.0)
    lo, hi = posterior_site_intervals(robust_eb(y, v), y[None], v[None], 0.95)
    y2, v2 = np.append(y, y.mean()), np.append(v, 100.0**2 * v.max())
    lo2, hi2 = posterior_site_intervals(robust_eb(y2, v2), y2[None], v2[None], 0.95)
    np.testing.assert_allclose((hi2 - lo2)[0, :-1], (hi - lo)[0], rtol=0.03)


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
    assert LateFusion(n_boot=20, random_state=0, **options).fit(sites()).site_intervals_ == "bootstrap"
    assert LateFusion(inference="none", **options).fit(sites()).site_intervals_ is None
    with pytest.raises(ArgumentError, match=f"site_intervals.*{blocked}"):
        LateFusion(site_intervals="posterior", **options).fit(sites())


def test_bad_site_intervals_are_refused():
    assert SITE_INTERVALS == ("posterior", "bootstrap")
    with pytest.raises(ArgumentError, match="site_intervals: must be one of"):
        LateFusion(site_intervals="wald").fit(sites())
    with pytest.raises(ArgumentError, match="site_intervals: applies to method='robust_eb' only"):
        LateFusion(method="blup", site_intervals="posterior").fit(sites())


def test_a_fit_saved_before_site_intervals_existed_reads_its_default():
    fit = LateFusion(inference="none").fit(sites())
    del fit.__dict__["site_intervals"], fit.__dict__["interval_calibration"]
    params = fit.get_params()
    assert params["site_intervals"] is None and params["interval_calibration"] == "none"


def test_site_posterior_refuses_models_without_the_mixture():
    y, v = data(10)
    with pytest.raises(ValueError, match="fit: posterior site intervals need .*spike=True"):
        site_posterior(robust_eb(y, v, spike=True), y[None], v[None])
    with pytest.raises(ValueError, match="outlying_group='nonlocal'"):
        site_posterior(robust_eb(y, v, outlying_group="nonlocal"), y[None], v[None])
