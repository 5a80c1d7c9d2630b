"""Intervals for the g-modeling site estimates: a bootstrap of the whole procedure from ``G``-hat.

As for robust EB (:mod:`hetmtl.fusion.eb_intervals`), a site's posterior mean is biased towards
the others by an amount that depends on its unknown effect, and ``G`` is estimated from the same
data; the intervals are calibrated by simulating the whole procedure. Each bootstrap draw

1. draws a distribution ``G*`` from the uncertainty of ``G``-hat: the maximum-likelihood ``G`` of
   the observed estimates with the sites weighted by flat Dirichlet weights (the weighted
   likelihood bootstrap of Newton and Raftery 1994, an approximate posterior draw of ``G``);
   plugging in ``G``-hat itself would ignore that with 5-40 sites ``G`` is poorly determined
   (the maximum-likelihood ``G`` is more concentrated than the truth, and intervals built from
   it are too short where the sites differ), the role the drawn tau^2 plays for robust EB;
2. draws each site's effect ``theta*_k`` from its posterior under ``G*`` given its own estimate
   (so a site that looks outlying stays outlying in the draws, and one in the main group stays
   there), and its estimate ``y*_k ~ N(theta*_k, v_k)``;
3. refits everything on ``y*`` (grid, ``G``, posterior means, center).

Site k's half-width is the ``level`` quantile of ``|theta_hat*_k - theta*_k|`` over the draws; the
center's is the quantile of ``|mu* - median(G*)|``. Intervals are symmetric around the estimates,
so every site estimate and the center lie inside their own intervals.
"""

from __future__ import annotations

import numpy as np

from .eb_intervals import EBErrors
from .gmodel_eb import (N_GRID, TOL, GModelFit, fit_standardized, likelihood,
                        posterior_probs, standardize)


# Rows per block of the posterior draws, so that one block's (rows, K, n_grid) array holds about
# this many numbers.
BLOCK_SIZE = 2_000_000


def draw_posterior(z, w, grid, g, rng: np.random.Generator) -> np.ndarray:
    """One effect per (row, site) drawn from the site's posterior over the grid under the
    weights ``g`` (R, M): grid values of shape (R, K). Rows are processed in blocks."""
    R, K = z.shape
    u = rng.random((R, K))
    idx = np.empty((R, K), dtype=int)
    step = max(1, BLOCK_SIZE // (K * grid.shape[1]))
    for start in range(0, R, step):
        rows = slice(start, start + step)
        cdf = np.cumsum(posterior_probs(likelihood(z[rows], w[rows], grid[rows]), g[rows]), axis=2)
        idx[rows] = (cdf < (u[rows] * cdf[:, :, -1])[:, :, None]).sum(axis=2)
    return np.take_along_axis(grid, np.minimum(idx, grid.shape[1] - 1), axis=1)


def gmodel_errors(fit: GModelFit, y: np.ndarray, v: np.ndarray, *, n_boot: int,
                  rng: np.random.Generator, n_grid: int = N_GRID, tol: float = TOL,
                  max_iter: int = 1000) -> EBErrors:
    """Bootstrap errors of a g-modeling fit (see module notes).

    Parameters
    ----------
    fit : GModelFit
        The fit of ``y`` (B data sets), from :func:`~hetmtl.fusion.gmodel_eb.gmodel_eb` with the
        same ``n_grid``, ``tol`` and ``max_iter``.
    y, v : ndarray of shape (B, K)
        Site estimates and within-site variances.
    n_boot : int
        Bootstrap draws per data set.
    rng : numpy Generator

    Returns
    -------
    EBErrors
        Errors of every draw for every site (all sites calibrated by the bootstrap).
    """
    B, K = y.shape
    z, w, _, scale = standardize(y, v)
    rep = lambda a: np.repeat(a, n_boot, axis=0)  # noqa: E731 - (B, ...) -> (B * n_boot, ...)
    z_r, w_r = rep(z), rep(w)
    site_w = rng.dirichlet(np.ones(K), size=B * n_boot)
    grid, g_star, _, mu_star, _, _ = fit_standardized(z_r, w_r, site_w, n_grid=n_grid, tol=tol,
                                                      max_iter=max_iter)
    theta = draw_posterior(z_r, w_r, grid, g_star, rng)
    y_star = theta + np.sqrt(w_r) * rng.standard_normal((B * n_boot, K))
    zs, ws, loc, sc = standardize(y_star, w_r)
    _, _, est, mu, _, _ = fit_standardized(zs, ws, n_grid=n_grid, tol=tol, max_iter=max_iter)
    est, mu = loc[:, None] + sc[:, None] * est, loc + sc * mu
    s = scale[:, None, None]
    err = s * np.abs(est - theta).reshape(B, n_boot, K)
    center_err = scale[:, None] * np.abs(mu - mu_star).reshape(B, n_boot)
    return EBErrors(abs_errors=err, center_abs_errors=center_err,
                    own_group=np.ones((B, K), bool), own_se=np.sqrt(v),
                    own_shift=np.abs(fit.estimate - y))
