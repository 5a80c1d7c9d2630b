"""Posterior site intervals for robust empirical Bayes: the prior's center and spread integrated
out rather than plugged in.

Under the two-group model of :mod:`hetmtl.fusion.robust_eb` (outlying group ``"t"``), site k
belongs to the normal group with probability ``q_k = 1 - p_k`` and then, given tau,

    theta_k | y, tau ~ N(mu(tau) + (1 - b_k)(y_k - mu(tau)), v_k (1 - b_k) + b_k^2 / W(tau)),

with ``b_k = v_k / (v_k + tau^2)``, ``mu(tau)`` the normal group's weighted GLS mean (weights
``q_k / (v_k + tau^2)``, summing to ``W(tau)``) and a flat prior on ``mu`` (the ``b_k^2 / W`` term
is the center's uncertainty). As an outlier (probability ``p_k``) the site is estimated from its
own data, ``N(y_k, v_k)``. Tau is integrated over the normal group's restricted likelihood with a
flat prior on tau, on the grid the bootstrap intervals draw it from
(:func:`hetmtl.fusion.eb_intervals.tau_posterior`). Site k's interval is the equal-tailed
``level`` interval of that mixture, a hierarchical-Bayes interval with the group probabilities
plugged in; it is widened to contain the point estimate where it does not (the point estimate is
the posterior mean at the fitted tau, not averaged over tau).

Why not the bootstrap for the sites: its intervals are symmetric around the plug-in posterior
mean. With ten or so sites the fitted tau^2 is often too small, the plug-in estimate of a site in
the tails is then pulled too far in, and a symmetric interval around it misses on the far side.
The posterior mixture is centered where the data put the site once tau's uncertainty is counted,
and is asymmetric where that uncertainty is. The center keeps its bootstrap interval, which also
carries the randomness of the outlier screen (see ``docs/studies/late_fusion``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import special, stats

from .eb_intervals import tau_posterior
from .robust_eb import RobustEBFit

# Newton steps, safeguarded by bisection, for a mixture quantile (the bracket starts at +-12
# component SDs, and 60 halvings reach rounding); an entry is solved once its distribution
# function is within QUANTILE_TOL of the probability.
QUANTILE_STEPS = 60
QUANTILE_TOL = 1e-13


def mixture_quantile(weights: np.ndarray, means: np.ndarray, sds: np.ndarray, prob: float) -> np.ndarray:
    """The ``prob`` quantile of the normal mixtures ``sum_j weights_j N(means_j, sds_j^2)``.

    Parameters
    ----------
    weights, means, sds : ndarray of shape (..., J)
        One mixture per leading index, components on the last axis; weights sum to 1.
    prob : float
        In (0, 1).

    Returns
    -------
    ndarray of shape (...)
    """
    lo = (means - 12 * sds).min(axis=-1)
    hi = (means + 12 * sds).max(axis=-1)
    mean = (weights * means).sum(axis=-1)
    sd = np.sqrt(np.maximum((weights * (sds**2 + means**2)).sum(axis=-1) - mean**2, 0.0))
    x = np.clip(mean + stats.norm.ppf(prob) * sd, lo, hi)
    for _ in range(QUANTILE_STEPS):
        z = (x[..., None] - means) / sds
        gap = (weights * special.ndtr(z)).sum(axis=-1) - prob
        done = np.abs(gap) <= QUANTILE_TOL
        if np.all(done):
            break
        slope = (weights * np.exp(-0.5 * z * z) / sds).sum(axis=-1) / np.sqrt(2 * np.pi)
        lo = np.where(gap < 0, x, lo)
        hi = np.where(gap > 0, x, hi)
        newton = x - gap / np.maximum(slope, np.finfo(float).tiny)
        step = np.where((newton >= lo) & (newton <= hi), newton, 0.5 * (lo + hi))
        # A solved entry stays put (a bisection step from it would leave the root).
        x = np.where(done, x, step)
    return x


@dataclass(frozen=True)
class SiteMixture:
    """Each site's posterior, a normal mixture: components on the last axis (the tau grid, then
    the outlying group), arrays of shape (B, K, J)."""

    weights: np.ndarray
    means: np.ndarray
    sds: np.ndarray

    def interval(self, level: float, estimate: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Equal-tailed ``level`` intervals (B, K), widened to contain ``estimate``."""
        alpha = 1.0 - level
        lower = mixture_quantile(self.weights, self.means, self.sds, alpha / 2)
        upper = mixture_quantile(self.weights, self.means, self.sds, 1 - alpha / 2)
        return np.minimum(lower, estimate), np.maximum(upper, estimate)


def site_mixture(fit: RobustEBFit, y: np.ndarray, v: np.ndarray) -> SiteMixture:
    """The posterior mixture of every site's effect (see module notes).

    Parameters
    ----------
    fit : RobustEBFit
        A two-group fit (outlying group ``"t"``, no point mass, no model averaging) of ``y``.
    y, v : ndarray of shape (B, K)
        Site estimates and within-site variances.
    """
    if fit.outlying_group != "t" or fit.spike or fit.homogeneous_weight is not None:
        raise ValueError("fit: posterior site intervals need the two-group model with the 't' "
                         "outlying group (no spike, no model averaging)")
    tau, prob = tau_posterior(fit, y, v)                       # (B, G)
    q = 1.0 - fit.outlier_prob                                 # (B, K)
    s = v[:, None, :] + tau[:, :, None] ** 2                   # (B, G, K)
    w = q[:, None, :] / s
    total = w.sum(axis=2, keepdims=True)
    mu = (w * y[:, None, :]).sum(axis=2, keepdims=True) / total
    b = v[:, None, :] / s
    means = mu + (1 - b) * (y[:, None, :] - mu)
    var = v[:, None, :] * (1 - b) + b**2 / total
    weights = q[:, None, :] * prob[:, :, None]
    # C order, as a saved and loaded fit has it (sums over components then round alike).
    to_sites = lambda a, last: np.ascontiguousarray(  # noqa: E731
        np.concatenate([a.transpose(0, 2, 1), last[..., None]], axis=2))
    return SiteMixture(weights=to_sites(weights, fit.outlier_prob), means=to_sites(means, y),
                       sds=np.sqrt(to_sites(var, v)))


def posterior_site_intervals(fit: RobustEBFit, y: np.ndarray, v: np.ndarray,
                             level: float) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper ends (B, K) of the sites' posterior intervals at ``level`` (module notes)."""
    return site_mixture(fit, y, v).interval(level, fit.estimate)
