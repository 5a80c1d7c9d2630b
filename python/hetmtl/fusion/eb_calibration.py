"""Level calibration of the robust EB bootstrap intervals by a double (iterated) bootstrap.

The intervals of :mod:`hetmtl.fusion.eb_intervals` take the ``level`` quantile of the bootstrap
errors. Their actual coverage differs from ``level`` because the fitted prior is not the true one
(tau^2 and the outlier share are estimated from ten or so sites). The double bootstrap estimates
that coverage error in the fitted model's world and corrects the nominal level for it (Hall 1986;
Beran 1987; Hall and Martin 1988):

1. draw ``n_outer`` data sets ``(theta*, y*)`` from the fitted prior exactly as the intervals do
   (tau^2 drawn per draw from the normal group's restricted likelihood), and refit on each;
2. from each refit, run the interval procedure itself (``n_inner`` draws) and read its
   half-widths at every level of a grid;
3. the coverage of the procedure at level ``l`` is the share of outer draws in which
   ``theta*_k`` lies in its inner interval, pooled over the sites of the normal group (sites whose
   outer draw put them in the outlying group are left out, as in the intervals themselves);
   the center's coverage is that of ``mu`` (the outer world's center) by the inner center
   interval;
4. the calibrated level is where that coverage curve reaches the target (linear interpolation on
   the grid, clamped to its ends), and the reported interval is the bootstrap quantile at the
   calibrated level.

Coverage is pooled over the normal group's sites rather than estimated per site: with ``n_outer``
draws a per-site estimate of a 95% coverage has a Monte-Carlo error of sqrt(0.05 * 0.95 /
n_outer) (0.03 at 50 draws), about the size of the correction sought, while the pooled one
averages over the sites too. The target is then average coverage over the normal group's sites,
the same average the intervals are built for. Sites classified as outliers keep their own
interval at the nominal level (it is a Wald interval from the site's own data). The inner
intervals use ``n_inner`` draws, fewer than the outer ``n_boot``; a quantile from fewer draws is
noisier and slightly undercovers, so the calibrated level errs to the conservative side.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy import stats

from .eb_intervals import EBErrors, bootstrap_world, default_refit, robust_eb_errors
from .robust_eb import RobustEBFit

# Nominal levels at which the inner intervals' coverage is evaluated.
CALIBRATION_LEVELS = np.array([0.80, 0.85, 0.90, 0.925, 0.94, 0.95, 0.96, 0.97, 0.98, 0.99,
                               0.995])
N_OUTER = 50
N_INNER = 100


def sorted_quantiles(sorted_values: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """Quantiles (linear interpolation, NaN ignored) along the last axis of an array sorted there
    with NaN last; ``levels`` broadcasts against the other axes (shape ``(..., 1)`` dropped)."""
    n = np.sum(~np.isnan(sorted_values), axis=-1)
    pos = np.asarray(levels) * np.maximum(n - 1, 0)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, np.maximum(n - 1, 0))
    frac = pos - lo
    take = lambda i: np.take_along_axis(sorted_values, i[..., None], axis=-1)[..., 0]  # noqa: E731
    out = take(lo) * (1 - frac) + take(hi) * frac
    return np.where(n > 0, out, np.nan)


def halfwidths_at(errs: EBErrors, site_level, center_level, level
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Half-widths ``(sites (..., B, K), center (..., B))`` with the bootstrap quantile of each data
    set at its own level (``site_level``, ``center_level``: shape (B,), or (L, B) for several
    levels at once); sites in the outlying group keep their own interval at ``level`` (a number,
    or an array broadcasting against (..., B, K))."""
    site_level = np.asarray(site_level, float)
    lead = (None,) * (site_level.ndim - 1)  # leading level axes, broadcast over the draws
    boot = sorted_quantiles(np.sort(np.moveaxis(errs.abs_errors, 1, -1), axis=-1)[lead],
                            site_level[..., None])
    zq = stats.norm.ppf(0.5 + np.asarray(level, float) / 2)
    half = np.where(errs.own_group, boot, zq * errs.own_se + errs.own_shift)
    center = sorted_quantiles(np.sort(errs.center_abs_errors, axis=-1)[lead],
                              np.asarray(center_level, float))
    return half, center


def level_for(coverage: np.ndarray, levels: np.ndarray, target: float) -> np.ndarray:
    """The nominal level (per row of ``coverage``, shape (B, L), nondecreasing along L) whose
    coverage is ``target``: linear interpolation between grid levels, clamped to the grid's ends.
    Rows without any coverage estimate (NaN) get ``target``."""
    reached = coverage >= target
    j = np.where(reached.any(axis=1), reached.argmax(axis=1), len(levels) - 1)
    prev = np.maximum(j - 1, 0)
    rows = np.arange(coverage.shape[0])
    c_hi, c_lo = coverage[rows, j], coverage[rows, prev]
    gap = np.where(c_hi > c_lo, c_hi - c_lo, 1.0)
    frac = np.clip((target - c_lo) / gap, 0.0, 1.0)
    out = np.where(j == 0, levels[0], levels[prev] + frac * (levels[j] - levels[prev]))
    out = np.where(reached.any(axis=1), out, levels[-1])
    return np.where(np.isnan(coverage).any(axis=1), target, out)


