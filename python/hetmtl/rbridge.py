"""Bridge to R through rpy2: data frames and matrices both ways, and reference calls to R packages.

rpy2 (and with it R) is imported only when a function here is first called, never when hetmtl is
imported. The functions work on plain R objects in the embedded R session; they never call back
into Python from R.

Type mapping, pandas -> R (:func:`pandas_to_r`):

====================================  ==========================================================
pandas column                         R column
====================================  ==========================================================
float (numpy or nullable)             double; NaN and ``pd.NA`` become ``NA``
integer (numpy or nullable)           integer when every value fits R's 32-bit range (missing ->
                                      ``NA``), otherwise double (exact up to 2^53; beyond that a
                                      ValueError)
bool / ``boolean``                    logical (missing -> ``NA``)
str / object of strings               character (missing -> ``NA``)
category                              factor (levels in category order, as strings; ordered
                                      categoricals become ordered factors)
anything else (datetimes, complex)    ValueError naming the column
====================================  ==========================================================

R -> pandas (:func:`r_to_pandas`): double -> float64 (``NA`` and ``NaN`` -> NaN); integer ->
int64, or float64 with NaN when it has ``NA``; logical -> bool, or pandas' nullable ``boolean``
when it has ``NA``; character -> pandas' default string dtype (missing -> NaN/None); factor ->
``Categorical`` (levels as categories, ordered factors ordered). Columns with any other class
(Date, POSIXct, list columns, ...) raise a ValueError naming the column. Extra attributes of a
column (e.g. metafor's ``yi`` carries ``measure`` and ``ni``) are dropped.

Matrices keep their values bit for bit (NaN stays NaN); see :func:`numpy_to_r_matrix` and
:func:`r_matrix_to_numpy`.
"""

from __future__ import annotations

import math
import os
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

_INT_MAX = 2**31 - 1  # R integers are 32-bit; -2^31 is NA_integer_
_NA_INT = -(2**31)
_MAX_EXACT = 2**53

_RMA_FUN = None  # R closure behind metafor_rma, defined on first use
_DATA_FUN = None  # R closure behind r_dataset


# --------------------------------------------------------------------------- set-up
def require_r() -> Any:
    """Import rpy2's high-level interface, starting the embedded R session if needed.

    Returns
    -------
    module
        ``rpy2.robjects``.

    Raises
    ------
    ImportError
        If rpy2 is not installed or R cannot be started, with a message saying what to install.
    """
    # Starting R puts R's library folders (the system's among them) in LD_LIBRARY_PATH. This
    # process has loaded its libraries already, but a child Python started later would load the
    # system's libpython instead of its own and fail in odd ways: keep the variable as it was.
    library_path = os.environ.get("LD_LIBRARY_PATH")
    try:
        import rpy2.robjects as ro
    except ImportError as exc:
        raise ImportError("hetmtl.rbridge needs rpy2 (>=3.5,<3.6): install it with "
                          "pip install 'hetmtl[r]'") from exc
    except Exception as exc:  # rpy2 raises various errors (OSError, RuntimeError, ...) without R
        raise ImportError("hetmtl.rbridge: rpy2 is installed but R could not be started "
                          f"({type(exc).__name__}: {exc}); install R and make sure R_HOME points "
                          "to it") from exc
    finally:
        if library_path is None:
            os.environ.pop("LD_LIBRARY_PATH", None)
        else:
            os.environ["LD_LIBRARY_PATH"] = library_path
    return ro


def _ri() -> Any:
    require_r()
    import rpy2.rinterface as ri

    return ri


def _wrap(sexp: Any) -> Any:
    """Wrap a low-level R object in rpy2's high-level class (DataFrame, FloatMatrix, ...)."""
    ro = require_r()
    return ro.default_converter.rpy2py(sexp)


def _structure(obj: Any, **attrs: Any) -> Any:
    # R's own attribute setter: it sets the object bit (S3 dispatch) and handles compact row
    # names, which a raw attribute assignment does not.
    ri = _ri()
    return ri.baseenv["structure"](obj, **attrs)


def _set_na(vec: Any, mask: np.ndarray) -> Any:
    if not mask.any():
        return vec
    ri = _ri()
    which = ri.IntSexpVector.from_memoryview(
        memoryview((np.flatnonzero(mask) + 1).astype(np.int32)))
    return ri.baseenv["is.na<-"](vec, which)


