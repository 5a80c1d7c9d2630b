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

``mu``, ``tau^2`` and ``eps`` are fitted by an EM algorithm from the site estimates and their
variances alone, so published estimates without fold summaries are tuned as well as DML
summaries. The outlying group only serves to recognize outliers: ``mu`` and ``tau^2`` are
estimated from the normal group (each site weighted by its posterior probability ``1 - p_k`` of
belonging to it), so an outlier neither pulls the center nor inflates tau^2. Each site's
estimate is its posterior mean::

    theta_k = mu + (1 - p_k) tau^2 / s_k (y_k - mu) + p_k sqrt(s_k) E[delta | y_k, outlying],

the normal group's posterior mean (the random-effects BLUP) with probability ``1 - p_k``, and
the outlying group's with probability ``p_k`` (the site's own estimate for the ``"t"`` group;
within a fraction of a standard error of it for the non-local one). A site near the others is shrunk as by
the BLUP; a site several standard deviations out has ``p_k`` near 1 and keeps (nearly) its own
estimate. With ``p = 0`` the estimator is the BLUP with a maximum-likelihood tau^2, and with
``tau^2 = 0`` as well it is fixed-effect pooling. The estimate is smooth in the data (no hard
threshold).

Everything is batched over a leading axis (bootstrap draws, simulation replications).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import expit

from . import outlying_groups
from .blup import as_batch, tau2_dl

EPS_BOUNDS = (1e-4, 0.5)


@dataclass(frozen=True)
class RobustEBFit:
    """Two-group empirical-Bayes fit of a batch of data sets (leading axis B).

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
    """

    mu: np.ndarray
    tau2: np.ndarray
    eps: np.ndarray
    slab_var: np.ndarray
    outlier_prob: np.ndarray
    estimate: np.ndarray
    iterations: np.ndarray
    outlying_group: str = "t"
    slab_scale: float = outlying_groups.T_GROUP_SCALE

    def params(self) -> dict[str, np.ndarray]:
        """The prior's parameters, for simulating data from the fitted model."""
        return {"mu": self.mu, "tau2": self.tau2, "eps": self.eps, "slab_var": self.slab_var}


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
    return normal, outlying_groups.log_density(group, z, v / s0, scale)


def _slab_prob(y, v, mu, tau2, eps, group, scale) -> np.ndarray:
    normal, outlying = _group_log_densities(y, v, mu, tau2, group, scale)
    return expit(np.log(eps / (1 - eps))[..., None] + outlying - normal)


def _em_step(y, v, mu, tau2, eps, group, scale):
    p = _slab_prob(y, v, mu, tau2, eps, group, scale)
    # The floor keeps the center defined when every site looks outlying (a bootstrap draw with
    # a tiny tau^2): the normal group's weights then fall back to the precisions.
    q = np.maximum(1.0 - p, 1e-12)
    eps = np.clip(p.mean(axis=1), *EPS_BOUNDS)
    s0 = v + tau2[:, None]
    # Center and tau^2 from the normal group only (weights 1 - p): an outlier carries no
    # information on them, so it can neither pull the center nor inflate tau^2.
    mu = (q / s0 * y).sum(axis=1) / (q / s0).sum(axis=1)
    r2 = (y - mu[:, None]) ** 2
    grad = (q * (r2 - s0) / s0**2).sum(axis=1)
    info = (q / s0**2).sum(axis=1)
    tau2 = np.maximum(0.0, tau2 + grad / info)
    return mu, tau2, eps


def _random_effects_start(y, v) -> tuple[np.ndarray, np.ndarray]:
    """DerSimonian-Laird mean and tau^2: the start of the EM run that begins with few outliers."""
    tau2 = tau2_dl(y, v)
    w = 1.0 / (v + tau2[:, None])
    return (w * y).sum(axis=1) / w.sum(axis=1), tau2


def _loglik(y, v, mu, tau2, eps, group, scale) -> np.ndarray:
    s0 = v + tau2[:, None]
    normal, outlying = _group_log_densities(y, v, mu, tau2, group, scale)
    mixed = np.logaddexp(np.log1p(-eps)[:, None] + normal, np.log(eps)[:, None] + outlying)
    return (mixed - 0.5 * np.log(s0)).sum(axis=1)


def _run_em(y, v, mu, tau2, eps, group, scale, tol, max_iter):
    """EM from one start, each data set until it stops moving; returns mu, tau2, eps, iterations."""
    mu, tau2, eps = (np.array(a, dtype=float) for a in (mu, tau2, eps))
    typical = v.mean(axis=1)
    iters = np.zeros(y.shape[0], dtype=int)
    active = np.ones(y.shape[0], bool)
    for _ in range(max_iter):
        if not active.any():
            break
        a = np.flatnonzero(active)
        m_new, t_new, e_new = _em_step(y[a], v[a], mu[a], tau2[a], eps[a], group, scale)
        moved = ((np.abs(m_new - mu[a]) > tol * np.sqrt(typical[a]))
                 | (np.abs(t_new - tau2[a]) > tol * typical[a]) | (np.abs(e_new - eps[a]) > tol))
        mu[a], tau2[a], eps[a] = m_new, t_new, e_new
        iters[a] += 1
        active[a[~moved]] = False
    return mu, tau2, eps, iters


def robust_eb(y, v, *, outlying_group: str = "t", slab_scale: float | None = None,
              tol: float = 1e-8, max_iter: int = 500) -> RobustEBFit:
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
    with ``eps = 0.01``, where they do not.
    """
    if outlying_group not in outlying_groups.OUTLYING_GROUPS:
        raise ValueError(f"outlying_group: must be one of {outlying_groups.OUTLYING_GROUPS}, "
                         f"got {outlying_group!r}")
    scale = outlying_groups.default_scale(outlying_group) if slab_scale is None else slab_scale
    if not (np.isfinite(scale) and scale > 1):
        raise ValueError(f"slab_scale: must be a number above 1, got {slab_scale!r}")
    y, v, _ = as_batch(y, v)
    B = y.shape[0]
    model = (outlying_group, scale)
    starts = [(np.median(y, axis=1), np.zeros(B), np.full(B, 0.1)),
              (*_random_effects_start(y, v), np.full(B, 0.01))]
    fits = [_run_em(y, v, *start, *model, tol, max_iter) for start in starts]
    best = np.argmax(np.stack([_loglik(y, v, *fit[:3], *model) for fit in fits]), axis=0)
    mu, tau2, eps, iters = (np.choose(best, [fit[i] for fit in fits]) for i in range(4))
    p = _slab_prob(y, v, mu, tau2, eps, *model)
    s0 = v + tau2[:, None]
    z = (y - mu[:, None]) / np.sqrt(s0)
    # Normal group: the BLUP's shift; outlying group: its own posterior mean of the shift.
    shift = ((1 - p) * tau2[:, None] / s0 * z
             + p * outlying_groups.posterior_shift(outlying_group, z, v / s0, scale))
    est = mu[:, None] + np.sqrt(s0) * shift
    return RobustEBFit(mu=mu, tau2=tau2, eps=eps, slab_var=scale**2 * s0 - v, outlier_prob=p,
                       estimate=est, iterations=iters, outlying_group=outlying_group,
                       slab_scale=float(scale))
