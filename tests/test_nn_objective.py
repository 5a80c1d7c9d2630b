"""hetmtl.nn.heads_objective: its value and hand-written gradient against autograd through a plain
per-task formulation, and against finite differences (gradcheck)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from hetmtl.nn import TaskLayout, TaskRows, heads_objective  # noqa: E402

pytestmark = pytest.mark.torch

EPS = 1e-6  # the variance floor of the standardized encodings


def per_task_objective(C, S, beta, alpha, b, y, task, w, gamma, mode):
    """The objective written row-wise, one task at a time (C (N, p), S (N, q), rows in any order)."""
    total = 0.0
    for r in range(beta.shape[0]):
        rows = task == r
        Cr, Sr, yr = C[rows], S[rows], y[rows]
        n = Cr.shape[0]
        total = total + w[r] * torch.mean((Cr @ beta[r] + Sr @ alpha[r] + b[r] - yr) ** 2)
        if gamma > 0 and C.shape[1] and S.shape[1]:
            if mode != "raw":
                Cr, Sr = Cr - Cr.mean(0), Sr - Sr.mean(0)
            if mode == "standardized":
                Cr = Cr / torch.sqrt((Cr ** 2).mean(0) + EPS)
                Sr = Sr / torch.sqrt((Sr ** 2).mean(0) + EPS)
            total = total + gamma * ((Cr.T @ Sr / n) ** 2).sum()
    return total


def problem(sizes, p, q, seed=0, shuffle=True):
    rng = np.random.default_rng(seed)
    R = len(sizes)
    task = np.repeat(np.arange(R), sizes)
    if shuffle:
        task = rng.permutation(task)
    N = task.size
    f = lambda *shape: torch.as_tensor(rng.normal(size=shape))  # noqa: E731
    C = f(N, p) * 2 + 1
    S = f(N, q)
    if p and q:
        S[:, 0] += 0.6 * C[:, -1]  # correlated encodings: a non-trivial penalty
    return dict(task=torch.as_tensor(task), C=C, S=S, beta=f(R, p), alpha=f(R, q), b=f(R), y=f(N),
                w=torch.as_tensor(rng.uniform(0.5, 2.0, size=R)))


def blocks_t(layout, rows_x):
    """Rows (N, k) to the padded features-first block (R, k, m)."""
    return layout.gather_t(rows_x.T)


@pytest.mark.parametrize("mode", ["standardized", "centered", "raw"])
@pytest.mark.parametrize("sizes, shuffle", [([7, 12, 3, 9], True), ([6, 6, 6], False)])
def test_value_and_gradients_match_per_task_autograd(mode, sizes, shuffle):
    P = problem(sizes, p=3, q=2, shuffle=shuffle)
    R, gamma = len(sizes), 0.7
    layout = TaskLayout.from_tasks(P["task"], R)
    assert layout.is_reshape == (not shuffle)
    rows = TaskRows.build(layout, P["y"], P["w"])
    leaves = {k: P[k].clone().requires_grad_() for k in ("C", "S", "beta", "alpha", "b")}
    got = heads_objective(blocks_t(layout, leaves["C"]), blocks_t(layout, leaves["S"]), leaves["beta"],
                          leaves["alpha"], leaves["b"], rows, gamma, mode)
    got.backward()
    ref_leaves = {k: P[k].clone().requires_grad_() for k in leaves}
    expect = per_task_objective(ref_leaves["C"], ref_leaves["S"], ref_leaves["beta"], ref_leaves["alpha"],
                                ref_leaves["b"], P["y"], P["task"], P["w"], gamma, mode)
    expect.backward()
    torch.testing.assert_close(got, expect, rtol=1e-12, atol=0)
    for k in leaves:
        torch.testing.assert_close(leaves[k].grad, ref_leaves[k].grad, rtol=1e-10, atol=1e-12, msg=k)


@pytest.mark.parametrize("mode", ["standardized", "centered", "raw"])
def test_gradcheck(mode):
    P = problem([5, 3, 4], p=2, q=2, seed=1)
    layout = TaskLayout.from_tasks(P["task"], 3)
    rows = TaskRows.build(layout, P["y"], P["w"])
    C_t = blocks_t(layout, P["C"]).contiguous().requires_grad_()
    S_t = blocks_t(layout, P["S"]).contiguous().requires_grad_()
    heads = [P[k].clone().requires_grad_() for k in ("beta", "alpha", "b")]

    def f(C_t, S_t, beta, alpha, b):
        return heads_objective(C_t, S_t, beta, alpha, b, rows, 0.9, mode)

    assert torch.autograd.gradcheck(f, (C_t, S_t, *heads))
    # a penalty term alone (the loss part vanishes with zero heads and responses equal to b)
    zero_rows = TaskRows.build(layout, P["b"][P["task"]], P["w"])
    g = lambda C_t, S_t: heads_objective(C_t, S_t, 0 * P["beta"], 0 * P["alpha"], P["b"], zero_rows,  # noqa: E731
                                         1.0, mode)
    assert torch.autograd.gradcheck(g, (C_t, S_t))


@pytest.mark.parametrize("p, q, gamma", [(0, 2, 0.5), (3, 0, 0.5), (3, 2, 0.0)])
def test_one_encoding_or_no_penalty(p, q, gamma):
    P = problem([4, 9], p=p, q=q, seed=2)
    layout = TaskLayout.from_tasks(P["task"], 2)
    rows = TaskRows.build(layout, P["y"], P["w"])
    C = P["C"].clone().requires_grad_()
    S = P["S"].clone().requires_grad_()
    got = heads_objective(blocks_t(layout, C), blocks_t(layout, S), P["beta"], P["alpha"], P["b"], rows,
                          gamma)
    got.backward()
    C2 = P["C"].clone().requires_grad_()
    S2 = P["S"].clone().requires_grad_()
    expect = per_task_objective(C2, S2, P["beta"], P["alpha"], P["b"], P["y"], P["task"], P["w"], gamma,
                                "standardized")
    expect.backward()
    torch.testing.assert_close(got, expect, rtol=1e-12, atol=0)
    torch.testing.assert_close(C.grad, C2.grad, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(S.grad, S2.grad, rtol=1e-10, atol=1e-12)


def test_rows_of_padded_layout_and_bad_mode():
    task = torch.tensor([1, 0, 1, 1, 0])
    layout = TaskLayout.from_tasks(task, 3)
    y = torch.arange(5, dtype=torch.float64)
    rows = TaskRows.build(layout, y, torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64))
    np.testing.assert_array_equal(rows.y[:, 0].numpy(), [[1, 4, 0], [0, 2, 3], [0, 0, 0]])
    np.testing.assert_allclose(rows.weight[:, 0].numpy(), [[0.5, 0.5, 0], [2 / 3] * 3, [0, 0, 0]])
    np.testing.assert_array_equal(rows.n.flatten().numpy(), [2, 3, 1])
    assert rows.mask is not None
    empty = torch.zeros(3, 0, 3, dtype=torch.float64)
    with pytest.raises(ValueError, match="mode: must be one of"):
        heads_objective(empty, empty, torch.zeros(3, 0), torch.zeros(3, 0), torch.zeros(3), rows, 1.0, "cosine")
