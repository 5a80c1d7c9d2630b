"""Random-effects empirical Bayes (BLUP) for many data sets at once.

Each row of ``y`` (shape ``(B, K)``) is one data set of K site estimates with within-site
variances ``v``. The random-effects model ``y_k ~ N(mu, v_k + tau^2)`` is fitted per row (tau^2 by
DerSimonian-Laird or REML, with the same definitions as :func:`hetmtl.fusion.heterogeneity.
meta_analysis` and metafor's ``rma``), and each site gets its best linear unbiased prediction

    blup_k = mu + B_k (y_k - mu),   B_k = tau^2 / (tau^2 + v_k),

with metafor's ``blup()`` prediction variance ``B_k v_k + (1 - B_k)^2 Var(mu)``. Rows are the
batch axis of bootstrap draws and of simulation replications, so nothing loops over sites or
draws. An optional ``mask`` leaves sites out of the fit of ``mu`` and ``tau^2`` (they still get a
prediction).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._util.validation import check_choice
from .tau2 import pool_rows, reml_loglik_rows, reml_score_rows, trace_P_rows

TAU2_METHODS = ("REML", "DL")
#: How the BLUPs' and the center's intervals are formed: normal quantiles ("z") or the
#: Knapp-Hartung adjustment with t quantiles ("knha"), as metafor's ``test``.
BLUP_TESTS = ("z", "knha")


@dataclass(frozen=True)
class RandomEffectsFit:
    """Random-effects fit of a batch of data sets (leading axis B).

    Attributes
    ----------
    mu, mu_var, tau2 : ndarray of shape (B,)
        Pooled mean, its variance ``1 / sum_k (v_k + tau^2)^-1`` and the between-site variance.
    shrinkage : ndarray of shape (B, K)
        ``B_k = tau^2 / (tau^2 + v_k)``: the weight of a site's own estimate in its BLUP.
    blup, blup_var : ndarray of shape (B, K)
        Predictions and their variances (metafor's ``blup()``).
    """

    mu: np.ndarray
    mu_var: np.ndarray
    tau2: np.ndarray
    shrinkage: np.ndarray
    blup: np.ndarray
    blup_var: np.ndarray


def as_batch(y, v, mask=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Broadcast estimates, variances and mask to float/bool arrays of shape (B, K)."""
    y2 = np.atleast_2d(np.asarray(y, dtype=float))
    v2 = np.broadcast_to(np.atleast_2d(np.asarray(v, dtype=float)), y2.shape)
    m2 = np.ones(y2.shape, bool) if mask is None else np.broadcast_to(np.atleast_2d(mask), y2.shape)
    return y2, v2, m2


def tau2_dl(y, v, mask=None) -> np.ndarray:
    """DerSimonian-Laird ``max(0, (Q - (k - 1)) / tr P)`` per row over the masked-in sites."""
    y, v, m = as_batch(y, v, mask)
    w = m / v
    mu, _ = pool_rows(y, w)
    Q = (w * (y - mu[:, None]) ** 2).sum(axis=1)
    df = m.sum(axis=1) - 1.0
    with np.errstate(invalid="ignore", divide="ignore"):
        t = (Q - df) / trace_P_rows(w)
    return np.where(df > 0, np.maximum(t, 0.0), 0.0)


def tau2_reml(y, v, mask=None, *, tol: float = 1e-10, max_iter: int = 200) -> np.ndarray:
    """REML tau^2 per row by Fisher scoring from the Hedges start, as metafor does.

    A step that would leave ``[0, inf)`` goes to 0 when the restricted score at 0 is not positive
    (0 is then the constrained optimum) and is halved until it stays inside otherwise. A result
    with lower restricted likelihood than 0 is replaced by 0. Rows still moving after
    ``max_iter`` steps take the best of their last iterate and 0.
    """
    y, v, m = as_batch(y, v, mask)
    k = m.sum(axis=1)
    ym = np.where(m, y, 0.0)
    mean_y = ym.sum(axis=1) / k
    var_y = np.where(m, (y - mean_y[:, None]) ** 2, 0.0).sum(axis=1) / np.maximum(k - 1, 1)
    t = np.maximum(0.0, var_y - np.where(m, v, 0.0).sum(axis=1) / k)
    t = np.where(k > 1, t, 0.0)
    vt = np.where(m, v, np.nan)
    scale = np.nanmedian(vt, axis=1)
    active = k > 1
    score0 = reml_score_rows(y, v, m, np.zeros_like(t))[0]
    for _ in range(max_iter):
        if not active.any():
            break
        score, info = reml_score_rows(y, v, m, t)
        step = np.where(active, score / info, 0.0)
        new = t + step
        outside = new < 0
        # Halve until inside: the smallest power of two with t + step / 2^j >= 0.
        with np.errstate(divide="ignore", invalid="ignore"):
            halvings = np.ceil(np.log2(np.where(outside & (t > 0), -step / t, 1.0)))
        halved = t + step / 2.0 ** np.maximum(halvings, 0.0)
        new = np.where(outside, np.where(score0 <= 0, 0.0, np.maximum(halved, 0.0)), new)
        done = np.abs(new - t) <= tol * np.maximum(new, scale)
        t = new
        active &= ~done
    better_at_zero = reml_loglik_rows(y, v, m, np.zeros_like(t)) > reml_loglik_rows(y, v, m, t)
    return np.where(better_at_zero | (k <= 1), 0.0, t)


def tau2_estimate(y, v, mask=None, method: str = "REML") -> np.ndarray:
    """tau^2 per row by ``method`` (``"REML"`` or ``"DL"``)."""
    check_choice(method, "tau2_method", TAU2_METHODS)
    return tau2_reml(y, v, mask) if method == "REML" else tau2_dl(y, v, mask)


def knapp_hartung(fit: RandomEffectsFit, y, v, mask=None) -> tuple[RandomEffectsFit, np.ndarray]:
    """The Knapp-Hartung (Hartung-Knapp-Sidik-Jonkman) adjustment of a random-effects fit: Var(mu)
    scaled by ``q = sum_k w_k (y_k - mu)^2 / (K - 1)`` (``w_k = 1 / (v_k + tau^2)``, over the sites
    fitted), the prediction variances recomputed with it, and ``K - 1`` degrees of freedom for t
    quantiles (metafor's ``test="knha"``, without its ad hoc truncation of q at 1).

    With few sites a normal quantile around the REML estimate undercovers (tau^2 is often
    estimated as 0 when it is not); the t quantile and the residual scale ``q`` carry that
    uncertainty.

    Returns
    -------
    fit : RandomEffectsFit
        ``fit`` with the adjusted ``mu_var`` and ``blup_var``.
    df : ndarray of shape (B,)
        Degrees of freedom (at least 1).
    """
    y, v, m = as_batch(y, v, mask)
    w = m / (v + fit.tau2[:, None])
    k = m.sum(axis=1)
    df = np.maximum(k - 1.0, 1.0)
    q = (w * (y - fit.mu[:, None]) ** 2).sum(axis=1) / df
    mu_var = q * fit.mu_var
    blup_var = fit.shrinkage * v + (1.0 - fit.shrinkage) ** 2 * mu_var[:, None]
    return RandomEffectsFit(mu=fit.mu, mu_var=mu_var, tau2=fit.tau2, shrinkage=fit.shrinkage, blup=fit.blup,
                            blup_var=blup_var), df


def random_effects(y, v, mask=None, method: str = "REML", tau2=None) -> RandomEffectsFit:
    """Fit the random-effects model per row and predict every site (see module notes).

    Parameters
    ----------
    y, v : array_like of shape (B, K) or (K,)
        Estimates and within-site variances.
    mask : array_like of bool, optional
        Sites used to fit ``mu`` and ``tau^2`` (default all).
    method : {"REML", "DL"}
        Estimator of tau^2 (ignored when ``tau2`` is given).
    tau2 : array_like of shape (B,), optional
        A given between-site variance.
    """
    y, v, m = as_batch(y, v, mask)
    t = tau2_estimate(y, v, m, method) if tau2 is None else np.broadcast_to(
        np.asarray(tau2, float), y.shape[:1])
    mu, mu_var = pool_rows(y, m / (v + t[:, None]))
    shrink = t[:, None] / (t[:, None] + v)
    pred = mu[:, None] + shrink * (y - mu[:, None])
    pred_var = shrink * v + (1.0 - shrink) ** 2 * mu_var[:, None]
    return RandomEffectsFit(mu=mu, mu_var=mu_var, tau2=np.asarray(t, float), shrinkage=shrink,
                            blup=pred, blup_var=pred_var)
