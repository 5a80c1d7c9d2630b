"""SiteDML on its own: estimates, folds, summaries, the linear CATE, and every input error."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.linear_model import LinearRegression, LogisticRegression

from hetmtl.fusion.scores import LinearScore
from hetmtl.fusion.site_dml import SiteDML
from hetmtl.fusion.summary import SiteSummary

THETA = 0.5


def _plr_data(n: int, seed: int, theta=THETA, q: int = 5) -> pd.DataFrame:
    """Linear PLR: D = X b + V, Y = D theta + X c + e; linear learners are correctly specified."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, q))
    D = X @ np.linspace(1.0, 0.2, q) + rng.normal(size=n)
    Y = theta * D + X @ np.linspace(-0.5, 0.5, q) + rng.normal(size=n)
    df = pd.DataFrame(X, columns=[f"x{j}" for j in range(q)])
    df["y"], df["d"] = Y, D
    return df


def _lin(**kw) -> SiteDML:
    return SiteDML(ml_l=LinearRegression(), ml_m=LinearRegression(), **kw)


def _xcols(q: int = 5) -> list[str]:
    return [f"x{j}" for j in range(q)]


# --------------------------------------------------------------------------- statistical sanity
def test_plr_simulation_mean_and_coverage():
    """40 simulated sites with a known theta: the estimates are centred on theta, the standard
    errors match the spread of the estimates and the 95% intervals cover about 95% of the time."""
    reps = 40
    est, se, cover = [], [], []
    for r in range(reps):
        fit = _lin(random_state=r).fit(_plr_data(400, seed=1000 + r), y="y", d="d")
        lo, hi = fit.confint().to_numpy()[0]
        est.append(fit.coef_[0])
        se.append(fit.se_[0])
        cover.append(lo <= THETA <= hi)
    est, se = np.array(est), np.array(se)
    mc_se = est.std(ddof=1) / np.sqrt(reps)
    # Unbiased: the mean lies within 3 Monte Carlo standard errors (about 0.007) of theta.
    assert abs(est.mean() - THETA) < 3 * mc_se
    # Standard errors track the sampling spread (true sd is 1/sqrt(400) = 0.05 here).
    assert 0.75 < se.mean() / est.std(ddof=1) < 1.35
    assert abs(se.mean() - 0.05) < 0.005
    # Coverage: 95% nominal; 0.85 is more than 3 binomial standard errors below.
    assert np.mean(cover) >= 0.85


def test_numpy_and_dataframe_inputs_agree():
    df = _plr_data(200, seed=1)
    a = _lin(random_state=3).fit(df, y="y", d="d", x=_xcols())
    b = _lin(random_state=3).fit(y=df["y"].to_numpy(), d=df["d"].to_numpy(), x=df[_xcols()].to_numpy())
    np.testing.assert_array_equal(a.coef_, b.coef_)
    np.testing.assert_array_equal(a.se_, b.se_)
    assert a.coef_names_ == ["d"] and b.coef_names_ == ["d"]
    # x=None takes every other column of the frame.
    c = _lin(random_state=3).fit(df, y="y", d="d")
    np.testing.assert_array_equal(a.coef_, c.coef_)


def test_plr_multiple_treatments_are_solved_jointly():
    rng = np.random.default_rng(2)
    n = 600
    X = rng.normal(size=(n, 3))
    D = np.column_stack([X[:, 0] + rng.normal(size=n), 0.5 * X[:, 0] + X[:, 1] + rng.normal(size=n)])
    Y = D @ np.array([1.0, -0.5]) + X[:, 2] + rng.normal(size=n)
    fit = _lin(random_state=0).fit(y=Y, d=D, x=X)
    assert fit.coef_names_ == ["d1", "d2"]
    # Oracle: least squares of the residualized outcome on both residualized treatments.
    Dt = D - fit.predictions_["ml_m"][0]
    Yt = Y - fit.predictions_["ml_l"][0]
    np.testing.assert_allclose(fit.coef_, np.linalg.lstsq(Dt, Yt, rcond=None)[0], rtol=1e-10)
    assert np.all(np.abs(fit.coef_ - [1.0, -0.5]) < 4 * fit.se_)
    assert fit.cov_.shape == (2, 2) and abs(fit.cov_[0, 1]) > 0


