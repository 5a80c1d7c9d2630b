"""The head and center steps of the dual encoder solve the joint head problem (heads and center
together, encodings fixed): checked against CVXPY."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")
cp = pytest.importorskip("cvxpy")

from hetmtl.dual.alternating import AltConfig, Heads, shift_center, solve_task_heads, weighted_center  # noqa: E402

pytestmark = pytest.mark.torch


def config(R, pen, ridge):
    return AltConfig(loss_weights=np.ones(R), pen_beta=pen, pen_alpha=np.zeros(R), penalty_beta="l2",
                     penalty_alpha="none", center="geomedian", gamma=0.0, orthogonality="standardized",
                     encoder_steps=1, encoder_order="joint", lr=1e-2, weight_decay=0.0, max_epochs=1,
                     patience=1, head_tol=1e-11, head_ridge=ridge)


def block_descent(S, C, y, sizes, cfg, rounds):
    R, q, p = sizes.size, S.shape[1], C.shape[1]
    heads = Heads.zeros(R, q, p)
    for _ in range(rounds):
        heads = solve_task_heads(S, C, y, sizes, heads, cfg, max_iter=100000)
        heads = shift_center(S, C, y, sizes, heads, cfg)
        heads.beta_center = weighted_center(heads.beta, cfg.pen_beta, "geomedian")
    return heads


# A ridge per task (as the estimator sets it: a fixed level over each task's rows) is solved by
# rescaling each task's objective for the compiled solver's single ridge.
PER_TASK_RIDGE = 8.0 / np.array([25, 40, 15, 30])


@pytest.mark.parametrize("pen_level, ridge", [(0.05, 0.0), (0.3, 0.01), (5.0, 0.0), (0.05, PER_TASK_RIDGE),
                                              (0.3, PER_TASK_RIDGE)])
def test_block_descent_reaches_the_joint_optimum(pen_level, ridge):
    rng = np.random.default_rng(3)
    sizes = np.array([25, 40, 15, 30])
    ridge = np.broadcast_to(ridge, sizes.shape)
    R, N, q, p = sizes.size, sizes.sum(), 2, 3
    task = np.repeat(np.arange(R), sizes)
    S, C = rng.normal(size=(N, q)), rng.normal(size=(N, p))
    beta = np.array([1.0, -0.5, 2.0]) + 0.3 * rng.normal(size=(R, p))
    y = (C * beta[task]).sum(1) + S @ rng.normal(size=q) + rng.normal(size=N)
    pen = pen_level * np.sqrt(p / sizes)
    heads = block_descent(S, C, y, sizes, config(R, pen, ridge.copy()), rounds=200)

    A, B, b, c = cp.Variable((R, q)), cp.Variable((R, p)), cp.Variable(R), cp.Variable(p)
    obj = 0
    for r in range(R):
        m = task == r
        obj += cp.sum_squares(y[m] - S[m] @ A[r] - C[m] @ B[r] - b[r]) / m.sum()
        obj += pen[r] * cp.norm(B[r] - c, 2) + ridge[r] / 2 * (cp.sum_squares(A[r]) + cp.sum_squares(B[r]))
    prob = cp.Problem(cp.Minimize(obj))
    prob.solve(solver=cp.CLARABEL)

    def value(alpha, beta_, intercept, center):
        tot = 0.0
        for r in range(R):
            m = task == r
            res = y[m] - S[m] @ alpha[r] - C[m] @ beta_[r] - intercept[r]
            tot += res @ res / m.sum() + pen[r] * np.linalg.norm(beta_[r] - center)
            tot += ridge[r] / 2 * (alpha[r] @ alpha[r] + beta_[r] @ beta_[r])
        return tot

    ours = value(heads.alpha, heads.beta, heads.intercept, heads.beta_center)
    assert ours <= prob.value + 1e-6 * (1 + abs(prob.value))
    np.testing.assert_allclose(heads.beta, B.value, atol=5e-4)
    if pen_level == 5.0:  # every task fused: the center is the pooled fit, not stuck at the start
        np.testing.assert_allclose(heads.beta, np.tile(heads.beta_center, (R, 1)), atol=1e-12)
        assert np.linalg.norm(heads.beta_center) > 1.0