def coverage_curves(site_err: np.ndarray, site_mask: np.ndarray, site_half: np.ndarray,
                    center_err: np.ndarray, center_half: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Coverage ``(sites (B, L), center (B, L))`` of inner intervals over outer draws.

    ``site_err``, ``site_mask``: (B, n_outer, K), the outer errors and which of them count;
    ``site_half``: (L, B, n_outer, K) inner half-widths per level; ``center_err``: (B, n_outer),
    ``center_half``: (L, B, n_outer).
    """
    covered = (site_err[None] <= site_half) & site_mask[None]
    n = site_mask.sum(axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        sites = covered.sum(axis=(2, 3)).T / n[:, None]
    center = (center_err[None] <= center_half).mean(axis=2).T
    return sites, center


@dataclass(frozen=True)
class LevelCalibration:
    """Coverage curves of the interval procedure in the fitted model's world.

    Attributes
    ----------
    levels : ndarray of shape (L,)
        Nominal levels evaluated.
    site_coverage, center_coverage : ndarray of shape (B, L)
        Coverage at each level, pooled over the normal group's sites, and of the center (NaN
        for sites when no normal-group site was drawn normal).
    """

    levels: np.ndarray
    site_coverage: np.ndarray
    center_coverage: np.ndarray

    def calibrated(self, target: float) -> tuple[np.ndarray, np.ndarray]:
        """Nominal levels ``(sites (B,), center (B,))`` whose coverage is ``target``."""
        return (level_for(self.site_coverage, self.levels, target),
                level_for(self.center_coverage, self.levels, target))


def _inner_halfwidths(errs: EBErrors, levels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Half-widths at every level: sites (L, B, K), center (L, B); one sort for all levels."""
    per_level = np.broadcast_to(levels[:, None], (len(levels), errs.own_group.shape[0]))
    return halfwidths_at(errs, per_level, per_level, levels[:, None, None])


def calibrate_levels(fit: RobustEBFit, y: np.ndarray, v: np.ndarray, *,
                     rng: np.random.Generator,
                     refit: Callable[[np.ndarray, np.ndarray], RobustEBFit] | None = None,
                     n_outer: int = N_OUTER, n_inner: int = N_INNER,
                     levels: np.ndarray = CALIBRATION_LEVELS) -> LevelCalibration:
    """Coverage curves of the robust EB intervals by a double bootstrap (see module notes).

    Parameters
    ----------
    fit, y, v, rng, refit
        As for :func:`~.eb_intervals.robust_eb_errors`.
    n_outer, n_inner : int
        Outer data sets per data set, and inner bootstrap draws per outer data set.
    levels : ndarray
        Increasing nominal levels at which coverage is evaluated.

    Returns
    -------
    LevelCalibration
    """
    refit = refit or default_refit(fit)
    levels = np.asarray(levels, float)
    B, K = y.shape
    world = bootstrap_world(fit, y, v, n_boot=n_outer, rng=rng, refit=refit)
    v_out = np.repeat(v, n_outer, axis=0)
    inner = robust_eb_errors(world.refit, world.y.reshape(B * n_outer, K), v_out,
                             n_boot=n_inner, rng=rng, refit=refit)
    half, center_half = _inner_halfwidths(inner, levels)
    site_err = np.abs(world.refit.estimate.reshape(B, n_outer, K) - world.theta)
    center_err = np.abs(world.refit.mu.reshape(B, n_outer) - fit.mu[:, None])
    own_group = fit.outlier_prob < 0.5
    mask = own_group[:, None, :] & ~world.slab
    sites, center = coverage_curves(site_err, mask, half.reshape(len(levels), B, n_outer, K),
                                    center_err, center_half.reshape(len(levels), B, n_outer))
    return LevelCalibration(levels, sites, center)


def calibrated_halfwidths(fit: RobustEBFit, y: np.ndarray, v: np.ndarray, errs: EBErrors,
                          level: float, *, rng: np.random.Generator,
                          refit: Callable[[np.ndarray, np.ndarray], RobustEBFit] | None = None,
                          n_outer: int = N_OUTER, n_inner: int = N_INNER
                          ) -> tuple[np.ndarray, np.ndarray, LevelCalibration]:
    """Half-widths ``(sites (B, K), center (B,))`` of the intervals from ``errs`` at the levels
    calibrated to cover ``level``, and the calibration behind them."""
    cal = calibrate_levels(fit, y, v, rng=rng, refit=refit, n_outer=n_outer, n_inner=n_inner)
    site_level, center_level = cal.calibrated(level)
    half, center = halfwidths_at(errs, site_level, center_level, level)
    return half, center, cal
