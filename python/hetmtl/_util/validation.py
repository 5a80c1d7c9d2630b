"""Input validation at the public boundary: every message names the argument and the problem.

The checks raise :class:`ArgumentError`, a ValueError that also keeps the argument's name and the
problem apart, so that a front end (the ``hetmtl`` command) can name its own flag instead of the
library's argument without parsing the message.
"""

from __future__ import annotations

import numbers
from typing import Any

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


def as_float_array(value: Any, name: str, ndim: int | None = None) -> np.ndarray:
    """Convert ``value`` to a finite float64 array, raising a ValueError that names ``name``."""
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
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
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (numbers.Real, np.number)) \
            or not 0 < value < 1:
        raise ArgumentError(name, f"must lie in (0, 1), got {value!r}")
    return float(value)


def check_choice(value: Any, name: str, choices: tuple[str, ...]) -> str:
    """Check that a string option is one of ``choices``."""
    if value not in choices:
        raise ArgumentError(name, f"must be one of {choices}, got {value!r}")
    return value


def check_positive_number(value: Any, name: str) -> float:
    """A finite number above zero (tolerances, supports)."""
    if not (np.isfinite(value) and value > 0):
        raise ArgumentError(name, f"must be a positive number, got {value!r}")
    return float(value)


def check_int_at_least(value: Any, name: str, minimum: int = 1, *, integer_type: bool = False) -> int:
    """A whole number no smaller than ``minimum`` (iteration caps, thread counts, replications).

    5.0 is read as 5 unless ``integer_type`` asks for an integer type; 2.7, booleans and
    non-numbers are always rejected rather than truncated.
    """
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if isinstance(value, bool) or not np.isfinite(number) or number != round(number):
        raise ArgumentError(name, f"must be a whole number, got {value!r}")
    if integer_type and not isinstance(value, (int, np.integer)):
        raise ArgumentError(name, f"must be an integer, got {value!r}")
    if number < minimum:
        raise ArgumentError(name, f"must be at least {minimum}, got {value!r}")
    return int(number)
