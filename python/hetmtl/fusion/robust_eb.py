"""Robust empirical Bayes: random-effects shrinkage that lets outlying sites keep their own estimate.

Each site's estimate follows a contaminated random-effects model (in the spirit of Tukey's
contaminated normal, Box and Tiao 1968)::

    (y_k - mu) / sqrt(s_k) ~ (1 - eps) N(0, 1) + eps c t_4,    s_k = v_k + tau^2,

a normal random-effects group and a heavy-tailed group of outlying sites ``c = slab_scale`` times
as spread out (Student t, 4 degrees of freedom). The heavy tail matters: with a normal outlying
group, a site 20 or more standard errors out is explained more cheaply by a huge tau^2 than as
an outlier. Optionally (``outlying_group="nonlocal"``) an outlier's effect is instead shifted
from ``mu`` by ``delta sqrt(s_k)`` with a non-local (moment) density of ``delta``, zero at 0 and
with the same ``|delta|^-5`` tail (:mod:`hetmtl.fusion.outlying_groups`).

With ``spike=True`` a third group, of weight ``pi0``, holds the sites whose effect is *exactly*
``mu`` (a point mass: ``y_k ~ N(mu, v_k)``); the normal group then has weight
``1 - pi0 - eps``, and the center is estimated from both. The agreeing sites can then sit in the
point mass while the normal group, with a larger tau^2, takes sites a few standard errors out,
so those no longer widen the shrinkage of the others. (It does not bring identical sites closer
to pooling: maximum likelihood fits their chance spread as well with part of them in a normal
group; see the study in ``docs/studies/late_fusion``.)

``mu``, ``tau^2``, ``eps`` (and ``pi0``) are fitted by an EM algorithm from the site estimates
and their variances alone, so published estimates without fold summaries are tuned as well as DML
summaries. The outlying group only serves to recognize outliers: ``mu`` and ``tau^2`` are
estimated from the normal group (each site weighted by its posterior probability ``1 - p_k`` of
belonging to it), so an outlier neither pulls the center nor inflates tau^2. Each site's
estimate is its posterior mean::

    theta_k = mu + q_k tau^2 / s_k (y_k - mu) + p_k sqrt(s_k) E[delta | y_k, outlying],

the normal group's posterior mean (the random-effects BLUP) with probability ``q_k`` (``1 - p_k``
without the point mass), the center with the point mass's probability ``1 - p_k - q_k``, and the
outlying group's with probability ``p_k`` (the site's own estimate for the ``"t"`` group;
within a fraction of a standard error of it for the non-local one). A site near the others is
shrunk as by the BLUP; a site several standard deviations out has ``p_k`` near 1 and keeps (nearly) its own
estimate. With ``p = 0`` the estimator is the BLUP with a maximum-likelihood tau^2, and with
``tau^2 = 0`` as well it is fixed-effect pooling. The estimate is smooth in the data (no hard
threshold).

With ``model_average=True`` the fit is averaged with fixed-effect pooling at the level of the
whole data set: the posterior probability ``w0`` that all sites are equal (against this model,
prior 1/2, marginal likelihoods integrated over ``mu`` and ``tau``;
:mod:`hetmtl.fusion.homogeneity_bma`) weights the pooled estimate, ``1 - w0`` the posterior means
above, for every site and for the center.

Everything is batched over a leading axis (bootstrap draws, simulation replications).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import expit, logsumexp, softmax

from .homogeneity_bma import homogeneous_weight
from .outlying_groups import (OUTLYING_GROUPS, T_GROUP_SCALE, default_scale, log_density,
                              posterior_shift)
from .blup import as_batch, tau2_dl
from .tau2 import pool_rows

EPS_BOUNDS = (1e-4, 0.5)
# Smallest weight of the point-mass and normal groups (spike=True), so that neither group is
# switched off for good by an early EM step.
MIN_GROUP_WEIGHT = 1e-4


@dataclass(frozen=True)
class RobustEBFit:
    """Two- or three-group (``spike``) empirical-Bayes fit of a batch of data sets (leading axis B).

    Attributes
    ----------
    mu, tau2, eps : ndarray of shape (B,)
        Center, normal-group between-site variance and slab share.
    slab_var : ndarray of shape (B, K)
        Variance of each site's effect around ``mu`` if it is an outlier and the outlying group
        is ``"t"``, ``c^2 (v_k + tau^2) - v_k`` (used to simulate from the fitted model).
    outlier_prob : ndarray of shape (B, K)
        Posterior probability that each site belongs to the slab.
    estimate : ndarray of shape (B, K)
        Posterior means of the site effects.
    iterations : ndarray of shape (B,)
        EM iterations used per data set.
    outlying_group : str
        Density of the outlying group (:mod:`hetmtl.fusion.outlying_groups`).
    slab_scale : float
        Its scale ``c``.
    spike_weight : ndarray of shape (B,)
        Weight ``pi0`` of the point mass at ``mu`` (zeros without it).
    spike_prob : ndarray of shape (B, K)
        Posterior probability that each site's effect is exactly ``mu`` (zeros without it).
    homogeneous_weight : ndarray of shape (B,) or None
        With ``model_average``: posterior probability that all sites are equal; ``mu`` and
        ``estimate`` are then the averages, while ``tau2``, ``eps`` and ``outlier_prob`` are those
        of the robust model (given that the sites are not all equal).
    """

    mu: np.ndarray
    tau2: np.ndarray
    eps: np.ndarray
    slab_var: np.ndarray
    outlier_prob: np.ndarray
    estimate: np.ndarray
    iterations: np.ndarray
    outlying_group: str = "t"
    slab_scale: float = T_GROUP_SCALE
    spike_weight: np.ndarray | None = None
    spike_prob: np.ndarray | None = None
    homogeneous_weight: np.ndarray | None = None

    @property
    def spike(self) -> bool:
        """Whether the model has the point-mass group."""
        return self.spike_prob is not None

    def params(self) -> dict[str, np.ndarray]:
        """The prior's parameters, for simulating data from the fitted model."""
        out = {"mu": self.mu, "tau2": self.tau2, "eps": self.eps, "slab_var": self.slab_var}
        if self.spike:
            out["spike_weight"] = self.spike_weight
        return out


