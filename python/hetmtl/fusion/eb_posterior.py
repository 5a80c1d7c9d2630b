"""Posterior site intervals for robust empirical Bayes: the prior's center and spread integrated
out rather than plugged in.

Under the two-group model of :mod:`hetmtl.fusion.robust_eb` (outlying group ``"t"``), site k
belongs to the normal group with probability ``q_k = 1 - p_k`` and then, given tau,

    theta_k | y, tau ~ N(mu_k(tau) + (1 - b_k)(y_k - mu_k(tau)), v_k (1 - b_k) + b_k^2 / W_k(tau)),

with ``b_k = v_k / (v_k + tau^2)``, a flat prior on ``mu`` and ``mu_k(tau)`` the normal group's
weighted GLS mean (weights ``q_j / (v_j + tau^2)`` summing to ``W_k(tau)``; the ``b_k^2 / W_k``
term is the center's uncertainty). Given that site k is normal, its own weight is 1, the other
sites keep their probabilities ``q_j``: so ``mu_k``, ``W_k`` and tau's restricted likelihood are
the normal group's with site k counted in full. As an outlier (probability ``p_k``) the site is
estimated from its own data, ``N(y_k, v_k)``. Tau is integrated over that restricted likelihood
with a flat prior on tau, on the grid the bootstrap intervals draw it from
(:func:`hetmtl.fusion.eb_intervals.tau_grid`). Site k's interval is the equal-tailed ``level``
interval of that mixture, a hierarchical-Bayes interval with the other sites' group
probabilities plugged in; it is widened to contain the point estimate where it does not (the
point estimate is the posterior mean at the fitted tau, not averaged over tau). With one or two
sites in the normal group the restricted likelihood is flat in tau (a flat prior then gives an
improper posterior) and the grid's end, not the data, bounds the interval from outside.

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

from .eb_intervals import normal_weights, tau_grid
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
class SitePosterior:
    """What the sites' posterior mixtures are computed from (compact: no per-site grid stored).

    Attributes
    ----------
    y, v : ndarray of shape (B, K)
        Site estimates and within-site variances.
    outlier_prob : ndarray of shape (B, K)
        Each site's probability of being outlying.
    estimate : ndarray of shape (B, K)
        The point estimates (each interval is widened to contain its own).
    tau : ndarray of shape (B, G)
        The tau grid's midpoints.
    """

    y: np.ndarray
    v: np.ndarray
    outlier_prob: np.ndarray
    estimate: np.ndarray
    tau: np.ndarray

    def mixture(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Weights, means and SDs ``(B, K, G + 1)`` of every site's posterior: the tau grid's
        normal components, then the outlying one (see module notes)."""
        y, v, p = self.y[:, None, :], self.v[:, None, :], self.outlier_prob[:, None, :]
        q = normal_weights(p)
        s = v + self.tau[:, :, None] ** 2                                # (B, G, K)
        w = q / s
        total = w.sum(axis=2, keepdims=True)
        mu = (w * y).sum(axis=2, keepdims=True) / total
        resid = (w * (y - mu) ** 2).sum(axis=2, keepdims=True)
        log_s = (q * np.log(s)).sum(axis=2, keepdims=True)
        # Site k counted in full: its weight rises by a = p_k / s_k (updates of a weighted mean
        # and sum of squares, free of cancellation).
        a = (1.0 - q) / s
        total_k = total + a
        mu_k = mu + a / total_k * (y - mu)
        resid_k = resid + a * total / total_k * (y - mu) ** 2
        loglik = -0.5 * (log_s + (1.0 - q) * np.log(s) + np.log(total_k) + resid_k)
        prob = np.exp(loglik - loglik.max(axis=1, keepdims=True))
        prob /= prob.sum(axis=1, keepdims=True)
        b = v / s
        means = mu_k + (1 - b) * (y - mu_k)
        var = v * (1 - b) + b**2 / total_k
        weights = (1.0 - p) * prob
        # C order, as a saved and loaded fit has it (sums over components then round alike).
        to_sites = lambda a, last: np.ascontiguousarray(  # noqa: E731
            np.concatenate([a.transpose(0, 2, 1), last[..., None]], axis=2))
        return (to_sites(weights, self.outlier_prob), to_sites(means, self.y),
                np.sqrt(to_sites(var, self.v)))

    def interval(self, level: float) -> tuple[np.ndarray, np.ndarray]:
        """Equal-tailed ``level`` intervals (B, K), widened to contain the estimates."""
        alpha = 1.0 - level
        weights, means, sds = self.mixture()
        lower = mixture_quantile(weights, means, sds, alpha / 2)
        upper = mixture_quantile(weights, means, sds, 1 - alpha / 2)
        return np.minimum(lower, self.estimate), np.maximum(upper, self.estimate)


def model_blocker(outlying_group: str, spike: bool, model_average: bool) -> str | None:
    """Why a robust EB model has no posterior mixture here (None: it has one)."""
    if outlying_group != "t":
        return f"outlying_group={outlying_group!r} (the mixture needs the 't' group)"
    if spike:
        return "spike=True"
    if model_average:
        return "model_average=True"
    return None


def site_posterior(fit: RobustEBFit, y: np.ndarray, v: np.ndarray) -> SitePosterior:
    """The sites' posteriors under ``fit`` (see module notes).

    Parameters
    ----------
    fit : RobustEBFit
        A two-group fit (outlying group ``"t"``, no point mass, no model averaging) of ``y``.
    y, v : ndarray of shape (B, K)
        Site estimates and within-site variances.
    """
    blocker = model_blocker(fit.outlying_group, fit.spike, fit.homogeneous_weight is not None)
    if blocker is not None:
        raise ValueError(f"fit: posterior site intervals need the two-group model with the 't' "
                         f"outlying group, not {blocker}")
    arrays = (y, v, fit.outlier_prob, fit.estimate, tau_grid(fit, y, v))
    return SitePosterior(*(np.ascontiguousarray(a, dtype=float) for a in arrays))


def posterior_site_intervals(fit: RobustEBFit, y: np.ndarray, v: np.ndarray,
                             level: float) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper ends (B, K) of the sites' posterior intervals at ``level`` (module notes)."""
    return site_posterior(fit, y, v).interval(level)
