"""Input validation at the public boundary: every message names the argument and the problem.

The checks raise :class:`ArgumentError`, a ValueError that also keeps the argument's name and the
problem apart, so that a front end (the ``hetmtl`` command) can name its own flag instead of the
library's argument without parsing the message.
"""

from __future__ import annotations

import numbers
import os
from typing import Any, Mapping, Sequence

import numpy as np


class ArgumentError(ValueError):
    """A bad argument: ``str(error)`` is ``"<argument>: <problem>"``.

    Parameters
    ----------
    argument : str
        Name of the argument as the called function spells it.
    problem : str
        What is wrong with it.
    """

    def __init__(self, argument: str, problem: str) -> None:
        super().__init__(f"{argument}: {problem}")
        self.argument = argument
        self.problem = problem

    def __reduce__(self) -> tuple:
        # Rebuild from both parts (the default would pass the joined message alone), so the
        # error survives the trip back from a worker process.
        return (type(self), (self.argument, self.problem))


def non_numeric_columns(value: Any) -> list:
    """The columns of a data frame that do not convert to numbers (empty for anything else)."""
    columns = getattr(value, "columns", None)
    if columns is None or not hasattr(value, "__getitem__"):
        return []
    bad = []
    for c in columns:
        try:
            np.asarray(value[c], dtype=np.float64)
        except (TypeError, ValueError):
            bad.append(c)
    return bad


def as_float_array(value: Any, name: str, ndim: int | None = None) -> np.ndarray:
    """Convert ``value`` to a finite float64 array, raising a ValueError that names ``name``."""
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        columns = non_numeric_columns(value)
        if columns:
            raise ArgumentError(name, f"column(s) {columns[:10]} are not numeric; encode them as numbers "
                                      "first (one-hot, for instance)") from None
        raise ArgumentError(name, f"cannot be converted to a float array ({exc})") from None
    if ndim is not None and arr.ndim != ndim:
        raise ArgumentError(name, f"expected a {ndim}-dimensional array, got shape {arr.shape}")
    # The sum is finite only if every entry is (overflow of finite entries falls through to the
    # exact count): one reduction without a temporary array on the common path.
    if not np.isfinite(arr.sum()) and not np.all(np.isfinite(arr)):
        bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        raise ArgumentError(name, f"contains {bad} NaN or infinite value(s)")
    return arr


def not_pd_message(name: str, index: int, eig_min: float, largest: float | None = None) -> str:
    """The error text for a stack entry that is not positive definite.

    ``largest`` (the entry of largest magnitude) explains a positive smallest eigenvalue: the matrix
    is then positive definite in exact arithmetic but not beyond rounding.
    """
    text = f"{name}: matrix {index} is not positive definite (smallest eigenvalue {eig_min:.3g}"
    if largest is not None and eig_min > 0:
        text += f", below 1e-12 times its largest entry {largest:.3g}: singular to working precision"
    return text + ")"


def check_positive(arr: np.ndarray, name: str, strict: bool = True) -> None:
    """Raise if any entry is negative (or non-positive when ``strict``)."""
    bad = arr <= 0 if strict else arr < 0
    if np.any(bad):
        what = "positive" if strict else "non-negative"
        raise ArgumentError(name, f"all values must be {what}, got {arr[bad].ravel()[0]!r}")


def _is_real(value: Any) -> bool:
    """A real number that is not a boolean (``True`` is an int to Python, never a size here)."""
    return isinstance(value, (numbers.Real, np.number)) and not isinstance(value, (bool, np.bool_)) \
        and not isinstance(value, (complex, np.complexfloating))


def _describe(value: Any) -> str:
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{text} ({type(value).__name__})" if not _is_real(value) else text


def check_number(value: Any, name: str, *, low: float | None = None, high: float | None = None,
                 low_open: bool = False, high_open: bool = False) -> float:
    """A finite real number, optionally within ``[low, high]`` (ends open when asked).

    Booleans, strings, ``None`` and arrays are refused rather than converted: ``lam=True`` or
    ``tol="1e-8"`` is a mistake, not a number.
    """
    if not _is_real(value) or not np.isfinite(float(value)):
        raise ArgumentError(name, f"must be a finite number, got {_describe(value)}")
    number = float(value)
    below = low is not None and (number <= low if low_open else number < low)
    above = high is not None and (number >= high if high_open else number > high)
    if below or above:
        lo = "(-inf" if low is None else ("(" if low_open else "[") + f"{low:g}"
        hi = "inf)" if high is None else f"{high:g}" + (")" if high_open else "]")
        raise ArgumentError(name, f"must lie in {lo}, {hi}, got {value!r}")
    return number


def check_fraction(value: Any, name: str) -> float:
    """A real number strictly between 0 and 1 (booleans and strings refused).

    Parameters
    ----------
    value : object
        The value given.
    name : str
        The argument's name, for the error message.

    Returns
    -------
    float
        ``value`` as a float.
    """
    if not _is_real(value) or not 0 < value < 1:
        raise ArgumentError(name, f"must lie in (0, 1), got {value!r}")
    return float(value)