def _float_vector(values: np.ndarray) -> Any:
    ri = _ri()
    arr = np.ascontiguousarray(values, dtype=np.float64).reshape(-1)
    if arr.size == 0:
        return ri.FloatSexpVector([])
    return ri.FloatSexpVector.from_memoryview(memoryview(arr))


def _int_vector(values: np.ndarray, logical: bool = False) -> Any:
    ri = _ri()
    arr = np.ascontiguousarray(values, dtype=np.int32).reshape(-1)
    cls = ri.BoolSexpVector if logical else ri.IntSexpVector
    if arr.size == 0:
        return cls([])
    return cls.from_memoryview(memoryview(arr))


def _str_vector(values: Sequence[Any]) -> Any:
    ri = _ri()
    return ri.StrSexpVector([ri.NA_Character if v is None else v for v in values])


# --------------------------------------------------------------------------- pandas -> R
def _integer_to_r(arr: np.ndarray, mask: np.ndarray, what: str) -> Any:
    """Integers to R integer when they fit, else to double (exact up to 2^53)."""
    present = arr[~mask]
    if present.size == 0:
        lo = hi = 0
    else:
        lo, hi = int(present.min()), int(present.max())
    if -_INT_MAX <= lo and hi <= _INT_MAX:
        vals = np.where(mask, 0, arr).astype(np.int32)
        return _set_na(_int_vector(vals), mask)
    if max(abs(lo), abs(hi)) > _MAX_EXACT:
        raise ValueError(f"{what}: integer values up to {max(abs(lo), abs(hi))} cannot be "
                         "represented exactly in R (no 64-bit integers; doubles are exact only "
                         "up to 2^53)")
    vals = np.where(mask, 0, arr).astype(np.float64)
    return _set_na(_float_vector(vals), mask)


def _series_to_r(s: pd.Series, what: str) -> Any:
    """One pandas column (or 1-D array as a Series) to an R vector."""
    dtype = s.dtype
    mask = np.asarray(s.isna(), dtype=bool)
    if isinstance(dtype, pd.CategoricalDtype):
        codes = np.asarray(s.cat.codes, dtype=np.int64) + 1  # R codes start at 1; NA was -1
        vec = _set_na(_int_vector(np.where(mask, 1, codes)), mask)
        levels = [str(c) for c in dtype.categories]
        if len(set(levels)) != len(levels):
            raise ValueError(f"{what}: categories are not unique once written as strings")
        cls = ["ordered", "factor"] if dtype.ordered else ["factor"]
        return _structure(vec, levels=_str_vector(levels), **{"class": _str_vector(cls)})
    if pd.api.types.is_bool_dtype(dtype):
        vals = s.to_numpy(dtype=bool, na_value=False)
        return _set_na(_int_vector(vals.astype(np.int32), logical=True), mask)
    if pd.api.types.is_integer_dtype(dtype):
        np_dtype = getattr(dtype, "numpy_dtype", dtype)
        return _integer_to_r(s.to_numpy(dtype=np_dtype, na_value=0), mask, what)
    if pd.api.types.is_float_dtype(dtype):
        vals = s.to_numpy(dtype=np.float64, na_value=np.nan)
        # pandas uses NaN as its missing value; R's missing value is NA.
        return _set_na(_float_vector(np.where(mask, 0.0, vals)), mask)
    if dtype == object or isinstance(dtype, pd.StringDtype):
        values = s.to_numpy(dtype=object)
        out: list[Any] = []
        for i, v in enumerate(values):
            if mask[i]:
                out.append(None)
            elif isinstance(v, str):
                out.append(v)
            else:
                raise ValueError(f"{what}: holds a {type(v).__name__} value ({v!r}) among "
                                 "strings; convert the column to one type first")
        return _str_vector(out)
    raise ValueError(f"{what}: dtype {dtype} has no R counterpart here; convert it to float, "
                     "int, bool, str or category first")


