"""Nonparametric empirical Bayes (g-modeling): posterior means under an estimated distribution of
the site effects.

The site effects are treated as draws from an unknown distribution ``G``::

    theta_k ~ G,    y_k | theta_k ~ N(theta_k, v_k),

and ``G`` is estimated by nonparametric maximum likelihood (Kiefer and Wolfowitz 1956) on a fixed
grid of support points, as in the general maximum-likelihood empirical Bayes rule of Jiang and
Zhang (2009) and the convex formulation of Koenker and Mizera (2014), with each site's own
variance (heteroscedastic). Each site's estimate is its posterior mean under ``G``-hat. No shape
is imposed on ``G``: agreeing sites can sit in one atom (a point mass) while outlying sites get
atoms of their own, which is the structure the oracle Bayes rules of the late-fusion study
exploit and the normal-plus-slab model of :mod:`hetmtl.fusion.robust_eb` cannot express.

Computation. Everything is done in standardized units: the estimates minus their median, divided
by the typical standard error ``sqrt(mean v_k)``, so that no result depends on the outcome's units
or location. The grid has ``n_grid`` equally spaced points from the smallest to the largest
standardized estimate (the maximum-likelihood ``G`` of a normal location mixture puts no mass
outside the range of the data). The weights are fitted by the EM fixed point
``g_j <- g_j sum_k w_k L_kj / f_k`` (``f_k = sum_j g_j L_kj``, ``w_k`` site weights summing to
one), accelerated by SQUAREM (Varadhan and Roland 2008) with a likelihood safeguard, and
followed in every iteration by a vertex-direction and a vertex-exchange step with exact line
searches (Boehning 1986), which move mass to grid points where EM's multiplicative update is
slow. The EM multiplier ``D_j = sum_k w_k L_kj / f_k`` is the gradient of the average
log-likelihood: at the maximum ``D_j <= 1`` on the whole grid with equality on the support (the
KKT conditions), and the average log-likelihood is within ``max_j D_j - 1`` of its maximum, so
iterations stop when that gap falls below ``tol``. Batched over a leading axis (replications, bootstrap draws): the
iterations run in the compiled core (``csrc/src/npmle.cpp``), one data set after the other
without any array over the whole batch.

The center is the median of ``G``-hat (each grid atom's mass spread evenly over its grid cell,
so that the median moves continuously with the weights). With fewer than half of the sites
outlying it lies in the main (agreeing) part of the distribution; it is the median of the
estimated effect distribution, not a mean that outliers would pull.

Few sites. With one site (or all estimates equal) the grid collapses to one point, ``G``-hat is
a point mass at the estimate and the site keeps its own estimate. With two sites the estimate is
the maximum-likelihood ``G`` as well: one atom (pooling) when the two agree within about two
standard errors, two atoms near their own estimates otherwise; nothing about the shape of ``G``
can be learned from two sites, and no smoothing is added.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import _core
from .._util.validation import ArgumentError, check_array, check_int, check_positive_number
from .blup import as_batch

N_GRID = 50
# Stop when the average log-likelihood is within this of its maximum (per site, in nats).
TOL = 1e-3


@dataclass(frozen=True)
class GModelFit:
    """Nonparametric maximum-likelihood fits of a batch of data sets (leading axis B).

    Attributes
    ----------
    grid : ndarray of shape (B, n_grid)
        Support points of ``G``-hat, in the units of the estimates.
    weights : ndarray of shape (B, n_grid)
        Mass of ``G``-hat on each support point.
    estimate : ndarray of shape (B, K)
        Posterior means of the site effects.
    mu : ndarray of shape (B,)
        Center: the median of ``G``-hat (see module notes).
    kkt_gap : ndarray of shape (B,)
        ``max_j D_j - 1`` at the returned weights: the average log-likelihood is within this of
        its maximum over all distributions on the grid.
    iterations : ndarray of shape (B,)
        Accelerated EM iterations used.
    location, scale : ndarray of shape (B,)
        The standardization: ``(y - location) / scale`` are the units the fit worked in.
    """

    grid: np.ndarray
    weights: np.ndarray
    estimate: np.ndarray
    mu: np.ndarray
    kkt_gap: np.ndarray
    iterations: np.ndarray
    location: np.ndarray
    scale: np.ndarray


def check_sites(y, v) -> tuple[np.ndarray, np.ndarray]:
    """Site estimates and variances as float arrays of shape (B, K): finite, variances positive."""
    y = check_array(y, "y", min_size=1)
    if y.ndim not in (1, 2):
        raise ArgumentError("y", f"expected shape (K,) or (B, K), got {y.shape}")
    v = check_array(v, "v", min_size=1)
    try:
        y2, v2, _ = as_batch(y, v)
    except ValueError:
        raise ArgumentError("v", f"shape {v.shape} does not match the estimates' "
                                 f"{y.shape}") from None
    if np.any(v2 <= 0):
        raise ArgumentError("v", f"variances must be positive, got {v2[v2 <= 0].ravel()[0]!r}")
    return y2, v2


def standardize(y: np.ndarray, v: np.ndarray):
    """``(z, w, location, scale)``: estimates and variances in units of the typical standard error,
    centered at the median estimate."""
    location = np.median(y, axis=1)
    scale = np.sqrt(v.mean(axis=1))
    return (y - location[:, None]) / scale[:, None], v / scale[:, None] ** 2, location, scale


def make_grid(z: np.ndarray, n_grid: int) -> np.ndarray:
    """``n_grid`` equally spaced points from each row's smallest to its largest value."""
    lo, hi = z.min(axis=1), z.max(axis=1)
    return lo[:, None] + (hi - lo)[:, None] * np.linspace(0.0, 1.0, n_grid)


