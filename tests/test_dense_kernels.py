"""The compiled core's dense Cholesky kernel (the definiteness test of every weight matrix and the
Newton systems of the fused solver), called through the bindings and checked against NumPy."""

from __future__ import annotations

import numpy as np
import pytest

from hetmtl import _core


def spd_matrix(p: int, cond: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(p, p)))
    a = (q * np.geomspace(1.0, cond, p)) @ q.T
    return 0.5 * (a + a.T)


@pytest.mark.parametrize("p", [1, 2, 3, 8, 9, 17, 50, 120])
def test_cholesky_matches_numpy(p):
    a = spd_matrix(p, 1e4, seed=p)
    ok, lower = _core.dense_cholesky(a)
    assert ok
    np.testing.assert_allclose(lower, np.linalg.cholesky(a), rtol=1e-9, atol=1e-12 * np.abs(a).max())
    assert np.allclose(np.triu(lower, 1), 0.0)


@pytest.mark.parametrize("p", [2, 5, 9, 40])
def test_cholesky_rejects_indefinite(p):
    a = spd_matrix(p, 10.0, seed=p)
    w, v = np.linalg.eigh(a)
    w[p // 2] = -1e-3  # one negative eigenvalue in the middle of the spectrum
    ok, _ = _core.dense_cholesky((v * w) @ v.T)
    assert not ok
    ok, _ = _core.dense_cholesky(np.zeros((p, p)))
    assert not ok
