"""Meta-analysis statistics on cases with known answers (no R needed; metafor parity is in
test_heterogeneity_metafor.py)."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import optimize, stats

from hetmtl.fusion.heterogeneity import MetaAnalysis, meta_analysis, meta_analysis_from_summaries
from hetmtl.fusion.summary import SiteSummary

Z975 = stats.norm.ppf(0.975)


def reml_loglik_dense(y, v, tau2):
    """Restricted log-likelihood written with dense matrices (independent of the module's)."""
    k = y.size
    X = np.ones((k, 1))
    V = np.diag(v + tau2)
    Vi = np.linalg.inv(V)
    XtViX = X.T @ Vi @ X
    beta = np.linalg.solve(XtViX, X.T @ Vi @ y)
    r = y - X @ beta
    return float(-0.5 * (k - 1) * np.log(2 * np.pi) + 0.5 * np.linalg.slogdet(X.T @ X)[1]
                 - 0.5 * np.linalg.slogdet(V)[1] - 0.5 * np.linalg.slogdet(XtViX)[1]
                 - 0.5 * r @ Vi @ r)


# --------------------------------------------------------------------------- hand-computable
def test_two_sites_by_hand():
    # y = (0, 3), se = (1, 1): Q = 2 * 1.5^2 = 4.5 on 1 df; tr P = 2 - 2/2 = 1; DL tau2 = 3.5.
    res = meta_analysis([0.0, 3.0], [1.0, 1.0])
    assert res.fixed.estimate == pytest.approx(1.5, rel=1e-14)
    assert res.fixed.se == pytest.approx(math.sqrt(0.5), rel=1e-14)
    assert res.Q == pytest.approx(4.5, rel=1e-14)
    assert res.Q_df == 1
    assert res.Q_pvalue == pytest.approx(stats.chi2.sf(4.5, 1), rel=1e-12)
    assert res.vt == pytest.approx(1.0, rel=1e-14)
    assert res.random_dl.tau2 == pytest.approx(3.5, rel=1e-14)
    # Equal variances: REML = max(0, var(y) - v) = 4.5 - 1 as well.
    assert res.random_reml.tau2 == pytest.approx(3.5, rel=1e-10)
    for m in (res.random_dl, res.random_reml):
        assert m.estimate == pytest.approx(1.5, rel=1e-12)
        assert m.se == pytest.approx(1.5, rel=1e-10)  # sqrt((1 + 3.5) / 2)
        assert m.I2 == pytest.approx(100 * 3.5 / 4.5, rel=1e-10)
        assert m.H2 == pytest.approx(4.5, rel=1e-10)
        lo, hi = m.prediction_interval(0.95)
        assert lo == pytest.approx(1.5 - Z975 * math.sqrt(1.5**2 + 3.5), rel=1e-10)
        assert hi == pytest.approx(1.5 + Z975 * math.sqrt(1.5**2 + 3.5), rel=1e-10)
    assert res.fixed.I2 == pytest.approx(100 * (4.5 - 1) / 4.5, rel=1e-14)
    assert res.fixed.H2 == pytest.approx(4.5, rel=1e-14)


def test_equal_variances_reml_is_sample_variance_minus_v():
    rng = np.random.default_rng(3)
    y = rng.normal(size=7) * 2.0
    v = 0.3
    res = meta_analysis(y, np.full(7, math.sqrt(v)))
    expected = np.var(y, ddof=1) - v
    assert expected > 0
    assert res.random_reml.tau2 == pytest.approx(expected, rel=1e-9)
    assert res.random_dl.tau2 == pytest.approx(expected, rel=1e-12)
    assert res.fixed.estimate == pytest.approx(y.mean(), rel=1e-12)


def test_identical_estimates_have_no_heterogeneity():
    res = meta_analysis([0.4, 0.4, 0.4, 0.4], [0.1, 0.2, 0.3, 0.15])
    assert res.Q == pytest.approx(0.0, abs=1e-25)  # rounding in the pooled mean only
    assert res.Q_pvalue == pytest.approx(1.0)
    assert res.random_dl.tau2 == 0.0
    assert res.random_reml.tau2 == 0.0
    for m in res.models:
        assert m.I2 == 0.0
        assert m.estimate == pytest.approx(0.4, rel=1e-14)
        assert m.prediction_interval(0.9) == pytest.approx(m.confint(0.9), rel=1e-14)
    assert res.random_dl.H2 == 1.0 and res.random_reml.H2 == 1.0
    assert res.fixed.H2 == pytest.approx(0.0, abs=1e-25)  # metafor's fixed-effect H^2 = Q / df, untruncated
    assert "REML: tau^2 estimate on the boundary 0" in res.notes


def test_dl_I2_equals_q_based_formula():
    y = np.array([0.1, 0.8, -0.3, 0.5, 1.2, 0.0])
    se = np.array([0.2, 0.3, 0.25, 0.4, 0.35, 0.15])
    res = meta_analysis(y, se)
    Q, df = res.Q, res.Q_df
    assert Q > df
    assert res.random_dl.I2 == pytest.approx(100 * (Q - df) / Q, rel=1e-12)
    assert res.random_dl.H2 == pytest.approx(Q / df, rel=1e-12)
    assert res.fixed.I2 == pytest.approx(res.random_dl.I2, rel=1e-12)


def test_weights_and_prediction_interval():
    y = np.array([0.1, 0.8, -0.3, 0.5, 1.2, 0.0])
    se = np.array([0.2, 0.3, 0.25, 0.4, 0.35, 0.15])
    res = meta_analysis(y, se, level=0.9)
    w = 1 / se**2
    np.testing.assert_allclose(res.fixed.weights, 100 * w / w.sum(), rtol=1e-13)
    for m in res.models:
        assert m.weights.sum() == pytest.approx(100.0, rel=1e-13)
        wr = 1 / (se**2 + m.tau2)
        np.testing.assert_allclose(m.weights, 100 * wr / wr.sum(), rtol=1e-13)
        assert m.estimate == pytest.approx(np.dot(wr, y) / wr.sum(), rel=1e-13)
    q = stats.norm.ppf(0.95)
    lo, hi = res.prediction_interval()  # level 0.9, REML
    half = q * math.sqrt(res.random_reml.se**2 + res.random_reml.tau2)
    assert (lo, hi) == pytest.approx((res.random_reml.estimate - half,
                                      res.random_reml.estimate + half), rel=1e-13)
    table = res.site_table()
    assert list(table.index) == [f"site{i}" for i in range(6)]
    np.testing.assert_allclose(table["ci lower"], y - q * se, rtol=1e-13)
    np.testing.assert_allclose(table["weight % (REML)"], res.random_reml.weights, rtol=0)


# --------------------------------------------------------------------------- REML
def test_reml_maximizes_the_restricted_likelihood():
    y = np.array([0.1, 0.8, -0.3, 0.5, 1.2, 0.0, 0.45])
    v = np.array([0.2, 0.3, 0.25, 0.4, 0.35, 0.15, 0.05]) ** 2
    res = meta_analysis(y, np.sqrt(v))
    assert res.reml_converged
    t = res.random_reml.tau2
    assert t > 0
    # Independent dense-matrix likelihood: same value, and its numerical maximizer agrees.
    assert res.loglik_reml == pytest.approx(reml_loglik_dense(y, v, t), rel=1e-12)
    opt = optimize.minimize_scalar(lambda s: -reml_loglik_dense(y, v, s), bounds=(0, 10),
                                   method="bounded", options={"xatol": 1e-12})
    assert t == pytest.approx(opt.x, rel=1e-6)
    h = 1e-5 * t
    slope = (reml_loglik_dense(y, v, t + h) - reml_loglik_dense(y, v, t - h)) / (2 * h)
    assert abs(slope) < 1e-6
    # REML standard error of tau2: sqrt(2 / tr(PP)) with P at the estimate.
    V = np.diag(v + t)
    Vi = np.linalg.inv(V)
    one = np.ones(y.size)
    P = Vi - np.outer(Vi @ one, one @ Vi) / (one @ Vi @ one)
    assert res.random_reml.tau2_se == pytest.approx(math.sqrt(2 / np.sum(P * P)), rel=1e-10)


def test_reml_boundary_is_exactly_zero():
    # Hedges' start is positive (0.24) but the restricted likelihood peaks at tau^2 = 0.
    y = np.array([0.0, 0.05, -0.05, 3.0])
    v = np.array([0.01, 0.01, 0.01, 8.0])
    assert np.var(y, ddof=1) - v.mean() > 0
    res = meta_analysis(y, np.sqrt(v))
    assert res.random_reml.tau2 == 0.0
    assert res.random_reml.I2 == 0.0
    assert res.reml_converged
    grid = np.linspace(0, 1, 201)
    assert np.argmax([reml_loglik_dense(y, v, s) for s in grid]) == 0


def test_reml_fallback_agrees_with_fisher_scoring():
    y = np.array([0.1, 0.8, -0.3, 0.5, 1.2, 0.0, 0.45])
    se = np.array([0.2, 0.3, 0.25, 0.4, 0.35, 0.15, 0.05])
    ref = meta_analysis(y, se)
    fb = meta_analysis(y, se, reml_max_iter=1)
    assert ref.reml_iterations > 1
    assert fb.reml_converged
    assert any("did not converge in 1 iterations" in n for n in fb.notes)
    # Brent's bounded search locates the optimum to about sqrt(machine epsilon), relative.
    assert fb.random_reml.tau2 == pytest.approx(ref.random_reml.tau2, rel=1e-6)


@pytest.mark.parametrize("scale", [1e-4, 1.0, 1e4])
def test_scale_equivariance(scale):
    y = np.array([0.1, 0.8, -0.3, 0.5, 1.2, 0.0, 0.45])
    se = np.array([0.2, 0.3, 0.25, 0.4, 0.35, 0.15, 0.05])
    ref = meta_analysis(y, se)
    res = meta_analysis(y * scale, se * scale)
    for a, b in zip(ref.models, res.models):
        assert b.estimate == pytest.approx(a.estimate * scale, rel=1e-9)
        assert b.se == pytest.approx(a.se * scale, rel=1e-9)
        assert b.tau2 == pytest.approx(a.tau2 * scale**2, rel=1e-9)
        assert b.I2 == pytest.approx(a.I2, rel=1e-9)
    assert res.Q == pytest.approx(ref.Q, rel=1e-12)


# --------------------------------------------------------------------------- one site, outputs
def test_one_site_gives_fixed_effect_only():
    res = meta_analysis([0.7], [0.2], site_names=["A"])
    assert res.k == 1
    assert res.fixed.estimate == 0.7 and res.fixed.se == pytest.approx(0.2, rel=1e-15)
    assert res.tau2 == 0.0 and res.random_dl.tau2 == 0.0
    assert res.Q == 0.0 and res.Q_df == 0 and math.isnan(res.Q_pvalue)
    assert math.isnan(res.random_reml.estimate) and math.isnan(res.I2) and math.isnan(res.H2)
    assert all(math.isnan(x) for x in res.prediction_interval())
    assert any("one site" in n for n in res.notes)
    table = res.summary()
    assert table.loc["fixed", "ci lower"] == pytest.approx(0.7 - Z975 * 0.2, rel=1e-14)
    assert table.loc[["random (DL)", "random (REML)"]].isna().all().all()
    json.dumps(res.to_dict(), allow_nan=False)


def test_summary_and_tables_shape():
    y = np.array([0.1, 0.8, -0.3, 0.5])
    se = np.array([0.2, 0.3, 0.25, 0.4])
    res = meta_analysis(y, se, site_names=["a", "b", "c", "d"], method="DL")
    assert isinstance(res, MetaAnalysis)
    s = res.summary()
    assert list(s.index) == ["fixed", "random (DL)", "random (REML)"]
    assert list(s.columns) == ["estimate", "std err", "z", "P>|z|", "ci lower", "ci upper"]
    np.testing.assert_allclose(s["z"], s["estimate"] / s["std err"], rtol=1e-14)
    np.testing.assert_allclose(s["P>|z|"], 2 * stats.norm.sf(np.abs(s["z"])), rtol=1e-12)
    s99 = res.summary(level=0.99)
    q = stats.norm.ppf(0.995)
    np.testing.assert_allclose(s99["ci upper"], s99["estimate"] + q * s99["std err"], rtol=1e-13)
    pd.testing.assert_frame_equal(res.confint(0.99), s99[["ci lower", "ci upper"]].rename(
        columns={"ci lower": "lower", "ci upper": "upper"}))
    h = res.heterogeneity_table()
    assert list(h.columns) == ["tau2", "tau", "tau2 se", "I2 (%)", "H2", "pi lower", "pi upper",
                               "Q", "df", "P(Q)"]
    assert h.loc["random (DL)", "tau2"] == res.tau2  # method="DL" selects DL shortcuts
    assert res.random is res.random_dl
    d = res.to_dict()
    text = json.dumps(d, allow_nan=False)
    assert json.loads(text)["models"]["random_reml"]["tau2"] == pytest.approx(res.random_reml.tau2)
    assert d["site_names"] == ["a", "b", "c", "d"]
    assert "MetaAnalysis(k=4" in repr(res)


# --------------------------------------------------------------------------- summaries
def _summaries():
    rng = np.random.default_rng(0)
    out = []
    for i in range(5):
        theta = rng.normal(size=2)
        se = rng.uniform(0.1, 0.4, size=2)
        out.append(SiteSummary.from_estimate(theta, se, site=f"S{i}", coef_names=["a", "b"]))
    return out


def test_from_summaries_matches_direct_call():
    sums = _summaries()
    res = meta_analysis_from_summaries(sums, coef="b", level=0.9)
    direct = meta_analysis([s.theta[1] for s in sums], [s.se[1] for s in sums], level=0.9)
    pd.testing.assert_frame_equal(res.summary(), direct.summary())
    assert res.site_names == [f"S{i}" for i in range(5)]
    by_dict = meta_analysis_from_summaries({f"x{i}": s for i, s in enumerate(sums)}, coef=0)
    assert by_dict.site_names == [f"x{i}" for i in range(5)]
    assert by_dict.fixed.estimate == pytest.approx(
        meta_analysis_from_summaries(sums, coef=-2).fixed.estimate, rel=1e-15)


def test_from_summaries_rejects_bad_input():
    sums = _summaries()
    with pytest.raises(ValueError, match="coef: unknown coefficient 'c'"):
        meta_analysis_from_summaries(sums, coef="c")
    with pytest.raises(ValueError, match="coef: index 2 out of range"):
        meta_analysis_from_summaries(sums, coef=2)
    with pytest.raises(ValueError, match="summaries: item 1 is a float"):
        meta_analysis_from_summaries([sums[0], 1.0])
    with pytest.raises(ValueError, match="summaries: needs at least one"):
        meta_analysis_from_summaries([])
    with pytest.raises(ValueError, match="site_names: names must be unique"):
        meta_analysis_from_summaries([sums[0], sums[0]])
    with pytest.raises(ValueError, match="site_names: taken from the summaries"):
        meta_analysis_from_summaries(sums, site_names=list("abcde"))
    other = SiteSummary.from_estimate([0.1, 0.2], [0.1, 0.1], site="Z", coef_names=["a", "c"])
    with pytest.raises(ValueError, match="site 'Z' has coefficients"):
        meta_analysis_from_summaries(sums + [other])


# --------------------------------------------------------------------------- validation
@pytest.mark.parametrize("kwargs, match", [
    ({"estimates": [0.1, 0.2], "se": [0.1]}, r"se: expected shape \(2,\)"),
    ({"estimates": [0.1, 0.2], "se": [0.1, 0.0]}, "se: standard errors must be positive"),
    ({"estimates": [0.1, 0.2], "se": [0.1, -1.0]}, "se: standard errors must be positive"),
    ({"estimates": [0.1, np.nan], "se": [0.1, 0.1]}, "estimates: contains 1 NaN"),
    ({"estimates": [0.1, 0.2], "se": [0.1, np.inf]}, "se: contains 1 NaN or infinite"),
    ({"estimates": [], "se": []}, "estimates: expected a non-empty 1-D array"),
    ({"estimates": [[0.1, 0.2]], "se": [[0.1, 0.1]]}, "estimates: expected a non-empty 1-D"),
    ({"estimates": ["a", "b"], "se": [0.1, 0.1]}, "estimates: cannot be converted"),
    ({"estimates": [0.1, 0.2], "se": [1e-200, 0.1]}, "se: standard errors are too small"),
    ({"estimates": [0.1, 0.2], "se": [0.1, 0.1], "level": 95}, "level: must be a number"),
    ({"estimates": [0.1, 0.2], "se": [0.1, 0.1], "level": 1.0}, "level: must be a number"),
    ({"estimates": [0.1, 0.2], "se": [0.1, 0.1], "method": "ML"}, "method: must be one of"),
    ({"estimates": [0.1, 0.2], "se": [0.1, 0.1], "site_names": ["a"]},
     "site_names: expected 2 names"),
    ({"estimates": [0.1, 0.2], "se": [0.1, 0.1], "site_names": ["a", "a"]},
     r"site_names: names must be unique, repeated: \['a'\]"),
    ({"estimates": [0.1, 0.2], "se": [0.1, 0.1], "site_names": "ab"},
     "site_names: expected a sequence"),
    ({"estimates": [0.1, 0.2], "se": [0.1, 0.1], "reml_tol": 0}, "reml_tol: must be a number"),
    ({"estimates": [0.1, 0.2], "se": [0.1, 0.1], "reml_max_iter": 0},
     "reml_max_iter: must be an integer"),
])
def test_bad_inputs(kwargs, match):
    with pytest.raises(ValueError, match=match):
        meta_analysis(**kwargs)


def test_bad_level_in_methods():
    res = meta_analysis([0.1, 0.2], [0.1, 0.1])
    with pytest.raises(ValueError, match="level: must be a number strictly between 0 and 1"):
        res.summary(level=0)
    with pytest.raises(ValueError, match="level: must be a number strictly between 0 and 1"):
        res.prediction_interval(level=1.5)
