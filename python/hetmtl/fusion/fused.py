"""Low-level entry points to the compiled fused quadratic solver.

The problem, for K sites with p-dimensional targets::

    minimize over theta_1..theta_K, u
        sum_k (n_k / 2) (theta_k - theta_hat_k)' W_k (theta_k - theta_hat_k)
      + lam * sum_k w_k * pen(theta_k - u)

with ``pen = ||.||_2`` (``penalty="l2"``: sites close to the center are fused exactly and each
site's pull on the center is capped) or ``pen = ||.||_2^2 / 2`` (``penalty="l2sq"``: ridge-type
shrinkage, never exact fusion). The default penalty weights are ``w_k = sqrt(n_k)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .. import _core
from .._core_status import ConvergenceWarning, check_fused, status_names
from .._util.validation import (ArgumentError, as_float_array, check_array, check_choice, check_fraction,
                                check_int, check_int_at_least, check_number, check_positive, check_threads,
                                check_positive_number, not_pd_message)

PENALTIES = ("l2", "l2sq")

__all__ = [
    "PENALTIES",
    "ConvergenceWarning",
    "FusedFit",
    "FusedPath",
    "PreparedProblem",
    "check_lambda",
    "fused_path",
    "fused_solve",
    "lambda_grid",
    "make_options",
    "path_prepared",
    "prepare_problem",
    "solve_batch",
    "solve_prepared",
]


@dataclass(frozen=True)
class FusedFit:
    """Solution of the fused quadratic problem at one lambda.

    Attributes
    ----------
    theta : ndarray of shape (K, p)
        Fused site estimates.
    center : ndarray of shape (p,)
        The common center ``u``.
    fused : ndarray of shape (K,), bool
        True where ``theta_k == u`` exactly.
    lam : float
        The penalty level.
    iterations : int
        Solver iterations used.
    kkt : float
        Relative KKT residual at the returned point.
    converged : bool
        Whether the residual reached the tolerance.
    status : str
        How the solve ended: ``"converged"``; ``"stagnated"`` when the iterates stopped changing
        at double precision before reaching ``tol`` (a tolerance below what the arithmetic can
        reach; the point is as accurate as it gets); ``"max_iterations"``; ``"numerical_failure"``.
    """

    theta: np.ndarray
    center: np.ndarray
    fused: np.ndarray
    lam: float
    iterations: int
    kkt: float
    converged: bool
    status: str = "converged"


@dataclass(frozen=True)
class FusedPath:
    """Solutions along a lambda grid (arrays stacked along the first axis, one row per lambda).

    Attributes
    ----------
    lambdas : ndarray of shape (L,)
        The lambda grid.
    theta : ndarray of shape (L, K, p)
        Fused site estimates at each lambda.
    center : ndarray of shape (L, p)
        The center at each lambda.
    fused : ndarray of bool, shape (L, K)
        Sites fused with the center.
    iterations, kkt, converged : ndarray of shape (L,)
        Solver iterations, relative KKT residual and convergence of each solve.
    lambda_max : float
        Smallest lambda that fuses every site.
    """

    lambdas: np.ndarray
    theta: np.ndarray
    center: np.ndarray
    fused: np.ndarray
    iterations: np.ndarray
    kkt: np.ndarray
    converged: np.ndarray
    lambda_max: float
    status: np.ndarray | None = None  # status names, one per lambda (see FusedFit.status)

    def fit(self, index: int) -> FusedFit:
        """Return the solution at position ``index`` of the grid as a :class:`FusedFit`."""
        return FusedFit(
            theta=self.theta[index],
            center=self.center[index],
            fused=self.fused[index],
            lam=float(self.lambdas[index]),
            iterations=int(self.iterations[index]),
            kkt=float(self.kkt[index]),
            converged=bool(self.converged[index]),
            status="converged" if self.status is None else str(self.status[index]),
        )


@dataclass
class PreparedProblem:
    """Validated inputs plus the compiled problem (each site's weights factorized once, on first
    use), reusable across lambdas, bootstrap draws and right-hand sides.

    For p > 4 a single solve uses each unfused site's tridiagonal form and a path or batch its
    eigendecomposition; once a site has the latter, later solves use it too. Results agree to
    rounding either way (about 1e-15 relative), not bit for bit.
    """

    theta_hat: np.ndarray
    W: np.ndarray
    n: np.ndarray
    weights: np.ndarray
    core: _core.FusedProblem

    @property
    def n_sites(self) -> int:
        return self.theta_hat.shape[0]

    @property
    def dim(self) -> int:
        return self.theta_hat.shape[1]

    def estimates(self, theta_hat, name: str = "theta_hat") -> np.ndarray:
        """``theta_hat`` validated against this problem's shape (the fitted estimates when None)."""
        if theta_hat is None:
            return self.theta_hat
        th = as_float_array(theta_hat, name)
        if th.ndim == 1 and self.dim == 1:
            th = th[:, None]
        if th.shape != self.theta_hat.shape:
            raise ArgumentError(name, f"expected shape {self.theta_hat.shape}, got {th.shape}")
        return np.ascontiguousarray(th)

    def lambda_max(self, theta_hat: np.ndarray | None = None) -> float:
        """Smallest lambda at which every site is fused (``penalty="l2"``)."""
        return float(self.core.lambda_max(self.estimates(theta_hat)))

    def pooled(self, theta_hat: np.ndarray | None = None) -> np.ndarray:
        """Inverse-variance (fixed-effect) pooled estimate ``(sum n_k W_k)^-1 sum n_k W_k theta_hat_k``."""
        return np.asarray(self.core.pooled(self.estimates(theta_hat)))


