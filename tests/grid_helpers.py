"""Shared references for the kernel grid tests: every kernel weight evaluated directly with NumPy."""

from __future__ import annotations

import numpy as np


def reference_sums(X, Y, folds, F, axes, h, kernel, fit, support):
    """Direct NumPy evaluation of every kernel weight (n x G), then the moments per fold."""
    d = X.shape[1]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, d)
    U = (X[:, None, :] - grid[None]) / h
    if kernel == "gaussian":
        K = np.exp(-0.5 * U ** 2).prod(-1)
        inside = (np.abs(U) <= support).all(-1)
    else:
        K = np.maximum(0.0, 1.0 - U ** 2).prod(-1)
        inside = (np.abs(U) < 1.0).all(-1)
    ones = np.ones(U.shape[:2] + (1,))
    Z = ones if fit == "constant" else np.concatenate([ones, X[:, None, :] - grid[None]], -1)
    M = np.stack([np.einsum("ig,igp,igq->gpq", K * (folds == f)[:, None], Z, Z) for f in range(F)])
    V = np.stack([np.einsum("ig,igp,it->gpt", K * (folds == f)[:, None], Z, Y) for f in range(F)])
    count = np.stack([(inside & (folds == f)[:, None]).sum(0) for f in range(F)]).astype(float)
    return M, V, count
