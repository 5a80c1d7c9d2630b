"""Inference for fused estimates.

Two routes, both summary-level:

- ``"bootstrap"``: parametric bootstrap from the fitted model. Draw
  ``theta_hat_k* ~ N(theta_tilde_k, V_k)`` independently per site around the *fused* estimates,
  re-solve the fused problem at the chosen lambda (all draws in one parallel call to the compiled
  core), and report the standard deviation and the basic (pivotal) interval
  ``[2 theta_tilde - q_hi, 2 theta_tilde - q_lo]`` of each fused estimate and of the center.
  Why not percentile intervals of draws around the raw estimates: an unfused site's fused
  estimate is its own estimate moved toward the center by ``lam w_k (n_k W_k)^-1 s_k`` (the
  penalty's subgradient), a shift of the order of a standard error when lambda fuses other sites;
  percentile intervals inherit it, and unfused outlying sites were covered about 83% of the time
  instead of 95% in simulation. The pivot ``theta** - theta_tilde`` carries the same shift, so the
  basic interval removes it, while a site fused into the center keeps the center's precision.
  Approximate at the penalty's kink (a site on the edge of fusing), and optimistic for fused sites
  whose true values differ a little from the center: the interval does not include that bias.
- ``"conditional"``: for a site fused into the center, the GLS variance of the center pooled over
  the fused sites, ``(sum_{k fused} n_k W_k)^-1`` with precision weights. Conditional on the
  fusion pattern an unfused site is estimated from its own data alone: its interval is its own
  Wald interval (the fused estimate plus the penalty shift is exactly the site's estimate). The
  fusion pattern was chosen from the same data, so this is optimistic near the kink.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from scipy import stats

from .._util.validation import check_fraction
from .eb_calibration import LevelCalibration, halfwidths_at
from .eb_intervals import EBErrors, center_halfwidth, eb_halfwidths
from .eb_posterior import SitePosterior
from .fused import PreparedProblem, solve_batch

INFERENCE = ("bootstrap", "conditional", "none")


@dataclass(frozen=True)
class FusedInference:
    """Standard errors and intervals of fused site estimates and of the center.

    Attributes
    ----------
    se : ndarray of shape (K, p)
    lower, upper : ndarray of shape (K, p)
    center_se : ndarray of shape (p,)
    center_lower, center_upper : ndarray of shape (p,)
    method : str
    level : float
    fused_frequency : ndarray of shape (K,) or None
        Share of bootstrap draws in which each site was fused (bootstrap only).
    """

    se: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    center_se: np.ndarray
    center_lower: np.ndarray
    center_upper: np.ndarray
    method: str
    level: float
    fused_frequency: np.ndarray | None = None
    theta_draws: np.ndarray | None = None
    center_draws: np.ndarray | None = None
    theta: np.ndarray | None = None    # point each site's interval is built around
    center: np.ndarray | None = None
    # Empirical-Bayes bootstrap (method "eb_bootstrap"): |error| draws per site, NaN where a draw
    # put the site in the other group, and the half-width rule for sites kept on their own.
    abs_errors: np.ndarray | None = None         # (n_boot, K, p)
    center_abs_errors: np.ndarray | None = None  # (n_boot, p)
    own_group: np.ndarray | None = None          # (K, p), bool
    own_se: np.ndarray | None = None             # (K, p)
    own_shift: np.ndarray | None = None          # (K, p): |estimate - own estimate|
    # Double-bootstrap level calibration (rows = coefficients); None: nominal levels.
    calibration: "LevelCalibration | None" = None
    # Posterior site intervals (method "eb_posterior"; the center's interval is the bootstrap's):
    # what the sites' posteriors are computed from, one batch row per coefficient.
    site_posterior: "SitePosterior | None" = None
    # Method "wald": degrees of freedom of t quantiles, one per coefficient (p,) (the
    # Knapp-Hartung BLUP); None: normal quantiles.
    df: np.ndarray | None = None

    def at_level(self, level: float) -> "FusedInference":
        """The same inference with intervals at another confidence level."""
        check_fraction(level, "level")
        if self.method == "bootstrap":
            lo, hi = _basic_interval(self.theta, self.theta_draws, level)
            clo, chi = _basic_interval(self.center, self.center_draws, level)
        elif self.method == "eb_bootstrap" and self.calibration is not None:
            errs = EBErrors(self.abs_errors.transpose(2, 0, 1), self.center_abs_errors.T,
                            self.own_group.T, self.own_se.T, self.own_shift.T)
            half, center_half = halfwidths_at(errs, *self.calibration.calibrated(level), level)
            lo, hi = self.theta - half.T, self.theta + half.T
            clo, chi = self.center - center_half, self.center + center_half
        elif self.method == "eb_posterior":
            center_half = center_halfwidth(self.center_abs_errors, level, axis=0)
            lower, upper = self.site_posterior.interval(level)
            lo, hi = lower.T, upper.T
            clo, chi = self.center - center_half, self.center + center_half
        elif self.method == "eb_bootstrap":
            half, center_half = eb_halfwidths(self.abs_errors, self.center_abs_errors,
                                              self.own_group, self.own_se, self.own_shift, level,
                                              axis=0)
            lo, hi = self.theta - half, self.theta + half
            clo, chi = self.center - center_half, self.center + center_half
        else:
            zq = wald_quantile(level, self.df)
            lo, hi = self.theta - zq * self.se, self.theta + zq * self.se
            clo, chi = self.center - zq * self.center_se, self.center + zq * self.center_se
        return replace(self, lower=lo, upper=hi, center_lower=clo, center_upper=chi, level=level)


def wald_quantile(level: float, df: np.ndarray | None = None) -> np.ndarray | float:
    """The two-sided ``level`` quantile of a Wald interval: normal, or t with ``df`` degrees of
    freedom (one per coefficient)."""
    if df is None:
        return stats.norm.ppf(0.5 + level / 2)
    return stats.t.ppf(0.5 + level / 2, np.asarray(df, float))


def _basic_interval(point: np.ndarray, draws: np.ndarray, level: float):
    """Basic bootstrap interval: the law of ``draw - point`` stands in for ``point - truth``.

    When the draws are shifted away from ``point`` (near the penalty's kink, or when outliers
    at large sites move the bootstrap center), the reflected interval can miss the point itself;
    it is then widened to reach it, so an interval always contains its own estimate.
    """
    alpha = 1.0 - level
    q_lo, q_hi = np.quantile(draws, [alpha / 2, 1 - alpha / 2], axis=0)
    return np.minimum(2 * point - q_hi, point), np.maximum(2 * point - q_lo, point)


def bootstrap_inference(problem: PreparedProblem, covs: np.ndarray, theta: np.ndarray,
                        center: np.ndarray, lam: float, options, *, n_boot: int, level: float,
                        rng: np.random.Generator) -> FusedInference:
    """Parametric bootstrap around the fused solution ``theta`` at ``lam`` (see module notes)."""
    K, p = problem.theta_hat.shape
    chol = np.linalg.cholesky(covs)                                   # (K, p, p)
    z = rng.standard_normal((n_boot, K, p))
    draws = theta[None] + np.einsum("kij,bkj->bki", chol, z)
    out = solve_batch(problem, draws, lam, options)
    theta_b, center_b = out.theta, out.center
    lo, hi = _basic_interval(theta, theta_b, level)
    clo, chi = _basic_interval(center, center_b, level)
    return FusedInference(
        se=theta_b.std(axis=0, ddof=1), lower=lo, upper=hi,
        center_se=center_b.std(axis=0, ddof=1), center_lower=clo, center_upper=chi,
        method="bootstrap", level=level, fused_frequency=out.fused.mean(axis=0),
        theta_draws=theta_b, center_draws=center_b, theta=theta, center=center,
    )


def conditional_inference(problem: PreparedProblem, covs: np.ndarray, theta: np.ndarray,
                          center: np.ndarray, fused: np.ndarray, level: float) -> FusedInference:
    """GLS variance for fused sites, own estimate and variance otherwise (see module notes)."""
    A = problem.W * problem.n[:, None, None]
    if np.any(fused):
        center_cov = np.linalg.inv(A[fused].sum(axis=0))
    else:
        center_cov = np.linalg.inv(A.sum(axis=0))
    site_var = np.diagonal(covs, axis1=1, axis2=2).copy()
    site_var[fused] = np.diag(center_cov)
    se = np.sqrt(site_var)
    center_se = np.sqrt(np.diag(center_cov))
    middle = np.where(fused[:, None], theta, problem.theta_hat)
    zq = stats.norm.ppf(0.5 + level / 2)
    return FusedInference(
        se=se, lower=middle - zq * se, upper=middle + zq * se,
        center_se=center_se, center_lower=center - zq * center_se, center_upper=center + zq * center_se,
        method="conditional", level=level, theta=middle, center=center,
    )