def test_cate_linear_recovers_known_cate():
    """tau(x) = 1 + 2 x0 with a logistic propensity in x0: the R-learner with a correctly
    specified propensity is consistent even with a linear (misspecified) outcome regression."""
    rng = np.random.default_rng(4)
    n = 4000
    X = rng.normal(size=(n, 3))
    A = (rng.uniform(size=n) < 1 / (1 + np.exp(-X[:, 0]))).astype(float)
    Y = (1.0 + 2.0 * X[:, 0]) * A + np.sin(X[:, 1]) + X[:, 2] ** 2 + rng.normal(size=n)
    df = pd.DataFrame(X, columns=["x0", "x1", "x2"])
    df["y"], df["a"] = Y, A
    est = SiteDML("cate_linear", ml_l=LinearRegression(), ml_m=LogisticRegression(), basis=["x0"],
                  random_state=1).fit(df, y="y", d="a", x=["x0", "x1", "x2"])
    assert est.coef_names_ == ["intercept", "x0"]
    err = est.coef_ - np.array([1.0, 2.0])
    assert np.all(np.abs(err) < 4 * est.se_), (est.coef_, est.se_)
    assert np.all(np.abs(err) < 0.25)
    # A callable basis returning the same column gives the same fit.
    by_callable = SiteDML("cate_linear", ml_l=LinearRegression(), ml_m=LogisticRegression(),
                          basis=lambda frame: frame[["x0"]], random_state=1)
    by_callable.fit(df, y="y", d="a", x=["x0", "x1", "x2"])
    np.testing.assert_allclose(by_callable.coef_, est.coef_, rtol=1e-12)
    # A basis that already has a constant column gets no second intercept.
    with_const = SiteDML("cate_linear", ml_l=LinearRegression(), ml_m=LogisticRegression(),
                         basis=lambda x: np.column_stack([np.ones(len(x)), x[:, 0]]), random_state=1)
    with_const.fit(y=Y, d=A, x=X)
    assert with_const.coef_names_ == ["phi1", "phi2"]
    np.testing.assert_allclose(with_const.coef_, est.coef_, rtol=1e-10)
    # No basis: intercept only.
    avg = SiteDML("cate_linear", ml_l=LinearRegression(), ml_m=LogisticRegression(),
                  random_state=1).fit(df, y="y", d="a", x=["x0", "x1", "x2"])
    assert avg.coef_names_ == ["intercept"] and avg.coef_.shape == (1,)


def test_irm_recovers_ate():
    rng = np.random.default_rng(5)
    n = 3000
    X = rng.normal(size=(n, 3))
    A = (rng.uniform(size=n) < 1 / (1 + np.exp(-X[:, 0]))).astype(float)
    Y = 2.0 * A + X[:, 0] + X[:, 1] + rng.normal(size=n)
    est = SiteDML("irm", ml_g=LinearRegression(), ml_m=LogisticRegression(), random_state=0)
    est.fit(y=Y, d=A, x=X)
    assert abs(est.coef_[0] - 2.0) < 4 * est.se_[0]
    np.testing.assert_allclose(est.summary_.J, [[-1.0]])


# --------------------------------------------------------------------------- folds
def test_cluster_folds_keep_clusters_together_and_se_is_cluster_robust():
    df = _plr_data(300, seed=6)
    rng = np.random.default_rng(0)
    df["person"] = rng.integers(0, 60, size=len(df)).astype(str)
    est = _lin(n_folds=4, n_rep=2, random_state=9).fit(df, y="y", d="d", x=_xcols(), cluster="person")
    assert est.n_clusters_ == df["person"].nunique()
    for rep in est.folds_:
        fold_of = np.empty(len(df), int)
        for k, t in enumerate(rep):
            fold_of[t] = k
        per_cluster = pd.Series(fold_of).groupby(df["person"].to_numpy()).nunique()
        assert per_cluster.max() == 1
    # Omega is the cluster-robust one: sums of scores within clusters.
    Dt = df["d"].to_numpy() - est.predictions_["ml_m"][0]
    Yt = df["y"].to_numpy() - est.predictions_["ml_l"][0]
    theta0 = est.all_coef_[0, 0]
    psi = pd.Series(Dt * (Yt - Dt * theta0)).groupby(df["person"].to_numpy()).sum().to_numpy()
    J0 = -np.mean(Dt**2)
    V0 = (psi @ psi / len(df)) / J0**2 / len(df)
    np.testing.assert_allclose(est.all_se_[0, 0], np.sqrt(V0), rtol=1e-10)


