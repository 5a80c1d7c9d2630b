"""Model averaging over "all sites equal" and robust EB, at the level of the whole data set.

Two models of a data set of site estimates ``y_k ~ N(theta_k, v_k)``:

- ``M0``: every site has the same effect ``mu`` (fixed-effect pooling);
- ``M1``: the contaminated random-effects model of :mod:`hetmtl.fusion.robust_eb`.

Both have a flat prior on ``mu``; the improper constant is the same in both, so it cancels in
the ratio of marginal likelihoods. Under ``M1`` the between-site SD has a proper prior, a
half-normal with scale ``s = sqrt(mean_k v_k)``, the typical site's standard error (at ``tau =
s`` a typical site is shrunk halfway to the center, the scale at which heterogeneity starts to
matter for shrinkage; the half-normal's median is ``0.67 s``, its 95% point ``1.96 s``). The
outlying share ``eps`` is held at its fitted value. With prior probability 1/2 on each model, the
posterior weight of ``M0`` is

    w0 = 1 / (1 + p(y | M1) / p(y | M0)),

and the averaged estimate of each site is ``w0 * pooled + (1 - w0) * robust EB``: an
agreement of the sites that is as close as chance alone makes it moves every estimate to the
pool, not only those of the sites that happen to lie near it (which a per-site point mass
does).

``p(y | M0)`` is closed form. ``p(y | M1)`` is integrated numerically: ``tau`` by the trapezoid
rule on a grid, ``mu`` for each ``tau`` by Gauss-Hermite quadrature centered at the normal
group's weighted mean with its standard error (the integrand is that normal likelihood times
factors of the outlying group that vary slowly in ``mu``).
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit, logsumexp

from .outlying_groups import default_scale, log_density
from .tau2 import pool_rows

# tau grid of M1, in units of s: the half-normal prior's density at its end is e^-18 of its peak.
TAU_GRID_END = 6.0
TAU_NODES = 37
MU_NODES = 24
# Largest (data sets x tau nodes x mu nodes x sites) block evaluated at once.
_BLOCK = 4_000_000

_GH_X, _GH_W = np.polynomial.hermite.hermgauss(MU_NODES)


def log_marginal_homogeneous(y: np.ndarray, v: np.ndarray) -> np.ndarray:
    """``log p(y | M0)`` (B,) with a flat prior on ``mu`` (unit density): every site at ``mu``."""
    w = 1.0 / v
    m, m_var = pool_rows(y, w)
    resid = (w * (y - m[:, None]) ** 2).sum(axis=1)
    K = y.shape[1]
    return (-0.5 * (K - 1) * np.log(2 * np.pi) - 0.5 * np.log(v).sum(axis=1)
            + 0.5 * np.log(m_var) - 0.5 * resid)


def tau_prior_grid(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nodes ``tau`` (B, T) and log quadrature weights (B, T) of the half-normal prior of tau."""
    s = np.sqrt(v.mean(axis=1))[:, None]
    u = np.linspace(0.0, TAU_GRID_END, TAU_NODES)
    trap = np.full(TAU_NODES, u[1] - u[0])
    trap[[0, -1]] *= 0.5
    # Half-normal density of tau / s: 2 phi(u); the grid is in units of s, so the weight of a
    # node in tau-units is trap * 2 phi(u) (s cancels between density and step).
    log_w = np.log(trap) + np.log(2.0) - 0.5 * np.log(2 * np.pi) - 0.5 * u**2
    return s * u, np.broadcast_to(log_w, s.shape[:1] + (TAU_NODES,))


def _log_marginal_robust_block(y, v, eps, q, group, scale) -> np.ndarray:
    tau, log_wt = tau_prior_grid(v)
    tau2 = tau**2                                               # (B, T)
    s = v[:, None, :] + tau2[:, :, None]                        # (B, T, K)
    prec = q[:, None, :] / s
    m = (prec * y[:, None, :]).sum(axis=2) / prec.sum(axis=2)   # (B, T)
    sd = 1.0 / np.sqrt(prec.sum(axis=2))
    mu = m[..., None] + np.sqrt(2.0) * sd[..., None] * _GH_X    # (B, T, M)
    z = (y[:, None, None, :] - mu[..., None]) / np.sqrt(s)[:, :, None, :]
    normal = -0.5 * np.log(2 * np.pi) - 0.5 * z**2
    r = (v[:, None, :] / s)[:, :, None, :]
    outlying = log_density(group, z, np.broadcast_to(r, z.shape), scale)
    mixed = np.logaddexp(np.log1p(-eps)[:, None, None, None] + normal,
                         np.log(eps)[:, None, None, None] + outlying)
    loglik = (mixed - 0.5 * np.log(s)[:, :, None, :]).sum(axis=3)      # (B, T, M)
    # Gauss-Hermite: integral of f(mu) = sqrt(2) sd sum_i w_i exp(x_i^2) f(m + sqrt(2) sd x_i).
    log_gh = np.log(_GH_W) + _GH_X**2
    log_mu_int = logsumexp(loglik + log_gh, axis=2) + np.log(np.sqrt(2.0) * sd)
    return logsumexp(log_mu_int + log_wt, axis=1)


def log_marginal_robust(y: np.ndarray, v: np.ndarray, eps: np.ndarray,
                        outlier_prob: np.ndarray | None = None, group: str = "t",
                        scale: float | None = None) -> np.ndarray:
    """``log p(y | M1)`` (B,): the contaminated random-effects likelihood integrated over ``mu``
    (flat, unit density) and ``tau`` (half-normal prior, see module notes) at outlying share
    ``eps`` (B,).

    ``outlier_prob`` (B, K), the fitted posterior outlier probabilities, only place the
    quadrature nodes of ``mu`` (around the mean of the sites likely normal); None weights all
    sites equally.
    """
    scale = default_scale(group) if scale is None else scale
    q = np.ones_like(y) if outlier_prob is None else np.maximum(1.0 - outlier_prob, 1e-6)
    eps = np.asarray(eps, dtype=float)
    B, K = y.shape
    step = max(1, _BLOCK // (TAU_NODES * MU_NODES * K))
    return np.concatenate([
        _log_marginal_robust_block(y[i:i + step], v[i:i + step], eps[i:i + step],
                                   q[i:i + step], group, scale)
        for i in range(0, B, step)]) if B else np.zeros(0)


def homogeneous_weight(y: np.ndarray, v: np.ndarray, eps: np.ndarray,
                       outlier_prob: np.ndarray | None = None, group: str = "t",
                       scale: float | None = None) -> np.ndarray:
    """Posterior probability ``w0`` (B,) that all sites are equal, prior probability 1/2."""
    return expit(log_marginal_homogeneous(y, v)
                 - log_marginal_robust(y, v, eps, outlier_prob, group, scale))
