"""Intervals for empirical-Bayes site estimates that account for the estimated prior.

A shrunk site estimate is biased towards the center by an amount that depends on the unknown site
effect, and the prior's parameters (center, tau^2, outlier share) are estimated from the same
data. Wald intervals around the shrunk estimate ignore both. The intervals here are calibrated by
a parametric bootstrap of the *whole procedure* from the fitted prior (Laird and Louis 1987, in the
spirit of the robust empirical-Bayes intervals of Armstrong, Kolesar and Plagborg-Moller 2022,
which also average coverage over the distribution of effects):

1. draw each site's group from its posterior group probability, its effect ``theta*_k`` from that
   group's fitted prior (normal for the normal group, the outlying group's density for
   outliers, the center itself for the point mass of the three-group model), and its estimate
   ``y*_k ~ N(theta*_k, v_k)``;
2. refit everything (the prior and every posterior mean) on ``y*``;
3. the half-width of site k's interval is the ``level`` quantile of ``|theta_hat*_k - theta*_k|``
   over the draws in which site k fell in its own (most probable) group; the center's is the
   quantile of ``|mu* - mu|``.

For the model-averaged fit (``model_average=True``) the draws are those of the robust model as
above, and the refit is the averaged estimator, so the errors carry the averaging (its pull
towards the pool when the sites are heterogeneous). Drawing the model by its posterior weight
instead (with probability ``w0`` every effect at the center) was tried: the draws then hold
homogeneous data sets in about the share ``w0``, whose small errors shorten the intervals
exactly when the sites differ slightly and ``w0`` is still sizeable (site coverage 0.96 to 0.89
at tau = 0.5 SE with ten sites; see the study in ``docs/studies/late_fusion``).

Intervals are symmetric around the estimate, so each contains its own point estimate. A site in
the outlying group is estimated from its own data, and gets its own DML interval (widened to
contain its estimate when the small remaining shrinkage moved it).

The between-site variance that generates the draws is not the point estimate of tau^2: with ten
or so sites tau^2 is poorly determined (often estimated as 0 when it is not), and an interval
built at the estimate undercovers when it is too small. Each draw instead takes its own tau^2
from the restricted likelihood of the normal group (sites weighted by their probability of
belonging to it), normalized over a grid of tau with a flat prior on tau, the usual
noninformative choice for a hierarchical scale (Gelman 2006). The intervals thus average over
the values of tau^2 the data allow, as a hierarchical Bayes interval does, while the bootstrap of
the whole procedure keeps the point estimate and its outlier screen in the calibration (the
parametric-bootstrap EB intervals of Laird and Louis 1987 with the prior's uncertainty drawn
rather than plugged in).

:mod:`hetmtl.fusion.eb_calibration` corrects the nominal level of these intervals by a double
bootstrap (an option, ``LateFusion(interval_calibration="double")``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy import stats

from .outlying_groups import draw_shift
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

    def center_halfwidth(self, level: float) -> np.ndarray:
        """The center's half-widths (B,) at ``level`` (without the sites')."""
        return center_halfwidth(self.center_abs_errors, level, axis=1)

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
    return half, center_halfwidth(center_abs_errors, level, axis)


def center_halfwidth(center_abs_errors, level: float, axis: int) -> np.ndarray:
    """The center's half-width at ``level``: the quantile of its bootstrap errors along ``axis``."""
    return np.quantile(center_abs_errors, level, axis=axis)


TAU_GRID = 400
# The coarse grid of tau that locates the fine grid's end reaches this many largest within-site
# SEs beyond the estimate's tau, and at least TAU_GRID_SPAN times the estimate: far into the tail
# of the restricted likelihood, also with few sites and a tau of many SEs.
TAU_GRID_REACH = 8.0
TAU_GRID_SPAN = 5.0
# The fine grid ends where the restricted log-likelihood has fallen this far below its maximum
# (a likelihood ratio of about 1e-11), located on a geometric grid of TAU_COARSE points.
TAU_GRID_DROP = 25.0
TAU_COARSE = 64
# Smallest normal-group weight of a site (as in the EM), so that the normal group's mean and
# likelihood exist even when every site looks outlying.
MIN_NORMAL_WEIGHT = 1e-12


def normal_weights(outlier_prob: np.ndarray) -> np.ndarray:
    """Each site's weight in the normal group, ``1 - p_k``, floored at :data:`MIN_NORMAL_WEIGHT`."""
    return np.maximum(1.0 - outlier_prob, MIN_NORMAL_WEIGHT)


