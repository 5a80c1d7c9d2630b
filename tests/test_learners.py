"""The learner registry: one meaning per name, keyword overrides, and the seeds SiteDML uses."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import is_classifier, is_regressor

from hetmtl.fusion.learners import (LEARNERS, final_estimator, learner_defaults, make_learner,
                                    make_learners)
from hetmtl.fusion.site_dml import SiteDML

EXPECTED = {
    ("rf", "regressor"): "RandomForestRegressor", ("rf", "classifier"): "RandomForestClassifier",
    ("gbm", "regressor"): "GradientBoostingRegressor",
    ("gbm", "classifier"): "GradientBoostingClassifier",
    ("lasso", "regressor"): "LassoCV", ("lasso", "classifier"): "LogisticRegressionCV",
    ("linear", "regressor"): "LinearRegression", ("linear", "classifier"): "LogisticRegression",
}


@pytest.mark.parametrize("name,kind", sorted(EXPECTED))
def test_each_name_is_one_documented_estimator(name, kind):
    est = make_learner(name, kind, random_state=3)
    assert type(final_estimator(est)).__name__ == EXPECTED[name, kind]
    assert (is_classifier if kind == "classifier" else is_regressor)(est)
    params = final_estimator(est).get_params()
    if name != "linear":  # the linear fits are deterministic and take no seed
        assert params["random_state"] == 3
    assert learner_defaults(name, kind) == final_estimator(make_learner(name, kind)).get_params(deep=False)


def test_documented_settings():
    rf = make_learner("rf")
    assert (rf.n_estimators, rf.min_samples_leaf) == (100, 5)
    gbm = make_learner("gbm", "classifier")
    assert (gbm.n_estimators, gbm.learning_rate, gbm.max_depth, gbm.min_samples_leaf) == (100, 0.05, 3, 20)
    logit = make_learner("linear", "classifier")
    assert logit.C == np.inf and not hasattr(logit, "steps")  # unpenalized, not rescaled
    assert [type(s).__name__ for _, s in make_learner("lasso").steps] == ["StandardScaler", "LassoCV"]


def test_overrides_replace_defaults_and_keep_the_rest():
    rf = make_learner("rf", "classifier", random_state=1, n_estimators=7.0, max_features=0.5)
    assert rf.n_estimators == 7 and isinstance(rf.n_estimators, int)  # a whole float (from R)
    assert rf.max_features == 0.5 and rf.min_samples_leaf == 5
    lasso = make_learner("lasso", cv=3)
    assert final_estimator(lasso).cv == 3 and type(lasso.steps[0][1]).__name__ == "StandardScaler"
    with pytest.raises(ValueError, match=r"learner_args: unknown parameter\(s\) 'trees' of "
                                         r"RandomForestRegressor"):
        make_learner("rf", trees=5)


@pytest.mark.parametrize("kwargs,match", [
    (dict(name="svm"), "learner: must be one of"),
    (dict(name="rf", kind="ranker"), "kind: must be one of"),
    (dict(name="rf", random_state=1.5), "random_state: expected None or an int"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_learner(**kwargs)


def test_names_are_the_python_constant():
    assert LEARNERS == ("rf", "gbm", "lasso", "linear")


@pytest.mark.parametrize("name", LEARNERS)
def test_make_learners_equals_sitedml_by_name(name):
    # SiteDML resolves a learner name exactly as make_learners does (kinds and seeds).
    rng = np.random.default_rng(4)
    n = 160
    x = rng.normal(size=(n, 2))
    a = rng.integers(0, 2, size=n).astype(float)
    y = a + x[:, 0] + rng.normal(size=n)
    by_name = SiteDML(model="irm", ml_g=name, ml_m=name, n_folds=3, random_state=11).fit(y=y, d=a, x=x)
    given = SiteDML(model="irm", n_folds=3, random_state=11,
                    **make_learners(name, "irm", binary_outcome=False, binary_treatment=True,
                                    random_state=11)).fit(y=y, d=a, x=x)
    np.testing.assert_array_equal(by_name.coef_, given.coef_)
    np.testing.assert_array_equal(by_name.se_, given.se_)


def test_default_learner_is_rf_and_learner_args_reach_it():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(80, 2))
    d = x[:, 0] + rng.normal(size=80)
    y = d + rng.normal(size=80)
    fit = SiteDML(n_folds=2, random_state=3, learner_args={"n_estimators": 10}).fit(y=y, d=d, x=x)
    assert {type(e).__name__ for e in fit.learners_.values()} == {"RandomForestRegressor"}
    assert all(e.n_estimators == 10 for e in fit.learners_.values())
    with pytest.raises(ValueError, match="ml_l: must be an estimator or one of"):
        SiteDML(ml_l="svm").fit(y=y, d=d, x=x)
    from sklearn.linear_model import LinearRegression
    with pytest.raises(ValueError, match="learner_args: only used by named learners"):
        SiteDML(ml_l=LinearRegression(), ml_m=LinearRegression(),
                learner_args={"n_estimators": 5}).fit(y=y, d=d, x=x)
