"""Validated entry points to the compiled kernel grid core.

Three operations, each one call into C++:

* :func:`grid_sums` -- kernel-weighted moments of a site's rows at every point of a tensor grid,
  per cross-fitting fold, in one pass over the data;
* :func:`grid_interpolate` -- multilinear interpolation of grid values at data points;
* :func:`fused_grid_solve` -- the central fused problem over the grid values of all sites, with a
  whole-function penalty (one group over all grid points) or a per-grid-point penalty.

Grid points are the tensor product of ``d`` sorted axes (``d`` = 1..3), flattened in C order (last
axis fastest). Kernels are products of one-dimensional kernels with ``k(0) = 1``:
``"gaussian"`` ``exp(-u^2/2)`` and ``"epanechnikov"`` ``max(0, 1 - u^2)``, ``u = (x - a) / h``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .. import _core
from .._core_status import check_fused, check_grid
from .._util.validation import (as_float_array, check_choice, check_positive,
                                check_positive_number, check_threads)
from .fused import FusedFit, check_lambda, make_options

KERNELS = ("gaussian", "epanechnikov")
FITS = ("constant", "linear")
GRID_PENALTIES = ("function", "pointwise")

__all__ = ["FITS", "GRID_PENALTIES", "KERNELS", "GridSumsResult", "check_axes", "fused_grid_solve",
           "grid_interpolate", "grid_options", "grid_sums"]


@dataclass(frozen=True)
class GridSumsResult:
    """Kernel moments per fold and grid point.

    Attributes
    ----------
    M : ndarray of shape (F, G, P, P)
        ``sum_i K_h(X_i - x_g) z_i z_i'`` with ``z_i = 1`` (``fit="constant"``, P = 1, so
        ``M[..., 0, 0]`` is S0) or ``z_i = (1, X_i - x_g)`` (``fit="linear"``, P = d + 1).
    V : ndarray of shape (F, G, P, T)
        ``sum_i K_h(X_i - x_g) z_i Y_i'`` (``V[..., 0, :]`` is S1).
    count : ndarray of shape (F, G)
        Observations within ``support`` bandwidths of the grid point in every dimension (within
        the kernel's support for ``"epanechnikov"``).
    """

    M: np.ndarray
    V: np.ndarray
    count: np.ndarray


def check_axes(axes: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Validate grid axes: 1 to 3 finite, strictly increasing arrays of at least 2 points."""
    if isinstance(axes, np.ndarray) and axes.ndim == 1:
        axes = [axes]
    if not isinstance(axes, (list, tuple)) or not 1 <= len(axes) <= 3:
        raise ValueError("axes: expected a list of 1 to 3 one-dimensional arrays")
    out = []
    for j, a in enumerate(axes):
        arr = as_float_array(a, f"axes[{j}]", ndim=1)
        if arr.size < 2 or np.any(np.diff(arr) <= 0):
            raise ValueError(f"axes[{j}]: needs at least 2 strictly increasing values")
        out.append(np.ascontiguousarray(arr))
    return out


def _as_points(X, d: int, name: str = "X") -> np.ndarray:
    x = as_float_array(X, name)
    if x.ndim == 1 and d == 1:
        x = x[:, None]
    if x.ndim != 2 or x.shape[1] != d:
        raise ValueError(f"{name}: expected shape (n, {d}) to match the grid's {d} axes, got {x.shape}")
    return np.ascontiguousarray(x)


def grid_options(kernel: str = "gaussian", fit: str = "constant", support: float = 3.0,
                 n_threads: int = 1):
    """Build the core's options struct (the one place where these strings become enums)."""
    check_choice(kernel, "kernel", KERNELS)
    check_choice(fit, "fit", FITS)
    opt = _core.GridOptions()
    opt.kernel = getattr(_core.GridKernel, kernel)
    opt.fit = getattr(_core.GridFit, fit)
    opt.support = check_positive_number(support, "support")
    opt.n_threads = check_threads(n_threads, "n_threads")
    return opt


def grid_sums(X, Y, axes: Sequence[np.ndarray], bandwidth, *, folds=None, n_folds: int | None = None,
              kernel: str = "gaussian", fit: str = "constant", support: float = 3.0,
              n_threads: int = 1) -> GridSumsResult:
    """Kernel moments of ``(X, Y)`` at every grid point, per fold, in one pass over the rows.

    Parameters
    ----------
    X : array_like of shape (n, d)
        Points, inside the grid's range.
    Y : array_like of shape (n,) or (n, T)
        Targets.
    axes : sequence of d arrays
        Sorted grid axes.
    bandwidth : float or array_like of shape (d,)
        Positive bandwidth per dimension.
    folds : array_like of int of shape (n,), optional
        Fold label per row in ``0..n_folds-1`` (default: every row in fold 0).
    n_folds : int, optional
        Number of folds (default ``max(folds) + 1``); every fold must have rows.
    kernel : {"gaussian", "epanechnikov"}
    fit : {"constant", "linear"}
        Local-constant (S0, S1) or local-linear moments.
    support : float
        Radius, in bandwidths, within which an observation counts for a grid point (Gaussian).
    n_threads : int
        OpenMP threads.

    Returns
    -------
    GridSumsResult
    """
    ax = check_axes(axes)
    d = len(ax)
    opt = grid_options(kernel, fit, support, n_threads)
    x = np.asarray(X, dtype=float)
    if x.ndim == 1 and d == 1:
        x = x[:, None]
    if x.ndim != 2 or x.shape[1] != d:
        raise ValueError(f"X: expected shape (n, {d}) to match the grid's {d} axes, got {x.shape}")
    y = np.asarray(Y, dtype=float)
    if y.ndim == 1:
        y = y[:, None]
    if y.ndim != 2 or y.shape[0] != x.shape[0]:
        raise ValueError(f"Y: expected shape ({x.shape[0]},) or ({x.shape[0]}, T), got {np.shape(Y)}")
    h = np.broadcast_to(np.asarray(bandwidth, dtype=float), (d,)) if np.ndim(bandwidth) == 0 else \
        np.asarray(bandwidth, dtype=float)
    if h.shape != (d,):
        raise ValueError(f"bandwidth: expected a number or shape ({d},), got {h.shape}")
    if folds is None:
        f = np.zeros(x.shape[0], dtype=np.int32)
    else:
        f = np.asarray(folds)
        if f.shape != (x.shape[0],) or f.dtype.kind not in "iu":
            raise ValueError(f"folds: expected {x.shape[0]} integer labels, got shape {f.shape} "
                             f"and dtype {f.dtype}")
        f = f.astype(np.int32)
    F = int(n_folds) if n_folds is not None else (int(f.max()) + 1 if f.size else 1)
    if F < 1:
        raise ValueError(f"n_folds: must be at least 1, got {n_folds!r}")
    if x.shape[0] == 0:
        raise ValueError("X: has no rows")
    res = _core.grid_sums(np.ascontiguousarray(x), np.ascontiguousarray(y), np.ascontiguousarray(f), F,
                          ax, np.ascontiguousarray(h), opt)
    if res.status != _core.GridStatus.ok:  # which array to name costs a pass over X: only on failure
        check_grid(res, "X" if not np.all(np.isfinite(x)) else "Y")
    return GridSumsResult(M=res.M, V=res.V, count=res.count)


def grid_interpolate(axes: Sequence[np.ndarray], values, X, *, n_threads: int = 1) -> np.ndarray:
    """Multilinear interpolation of grid values at the rows of ``X``.

    Parameters
    ----------
    axes : sequence of d arrays
        Sorted grid axes (G = product of their lengths).
    values : array_like of shape (G,) or (G, T)
        Values at the grid points in C order. NaN marks a missing grid value: the remaining
        corners of the cell are reweighted, and a point whose corners are all missing gets NaN.
    X : array_like of shape (n, d)
        Points inside the grid's range.
    n_threads : int
        OpenMP threads.

    Returns
    -------
    ndarray of shape (n,) or (n, T)
    """
    ax = check_axes(axes)
    x = _as_points(X, len(ax))
    v = np.asarray(values, dtype=float)
    squeeze = v.ndim == 1
    v2 = v[:, None] if squeeze else v
    G = int(np.prod([a.size for a in ax]))
    if v2.ndim != 2 or v2.shape[0] != G:
        raise ValueError(f"values: expected {G} rows (one per grid point), got shape {v.shape}")
    if np.any(np.isinf(v2)):
        raise ValueError("values: contains infinite values")
    res = _core.grid_interpolate(ax, np.ascontiguousarray(v2), x, int(n_threads))
    check_grid(res, "X")
    out = res.values
    return out[:, 0] if squeeze else out


def _check_grid_problem(D, theta_hat, n, weights) -> tuple[np.ndarray, ...]:
    Da = as_float_array(D, "D", ndim=2)
    th = as_float_array(theta_hat, "theta_hat", ndim=2)
    if th.shape != Da.shape:
        raise ValueError(f"theta_hat: expected shape {Da.shape} to match D, got {th.shape}")
    check_positive(Da, "D", strict=False)
    K = Da.shape[0]
    na = as_float_array(n, "n", ndim=1)
    if na.shape != (K,):
        raise ValueError(f"n: expected shape ({K},), got {na.shape}")
    check_positive(na, "n")
    wa = np.sqrt(na) if weights is None else as_float_array(weights, "weights", ndim=1)
    if wa.shape != (K,):
        raise ValueError(f"weights: expected shape ({K},), got {wa.shape}")
    check_positive(wa, "weights")
    return Da, th, na, wa


def fused_grid_solve(D, theta_hat, n, lam: float, *, weights=None, penalty: str = "function",
                     tol: float = 1e-10, max_iter: int = 20000, n_threads: int = 1) -> FusedFit:
    """Fuse site functions given by their values on a grid.

    Solves, over site values ``a_k`` (G,) and a center ``a_0`` (G,)::

        sum_k (n_k / 2) sum_g D_kg (a_kg - theta_hat_kg)^2 + lam * sum_k w_k * pen(a_k - a_0)

    with ``pen = ||.||_2`` over the whole vector of grid values (``penalty="function"``) or
    ``pen = ||.||_1``, i.e. one scalar fused problem per grid point (``penalty="pointwise"``).

    Parameters
    ----------
    D : array_like of shape (K, G)
        Non-negative curvatures (diagonal weights); 0 marks a grid value the site did not
        release. A grid point with no weight at any site is left NaN in the result.
    theta_hat : array_like of shape (K, G)
        Site values (anything finite where D is 0).
    n : array_like of shape (K,)
        Positive site sizes.
    lam : float
        Penalty level; ``lam = 0`` returns ``theta_hat`` where D > 0.
    weights : array_like of shape (K,), optional
        Penalty weights ``w_k`` (default ``sqrt(n_k)``).
    penalty : {"function", "pointwise"}
    tol, max_iter, n_threads
        Solver options (relative KKT tolerance, iteration cap, OpenMP threads).

    Returns
    -------
    FusedFit
        ``theta`` (K, G), ``center`` (G,); ``fused`` flags sites whose whole function equals
        the center; ``converged`` and ``kkt`` summarize every solved problem (worst case).
    """
    lam = check_lambda(lam)
    check_choice(penalty, "penalty", GRID_PENALTIES)
    Da, th, na, wa = _check_grid_problem(D, theta_hat, n, weights)
    options = make_options("l2", tol, max_iter, n_threads)
    K, G = Da.shape
    present = Da.max(axis=0) > 0
    theta = np.full((K, G), np.nan)
    center = np.full(G, np.nan)
    if not present.any():
        raise ValueError("D: no grid point has positive weight at any site")
    if penalty == "pointwise":
        out = _core.fused_pointwise(np.ascontiguousarray(Da), np.ascontiguousarray(th), na, wa, lam, options)
        status = out.status[present]
        converged = check_fused(status, out.kkt[present], np.full(status.size, lam))
        theta, center = out.theta, out.center
        iterations, kkt, ok = int(out.iterations.max()), float(np.nanmax(out.kkt)), bool(converged.all())
    else:
        Dp = np.ascontiguousarray(Da[:, present])
        core = _core.FusedProblem.diagonal(Dp, na, wa, True)
        out = core.solve(np.ascontiguousarray(th[:, present]), lam, options)
        converged = check_fused(out.status, out.kkt, np.array([lam]))
        theta[:, present] = out.theta[0]
        center[present] = out.center[0]
        iterations, kkt, ok = int(out.iterations[0]), float(out.kkt[0]), bool(converged[0])
    diff = np.where(np.isnan(theta), 0.0, theta - center)
    fused = np.all(diff == 0.0, axis=1)
    return FusedFit(theta=theta, center=center, fused=fused, lam=lam, iterations=iterations, kkt=kkt,
                    converged=ok)
