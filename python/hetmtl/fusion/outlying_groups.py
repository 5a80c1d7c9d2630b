"""Densities of the outlying group of robust empirical Bayes (:mod:`hetmtl.fusion.robust_eb`).

Both work on standardized quantities: a site's deviation ``z = (y_k - mu) / sqrt(s_k)`` with
``s_k = v_k + tau^2``, and ``r_k = v_k / s_k``, the share of ``s_k`` that is sampling noise.

- ``"t"`` (the default): the site's standardized estimate is ``c t_4`` (``c = 5``), centered at
  the center; an outlying site keeps its own estimate. Most of this group's mass lies near the
  center, so a site two to three standard deviations out is nearly as likely normal as outlying
  and is about half shrunk.
- ``"nonlocal"``: the outlying site's *effect* is shifted from the center by
  ``delta sqrt(s_k)``, where ``delta`` has a moment density (a non-local prior in the sense of
  Johnson and Rossell 2010)::

      g(delta) = delta^2 / E[T^2] * f_T(delta),   T = c t_6,

  which vanishes at 0, so a site near the center is hardly counted as outlying. ``delta^2``
  times a t kernel with 6 degrees of freedom has the polynomial tail ``|delta|^-5`` of a t_4, so
  a site 20 or more standard deviations out is still taken for an outlier rather than explained
  by a huge tau^2.
  The t kernel is a scale mixture of normals, and ``delta^2`` times it a mixture of *moment
  normals* ``delta^2 / a N(delta; 0, a)``, ``a = c^2 / lambda``, over ``lambda ~ Gamma(2, rate
  3)``; the mixture is taken on a fixed grid of ``lambda``, so that the density of the site's
  estimate (the prior convolved with its sampling noise) and its posterior mean are closed form.
  The scale ``c`` (:data:`NONLOCAL_SCALE`) puts 5% of the outlying group's mass inside the normal
  group's central 95% range (``|delta| < 1.96``): the two groups overlap symmetrically, each
  claiming 5% of the other's typical range.
"""

from __future__ import annotations

import numpy as np
from scipy.special import gammaln, logsumexp

OUTLYING_GROUPS = ("t", "nonlocal")
# Degrees of freedom of the "t" group (near-normal a few SDs out, heavy-tailed beyond).
T_GROUP_DF = 4.0
T_GROUP_SCALE = 5.0
# Kernel degrees of freedom of the non-local group: delta^2 f_T(delta) then decays as |delta|^-5.
NONLOCAL_DF = 6.0
# 5% of the non-local group's mass lies within |delta| < 1.96 (see the module notes).
NONLOCAL_SCALE = 2.8
# Grid of the mixing variable lambda: log-spaced from far in its lower tail (normal components
# 100 c wide, for sites hundreds of SDs out) to past its bulk (Gamma(2, rate 3) has mean 2/3).
_LAMBDA = np.exp(np.linspace(np.log(1e-4), np.log(8.0), 16))
# Gamma(NONLOCAL_DF / 2 - 1, rate NONLOCAL_DF / 2) density times lambda (log-grid measure).
_LOG_MIX = (NONLOCAL_DF / 2 - 1) * np.log(_LAMBDA) - NONLOCAL_DF / 2 * _LAMBDA
_LOG_MIX -= logsumexp(_LOG_MIX)


def default_scale(group: str) -> float:
    """The outlying group's default scale ``c``."""
    return NONLOCAL_SCALE if group == "nonlocal" else T_GROUP_SCALE


def log_density(group: str, z: np.ndarray, r: np.ndarray, scale: float) -> np.ndarray:
    """Log density of the standardized deviation ``z`` under the outlying group (up to the
    common ``-log sqrt(s_k)``)."""
    if group == "t":
        nu = T_GROUP_DF
        const = (gammaln((nu + 1) / 2) - gammaln(nu / 2) - 0.5 * np.log(nu * np.pi)
                 - np.log(scale))
        return const - 0.5 * (nu + 1) * np.log1p(z**2 / (nu * scale**2))
    return logsumexp(_LOG_MIX + _component_log_density(z, r, scale)[0], axis=-1)


def _component_log_density(z, r, scale):
    """Per mixture component (last axis): log density of ``z`` under a moment-normal prior of
    variance ``a`` convolved with N(0, r), and the component's posterior of ``delta`` given ``z``
    before the ``delta^2`` weight (normal: mean ``m``, variance ``V``)."""
    a = scale**2 / _LAMBDA
    z, r = z[..., None], r[..., None]
    total = a + r
    b = a / total
    m, V = b * z, b * r
    logd = (-0.5 * np.log(2 * np.pi * total) - 0.5 * z**2 / total + np.log(m**2 + V)
            - np.log(a))
    return logd, m, V


def posterior_shift(group: str, z: np.ndarray, r: np.ndarray, scale: float) -> np.ndarray:
    """Posterior mean of the standardized effect shift ``delta`` under the outlying group."""
    if group == "t":
        return z          # the site keeps its own estimate
    logd, m, V = _component_log_density(z, r, scale)
    logw = _LOG_MIX + logd
    weights = np.exp(logw - logw.max(axis=-1, keepdims=True))
    # Under a moment-normal prior the posterior is the normal posterior N(m, V) reweighted by
    # delta^2, whose mean is E[delta^3] / E[delta^2] under N(m, V).
    shift = m * (m**2 + 3 * V) / (m**2 + V)
    return (weights * shift).sum(axis=-1) / weights.sum(axis=-1)


def draw_shift(group: str, shape: tuple[int, ...], scale: float,
               rng: np.random.Generator) -> np.ndarray:
    """Draws of the standardized effect shift ``delta`` of outlying sites (non-local group).

    A draw picks a mixture component by its weight, then ``|delta| / sqrt(a)`` from the chi
    distribution with 3 degrees of freedom (the moment normal's) and a random sign.
    """
    if group != "nonlocal":
        raise ValueError(f"group: draws of the shift are for the non-local group, got {group!r}")
    comp = rng.choice(_LAMBDA.size, size=shape, p=np.exp(_LOG_MIX))
    radius = np.sqrt(rng.chisquare(3.0, size=shape))
    sign = np.where(rng.random(shape) < 0.5, -1.0, 1.0)
    return sign * radius * scale / np.sqrt(_LAMBDA[comp])