def check_choice(value: Any, name: str, choices: tuple[str, ...]) -> str:
    """Check that a string option is one of ``choices``."""
    if not isinstance(value, str) or value not in choices:
        raise ArgumentError(name, f"must be one of {choices}, got {value!r}")
    return value


def check_positive_number(value: Any, name: str) -> float:
    """A finite number above zero (tolerances, supports)."""
    if not _is_real(value) or not (np.isfinite(float(value)) and value > 0):
        raise ArgumentError(name, f"must be a positive number, got {_describe(value)}")
    return float(value)


def check_int(value: Any, name: str, *, minimum: int | None = None, maximum: int | None = None,
              integer_type: bool = False) -> int:
    """A whole number within ``[minimum, maximum]`` (sizes, counts, iteration caps).

    5.0 is read as 5 unless ``integer_type`` asks for an integer type; 2.7, booleans, strings and
    non-numbers are always refused rather than truncated or parsed.
    """
    whole = _is_real(value) and np.isfinite(float(value)) and float(value) == round(float(value))
    if not whole:
        raise ArgumentError(name, f"must be a whole number, got {_describe(value)}")
    if integer_type and not isinstance(value, (int, np.integer)):
        raise ArgumentError(name, f"must be an integer, got {value!r}")
    number = int(value)
    if minimum is not None and number < minimum:
        raise ArgumentError(name, f"must be at least {minimum}, got {value!r}")
    if maximum is not None and number > maximum:
        raise ArgumentError(name, f"must be at most {maximum}, got {value!r}")
    return number


# Counts handed to the compiled core are C ints.
INT_MAX = 2**31 - 1


def check_int_at_least(value: Any, name: str, minimum: int = 1, *, integer_type: bool = False,
                       maximum: int = INT_MAX) -> int:
    """A whole number from ``minimum`` to ``maximum`` (see :func:`check_int`); the default ceiling
    is the largest C int, what an iteration cap or thread count may be in the compiled core."""
    return check_int(value, name, minimum=minimum, maximum=maximum, integer_type=integer_type)


# Most threads one call may ask for: more is a mistake, and OpenMP aborts the process when it
# cannot allocate them.
MAX_THREADS = 1024


def check_threads(value: Any, name: str = "n_threads") -> int:
    """A thread count from 1 to :data:`MAX_THREADS`."""
    return check_int(value, name, minimum=1, maximum=MAX_THREADS)