def normal_group_reml_loglik(y, v, q, tau2) -> np.ndarray:
    """Restricted log-likelihood of the normal group at each ``tau2`` (shape (B, G)).

    ``y, v, q`` have shape (B, K); ``q`` weights each site by its probability of belonging to the
    normal group (all ones gives the usual REML likelihood of the random-effects model).
    """
    s = v[:, None, :] + tau2[:, :, None]
    w = q[:, None, :] / s
    sw = w.sum(axis=2)
    mu = (w * y[:, None, :]).sum(axis=2) / sw
    resid = (w * (y[:, None, :] - mu[..., None]) ** 2).sum(axis=2)
    return -0.5 * ((q[:, None, :] * np.log(s)).sum(axis=2) + np.log(sw) + resid)


def tau_grid(fit: RobustEBFit, y: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Midpoints ``(B, TAU_GRID)`` of an equally spaced grid of tau from 0 to where the normal
    group's restricted likelihood has fallen :data:`TAU_GRID_DROP` (in logs) below its maximum.

    That point is found on a coarse geometric grid reaching :data:`TAU_GRID_REACH` largest
    within-site SEs past the fitted tau (and at least :data:`TAU_GRID_SPAN` times it). Reading the
    reach off the likelihood, not off the largest SE, keeps the cells fine where the likelihood
    is: a single uninformative site (an SE a hundred times the others') would otherwise stretch
    the grid so far that its first cell already lies beyond the other sites' spread. Where the
    likelihood never falls that far (two sites or fewer in the normal group: flat in tau, the
    posterior improper), the grid ends at the coarse grid's end.
    """
    q = normal_weights(fit.outlier_prob)
    tau = np.sqrt(fit.tau2)
    reach = np.maximum(tau + TAU_GRID_REACH * np.sqrt(v.max(axis=1)), TAU_GRID_SPAN * tau)
    low = 1e-3 * np.sqrt(v.min(axis=1))
    coarse = np.exp(np.linspace(0.0, 1.0, TAU_COARSE)[None, :] * np.log(reach / low)[:, None]) * low[:, None]
    ll = normal_group_reml_loglik(y, v, q, coarse**2)
    kept = ll >= ll.max(axis=1, keepdims=True) - TAU_GRID_DROP
    last = TAU_COARSE - 1 - np.argmax(kept[:, ::-1], axis=1)
    top = coarse[np.arange(y.shape[0]), np.minimum(last + 1, TAU_COARSE - 1)]
    return (np.arange(TAU_GRID) + 0.5)[None, :] * (top / TAU_GRID)[:, None]


def tau_posterior(fit: RobustEBFit, y: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The normal group's restricted likelihood of tau on :func:`tau_grid`, flat in tau,
    normalized: the grid's midpoints ``(B, TAU_GRID)`` and each cell's probability (rows sum to 1).
    """
    mids = tau_grid(fit, y, v)
    ll = normal_group_reml_loglik(y, v, normal_weights(fit.outlier_prob), mids**2)
    prob = np.exp(ll - ll.max(axis=1, keepdims=True))
    return mids, prob / prob.sum(axis=1, keepdims=True)


def draw_tau2(fit: RobustEBFit, y: np.ndarray, v: np.ndarray, n_draws: int,
              rng: np.random.Generator) -> np.ndarray:
    """Draws ``(B, n_draws)`` of tau^2 from the normal group's restricted likelihood, flat in tau
    (:func:`tau_posterior`): a draw picks a grid cell with its probability and a point uniformly
    inside it.
    """
    mids, prob = tau_posterior(fit, y, v)
    step = 2 * mids[:, 0]
    cum = np.cumsum(prob, axis=1)
    # Inverse-CDF sampling of all rows at once: row i's CDF is shifted into [i, i + 1].
    rows = np.arange(y.shape[0])[:, None]
    cdf = (cum / cum[:, -1:] + rows).ravel()
    u = rng.random((y.shape[0], n_draws)) + rows
    cell = np.searchsorted(cdf, u.ravel()).reshape(u.shape) - rows * TAU_GRID
    cell = np.clip(cell, 0, TAU_GRID - 1)
    drawn = (cell + rng.random(cell.shape)) * step[:, None]
    return drawn**2


def _draw_data(fit: RobustEBFit, v: np.ndarray, n_boot: int, rng: np.random.Generator,
               tau2: np.ndarray):
    """Draw groups, effects and estimates from the fitted prior: arrays of shape (B, n_boot, K).

    ``tau2`` (shape (B, n_boot)) is each draw's between-site variance. An outlying site's effect
    is drawn from the fitted outlying group: shifted by ``delta sqrt(v_k + tau^2)`` with ``delta``
    from the non-local density, or (group ``"t"``) normal with the group's variance.
    """
    B, K = v.shape
    shape = (B, n_boot, K)
    u = rng.random(shape)
    slab = u < fit.outlier_prob[:, None, :]
    normal = np.sqrt(tau2[:, :, None]) * rng.standard_normal(shape)
    if fit.spike:
        # The same uniform picks the point mass right after the outlying group.
        at_center = ~slab & (u < (fit.outlier_prob + fit.spike_prob)[:, None, :])
        normal = np.where(at_center, 0.0, normal)
    if fit.outlying_group == "nonlocal":
        spread = np.sqrt(v[:, None, :] + tau2[:, :, None])
        outlying = spread * draw_shift("nonlocal", shape, fit.slab_scale, rng)
    else:
        outlying = (np.sqrt(tau2[:, :, None] + fit.slab_var[:, None, :])
                    * rng.standard_normal(shape))
    theta = fit.mu[:, None, None] + np.where(slab, outlying, normal)
    y = theta + np.sqrt(v)[:, None, :] * rng.standard_normal(shape)
    return slab, theta, y


def default_refit(fit: RobustEBFit) -> Callable[[np.ndarray, np.ndarray], RobustEBFit]:
    """The procedure that produced ``fit``: :func:`robust_eb` with its group, scale and options."""
    averaged = fit.homogeneous_weight is not None
    return lambda yy, vv: robust_eb(yy, vv, outlying_group=fit.outlying_group,
                                    slab_scale=fit.slab_scale, spike=fit.spike,
                                    model_average=averaged)


@dataclass(frozen=True)
class BootstrapWorld:
    """Data sets drawn from a fitted prior and the procedure's refit on them.

    ``slab``, ``theta`` and ``y`` have shape (B, n_boot, K); ``refit`` is the fit of the
    B * n_boot data sets (rows in that order).
    """

    slab: np.ndarray
    theta: np.ndarray
    y: np.ndarray
    refit: RobustEBFit


def bootstrap_world(fit: RobustEBFit, y: np.ndarray, v: np.ndarray, *, n_boot: int,
                    rng: np.random.Generator,
                    refit: Callable[[np.ndarray, np.ndarray], RobustEBFit],
                    tau2_gen: np.ndarray | None = None) -> BootstrapWorld:
    """Steps 1 and 2 of the module notes: draw from the fitted prior, refit every draw."""
    B, K = y.shape
    if tau2_gen is None:
        tau2_gen = draw_tau2(fit, y, v, n_boot, rng)
    tau2_gen = np.broadcast_to(np.asarray(tau2_gen, float).reshape(B, -1), (B, n_boot))
    slab, theta, y_star = _draw_data(fit, v, n_boot, rng, tau2_gen)
    v_star = np.broadcast_to(v[:, None, :], y_star.shape).reshape(B * n_boot, K)
    return BootstrapWorld(slab, theta, y_star, refit(y_star.reshape(B * n_boot, K), v_star))


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
        ``refit(y, v)`` re-runs the procedure on a batch (default :func:`robust_eb` with the
        fit's outlying group and scale); it must be the procedure that produced ``fit``.
    tau2_gen : ndarray of shape (B,) or (B, n_boot), optional
        Between-site variance the draws are generated with (default: drawn by
        :func:`draw_tau2`, see the module notes).
    """
    B, K = y.shape
    world = bootstrap_world(fit, y, v, n_boot=n_boot, rng=rng, refit=refit or default_refit(fit),
                            tau2_gen=tau2_gen)
    err = np.abs(world.refit.estimate.reshape(B, n_boot, K) - world.theta)
    own_group = fit.outlier_prob < 0.5
    same_group = world.slab == ~own_group[:, None, :]
    # A site whose group was never drawn (probability near one half, few draws) uses all draws.
    same_group |= ~same_group.any(axis=1, keepdims=True)
    return EBErrors(abs_errors=np.where(same_group, err, np.nan),
                    center_abs_errors=np.abs(world.refit.mu.reshape(B, n_boot) - fit.mu[:, None]),
                    own_group=own_group, own_se=np.sqrt(v), own_shift=np.abs(fit.estimate - y))
