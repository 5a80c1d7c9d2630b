"""Bad input gets an error that names the argument; nothing is silently converted or wrong."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hetmtl._util.validation import (ArgumentError, check_array, check_choice, check_disjoint,
                                     check_int, check_item, check_labels, check_names,
                                     check_nonsingular, check_number, check_positive_definite)
from hetmtl.fusion import LateFusion, SiteDML, SiteSummary, fused_path, fused_solve
from hetmtl.fusion.kernel_grid import KernelGrid
from hetmtl.fusion.nuisance_fusion import NuisanceFusion

from fusion_helpers import residual_sites


# ----------------------------------------------------------------------------- the shared checks
@pytest.mark.parametrize("value", [True, np.bool_(False), "0.5", None, [1.0], complex(1, 0),
                                   float("nan"), float("inf")])
def test_check_number_refuses_what_is_not_a_finite_real(value):
    with pytest.raises(ArgumentError, match=r"^lam: must be a finite number, got ") as info:
        check_number(value, "lam")
    assert info.value.argument == "lam"


def test_check_number_bounds_name_the_interval():
    assert check_number(np.float32(0.5), "x", low=0, high=1) == 0.5
    with pytest.raises(ArgumentError, match=r"^x: must lie in \(0, inf\), got 0$"):
        check_number(0, "x", low=0, low_open=True)
    with pytest.raises(ArgumentError, match=r"^x: must lie in \[0, 1\], got 2$"):
        check_number(2, "x", low=0, high=1)


@pytest.mark.parametrize("value", [2.7, True, "3", None, float("nan"), np.array([3])])
def test_check_int_refuses_fractions_booleans_and_strings(value):
    with pytest.raises(ArgumentError, match=r"^n_boot: must be a whole number"):
        check_int(value, "n_boot", minimum=2)


def test_check_int_reads_whole_floats_and_numpy_integers():
    assert check_int(5.0, "k") == 5 and check_int(np.int64(7), "k", maximum=7) == 7
    with pytest.raises(ArgumentError, match="must be an integer"):
        check_int(5.0, "k", integer_type=True)
    with pytest.raises(ArgumentError, match="must be at most 3"):
        check_int(4, "k", maximum=3)


def test_check_array_shapes_and_types():
    assert check_array([[1, 2, 3]], "a", shape=(None, 3)).shape == (1, 3)
    with pytest.raises(ArgumentError, match=r"^a: expected shape \(any, 2\), got \(1, 3\)"):
        check_array([[1, 2, 3]], "a", shape=(None, 2))
    for bad in ("abc", True, None, [True, False], np.array(["1", "2"])):
        with pytest.raises(ArgumentError, match="^a: expected an array of numbers"):
            check_array(bad, "a")
    with pytest.raises(ArgumentError, match="NaN or infinite"):
        check_array([1.0, np.nan], "a")
    with pytest.raises(ArgumentError, match="needs at least 1 value"):
        check_array([], "a", min_size=1)


def test_choice_names_and_labels():
    with pytest.raises(ArgumentError, match=r"^penalty: must be one of \('l2', 'l2sq'\), got 3$"):
        check_choice(3, "penalty", ("l2", "l2sq"))
    with pytest.raises(ArgumentError, match="more than once"):
        check_names(["a", "a"], "x")
    with pytest.raises(ArgumentError, match=r"^x: column 'y' is also given as y"):
        check_disjoint({"y": ["y"], "d": ["d"], "x": ["x1", "y"]})
    with pytest.raises(ArgumentError, match="mixes booleans with numbers"):
        check_labels([1, True], "tasks")
    with pytest.raises(ArgumentError, match="appears more than once"):
        check_labels([1, 1.0], "tasks")
    assert check_labels(["a", "b"], "tasks") == ["a", "b"]


def test_check_item_by_name_or_index():
    assert check_item("b", "coef", ["a", "b"]) == 1 and check_item(-1, "coef", ["a", "b"]) == 1
    with pytest.raises(ArgumentError, match=r"^coef: unknown coefficient 'zzz'; known: \['a', 'b'\]"):
        check_item("zzz", "coef", ["a", "b"])
    for bad in (True, 1.0, 2, None):
        with pytest.raises(ArgumentError, match="^coef: "):
            check_item(bad, "coef", ["a", "b"])


def test_conditioning_is_relative_to_scale_not_a_determinant():
    # det(-0.01 I) at p = 200 underflows to zero; the matrix is perfectly conditioned.
    assert np.linalg.det(-0.01 * np.eye(200)) == 0.0
    check_nonsingular(-0.01 * np.eye(200), "J")
    check_positive_definite(1e-30 * np.eye(3), "Omega")
    check_positive_definite(1e30 * np.eye(3), "Omega")
    with pytest.raises(ArgumentError, match="singular to working precision"):
        check_nonsingular(np.diag([1.0, 1e-14]), "J")
    with pytest.raises(ArgumentError, match="not positive definite"):
        check_positive_definite(np.diag([1.0, -1e-3]), "Omega")


# ----------------------------------------------------------------------------- entry points
def _frame(n=120, seed=0, q=3, shift=0.0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, q)) + shift
    d = rng.binomial(1, 0.5, size=n).astype(float)
    y = 0.5 * d + X[:, 0] - shift + rng.normal(size=n)
    df = pd.DataFrame(X, columns=[f"x{j + 1}" for j in range(q)])
    df["d"], df["y"] = d, y
    return df


def test_outcome_among_covariates_is_refused_by_name_and_by_value():
    df = _frame()
    est = SiteDML(ml_l="linear", ml_m="linear", n_folds=2, random_state=0)
    with pytest.raises(ArgumentError, match=r"^x: column 'y' is also given as y") as info:
        est.fit(df, y="y", d="d", x=["x1", "y"])
    assert info.value.argument == "x"
    with pytest.raises(ArgumentError, match=r"^cluster: column 'd' is also given as d"):
        est.fit(df, y="y", d="d", x=["x1"], cluster="d")
    X = np.column_stack([df[["x1", "x2"]].to_numpy(), df["y"].to_numpy()])
    with pytest.raises(ArgumentError, match="identical to the outcome y"):
        est.fit(y=df["y"].to_numpy(), d=df["d"].to_numpy(), x=X)


@pytest.mark.parametrize("param, value, message", [
    ("n_folds", True, "n_folds: must be a whole number"),
    ("n_folds", 2.5, "n_folds: must be a whole number"),
    ("n_rep", "2", "n_rep: must be a whole number"),
    ("clip", True, "clip: must be a finite number"),
    ("clip", 0.7, r"clip: must lie in \[0, 0.5\)"),
])
def test_site_dml_parameters(param, value, message):
    with pytest.raises(ArgumentError, match=message):
        SiteDML(ml_l="linear", ml_m="linear", **{param: value}).fit(_frame(), y="y", d="d")


def test_cate_linear_with_uncentered_covariates_is_identified():
    # Eight covariates around 10: the score Jacobian has entries ~25 and a determinant far
    # beyond what a determinant test relative to the largest entry accepts; it is well identified.
    df = _frame(n=400, seed=3, q=8, shift=10.0)
    basis = [f"x{j + 1}" for j in range(8)]
    fit = SiteDML(model="cate_linear", ml_l="linear", ml_m="linear", n_folds=2, basis=basis,
                  random_state=1).fit(df, y="y", d="d", x=basis)
    assert fit.coef_.shape == (9,) and np.all(np.isfinite(fit.se_))


def test_site_summary_of_many_well_conditioned_coefficients():
    p = 200
    summary = SiteSummary(theta=np.zeros(p), J=-0.01 * np.eye(p), Omega=np.eye(p), n=1000)
    assert np.allclose(summary.se, np.sqrt(1e4 / 1000))


@pytest.mark.parametrize("kwargs, message", [
    ({"n": True}, "n: must be a finite number"),
    ({"n": "10"}, "n: must be a finite number"),
    ({"n": -1.0}, r"n: must lie in \(0, inf\)"),
    ({"theta": "abc"}, "theta: expected an array of numbers"),
    ({"theta": [np.nan]}, "theta: contains 1 NaN"),
    ({"J": [[0.0]]}, "J: the score Jacobian is singular"),
    ({"Omega": [[-1.0]]}, "Omega: not positive definite"),
    ({"site": ""}, "site: must be a non-empty string"),
    ({"coef_names": [1]}, "coef_names: expected"),
])
def test_site_summary_constructor(kwargs, message):
    base = {"theta": [0.1], "J": [[-1.0]], "Omega": [[1.0]], "n": 100}
    with pytest.raises(ArgumentError, match=message):
        SiteSummary(**{**base, **kwargs})


@pytest.mark.parametrize("kwargs, message", [
    ({"n": True}, "n: must be a finite number"),
    ({"se": "0.1"}, "se: expected an array of numbers"),
    ({"se": None, "cov": [[1.0, 2.0], [2.0, 1.0]], "estimate": [0.0, 1.0]}, r"cov: singular or not a covariance \(not positive definite"),
    ({"estimate": []}, "estimate: needs at least 1 value"),
])
def test_site_summary_from_estimate(kwargs, message):
    with pytest.raises(ArgumentError, match=message):
        SiteSummary.from_estimate(**{"estimate": 0.2, "se": 0.1, **kwargs})


def _summaries():
    return residual_sites(np.random.default_rng(1), np.array([0.0, 0.2, 1.0]), [200, 200, 200])[0]


@pytest.mark.parametrize("kwargs, message", [
    ({"lam": True}, "lam: must be a finite number, got True"),
    ({"lam": "0.5"}, r"lam: must be one of \('cv',\), got '0.5'"),
    ({"lam": -1.0}, r"lam: must lie in \[0, inf\)"),
    ({"n_boot": 2.7}, "n_boot: must be a whole number, got 2.7"),
    ({"n_boot": True}, "n_boot: must be a whole number"),
    ({"tol": "abc"}, "tol: must be a positive number, got 'abc' \\(str\\)"),
    ({"max_iter": 0}, "max_iter: must be at least 1"),
    ({"n_lambda": 1}, "n_lambda: must be at least 2"),
    ({"C": float("nan")}, "C: must be a finite number"),
    ({"slab_scale": 1.0}, r"slab_scale: must lie in \(1, inf\)"),
])
def test_late_fusion_parameters(kwargs, message):
    lam = {"lam": 0.1} if "lam" not in kwargs and "slab_scale" not in kwargs else {}
    with pytest.raises(ArgumentError, match=message):
        LateFusion(**{**lam, **kwargs}).fit(_summaries())


def test_heterogeneity_coef_is_named_in_the_error():
    fit = LateFusion(lam=0.1, inference="none").fit(_summaries())
    with pytest.raises(ArgumentError, match=r"^coef: unknown coefficient 'zzz'; known: \['theta'\]"):
        fit.heterogeneity(coef="zzz")
    with pytest.raises(ArgumentError, match="coef: index 3 out of range"):
        fit.heterogeneity(coef=3)
    assert fit.heterogeneity(coef="theta").k == 3


@pytest.mark.parametrize("kwargs, message", [
    ({"lam": True}, "lam: must be a finite number"),
    ({"lam": "0.5"}, "lam: must be a finite number"),
    ({"tol": "abc"}, "tol: must be a positive number"),
    ({"max_iter": 2.5}, "max_iter: must be a whole number"),
    ({"n": [True, True]}, "n: expected an array of numbers"),
    ({"theta_hat": [[np.inf], [0.0]]}, "theta_hat: contains 1 NaN or infinite"),
    ({"W": np.ones((2, 2, 2))}, r"W: expected shape \(2, 1, 1\)"),
    ({"penalty": "l1"}, "penalty: must be one of"),
])
def test_fused_solve_arguments(kwargs, message):
    base = {"theta_hat": [[0.0], [1.0]], "W": np.ones((2, 1, 1)), "n": [10.0, 10.0], "lam": 0.1}
    with pytest.raises(ArgumentError, match=message):
        fused_solve(**{**base, **kwargs})


def test_fused_path_arguments():
    with pytest.raises(ArgumentError, match="n_lambda: must be a whole number"):
        fused_path([[0.0], [1.0]], np.ones((2, 1, 1)), [10, 10], n_lambda=3.5)
    with pytest.raises(ArgumentError, match="lambdas: expected an array of numbers"):
        fused_path([[0.0], [1.0]], np.ones((2, 1, 1)), [10, 10], lambdas="0.1")


def test_overflow_raises_instead_of_warning():
    with pytest.raises(FloatingPointError, match="rescale"):
        fused_solve([[1e300], [-1e300], [0.0]], np.full((3, 1, 1), 1e10), [1e10, 1e10, 1e10], lam=1.0)


def test_kernel_grid_and_nuisance_fusion_parameters():
    with pytest.raises(ArgumentError, match="support: must be a positive number"):
        KernelGrid(axes=[np.linspace(0, 1, 5)], support=True)
    with pytest.raises(ValueError, match=r"axes\[0\]: needs at least 2 strictly increasing values"):
        KernelGrid(axes=[np.array([1.0, 0.0])])
    with pytest.raises(ValueError, match="axes"):
        KernelGrid(axes=3)
    with pytest.raises(ArgumentError, match="lam: must be a finite number"):
        NuisanceFusion(lam=True).fit([])
    with pytest.raises(ArgumentError, match="n_lambda: must be a whole number"):
        NuisanceFusion(n_lambda=2.5).fit([])


def test_block_layout_keeps_true_apart_from_one():
    from hetmtl.blockwise import BlockLayout

    layout = BlockLayout(sources={"a": ["x1"], "b": ["x2"]}, anchor="a", observed={1: ["b"], 2: []})
    np.testing.assert_array_equal(layout.task_codes([2, 1, 1]), [1, 0, 0])
    with pytest.raises(ArgumentError, match="^task: mixes booleans with numbers"):
        layout.task_codes([1, True, 2])
    with pytest.raises(ValueError, match="task: label True .* is not one of the layout's tasks"):
        layout.task_codes(np.array([True, True]))
    flags = BlockLayout(sources={"a": ["x1"], "b": ["x2"]}, anchor="a", observed={True: ["b"], False: []})
    with pytest.raises(ValueError, match="task: label 1 .* is not one of the layout's tasks"):
        flags.task_codes([1, 1])