def check_jobs(value: Any, name: str = "n_jobs") -> int:
    """A worker count: 1 to :data:`MAX_THREADS`, or -1 for one per CPU this process may use."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value == -1:
        usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        return max(1, min(usable or 1, MAX_THREADS))
    try:
        return check_threads(value, name)
    except ValueError:
        raise ArgumentError(name, f"must be a whole number from 1 to {MAX_THREADS}, or -1 for one per "
                                  f"CPU, got {value!r}") from None


def check_array(value: Any, name: str, *, shape: tuple[int | None, ...] | None = None,
                ndim: int | None = None, min_size: int = 0) -> np.ndarray:
    """A finite float64 array of the given number of dimensions or shape.

    ``shape`` may hold ``None`` for a free axis, e.g. ``(None, 3)``; ``min_size`` refuses empty
    arrays. Strings and booleans given where an array of numbers is expected are refused.
    """
    if isinstance(value, (str, bytes, bool, np.bool_)) or value is None \
            or np.asarray(value).dtype.kind in "bUSO" and not _numeric_objects(value):
        raise ArgumentError(name, f"expected an array of numbers, got {_describe(value)}")
    arr = as_float_array(value, name, ndim=len(shape) if shape is not None else ndim)
    if shape is not None and any(want is not None and got != want for got, want in zip(arr.shape, shape)):
        want_text = "(" + ", ".join("any" if w is None else str(w) for w in shape) + ")"
        raise ArgumentError(name, f"expected shape {want_text}, got {arr.shape}")
    if arr.size < min_size:
        raise ArgumentError(name, f"needs at least {min_size} value(s), got {arr.size}")
    return arr


def _numeric_objects(value: Any) -> bool:
    """Whether an object array holds numbers only (booleans and strings are not numbers)."""
    arr = np.asarray(value)
    return arr.dtype.kind == "O" and all(_is_real(v) for v in arr.ravel())


def check_nonsingular(matrix: np.ndarray, name: str, rcond: float = 1e-12) -> np.ndarray:
    """A square finite matrix whose smallest singular value is above ``rcond`` times its largest.

    Judged by the condition number, never the determinant: ``det(0.01 I)`` at p = 200 is 1e-400
    (zero in floating point) for a perfectly conditioned matrix.
    """
    M = check_array(matrix, name, ndim=2)
    if M.shape[0] != M.shape[1] or M.shape[0] == 0:
        raise ArgumentError(name, f"expected a non-empty square matrix, got shape {M.shape}")
    sv = np.linalg.svd(M, compute_uv=False)
    if not sv[0] > 0 or sv[-1] <= rcond * sv[0]:
        cond = np.inf if sv[-1] == 0 else sv[0] / sv[-1]
        raise ArgumentError(name, f"singular to working precision (condition number {cond:.3g})")
    return M


def check_positive_definite(matrix: np.ndarray, name: str, rcond: float = 1e-12) -> np.ndarray:
    """A symmetric (to rounding) finite matrix whose eigenvalues are all above ``rcond`` times the
    largest: positive definite relative to its own scale, whatever that scale is."""
    M = check_array(matrix, name, ndim=2)
    if M.shape[0] != M.shape[1] or M.shape[0] == 0:
        raise ArgumentError(name, f"expected a non-empty square matrix, got shape {M.shape}")
    largest = float(np.abs(M).max())
    if not np.allclose(M, M.T, rtol=1e-8, atol=1e-12 * largest):
        raise ArgumentError(name, "not symmetric")
    eig = np.linalg.eigvalsh(0.5 * (M + M.T))
    if not (eig[-1] > 0 and eig[0] > rcond * eig[-1]):
        raise ArgumentError(name, f"not positive definite (smallest eigenvalue {eig[0]:.3g}, largest "
                                  f"{eig[-1]:.3g})")
    return M


def check_names(value: Any, name: str, *, allow_list: bool = True, allow_empty: bool = False) -> list[str]:
    """Column names: one string, or (when ``allow_list``) a list or tuple of distinct strings."""
    if isinstance(value, str):
        names = [value]
    elif allow_list and isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        names = list(value)
    else:
        what = "a column name or a list of column names" if allow_list else "a column name"
        raise ArgumentError(name, f"expected {what}, got {_describe(value)}")
    if not names and not allow_empty:
        raise ArgumentError(name, "needs at least one column name")
    repeated = sorted({c for c in names if names.count(c) > 1})
    if repeated:
        raise ArgumentError(name, f"lists column(s) {repeated} more than once")
    return names


def check_columns_exist(columns: Sequence[Any], names: Sequence[str], name: str) -> None:
    """Every entry of ``names`` is one of ``columns`` (a data frame's column index)."""
    known = set(columns)
    missing = [c for c in names if c not in known]
    if missing:
        raise ArgumentError(name, f"column(s) {missing} not found in data")


def check_disjoint(groups: Mapping[str, Sequence[str]]) -> None:
    """No column is named by two arguments (the outcome among the covariates, a cluster that is
    also the treatment, ...): such a fit is silently wrong, not merely odd."""
    seen: dict[str, str] = {}
    for arg, names in groups.items():
        for col in names:
            if col in seen:
                raise ArgumentError(arg, f"column {col!r} is also given as {seen[col]}; the "
                                         f"arguments must name different columns")
            seen[col] = arg


def check_no_bool_mix(values: Sequence[Any], name: str) -> None:
    """Refuse labels that mix booleans with numbers (True equals 1 and would merge two labels)."""
    is_bool = [isinstance(v, (bool, np.bool_)) for v in values]
    if any(is_bool) and any(isinstance(v, (numbers.Number, np.number)) and not b
                            for v, b in zip(values, is_bool)):
        raise ArgumentError(name, "mixes booleans with numbers (True equals 1 and would merge two "
                                  "labels); use one kind of label")


def check_labels(labels: Sequence[Any], name: str) -> list[Any]:
    """Distinct labels (tasks, sites) that stay distinct: 1 and True, or 1 and 1.0, compare equal
    in Python and would silently merge, so mixing booleans with numbers, or equal labels of
    different types, is refused."""
    out = list(labels)
    check_no_bool_mix(out, name)
    try:
        distinct = len(set(out))
    except TypeError:
        raise ArgumentError(name, "labels must be hashable (strings or numbers)") from None
    if distinct != len(out):
        seen: list[Any] = []
        for v in out:
            if v in seen:
                raise ArgumentError(name, f"label {v!r} appears more than once (or equals another "
                                          f"label of a different type)")
            seen.append(v)
    return out


def check_item(value: Any, name: str, names: Sequence[str], what: str = "coefficient") -> int:
    """Position of an entry given by name or by (possibly negative) integer index in ``names``."""
    if isinstance(value, str):
        if value not in names:
            raise ArgumentError(name, f"unknown {what} {value!r}; known: {list(names)}")
        return list(names).index(value)
    if isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)):
        if not -len(names) <= value < len(names):
            raise ArgumentError(name, f"index {value} out of range for {len(names)} entries")
        return int(value) % len(names)
    raise ArgumentError(name, f"expected an integer index or a name, got {_describe(value)}")


def check_finite_result(value: np.ndarray, name: str, what: str) -> np.ndarray:
    """Raise FloatingPointError when a computed result is not finite (overflow, 0/0): a warning
    alone would let NaN or inf flow into a report."""
    arr = np.asarray(value)
    if not np.all(np.isfinite(arr)):
        raise FloatingPointError(f"{name}: {what} is not finite (overflow or division by zero in "
                                 "the inputs' scale; rescale the data)")
    return arr
