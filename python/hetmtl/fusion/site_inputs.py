"""The inputs of a site DML fit: column names or arrays checked and turned into float arrays,
the sample splits drawn from a seed, and the basis of a linear effect."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from .._util.seeds import child_seed
from .._util.validation import (ArgumentError, as_float_array, check_columns_exist, check_disjoint,
                                check_names, non_numeric_columns)
from .crossfit import make_folds

# Child stream of a fit's random_state that draws its folds (stream 1 seeds the learners).
FOLD_SEED_KEY = 0


@dataclass
class SiteInputs:
    """One site's rows as validated arrays."""

    y: np.ndarray           # (n,)
    d: np.ndarray           # (n, k)
    x: np.ndarray           # (n, q)
    x_frame: Any            # the covariates as given (DataFrame or array), for a basis callable
    groups: np.ndarray | None
    n_groups: int
    y_name: str
    d_names: list[str]

    @property
    def binary_treatment(self) -> bool:
        """A single treatment column coded 0/1 (folds are then stratified by it)."""
        return self.d.shape[1] == 1 and is_binary01(self.d[:, 0])


def is_binary01(v: np.ndarray) -> bool:
    return bool(np.all((v == 0) | (v == 1)))


def _check_columns(data: pd.DataFrame, cols: Sequence[str], arg: str) -> None:
    check_columns_exist(data.columns, cols, arg)


def _names(value: Any, arg: str, allow_list: bool) -> list[str]:
    if not isinstance(value, (str, list, tuple)):
        what = "a column name or a list of column names" if allow_list else "a column name"
        raise ArgumentError(arg, f"with data given, expected {what}, got {type(value).__name__}")
    return check_names(value, arg, allow_list=allow_list)


class _LazyFrame:
    """The covariate columns of ``data``, sliced only if a basis callable asks for them."""

    def __init__(self, data: pd.DataFrame, cols: list[str]) -> None:
        self.data, self.cols = data, cols

    def get(self) -> pd.DataFrame:
        return self.data[self.cols]


def check_numeric(data: pd.DataFrame, cols: Sequence[str], arg: str) -> None:
    """Raise an :class:`ArgumentError` under ``arg`` naming the columns of ``cols`` whose dtype is
    not numeric (text, categories, dates); the ``hetmtl`` command checks its columns with it too."""
    bad = [c for c in cols if not pd.api.types.is_numeric_dtype(data[c])]
    if len(bad) == 1:
        raise ArgumentError(arg, f"column {bad[0]!r} is not numeric (dtype {data[bad[0]].dtype}); "
                                 "encode it as numbers first")
    if bad:
        named = ", ".join(f"{c!r} (dtype {data[c].dtype})" for c in bad)
        raise ArgumentError(arg, f"columns {named} are not numeric; encode them as numbers first")


def frame_floats(data: pd.DataFrame, cols: Sequence[str], arg: str) -> np.ndarray:
    """The columns ``cols`` of ``data`` as a 2-D float array checked under ``arg``; a failed
    conversion names the columns at fault."""
    try:
        return as_float_array(data[cols].to_numpy(), arg)
    except ArgumentError:
        # Object columns of numbers convert fine: name only those that do not.
        check_numeric(data, non_numeric_columns(data[cols]), arg)
        raise


def _frame_arrays(data: pd.DataFrame, groups: list[list[str]], args: list[str]) -> list[np.ndarray]:
    """Float arrays of several column groups of ``data``, each checked under its argument's name."""
    if data.columns.is_unique and all(dt.kind in "biuf" for dt in data.dtypes):
        # All-numeric frame: one conversion of the whole block, then column picks (much cheaper
        # than slicing sub-frames, which matters when thousands of sites are fitted).
        block = data.to_numpy(dtype=np.float64, na_value=np.nan)
        position = {c: j for j, c in enumerate(data.columns)}
        return [as_float_array(block[:, [position[c] for c in cols]], arg)
                for cols, arg in zip(groups, args)]
    return [frame_floats(data, cols, arg).reshape(len(data), len(cols))
            for cols, arg in zip(groups, args)]


