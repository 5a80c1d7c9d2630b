"""Bad input to the multi-task regressors raises clear errors; baselines share the interface."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")

from dual_helpers import FAST, small_tasks  # noqa: E402
from hetmtl.dual import (  # noqa: E402
    DualEncoderMTL,
    HardSharingMTL,
    PooledMLP,
    SingleTaskMLP,
    shared_only,
    specific_only,
)

from hetmtl.dual._base import fit_prepared  # noqa: E402
from hetmtl.dual._data import prepare  # noqa: E402

pytestmark = pytest.mark.torch


@pytest.fixture(scope="module")
def data():
    return small_tasks(3)


@pytest.fixture(scope="module")
def model(data):
    X, y, task = data
    return DualEncoderMTL(random_state=0, **FAST).fit(X, y, task)


def test_unknown_task_at_predict(model, data):
    X, _, task = data
    bad = task.copy()
    bad[4] = "east"
    with pytest.raises(ValueError, match=r"task: unknown task label\(s\) \['east'\]"):
        model.predict(X, bad)


def test_task_too_small_for_the_split(data):
    X, y, task = data
    task = task.copy()
    task[:2] = "tiny"
    with pytest.raises(ValueError, match="task: task 'tiny' has 2 row"):
        DualEncoderMTL(**FAST).fit(X, y, task)


@pytest.mark.parametrize("where, match", [("X", "X: contains 1 NaN"), ("y", "y: contains 1 NaN")])
def test_nan_inputs(data, where, match):
    X, y, task = (a.copy() for a in data)
    (X if where == "X" else y).flat[3] = np.nan
    with pytest.raises(ValueError, match=match):
        DualEncoderMTL(**FAST).fit(X, y, task)


def test_mismatched_lengths(data, model):
    X, y, task = data
    with pytest.raises(ValueError, match="y: has 94 rows but X has 95"):
        DualEncoderMTL(**FAST).fit(X, y[:-1], task)
    with pytest.raises(ValueError, match=r"task: expected 95 labels"):
        DualEncoderMTL(**FAST).fit(X, y, task[:-1])
    with pytest.raises(ValueError, match="task: a task label per row"):
        DualEncoderMTL(**FAST).fit(X, y)
    with pytest.raises(ValueError, match="y\\[1\\]: has 3 rows but X\\[1\\] has 4"):
        DualEncoderMTL(**FAST).fit([X[:4], X[:4]], [y[:4], y[:3]])
    with pytest.raises(ValueError, match="X: has 2 columns but the model was fitted with 3"):
        model.predict(X[:, :2], task)
    with pytest.raises(ValueError, match="task: contains missing labels"):
        DualEncoderMTL(**FAST).fit(X, y, np.where(np.arange(95) == 0, None, task))


@pytest.mark.parametrize("param, value, match", [
    ("penalty", "l1", "penalty: must be one of"),
    ("center", "median", "center: must be one of"),
    ("lam_beta", -1.0, "lam_beta: must be a finite non-negative"),
    ("lam_beta", "cv", "lam_beta: must be a finite non-negative number or 'auto'"),
    ("lam_beta_grid", (), "lam_beta_grid: must be a non-empty sequence"),
    ("lam_beta_grid", (0.1, np.nan), "lam_beta_grid: must be a non-empty sequence"),
    ("head_ridge", -1.0, "head_ridge: must be a finite non-negative"),
    ("latent_shared", -1, "latent_shared: must be non-negative"),
    ("validation_fraction", 1.5, r"validation_fraction: must lie in \(0, 1\)"),
    ("negative_transfer", "maybe", "negative_transfer: must be one of"),
    ("random_state", "seed", "random_state: expected None"),
    ("device", "tpu9", "device: not a torch device"),
])
def test_bad_options(data, param, value, match):
    X, y, task = data
    with pytest.raises(ValueError, match=match):
        DualEncoderMTL(**{**FAST, param: value}).fit(X, y, task)


def test_both_encoders_removed(data):
    X, y, task = data
    with pytest.raises(ValueError, match="at least one encoder"):
        DualEncoderMTL(**{**FAST, "latent_shared": 0, "latent_specific": 0}).fit(X, y, task)


@pytest.mark.parametrize("make", [
    lambda: SingleTaskMLP(hidden=(6,), max_epochs=15, random_state=0),
    lambda: PooledMLP(hidden=(6,), max_epochs=15, random_state=0),
    lambda: HardSharingMTL(latent=4, hidden=(6,), max_epochs=15, random_state=0),
    lambda: shared_only(**{**FAST, "latent_specific": 2}),
    lambda: specific_only(**{**FAST, "latent_shared": 2}),
])
def test_baselines_share_the_interface(data, make):
    X, y, task = data
    est = make()
    est.fit(X, y, task)
    assert est.predict(X, task).shape == y.shape
    assert np.isfinite(est.score(X, y, task))
    with pytest.raises(ValueError, match="task: unknown task label"):
        est.predict(X[:2], np.array(["east", "north"], dtype=object))


def test_pooled_ignores_task_and_single_task_is_independent(data):
    X, y, task = data
    pooled = PooledMLP(hidden=(6,), max_epochs=10, random_state=0).fit(X, y, task)
    other = np.where(task == "north", "south", "north").astype(object)
    np.testing.assert_array_equal(pooled.predict(X, task), pooled.predict(X, other))
    # single-task fits are independent: other tasks' training responses do not matter
    prep = prepare(X, y, task, 0.2, "pooled", np.random.SeedSequence(0))
    prep2 = copy.deepcopy(prep)
    west = prep2.train.codes == 2
    prep2.train.y[west] = prep2.train.y[west][::-1] * 2
    params = dict(hidden=(6,), max_epochs=20, patience=100, random_state=0)
    a = fit_prepared(SingleTaskMLP(**params), prep, np.random.SeedSequence(1))
    b = fit_prepared(SingleTaskMLP(**params), prep2, np.random.SeedSequence(1))
    keep = task != "west"
    np.testing.assert_array_equal(a.predict(X[keep], task[keep]), b.predict(X[keep], task[keep]))
    assert not np.array_equal(a.predict(X[~keep], task[~keep]), b.predict(X[~keep], task[~keep]))


def test_numpy_string_labels_print_plainly(data, model):
    # A label array of NumPy strings ('<U' dtype) must not print as np.str_('...').
    X, y, task = data
    labels = task.astype(str)
    small = labels.copy()
    small[:2] = "d"
    with pytest.raises(ValueError, match=r"task: task 'd' has 2 row\(s\)"):
        DualEncoderMTL(**FAST).fit(X, y, small)
    fitted = DualEncoderMTL(random_state=0, **FAST).fit(X, y, labels)
    unknown = labels.copy()
    unknown[0] = "zz"
    with pytest.raises(ValueError, match=r"unknown task label\(s\) \['zz'\]; fitted tasks are "
                                         r"\['north', 'south', 'west'\]$"):
        fitted.predict(X, unknown)


def test_list_of_rows_is_one_table(data, model):
    # X.tolist() is a list of rows with a label per row, not a list of per-task arrays.
    X, y, task = data
    from_lists = DualEncoderMTL(random_state=0, **FAST).fit(X.tolist(), y.tolist(), task.tolist())
    pred = from_lists.predict(X.tolist(), task.tolist())
    assert isinstance(pred, np.ndarray) and pred.shape == y.shape
    np.testing.assert_allclose(pred, model.predict(X, task))


def test_task_with_per_task_arrays_names_both_readings(data):
    X, y, task = data
    with pytest.raises(ValueError, match=r"task: must be None when X is a list of per-task arrays "
                                         r".*pass X as a 2-D array or a list of rows"):
        DualEncoderMTL(**FAST).fit([X[:40], X[40:]], [y[:40], y[40:]], task)


def test_a_text_column_is_named():
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"a": rng.normal(size=40), "grp": list("ab") * 20, "b": rng.normal(size=40)})
    with pytest.raises(ValueError, match=r"X: column\(s\) \['grp'\] are not numeric; encode them"):
        DualEncoderMTL().fit(df, rng.normal(size=40), ["t1", "t2"] * 20)