def pandas_to_r(df: pd.DataFrame, *, index: bool = False) -> Any:
    """Convert a pandas DataFrame to an R ``data.frame``.

    Parameters
    ----------
    df : pandas.DataFrame
        Columns of the types in the module's table; column names become R names (as strings,
        unchanged: no ``make.names`` mangling).
    index : bool, default False
        If True, the index (as strings, which must be unique) becomes the R row names; otherwise
        R's automatic row names ``1..n`` are used.

    Returns
    -------
    rpy2.robjects.vectors.DataFrame
    """
    if not isinstance(df, pd.DataFrame):
        raise ValueError(f"df: expected a pandas DataFrame, got {type(df).__name__}")
    if isinstance(df.columns, pd.MultiIndex):
        raise ValueError("df: MultiIndex columns have no R counterpart; flatten them first")
    names = [str(c) for c in df.columns]
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise ValueError(f"df: column names must be unique, repeated: {dup}")
    ri = _ri()
    cols = [_series_to_r(df.iloc[:, j], f"df: column {names[j]!r}") for j in range(df.shape[1])]
    n = len(df)
    if index:
        rn = [str(i) for i in df.index]
        if len(set(rn)) != n:
            raise ValueError("df: the index must be unique to become R row names (index=True)")
        row_names = _str_vector(rn)
    else:
        row_names = _int_vector(np.array([_NA_INT, -n]))  # R's compact automatic row names
    out = _structure(ri.ListSexpVector(cols), names=_str_vector(names),
                     **{"row.names": row_names, "class": _str_vector(["data.frame"])})
    return _wrap(out)


# --------------------------------------------------------------------------- R -> pandas
def _r_class(x: Any) -> list[str]:
    ri = _ri()
    cls = ri.baseenv["oldClass"](x)
    return [] if cls is ri.NULL else list(cls)


def _r_vector_to_python(x: Any, what: str) -> Any:
    """An atomic R vector to a numpy array / pandas array following the module's mapping."""
    ri = _ri()
    cls = _r_class(x)
    t = x.typeof
    if t == ri.RTYPES.INTSXP and "factor" in cls:
        codes = np.array(x.memoryview(), dtype=np.int64)
        levels = ri.baseenv["levels"](x)
        cats = [] if levels is ri.NULL else list(levels)
        codes = np.where(codes == _NA_INT, -1, codes - 1)
        return pd.Categorical.from_codes(codes, categories=cats, ordered="ordered" in cls)
    if cls:
        raise ValueError(f"{what}: R class {cls} is not supported; convert it in R first "
                         "(e.g. as.numeric, as.character)")
    if t == ri.RTYPES.REALSXP:
        return np.array(x.memoryview(), dtype=np.float64)
    if t == ri.RTYPES.INTSXP:
        vals = np.array(x.memoryview(), dtype=np.int64)
        na = vals == _NA_INT
        if na.any():
            out = vals.astype(np.float64)
            out[na] = np.nan
            return out
        return vals
    if t == ri.RTYPES.LGLSXP:
        vals = np.array(x.memoryview(), dtype=np.int64)
        na = vals == _NA_INT
        if na.any():
            return pd.array([None if m else bool(v) for v, m in zip(vals, na)], dtype="boolean")
        return vals.astype(bool)
    if t == ri.RTYPES.STRSXP:
        values = [None if v is ri.NA_Character else str(v) for v in x]
        return pd.Series(values, dtype=object if all(v is None for v in values) else None).array
    raise ValueError(f"{what}: R type {t!r} (not double, integer, logical, character or factor) "
                     "is not supported")


def r_to_pandas(r_df: Any, *, rownames: bool = True) -> pd.DataFrame:
    """Convert an R ``data.frame`` (or a subclass such as metafor's ``escalc``) to pandas.

    Parameters
    ----------
    r_df : rpy2 object
        An R object inheriting from ``data.frame``.
    rownames : bool, default True
        Use R's row names as the index when they are not the automatic ``1..n`` (character row
        names give a string index, integer ones an integer index). Automatic row names, or
        ``rownames=False``, give a ``RangeIndex`` from 0.

    Returns
    -------
    pandas.DataFrame
        Column types as in the module's table.
    """
    ri = _ri()
    if not isinstance(r_df, ri.Sexp) or not ri.baseenv["inherits"](r_df, "data.frame")[0]:
        raise ValueError(f"r_df: expected an R data.frame, got {type(r_df).__name__}")
    names_attr = ri.baseenv["names"](r_df)
    names = [] if names_attr is ri.NULL else [str(n) for n in names_attr]
    n = int(ri.baseenv[".row_names_info"](r_df, 2)[0])
    data = {}
    for j, name in enumerate(names):
        col = r_df[j]
        if len(col) != n:
            raise ValueError(f"r_df: column {name!r} has {len(col)} values for {n} rows "
                             "(matrix or list columns are not supported)")
        data[name] = _r_vector_to_python(col, f"r_df: column {name!r}")
    index: pd.Index = pd.RangeIndex(n)
    if rownames:
        rn = ri.baseenv[".row_names_info"](r_df, 0)
        if rn.typeof == ri.RTYPES.STRSXP:
            index = pd.Index([str(v) for v in rn], dtype=object)
        elif rn.typeof == ri.RTYPES.INTSXP:
            vals = np.array(rn.memoryview(), dtype=np.int64)
            compact = vals.size == 2 and vals[0] == _NA_INT
            if not compact and not np.array_equal(vals, np.arange(1, n + 1)):
                index = pd.Index(vals)
    df = pd.DataFrame(data, index=index)
    if len(df.columns) != len(names):
        raise ValueError("r_df: column names are not unique")
    return df


