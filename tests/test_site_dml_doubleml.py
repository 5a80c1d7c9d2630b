"""SiteDML against DoubleML: same learners, same sample splits, same numbers."""

from __future__ import annotations

import doubleml as dml
from doubleml.utils.propensity_score_processing import PSProcessorConfig
import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
from sklearn.linear_model import LinearRegression, LogisticRegression

from hetmtl.fusion.site_dml import SiteDML

# Linear learners are deterministic and both packages solve the same least-squares problems on
# the same rows; only the order of floating-point sums differs.
RTOL_LINEAR = 1e-8
# Forests with a fixed random_state see the same rows in the same order, so their predictions are
# identical; the margin covers summation order in the score only.
RTOL_FOREST = 1e-8


def _plr_frame(n: int, seed: int, binary: bool = False) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 6))
    if binary:
        D = (rng.uniform(size=n) < 1 / (1 + np.exp(-X[:, 0]))).astype(float)
    else:
        D = X[:, 0] + 0.5 * np.sin(X[:, 2]) + rng.normal(size=n)
    Y = 0.7 * D + X[:, 1] + np.cos(X[:, 0]) + rng.normal(size=n)
    df = pd.DataFrame(X, columns=[f"x{j}" for j in range(6)])
    df["y"], df["d"] = Y, D
    return df


def _irm_frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 5))
    # Strong confounding so that some propensities fall outside [0.05, 0.95] and clipping matters.
    A = (rng.uniform(size=n) < 1 / (1 + np.exp(-2.5 * X[:, 0]))).astype(float)
    Y = A + X[:, 0] + 0.5 * X[:, 1] * A + rng.normal(size=n)
    df = pd.DataFrame(X, columns=[f"x{j}" for j in range(5)])
    df["y"], df["d"] = Y, A
    return df


def _to_doubleml(folds: list[list[np.ndarray]], n: int) -> list[list[tuple[np.ndarray, np.ndarray]]]:
    return [[(np.setdiff1d(np.arange(n), t), t) for t in rep] for rep in folds]


def _doubleml_plr(df, ml_l, ml_m, smpls):
    obj = dml.DoubleMLPLR(dml.DoubleMLData(df, "y", "d"), ml_l, ml_m, draw_sample_splitting=False)
    obj.set_sample_splitting(smpls)
    return obj.fit()


def _doubleml_irm(df, ml_g, ml_m, smpls, clip):
    obj = dml.DoubleMLIRM(dml.DoubleMLData(df, "y", "d"), ml_g, ml_m,
                          ps_processor_config=PSProcessorConfig(clipping_threshold=clip),
                          draw_sample_splitting=False)
    obj.set_sample_splitting(smpls)
    return obj.fit()


@pytest.mark.parametrize(
    "learners, rtol",
    [
        ((LinearRegression(), LinearRegression()), RTOL_LINEAR),
        ((RandomForestRegressor(n_estimators=25, max_depth=4, random_state=0),
          RandomForestRegressor(n_estimators=25, max_depth=4, random_state=1)), RTOL_FOREST),
    ],
    ids=["linear", "forest"],
)
def test_plr_matches_doubleml(learners, rtol):
    df = _plr_frame(400, seed=0)
    ours = SiteDML("plr", ml_l=learners[0], ml_m=learners[1], n_folds=5, random_state=11)
    ours.fit(df, y="y", d="d", x=[f"x{j}" for j in range(6)])
    ref = _doubleml_plr(df, *learners, _to_doubleml(ours.folds_, len(df)))
    np.testing.assert_allclose(ours.coef_, ref.coef, rtol=rtol)
    np.testing.assert_allclose(ours.se_, ref.se, rtol=rtol)
    # The cross-fitted nuisances themselves agree.
    np.testing.assert_allclose(ours.predictions_["ml_l"][0], ref.predictions["ml_l"][:, 0, 0], rtol=rtol)
    np.testing.assert_allclose(ours.predictions_["ml_m"][0], ref.predictions["ml_m"][:, 0, 0], rtol=rtol)
    np.testing.assert_allclose(ours.confint().to_numpy(), ref.confint().to_numpy(), rtol=rtol)


def test_plr_binary_treatment_with_classifier_matches_doubleml():
    df = _plr_frame(300, seed=1, binary=True)
    ours = SiteDML("plr", ml_l=LinearRegression(), ml_m=LogisticRegression(), n_folds=4,
                   random_state=2).fit(df, y="y", d="d")
    ref = _doubleml_plr(df, LinearRegression(), LogisticRegression(), _to_doubleml(ours.folds_, len(df)))
    np.testing.assert_allclose(ours.coef_, ref.coef, rtol=RTOL_LINEAR)
    np.testing.assert_allclose(ours.se_, ref.se, rtol=RTOL_LINEAR)


