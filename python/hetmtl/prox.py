"""Proximal building blocks for multi-task heads (compiled core, no torch).

* :func:`group_soft_threshold` -- move rows toward a center by group soft-thresholding;
* :func:`project_l2_ball` -- project rows onto l2 balls around a center;
* :func:`geometric_median` -- weighted geometric median (Weiszfeld with the Vardi-Zhang step);
* :func:`solve_heads` -- the head problem of the dual-encoder model given the encodings::

      minimize  sum_r (w_r / n_r) || y_r - Z_r alpha_r - H_r beta_r - b_r ||^2
              + sum_r pen_beta_r  P_beta (beta_r  - beta_center)
              + sum_r pen_alpha_r P_alpha(alpha_r - alpha_center)
              + sum_r (ridge_r / 2) (||alpha_r||^2 + ||beta_r||^2)

  with ``P = ||.||_2`` (``"l2"``, exact fusion with the center), ``||.||_2^2 / 2`` (``"l2sq"``),
  the constraint ``||.||_2 <= pen`` (``"ball"``; ``pen`` is the radius) or nothing (``"none"``).
  Solved per task (in parallel) by accelerated proximal gradient to a relative KKT tolerance.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import _core
from ._core_status import ProxConvergenceWarning, check_heads, check_prox
from ._util.validation import (as_float_array, check_choice, check_int_at_least, check_positive_number,
                               check_threads)

HEAD_PENALTIES = ("none", "l2", "l2sq", "ball")

__all__ = [
    "HEAD_PENALTIES",
    "HeadFit",
    "ProxConvergenceWarning",
    "geometric_median",
    "group_soft_threshold",
    "project_l2_ball",
    "solve_heads",
]


def _rows(V, name: str) -> np.ndarray:
    arr = as_float_array(V, name)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2:
        raise ValueError(f"{name}: expected a 2-dimensional array (rows), got shape {arr.shape}")
    return np.ascontiguousarray(arr)


def _per_row(value, m: int, name: str, allow_inf: bool = False) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float64)
    arr = np.broadcast_to(arr, (m,)) if arr.ndim == 0 else arr
    if arr.shape != (m,):
        raise ValueError(f"{name}: expected a scalar or shape ({m},), got {arr.shape}")
    if np.any(np.isnan(arr)) or (not allow_inf and not np.all(np.isfinite(arr))):
        raise ValueError(f"{name}: contains NaN{'' if allow_inf else ' or infinite'} values")
    if np.any(arr < 0):
        raise ValueError(f"{name}: must be non-negative, got {arr[arr < 0][0]!r}")
    return np.ascontiguousarray(arr, dtype=np.float64)


def _center(center, p: int, name: str = "center") -> np.ndarray:
    if center is None:
        return np.zeros(p)
    c = as_float_array(center, name, ndim=1)
    if c.shape != (p,):
        raise ValueError(f"{name}: expected shape ({p},), got {c.shape}")
    return np.ascontiguousarray(c)


def _rowwise(core_fn, V, per_row, name: str, center) -> np.ndarray:
    """Apply a row-wise proximal map of the core with a per-row parameter; 1-d input gives 1-d."""
    one = np.ndim(V) == 1
    Va = _rows(V, "V")
    par = _per_row(per_row, Va.shape[0], name, allow_inf=True)
    out, status = core_fn(Va, _center(center, Va.shape[1]), par)
    check_prox(status, core_fn.__name__, warn=False)
    return out[0] if one else out


def group_soft_threshold(V, tau, center=None) -> np.ndarray:
    """Group soft-thresholding of each row toward ``center``.

    ``out_i = c + max(0, 1 - tau_i / ||v_i - c||) (v_i - c)``, the proximal map of
    ``tau_i ||. - c||_2``.

    Parameters
    ----------
    V : array_like of shape (m, p) or (p,)
        Rows to shrink.
    tau : float or array_like of shape (m,)
        Non-negative thresholds.
    center : array_like of shape (p,), optional
        Default zero.

    Returns
    -------
    ndarray of the shape of ``V`` (2-d for 2-d input)
    """
    return _rowwise(_core.group_soft_threshold, V, tau, "tau", center)


def project_l2_ball(V, radius, center=None) -> np.ndarray:
    """Project each row onto the ball ``{x : ||x - center||_2 <= radius_i}``.

    Parameters
    ----------
    V : array_like of shape (m, p) or (p,)
    radius : float or array_like of shape (m,)
        Non-negative radii (``inf`` leaves a row unchanged).
    center : array_like of shape (p,), optional
        Default zero.

    Returns
    -------
    ndarray of the shape of ``V`` (2-d for 2-d input)
    """
    return _rowwise(_core.project_l2_ball, V, radius, "radius", center)


def geometric_median(points, weights=None, tol: float = 1e-10, max_iter: int = 1000,
                     warn: bool = True) -> np.ndarray:
    """Weighted geometric median ``argmin_x sum_i w_i ||x - p_i||_2``.

    Weiszfeld's iteration started at the weighted mean, with the Vardi-Zhang modification, so
    that an iterate landing on a data point neither divides by zero nor gets stuck there.

    Parameters
    ----------
    points : array_like of shape (m, p)
    weights : array_like of shape (m,), optional
        Non-negative, not all zero; default equal weights.
    tol : float
        Stop when the distance of zero from the subdifferential, divided by ``sum w``, is below
        ``tol``.
    max_iter : int
    warn : bool
        Emit a :class:`ProxConvergenceWarning` when ``max_iter`` is reached first.

    Returns
    -------
    ndarray of shape (p,)
    """
    P = _rows(points, "points")
    m = P.shape[0]
    if m == 0:
        raise ValueError("points: needs at least one row")
    w = np.ones(m) if weights is None else _per_row(weights, m, "weights")
    if not w.sum() > 0:
        raise ValueError("weights: must not all be zero")
    if not (np.isfinite(tol) and tol > 0):
        raise ValueError(f"tol: must be a positive number, got {tol!r}")
    if int(max_iter) < 1:
        raise ValueError(f"max_iter: must be at least 1, got {max_iter!r}")
    opt = _core.GeoMedianOptions()
    opt.tol = float(tol)
    opt.max_iter = int(max_iter)
    out = _core.geometric_median(P, w, opt)
    check_prox(out.status, "geometric_median", warn=warn, detail=f" (residual {out.residual:.3g})")
    return np.asarray(out.median)


@dataclass(frozen=True)
class HeadFit:
    """Solution of the head problem (one row per task).

    Attributes
    ----------
    alpha : ndarray of shape (R, q)
    beta : ndarray of shape (R, p)
    intercept : ndarray of shape (R,)
    fused_alpha, fused_beta : ndarray of shape (R,), bool
        True where the head equals its center exactly under a positive ``"l2"`` penalty.
    iterations : ndarray of shape (R,)
    kkt : ndarray of shape (R,)
        Relative KKT (fixed-point) residual per task.
    converged : ndarray of shape (R,), bool
    """

    alpha: np.ndarray
    beta: np.ndarray
    intercept: np.ndarray
    fused_alpha: np.ndarray
    fused_beta: np.ndarray
    iterations: np.ndarray
    kkt: np.ndarray
    converged: np.ndarray


def head_options(penalty_beta: str = "l2", penalty_alpha: str = "none", tol: float = 1e-8,
                 max_iter: int = 5000, n_threads: int = 1):
    """Build the core's head-solver options struct (the one place strings become enums)."""
    check_choice(penalty_beta, "penalty_beta", HEAD_PENALTIES)
    check_choice(penalty_alpha, "penalty_alpha", HEAD_PENALTIES)
    opt = _core.HeadOptions()
    opt.penalty_beta = getattr(_core.HeadPenalty, penalty_beta)
    opt.penalty_alpha = getattr(_core.HeadPenalty, penalty_alpha)
    opt.tol = check_positive_number(tol, "tol")
    opt.max_iter = check_int_at_least(max_iter, "max_iter")
    opt.n_threads = check_threads(n_threads, "n_threads")
    return opt