def test_stratified_folds_balance_a_binary_treatment():
    rng = np.random.default_rng(1)
    n = 103
    A = (rng.uniform(size=n) < 0.2).astype(float)
    X = rng.normal(size=(n, 2))
    Y = A + X[:, 0] + rng.normal(size=n)
    est = SiteDML("irm", ml_g=LinearRegression(), ml_m=LogisticRegression(), n_folds=5,
                  random_state=2).fit(y=Y, d=A, x=X)
    treated = [int(A[t].sum()) for t in est.folds_[0]]
    sizes = [t.size for t in est.folds_[0]]
    assert max(treated) - min(treated) <= 1
    assert max(sizes) - min(sizes) <= 1


def test_reproducible_for_a_seed():
    df = _plr_data(150, seed=7)
    a = _lin(n_rep=3, random_state=42).fit(df, y="y", d="d")
    b = _lin(n_rep=3, random_state=42).fit(df, y="y", d="d")
    for ra, rb in zip(a.folds_, b.folds_):
        for ta, tb in zip(ra, rb):
            np.testing.assert_array_equal(ta, tb)
    np.testing.assert_array_equal(a.coef_, b.coef_)
    np.testing.assert_array_equal(a.se_, b.se_)
    # Repetition r uses its own stream: the first repetition does not depend on n_rep.
    one = _lin(n_rep=1, random_state=42).fit(df, y="y", d="d")
    np.testing.assert_array_equal(one.all_coef_[0], a.all_coef_[0])
    other = _lin(random_state=43).fit(df, y="y", d="d")
    assert not np.array_equal(other.folds_[0][0], one.folds_[0][0])
    # Default learners take their seeds from random_state too.
    f1 = SiteDML(random_state=5, n_folds=2).fit(df.iloc[:60], y="y", d="d")
    f2 = SiteDML(random_state=5, n_folds=2).fit(df.iloc[:60], y="y", d="d")
    np.testing.assert_array_equal(f1.coef_, f2.coef_)
    assert f1.summary_.metadata["learners"] == {"ml_l": "RandomForestRegressor",
                                                "ml_m": "RandomForestRegressor"}


def test_explicit_folds_in_both_formats():
    df = _plr_data(60, seed=8)
    n = len(df)
    tests = [np.arange(0, 20), np.arange(20, 40), np.arange(40, 60)]
    a = _lin().fit(df, y="y", d="d", folds=tests)
    b = _lin().fit(df, y="y", d="d", folds=[[(np.setdiff1d(np.arange(n), t), t) for t in tests]])
    c = _lin().fit(df, y="y", d="d", folds=[tests, tests[::-1]])
    np.testing.assert_array_equal(a.coef_, b.coef_)
    assert (a.n_folds_, a.n_rep_, c.n_rep_) == (3, 1, 2)
    np.testing.assert_allclose(c.all_coef_[0], c.all_coef_[1], rtol=1e-12)


# --------------------------------------------------------------------------- summaries
@pytest.mark.parametrize("n_rep", [1, 3])
def test_summary_moments_match_the_estimate(n_rep):
    df = _plr_data(250, seed=9)
    est = _lin(n_rep=n_rep, random_state=1).fit(df, y="y", d="d")
    s = est.summary_
    assert isinstance(s, SiteSummary)
    np.testing.assert_allclose(s.theta, est.coef_, rtol=0)
    np.testing.assert_allclose(s.cov, est.cov_, rtol=1e-10)
    np.testing.assert_allclose(np.sqrt(np.diag(est.cov_)), est.se_, rtol=1e-10)
    assert s.n == est.n_obs_ == 250
    assert s.metadata["n_rep"] == n_rep and s.metadata["model"] == "plr"
    assert s.metadata["learners"] == {"ml_l": "LinearRegression", "ml_m": "LinearRegression"}
    # JSON round trip (the metadata is plain JSON).
    back = SiteSummary.from_dict(json.loads(json.dumps(s.to_dict())))
    np.testing.assert_allclose(back.cov, est.cov_, rtol=1e-10)
    if n_rep == 1:
        Dt = df["d"].to_numpy() - est.predictions_["ml_m"][0]
        Yt = df["y"].to_numpy() - est.predictions_["ml_l"][0]
        np.testing.assert_allclose(s.J, [[-np.mean(Dt**2)]], rtol=1e-12)
        resid = Yt - Dt * est.coef_[0]
        np.testing.assert_allclose(s.Omega, [[np.mean(Dt**2 * resid**2)]], rtol=1e-12)
        # "hessian" weight is -J; for PLR the site loss is exactly quadratic with that weight.
        np.testing.assert_allclose(s.weight_matrix("hessian"), -s.J, rtol=1e-12)