def weighted_median(y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Row-wise weighted median (the first value whose cumulative weight reaches one half)."""
    order = np.argsort(y, axis=1)
    ys = np.take_along_axis(y, order, axis=1)
    cw = np.cumsum(np.take_along_axis(w, order, axis=1), axis=1)
    idx = (cw < 0.5 * cw[:, -1:]).sum(axis=1)
    return ys[np.arange(y.shape[0]), idx]


def _group_log_densities(y, v, mu, tau2, group, scale) -> tuple[np.ndarray, np.ndarray]:
    """Log densities (up to the common ``-log sqrt(s_k)``) of each site's standardized deviation
    under the normal group, N(0, 1), and under the outlying group (:mod:`.outlying_groups`)."""
    s0 = v + tau2[..., None]
    z = (y - mu[..., None]) / np.sqrt(s0)
    normal = -0.5 * np.log(2 * np.pi) - 0.5 * z**2
    return normal, log_density(group, z, v / s0, scale)


def _spike_log_density(y, v, mu, tau2) -> np.ndarray:
    """Log density of a site's estimate under the point mass at ``mu``, ``N(mu, v_k)``, on the
    scale of :func:`_group_log_densities` (which leaves out ``-log sqrt(v_k + tau^2)``)."""
    s0 = v + tau2[..., None]
    return -0.5 * np.log(2 * np.pi * v / s0) - 0.5 * (y - mu[..., None]) ** 2 / v


def _weighted_log_densities(y, v, mu, tau2, eps, pi0, group, scale) -> np.ndarray:
    """Log prior weight plus log density per group, stacked on the last axis as (point mass,
    normal, outlying)."""
    normal, outlying = _group_log_densities(y, v, mu, tau2, group, scale)
    return np.stack([np.log(pi0)[:, None] + _spike_log_density(y, v, mu, tau2),
                     np.log1p(-pi0 - eps)[:, None] + normal,
                     np.log(eps)[:, None] + outlying], axis=-1)


def _group_probs(y, v, mu, tau2, eps, pi0, group, scale) -> tuple[np.ndarray, np.ndarray]:
    """Posterior probabilities ``(p, p0)`` of the outlying group and of the point mass (``p0`` is
    None without the point mass, ``pi0`` None)."""
    if pi0 is None:
        normal, outlying = _group_log_densities(y, v, mu, tau2, group, scale)
        return expit(np.log(eps / (1 - eps))[..., None] + outlying - normal), None
    post = softmax(_weighted_log_densities(y, v, mu, tau2, eps, pi0, group, scale), axis=-1)
    return post[..., 2], post[..., 0]


def _spike_em_step(y, v, mu, tau2, eps, pi0, group, scale):
    """One EM step of the three-group model: the point mass and the normal group both inform
    the center (precisions ``1 / v_k`` and ``1 / s_k``), only the normal group tau^2."""
    p, p0 = _group_probs(y, v, mu, tau2, eps, pi0, group, scale)
    p1 = np.maximum(1.0 - p - p0, 1e-12)
    eps = np.clip(p.mean(axis=1), *EPS_BOUNDS)
    pi0 = np.clip(p0.mean(axis=1), MIN_GROUP_WEIGHT, 1.0 - eps - MIN_GROUP_WEIGHT)
    s0 = v + tau2[:, None]
    mu, _ = pool_rows(y, p0 / v + p1 / s0)
    return mu, _tau2_step(y, mu, s0, p1, tau2), eps, pi0


def _tau2_step(y, mu, s0, q, tau2) -> np.ndarray:
    """One Fisher-scoring step of the normal group's tau^2, each site weighted by ``q_k``."""
    r2 = (y - mu[:, None]) ** 2
    grad = (q * (r2 - s0) / s0**2).sum(axis=1)
    info = (q / s0**2).sum(axis=1)
    return np.maximum(0.0, tau2 + grad / info)


def _em_step(y, v, mu, tau2, eps, pi0, group, scale):
    if pi0 is not None:
        return _spike_em_step(y, v, mu, tau2, eps, pi0, group, scale)
    p, _ = _group_probs(y, v, mu, tau2, eps, None, group, scale)
    # The floor keeps the center defined when every site looks outlying (a bootstrap draw with
    # a tiny tau^2): the normal group's weights then fall back to the precisions.
    q = np.maximum(1.0 - p, 1e-12)
    eps = np.clip(p.mean(axis=1), *EPS_BOUNDS)
    s0 = v + tau2[:, None]
    # Center and tau^2 from the normal group only (weights 1 - p): an outlier carries no
    # information on them, so it can neither pull the center nor inflate tau^2.
    mu, _ = pool_rows(y, q / s0)
    return mu, _tau2_step(y, mu, s0, q, tau2), eps, None


def _random_effects_start(y, v) -> tuple[np.ndarray, np.ndarray]:
    """DerSimonian-Laird mean and tau^2: the start of the EM run that begins with few outliers."""
    tau2 = tau2_dl(y, v)
    w = 1.0 / (v + tau2[:, None])
    return (w * y).sum(axis=1) / w.sum(axis=1), tau2


def _loglik(y, v, mu, tau2, eps, pi0, group, scale) -> np.ndarray:
    s0 = v + tau2[:, None]
    if pi0 is None:
        normal, outlying = _group_log_densities(y, v, mu, tau2, group, scale)
        mixed = np.logaddexp(np.log1p(-eps)[:, None] + normal, np.log(eps)[:, None] + outlying)
    else:
        mixed = logsumexp(_weighted_log_densities(y, v, mu, tau2, eps, pi0, group, scale),
                          axis=-1)
    return (mixed - 0.5 * np.log(s0)).sum(axis=1)


def _run_em(y, v, mu, tau2, eps, pi0, group, scale, tol, max_iter):
    """EM from one start, each data set until it stops moving; returns mu, tau2, eps, pi0 (None
    without the point mass), iterations."""
    mu, tau2, eps = (np.array(a, dtype=float) for a in (mu, tau2, eps))
    pi0 = None if pi0 is None else np.array(pi0, dtype=float)
    typical = v.mean(axis=1)
    iters = np.zeros(y.shape[0], dtype=int)
    active = np.ones(y.shape[0], bool)
    for _ in range(max_iter):
        if not active.any():
            break
        a = np.flatnonzero(active)
        m_new, t_new, e_new, w_new = _em_step(y[a], v[a], mu[a], tau2[a], eps[a],
                                              None if pi0 is None else pi0[a], group, scale)
        moved = ((np.abs(m_new - mu[a]) > tol * np.sqrt(typical[a]))
                 | (np.abs(t_new - tau2[a]) > tol * typical[a]) | (np.abs(e_new - eps[a]) > tol))
        if pi0 is not None:
            # At tau^2 = 0 the point mass and the normal group coincide: their split is
            # arbitrary (and drifts slowly) without changing the fit.
            moved |= (np.abs(w_new - pi0[a]) > tol) & (t_new > 0)
            pi0[a] = w_new
        mu[a], tau2[a], eps[a] = m_new, t_new, e_new
        iters[a] += 1
        active[a[~moved]] = False
    return mu, tau2, eps, pi0, iters


def robust_eb(y, v, *, outlying_group: str = "t", slab_scale: float | None = None,
              spike: bool = False, model_average: bool = False, tol: float = 1e-8,
              max_iter: int = 500) -> RobustEBFit:
    """Fit the contaminated random-effects model by EM and return posterior means (see module notes).

    Parameters
    ----------
    y, v : array_like of shape (B, K) or (K,)
        Site estimates and within-site variances.
    outlying_group : {"t", "nonlocal"}, default "t"
        Density of the outlying group (:mod:`hetmtl.fusion.outlying_groups`): ``c t_4``
        centered at the center, or a non-local (moment-t) density of the effect's shift, which
        vanishes at the center.
    slab_scale : float, optional
        ``c``: the scale of the outlying group relative to the normal one (default 5 for
        ``"t"``, 2.8 for ``"nonlocal"``).
    spike : bool, default False
        Add the point-mass group: sites whose effect is exactly the center (see module notes).
    model_average : bool, default False
        Average with fixed-effect pooling by the posterior probability that all sites are equal
        (see module notes; not with ``spike``).
    tol : float, default 1e-8
        EM stops when ``mu`` and ``tau^2`` move less than ``tol`` times the typical standard error
        (resp. variance) and ``eps`` less than ``tol``.
    max_iter : int, default 500
        EM iteration cap.

    Notes
    -----
    The likelihood of a mixture can have several local maxima, so the EM runs from two starts
    and keeps the one with the higher likelihood: the median of the site estimates (unweighted,
    so that outliers at the largest sites cannot move it) with ``tau^2 = 0`` and ``eps = 0.1``,
    where far-out sites already count as outliers; and the DerSimonian-Laird random-effects fit
    with ``eps = 0.01``, where they do not. With the point mass, half of the remaining weight
    starts in it.
    """
    if outlying_group not in OUTLYING_GROUPS:
        raise ValueError(f"outlying_group: must be one of {OUTLYING_GROUPS}, "
                         f"got {outlying_group!r}")
    scale = default_scale(outlying_group) if slab_scale is None else slab_scale
    if not (np.isfinite(scale) and scale > 1):
        raise ValueError(f"slab_scale: must be a number above 1, got {slab_scale!r}")
    if model_average and spike:
        raise ValueError("model_average: not available with spike=True (the averaged model "
                         "has no point-mass group)")
    y, v, _ = as_batch(y, v)
    B = y.shape[0]
    model = (outlying_group, scale)
    # Without the point mass its weight is None throughout; with it, half of the non-outlying
    # weight starts in the point mass.
    starts = [(np.median(y, axis=1), np.zeros(B), np.full(B, 0.1),
               np.full(B, 0.45) if spike else None),
              (*_random_effects_start(y, v), np.full(B, 0.01),
               np.full(B, 0.495) if spike else None)]
    fits = [_run_em(y, v, *start, *model, tol, max_iter) for start in starts]
    best = np.argmax(np.stack([_loglik(y, v, *fit[:4], *model) for fit in fits]), axis=0)
    mu, tau2, eps, pi0, iters = (None if fits[0][i] is None
                                 else np.choose(best, [fit[i] for fit in fits]) for i in range(5))
    p, p0 = _group_probs(y, v, mu, tau2, eps, pi0, *model)
    est = posterior_mean(y, v, mu, tau2, p, p0, *model)
    w0 = None
    if model_average:
        w0 = homogeneous_weight(y, v, eps, p, *model)
        pooled, _ = pool_rows(y, 1.0 / v)
        est = w0[:, None] * pooled[:, None] + (1 - w0[:, None]) * est
        mu = w0 * pooled + (1 - w0) * mu
    return RobustEBFit(mu=mu, tau2=tau2, eps=eps, slab_var=scale**2 * (v + tau2[:, None]) - v,
                       outlier_prob=p, estimate=est, iterations=iters,
                       outlying_group=outlying_group, slab_scale=float(scale),
                       spike_weight=pi0, spike_prob=p0, homogeneous_weight=w0)


def posterior_mean(y, v, mu, tau2, outlier_prob, spike_prob, group: str = "t",
                   scale: float = T_GROUP_SCALE) -> np.ndarray:
    """Posterior means of the site effects (B, K) given the prior's parameters and each site's
    posterior group probabilities (``spike_prob`` None without the point mass).

    The mixture, by group probability, of the center (point mass), the BLUP (normal group) and
    the outlying group's posterior mean (the site's own estimate for the ``"t"`` group).
    """
    normal_prob = 1 - outlier_prob - (0 if spike_prob is None else spike_prob)
    s0 = v + tau2[:, None]
    z = (y - mu[:, None]) / np.sqrt(s0)
    # Shifts from the center in units of sqrt(s_k); the point mass contributes none.
    shift = (normal_prob * tau2[:, None] / s0 * z
             + outlier_prob * posterior_shift(group, z, v / s0, scale))
    return mu[:, None] + np.sqrt(s0) * shift
