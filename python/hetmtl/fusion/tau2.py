"""Estimators of the between-site variance tau^2 of one scalar effect (used by
:func:`hetmtl.fusion.heterogeneity.meta_analysis`; definitions as in metafor)."""

from __future__ import annotations

import math
import warnings

import numpy as np
from scipy import optimize

from .fused import ConvergenceWarning


# Row-wise kernels: each row of ``y``/``w``/``v`` is one meta-analysis, ``m`` marks the sites a
# row uses (the batched fits of :mod:`hetmtl.fusion.blup` run many at once); the scalar helpers
# below are these on a single row.
def pool_rows(y: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weighted mean per row and its variance ``1 / sum w``."""
    sw = w.sum(axis=1)
    return (w * y).sum(axis=1) / sw, 1.0 / sw


def trace_P_rows(w: np.ndarray) -> np.ndarray:
    """tr(P) for ``P = W - w w' / sum w``: ``sum w - sum w^2 / sum w``, per row."""
    sw = w.sum(axis=1)
    return sw - (w**2).sum(axis=1) / sw


def trace_PP_rows(w: np.ndarray) -> np.ndarray:
    """tr(P P), the sum of squared entries of the symmetric P, per row."""
    sw = w.sum(axis=1)
    s2 = (w**2).sum(axis=1)
    return s2 - 2.0 * (w**3).sum(axis=1) / sw + s2**2 / sw**2


def reml_score_rows(y: np.ndarray, v: np.ndarray, m: np.ndarray,
                    t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Twice the REML score, ``y'PPy - tr P``, and the Fisher information factor ``tr(PP)``."""
    w = m / (v + t[:, None])
    mu, _ = pool_rows(y, w)
    Py = w * (y - mu[:, None])  # P y, since P annihilates the constant
    return (Py**2).sum(axis=1) - trace_P_rows(w), trace_PP_rows(w)


def reml_loglik_rows(y: np.ndarray, v: np.ndarray, m: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Restricted log-likelihood up to a constant that does not depend on tau^2."""
    w = m / (v + t[:, None])
    mu, mu_var = pool_rows(y, w)
    logdet = np.where(m, np.log(v + t[:, None]), 0.0).sum(axis=1)
    return -0.5 * (logdet - np.log(mu_var) + (w * (y - mu[:, None]) ** 2).sum(axis=1))


def _one_row(*arrays: np.ndarray) -> tuple[np.ndarray, ...]:
    return tuple(np.asarray(a, dtype=float)[None, :] for a in arrays)


def _all_sites(y: np.ndarray) -> np.ndarray:
    return np.ones((1, y.size), dtype=bool)


def pool(y: np.ndarray, w: np.ndarray) -> tuple[float, float]:
    """Weighted mean and its standard error ``sqrt(1 / sum w)``."""
    mu, var = pool_rows(*_one_row(y, w))
    return float(mu[0]), math.sqrt(var[0])


def trace_P(w: np.ndarray) -> float:
    """tr(P) of one meta-analysis (see :func:`trace_P_rows`)."""
    return float(trace_P_rows(*_one_row(w))[0])


def trace_PP(w: np.ndarray) -> float:
    """tr(P P) of one meta-analysis (see :func:`trace_PP_rows`)."""
    return float(trace_PP_rows(*_one_row(w))[0])


def reml_score(y: np.ndarray, v: np.ndarray, tau2: float) -> tuple[float, float]:
    """Twice the REML score and ``tr(PP)`` of one meta-analysis at ``tau2``."""
    score, info = reml_score_rows(*_one_row(y, v), _all_sites(y), np.array([tau2]))
    return float(score[0]), float(info[0])


def reml_loglik(y: np.ndarray, v: np.ndarray, tau2: float) -> float:
    """Restricted log-likelihood of the intercept-only model (metafor's, constant included)."""
    k = y.size
    core = reml_loglik_rows(*_one_row(y, v), _all_sites(y), np.array([tau2]))[0]
    return float(core - 0.5 * (k - 1) * math.log(2.0 * math.pi) + 0.5 * math.log(k))


def reml_tau2(y: np.ndarray, v: np.ndarray, vt: float, tol: float,
               max_iter: int) -> tuple[float, int, bool, list[str]]:
    """REML estimate of tau^2 >= 0 by Fisher scoring, with its iteration count, convergence flag
    and notes; see :func:`hetmtl.fusion.heterogeneity.meta_analysis` (Notes)."""
    notes: list[str] = []
    tau2 = max(0.0, float(np.var(y, ddof=1) - v.mean()))  # Hedges' estimator, metafor's start
    converged = False
    it = 0
    while it < max_iter:
        it += 1
        score, info = reml_score(y, v, tau2)
        step = score / info
        if tau2 + step < 0.0:
            if reml_score(y, v, 0.0)[0] <= 0.0:
                new = 0.0  # 0 is a KKT point of the constrained problem: go there directly
            else:
                while tau2 + step < 0.0:
                    step /= 2.0
                new = tau2 + step
        else:
            new = tau2 + step
        change = abs(new - tau2)
        tau2 = new
        if change <= tol * max(tau2, vt):
            converged = True
            break
    if not converged:
        tau2, converged = reml_bounded(y, v, vt, tol)
        notes.append(f"REML: Fisher scoring did not converge in {max_iter} iterations; tau^2 from "
                     "a bounded maximization of the restricted likelihood"
                     + ("" if converged else " (which did not converge either)"))
        if not converged:
            warnings.warn("meta_analysis: the REML estimate of tau^2 did not converge",
                          ConvergenceWarning, stacklevel=3)
    if tau2 > 0.0 and reml_loglik(y, v, 0.0) > reml_loglik(y, v, tau2):
        notes.append("REML: the iterations stopped at a point with lower restricted likelihood "
                     "than tau^2 = 0; tau^2 set to 0")
        tau2 = 0.0
    return tau2, it, converged, notes


def reml_bounded(y: np.ndarray, v: np.ndarray, vt: float, tol: float) -> tuple[float, bool]:
    """Maximize the restricted likelihood on [0, upper] (all stationary points lie inside)."""
    k = y.size
    spread = float(np.ptp(y))
    # For tau^2 >= max(v) the score is negative once tau^2 > 4 k range(y)^2 / (k - 1).
    upper = 2.0 * max(float(v.max()), 4.0 * k * spread**2 / (k - 1)) + vt
    res = optimize.minimize_scalar(lambda t: -reml_loglik(y, v, t), bounds=(0.0, upper),
                                   method="bounded", options={"xatol": tol * vt, "maxiter": 500})
    tau2 = float(res.x)
    # Brent's bounded search never evaluates the end point itself.
    if reml_loglik(y, v, 0.0) >= -float(res.fun):
        tau2 = 0.0
    return tau2, bool(res.success)
