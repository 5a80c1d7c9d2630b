"""The non-penalized methods of :class:`~hetmtl.fusion.late_fusion.LateFusion`.

All work from each site's estimate and covariance alone (no fold summaries needed):

- ``"robust_eb"``: robust empirical Bayes (:mod:`hetmtl.fusion.robust_eb`); the center's interval
  by the bootstrap of the whole procedure (:mod:`hetmtl.fusion.eb_intervals`), the sites' from
  their posterior with tau and the center integrated out (:mod:`hetmtl.fusion.eb_posterior`;
  by default where the model allows it) or by that bootstrap; neither gives a standard error
  (NaN in the tables);
- ``"gmodel_eb"``: nonparametric empirical Bayes (:mod:`hetmtl.fusion.gmodel_eb`): posterior
  means under the maximum-likelihood distribution of the site effects, intervals by the
  bootstrap of the whole procedure (:mod:`hetmtl.fusion.gmodel_intervals`), no standard errors;
- ``"blup"``: random-effects BLUP (:mod:`hetmtl.fusion.blup`) with metafor's prediction
  intervals, and the random-effects interval for the center;
- ``"fixed"``: fixed-effect (GLS) pooling, every site gets the pooled estimate;
- ``"own"``: every site keeps its own estimate; the center is the fixed-effect pool.

``robust_eb``, ``gmodel_eb`` and ``blup`` treat each coefficient separately (its estimates and
marginal variances), as a univariate meta-analysis per coefficient does.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .blup import knapp_hartung, random_effects
from .eb_calibration import LevelCalibration, calibrate_levels, halfwidths_at
from .eb_intervals import EBErrors, robust_eb_errors
from .eb_posterior import SitePosterior, model_blocker, site_posterior
from .gmodel_eb import gmodel_eb
from .gmodel_intervals import gmodel_errors
from .inference import FusedInference, wald_quantile
from .robust_eb import robust_eb

SUMMARY_METHODS = ("robust_eb", "gmodel_eb", "blup", "fixed", "own")
# Every method of LateFusion: the summary methods and the penalized late fusion.
METHODS = SUMMARY_METHODS + ("fusion",)
# Level calibration of robust EB's intervals: none, or the double bootstrap
# (:mod:`hetmtl.fusion.eb_calibration`).
INTERVAL_CALIBRATIONS = ("none", "double")
# Robust EB's site intervals: from each site's posterior (tau and the center integrated out), or
# the bootstrap's.
SITE_INTERVALS = ("posterior", "bootstrap")


def posterior_sites_blocker(outlying_group: str, spike: bool, model_average: bool,
                            interval_calibration: str) -> str | None:
    """Why robust EB's site intervals cannot come from the posterior mixture (None: they can)."""
    blocker = model_blocker(outlying_group, spike, model_average)
    if blocker is not None:
        return blocker
    if interval_calibration != "none":
        return f"interval_calibration={interval_calibration!r} (a calibration of the bootstrap)"
    return None


@dataclass(frozen=True)
class SummaryFit:
    """Site estimates, center, pooled-group mask, inference and per-coefficient details."""

    theta: np.ndarray             # (K, p)
    center: np.ndarray            # (p,)
    fused: np.ndarray             # (K,), bool: site estimate equals the center / in the pooled group
    inference: FusedInference | None
    details: dict = field(default_factory=dict)


def _wald(theta, se, center, center_se, level: float, df: np.ndarray | None = None) -> FusedInference:
    zq = wald_quantile(level, df)
    return FusedInference(se=se, lower=theta - zq * se, upper=theta + zq * se, center_se=center_se,
                          center_lower=center - zq * center_se, center_upper=center + zq * center_se,
                          method="wald", level=level, theta=theta, center=center, df=df)