def task_offsets(sizes) -> np.ndarray:
    """Row offsets ``[0, n_1, n_1 + n_2, ...]`` of tasks stored one after another."""
    sizes = np.asarray(sizes, dtype=np.int64)
    return np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)


def _task_rows(Z, H, y, sizes) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[int]]:
    """Z, H and y as C-contiguous float arrays with one row per observation, and the row offsets
    of the tasks (``sizes`` rows each, in order)."""
    Za, Ha = _rows(Z, "Z"), _rows(H, "H")
    ya = as_float_array(y, "y", ndim=1)
    N = ya.shape[0]
    for name, arr in (("Z", Za), ("H", Ha)):
        if arr.shape[0] != N:
            raise ValueError(f"{name}: has {arr.shape[0]} rows but y has {N}")
    sz = np.asarray(sizes)
    if sz.ndim != 1 or sz.size == 0 or not np.issubdtype(sz.dtype, np.integer):
        raise ValueError(f"sizes: expected a non-empty 1-d integer array, got {sz!r}")
    if np.any(sz < 1):
        raise ValueError(f"sizes: every task needs at least one row, got {int(sz.min())}")
    if int(sz.sum()) != N:
        raise ValueError(f"sizes: sum to {int(sz.sum())} but y has {N} rows")
    return Za, Ha, np.ascontiguousarray(ya), task_offsets(sz).tolist()