def test_doubleml_drawn_splits_are_accepted_as_folds():
    """DoubleML's own ``smpls`` (lists of (train, test) tuples) can be handed to SiteDML."""
    df = _plr_frame(250, seed=2)
    ref = dml.DoubleMLPLR(dml.DoubleMLData(df, "y", "d"), LinearRegression(), LinearRegression(),
                          n_folds=3, n_rep=2)
    ours = SiteDML("plr", ml_l=LinearRegression(), ml_m=LinearRegression())
    ours.fit(df, y="y", d="d", folds=ref.smpls)
    ref.fit()
    assert (ours.n_folds_, ours.n_rep_) == (3, 2)
    np.testing.assert_allclose(ours.all_coef_[:, 0], ref.all_coef[0], rtol=RTOL_LINEAR)
    np.testing.assert_allclose(ours.coef_, ref.coef, rtol=RTOL_LINEAR)
    np.testing.assert_allclose(ours.se_, ref.se, rtol=RTOL_LINEAR)


@pytest.mark.parametrize("clip", [0.01, 0.05])
@pytest.mark.parametrize(
    "learners, rtol",
    [
        ((LinearRegression(), LogisticRegression()), RTOL_LINEAR),
        ((RandomForestRegressor(n_estimators=25, max_depth=4, random_state=0),
          RandomForestClassifier(n_estimators=25, max_depth=4, random_state=0)), RTOL_FOREST),
    ],
    ids=["linear", "forest"],
)
def test_irm_ate_matches_doubleml(learners, rtol, clip):
    df = _irm_frame(500, seed=3)
    ours = SiteDML("irm", ml_g=learners[0], ml_m=learners[1], n_folds=5, clip=clip, random_state=5)
    ours.fit(df, y="y", d="d")
    ref = _doubleml_irm(df, *learners, _to_doubleml(ours.folds_, len(df)), clip)
    np.testing.assert_allclose(ours.coef_, ref.coef, rtol=rtol)
    np.testing.assert_allclose(ours.se_, ref.se, rtol=rtol)
    np.testing.assert_allclose(ours.predictions_["ml_g0"][0], ref.predictions["ml_g0"][:, 0, 0], rtol=rtol)
    np.testing.assert_allclose(ours.predictions_["ml_g1"][0], ref.predictions["ml_g1"][:, 0, 0], rtol=rtol)
    # DoubleML stores the clipped propensities; ours are the learner's raw predictions.
    np.testing.assert_allclose(np.clip(ours.predictions_["ml_m"][0], clip, 1 - clip),
                               ref.predictions["ml_m"][:, 0, 0], rtol=rtol)


def test_irm_clipping_is_active_in_the_comparison():
    """Guard for the test above: at clip = 0.05 the linear propensity model does hit the bounds,
    so agreement there checks the clipping rule and not just the unclipped score."""
    df = _irm_frame(500, seed=3)
    ours = SiteDML("irm", ml_g=LinearRegression(), ml_m=LogisticRegression(), clip=0.05,
                   random_state=5).fit(df, y="y", d="d")
    m = ours.predictions_["ml_m"][0]
    assert np.mean((m < 0.05) | (m > 0.95)) > 0.05
    unclipped = SiteDML("irm", ml_g=LinearRegression(), ml_m=LogisticRegression(), clip=0.0,
                        random_state=5).fit(df, y="y", d="d")
    assert abs(unclipped.coef_[0] - ours.coef_[0]) > 1e-3


@pytest.mark.parametrize("model", ["plr", "irm"])
def test_repeated_splits_aggregate_like_doubleml(model):
    n_rep = 3
    if model == "plr":
        df = _plr_frame(300, seed=4)
        ours = SiteDML("plr", ml_l=LinearRegression(), ml_m=LinearRegression(), n_folds=4,
                       n_rep=n_rep, random_state=8).fit(df, y="y", d="d")
        ref = _doubleml_plr(df, LinearRegression(), LinearRegression(), _to_doubleml(ours.folds_, len(df)))
    else:
        df = _irm_frame(300, seed=4)
        ours = SiteDML("irm", ml_g=LinearRegression(), ml_m=LogisticRegression(), n_folds=4,
                       n_rep=n_rep, random_state=8).fit(df, y="y", d="d")
        ref = _doubleml_irm(df, LinearRegression(), LogisticRegression(),
                            _to_doubleml(ours.folds_, len(df)), 0.01)
    assert ref.n_rep == n_rep
    np.testing.assert_allclose(ours.all_coef_[:, 0], ref.all_coef[0], rtol=RTOL_LINEAR)
    np.testing.assert_allclose(ours.all_se_[:, 0], ref.all_se[0], rtol=RTOL_LINEAR)
    np.testing.assert_allclose(ours.coef_, ref.coef, rtol=RTOL_LINEAR)
    np.testing.assert_allclose(ours.se_, ref.se, rtol=RTOL_LINEAR)
    # Repetitions differ, so the aggregation rule is really exercised.
    assert np.ptp(ours.all_coef_) > 1e-6
    np.testing.assert_allclose(ours.confint(0.9).to_numpy(), ref.confint(level=0.9).to_numpy(),
                               rtol=RTOL_LINEAR)
    summ, ref_summ = ours.summary(), ref.summary
    np.testing.assert_allclose(summ[["coef", "std err", "2.5 %", "97.5 %"]].to_numpy(),
                               ref_summ[["coef", "std err", "2.5 %", "97.5 %"]].to_numpy(),
                               rtol=RTOL_LINEAR)