def _gls_pool(theta_hat: np.ndarray, covs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    prec = np.linalg.inv(covs)
    cov = np.linalg.inv(prec.sum(axis=0))
    return cov @ np.einsum("kij,kj->i", prec, theta_hat), cov


def _fit_robust_eb(y, v, *, outlying_group, slab_scale, spike, model_average, inference,
                   interval_calibration, site_intervals, n_boot, level, rng) -> SummaryFit:
    def refit(yy, vv):
        return robust_eb(yy, vv, outlying_group=outlying_group, slab_scale=slab_scale,
                         spike=spike, model_average=model_average)

    fit = refit(y, v)
    theta, center = fit.estimate.T, fit.mu
    own_group = (fit.outlier_prob < 0.5).T
    details = {"tau2": fit.tau2, "eps": fit.eps, "outlier_prob": fit.outlier_prob.T}
    if spike:
        details.update(spike_weight=fit.spike_weight, spike_prob=fit.spike_prob.T)
    if model_average:
        details["homogeneous_weight"] = fit.homogeneous_weight
    inf = None
    if inference:
        errs = robust_eb_errors(fit, y, v, n_boot=n_boot, rng=rng, refit=refit)
        cal = (calibrate_levels(fit, y, v, rng=rng, refit=refit)
               if interval_calibration == "double" else None)
        posterior = site_posterior(fit, y, v) if site_intervals == "posterior" else None
        inf = _bootstrap_inference(theta, center, errs, level, cal, posterior)
    return SummaryFit(theta, center, own_group.all(axis=1), inf, details)


def _bootstrap_inference(theta, center, errs: EBErrors, level: float,
                         calibration: LevelCalibration | None = None,
                         posterior: SitePosterior | None = None) -> FusedInference:
    """Intervals from bootstrap errors of a batch of per-coefficient fits (rows = coefficients),
    at the nominal level or at the levels calibrated to reach it; with ``posterior``, the sites'
    intervals are their posterior intervals instead."""
    if posterior is not None:
        center_half = errs.center_halfwidth(level)
        lower, upper = (end.T for end in posterior.interval(level))
    else:
        if calibration is None:
            half, center_half = errs.halfwidths(level)
        else:
            half, center_half = halfwidths_at(errs, *calibration.calibrated(level), level)
        lower, upper = theta - half.T, theta + half.T
    return FusedInference(
        se=np.full(theta.shape, np.nan), lower=lower, upper=upper,
        center_se=np.full(center.shape, np.nan), center_lower=center - center_half,
        center_upper=center + center_half,
        method="eb_bootstrap" if posterior is None else "eb_posterior", level=level, theta=theta,
        center=center, abs_errors=errs.abs_errors.transpose(1, 2, 0),
        center_abs_errors=errs.center_abs_errors.T, own_group=errs.own_group.T,
        own_se=errs.own_se.T, own_shift=errs.own_shift.T, calibration=calibration,
        site_posterior=posterior)


def _fit_gmodel_eb(y, v, *, inference, n_boot, level, rng) -> SummaryFit:
    fit = gmodel_eb(y, v)
    theta, center = fit.estimate.T, fit.mu
    # "Fused": shrunk at least half of the way from the site's own estimate to the center.
    fused = (np.abs(fit.estimate - fit.mu[:, None]) <= 0.5 * np.abs(y - fit.mu[:, None])).T
    inf = None
    if inference:
        inf = _bootstrap_inference(theta, center,
                                   gmodel_errors(fit, y, v, n_boot=n_boot, rng=rng), level)
    return SummaryFit(theta, center, fused.all(axis=1), inf, {"kkt_gap": fit.kkt_gap})


def fit_summary_method(method: str, theta_hat: np.ndarray, covs: np.ndarray, *, tau2_method: str,
                       test: str = "z", outlying_group: str = "t", slab_scale: float | None = None,
                       spike: bool = False, model_average: bool = False, inference: bool,
                       interval_calibration: str = "none", site_intervals: str = "bootstrap",
                       n_boot: int, level: float, rng: np.random.Generator) -> SummaryFit:
    """Fit one of :data:`SUMMARY_METHODS` to site estimates (K, p) with covariances (K, p, p)."""
    v = np.diagonal(covs, axis1=1, axis2=2).T             # (p, K): one batch row per coefficient
    y = theta_hat.T
    K, p = theta_hat.shape
    if method == "robust_eb":
        return _fit_robust_eb(y, v, outlying_group=outlying_group, slab_scale=slab_scale,
                              spike=spike, model_average=model_average, inference=inference,
                              interval_calibration=interval_calibration,
                              site_intervals=site_intervals, n_boot=n_boot,
                              level=level, rng=rng)
    if method == "gmodel_eb":
        return _fit_gmodel_eb(y, v, inference=inference, n_boot=n_boot, level=level, rng=rng)
    if method == "blup":
        re = random_effects(y, v, method=tau2_method)
        df = None
        if test == "knha":
            re, df = knapp_hartung(re, y, v)
        theta = re.blup.T
        inf = _wald(theta, np.sqrt(re.blup_var.T), re.mu, np.sqrt(re.mu_var), level, df) if inference else None
        return SummaryFit(theta, re.mu, (re.shrinkage == 0).all(axis=0), inf, {"tau2": re.tau2})
    center, center_cov = _gls_pool(theta_hat, covs)
    center_se = np.sqrt(np.diag(center_cov))
    if method == "fixed":
        theta = np.broadcast_to(center, (K, p)).copy()
        inf = _wald(theta, np.broadcast_to(center_se, (K, p)).copy(), center, center_se, level) \
            if inference else None
        return SummaryFit(theta, center, np.ones(K, bool), inf)
    own_se = np.sqrt(v.T)
    inf = _wald(theta_hat.copy(), own_se, center, center_se, level) if inference else None
    return SummaryFit(theta_hat.copy(), center, np.zeros(K, bool), inf)
