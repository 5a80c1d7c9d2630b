"""Random fused-solver problems and NumPy oracles (pooled estimate, lambda_max, KKT residual)."""

from __future__ import annotations

import numpy as np


def random_problem(seed: int, K: int, p: int, cond: float = 10.0):
    """Site estimates with unequal sizes and SPD weights of condition number ``cond``."""
    rng = np.random.default_rng(seed)
    theta_hat = 1.0 + 0.5 * rng.normal(size=(K, p))
    W = np.empty((K, p, p))
    for k in range(K):
        q, _ = np.linalg.qr(rng.normal(size=(p, p)))
        evals = np.geomspace(1.0, cond, p) if p > 1 else np.ones(1)
        W[k] = (q * (evals * rng.uniform(0.5, 2.0))) @ q.T
    W = 0.5 * (W + np.swapaxes(W, 1, 2))
    n = rng.integers(20, 300, size=K).astype(float)
    return theta_hat, W, n


def pooled_np(theta_hat, W, n):
    A = n[:, None, None] * W
    return np.linalg.solve(A.sum(axis=0), np.einsum("kij,kj->i", A, theta_hat))


def lambda_max_np(theta_hat, W, n, weights=None):
    weights = np.sqrt(n) if weights is None else weights
    A = n[:, None, None] * W
    grad = np.einsum("kij,kj->ki", A, theta_hat - pooled_np(theta_hat, W, n))
    return float(np.max(np.linalg.norm(grad, axis=1) / weights))


def kkt_residual_np(theta_hat, W, n, lam, fit, weights=None) -> float:
    """Largest violation of the l2 optimality conditions, relative to max_k ||A_k(theta_hat_k - u_bar)||.

    Per site: ||g_k + lam w_k v_k/||v_k|| || if unfused, (||g_k|| - lam w_k)_+ if fused, with
    g_k = n_k W_k (theta_k - theta_hat_k), v_k = theta_k - u; and ||sum_k g_k|| for the center.
    """
    weights = np.sqrt(n) if weights is None else weights
    A = n[:, None, None] * W
    g = np.einsum("kij,kj->ki", A, fit.theta - theta_hat)
    v = fit.theta - fit.center
    vnorm = np.linalg.norm(v, axis=1)
    tau = lam * weights
    unfused = vnorm > 0
    site = np.maximum(np.linalg.norm(g, axis=1) - tau, 0.0)
    site[unfused] = np.linalg.norm(g[unfused] + (tau[unfused] / vnorm[unfused])[:, None] * v[unfused], axis=1)
    scale = np.max(np.linalg.norm(np.einsum("kij,kj->ki", A, theta_hat - pooled_np(theta_hat, W, n)), axis=1))
    return float(max(site.max(), np.linalg.norm(g.sum(axis=0))) / scale)