def test_fold_summaries_and_fold_exclusion():
    df = _plr_data(300, seed=10)
    est = _lin(n_folds=5, random_state=2).fit(df, y="y", d="d")
    s = est.summary_
    assert len(s.folds) == 5
    assert sum(f.n for f in s.folds) == 300
    Dt = df["d"].to_numpy() - est.predictions_["ml_m"][0]
    Yt = df["y"].to_numpy() - est.predictions_["ml_l"][0]
    for k, rows in enumerate(est.folds_[0]):
        f = s.folds[k]
        np.testing.assert_allclose(f.theta, [Dt[rows] @ Yt[rows] / (Dt[rows] @ Dt[rows])], rtol=1e-12)
        np.testing.assert_allclose(f.J, [[-np.mean(Dt[rows] ** 2)]], rtol=1e-12)
        # Leaving fold k out equals solving the pooled score on the other folds' rows.
        rest = np.setdiff1d(np.arange(300), rows)
        theta_rest, W, n_rest = s.fold_excluded(k, weight="hessian")
        np.testing.assert_allclose(theta_rest, [Dt[rest] @ Yt[rest] / (Dt[rest] @ Dt[rest])], rtol=1e-10)
        np.testing.assert_allclose(W, [[np.mean(Dt[rest] ** 2)]], rtol=1e-10)
        assert n_rest == rest.size
    # All folds together give back the site estimate.
    nJ = sum(f.n * f.J for f in s.folds)
    pooled = np.linalg.solve(nJ, sum(f.n * f.J @ f.theta for f in s.folds))
    np.testing.assert_allclose(pooled, est.coef_, rtol=1e-10)


def test_fold_summaries_dropped_with_a_warning_when_a_fold_cannot_identify_theta():
    # A basis dummy present in three rows of fold 0 only: the full design is identified, fold 1
    # alone is not.
    rng = np.random.default_rng(11)
    n = 80
    X = rng.normal(size=(n, 2))
    A = (rng.uniform(size=n) < 0.5).astype(float)
    A[:3] = [1.0, 0.0, 1.0]
    Y = A + X[:, 0] + rng.normal(size=n)
    rare = (np.arange(n) < 3).astype(float)
    est = SiteDML("cate_linear", ml_l=LinearRegression(), ml_m=LogisticRegression(),
                  basis=lambda x: rare)
    with pytest.warns(UserWarning, match="fold summaries left out.*fold 1 alone"):
        est.fit(y=Y, d=A, x=X, folds=[np.arange(40), np.arange(40, 80)])
    assert est.summary_.folds == ()
    assert np.all(np.isfinite(est.coef_))


def test_confint_and_summary_table():
    est = _lin(random_state=0).fit(_plr_data(200, seed=12), y="y", d="d")
    tab = est.summary()
    assert list(tab.columns) == ["coef", "std err", "z", "P>|z|", "2.5 %", "97.5 %"]
    np.testing.assert_allclose(tab["z"], est.coef_ / est.se_)
    ci90 = est.confint(0.9)
    assert list(ci90.columns) == ["5.0 %", "95.0 %"]
    z90 = 1.6448536269514722  # normal 95% quantile
    np.testing.assert_allclose(ci90.to_numpy()[0], est.coef_[0] + np.array([-1, 1]) * z90 * est.se_[0])
    with pytest.raises(ValueError, match="level"):
        est.confint(1.5)