# --------------------------------------------------------------------------- matrices
def numpy_to_r_matrix(a: Any, *, rownames: Sequence[str] | None = None,
                      colnames: Sequence[str] | None = None) -> Any:
    """Convert a 2-D numpy array to an R matrix (values copied in R's column-major order).

    Parameters
    ----------
    a : array_like of shape (n, m)
        Float (-> double, NaN kept as NaN), integer (-> integer; values must fit in R's 32-bit
        range and not be -2^31, which is R's NA) or bool (-> logical). Any memory order.
    rownames, colnames : sequence of str, optional
        Dimnames.

    Returns
    -------
    rpy2.robjects.vectors.Matrix
        ``FloatMatrix``, ``IntMatrix`` or ``BoolMatrix``; element ``[i, j]`` of ``a`` is R's
        ``m[i + 1, j + 1]``.
    """
    arr = np.asarray(a)
    if arr.ndim != 2:
        raise ValueError(f"a: expected a 2-dimensional array, got shape {arr.shape}")
    flat = arr.ravel(order="F")
    kind = arr.dtype.kind
    if kind == "f":
        vec = _float_vector(flat)
    elif kind in "iu":
        if flat.size and (int(flat.min()) < -_INT_MAX or int(flat.max()) > _INT_MAX):
            raise ValueError("a: integer values outside R's integer range "
                             f"[-{_INT_MAX}, {_INT_MAX}]; convert to float first")
        vec = _int_vector(flat)
    elif kind == "b":
        vec = _int_vector(flat.astype(np.int32), logical=True)
    else:
        raise ValueError(f"a: dtype {arr.dtype} is not supported (float, int or bool)")
    ri = _ri()
    attrs: dict[str, Any] = {"dim": _int_vector(np.array(arr.shape))}
    if rownames is not None or colnames is not None:
        dn = []
        for label, names, size in (("rownames", rownames, arr.shape[0]),
                                   ("colnames", colnames, arr.shape[1])):
            if names is None:
                dn.append(ri.NULL)
                continue
            names = [str(x) for x in names]
            if len(names) != size:
                raise ValueError(f"{label}: expected {size} names, got {len(names)}")
            dn.append(_str_vector(names))
        attrs["dimnames"] = ri.ListSexpVector(dn)
    return _wrap(_structure(vec, **attrs))


def r_matrix_to_numpy(m: Any) -> np.ndarray:
    """Convert an R matrix to a Fortran-ordered numpy array (a copy).

    Parameters
    ----------
    m : rpy2 object
        An R matrix: double (-> float64), integer (-> int64, or float64 with NaN where ``NA``) or
        logical (-> bool, or float64 with NaN where ``NA``, TRUE as 1.0).

    Returns
    -------
    ndarray of shape (nrow, ncol), Fortran order
    """
    ri = _ri()
    if not isinstance(m, ri.Sexp):
        raise ValueError(f"m: expected an R object, got {type(m).__name__}")
    dim = ri.baseenv["attr"](m, "dim")
    if dim is ri.NULL or len(dim) != 2:
        raise ValueError("m: not an R matrix (it has no 2-D dim attribute; use r_to_pandas for "
                         "data frames)")
    shape = (int(dim[0]), int(dim[1]))
    t = m.typeof
    if t == ri.RTYPES.REALSXP:
        flat = np.array(m.memoryview(), dtype=np.float64)
    elif t in (ri.RTYPES.INTSXP, ri.RTYPES.LGLSXP):
        raw = np.array(m.memoryview(), dtype=np.int64)
        na = raw == _NA_INT
        if na.any():
            flat = raw.astype(np.float64)
            flat[na] = np.nan
        else:
            flat = raw.astype(bool) if t == ri.RTYPES.LGLSXP else raw
    else:
        raise ValueError(f"m: R matrices of type {t!r} are not supported (double, integer, logical)")
    return flat.reshape(shape, order="F")


