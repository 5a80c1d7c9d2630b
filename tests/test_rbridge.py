"""rpy2 converters: pandas <-> R data frames, numpy <-> R matrices, and calls into R."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from hetmtl import rbridge

r_only = pytest.mark.usefixtures("robjects")


def r_eval(code: str):
    import rpy2.robjects as ro

    return ro.r(code)


def r_column_classes(r_df) -> dict[str, str]:
    fun = r_eval("function(d) vapply(d, function(x) paste(class(x), collapse = '/'), '')")
    res = fun(r_df)
    return dict(zip(res.names, res))


def test_importing_hetmtl_does_not_import_rpy2():
    code = ("import sys, hetmtl, hetmtl.fusion, hetmtl.fusion.heterogeneity, hetmtl.rbridge; "
            "print('rpy2' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "False"


# --------------------------------------------------------------------------- data frames
@pytest.mark.r
@r_only
def test_dataframe_round_trip_types_and_missing_values():
    df = pd.DataFrame({
        "x": [1.5, np.nan, -2.25, 1e300],
        "n": np.array([1, 2, -3, 2**31 - 1], dtype=np.int64),
        "big": np.array([0, 2**40, 5, -(2**45)], dtype=np.int64),
        "ni": pd.array([1, None, 3, 4], dtype="Int64"),
        "s": ["a", None, "b b", "é"],
        "f": pd.Categorical(["lo", "hi", None, "lo"], categories=["lo", "mid", "hi"]),
        "o": pd.Categorical(["b", "a", "a", "b"], categories=["b", "a"], ordered=True),
        "b": [True, False, True, False],
        "bn": pd.array([True, None, False, True], dtype="boolean"),
        "i8": np.array([1, -2, 3, 4], dtype=np.int8),
    })
    r = rbridge.pandas_to_r(df)
    assert r_column_classes(r) == {"x": "numeric", "n": "integer", "big": "numeric",
                                   "ni": "integer", "s": "character", "f": "factor",
                                   "o": "ordered/factor", "b": "logical", "bn": "logical",
                                   "i8": "integer"}
    # Missing values arrive as R's NA (not NaN), one per column that had one.
    na = r_eval("function(d) vapply(d, function(x) sum(is.na(x) & !is.nan(x)), 0L)")(r)
    assert dict(zip(na.names, na)) == {"x": 1, "n": 0, "big": 0, "ni": 1, "s": 1, "f": 1,
                                       "o": 0, "b": 0, "bn": 1, "i8": 0}
    assert list(r_eval("function(d) levels(d$f)")(r)) == ["lo", "mid", "hi"]
    assert list(r_eval("function(d) levels(d$o)")(r)) == ["b", "a"]
    assert r_eval("function(d) d$big[4]")(r)[0] == -(2.0**45)

    back = rbridge.r_to_pandas(r)
    assert isinstance(back.index, pd.RangeIndex) and list(back.index) == [0, 1, 2, 3]
    assert back["x"].dtype == np.float64
    np.testing.assert_array_equal(back["x"].to_numpy(), df["x"].to_numpy())
    assert back["n"].dtype == np.int64
    np.testing.assert_array_equal(back["n"], df["n"])
    assert back["big"].dtype == np.float64  # outside R's integer range: became double
    np.testing.assert_array_equal(back["big"], df["big"].astype(float))
    assert back["ni"].dtype == np.float64  # integer with NA -> float with NaN
    np.testing.assert_array_equal(back["ni"], [1.0, np.nan, 3.0, 4.0])
    assert back["s"].tolist()[0] == "a" and back["s"].isna().tolist() == [False, True, False, False]
    assert back["s"].tolist()[2:] == ["b b", "é"]
    assert isinstance(back["f"].dtype, pd.CategoricalDtype)
    pd.testing.assert_series_equal(back["f"], df["f"])
    pd.testing.assert_series_equal(back["o"], df["o"])
    assert back["b"].dtype == bool and back["b"].tolist() == [True, False, True, False]
    assert str(back["bn"].dtype) == "boolean"
    pd.testing.assert_series_equal(back["bn"], df["bn"])
    assert back["i8"].dtype == np.int64 and back["i8"].tolist() == [1, -2, 3, 4]


@pytest.mark.r
@r_only
def test_dataframe_index_becomes_row_names():
    df = pd.DataFrame({"a": [1.0, 2.0, 3.0]}, index=["r1", "r2", "r3"])
    r = rbridge.pandas_to_r(df, index=True)
    assert list(r_eval("rownames")(r)) == ["r1", "r2", "r3"]
    back = rbridge.r_to_pandas(r)
    assert list(back.index) == ["r1", "r2", "r3"]
    assert list(rbridge.r_to_pandas(r, rownames=False).index) == [0, 1, 2]
    assert list(r_eval("rownames")(rbridge.pandas_to_r(df))) == ["1", "2", "3"]
    with pytest.raises(ValueError, match="df: the index must be unique"):
        rbridge.pandas_to_r(df.set_axis(["a", "a", "b"]), index=True)


@pytest.mark.r
@r_only
def test_r_made_data_frame_to_pandas():
    r = r_eval("""data.frame(i = c(3L, NA, 1L), d = c(0.5, NA, NaN), l = c(TRUE, NA, FALSE),
                           s = c("x", "y", NA), f = factor(c("u", "v", "u"), levels = c("v", "u")),
                           stringsAsFactors = FALSE)[c(1, 3), ]""")
    df = rbridge.r_to_pandas(r)
    assert list(df.index) == [1, 3]  # R's integer row names after subsetting
    assert df["i"].dtype == np.int64 and df["i"].tolist() == [3, 1]  # the NA row was dropped
    assert df["d"].iloc[1] != df["d"].iloc[1]  # NaN
    assert df["l"].tolist() == [True, False] and df["l"].dtype == bool
    assert df["s"].iloc[0] == "x" and pd.isna(df["s"].iloc[1])
    assert list(df["f"].cat.categories) == ["v", "u"] and df["f"].tolist() == ["u", "u"]
    full = rbridge.r_to_pandas(r_eval("data.frame(i = c(3L, NA), l = c(TRUE, NA))"))
    np.testing.assert_array_equal(full["i"], [3.0, np.nan])
    assert str(full["l"].dtype) == "boolean" and pd.isna(full["l"].iloc[1])
    empty = rbridge.r_to_pandas(r_eval("data.frame()"))
    assert empty.shape == (0, 0)


@pytest.mark.r
@r_only
def test_dataframe_conversion_errors():
    with pytest.raises(ValueError, match="df: column 'when': dtype datetime64"):
        rbridge.pandas_to_r(pd.DataFrame({"when": pd.to_datetime(["2020-01-01"])}))
    with pytest.raises(ValueError, match="df: column 'm': holds a int value"):
        rbridge.pandas_to_r(pd.DataFrame({"m": pd.Series(["a", 1], dtype=object)}))
    with pytest.raises(ValueError, match=r"df: column names must be unique, repeated: \['a'\]"):
        rbridge.pandas_to_r(pd.DataFrame([[1, 2]], columns=["a", "a"]))
    with pytest.raises(ValueError, match="cannot be represented exactly in R"):
        rbridge.pandas_to_r(pd.DataFrame({"h": np.array([2**60], dtype=np.int64)}))
    with pytest.raises(ValueError, match="df: expected a pandas DataFrame"):
        rbridge.pandas_to_r(np.zeros((2, 2)))
    with pytest.raises(ValueError, match=r"r_df: column 'day': R class \['Date'\]"):
        rbridge.r_to_pandas(r_eval("data.frame(day = as.Date('2020-01-01'))"))
    with pytest.raises(ValueError, match="r_df: expected an R data.frame"):
        rbridge.r_to_pandas(r_eval("1:3"))


# --------------------------------------------------------------------------- matrices
@pytest.mark.r
@r_only
@pytest.mark.parametrize("order", ["C", "F"])
def test_float_matrix_round_trip_any_order(order):
    rng = np.random.default_rng(1)
    a = np.asarray(rng.normal(size=(4, 3)), order=order)
    a[1, 2] = np.nan
    a[3, 0] = -np.inf
    m = rbridge.numpy_to_r_matrix(a)
    assert list(r_eval("dim")(m)) == [4, 3]
    assert r_eval("typeof")(m)[0] == "double"
    # R's m[i, j] is a[i - 1, j - 1]: column-major storage.
    np.testing.assert_array_equal(np.asarray(r_eval("as.vector")(m)), a.ravel(order="F"))
    assert r_eval("function(m) m[2, 1]")(m)[0] == a[1, 0]
    back = rbridge.r_matrix_to_numpy(m)
    assert back.flags.f_contiguous and back.dtype == np.float64
    np.testing.assert_array_equal(back, a)  # bit for bit, NaN and -Inf included


@pytest.mark.r
@r_only
def test_integer_and_logical_matrices():
    a = np.arange(6, dtype=np.int64).reshape(2, 3)
    m = rbridge.numpy_to_r_matrix(a, rownames=["p", "q"], colnames=["x", "y", "z"])
    assert r_eval("typeof")(m)[0] == "integer"
    assert list(r_eval("colnames")(m)) == ["x", "y", "z"]
    assert r_eval("function(m) m['q', 'y']")(m)[0] == 4
    back = rbridge.r_matrix_to_numpy(m)
    assert back.dtype == np.int64 and back.flags.f_contiguous
    np.testing.assert_array_equal(back, a)

    r_int = rbridge.r_matrix_to_numpy(r_eval("matrix(1:6, nrow = 2)"))
    np.testing.assert_array_equal(r_int, [[1, 3, 5], [2, 4, 6]])
    r_na = rbridge.r_matrix_to_numpy(r_eval("matrix(c(1L, NA, 3L, 4L), 2)"))
    assert r_na.dtype == np.float64
    np.testing.assert_array_equal(r_na, [[1.0, 3.0], [np.nan, 4.0]])

    b = np.array([[True, False], [False, True]])
    mb = rbridge.numpy_to_r_matrix(b)
    assert r_eval("typeof")(mb)[0] == "logical"
    np.testing.assert_array_equal(rbridge.r_matrix_to_numpy(mb), b)
    lna = rbridge.r_matrix_to_numpy(r_eval("matrix(c(TRUE, NA), 1)"))
    np.testing.assert_array_equal(lna, [[1.0, np.nan]])

    empty = rbridge.r_matrix_to_numpy(rbridge.numpy_to_r_matrix(np.zeros((0, 3))))
    assert empty.shape == (0, 3)


@pytest.mark.r
@r_only
def test_matrix_conversion_errors():
    with pytest.raises(ValueError, match="a: expected a 2-dimensional array"):
        rbridge.numpy_to_r_matrix(np.zeros(3))
    with pytest.raises(ValueError, match="a: integer values outside R's integer range"):
        rbridge.numpy_to_r_matrix(np.array([[2**31]], dtype=np.int64))
    with pytest.raises(ValueError, match="a: dtype complex128 is not supported"):
        rbridge.numpy_to_r_matrix(np.zeros((2, 2), dtype=complex))
    with pytest.raises(ValueError, match="colnames: expected 2 names, got 1"):
        rbridge.numpy_to_r_matrix(np.zeros((2, 2)), colnames=["a"])
    with pytest.raises(ValueError, match="m: not an R matrix"):
        rbridge.r_matrix_to_numpy(r_eval("c(1, 2)"))
    with pytest.raises(ValueError, match="m: expected an R object"):
        rbridge.r_matrix_to_numpy(np.zeros((2, 2)))


# --------------------------------------------------------------------------- calling R
@pytest.mark.r
@r_only
def test_r_call_converts_arguments():
    assert rbridge.r_call("mean", [1.0, 2.0, np.nan], **{"na.rm": True})[0] == 1.5
    assert rbridge.r_call("base::nchar", "abcd")[0] == 4
    assert rbridge.r_call("sum", np.arange(4))[0] == 6
    assert list(rbridge.r_call("dim", np.zeros((3, 2)))) == [3, 2]
    assert rbridge.r_call("is.null", None)[0]
    lst = rbridge.r_call("list", a=1.0, b=["x", "y"])
    assert list(lst.names) == ["a", "b"]
    df = rbridge.r_call("subset", pd.DataFrame({"v": [1.0, 5.0, 2.0]}), r_eval("c(FALSE, TRUE, TRUE)"))
    assert rbridge.r_to_pandas(df)["v"].tolist() == [5.0, 2.0]
    with pytest.raises(ImportError, match="R package 'notapackage' is not installed"):
        rbridge.r_call("notapackage::f")
    with pytest.raises(ValueError, match="fun: expected the name of an R function"):
        rbridge.r_call("")
    with pytest.raises(ValueError, match="fun: no R function named 'no_such_fun_'"):
        rbridge.r_call("no_such_fun_")
    with pytest.raises(ValueError, match="fun: the R object 'pi' is not a function"):
        rbridge.r_call("pi")


@pytest.mark.r
@r_only
def test_r_dataset_and_metafor_rma():
    bcg = rbridge.r_dataset("dat.bcg", "metadat")
    assert bcg.shape == (13, 9)
    assert bcg["tpos"].dtype == np.int64 and bcg["tpos"].iloc[0] == 4
    with pytest.raises(ValueError, match="name: no data set 'nope' in R package 'metadat'"):
        rbridge.r_dataset("nope", "metadat")
    with pytest.raises(ImportError, match="package: R package 'notapackage'"):
        rbridge.r_dataset("x", "notapackage")
    res = rbridge.metafor_rma([0.1, 0.3, 0.2], [0.01, 0.04, 0.0225], "FE")
    assert res["Q_df"] == 2 and res["tau2"] == 0.0
    assert len(res["weights"]) == 3 and abs(sum(res["weights"]) - 100) < 1e-12
    assert res["estimate"] == pytest.approx(0.1557377049180328, rel=1e-14)


def test_starting_r_leaves_child_processes_their_own_libraries(robjects):
    """R's library folders must not leak into LD_LIBRARY_PATH: a child Python would then load the
    system's libpython instead of its own (seen as broken multiprocessing in worker processes)."""
    import os
    import subprocess
    import sys

    before = os.environ.get("LD_LIBRARY_PATH")
    rbridge.require_r()
    assert os.environ.get("LD_LIBRARY_PATH") == before
    proc = subprocess.run([sys.executable, "-c", "import sys; print(sys.version)"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == sys.version