def collect_inputs(data: Any, y: Any, d: Any, x: Any, cluster: Any) -> SiteInputs:
    """Turn column names or arrays into validated float arrays (and cluster codes)."""
    if data is not None:
        y_arr, d_arr, x_arr, x_frame, c_arr, y_name, d_names = _from_frame(data, y, d, x, cluster)
    else:
        y_arr, d_arr, x_arr, c_arr, y_name, d_names = _from_arrays(y, d, x, cluster)
        x_frame = None
    n = y_arr.shape[0]
    if d_arr.ndim == 1:
        d_arr = d_arr[:, None]
    if x_arr.ndim == 1:
        x_arr = x_arr[:, None]
    if d_arr.ndim != 2 or d_arr.shape[1] == 0:
        raise ArgumentError("d", f"expected shape (n,) or (n, k), got {d_arr.shape}")
    if x_arr.ndim != 2 or x_arr.shape[1] == 0:
        raise ArgumentError("x", f"expected shape (n,) or (n, q), got {x_arr.shape}")
    for arg, arr in (("d", d_arr), ("x", x_arr)):
        if arr.shape[0] != n:
            raise ArgumentError(arg, f"has {arr.shape[0]} rows but y has {n}")
    _check_not_copied(y_arr, d_arr, x_arr)
    groups, n_groups = None, 0
    if c_arr is not None:
        if c_arr.ndim != 1 or c_arr.shape[0] != n:
            raise ArgumentError("cluster", f"expected {n} labels (one per row), got shape {c_arr.shape}")
        codes, uniques = pd.factorize(c_arr)
        if np.any(codes < 0):
            raise ArgumentError("cluster", f"contains {int(np.sum(codes < 0))} missing label(s)")
        groups, n_groups = codes.astype(np.intp), len(uniques)
    return SiteInputs(y=y_arr, d=np.ascontiguousarray(d_arr), x=np.ascontiguousarray(x_arr),
                      x_frame=x_arr if x_frame is None else x_frame, groups=groups,
                      n_groups=n_groups, y_name=y_name, d_names=d_names)


def _check_not_copied(y: np.ndarray, d: np.ndarray, x: np.ndarray) -> None:
    """A covariate column equal to the outcome or to a treatment makes the fit silently wrong
    (the outcome among the covariates gives a zero effect with a vanishing standard error)."""
    if y.size == 0 or np.ptp(y) == 0:
        return
    for what, target in [("the outcome y", y)] + [(f"treatment column {j}", d[:, j]) for j in range(d.shape[1])]:
        same = np.flatnonzero(np.all(x == target[:, None], axis=0))
        if same.size:
            raise ArgumentError("x", f"covariate column {int(same[0])} is identical to {what}; "
                                     "covariates must not contain the outcome or the treatment")


def _from_frame(data: Any, y: Any, d: Any, x: Any, cluster: Any) -> tuple:
    """The inputs named as columns of ``data``."""
    if not isinstance(data, pd.DataFrame):
        raise ArgumentError("data", f"expected a pandas DataFrame or None, got {type(data).__name__}")
    y_cols = _names(y, "y", allow_list=False)
    d_cols = _names(d, "d", allow_list=True)
    c_cols = _names(cluster, "cluster", allow_list=False) if cluster is not None else []
    _check_columns(data, y_cols, "y")
    _check_columns(data, d_cols, "d")
    _check_columns(data, c_cols, "cluster")
    check_disjoint({"y": y_cols, "d": d_cols, "cluster": c_cols})
    if x is None:
        taken = set(y_cols) | set(d_cols) | set(c_cols)
        x_cols = [c for c in data.columns if c not in taken]
        if not x_cols:
            raise ArgumentError("x", "no covariate columns left in data besides y, d and cluster")
    else:
        x_cols = _names(x, "x", allow_list=True)
        _check_columns(data, x_cols, "x")
        check_disjoint({"y": y_cols, "d": d_cols, "cluster": c_cols, "x": x_cols})
    y_arr, d_arr, x_arr = _frame_arrays(data, [y_cols, d_cols, x_cols], ["y", "d", "x"])
    c_arr = data[c_cols[0]].to_numpy() if c_cols else None
    return y_arr[:, 0], d_arr, x_arr, _LazyFrame(data, x_cols), c_arr, y_cols[0], d_cols