def likelihood(z: np.ndarray, w: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """``L_kj``, the normal density of site k's estimate at grid point j, shape (B, K, n_grid),
    each site's row divided by its maximum (the EM, the gap and the posteriors do not depend on
    a per-site factor)."""
    d = (z[:, :, None] - grid[:, None, :]) ** 2 / w[:, :, None]
    return np.exp(-0.5 * (d - d.min(axis=2, keepdims=True)))


def gradient(L: np.ndarray, g: np.ndarray, site_w: np.ndarray) -> np.ndarray:
    """``D_j = sum_k w_k L_kj / f_k`` with ``f_k = sum_j g_j L_kj``, shape (B, n_grid): the
    gradient of the weighted average log-likelihood (``<= 1`` everywhere at the maximum, ``= 1``
    on the support)."""
    f = np.maximum(np.einsum("bkm,bm->bk", L, g), 1e-300)
    return np.einsum("bkm,bk->bm", L, site_w / f)


def posterior_probs(L: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Posterior probabilities of each site's effect over the grid, shape (B, K, M)."""
    post = L * g[:, None, :]
    return post / np.maximum(post.sum(axis=2, keepdims=True), 1e-300)


def grid_median(grid: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Median of the distribution with mass ``g_j`` spread evenly over the cell of width ``h``
    around grid point j (row-wise)."""
    h = grid[:, 1] - grid[:, 0] if grid.shape[1] > 1 else np.zeros(grid.shape[0])
    cdf = np.cumsum(g, axis=1)
    rows = np.arange(g.shape[0])
    j = np.minimum((cdf < 0.5).sum(axis=1), g.shape[1] - 1)
    below = cdf[rows, j] - g[rows, j]
    frac = np.clip((0.5 - below) / np.maximum(g[rows, j], 1e-300), 0.0, 1.0)
    return grid[rows, j] + h * (frac - 0.5)


def fit_standardized(z: np.ndarray, w: np.ndarray, site_w: np.ndarray | None = None, *,
                     n_grid: int = N_GRID, tol: float = TOL, max_iter: int = 1000):
    """Fit on standardized estimates ``z`` with variances ``w`` (B, K), optionally with site
    weights ``site_w`` (rows summing to one; default equal). Returns ``(grid, weights, estimate,
    center, gap, iterations)`` in the units of ``z``. The iterations run in the compiled core, one
    data set at a time (the algorithm of the module notes)."""
    B, K = z.shape
    if site_w is None:
        site_w = np.full((B, K), 1.0 / K)
    grid = make_grid(z, n_grid)
    g, est, gap, iters = _core.npmle_fit(*(np.ascontiguousarray(a, dtype=float)
                                           for a in (z, w, site_w, grid)), tol, max_iter)
    return grid, g, est, grid_median(grid, g), gap, iters


def gmodel_eb(y, v, *, n_grid: int = N_GRID, tol: float = TOL, max_iter: int = 1000) -> GModelFit:
    """Estimate the effect distribution by nonparametric maximum likelihood and return posterior
    means (see module notes).

    Parameters
    ----------
    y, v : array_like of shape (B, K) or (K,)
        Site estimates and within-site variances (positive); ``v`` may broadcast against ``y``.
    n_grid : int, default 50
        Support points of the grid (at least 2).
    tol : float, default 1e-3
        Stop when the average log-likelihood is provably within ``tol`` of its maximum
        (``max_j D_j - 1 <= tol``, see module notes).
    max_iter : int, default 1000
        Cap on accelerated EM iterations (each costs three EM steps).

    Returns
    -------
    GModelFit
    """
    check_int(n_grid, "n_grid", minimum=2)
    check_positive_number(tol, "tol")
    check_int(max_iter, "max_iter", minimum=1)
    y, v = check_sites(y, v)
    z, w, location, scale = standardize(y, v)
    grid, g, est, mu, gap, iters = fit_standardized(z, w, n_grid=n_grid, tol=tol,
                                                    max_iter=max_iter)
    s = scale[:, None]
    return GModelFit(grid=location[:, None] + s * grid, weights=g,
                     estimate=location[:, None] + s * est, mu=location + scale * mu,
                     kkt_gap=gap, iterations=iters, location=location, scale=scale)
