"""The one place where the compiled core's status codes become exceptions and warnings.

The core never raises for a problem a user can cause: every result carries a status (the bound
enums ``SolveStatus``, ``GridStatus`` and ``ProxStatus``, or arrays of their codes when a call
solves many problems). The wrappers hand those statuses here, and only here are they turned into
Python's exceptions (bad input) and warnings (stopped short of the tolerance).
"""

from __future__ import annotations

import warnings

import numpy as np

from . import _core

__all__ = ["SOLVE_STATUS_NAMES", "ConvergenceWarning", "ProxConvergenceWarning", "check_fused",
           "check_grid", "check_heads", "check_prox", "status_names"]


class ConvergenceWarning(UserWarning):
    """The fused solver stopped before reaching its KKT tolerance."""


class ProxConvergenceWarning(UserWarning):
    """A proximal solver stopped before reaching its tolerance."""


_Solve = _core.SolveStatus
_Grid = _core.GridStatus
_Prox = _core.ProxStatus

_SOLVE_TEXT = {
    _Solve.max_iterations: "stopped before reaching the KKT tolerance (max_iter or rounding)",
    _Solve.not_positive_definite: "a weight matrix is not positive definite",
    _Solve.numerical_failure: "non-finite values appeared during the iterations",
    _Solve.invalid_input: "received arrays whose shapes do not describe one problem",
    _Solve.stagnated: "stagnated: the iterates stopped changing at the arithmetic's precision before "
                      "reaching the KKT tolerance (tol is below what double precision can reach; "
                      "the returned point is as accurate as it can be)",
    _Solve.interrupted: "was interrupted",
}

# Status names of fused fits, by code (FusedFit.status, FusedPath.status).
SOLVE_STATUS_NAMES = {int(v): name for name, v in _Solve.__members__.items()}

_GRID_TEXT = {
    _Grid.bad_dimension: "{what}: dimensions do not match (d must be 1 to 3 and equal the number of axes)",
    _Grid.bad_grid: "axes: axis {bad} is empty, has fewer than 2 points, is not finite or not strictly "
                    "increasing",
    _Grid.bad_bandwidth: "bandwidth: entry {bad} must be a finite positive number",
    _Grid.non_finite: "{what}: row {bad} contains NaN or infinite values",
    _Grid.out_of_range: "X: row {bad} lies outside the grid's range (pass outside='clip' to clamp it, or "
                        "widen the grid)",
    _Grid.bad_fold: "folds: row {bad} has a fold label outside 0..n_folds-1",
    _Grid.empty_fold: "folds: fold {bad} has no rows",
}

_PROX_TEXT = {
    _Prox.max_iterations: "reached max_iter before the tolerance",
    _Prox.invalid_input: "received inputs that do not describe a problem",
    _Prox.numerical_failure: "produced non-finite values",
}


def _codes(status) -> np.ndarray:
    return np.asarray(status, dtype=np.int64)


def check_fused(status, kkt, lambdas, *, stacklevel: int = 3) -> np.ndarray:
    """Decode the statuses of fused fits (one per lambda or draw) and return the converged flags.

    A weight matrix that is not positive definite (or arrays that do not fit together) raises a
    ValueError and non-finite iterates a FloatingPointError; fits that stopped short of the
    tolerance (the iteration cap, or stagnation at the arithmetic's precision) give one
    :class:`ConvergenceWarning` with the first such fit's lambda and residual and their count.
    """
    codes = _codes(status)
    if not codes.any():  # all converged: the common case, one reduction
        return np.ones(codes.shape, dtype=bool)
    for fatal, name in ((_Solve.not_positive_definite, "W"), (_Solve.invalid_input, "theta_hat")):
        if np.any(codes == int(fatal)):
            raise ValueError(f"{name}: {_SOLVE_TEXT[fatal]}")
    failed = np.flatnonzero(codes == int(_Solve.numerical_failure))
    if failed.size:
        # Overflow in the inputs' scale: NaN or inf must not reach a result with only a warning.
        raise FloatingPointError(f"fused solver: {_SOLVE_TEXT[_Solve.numerical_failure]} at "
                                 f"lambda={lambdas[int(failed[0])]:.6g} (overflow in the inputs' "
                                 "scale; rescale theta_hat or W)")
    bad = np.flatnonzero(codes != int(_Solve.converged))
    i = int(bad[0])
    text = _SOLVE_TEXT.get(_Solve(int(codes[i])), "failed")
    warnings.warn(
        f"fused solver {text} at lambda={lambdas[i]:.6g} (relative KKT residual {kkt[i]:.3g}; "
        f"{bad.size} of {codes.size} lambda value(s) affected)",
        ConvergenceWarning,
        stacklevel=stacklevel,
    )
    return codes == int(_Solve.converged)


def status_names(status) -> np.ndarray:
    """The names of fused fits' status codes (``"converged"``, ``"stagnated"``, ...)."""
    return np.array([SOLVE_STATUS_NAMES.get(int(c), "unknown") for c in np.ravel(status)], dtype=object)


def check_grid(result, what: str) -> None:
    """Raise the ValueError a kernel grid result's status stands for (nothing when it is ok).

    ``what`` names the array a dimension or non-finite problem is reported against.
    """
    if result.status != _Grid.ok:
        raise ValueError(_GRID_TEXT[result.status].format(bad=result.bad_index, what=what))


def check_prox(status, caller: str, *, warn: bool, detail: str = "", stacklevel: int = 3) -> None:
    """Decode one proximal result's status: bad input raises ValueError, non-finite values
    FloatingPointError; stopping at max_iter warns (when ``warn``) with ``detail`` appended."""
    if status == _Prox.invalid_input:
        raise ValueError(f"{caller}: {_PROX_TEXT[status]}")
    if status == _Prox.numerical_failure:
        raise FloatingPointError(f"{caller}: {_PROX_TEXT[status]}")
    if status == _Prox.max_iterations and warn:
        warnings.warn(f"{caller} {_PROX_TEXT[status]}{detail}", ProxConvergenceWarning, stacklevel=stacklevel)


def check_heads(result, *, warn: bool, stacklevel: int = 3) -> np.ndarray:
    """Decode a head solve (one status per task) and return the per-task converged flags."""
    if result.status_all == _Prox.invalid_input:
        raise ValueError("solve_heads: " + _PROX_TEXT[_Prox.invalid_input])
    codes = _codes(result.status)
    if np.any(codes == int(_Prox.numerical_failure)):
        raise FloatingPointError("solve_heads: " + _PROX_TEXT[_Prox.numerical_failure])
    stopped = codes == int(_Prox.max_iterations)
    if warn and stopped.any():
        warnings.warn(f"solve_heads {_PROX_TEXT[_Prox.max_iterations]} for {int(stopped.sum())} of "
                      f"{codes.size} task(s) (largest KKT residual {float(np.max(result.kkt)):.3g})",
                      ProxConvergenceWarning, stacklevel=stacklevel)
    return codes == int(_Prox.converged)
