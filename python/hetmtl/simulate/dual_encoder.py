"""Multi-task regression data with covariate shift and posterior drift (dual-encoder designs).

For R tasks, task r has n_r rows::

    X_r ~ N(mu_r, Sigma(rho_r)),   Sigma(rho)_ij = rho (i != j), 1 on the diagonal
    y_r = beta_r' g(X_r) + alpha_r' h_r(X_r) + e,   e ~ N(0, noise^2)

* ``g`` (shared, nonlinear): ``g_k(x) = tanh(w_k' x)`` for k = 1..n_shared with fixed random unit
  directions w_k;
* ``h_r`` (task specific): ``h_r1(x) = sin(v_r' x)`` and ``h_r2(x) = (u_r' x)^2 / 2`` with the task's
  own unit directions;
* distribution heterogeneity ``covariate_shift = s``: ``mu_r = s * N(0, I_d)`` and
  ``rho_r = 0.3 + 0.3 s U(-1, 1)`` clipped to [0, 0.9] (``s = 0``: every task has the same P(X));
* posterior heterogeneity ``h``: ``beta_r = beta_0 + h * delta_r`` with ``||delta_r|| = 1`` and
  ``||beta_0|| = signal``; the task-specific part has ``||alpha_r|| = specific``;
* ``n_outliers`` tasks (the last ones) get an unrelated ``beta_r`` (norm ``2 * signal``, random
  direction).

Each task's rows are split into a fitting part and a held-out test part (``test_fraction``); the
fitting part is what an estimator sees (it makes its own validation split). The noiseless
regression function on the test rows is returned as well.

Randomness: one ``random_state`` becomes a SeedSequence; fixed-key child streams give the shared
design (w, beta_0), and per task its covariate law, directions, delta_r, X and e, so that for a
seed a task's X and e do not depend on ``h``, ``n_outliers`` or ``specific`` (common random
numbers across the levels of a study).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from .._util.tasks import as_seed_sequence as _seed
from .._util.validation import check_fraction
from ._random import child_rng as _rng
from ._random import task_sizes as _sizes

__all__ = ["DualEncoderTasks", "make_dual_encoder_tasks", "per_task_rmse"]

_SHARED, _TASK = 0, 1
_T_LAW, _T_DIR, _T_DELTA, _T_X, _T_E, _T_SPLIT, _T_OUT = range(7)


def _unit(rng: np.random.Generator, *shape: int) -> np.ndarray:
    v = rng.normal(size=shape)
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


@dataclass(frozen=True)
class DualEncoderTasks:
    """One simulated multi-task data set.

    Attributes
    ----------
    X, y, task : ndarray
        Rows to fit on (all tasks stacked, ``task`` labels 0..R-1).
    X_test, y_test, task_test : ndarray
        Held-out rows per task.
    f_test : ndarray
        Noiseless regression function on the test rows.
    beta, alpha : ndarray of shape (R, n_shared), (R, 2)
        True heads; ``beta0`` the common center.
    outlier : ndarray of bool, shape (R,)
    noise : float
    """

    X: np.ndarray
    y: np.ndarray
    task: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    task_test: np.ndarray
    f_test: np.ndarray
    beta: np.ndarray
    beta0: np.ndarray
    alpha: np.ndarray
    outlier: np.ndarray
    noise: float

    @property
    def n_tasks(self) -> int:
        return int(self.beta.shape[0])


def make_dual_encoder_tasks(n_tasks: int = 4, n_per_task: int | Sequence[int] = 100, d: int = 10, *,
                            h: float = 0.0, covariate_shift: float = 0.5, n_outliers: int = 0,
                            n_shared: int = 4, signal: float = 2.0, specific: float = 0.5,
                            noise: float = 0.5, test_fraction: float = 0.2,
                            random_state: Any = None) -> DualEncoderTasks:
    """Simulate R related regression tasks (see the module docstring for the model).

    Parameters
    ----------
    n_tasks : int
        R (at least 1).
    n_per_task : int or sequence of int
        Rows per task before the test split (unequal sizes allowed).
    d : int
        Number of covariates.
    h : float
        Posterior heterogeneity: distance of each beta_r from the common beta_0.
    covariate_shift : float
        Distribution heterogeneity of X across tasks (0: identical).
    n_outliers : int
        Tasks with an unrelated beta_r (the last ones).
    n_shared : int
        Number of shared nonlinear features g_k.
    signal, specific, noise : float
        ``||beta_0||``, ``||alpha_r||`` and the noise standard deviation.
    test_fraction : float
        Share of each task's rows held out as test rows.
    random_state : None, int or SeedSequence

    Returns
    -------
    DualEncoderTasks
    """
    R = int(n_tasks)
    if R < 1:
        raise ValueError(f"n_tasks: must be at least 1, got {n_tasks!r}")
    if int(d) < 2:
        raise ValueError(f"d: must be at least 2, got {d!r}")
    if not 0 <= int(n_outliers) <= R:
        raise ValueError(f"n_outliers: must lie in [0, n_tasks], got {n_outliers!r}")
    for name, val in (("h", h), ("covariate_shift", covariate_shift), ("signal", signal),
                      ("specific", specific), ("noise", noise)):
        if not (np.isfinite(val) and val >= 0):
            raise ValueError(f"{name}: must be a finite non-negative number, got {val!r}")
    check_fraction(test_fraction, "test_fraction")
    sizes = _sizes(n_per_task, R)
    root = _seed(random_state)
    shared = _rng(root, _SHARED)
    W = _unit(shared, int(n_shared), int(d))
    beta0 = signal * _unit(shared, int(n_shared))
    outlier = np.arange(R) >= R - int(n_outliers)

    X_fit, y_fit, t_fit, X_te, y_te, t_te, f_te = [], [], [], [], [], [], []
    beta = np.empty((R, int(n_shared)))
    alpha = np.empty((R, 2))
    for r in range(R):  # data generation only (not an estimator's hot path)
        law = _rng(root, _TASK, r, _T_LAW)
        mu = covariate_shift * law.normal(size=d)
        rho = float(np.clip(0.3 + 0.3 * covariate_shift * law.uniform(-1, 1), 0.0, 0.9))
        dirs = _unit(_rng(root, _TASK, r, _T_DIR), 2, int(d))
        delta = _unit(_rng(root, _TASK, r, _T_DELTA), int(n_shared))
        beta[r] = 2 * signal * _unit(_rng(root, _TASK, r, _T_OUT), int(n_shared)) if outlier[r] else beta0 + h * delta
        alpha[r] = specific * _unit(_rng(root, _TASK, r, _T_DIR, 1), 2)
        n = int(sizes[r])
        # exchangeable correlation: X = mu + sqrt(rho) z0 1' + sqrt(1 - rho) Z
        xr = _rng(root, _TASK, r, _T_X)
        X = mu + np.sqrt(rho) * xr.normal(size=(n, 1)) + np.sqrt(1 - rho) * xr.normal(size=(n, d))
        G = np.tanh(X @ W.T)
        Hr = np.column_stack([np.sin(X @ dirs[0]), 0.5 * (X @ dirs[1]) ** 2])
        f = G @ beta[r] + Hr @ alpha[r]
        y = f + noise * _rng(root, _TASK, r, _T_E).normal(size=n)
        n_test = max(1, int(round(test_fraction * n)))
        test = np.zeros(n, bool)
        test[_rng(root, _TASK, r, _T_SPLIT).permutation(n)[:n_test]] = True
        X_fit.append(X[~test]); y_fit.append(y[~test]); t_fit.append(np.full((~test).sum(), r))
        X_te.append(X[test]); y_te.append(y[test]); t_te.append(np.full(test.sum(), r)); f_te.append(f[test])
    cat = np.concatenate
    return DualEncoderTasks(X=np.vstack(X_fit), y=cat(y_fit), task=cat(t_fit), X_test=np.vstack(X_te),
                            y_test=cat(y_te), task_test=cat(t_te), f_test=cat(f_te), beta=beta, beta0=beta0,
                            alpha=alpha, outlier=outlier, noise=float(noise))


def per_task_rmse(y_true: np.ndarray, y_pred: np.ndarray, task: np.ndarray, n_tasks: int) -> np.ndarray:
    """Root mean squared error per task (R,).

    Parameters
    ----------
    y_true, y_pred : ndarray of shape (N,)
        Responses and predictions.
    task : ndarray of int, shape (N,)
        Task code of each row.
    n_tasks : int
        Number of tasks R.

    Returns
    -------
    ndarray of shape (R,)
    """
    n = np.bincount(task, minlength=n_tasks)
    return np.sqrt(np.bincount(task, (y_true - y_pred) ** 2, minlength=n_tasks) / np.maximum(n, 1))
