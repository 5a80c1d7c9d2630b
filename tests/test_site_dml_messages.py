"""SiteDML's messages and reports: where each nuisance came from, the columns at fault, and a
treatment constant over a whole site."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression, LogisticRegression

from hetmtl.fusion.site_dml import SiteDML

N = 60


def _irm_data(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(N, 2))
    d = (rng.random(N) < 0.5).astype(float)
    return x, d, d + x[:, 0] + rng.normal(size=N)


def _irm(**kw) -> SiteDML:
    return SiteDML("irm", ml_g=LinearRegression(), ml_m=LogisticRegression(), n_folds=2, **kw)


FOLDS = [np.arange(0, N, 2), np.arange(1, N, 2)]


def test_supplied_predictions_are_named_as_the_source():
    x, d, y = _irm_data()
    preds = {"ml_g0": np.zeros(N), "ml_g1": np.ones(N), "ml_m": np.full(N, 0.5)}
    fit = _irm().fit(y=y, d=d, x=x, folds=[FOLDS], predictions=preds)
    assert fit.nuisance_sources_ == {"ml_g": "supplied predictions", "ml_m": "supplied predictions"}
    assert fit.summary_.metadata["learners"] == {"ml_g": "external", "ml_m": "external"}


def test_partly_supplied_role_names_both_sources():
    x, d, y = _irm_data()
    fit = _irm().fit(y=y, d=d, x=x, folds=[FOLDS], predictions={"ml_g0": np.zeros(N)})
    assert fit.nuisance_sources_ == {
        "ml_g": "supplied predictions (ml_g0) and LinearRegression (ml_g1)",
        "ml_m": "LogisticRegression"}
    assert fit.summary_.metadata["learners"]["ml_g"] == "external (ml_g0) and LinearRegression (ml_g1)"


def test_learners_are_named_when_cross_fitted():
    x, d, y = _irm_data()
    fit = _irm(random_state=0).fit(y=y, d=d, x=x)
    assert fit.nuisance_sources_ == {"ml_g": "LinearRegression", "ml_m": "LogisticRegression"}
    assert fit.summary_.metadata["learners"] == fit.nuisance_sources_


def _frame() -> pd.DataFrame:
    x, d, y = _irm_data()
    return pd.DataFrame({"x1": x[:, 0], "x2": x[:, 1], "d": d, "y": y,
                         "g": np.where(x[:, 1] > 0, "a", "b"),
                         "h": pd.Categorical(np.where(x[:, 0] > 0, "u", "v"))})


def test_text_covariate_is_named():
    df = _frame()  # text columns are of dtype object, or str under pandas 3
    with pytest.raises(ValueError, match=r"^x: column 'g' is not numeric \(dtype \w+\); encode it "
                                         r"as numbers first$"):
        SiteDML().fit(df, y="y", d="d", x=["x1", "g"])
    with pytest.raises(ValueError, match=r"^x: columns 'g' \(dtype \w+\), 'h' \(dtype category\) "
                                         r"are not numeric; encode them as numbers first$"):
        SiteDML().fit(df, y="y", d="d", x=["g", "x1", "h"])
    with pytest.raises(ValueError, match=r"^basis: column 'g' is not numeric"):
        SiteDML("cate_linear", basis=["g"]).fit(df, y="y", d="d", x=["x1", "x2"])


def test_object_column_of_numbers_still_converts():
    df = _frame()
    df["x2"] = df["x2"].astype(object)
    fit = _irm(random_state=0).fit(df, y="y", d="d", x=["x1", "x2"])
    ref = _irm(random_state=0).fit(_frame(), y="y", d="d", x=["x1", "x2"])
    np.testing.assert_array_equal(fit.coef_, ref.coef_)


@pytest.mark.parametrize("model", ["plr", "irm"])
def test_treatment_constant_over_the_site(model):
    x, _, y = _irm_data()
    with pytest.raises(ValueError, match=r"^d: treatment 'd' is constant over all 60 rows of site 'A' "
                                         r"\(every value is 1\), so its effect cannot be estimated at "
                                         r"this site with any number of folds"):
        SiteDML(model, site="A").fit(y=y, d=np.ones(N), x=x)


def test_constant_column_among_several_treatments_is_named():
    x, d, y = _irm_data()
    df = pd.DataFrame({"x1": x[:, 0], "x2": x[:, 1], "d1": d, "d2": 0.0, "y": y})
    with pytest.raises(ValueError, match=r"^d: treatment 'd2' is constant over all 60 rows"):
        SiteDML(ml_l=LinearRegression(), ml_m=LinearRegression()).fit(df, y="y", d=["d1", "d2"])


def test_report_says_where_the_nuisances_came_from():
    x, d, y = _irm_data()
    preds = {"ml_g0": np.zeros(N), "ml_g1": np.ones(N), "ml_m": np.full(N, 0.5)}
    text = str(_irm().fit(y=y, d=d, x=x, folds=[FOLDS], predictions=preds))
    assert "nuisances: ml_g: supplied predictions, ml_m: supplied predictions" in text
    assert "LinearRegression" not in text