# --------------------------------------------------------------------------- calling R
def _to_r(x: Any, what: str) -> Any:
    """Convert a Python argument to an R object (see :func:`r_call`)."""
    ri = _ri()
    if isinstance(x, ri.Sexp):
        return x
    if x is None:
        return ri.NULL
    if isinstance(x, pd.DataFrame):
        return pandas_to_r(x)
    if isinstance(x, pd.Series):
        return _series_to_r(x, what)
    if isinstance(x, Mapping):
        keys = [str(k) for k in x]
        vals = [_to_r(v, f"{what}[{k!r}]") for k, v in x.items()]
        return _structure(ri.ListSexpVector(vals), names=_str_vector(keys))
    if isinstance(x, (str, bool, int, float, np.generic)):
        x = [x]
    if isinstance(x, (list, tuple, np.ndarray)):
        arr = np.asarray(x) if not isinstance(x, np.ndarray) else x
        if arr.ndim == 2:
            return numpy_to_r_matrix(arr)
        if arr.ndim > 2:
            raise ValueError(f"{what}: arrays with {arr.ndim} dimensions are not supported")
        if arr.dtype.kind == "U":
            return _str_vector([str(v) for v in arr])
        if arr.dtype.kind == "O":  # mixed Python objects: an R list
            return ri.ListSexpVector([_to_r(v, f"{what}[{i}]") for i, v in enumerate(arr)])
        return _series_to_r(pd.Series(arr.reshape(-1)), what)
    raise ValueError(f"{what}: cannot convert a {type(x).__name__} to an R object")


def _r_function(fun: str) -> Any:
    ri = _ri()
    if not isinstance(fun, str) or not fun:
        raise ValueError(f"fun: expected the name of an R function, got {fun!r}")
    if "::" in fun:
        pkg, _, name = fun.partition("::")
        internal = name.startswith(":")
        name = name.lstrip(":")
        if not ri.baseenv["requireNamespace"](pkg, quietly=True)[0]:
            raise ImportError(f"fun: R package {pkg!r} is not installed")
        if internal:  # pkg:::name
            return ri.baseenv["get"](name, envir=ri.baseenv["asNamespace"](pkg))
        return ri.baseenv["getExportedValue"](pkg, name)
    try:
        f = ri.globalenv.find(fun)
    except KeyError:
        raise ValueError(f"fun: no R function named {fun!r} on the search path") from None
    if not ri.baseenv["is.function"](f)[0]:
        raise ValueError(f"fun: the R object {fun!r} is not a function")
    return f


def r_call(fun: str, *args: Any, **kwargs: Any) -> Any:
    """Call an R function in the embedded R session with converted arguments.

    Parameters
    ----------
    fun : str
        Function name, optionally qualified (``"metafor::escalc"``).
    *args, **kwargs
        Arguments. rpy2 objects pass through; ``None`` -> ``NULL``; DataFrame ->
        :func:`pandas_to_r`; Series and 1-D arrays, lists of numbers/bools/strings and scalars ->
        R vectors (same mapping as data frame columns); 2-D arrays -> :func:`numpy_to_r_matrix`;
        dicts -> named lists. R argument names with dots are given as ``**{"na.rm": True}``.

    Returns
    -------
    rpy2 object
        The R result, unconverted (use :func:`r_to_pandas` or :func:`r_matrix_to_numpy`).
    """
    f = _r_function(fun)
    rargs = [_to_r(a, f"args[{i}]") for i, a in enumerate(args)]
    rkwargs = {k: _to_r(v, k) for k, v in kwargs.items()}
    return _wrap(f(*rargs, **rkwargs))


