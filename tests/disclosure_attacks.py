"""Known attacks on released summaries, as an adversarial center would run them.

Each function takes only what a site sends (a SiteSummary fold, one or two GridSummary objects)
and tries to give back row-level data. The disclosure tests run them against what the package
releases and assert that they fail.
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import eigh
from scipy.optimize import least_squares, minimize_scalar, nnls


def rows_from_fold(J: np.ndarray, Omega: np.ndarray) -> np.ndarray:
    """Basis rows of a fold with as many rows as coefficients, from its J and Omega.

    Both moments are sums of rank-one terms in the same basis rows phi_i (J = -sum w_i phi_i phi_i',
    Omega = sum v_i phi_i phi_i'). With p rows the generalized eigenvectors V of (Omega, -J) satisfy
    Phi V = diagonal, so the rows of V^-1 are the phi_i up to scale; the intercept fixes the scale.
    """
    _, V = eigh(0.5 * (Omega + Omega.T), -0.5 * (J + J.T))
    rows = np.linalg.inv(V)
    return rows / rows[:, :1]


def matched_error(truth: np.ndarray, guess: np.ndarray) -> np.ndarray:
    """For each true row, the distance (max over coordinates) to the nearest guessed row."""
    t = np.atleast_2d(truth.T).T if truth.ndim == 1 else truth
    g = np.atleast_2d(guess.T).T if guess.ndim == 1 else guess
    return np.abs(t[:, None, :] - g[None, :, :]).max(-1).min(1)


def _kernel(u: np.ndarray) -> np.ndarray:
    return np.exp(-0.5 * u**2)


def _pooled(summary, role: str):
    """Kernel sums S0, S1 summed over folds (B, G); fold assignment no longer matters."""
    s = summary.nuisances[role]
    return s.M[..., 0, 0].sum(1), s.V[..., 0].sum(1), s.released


def difference_person(before, after, lo: float, hi: float) -> tuple[float, float, float]:
    """x, y and d of the one person in ``after`` but not in ``before`` (1-d Gaussian grid).

    The pooled kernel sums differ by that person's kernel weights k((g - x)/h) (S0) and the same
    weights times y (outcome nuisance) or d (treatment nuisance).
    """
    g = before.grid.points[:, 0]
    h = before.bandwidths[:, 0]
    a0, a1, rel_a = _pooled(after, "ml_l")
    b0, b1, rel_b = _pooled(before, "ml_l")
    m_a = _pooled(after, "ml_m")[1]
    m_b = _pooled(before, "ml_m")[1]
    rel = rel_a & rel_b
    if not rel.any():
        return 0.5 * (lo + hi), 0.0, 0.0          # nothing to difference: a blind guess
    diff0, diff_y, diff_d = (a0 - b0)[rel], (a1 - b1)[rel], (m_a - m_b)[rel]
    grid_b = np.broadcast_to(g[None, :], rel.shape)[rel]
    h_b = np.broadcast_to(h[:, None], rel.shape)[rel]

    def loss(x: float) -> float:
        return float(np.sum((diff0 - _kernel((grid_b - x) / h_b)) ** 2))

    cand = np.linspace(lo, hi, 2001)
    x0 = cand[np.argmin([loss(c) for c in cand])]
    step = cand[1] - cand[0]
    x = minimize_scalar(loss, bounds=(x0 - step, x0 + step), method="bounded",
                        options={"xatol": 1e-12}).x
    k = _kernel((grid_b - x) / h_b)
    kk = max(float(k @ k), 1e-300)
    return float(x), float(k @ diff_y / kk), float(k @ diff_d / kk)


def invert_fold(summary, role: str, fold: int, lo: float, hi: float) -> tuple[np.ndarray, np.ndarray]:
    """Every row's x and target in one fold of one grid summary (1-d Gaussian grid).

    The fold's released kernel sums at (bandwidth, grid point) are sum_i k((g - x_i)/h); with the
    fold's row count known, a non-negative fit on fine candidate positions seeds a nonlinear least
    squares over the row positions; the targets then solve a linear system.
    """
    s = summary.nuisances[role]
    m = int(np.clip(round(s.n_rows[fold]), 1, 40))   # a noisy count under privacy
    rel = s.released
    g = np.broadcast_to(summary.grid.points[:, 0][None, :], rel.shape)[rel]
    h = np.broadcast_to(summary.bandwidths[:, 0][:, None], rel.shape)[rel]
    S0 = s.M[:, fold, :, 0, 0][rel]
    S1 = s.V[:, fold, :, 0][rel]
    if S0.size == 0:                        # nothing released: spread the guesses
        return np.linspace(lo, hi, m), np.zeros(m)

    def design(x: np.ndarray) -> np.ndarray:
        return _kernel((g[:, None] - x[None, :]) / h[:, None])

    cand = np.linspace(lo, hi, 801)
    w, _ = nnls(design(cand), S0)
    if w.sum() > 0:
        start = np.interp((np.arange(m) + 0.5) / m, np.cumsum(w) / w.sum(), cand)
    else:                                   # nothing released: spread the guesses
        start = np.linspace(lo, hi, m)
    start = np.clip(start, lo + 1e-9, hi - 1e-9)
    fit = least_squares(lambda x: design(x).sum(1) - S0, start, bounds=(lo, hi), xtol=1e-14,
                        ftol=1e-14, gtol=1e-14, max_nfev=1000)
    x = fit.x
    y = np.linalg.lstsq(design(x), S1, rcond=None)[0]
    return x, y
