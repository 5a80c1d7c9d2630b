"""LateFusion: special lambdas, the PLR row-level identity, results, inputs and errors."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from fusion_helpers import residual_sites
from hetmtl.fusion import SiteSummary
from hetmtl.fusion.lambda_cv import FALLBACK_RULE
from hetmtl.fusion.late_fusion import LambdaSelectionWarning, LateFusion, SingleSiteWarning


@pytest.fixture
def sites():
    rng = np.random.default_rng(11)
    thetas = np.array([1.0, 1.05, 0.95, 1.02, 2.5, 0.98])[:, None]
    summaries, _, _ = residual_sites(rng, thetas, [150, 300, 200, 400, 250, 120])
    return summaries


def test_lambda_zero_returns_site_estimates(sites):
    fit = LateFusion(method="fusion", lam=0.0, inference="none").fit(sites)
    np.testing.assert_allclose(fit.theta_, fit.theta_hat_, rtol=0, atol=1e-12)
    assert not fit.fused_mask_.any()


def test_large_lambda_pools_all_sites(sites):
    fit = LateFusion(method="fusion", lam=1.0, inference="none").fit(sites)
    big = LateFusion(method="fusion", lam=1.01 * fit.lambda_max_, inference="none").fit(sites)
    A = big.weight_matrices_ * big.n_[:, None, None]
    pooled = np.linalg.solve(A.sum(0), np.einsum("kij,kj->i", A, big.theta_hat_))
    assert big.fused_mask_.all()
    np.testing.assert_allclose(big.theta_, np.tile(pooled, (len(sites), 1)), rtol=1e-10)


def test_outlier_keeps_its_own_estimate(sites):
    fit = LateFusion(method="fusion", random_state=0, n_boot=200).fit(sites)
    names = fit.site_names_
    outlier = names.index("s4")
    truth = np.array([1.0, 1.05, 0.95, 1.02, 2.5, 0.98])
    similar = [i for i in range(len(names)) if i != outlier]
    # The outlying site stays unfused near its own value and does not drag the center; the
    # similar sites borrow strength (some fuse) and their error shrinks.
    assert not fit.fused_mask_[outlier]
    assert abs(fit.theta_[outlier, 0] - 2.5) < 0.3
    assert fit.fused_mask_[similar].sum() >= 2
    assert abs(fit.center_[0] - 1.0) < 0.1
    err_fused = np.abs(fit.theta_[similar, 0] - truth[similar]).mean()
    err_raw = np.abs(fit.theta_hat_[similar, 0] - truth[similar]).mean()
    assert err_fused < err_raw


def test_hessian_weight_equals_row_level_penalized_problem():
    # With W_k = -J_k, late fusion of PLR summaries solves the same problem as the penalized
    # least squares on the residualized rows (the site loss is exactly quadratic).
    cp = pytest.importorskip("cvxpy")
    rng = np.random.default_rng(3)
    thetas = rng.normal(size=(4, 2))
    sizes = [60, 90, 40, 120]
    summaries, ys, ds = residual_sites(rng, thetas, sizes)
    lam = 2.0
    fit = LateFusion(method="fusion", lam=lam, weight="hessian", inference="none").fit(summaries)
    theta = cp.Variable((4, 2))
    u = cp.Variable(2)
    loss = sum(0.5 * cp.sum_squares(ys[k] - ds[k] @ theta[k]) for k in range(4))
    pen = sum(np.sqrt(sizes[k]) * cp.norm(theta[k] - u, 2) for k in range(4))
    prob = cp.Problem(cp.Minimize(loss + lam * pen))
    prob.solve(solver=cp.CLARABEL)
    # Our objective on the row-level data is no worse than the generic solver's optimum, and the
    # estimates agree to the generic solver's accuracy near the penalty's kink.
    ours = sum(0.5 * np.sum((ys[k] - ds[k] @ fit.theta_[k]) ** 2) for k in range(4)) + lam * sum(
        np.sqrt(sizes[k]) * np.linalg.norm(fit.theta_[k] - fit.center_) for k in range(4))
    assert ours <= prob.value * (1 + 1e-9)
    np.testing.assert_allclose(fit.theta_, theta.value, atol=1e-5)


def test_summary_table_and_intervals(sites):
    fit = LateFusion(method="fusion", random_state=1, n_boot=300).fit(sites)
    table = fit.summary()
    assert list(table.index) == [s.site for s in sites]
    for col in ["estimate", "std err", "ci lower", "ci upper", "fused estimate", "fused std err",
                "fused ci lower", "fused ci upper", "fused", "weight %"]:
        assert col in table.columns
    assert np.isclose(table["weight %"].sum(), 100.0)
    assert (table["ci lower"] < table["estimate"]).all() and (table["estimate"] < table["ci upper"]).all()
    narrow = fit.confint(0.5)
    wide = fit.confint(0.99)
    assert ((wide["upper"] - wide["lower"]) > (narrow["upper"] - narrow["lower"])).all()
    np.testing.assert_allclose(table["std err"], [s.se[0] for s in sites])
    center = fit.center_summary()
    assert center.loc["theta", "ci lower"] < fit.center_[0] < center.loc["theta", "ci upper"]


def test_bootstrap_is_reproducible_for_a_seed(sites):
    a = LateFusion(method="fusion", random_state=5, n_boot=200).fit(sites).summary()
    b = LateFusion(method="fusion", random_state=5, n_boot=200).fit(sites).summary()
    pd.testing.assert_frame_equal(a, b)


def test_conditional_inference_uses_gls_variance_for_fused_sites(sites):
    fit = LateFusion(method="fusion", inference="conditional").fit(sites)
    table = fit.summary()
    fused = fit.fused_mask_
    A = fit.weight_matrices_ * fit.n_[:, None, None]
    gls_se = np.sqrt(1.0 / A[fused, 0, 0].sum())
    np.testing.assert_allclose(table["fused std err"].to_numpy()[fused], gls_se)
    np.testing.assert_allclose(table["fused std err"].to_numpy()[~fused], table["std err"].to_numpy()[~fused])


def test_multivariate_summary_has_site_coef_index():
    rng = np.random.default_rng(4)
    summaries, _, _ = residual_sites(rng, rng.normal(size=(5, 3)) * 0.1, [200] * 5)
    fit = LateFusion(method="fusion", random_state=0, n_boot=100).fit(summaries)
    table = fit.summary()
    assert table.index.names == ["site", "coef"]
    assert len(table) == 15


def test_dict_input_uses_keys_as_site_names(sites):
    fit = LateFusion(method="fusion", inference="none").fit(
        {f"clinic {i}": s for i, s in enumerate(sites)})
    assert fit.site_names_[0] == "clinic 0"


@pytest.mark.parametrize("method", [None, "fusion", "blup", "fixed", "gmodel_eb"])
def test_single_site_gives_its_own_estimate_and_interval_with_a_warning(sites, method):
    # Fitting the method anyway gave robust EB a center interval about ten SEs wide, and penalized
    # fusion one narrower than the site's own.
    site = sites[0]
    with pytest.warns(SingleSiteWarning, match="a single site"):
        fit = LateFusion(method=method, n_boot=50, random_state=0).fit([site])
    se = np.sqrt(np.diag(site.cov))
    z = stats.norm.ppf(0.975)
    np.testing.assert_allclose(fit.theta_, site.theta[None])
    np.testing.assert_allclose(fit.center_, site.theta)
    table, center = fit.summary(), fit.center_summary()
    np.testing.assert_allclose(table["fused std err"], se)
    np.testing.assert_allclose(center["std err"], se)
    np.testing.assert_allclose(center["ci lower"], site.theta - z * se)
    np.testing.assert_allclose(center["ci upper"], site.theta + z * se)
    assert fit.method_ == "own" and fit.site_intervals_ is None and not fit.fused_mask_.any()
    assert "a single site: nothing to fuse" in str(fit)


def test_published_estimates_fall_back_with_a_warning():
    summaries = [SiteSummary.from_estimate(e, s, site=f"study{i}") for i, (e, s) in
                 enumerate([(0.2, 0.1), (0.25, 0.12), (0.1, 0.08), (0.9, 0.1)])]
    with pytest.warns(LambdaSelectionWarning, match="fold summaries"):
        fit = LateFusion(method="fusion", inference="none").fit(summaries)
    assert fit.lambda_rule_ == FALLBACK_RULE
    assert np.isclose(fit.lambda_, 0.1)


def test_fallback_lambda_is_in_standard_errors():
    # Published estimates with their sample sizes: the fallback penalty is C sqrt(p) times the root
    # mean inverse per-observation variance, so outcomes in other units (SEs times 1000) give a
    # lambda 1000 times smaller and the same fusion pattern.
    est, se, n = [0.2, 0.25, 0.1, 0.9], [0.1, 0.12, 0.08, 0.1], [100, 150, 200, 120]
    fits = []
    for unit in (1.0, 1000.0):
        sums = [SiteSummary.from_estimate(unit * e, unit * s, n=m, site=f"study{i}")
                for i, (e, s, m) in enumerate(zip(est, se, n))]
        with pytest.warns(LambdaSelectionWarning, match="standard errors"):
            fits.append(LateFusion(method="fusion", inference="none", C=0.3).fit(sums))
    expected = 0.3 * np.sqrt(np.mean(1 / (np.array(n) * np.array(se) ** 2)))
    assert fits[0].lambda_ == pytest.approx(expected, rel=1e-12)
    assert fits[1].lambda_ == pytest.approx(expected / 1000, rel=1e-12)
    np.testing.assert_allclose(fits[1].theta_, 1000 * fits[0].theta_, rtol=1e-7)
    np.testing.assert_array_equal(fits[1].fused_mask_, fits[0].fused_mask_)


def test_cv_curve_is_exposed(sites):
    fit = LateFusion(method="fusion", inference="none").fit(sites)
    curve = fit.cv_.to_frame()
    assert len(curve) == fit.n_lambda
    assert fit.lambda_ == curve["lambda"][curve["cv_score"].idxmin()]
    fit1se = LateFusion(method="fusion", inference="none", cv_rule="1se").fit(sites)
    assert fit1se.lambda_ >= fit.lambda_


def test_pickle_params_and_json(sites):
    fit = LateFusion(method="fusion", random_state=0, n_boot=50).fit(sites)
    again = pickle.loads(pickle.dumps(fit))
    np.testing.assert_array_equal(again.theta_, fit.theta_)
    assert fit.get_params()["penalty"] == "l2"
    fit.set_params(penalty="l2sq")
    assert fit.penalty == "l2sq"
    json.dumps(fit.to_dict())


def test_squared_penalty_never_fuses_exactly(sites):
    fit = LateFusion(method="fusion", lam=5.0, penalty="l2sq", inference="none").fit(sites)
    assert not fit.fused_mask_.any()
    spread_raw = np.ptp(fit.theta_hat_[:, 0])
    assert np.ptp(fit.theta_[:, 0]) < spread_raw


@pytest.mark.parametrize("kwargs, match", [
    ({"lam": -1.0}, "lam"),
    ({"lam": "aic"}, "lam"),
    ({"weight": "inverse"}, "weight"),
    ({"penalty": "l1"}, "penalty"),
    ({"inference": "jackknife"}, "inference"),
    ({"n_boot": 1}, "n_boot"),
    ({"level": 1.5}, "level"),
    ({"cv_rule": "2se"}, "cv_rule"),
    ({"method": "bayes"}, "method"),
    ({"tau2_method": "PM"}, "tau2_method"),
    ({"method": "blup", "test": "t"}, "test"),
    ({"test": "knha"}, "test: applies to method='blup' only"),
    ({"slab_scale": 0.5}, "slab_scale"),
    ({"method": "blup", "lam": 1.0}, "lam"),
])
def test_bad_options_name_the_argument(sites, kwargs, match):
    with pytest.raises(ValueError, match=match):
        LateFusion(**kwargs).fit(sites)


def test_bad_summaries(sites):
    with pytest.raises(ValueError, match="at least one"):
        LateFusion().fit([])
    with pytest.raises(ValueError, match="not a SiteSummary"):
        LateFusion().fit([sites[0], {"theta": 1}])
    with pytest.raises(ValueError, match="unique"):
        LateFusion().fit([sites[0], sites[0]])
    rng = np.random.default_rng(0)
    two_dim, _, _ = residual_sites(rng, np.ones((1, 2)), [100])
    with pytest.raises(ValueError, match="coefficient"):
        LateFusion().fit({"a": sites[0], "b": two_dim[0]})
    with pytest.raises(RuntimeError, match="fit"):
        LateFusion().summary()


def test_leave_one_out_moves_center_most_for_outlier(sites):
    fit = LateFusion(method="fusion", inference="none").fit(sites)
    loo = fit.leave_one_out()
    assert list(loo.index) == fit.site_names_
    assert np.isfinite(loo["center"]).all()


def test_plots_render(sites, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    fit = LateFusion(method="fusion", random_state=0, n_boot=100).fit(sites)
    fig = fit.plot_forest()
    fig.savefig(tmp_path / "forest.png")
    fig2 = fit.plot_path()
    fig2.savefig(tmp_path / "path.png")
    assert (tmp_path / "forest.png").stat().st_size > 1000
    with pytest.raises(ValueError, match="coef"):
        fit.plot_forest(coef="beta")


def test_bootstrap_intervals_cover_unfused_outlying_sites():
    """Summary-level simulation with known truth: 8 sites at 0 and 2 outlying sites at 2 (20
    standard errors away); lam = 1 fuses the 8 and moves the 2 toward the center by one standard
    error. The outlying sites' fused intervals must still cover at the nominal rate (percentile
    intervals of draws around the raw estimates covered 0.83 here), and so must the fused sites'.
    """
    truth = np.r_[np.zeros(8), 2.0, 2.0]
    se, n, reps = 0.1, 100, 150
    rng = np.random.default_rng(11)
    covered = np.zeros((reps, 10), dtype=bool)
    for r in range(reps):
        est = truth + se * rng.standard_normal(10)
        summaries = [SiteSummary.from_estimate(e, se, n=n, site=f"s{k}") for k, e in enumerate(est)]
        inf = LateFusion(method="fusion", lam=1.0, n_boot=200,
                         random_state=r).fit(summaries).inference_
        covered[r] = (inf.lower[:, 0] <= truth) & (truth <= inf.upper[:, 0])
    band_out = 3 * np.sqrt(0.95 * 0.05 / covered[:, 8:].size)
    assert abs(covered[:, 8:].mean() - 0.95) < band_out
    assert abs(covered[:, :8].mean() - 0.95) < 0.03