def make_options(penalty: str = "l2", tol: float = 1e-10, max_iter: int = 20000, n_threads: int = 1):
    """Build the core's options struct from keyword options (the one place strings become enums)."""
    check_choice(penalty, "penalty", PENALTIES)
    opt = _core.FusedOptions()
    opt.penalty = getattr(_core.Penalty, penalty)
    opt.tol = check_positive_number(tol, "tol")
    opt.max_iter = check_int_at_least(max_iter, "max_iter")
    opt.n_threads = check_threads(n_threads, "n_threads")
    return opt


def prepare_problem(theta_hat, W, n, weights=None) -> PreparedProblem:
    """Validate inputs and build the compiled problem.

    Parameters
    ----------
    theta_hat : array_like of shape (K, p)
        Site estimates (a 1-d array is read as p = 1).
    W : array_like of shape (K, p, p)
        Symmetric positive definite weight matrices (``(K,)`` is accepted for p = 1).
    n : array_like of shape (K,)
        Positive site sizes (multiply W_k in the loss).
    weights : array_like of shape (K,), optional
        Positive penalty weights ``w_k``; default ``sqrt(n_k)``.
    """
    th = check_array(theta_hat, "theta_hat")
    if th.ndim == 1:
        th = th[:, None]
    if th.ndim != 2:
        raise ArgumentError("theta_hat", f"expected shape (K, p), got {th.shape}")
    K, p = th.shape
    if K == 0:
        raise ArgumentError("theta_hat", "needs at least one site (K = 0)")
    if p == 0:
        raise ArgumentError("theta_hat", "needs at least one coordinate (p = 0)")
    Wa = check_array(W, "W")
    if Wa.ndim == 1 and p == 1:
        Wa = Wa[:, None, None]
    if Wa.shape != (K, p, p):
        raise ArgumentError("W", f"expected shape ({K}, {p}, {p}) to match theta_hat, got {Wa.shape}")
    na = check_array(n, "n", ndim=1)
    if na.shape != (K,):
        raise ArgumentError("n", f"expected shape ({K},), got {na.shape}")
    check_positive(na, "n")
    if weights is None:
        wa = np.sqrt(na)
    else:
        wa = check_array(weights, "weights", ndim=1)
        if wa.shape != (K,):
            raise ArgumentError("weights", f"expected shape ({K},), got {wa.shape}")
        check_positive(wa, "weights")
    th = np.ascontiguousarray(th)
    W_flat = np.ascontiguousarray(Wa).reshape(K, p * p)
    core = _core.FusedProblem(W_flat, np.ascontiguousarray(na), np.ascontiguousarray(wa))
    # The core checks symmetry and definiteness in its own pass over the matrices.
    if core.asymmetric_site >= 0:
        raise ArgumentError("W", f"matrix {core.asymmetric_site} is not symmetric")
    if not core.positive_definite:
        largest = float(np.abs(Wa[core.bad_site]).max()) if core.bad_site >= 0 else None
        raise ValueError(not_pd_message("W", core.bad_site, core.bad_eigenvalue, largest))
    return PreparedProblem(th, np.ascontiguousarray(Wa), na, wa, core)


def check_lambda(lam: float, name: str = "lam") -> float:
    """``lam`` as a float, or an ArgumentError naming ``name`` unless it is a finite non-negative
    number (booleans and strings are refused, not converted)."""
    return check_number(lam, name, low=0)


def solve_prepared(problem: PreparedProblem, lam: float, options, theta_hat=None) -> FusedFit:
    """Solve a prepared problem at one lambda (optionally for another ``theta_hat``)."""
    th = problem.estimates(theta_hat)
    lam = check_lambda(lam)
    out = problem.core.solve(th, lam, options)
    converged = check_fused(out.status, out.kkt, np.array([lam]))
    return FusedFit(
        theta=out.theta[0],
        center=out.center[0],
        fused=out.fused[0],
        lam=lam,
        iterations=int(out.iterations[0]),
        kkt=float(out.kkt[0]),
        converged=bool(converged[0]),
        status=str(status_names(out.status)[0]),
    )


def path_prepared(problem: PreparedProblem, lambdas: np.ndarray, options) -> FusedPath:
    """Solve a prepared problem along a lambda grid with warm starts."""
    out = problem.core.path(problem.theta_hat, [float(x) for x in lambdas], options)
    converged = check_fused(out.status, out.kkt, lambdas)
    return FusedPath(
        lambdas=np.asarray(lambdas, dtype=float),
        theta=out.theta,
        center=out.center,
        fused=out.fused,
        iterations=out.iterations,
        kkt=out.kkt,
        converged=converged,
        lambda_max=problem.lambda_max(),
        status=status_names(out.status),
    )


