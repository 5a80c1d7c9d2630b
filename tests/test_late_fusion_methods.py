"""The methods of LateFusion beside the penalized fusion: robust EB (default), BLUP, fixed, own."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from hetmtl.fusion import LateFusion
from hetmtl.fusion.late_fusion import LambdaSelectionWarning
from hetmtl.fusion.summary import SiteSummary

# The issue's example: outliers at the two largest sites; the basic bootstrap interval of the
# penalized fusion's center (0.3964) was (0.3142, 0.3841), without the center itself.
ISSUE_N = np.array([100, 139, 193, 268, 373, 518, 720, 1000])
ISSUE_THETA = np.array([.2727, .3325, .2586, .3071, .2957, .3255, .6111, .5494])


def issue_sites():
    return [SiteSummary.from_estimate(t, 1 / np.sqrt(n), n=float(n), site=f"s{k}")
            for k, (t, n) in enumerate(zip(ISSUE_THETA, ISSUE_N))]


@pytest.mark.parametrize("params", [{"method": "fusion", "lam": 2.5}, {}, {"method": "blup"},
                                    {"method": "fixed"}, {"method": "own"}])
def test_issue_example_center_and_sites_inside_their_intervals(params):
    fit = LateFusion(n_boot=400, random_state=0, **params).fit(issue_sites())
    c = fit.center_summary().iloc[0]
    assert c["ci lower"] <= c["center"] <= c["ci upper"]
    s = fit.summary()
    assert np.all((s["fused ci lower"] <= s["fused estimate"])
                  & (s["fused estimate"] <= s["fused ci upper"]))
    # Every table keeps each site's own DML interval.
    np.testing.assert_allclose(s["ci upper"] - s["ci lower"], 2 * 1.959964 / np.sqrt(ISSUE_N),
                               rtol=1e-5)


def test_default_is_robust_eb_and_keeps_the_outlying_large_sites():
    fit = LateFusion(n_boot=400, random_state=0).fit(issue_sites())
    assert fit.method_ == "robust_eb" and np.isnan(fit.lambda_)
    # Sites 6 and 7 lie about 8 of their own SEs above the rest: they keep their own estimates
    # (to a hundredth of their SE) and the center stays with the other six sites.
    se = 1 / np.sqrt(ISSUE_N)
    moved = np.abs(fit.theta_[6:, 0] - ISSUE_THETA[6:])
    assert np.all(moved < 0.01 * se[6:])
    assert not fit.fused_mask_[6:].any() and fit.fused_mask_[:6].all()
    w = ISSUE_N[:6]
    gls_rest = np.sum(w * ISSUE_THETA[:6]) / w.sum()
    assert abs(fit.center_[0] - gls_rest) < 0.25 / np.sqrt(w.sum())
    assert fit.method_details_["outlier_prob"][6:, 0].min() > 0.99


def test_from_estimate_with_standard_errors_above_one():
    s = SiteSummary.from_estimate(10.0, se=2.0)
    assert s.n == pytest.approx(0.25)
    np.testing.assert_allclose(s.se, [2.0])
    sites = [SiteSummary.from_estimate(e, se=se, site=f"s{i}")
             for i, (e, se) in enumerate([(10.0, 2.0), (12.0, 3.0), (9.0, 2.5), (30.0, 2.0)])]
    for params in ({}, {"method": "fusion", "lam": 1.0}, {"method": "blup"}):
        fit = LateFusion(n_boot=100, random_state=1, **params).fit(sites)
        assert np.all(np.isfinite(fit.theta_))
    # Units do not matter: the same data in units 1000 times smaller give the same fit, scaled.
    small = [SiteSummary.from_estimate(s.theta / 1000, se=s.se / 1000, site=s.site) for s in sites]
    a = LateFusion(inference="none").fit(sites)
    b = LateFusion(inference="none").fit(small)
    np.testing.assert_allclose(b.theta_ * 1000, a.theta_, rtol=1e-6)
    with pytest.raises(ValueError, match=r"n: must lie in \(0, inf\)"):
        SiteSummary(theta=[1.0], J=[[-1.0]], Omega=[[1.0]], n=0.0)


def test_blup_method_equals_batched_random_effects_and_p2_runs_per_coefficient():
    from hetmtl.fusion.blup import random_effects

    rng = np.random.default_rng(3)
    theta = rng.normal(size=(6, 2))
    se = rng.uniform(0.2, 0.5, size=(6, 2))
    sites = [SiteSummary.from_estimate(t, s, site=f"s{k}", coef_names=["a", "b"])
             for k, (t, s) in enumerate(zip(theta, se))]
    for tau2_method in ("DL", "REML"):
        fit = LateFusion(method="blup", tau2_method=tau2_method).fit(sites)
        for j in range(2):
            ref = random_effects(theta[:, j], se[:, j] ** 2, method=tau2_method)
            np.testing.assert_allclose(fit.theta_[:, j], ref.blup[0], rtol=1e-12)
            np.testing.assert_allclose(fit.center_[j], ref.mu[0], rtol=1e-12)
    eb = LateFusion(n_boot=100, random_state=0).fit(sites)
    assert eb.theta_.shape == (6, 2) and eb.summary().shape[0] == 12
    lo, hi = eb.summary()["fused ci lower"], eb.summary()["fused ci upper"]
    assert np.all(lo <= eb.summary()["fused estimate"]) and np.all(eb.summary()["fused estimate"] <= hi)
    # The bootstrap intervals rescale to another level without refitting.
    narrow = eb.summary(level=0.8)
    assert np.all(narrow["fused ci upper"] - narrow["fused ci lower"] <= hi - lo + 1e-12)


def test_batched_tau2_equals_meta_analysis_without_r():
    from hetmtl.fusion.blup import tau2_dl, tau2_reml
    from hetmtl.fusion.heterogeneity import meta_analysis

    rng = np.random.default_rng(7)
    se = rng.uniform(0.05, 0.3, size=(30, 6))
    y = 0.2 + rng.normal(0, 0.15, size=(30, 1)) * rng.random((30, 1)) * rng.normal(size=(30, 6)) \
        + se * rng.normal(size=(30, 6))
    reml, dl = tau2_reml(y, se**2), tau2_dl(y, se**2)
    for i in range(30):
        res = meta_analysis(y[i], se[i])
        assert reml[i] == pytest.approx(res.random_reml.tau2, rel=1e-7, abs=1e-12)
        assert dl[i] == pytest.approx(res.random_dl.tau2, rel=1e-12, abs=1e-15)


def test_robust_eb_limits():
    from hetmtl.fusion.robust_eb import robust_eb

    v = np.array([0.01, 0.02, 0.015, 0.01])
    same = robust_eb(np.full(4, 0.3), v)
    np.testing.assert_allclose(same.estimate, 0.3, atol=1e-12)
    assert same.tau2[0] == 0.0
    # A far outlier keeps its own estimate; the rest pool to their fixed-effect mean.
    y = np.array([0.30, 0.31, 0.29, 3.0])
    fit = robust_eb(y, v)
    assert fit.outlier_prob[0, 3] > 0.999 and fit.estimate[0, 3] == pytest.approx(3.0, abs=1e-6)
    w = 1 / v[:3]
    assert fit.mu[0] == pytest.approx(np.sum(w * y[:3]) / w.sum(), abs=1e-6)
    with pytest.raises(ValueError, match="slab_scale"):
        robust_eb(y, v, slab_scale=1.0)


@pytest.mark.parametrize("params", [{}, {"method": "blup"}, {"method": "fixed"}, {"method": "own"},
                                    {"method": "fusion", "lam": "cv"},
                                    {"method": "fusion", "lam": "cv", "folds": False}])
def test_outcomes_in_other_units_give_the_same_fit_scaled(params):
    # DML on rows with outcomes multiplied by 1000: every estimate, interval and the
    # chosen lambda's fusion pattern scale exactly (no threshold, floor or grid in fixed units),
    # with fold summaries (cross-validated lambda) and without (the fallback lambda).
    from dataclasses import replace

    from sklearn.linear_model import LinearRegression

    from hetmtl.fusion.site_dml import SiteDML
    from hetmtl.studies.late_fusion_rows import simulate_site

    params = dict(params)
    keep_folds = params.pop("folds", True)
    rng = np.random.default_rng(11)
    effects = [0.3, 0.32, 0.28, 0.3, 0.9, 0.31]
    rows = [simulate_site(t, n, rng) for t, n in zip(effects, [150, 200, 260, 320, 400, 500])]
    fits = {}
    for scale in (1.0, 1000.0):
        sites = []
        for k, (y, d, X) in enumerate(rows):
            est = SiteDML("plr", ml_l=LinearRegression(), ml_m=LinearRegression(), n_folds=5,
                          site=f"s{k}", random_state=k).fit(y=y * scale, d=d, x=X)
            sites.append(est.summary_ if keep_folds else replace(est.summary_, folds=()))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", LambdaSelectionWarning)
            fits[scale] = LateFusion(n_boot=200, random_state=5, **params).fit(sites)
    a, b = fits[1.0], fits[1000.0]
    np.testing.assert_allclose(b.theta_, 1000 * a.theta_, rtol=1e-7)
    np.testing.assert_allclose(b.center_, 1000 * a.center_, rtol=1e-7)
    np.testing.assert_array_equal(b.fused_mask_, a.fused_mask_)
    sa, sb = a.summary(), b.summary()
    for col in ("fused ci lower", "fused ci upper", "ci lower", "ci upper"):
        np.testing.assert_allclose(sb[col], 1000 * sa[col], rtol=1e-6)
    ca, cb = a.center_summary(), b.center_summary()
    np.testing.assert_allclose(cb[["ci lower", "ci upper"]], 1000 * ca[["ci lower", "ci upper"]],
                               rtol=1e-6)


def test_tau2_draws_follow_the_restricted_likelihood():
    # The generating tau^2 of the interval bootstrap is drawn from the normal group's restricted
    # likelihood (flat prior on tau): with five sites 10 SEs apart it is wide, and draws far
    # above the estimate must occur (a grid ending a few SEs past the estimate would cut them).
    from hetmtl.fusion.eb_intervals import draw_tau2, normal_group_reml_loglik
    from hetmtl.fusion.robust_eb import robust_eb

    y = np.array([[-1.2, -0.4, 0.1, 0.6, 1.3]])
    v = np.full((1, 5), 0.01)
    fit = robust_eb(y, v)
    draws = draw_tau2(fit, y, v, 20000, np.random.default_rng(0))[0]
    tau_hat = np.sqrt(fit.tau2[0])
    assert np.mean(np.sqrt(draws) > tau_hat + 8 * 0.1) > 0.05
    # The draws' distribution matches the likelihood computed directly on a fine grid.
    grid = np.linspace(1e-4, 8 * tau_hat, 4000)
    ll = normal_group_reml_loglik(y, v, 1 - fit.outlier_prob, grid[None, :] ** 2)[0]
    dens = np.exp(ll - ll.max())
    cdf = np.cumsum(dens) / dens.sum()
    median_direct = grid[np.searchsorted(cdf, 0.5)]
    assert np.median(np.sqrt(draws)) == pytest.approx(median_direct, rel=0.03)
    # Identical sites: tau^2 is estimated as 0 but its draws are not all 0.
    same = np.full((1, 5), 0.3)
    d0 = draw_tau2(robust_eb(same, v), same, v, 2000, np.random.default_rng(1))[0]
    assert np.all(d0 >= 0) and np.median(d0) > 0
