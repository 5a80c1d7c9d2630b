"""Intervals for empirical-Bayes site estimates that account for the estimated prior.

A shrunk site estimate is biased towards the center by an amount that depends on the unknown site
effect, and the prior's parameters (center, tau^2, outlier share) are estimated from the same
data. Wald intervals around the shrunk estimate ignore both. The intervals here are calibrated by
a parametric bootstrap of the *whole procedure* from the fitted prior (Laird and Louis 1987, in the
spirit of the robust empirical-Bayes intervals of Armstrong, Kolesar and Plagborg-Moller 2022,
which also average coverage over the distribution of effects):

1. draw each site's group from its posterior group probability, its effect ``theta*_k`` from that
   group's fitted prior (normal, with the outlying group's scale for outliers), and its estimate
   ``y*_k ~ N(theta*_k, v_k)``;
2. refit everything (the prior and every posterior mean) on ``y*``;
3. the half-width of site k's interval is the ``level`` quantile of ``|theta_hat*_k - theta*_k|``
   over the draws in which site k fell in its own (most probable) group; the center's is the
   quantile of ``|mu* - mu|``.

Intervals are symmetric around the estimate, so each contains its own point estimate. A site in
the outlying group is estimated from its own data, and gets its own DML interval (widened to
contain its estimate when the small remaining shrinkage moved it).

The between-site variance that generates the draws is ``max(tau^2, floor)`` with the floor
``2 sum v_k^2 / (K sum v_k)``, of the order of tau^2's sampling error when tau^2 = 0 (the same
truncation Armstrong et al. use): with a handful of sites, tau^2 is often estimated as 0 when it
is not, and an interval built for tau^2 = 0 exactly would then undercover.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy import stats

from .robust_eb import RobustEBFit, robust_eb


@dataclass(frozen=True)
class EBErrors:
    """Bootstrap errors of a robust EB fit, from which intervals at any level follow.

    Attributes
    ----------
    abs_errors : ndarray of shape (B, n_boot, K)
        ``|theta_hat*_k - theta*_k|`` over the draws in which site k fell in its own group (NaN
        in the others; all draws for a site whose group was never drawn).
    center_abs_errors : ndarray of shape (B, n_boot)
        ``|mu* - mu|``.
    own_group : ndarray of shape (B, K), bool
        True for sites in the normal group (bootstrap-calibrated intervals); False for outliers
        (their own intervals).
    own_se, own_shift : ndarray of shape (B, K)
        Each site's own standard error, and how far its estimate moved from its own estimate.
    """

    abs_errors: np.ndarray
    center_abs_errors: np.ndarray
    own_group: np.ndarray
    own_se: np.ndarray
    own_shift: np.ndarray

    def halfwidths(self, level: float) -> tuple[np.ndarray, np.ndarray]:
        """Half-widths ``(sites (B, K), center (B,))`` of the intervals at ``level``."""
        return eb_halfwidths(self.abs_errors, self.center_abs_errors, self.own_group,
                             self.own_se, self.own_shift, level, axis=1)


def eb_halfwidths(abs_errors, center_abs_errors, own_group, own_se, own_shift, level: float,
                  axis: int) -> tuple[np.ndarray, np.ndarray]:
    """Site half-widths (bootstrap quantile in the normal group; own interval widened to contain
    the estimate for outliers) and the center's, at ``level``; draws run along ``axis``."""
    zq = stats.norm.ppf(0.5 + level / 2)
    boot = np.nanquantile(abs_errors, level, axis=axis)
    half = np.where(own_group, boot, zq * own_se + own_shift)
    return half, np.quantile(center_abs_errors, level, axis=axis)


def tau2_floor(v: np.ndarray) -> np.ndarray:
    """``2 sum v_k^2 / (K sum v_k)`` per row: the smallest tau^2 the draws are generated with."""
    return 2.0 * (v**2).sum(axis=1) / (v.shape[1] * v.sum(axis=1))


def _draw_data(fit: RobustEBFit, v: np.ndarray, n_boot: int, rng: np.random.Generator,
               tau2: np.ndarray):
    """Draw groups, effects and estimates from the fitted prior: arrays of shape (B, n_boot, K)."""
    B, K = v.shape
    slab = rng.random((B, n_boot, K)) < fit.outlier_prob[:, None, :]
    prior_var = tau2[:, None, None] + slab * fit.slab_var[:, None, :]
    theta = fit.mu[:, None, None] + np.sqrt(prior_var) * rng.standard_normal((B, n_boot, K))
    y = theta + np.sqrt(v)[:, None, :] * rng.standard_normal((B, n_boot, K))
    return slab, theta, y


def robust_eb_errors(fit: RobustEBFit, y: np.ndarray, v: np.ndarray, *, n_boot: int,
                     rng: np.random.Generator,
                     refit: Callable[[np.ndarray, np.ndarray], RobustEBFit] | None = None,
                     tau2_gen: np.ndarray | None = None) -> EBErrors:
    """Bootstrap errors of a robust EB fit (see module notes).

    Parameters
    ----------
    fit : RobustEBFit
        The fit of ``y`` (B data sets).
    y, v : ndarray of shape (B, K)
        Site estimates and within-site variances.
    n_boot : int
        Bootstrap draws per data set.
    rng : numpy Generator
    refit : callable, optional
        ``refit(y, v)`` re-runs the procedure on a batch (default :func:`robust_eb` with its
        defaults); it must be the procedure that produced ``fit``.
    tau2_gen : ndarray of shape (B,), optional
        Between-site variance the draws are generated with (default ``max(tau^2, floor)``, see
        the module notes).
    """
    refit = refit or (lambda yy, vv: robust_eb(yy, vv))
    B, K = y.shape
    if tau2_gen is None:
        tau2_gen = np.maximum(fit.tau2, tau2_floor(v))
    slab, theta, y_star = _draw_data(fit, v, n_boot, rng, tau2_gen)
    v_star = np.broadcast_to(v[:, None, :], y_star.shape).reshape(B * n_boot, K)
    boot = refit(y_star.reshape(B * n_boot, K), v_star)
    err = np.abs(boot.estimate.reshape(B, n_boot, K) - theta)
    own_group = fit.outlier_prob < 0.5
    same_group = slab == ~own_group[:, None, :]
    # A site whose group was never drawn (probability near one half, few draws) uses all draws.
    same_group |= ~same_group.any(axis=1, keepdims=True)
    return EBErrors(abs_errors=np.where(same_group, err, np.nan),
                    center_abs_errors=np.abs(boot.mu.reshape(B, n_boot) - fit.mu[:, None]),
                    own_group=own_group, own_se=np.sqrt(v), own_shift=np.abs(fit.estimate - y))