def solve_batch(problem: PreparedProblem, theta_hats: np.ndarray, lam: float, options) -> _core.FusedFits:
    """Solve the same problem for B right-hand sides ``theta_hats`` of shape (B, K, p) in parallel.

    Returns the core's stacked fits (attributes ``theta`` (B, K, p), ``center`` (B, p), ``fused``,
    ``iterations``, ``kkt`` and ``status`` (B,)).
    """
    draws = as_float_array(theta_hats, "theta_hats")
    K, p = problem.n_sites, problem.dim
    if draws.ndim != 3 or draws.shape[1:] != (K, p):
        raise ArgumentError("theta_hats", f"expected shape (B, {K}, {p}), got {draws.shape}")
    B = draws.shape[0]
    lam = check_lambda(lam)
    flat = np.ascontiguousarray(draws).reshape(B * K, p)
    out = problem.core.solve_batch(flat, lam, options)
    check_fused(out.status, out.kkt, np.full(B, lam))
    return out


# A path keeps every solution and its diagnostics; millions of lambdas would exhaust memory
# (about 5 kB each) long before they could tell anything a few hundred do not.
MAX_PATH_LENGTH = 10_000


def lambda_grid(
    lambda_max: float, n_lambda: int = 50, ratio: float = 1e-4, ratio_name: str = "ratio"
) -> np.ndarray:
    """Log-spaced grid from ``lambda_max`` down to ``ratio * lambda_max`` (decreasing).

    ``ratio_name`` is the caller's name for ``ratio`` in error messages.
    """
    n_lambda = check_int(n_lambda, "n_lambda", minimum=2, maximum=MAX_PATH_LENGTH)
    ratio = check_fraction(ratio, ratio_name)
    top = lambda_max if lambda_max > 0 else 1.0
    return np.geomspace(top, top * ratio, n_lambda)


def fused_solve(
    theta_hat,
    W,
    n,
    lam: float,
    *,
    weights=None,
    penalty: str = "l2",
    tol: float = 1e-10,
    max_iter: int = 20000,
    n_threads: int = 1,
) -> FusedFit:
    """Solve the fused quadratic problem at one penalty level.

    Parameters
    ----------
    theta_hat : array_like of shape (K, p)
        Site estimates.
    W : array_like of shape (K, p, p)
        Symmetric positive definite weight matrices, C- or Fortran-ordered.
    n : array_like of shape (K,)
        Site sizes.
    lam : float
        Penalty level (``>= 0``). ``lam = 0`` returns the site estimates; for ``penalty="l2"``,
        ``lam >= lambda_max`` returns every site at the inverse-variance pooled estimate.
    weights : array_like of shape (K,), optional
        Penalty weights ``w_k`` (default ``sqrt(n_k)``).
    penalty : {"l2", "l2sq"}
        Unsquared (exact fusion, robust center) or squared (ridge shrinkage) penalty.
    tol : float
        Relative KKT tolerance.
    max_iter : int
        Iteration cap; reaching it issues a :class:`ConvergenceWarning` with the residual.
    n_threads : int
        OpenMP threads for the per-site updates.

    Returns
    -------
    FusedFit
    """
    options = make_options(penalty, tol, max_iter, n_threads)
    return solve_prepared(prepare_problem(theta_hat, W, n, weights), lam, options)


def fused_path(
    theta_hat,
    W,
    n,
    lambdas: Sequence[float] | None = None,
    *,
    n_lambda: int = 50,
    lambda_ratio: float = 1e-4,
    weights=None,
    penalty: str = "l2",
    tol: float = 1e-10,
    max_iter: int = 20000,
    n_threads: int = 1,
) -> FusedPath:
    """Solve the fused problem along a lambda grid with warm starts.

    Parameters
    ----------
    theta_hat, W, n, weights, penalty, tol, max_iter, n_threads
        As in :func:`fused_solve`.
    lambdas : sequence of float, optional
        The grid; default a log grid of ``n_lambda`` values from ``lambda_max`` down to
        ``lambda_ratio * lambda_max``.
    n_lambda : int
        Grid size when ``lambdas`` is not given (2 to 10000).
    lambda_ratio : float
        Smallest over largest lambda when ``lambdas`` is not given.

    Returns
    -------
    FusedPath
    """
    options = make_options(penalty, tol, max_iter, n_threads)
    problem = prepare_problem(theta_hat, W, n, weights)
    if lambdas is None:
        grid = lambda_grid(problem.lambda_max(), n_lambda, lambda_ratio, ratio_name="lambda_ratio")
    else:
        grid = check_array(lambdas, "lambdas", ndim=1)
        if grid.size == 0:
            raise ArgumentError("lambdas", "needs at least one value")
        if grid.size > MAX_PATH_LENGTH:
            raise ArgumentError("lambdas", f"at most {MAX_PATH_LENGTH} values, got {grid.size}")
        if np.any(grid < 0):
            raise ArgumentError("lambdas", "all values must be non-negative")
    return path_prepared(problem, grid, options)
