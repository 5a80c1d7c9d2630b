"""scikit-learn's contract for the neural estimators and the block-wise imputers: feature names,
NotFittedError, pandas output, task labels through metadata routing, transformer tags."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import sklearn
from sklearn.base import clone
from sklearn.exceptions import NotFittedError, UnsetMetadataPassedError
from sklearn.metrics import r2_score
from sklearn.model_selection import GridSearchCV, KFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

torch = pytest.importorskip("torch")

from hetmtl.blockwise import BlockLayout, HBIImputer, IterativeBlockImputer, MeanBlockImputer  # noqa: E402
from hetmtl.blockwise import TwoPathwayMTL  # noqa: E402
from hetmtl.dual import DualEncoderMTL, PooledMLP  # noqa: E402
from hetmtl.simulate import make_blockwise_tasks  # noqa: E402

from dual_helpers import FAST, small_tasks  # noqa: E402

pytestmark = pytest.mark.torch

COLUMNS = ["age", "dose", "bmi"]


@pytest.fixture
def routing():
    """Metadata routing on for one test, restored after."""
    before = sklearn.get_config()["enable_metadata_routing"]
    sklearn.set_config(enable_metadata_routing=True)
    yield
    sklearn.set_config(enable_metadata_routing=before)


def _frame():
    X, y, task = small_tasks(sizes=(40, 45, 35))
    return pd.DataFrame(X, columns=COLUMNS, index=pd.RangeIndex(1000, 1000 + len(y))), y, task


def test_feature_names_are_recorded_and_reordered_or_renamed_columns_refused():
    df, y, task = _frame()
    model = PooledMLP(hidden=(6,), max_epochs=5, random_state=0).fit(df, y, task)
    np.testing.assert_array_equal(model.feature_names_in_, COLUMNS)
    with pytest.raises(ValueError, match="another order than at fit"):
        model.predict(df[["bmi", "age", "dose"]], task)
    with pytest.raises(ValueError, match=r"missing: \['bmi'\]; not seen at fit: \['weight'\]"):
        model.predict(df.rename(columns={"bmi": "weight"}), task)
    # Arrays carry no names: refitting on one forgets them.
    assert not hasattr(model.fit(df.to_numpy(), y, task), "feature_names_in_")


def test_not_fitted_error():
    df, _, task = _frame()
    with pytest.raises(NotFittedError):
        DualEncoderMTL(**FAST).predict(df, task)


def test_predict_returns_a_series_with_the_rows_index_after_set_output():
    df, y, task = _frame()
    model = PooledMLP(hidden=(6,), max_epochs=5, random_state=0).fit(df, y, task)
    plain = model.predict(df, task)
    assert isinstance(plain, np.ndarray)
    series = model.set_output(transform="pandas").predict(df, task)
    assert isinstance(series, pd.Series) and series.name == "prediction"
    pd.testing.assert_index_equal(series.index, df.index)
    np.testing.assert_array_equal(series.to_numpy(), plain)
    assert model.score(df, y, task) == pytest.approx(r2_score(y, plain), rel=1e-12)
    # The choice survives clone (scikit-learn's tools clone) and can be undone.
    assert clone(model)._sklearn_output_config == {"transform": "pandas"}
    assert isinstance(model.set_output(transform="default").predict(df, task), np.ndarray)
    with pytest.raises(ValueError, match="transform: must be one of"):
        model.set_output(transform="polars")
    # The global setting applies when the estimator has no choice of its own.
    with sklearn.config_context(transform_output="pandas"):
        assert isinstance(clone(PooledMLP()).set_params(hidden=(6,), max_epochs=5, random_state=0)
                          .fit(df, y, task).predict(df, task), pd.Series)


def _manual_cv_scores(make, X, y, task, cv):
    out = []
    for train, test in cv.split(X):
        model = make().fit(X.iloc[train], y[train], task[train])
        out.append(model.score(X.iloc[test], y[test], task[test]))
    return np.array(out)


def test_task_labels_reach_fit_score_and_predict_through_metadata_routing(routing):
    df, y, task = _frame()
    cv = KFold(3, shuffle=True, random_state=0)

    def make():
        return PooledMLP(hidden=(6,), max_epochs=8, random_state=0)

    est = make().set_fit_request(task=True).set_score_request(task=True)
    scores = cross_val_score(est, df, y, params={"task": task}, cv=cv)
    np.testing.assert_allclose(scores, _manual_cv_scores(make, df, y, task, cv), rtol=1e-12)
    # A pipeline hands the labels to predict as well.
    pipe = make_pipeline(StandardScaler(), make().set_fit_request(task=True).set_predict_request(task=True))
    pred = pipe.fit(df, y, task=task).predict(df, task=task)
    Z = StandardScaler().fit_transform(df)
    np.testing.assert_array_equal(pred, make().fit(Z, y, task).predict(Z, task))
    # Without a request the labels are refused rather than silently dropped.
    with pytest.raises(UnsetMetadataPassedError, match="task"):
        cross_val_score(make(), df, y, params={"task": task}, cv=cv)


def test_grid_search_routes_task_labels_and_refits_the_best(routing):
    df, y, task = _frame()
    cv = KFold(2, shuffle=True, random_state=1)
    base = DualEncoderMTL(random_state=0, **FAST).set_fit_request(task=True).set_score_request(task=True)
    search = GridSearchCV(base, {"gamma": [0.0, 0.5]}, cv=cv).fit(df, y, task=task)
    for i, gamma in enumerate(search.cv_results_["param_gamma"]):
        expected = _manual_cv_scores(lambda: DualEncoderMTL(random_state=0, gamma=gamma, **FAST), df, y, task, cv)
        assert search.cv_results_["mean_test_score"][i] == pytest.approx(expected.mean(), rel=1e-12)
    best = DualEncoderMTL(random_state=0, gamma=search.best_params_["gamma"], **FAST).fit(df, y, task)
    np.testing.assert_array_equal(search.best_estimator_.predict(df, task), best.predict(df, task))


@pytest.fixture(scope="module")
def blocks():
    return make_blockwise_tasks(2, 50, p_anchor=4, p_specific=3, rho=0.3, random_state=5)


def _named(blocks):
    names = {s: [f"{s}_{j}" for j in range(blocks.layout.width(s))] for s in blocks.layout.sources}
    layout = BlockLayout(names, blocks.layout.anchor, {t: blocks.layout.observed(t)
                                                         for t in blocks.layout.tasks})
    columns = [c for s in blocks.layout.sources for c in names[s]]
    frame = pd.DataFrame(blocks.X, columns=columns, index=pd.RangeIndex(500, 500 + len(blocks.y)))
    return layout, frame


@pytest.mark.parametrize("make", [
    lambda layout: MeanBlockImputer(layout),
    lambda layout: IterativeBlockImputer(layout, max_iter=30, tol=1e-2, random_state=0),
    lambda layout: HBIImputer(layout, width=4, depth=1, lam_orth=0.0, max_epochs=5, random_state=0),
], ids=["mean", "iterative", "hbi"])
def test_imputers_are_transformers_with_pandas_output(blocks, make):
    layout, frame = _named(blocks)
    imputer = make(layout)
    tags = imputer.__sklearn_tags__()
    assert tags.transformer_tags is not None and tags.transformer_tags.preserves_dtype == ["float64"]
    assert tags.input_tags.allow_nan and not tags.target_tags.required
    plain = imputer.fit(frame, blocks.task).transform(frame, blocks.task)
    np.testing.assert_array_equal(imputer.get_feature_names_out(), frame.columns)
    out = imputer.set_output(transform="pandas").transform(frame, blocks.task)
    assert isinstance(out, pd.DataFrame)
    pd.testing.assert_index_equal(out.index, frame.index)
    assert list(out.columns) == list(frame.columns)
    np.testing.assert_array_equal(out.to_numpy(), plain)
    assert isinstance(imputer.fit_transform(frame, blocks.task), pd.DataFrame)


def test_a_model_reads_its_imputer_as_arrays_whatever_the_output_setting(blocks):
    with sklearn.config_context(transform_output="pandas"):
        model = TwoPathwayMTL(blocks.layout, imputer="mean", hidden=6, max_epochs=5, n_threads=1,
                              random_state=0).fit(blocks.X, blocks.y, blocks.task)
        pred = model.predict(blocks.X_test, blocks.task_test)
    assert isinstance(pred, pd.Series)
    np.testing.assert_array_equal(pred.to_numpy(), TwoPathwayMTL(
        blocks.layout, imputer="mean", hidden=6, max_epochs=5, n_threads=1,
        random_state=0).fit(blocks.X, blocks.y, blocks.task).predict(blocks.X_test, blocks.task_test))
