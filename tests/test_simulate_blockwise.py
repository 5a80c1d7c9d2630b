"""The block-wise missing simulation designs: shapes, missing pattern, covariance, settings."""

from __future__ import annotations

import numpy as np
import pytest

from hetmtl.simulate import BLOCKWISE_SETTINGS, blockwise_setting, make_blockwise_tasks


def test_shapes_and_missing_pattern_follow_the_layout():
    ds = make_blockwise_tasks(3, [30, 50, 20], p_anchor=6, p_specific=4, rho=(0.9, 0.8, 0.7), random_state=0)
    p = 6 + 3 * 4
    assert ds.X.shape == ds.X_full.shape and ds.X.shape[1] == p and ds.n_tasks == 3
    np.testing.assert_array_equal(np.bincount(ds.task), [24, 40, 16])
    np.testing.assert_array_equal(np.bincount(ds.task_test), [6, 10, 4])
    assert ds.y.shape == ds.task.shape and ds.y_test.shape == ds.f_test.shape == ds.task_test.shape
    lay = ds.layout
    assert lay.anchor == "x0" and lay.sources == ("x0", "x1", "x2", "x3") and len(lay.all_columns) == p
    for X, Xf, task in ((ds.X, ds.X_full, ds.task), (ds.X_test, ds.X_test_full, ds.task_test)):
        assert np.isfinite(Xf).all()
        for t in range(3):
            rows = task == t
            for s in lay.sources:
                block = X[np.ix_(rows, lay.columns(s))]
                if s in lay.observed(t):
                    np.testing.assert_array_equal(block, Xf[np.ix_(rows, lay.columns(s))])
                else:
                    assert np.isnan(block).all()
        # the layout reads the data back: split accepts it and from_data infers the same layout
        lay.split(X, task)
    from hetmtl.blockwise import BlockLayout
    assert BlockLayout.from_data(ds.X, ds.task, {s: lay.columns(s) for s in lay.sources}, "x0") == lay


def test_response_is_the_stated_function():
    ds = make_blockwise_tasks(2, 40, p_anchor=5, p_specific=3, alpha=0.4, noise=0.0, random_state=3)
    p = ds.X_full.shape[1]
    x, t = ds.X_test_full, ds.task_test
    f = 0.4 * (x ** 2 @ ds.v_shared) / p + 0.6 * np.einsum("ij,ij->i", x, ds.v_task[t]) / p
    np.testing.assert_allclose(ds.f_test, f, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(ds.y_test, ds.f_test)  # noise 0


def test_reproducible_and_common_random_numbers():
    a = make_blockwise_tasks(2, 30, p_anchor=5, p_specific=3, rho=(0.95, 0.5), random_state=7)
    b = make_blockwise_tasks(2, 30, p_anchor=5, p_specific=3, rho=(0.95, 0.5), random_state=7)
    c = make_blockwise_tasks(2, 30, p_anchor=5, p_specific=3, rho=(0.95, 0.8), random_state=7)
    np.testing.assert_array_equal(a.X_full, b.X_full)
    np.testing.assert_array_equal(a.y, b.y)
    first = a.task == 0
    np.testing.assert_array_equal(a.X_full[first], c.X_full[first])  # task 0 ignores rho_2
    assert not np.allclose(a.X_full[~first], c.X_full[~first])
    np.testing.assert_array_equal(a.v_shared, c.v_shared)
    assert not np.array_equal(a.X_full, make_blockwise_tasks(2, 30, p_anchor=5, p_specific=3, random_state=8).X_full)


@pytest.mark.parametrize("rho", [0.5, 0.9])
def test_covariance_structure(rho):
    ds = make_blockwise_tasks(1, 20000, p_anchor=30, p_specific=10, rho=rho, test_fraction=0.01, random_state=11)
    x = ds.X_full
    lag = np.abs(np.subtract.outer(np.arange(40), np.arange(40)))
    # the sample covariance has entries of standard error about sqrt(2 / n) < 0.01
    np.testing.assert_allclose(np.cov(x, rowvar=False), rho ** (0.01 * lag), atol=0.04)
    np.testing.assert_allclose(x.mean(axis=0), 0.0, atol=0.03)


def test_non_gaussian_variant():
    g = make_blockwise_tasks(1, 200, p_anchor=4, p_specific=2, random_state=2)
    ng = make_blockwise_tasks(1, 200, p_anchor=4, p_specific=2, gaussian=False, random_state=2)
    np.testing.assert_allclose(ng.X_full, g.X_full + 0.3 * np.sin(g.X_full))


@pytest.mark.parametrize("setting", sorted(BLOCKWISE_SETTINGS))
def test_settings(setting):
    spec = BLOCKWISE_SETTINGS[setting]
    for value in spec["values"]:
        kwargs = blockwise_setting(setting, value)
        ds = make_blockwise_tasks(**{**kwargs, "n_per_task": 10 if setting != "C" else kwargs["n_per_task"]},
                                  random_state=0)
        T = {"T3": 3, "T4": 4}.get(setting, 2)
        assert ds.n_tasks == T
        p_anchor = 125 if setting in ("T3", "T4") else 100
        p_specific = value if setting == "D" else 25
        assert ds.layout.width("x0") == p_anchor and ds.layout.width("x1") == p_specific
    assert blockwise_setting("A", 0.6) == {"rho": (0.95, 0.6)}
    assert blockwise_setting("A") == {"rho": (0.95, 0.7)}
    assert blockwise_setting("B", 0.2) == {"rho": 0.8, "alpha": 0.2}
    assert blockwise_setting("T4")["rho"] == (0.95, 0.9, 0.9, 0.9)


@pytest.mark.parametrize("kwargs, match", [
    ({"n_tasks": 0}, "n_tasks: must be at least 1"),
    ({"p_anchor": 0}, "p_anchor: must be a positive int"),
    ({"p_specific": 2.5}, "p_specific: must be a positive int"),
    ({"rho": (0.9, 0.8, 0.7)}, "rho: expected one value or 2 values"),
    ({"rho": 1.0}, r"rho: every value must lie in \(0, 1\)"),
    ({"alpha": 1.5}, r"alpha: must lie in \[0, 1\]"),
    ({"noise": -1.0}, "noise: must be a finite non-negative number"),
    ({"test_fraction": 1.0}, r"test_fraction: must lie in \(0, 1\)"),
    ({"n_per_task": 3}, "n_per_task: every task needs at least 5 rows"),
    ({"random_state": -1}, "random_state: expected None"),
])
def test_argument_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_blockwise_tasks(**{"n_per_task": 20, **kwargs})
    with pytest.raises(ValueError, match="setting: must be one of"):
        blockwise_setting("E")


def test_default_rho_and_split_for_any_number_of_tasks():
    np.testing.assert_array_equal(make_blockwise_tasks(3, 10, p_anchor=3, p_specific=2, random_state=0).rho,
                                  [0.95, 0.7, 0.7])
    ds = make_blockwise_tasks(2, 5, p_anchor=3, p_specific=2, test_fraction=0.95, random_state=0)
    np.testing.assert_array_equal(np.bincount(ds.task), [1, 1])  # a training row is always left
