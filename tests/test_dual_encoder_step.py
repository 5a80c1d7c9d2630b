"""The dual encoder's encoder step: its loss and gradients against the model written with a Python
loop over per-task encoders (and against the row-wise stacked formulation), and its Adam step."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from hetmtl.dual._encoder_step import EncoderStep  # noqa: E402
from hetmtl.dual.alternating import DualNet, predict_rows  # noqa: E402
from hetmtl.nn import StackedMLP, TaskLayout, orthogonality_penalty, task_mse, torch_generator  # noqa: E402

pytestmark = pytest.mark.torch

F = torch.nn.functional
ACT = {"relu": torch.relu, "tanh": torch.tanh, "gelu": F.gelu}


def make_net(R, d, p, q, hidden, activation, seed=0):
    gen = torch_generator(np.random.SeedSequence(seed))

    def stack(n, width):
        return StackedMLP(n, d, width, hidden, activation, generator=gen, dtype=torch.float64) if width else None

    return DualNet(stack(1, p), stack(R, q))


def make_rows(sizes, d, seed=0):
    rng = np.random.default_rng(seed)
    task = torch.as_tensor(np.repeat(np.arange(len(sizes)), sizes))  # sorted by task, as in fit
    X = torch.as_tensor(rng.normal(size=(task.numel(), d)))
    y = torch.as_tensor(rng.normal(size=task.numel()))
    return X, y, task


def make_heads(R, p, q, seed=1):
    rng = np.random.default_rng(seed)
    return tuple(torch.as_tensor(rng.normal(size=s)) for s in ((R, q), (R, p), (R,)))


def mlp_rows(net: StackedMLP, r: int, x):
    """Network r of a stack applied to rows, layer by layer (the plain reference)."""
    for l, (w, b) in enumerate(zip(net.weights, net.biases)):
        x = F.linear(x, w[r].T, b[r])
        if l < len(net.weights) - 1:
            x = ACT[net.activation](x)
    return x


def standardize(Z, mode):
    if mode != "raw":
        Z = Z - Z.mean(0)
    if mode == "standardized":
        Z = Z / torch.sqrt((Z ** 2).mean(0) + 1e-6)
    return Z


def looped_loss(net, X, y, task, heads, w, gamma, mode):
    """The model written with a Python loop over the tasks' own encoders."""
    alpha, beta, b = heads
    total = 0.0
    for r in range(alpha.shape[0]):
        Xr = X[task == r]
        S = mlp_rows(net.specific, r, Xr) if net.specific is not None else Xr[:, :0]
        C = mlp_rows(net.shared, 0, Xr) if net.shared is not None else Xr[:, :0]
        total = total + w[r] * torch.mean((S @ alpha[r] + C @ beta[r] + b[r] - y[task == r]) ** 2)
        if gamma > 0 and S.shape[1] and C.shape[1]:
            total = total + gamma * ((standardize(C, mode).T @ standardize(S, mode) / Xr.shape[0]) ** 2).sum()
    return total


def stacked_rows_loss(net, X, y, task, heads, w, gamma, mode):
    """The row-wise stacked formulation the fit used before the features-first step."""
    R = heads[0].shape[0]
    layout = TaskLayout.from_tasks(task, R)
    pred, S_pad, C_pad, mask = predict_rows(net, heads, X, task, layout)
    loss = (w * task_mse(pred - y, task, R)).sum()
    if gamma > 0 and net.p and net.q:
        loss = loss + gamma * orthogonality_penalty(C_pad, S_pad, mask, mode)
    return loss


def grads_of(net, loss):
    params = list(net.parameters())
    for p in params:
        p.grad = None
    loss.backward()
    return loss.detach(), [p.grad.clone() for p in params]


def build_step(net, X, y, task, w, gamma, mode, groups=None, lr=1e-2, weight_decay=1e-3):
    layout = TaskLayout.from_tasks(task, w.numel())
    groups = [list(net.parameters())] if groups is None else groups
    return EncoderStep(net, groups, X, y, layout, w, gamma, mode, lr, weight_decay)


CASES = [
    dict(sizes=[9, 14, 5, 11], p=3, q=2, hidden=(6,), activation="relu", mode="standardized"),
    dict(sizes=[8, 8, 8], p=3, q=2, hidden=(5, 4), activation="tanh", mode="centered"),
    dict(sizes=[7, 12], p=2, q=3, hidden=(4,), activation="gelu", mode="raw"),
    dict(sizes=[6, 10, 9], p=0, q=2, hidden=(5,), activation="relu", mode="standardized"),
    dict(sizes=[6, 10, 9], p=3, q=0, hidden=(5,), activation="relu", mode="standardized"),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c['sizes']}-p{c['p']}q{c['q']}-{c['activation']}-{c['mode']}")
def test_loss_and_gradients_equal_the_loop_over_tasks(case):
    R, d, gamma = len(case["sizes"]), 4, 0.8
    net = make_net(R, d, case["p"], case["q"], case["hidden"], case["activation"])
    X, y, task = make_rows(case["sizes"], d)
    heads = make_heads(R, case["p"], case["q"])
    w = torch.linspace(0.5, 1.5, R, dtype=torch.float64)
    step = build_step(net, X, y, task, w, gamma, case["mode"])
    loss, grads = grads_of(net, step.loss(heads))
    for reference in (looped_loss, stacked_rows_loss):
        ref_loss, ref_grads = grads_of(net, reference(net, X, y, task, heads, w, gamma, case["mode"]))
        torch.testing.assert_close(loss, ref_loss, rtol=1e-12, atol=0)
        for g, h in zip(grads, ref_grads):
            torch.testing.assert_close(g, h, rtol=1e-10, atol=1e-13)


def test_step_is_one_adam_update_with_weight_decay():
    R, d = 3, 4
    net = make_net(R, d, 3, 2, (5,), "relu")
    twin = make_net(R, d, 3, 2, (5,), "relu")
    X, y, task = make_rows([7, 9, 5], d)
    heads = make_heads(R, 3, 2)
    w = torch.ones(R, dtype=torch.float64)
    step = build_step(net, X, y, task, w, 0.5, "standardized", lr=0.05, weight_decay=0.1)
    opt = torch.optim.Adam(twin.parameters(), lr=0.05, weight_decay=0.1, foreach=False)
    for _ in range(3):
        loss = step(heads)  # the loss before the update
        ref_loss, _ = grads_of(twin, looped_loss(twin, X, y, task, heads, w, 0.5, "standardized"))
        opt.step()
        torch.testing.assert_close(loss, ref_loss, rtol=1e-12, atol=0)
    for a, b in zip(net.parameters(), twin.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_only_one_group_is_differentiated_and_stepped():
    R, d = 2, 3
    net = make_net(R, d, 2, 2, (4,), "relu")
    X, y, task = make_rows([6, 8], d)
    groups = [list(net.specific.parameters()), list(net.shared.parameters())]
    step = build_step(net, X, y, task, torch.ones(R, dtype=torch.float64), 0.5, "standardized", groups=groups)
    shared_before = [p.detach().clone() for p in groups[1]]
    specific_before = [p.detach().clone() for p in groups[0]]
    with step.only(0):
        assert not any(p.requires_grad for p in groups[1])
        step(make_heads(R, 2, 2), 0)
    assert all(p.requires_grad for g in groups for p in g)
    assert all(p.grad is None for p in groups[1])
    assert all(torch.equal(a, b) for a, b in zip(groups[1], shared_before))
    assert not any(torch.equal(a, b) for a, b in zip(groups[0], specific_before))