def _warm_start(value, R: int, k: int, name: str) -> np.ndarray:
    """A warm start of shape (R, k), or the core's cold start (no rows) when ``value`` is None."""
    if value is None:
        return np.zeros((0, k))
    arr = _rows(value, name)
    if arr.shape != (R, k):
        raise ValueError(f"{name}: expected shape ({R}, {k}), got {arr.shape}")
    return arr


def solve_heads(Z, H, y, sizes, *, loss_weights=None, pen_beta=0.0, pen_alpha=0.0,
                beta_center=None, alpha_center=None, alpha0=None, beta0=None,
                penalty_beta: str = "l2", penalty_alpha: str = "none", tol: float = 1e-8,
                max_iter: int = 5000, n_threads: int = 1, ridge=0.0, warn: bool = True) -> HeadFit:
    """Solve the heads of every task given the encodings (see the module docstring).

    Parameters
    ----------
    Z : array_like of shape (N, q)
        Task-specific encodings, rows of task 1 first, then task 2, ... (``q`` may be 0).
    H : array_like of shape (N, p)
        Shared encodings, same row order (``p`` may be 0).
    y : array_like of shape (N,)
    sizes : array_like of int, shape (R,)
        Rows per task (each at least 1, summing to N).
    loss_weights : array_like of shape (R,), optional
        Task weights ``w_r`` of the loss (default 1).
    pen_beta, pen_alpha : float or array_like of shape (R,)
        Per-task penalty levels (radii for ``"ball"``).
    beta_center, alpha_center : array_like, optional
        Centers (default zero).
    alpha0, beta0 : array_like of shape (R, q) / (R, p), optional
        Warm starts (default the centers).
    penalty_beta, penalty_alpha : {"none", "l2", "l2sq", "ball"}
    tol, max_iter, n_threads : solver options.
    ridge : float or array_like of shape (R,)
        Per-task ridge on alpha and beta (not the intercept).
    warn : bool
        Emit a :class:`ProxConvergenceWarning` for tasks that stopped at ``max_iter``.

    Returns
    -------
    HeadFit
    """
    opt = head_options(penalty_beta, penalty_alpha, tol, max_iter, n_threads)
    problem = _core.HeadProblem()  # the core reads these arrays in place
    problem.Z, problem.H, problem.y, problem.offsets = _task_rows(Z, H, y, sizes)
    R, q, p = len(problem.offsets) - 1, problem.Z.shape[1], problem.H.shape[1]
    problem.loss_weights = np.ones(R) if loss_weights is None else _per_row(loss_weights, R, "loss_weights")
    problem.pen_beta = _per_row(pen_beta, R, "pen_beta", allow_inf=penalty_beta == "ball")
    problem.pen_alpha = _per_row(pen_alpha, R, "pen_alpha", allow_inf=penalty_alpha == "ball")
    rg = np.asarray(ridge, dtype=np.float64)
    if not (np.all(np.isfinite(rg)) and np.all(rg >= 0)):
        raise ValueError(f"ridge: must be a finite non-negative number per task, got {ridge!r}")
    problem.ridge = _per_row(rg, R, "ridge")
    problem.alpha0 = _warm_start(alpha0, R, q, "alpha0")
    problem.beta0 = _warm_start(beta0, R, p, "beta0")
    problem.alpha_center = _center(alpha_center, q, "alpha_center")
    problem.beta_center = _center(beta_center, p, "beta_center")
    out = _core.solve_heads(problem, opt)
    converged = check_heads(out, warn=warn)
    return HeadFit(alpha=out.alpha, beta=out.beta, intercept=out.intercept, fused_alpha=out.fused_alpha,
                   fused_beta=out.fused_beta, iterations=out.iterations, kkt=out.kkt, converged=converged)
