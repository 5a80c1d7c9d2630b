"""Differentially private site summaries: settings checked, noise calibrated, intervals honest."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

from hetmtl._util.validation import ArgumentError
from hetmtl.fusion import DisclosurePolicy, LateFusion, SiteDML, SiteSummary, SummaryPrivacy
from hetmtl.fusion.privacy import gaussian_sigma
from hetmtl.fusion.scores import LinearScore
from hetmtl.fusion.summary_privacy import private_summary


@pytest.mark.parametrize("kwargs, message", [
    ({"epsilon": 0}, r"epsilon: must lie in \(0, inf\)"),
    ({"epsilon": True}, "epsilon: must be a finite number"),
    ({"delta": 1.0}, r"delta: must lie in \(0, 1\)"),
    ({"regressor_bound": "3"}, "regressor_bound: must be a finite number"),
    ({"outcome_bound": -1.0}, r"outcome_bound: must lie in \(0, inf\)"),
])
def test_settings_are_checked(kwargs, message):
    with pytest.raises(ArgumentError, match=message):
        SummaryPrivacy(**{"epsilon": 1.0, "regressor_bound": 3.0, "outcome_bound": 4.0, **kwargs})


def test_noise_follows_the_composed_gaussian_mechanism():
    priv = SummaryPrivacy(epsilon=2.0, regressor_bound=3.0, outcome_bound=4.0, delta=1e-5)
    s1, s2 = priv.noise_scales()
    sens1, sens2 = np.sqrt(81 + 9 * 16 + 1), 9 * 16
    # Two Gaussian releases with mu_j = sens_j / sigma_j compose to sqrt(mu_1^2 + mu_2^2): one
    # Gaussian mechanism of sensitivity 1 and noise 1 / mu at the site's (epsilon, delta).
    mu = np.hypot(sens1 / s1, sens2 / s2)
    assert 1.0 / mu == pytest.approx(gaussian_sigma(2.0, 1e-5, 1.0), rel=1e-9)
    assert sens1 / s1 == pytest.approx(sens2 / s2)


def _score(rng, n, theta=0.5):
    dt = rng.normal(size=(n, 1))
    yt = dt[:, 0] * theta + rng.normal(size=n)
    return LinearScore(dt=dt, yt=yt)


def _release(score, eps, seed):
    priv = SummaryPrivacy(epsilon=eps, regressor_bound=3.0, outcome_bound=4.0, random_state=seed)
    return private_summary(score, priv, site="s", model="plr", coef_names=["d"])


def test_intervals_stay_valid_because_the_noise_enters_the_covariance():
    rng = np.random.default_rng(5)
    theta, z = 0.5, norm.ppf(0.975)
    covered, naive, errors = [], [], []
    for rep in range(300):
        score = _score(rng, 500, theta)
        s = _release(score, 1.0, seed=rep)
        err = float(s.theta[0]) - theta
        covered.append(abs(err) <= z * s.se[0])
        # The sampling covariance alone (what a release without the noise term would claim).
        dt, yt = score.dt, score.yt
        G = dt.T @ dt
        psi = dt * (yt - dt @ np.linalg.solve(G, dt.T @ yt))[:, None]
        naive.append(abs(err) <= z * np.sqrt((psi.T @ psi)[0, 0]) / G[0, 0])
        errors.append(err)
    assert 0.92 <= np.mean(covered) <= 0.985
    assert np.mean(naive) < 0.6          # the noise dominates at epsilon = 1, n = 500
    assert abs(np.mean(errors)) < 4 * np.std(errors) / np.sqrt(len(errors))  # no bias from clipping


def test_more_privacy_costs_accuracy_and_exactness_returns_at_large_epsilon():
    rng = np.random.default_rng(6)
    score = _score(rng, 2000)
    exact = float(np.linalg.solve(score.dt.T @ score.dt, score.dt.T @ score.yt)[0])
    spread = {eps: np.std([float(_release(score, eps, seed=r).theta[0]) for r in range(40)])
              for eps in (0.5, 5.0, 1e4)}
    assert spread[0.5] > 3 * spread[5.0] > 9 * spread[1e4]
    assert float(_release(score, 1e4, seed=0).theta[0]) == pytest.approx(exact, abs=5e-3)


def test_noise_that_swamps_the_design_is_refused():
    with pytest.raises(ArgumentError, match="privacy: site 's': at epsilon = 0.01 the noise"):
        _release(_score(np.random.default_rng(0), 30), 0.01, seed=1)


def _site_fit(seed=0, n=600):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 2))
    d = X[:, 0] + rng.normal(size=n)
    y = 0.5 * d + X[:, 1] + rng.normal(size=n)
    df = pd.DataFrame({"x1": X[:, 0], "x2": X[:, 1], "d": d, "y": y})
    return SiteDML(ml_l="linear", ml_m="linear", n_folds=3, site=f"s{seed}", random_state=seed).fit(
        df, y="y", d="d")


def test_site_dml_release_round_trips_and_fuses(tmp_path):
    fits = [_site_fit(k) for k in range(3)]
    priv = SummaryPrivacy(epsilon=5.0, regressor_bound=4.0, outcome_bound=5.0, random_state=1)
    released = [f.private_summary(priv) for f in fits]
    for fit, s in zip(fits, released):
        assert s.folds == () and s.metadata["privacy"]["epsilon"] == 5.0
        assert s.se[0] > fit.se_[0]       # the noise's variance is part of the released one
        s.to_json(tmp_path / f"{s.site}.json")
        again = SiteSummary.from_json(tmp_path / f"{s.site}.json")
        np.testing.assert_allclose(again.cov, s.cov)
    fused = LateFusion(inference="none").fit(released)
    assert np.all(np.isfinite(fused.theta_))


def test_releases_count_against_the_sites_budget(tmp_path):
    fit = _site_fit()
    policy = DisclosurePolicy(ledger=str(tmp_path / "ledger.json"), total_epsilon=1.5)
    priv = SummaryPrivacy(epsilon=1.0, regressor_bound=4.0, outcome_bound=5.0)
    fit.private_summary(priv, policy=policy)
    with pytest.raises(ValueError, match="total_epsilon: epsilon 1 spent of 1.5"):
        fit.private_summary(priv, policy=policy)
    with pytest.raises(ArgumentError, match="n_rep: a private summary is released from one"):
        SiteDML(ml_l="linear", ml_m="linear", n_folds=2, n_rep=2, random_state=0).fit(
            y=np.arange(40.0) % 7, d=np.arange(40.0) % 3, x=np.sin(np.arange(40.0))).private_summary(priv)


def test_a_private_release_leaves_the_exact_number_of_clusters_out():
    rng = np.random.default_rng(5)
    n = 120
    df = pd.DataFrame({"x1": rng.normal(size=n), "d": rng.normal(size=n), "person": np.repeat(np.arange(40), 3)})
    df["y"] = 0.5 * df.d + df.x1 + rng.normal(size=n)
    fit = SiteDML(ml_l="linear", ml_m="linear", n_folds=3, random_state=0).fit(df, y="y", d="d", x=["x1"],
                                                                                cluster="person")
    assert fit.summary_.metadata["n_clusters"] == 40
    priv = SummaryPrivacy(epsilon=5.0, regressor_bound=4.0, outcome_bound=5.0, random_state=1)
    assert fit.private_summary(priv).metadata["n_clusters"] is None