def _from_arrays(y: Any, d: Any, x: Any, cluster: Any) -> tuple:
    """The inputs given as arrays (no data frame)."""
    for arg, v in (("y", y), ("d", d), ("x", x), ("cluster", cluster)):
        if isinstance(v, str) or (isinstance(v, (list, tuple)) and v and isinstance(v[0], str)):
            raise ArgumentError(arg, "got column name(s) but data is None")
    if x is None:
        raise ArgumentError("x", "covariates are required")
    y_arr = as_float_array(y, "y")
    if y_arr.ndim == 2 and y_arr.shape[1] == 1:
        y_arr = y_arr[:, 0]
    if y_arr.ndim != 1:
        raise ArgumentError("y", f"expected a 1-dimensional array, got shape {y_arr.shape}")
    d_arr = as_float_array(d, "d")
    x_arr = as_float_array(x, "x")
    c_arr = None if cluster is None else np.asarray(cluster)
    k = d_arr.shape[1] if d_arr.ndim == 2 else 1
    d_names = ["d"] if k == 1 else [f"d{j + 1}" for j in range(k)]
    return y_arr, d_arr, x_arr, c_arr, "y", d_names


def draw_folds(inp: SiteInputs, root: np.random.SeedSequence, n_folds: int,
               n_rep: int) -> list[list[np.ndarray]]:
    """The random sample splits of a fit (stratified by a binary treatment, or by cluster)."""
    n = inp.y.shape[0]
    if inp.groups is not None and inp.n_groups < n_folds:
        raise ArgumentError("n_folds", f"{n_folds} folds need at least {n_folds} clusters, "
                                       f"got {inp.n_groups}")
    if n < 2 * n_folds:
        raise ArgumentError("n_folds", f"{n_folds} folds need at least {2 * n_folds} rows "
                                       f"(2 per fold), got {n}")
    strata = inp.d[:, 0] if (inp.binary_treatment and inp.groups is None) else None
    return make_folds(n, n_folds, n_rep, child_seed(root, FOLD_SEED_KEY), groups=inp.groups,
                      strata=strata)


def make_basis(basis: Sequence[str] | Callable | None, data: pd.DataFrame | None,
               inp: SiteInputs) -> tuple[np.ndarray, list[str]]:
    """The basis phi of a linear effect and its column names (an intercept prepended unless a
    column is constant)."""
    n = inp.y.shape[0]
    if basis is None:
        raw, names = np.empty((n, 0)), []
    elif callable(basis):
        frame = inp.x_frame.get() if isinstance(inp.x_frame, _LazyFrame) else inp.x_frame
        out = basis(frame)
        if isinstance(out, pd.DataFrame):
            names = [str(c) for c in out.columns]
        raw = as_float_array(out, "basis")
        if raw.ndim == 1:
            raw = raw[:, None]
        if raw.ndim != 2 or raw.shape[0] != n:
            raise ArgumentError("basis", f"the callable must return an array of shape ({n}, r), "
                                         f"got {raw.shape}")
        if not isinstance(out, pd.DataFrame):
            names = [f"phi{j + 1}" for j in range(raw.shape[1])]
    elif isinstance(basis, str) or (isinstance(basis, (list, tuple))
                                    and all(isinstance(c, str) for c in basis)):
        cols = [basis] if isinstance(basis, str) else list(basis)
        if data is None:
            raise ArgumentError("basis", "column names need data to be a DataFrame; pass a callable "
                                         "when the inputs are arrays")
        _check_columns(data, cols, "basis")
        raw, names = frame_floats(data, cols, "basis").reshape(n, -1), cols
    else:
        raise ArgumentError("basis", "expected None, a list of column names of data or a callable, "
                                     f"got {type(basis).__name__}")
    constant = (np.ptp(raw, axis=0) == 0) & (raw[0] != 0) if raw.shape[1] else np.zeros(0, bool)
    if not constant.any():
        raw = np.column_stack([np.ones(n), raw])
        names = ["intercept", *names]
    return raw, names
