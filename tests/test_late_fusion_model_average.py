"""Robust EB averaged with pooling by the posterior probability that all sites are equal."""

from __future__ import annotations

import numpy as np
import pytest
from fusion_helpers import agreeing_sites_and_one_far
from scipy import integrate, stats

from hetmtl.fusion import LateFusion
from hetmtl.fusion import homogeneity_bma as bma
from hetmtl.fusion import outlying_groups
from hetmtl.fusion import robust_eb as reb
from hetmtl.fusion.eb_intervals import robust_eb_errors

Y = np.array([[0.1, -0.3, 0.5], [0.0, 2.0, -1.5]])
V = np.array([[0.2, 0.3, 0.25], [0.2, 0.3, 0.25]])
EPS = np.array([0.1, 0.2])


def _brute_force_log_marginals(y, v, eps):
    """Both marginal likelihoods by adaptive quadrature over mu (flat) and tau (half-normal)."""
    s = np.sqrt(v.mean())

    def robust(mu, tau):
        sk = v + tau**2
        z = (y - mu) / np.sqrt(sk)
        t_group = stats.t.pdf(z / outlying_groups.T_GROUP_SCALE, outlying_groups.T_GROUP_DF)
        dens = (1 - eps) * stats.norm.pdf(z) + eps * t_group / outlying_groups.T_GROUP_SCALE
        return np.prod(dens / np.sqrt(sk)) * 2 * stats.norm.pdf(tau / s) / s

    m1, _ = integrate.dblquad(robust, 0, 12 * s, -20, 20, epsabs=1e-13)
    m0, _ = integrate.quad(lambda mu: np.prod(stats.norm.pdf(y, mu, np.sqrt(v))), -20, 20,
                           epsabs=1e-14)
    return np.log(m0), np.log(m1)


def test_marginal_likelihoods_match_numerical_integration():
    lm0 = bma.log_marginal_homogeneous(Y, V)
    lm1 = bma.log_marginal_robust(Y, V, EPS)
    for b in range(2):
        want0, want1 = _brute_force_log_marginals(Y[b], V[b], EPS[b])
        np.testing.assert_allclose(lm0[b], want0, atol=1e-8)
        # Far-apart sites make the integrand in mu multimodal: a few thousandths in the log.
        np.testing.assert_allclose(lm1[b], want1, atol=5e-3)
    np.testing.assert_allclose(bma.homogeneous_weight(Y, V, EPS),
                               1 / (1 + np.exp(lm1 - lm0)), rtol=1e-12)


def test_identical_sites_favor_the_pool_and_far_apart_sites_the_robust_model():
    # Identical estimates with equal variances: the Bayes factor of M1 is the half-normal
    # expectation of (1 + u^2)^(-(K - 1) / 2), u = tau / s (times (1 - eps)^K, eps fitted ~ 0).
    weights = []
    for K in (8, 30):
        fit = reb.robust_eb(np.full(K, 0.3), np.full(K, 0.02), model_average=True)
        bf10, _ = integrate.quad(lambda u: 2 * stats.norm.pdf(u) * (1 + u**2) ** (-(K - 1) / 2),
                                 0, np.inf)
        bf10 *= (1 - fit.eps[0]) ** K
        np.testing.assert_allclose(fit.homogeneous_weight[0], 1 / (1 + bf10), atol=2e-3)
        np.testing.assert_allclose(fit.estimate, 0.3, atol=1e-12)
        weights.append(fit.homogeneous_weight[0])
    # The evidence for equality grows with the number of agreeing sites.
    assert 0.7 < weights[0] < weights[1]
    v = np.random.default_rng(0).uniform(0.01, 0.05, size=8)
    apart = reb.robust_eb(np.arange(8.0), v, model_average=True)
    assert apart.homogeneous_weight[0] < 1e-6
    np.testing.assert_allclose(apart.estimate, reb.robust_eb(np.arange(8.0), v).estimate,
                               atol=1e-6)


def test_estimate_is_the_weighted_average_of_pool_and_robust_eb():
    rng = np.random.default_rng(1)
    v = rng.uniform(0.01, 0.05, size=(40, 10))
    y = rng.normal(0, np.sqrt(v + rng.choice([0.0, 0.02], size=(40, 1))))
    plain = reb.robust_eb(y, v)
    avg = reb.robust_eb(y, v, model_average=True)
    w0 = avg.homogeneous_weight[:, None]
    pooled = (y / v).sum(axis=1, keepdims=True) / (1 / v).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(avg.estimate, w0 * pooled + (1 - w0) * plain.estimate, rtol=1e-10)
    assert w0.min() < 0.1 and 0.5 < w0.max() < 1     # both kinds of data set are in the batch
    with pytest.raises(ValueError, match="model_average"):
        reb.robust_eb(y, v, model_average=True, spike=True)


def test_bootstrap_refits_the_averaged_estimator():
    rng = np.random.default_rng(2)
    v = np.full((1, 12), 0.02)
    y = 0.3 + np.sqrt(v) * rng.standard_normal((1, 12))
    fit = reb.robust_eb(y, v, model_average=True)
    refits = []

    def spy(yy, vv):
        refits.append(reb.robust_eb(yy, vv, model_average=True))
        return refits[-1]

    spied = robust_eb_errors(fit, y, v, n_boot=50, rng=np.random.default_rng(3), refit=spy)
    default = robust_eb_errors(fit, y, v, n_boot=50, rng=np.random.default_rng(3))
    # The default refit is the averaged estimator (the same errors as an explicit one).
    np.testing.assert_array_equal(default.abs_errors, spied.abs_errors)
    assert refits[0].homogeneous_weight.shape == (50,)
    plain = robust_eb_errors(reb.robust_eb(y, v), y, v, n_boot=50, rng=np.random.default_rng(3))
    assert not np.allclose(plain.abs_errors, default.abs_errors, equal_nan=True)


def test_late_fusion_option_with_intervals_and_bad_input():
    sums = agreeing_sites_and_one_far()
    fit = LateFusion(model_average=True, n_boot=100, random_state=0).fit(sums)
    assert fit.method_details_["homogeneous_weight"][0] < 1e-6    # a site 24 SEs out
    own = sums["s7"].theta[0]
    assert abs(fit.theta_[-1, 0] - own) < 0.1 * 0.05
    inf = fit.inference_
    assert np.all(inf.lower <= fit.theta_) and np.all(fit.theta_ <= inf.upper)
    assert inf.center_lower[0] <= fit.center_[0] <= inf.center_upper[0]
    with pytest.raises(ValueError, match="model_average"):
        LateFusion(model_average="yes").fit(sums)
    with pytest.raises(ValueError, match="model_average"):
        LateFusion(model_average=True, spike=True).fit(sums)