def r_dataset(name: str, package: str) -> pd.DataFrame:
    """Load a data set shipped in an R package as a pandas DataFrame.

    Parameters
    ----------
    name : str
        Data set name, e.g. ``"dat.bcg"``.
    package : str
        R package holding it, e.g. ``"metadat"``.

    Returns
    -------
    pandas.DataFrame
    """
    global _DATA_FUN
    ri = _ri()
    if _DATA_FUN is None:
        _DATA_FUN = ri.evalr("""
            function(name, package) {
                if (!requireNamespace(package, quietly = TRUE)) return(NULL)
                env <- new.env()
                suppressWarnings(utils::data(list = name, package = package, envir = env))
                if (!exists(name, envir = env, inherits = FALSE)) return(FALSE)
                get(name, envir = env, inherits = FALSE)
            }""")
    res = _DATA_FUN(_str_vector([str(name)]), _str_vector([str(package)]))
    if res is ri.NULL:
        raise ImportError(f"package: R package {package!r} is not installed")
    if res.typeof == ri.RTYPES.LGLSXP and len(res) == 1 and not _r_class(res):
        raise ValueError(f"name: no data set {name!r} in R package {package!r}")
    if not ri.baseenv["inherits"](res, "data.frame")[0]:
        raise ValueError(f"name: {package}::{name} is not a data frame")
    return r_to_pandas(res)


def _r_list_to_dict(x: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, val in zip(x.names, x):
        arr = np.array(val.memoryview(), dtype=np.float64) if val.typeof == _ri().RTYPES.REALSXP \
            else np.asarray(_r_vector_to_python(val, name), dtype=np.float64)
        out[str(name)] = float(arr[0]) if arr.size == 1 else arr.tolist()
    return out


def metafor_rma(yi: Any, vi: Any, method: str = "REML", *, level: float = 0.95,
                control: Mapping[str, float] | None = None) -> dict[str, Any]:
    """Fit ``metafor::rma.uni(yi, vi, method=method)`` in R and return its numbers.

    A reference for :func:`hetmtl.fusion.heterogeneity.meta_analysis` in tests.

    Parameters
    ----------
    yi, vi : array_like of shape (k,)
        Effect estimates and their sampling variances.
    method : str, default "REML"
        metafor's ``method`` (``"FE"``, ``"EE"``, ``"DL"``, ``"REML"``, ...).
    level : float, default 0.95
        Confidence and prediction level.
    control : mapping, optional
        metafor's ``control`` list (e.g. ``{"threshold": 1e-12, "maxiter": 1000}``).

    Returns
    -------
    dict
        ``estimate``, ``se``, ``z``, ``pvalue``, ``ci_lower``, ``ci_upper``, ``tau2``,
        ``tau2_se``, ``I2`` (percent), ``H2``, ``Q``, ``Q_df``, ``Q_pvalue``, ``vt``,
        ``pi_lower``, ``pi_upper`` (NaN for fixed-effect models, where metafor gives none),
        ``loglik_reml`` and ``weights`` (list, percent). Missing values are NaN.
    """
    global _RMA_FUN
    ri = _ri()
    if not (0.0 < float(level) < 1.0):
        raise ValueError(f"level: must be strictly between 0 and 1, got {level!r}")
    if not ri.baseenv["requireNamespace"]("metafor", quietly=True)[0]:
        raise ImportError("metafor_rma: the R package 'metafor' is not installed")
    if _RMA_FUN is None:
        _RMA_FUN = ri.evalr("""
            function(yi, vi, method, level, control) {
                fit <- metafor::rma.uni(yi = yi, vi = vi, method = method, level = level,
                                        control = control)
                pred <- predict(fit, level = level)
                pick <- function(x) if (is.null(x)) NA_real_ else as.numeric(x)
                list(estimate = as.numeric(fit$beta), se = fit$se, z = fit$zval,
                     pvalue = fit$pval, ci_lower = fit$ci.lb, ci_upper = fit$ci.ub,
                     tau2 = fit$tau2, tau2_se = pick(fit$se.tau2), I2 = pick(fit$I2),
                     H2 = pick(fit$H2), Q = fit$QE, Q_df = fit$k - fit$p, Q_pvalue = fit$QEp,
                     vt = pick(fit$vt), pi_lower = pick(pred$pi.lb), pi_upper = pick(pred$pi.ub),
                     loglik_reml = as.numeric(fit$fit.stats["ll", "REML"]),
                     weights = as.numeric(weights(fit)))
            }""")
    y = np.asarray(yi, dtype=np.float64).reshape(-1)
    v = np.asarray(vi, dtype=np.float64).reshape(-1)
    ctrl = _to_r(dict(control or {}), "control")
    res = _RMA_FUN(_float_vector(y), _float_vector(v), _str_vector([str(method)]),
                   _float_vector(np.array([100.0 * float(level)])), ctrl)
    out = _r_list_to_dict(res)
    out["Q_df"] = int(out["Q_df"]) if math.isfinite(out["Q_df"]) else out["Q_df"]
    return out