# --------------------------------------------------------------------------- small and awkward
@pytest.mark.parametrize("model", ["plr", "irm", "cate_linear"])
def test_tiny_site_with_two_folds(model):
    rng = np.random.default_rng(13)
    n = 20
    X = rng.normal(size=(n, 2))
    D = np.tile([0.0, 1.0], n // 2) if model != "plr" else X[:, 0] + rng.normal(size=n)
    Y = D + X[:, 1] + rng.normal(size=n)
    est = SiteDML(model, n_folds=2, random_state=0).fit(y=Y, d=D, x=X)
    assert np.all(np.isfinite(est.coef_)) and np.all(est.se_ > 0)
    assert len(est.summary_.folds) == 2


def test_pickle_clone_and_params():
    est = _lin(n_folds=3, random_state=1, site="clinic A").fit(_plr_data(90, seed=14), y="y", d="d")
    back = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(back.coef_, est.coef_)
    assert back.summary_.site == "clinic A"
    np.testing.assert_array_equal(back.summary_.cov, est.summary_.cov)
    params = est.get_params()
    assert params["n_folds"] == 3 and params["model"] == "plr" and params["site"] == "clinic A"
    assert "ml_l__fit_intercept" in est.get_params(deep=True)
    est.set_params(n_folds=4, ml_l__fit_intercept=False)
    assert est.n_folds == 4 and est.ml_l.fit_intercept is False
    fresh = clone(est)
    assert not hasattr(fresh, "coef_") and fresh.n_folds == 4


# --------------------------------------------------------------------------- input errors
def test_too_few_rows_for_folds():
    df = _plr_data(9, seed=15)
    with pytest.raises(ValueError, match=r"n_folds: 5 folds need at least 10 rows"):
        _lin(n_folds=5).fit(df, y="y", d="d")
    df["g"] = np.repeat([0, 1, 2], 3)
    with pytest.raises(ValueError, match=r"n_folds: 4 folds need at least 4 clusters, got 3"):
        _lin(n_folds=4).fit(df, y="y", d="d", x=_xcols(), cluster="g")
    with pytest.raises(ValueError, match="n_folds: must be at least 2"):
        _lin(n_folds=1).fit(df, y="y", d="d")


def test_irm_fold_without_treated_or_controls():
    rng = np.random.default_rng(16)
    n = 40
    X = rng.normal(size=(n, 2))
    A = np.zeros(n)
    A[3] = 1.0  # one treated row: the fold holding it out has no treated rows to train on
    Y = A + rng.normal(size=n)
    est = SiteDML("irm", ml_g=LinearRegression(), ml_m=LogisticRegression(), n_folds=2, random_state=0)
    msg = r"d: the training rows of fold \d \(repetition 0\) contain no treated \(d == 1\)"
    with pytest.raises(ValueError, match=msg):
        est.fit(y=Y, d=A, x=X)
    # The same for explicit folds that put all controls in one fold.
    A2 = (np.arange(n) < 20).astype(float)
    with pytest.raises(ValueError, match="contain no controls"):
        est.fit(y=Y, d=A2, x=X, folds=[np.arange(20, 40), np.arange(20)])


def test_treatment_without_variation_in_a_training_fold():
    rng = np.random.default_rng(17)
    n = 30
    X = rng.normal(size=(n, 2))
    D = np.where(np.arange(n) < 15, 1.0, rng.normal(size=n))
    with pytest.raises(ValueError, match=r"d: the treatment has no variation in the training rows of "
                                         r"fold 0 \(repetition 0\) \(all equal to 1\), so ml_m cannot"):
        _lin().fit(y=rng.normal(size=n), d=D, x=X, folds=[np.arange(15, 30), np.arange(15)])


@pytest.mark.parametrize("model", ["irm", "cate_linear"])
def test_non_binary_treatment_rejected(model):
    df = _plr_data(50, seed=18)
    with pytest.raises(ValueError, match=f"d: model '{model}' needs a binary treatment coded 0/1"):
        SiteDML(model).fit(df, y="y", d="d")
    df["d2"] = (df["d"] > 0).astype(float)
    df["d3"] = 1.0 - df["d2"]
    with pytest.raises(ValueError, match="needs a single binary treatment column"):
        SiteDML(model).fit(df, y="y", d=["d2", "d3"], x=_xcols())


def test_nan_and_unknown_columns_and_lengths():
    df = _plr_data(50, seed=19)
    bad = df.copy()
    bad.loc[3, "x1"] = np.nan
    with pytest.raises(ValueError, match=r"x: contains 1 NaN or infinite value\(s\)"):
        _lin().fit(bad, y="y", d="d")
    bad = df.copy()
    bad.loc[0, "y"] = np.inf
    with pytest.raises(ValueError, match="y: contains 1 NaN"):
        _lin().fit(bad, y="y", d="d")
    with pytest.raises(ValueError, match=r"x: column\(s\) \['nope'\] not found in data"):
        _lin().fit(df, y="y", d="d", x=["x0", "nope"])
    with pytest.raises(ValueError, match=r"d: column\(s\) \['treat'\] not found"):
        _lin().fit(df, y="y", d="treat")
    with pytest.raises(ValueError, match="d: has 49 rows but y has 50"):
        _lin().fit(y=df["y"].to_numpy(), d=df["d"].to_numpy()[:49], x=df[_xcols()].to_numpy())
    with pytest.raises(ValueError, match="y: got column name"):
        _lin().fit(y="y", d=df["d"].to_numpy(), x=df[_xcols()].to_numpy())
    with pytest.raises(ValueError, match="cluster: contains 1 missing label"):
        _lin().fit(y=df["y"], d=df["d"], x=df[_xcols()], cluster=np.r_[np.nan, np.arange(49.0)])
    with pytest.raises(ValueError, match="model: must be one of"):
        SiteDML("ols").fit(df, y="y", d="d")


def test_singular_design_names_the_site():
    rng = np.random.default_rng(20)
    n = 100
    X = rng.normal(size=(n, 3))
    D = 2.0 * X[:, 0] - 1.0  # the covariates explain the treatment exactly
    Y = D + rng.normal(size=n)
    with pytest.raises(ValueError, match="site 'north': the design does not identify theta"):
        _lin(site="north").fit(y=Y, d=D, x=X)
    # Collinear basis columns in the linear CATE.
    A = (rng.uniform(size=n) < 0.5).astype(float)
    est = SiteDML("cate_linear", ml_l=LinearRegression(), ml_m=LogisticRegression(), site="south",
                  basis=lambda x: np.column_stack([x[:, 0], 2 * x[:, 0]]))
    with pytest.raises(ValueError, match="site 'south': the design does not identify theta"):
        est.fit(y=Y, d=A, x=X)


def test_learner_and_option_errors():
    df = _plr_data(60, seed=21)
    with pytest.raises(ValueError, match="ml_g: not used by model 'plr'"):
        SiteDML("plr", ml_g=LinearRegression()).fit(df, y="y", d="d")
    df["a"] = (df["d"] > 0).astype(float)
    with pytest.raises(ValueError, match="ml_m: model 'irm' needs a classifier"):
        SiteDML("irm", ml_g=LinearRegression(), ml_m=LinearRegression()).fit(df, y="y", d="a", x=_xcols())
    with pytest.raises(ValueError, match="ml_m: a classifier needs treatments coded 0/1"):
        SiteDML("plr", ml_l=LinearRegression(), ml_m=LogisticRegression()).fit(df, y="y", d="d", x=_xcols())
    with pytest.raises(ValueError, match="basis: only used by model 'cate_linear'"):
        _lin(basis=["x0"]).fit(df, y="y", d="d")
    with pytest.raises(ValueError, match=r"clip: must lie in \[0, 0.5\)"):
        SiteDML("irm", clip=0.7).fit(df, y="y", d="a", x=_xcols())
    with pytest.raises(ValueError, match="random_state: expected None"):
        _lin(random_state=-1).fit(df, y="y", d="d")
    with pytest.raises(ValueError, match="folds: the test folds of repetition 0 must partition"):
        _lin().fit(df, y="y", d="d", folds=[np.arange(30), np.arange(29, 60)])
    df["g"] = np.arange(60) // 4
    with pytest.raises(ValueError, match="folds: repetition 0 splits a cluster"):
        _lin().fit(df, y="y", d="d", x=_xcols(), cluster="g", folds=[np.arange(30), np.arange(30, 60)])


def test_linear_score_rejects_singular_gram_directly():
    score = LinearScore(dt=np.zeros((10, 1)), yt=np.ones(10))
    with pytest.raises(ValueError, match="does not identify theta"):
        score.solve(site="x")
