"""The oracle Bayes rules and the robust EB critical values of the late-fusion study."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import optimize, stats

from hetmtl.studies.late_fusion_ebci import noncoverage, robust_cva
from hetmtl.studies.late_fusion_oracle import OraclePrior, oracle_estimate


@pytest.fixture
def sites():
    rng = np.random.default_rng(0)
    n = np.round(np.geomspace(100, 1000, 10))
    v = np.broadcast_to(1 / n, (6, 10)).copy()
    s = float(np.sqrt(np.mean(1 / n)))
    y = 0.3 + s * rng.standard_normal((6, 10)) + np.sqrt(v) * rng.standard_normal((6, 10))
    return y, v, s


def test_oracle_with_one_normal_component_is_the_blup_at_the_true_tau(sites):
    # Flat prior on mu and a known tau: the posterior mean is the BLUP with the GLS center.
    y, v, s = sites
    est = oracle_estimate(y, v, OraclePrior(taus=(1.0,), eps=(0.0,), weights=(1.0,)), s)
    w = 1 / (v + s**2)
    mu = (w * y).sum(axis=1, keepdims=True) / w.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(est, mu + s**2 / (s**2 + v) * (y - mu), atol=1e-10)
    pooled = oracle_estimate(y, v, OraclePrior(taus=(0.0,), eps=(0.0,), weights=(1.0,)), s)
    np.testing.assert_allclose(pooled, np.broadcast_to(((y / v).sum(1) / (1 / v).sum(1))[:, None],
                                                       y.shape), atol=1e-10)


def test_oracle_with_outliers_matches_monte_carlo_over_the_prior():
    # Three sites, 30% outliers 3-6 own SEs up, flat mu: the posterior mean by importance
    # weighting of prior draws agrees with the grid integration.
    rng = np.random.default_rng(1)
    v = (1 / np.array([100.0, 300.0, 1000.0]))[None]
    y = np.array([[0.30, 0.33, 0.45]])
    prior = OraclePrior(taus=(0.0,), eps=(0.3,), weights=(1.0,))
    est = oracle_estimate(y, v, prior, 0.05)[0]
    m = 1_000_000
    mu = rng.uniform(0.0, 0.8, m)
    theta = mu[:, None] + (rng.random((m, 3)) < 0.3) * rng.uniform(3, 6, (m, 3)) * np.sqrt(v)
    logw = (-0.5 * (y - theta) ** 2 / v).sum(axis=1)
    w = np.exp(logw - logw.max())
    mc = (w[:, None] * theta).sum(axis=0) / w.sum()
    mc_se = np.sqrt((w[:, None] ** 2 * (theta - mc) ** 2).sum(axis=0)) / w.sum()
    assert np.all(np.abs(est - mc) < 4 * mc_se + 1e-6)
    # The far site is taken for an outlier (kept near its own estimate), the others pooled.
    assert est[2] > 0.4 and abs(est[0] - est[1]) < 1e-3
    # Counting outliers' loss more moves the far site further towards its own estimate.
    heavier = OraclePrior(taus=(0.0,), eps=(0.3,), weights=(1.0,), outlier_weight=8.0)
    assert abs(oracle_estimate(y, v, heavier, 0.05)[0, 2] - 0.45) < abs(est[2] - 0.45)


def test_two_sided_oracle_lets_a_site_far_below_keep_its_estimate():
    # A site 4 own SEs below five agreeing ones: mostly not an outlier when outliers only go up
    # (pulled more than half way to the others), an outlier when they may go either way.
    v = np.full((1, 6), 0.01)
    y = np.array([[0.30, 0.31, 0.29, 0.30, 0.32, -0.10]])
    kw = {"taus": (0.0,), "eps": (0.2,), "weights": (1.0,)}
    up = oracle_estimate(y, v, OraclePrior(**kw), 0.1)[0, 5]
    both = oracle_estimate(y, v, OraclePrior(**kw, two_sided=True), 0.1)[0, 5]
    assert up > 0.1 and both < -0.05


def test_robust_critical_values():
    z = stats.norm.ppf(0.975)
    # No bias: the normal quantile; any m2 > 0: at least the normal-effects value z sqrt(1 + m2).
    assert robust_cva(1e-8) == pytest.approx(z, rel=1e-4)
    for m2 in (0.3, 1.0, 4.0):
        assert robust_cva(m2) > z * np.sqrt(1 + m2)
        # Kurtosis 1 leaves only the two-point distribution with b^2 = m2.
        exact = optimize.brentq(lambda c: noncoverage(m2, c) - 0.05, 0.1, 20)
        assert robust_cva(m2, kappa=1.0) == pytest.approx(exact, rel=1e-4)
        # A kurtosis bound (normal: 3) sits between the two-point and second-moment-only values.
        assert exact < robust_cva(m2, kappa=3.0) < robust_cva(m2)
