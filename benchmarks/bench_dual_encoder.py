"""Benchmark of the dual encoder's two inner steps against peers written the plain way.

Run from the repository root::

    python benchmarks/bench_dual_encoder.py            # best of several repeats
    python benchmarks/bench_dual_encoder.py --quick    # fewer repeats, a rough check

1. One training epoch (forward, loss with the orthogonality penalty, backward, Adam step) at
   R = 10 tasks, n_r = 500 rows, d = 50: hetmtl's stacked encoders (one batched product per layer
   over all tasks) against the same model written with a Python loop over per-task encoders
   (``torch.nn.Linear`` layers per task). Same widths, same loss; torch on one thread.
   Goal: stacked >= 3x faster. Both do the same arithmetic, so the gain is the loop's per-task
   overhead: it grows with the number of tasks and shrinks as tasks grow (1b: R = 50, n_r = 100).
2. The head step (all tasks' heads given the encodings, to the same KKT tolerance): the compiled
   proximal solver against the same accelerated proximal gradient steps written in torch
   (batched over tasks, float64, same restart rule and stopping check). Both solutions are
   compared. Goal: C++ >= 10x faster.
"""

from __future__ import annotations

import argparse
import platform
import sys

import numpy as np
import torch

from _timing import format_seconds, format_table, measure

from hetmtl.nn import StackedMLP, TaskLayout, orthogonality_penalty, task_mse, torch_generator
from hetmtl.proximal import solve_heads

R, N_R, D = 10, 500, 50
HIDDEN, P, Q = 32, 8, 2
GAMMA = 0.1


# ----------------------------------------------------------------------------- 1. one epoch

def make_data(R: int, n_r: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(R * n_r, D, generator=g)
    task = torch.arange(R).repeat_interleave(n_r)
    y = torch.randn(R * n_r, generator=g)
    return X, y, task


class Stacked:
    """The package's formulation: stacked task encoders, padded task blocks."""

    def __init__(self, X, y, task):
        R = int(task.max()) + 1
        self.R = R
        gen = torch_generator(np.random.SeedSequence(0))
        self.shared = StackedMLP(1, D, P, (HIDDEN,), generator=gen)
        self.specific = StackedMLP(R, D, Q, (HIDDEN,), generator=gen)
        self.alpha, self.beta, self.b = torch.randn(R, Q), torch.randn(R, P), torch.zeros(R)
        self.X, self.y, self.task = X, y, task
        self.layout = TaskLayout.from_tasks(task, R)
        self.blocks = self.layout.gather(X)  # X is fixed: gathered once, as the loop splits it once
        params = list(self.shared.parameters()) + list(self.specific.parameters())
        self.opt = torch.optim.Adam(params, lr=1e-3)

    def epoch(self) -> float:
        self.opt.zero_grad(set_to_none=True)
        S_pad = self.specific(self.blocks)
        S = self.layout.scatter(S_pad)
        C = self.shared.forward_shared(self.X)
        c = self.task
        pred = (S * self.alpha[c]).sum(1) + (C * self.beta[c]).sum(1) + self.b[c]
        loss = task_mse(pred - self.y, c, self.R).sum()
        loss = loss + GAMMA * orthogonality_penalty(self.layout.gather(C), S_pad, self.layout.mask)
        loss.backward()
        self.opt.step()
        return float(loss.detach())


def _standardize(Z: torch.Tensor) -> torch.Tensor:
    Zc = Z - Z.mean(0)
    return Zc / torch.sqrt((Zc ** 2).mean(0) + 1e-6)


class Looped:
    """The same model written plainly: one nn.Sequential per task, a Python loop over tasks."""

    def __init__(self, X, y, task):
        R = int(task.max()) + 1
        self.R = R
        torch.manual_seed(0)
        self.shared = torch.nn.Sequential(torch.nn.Linear(D, HIDDEN), torch.nn.ReLU(), torch.nn.Linear(HIDDEN, P))
        self.specific = torch.nn.ModuleList(
            torch.nn.Sequential(torch.nn.Linear(D, HIDDEN), torch.nn.ReLU(), torch.nn.Linear(HIDDEN, Q))
            for _ in range(R))
        self.alpha, self.beta, self.b = torch.randn(R, Q), torch.randn(R, P), torch.zeros(R)
        self.Xs = [X[task == r] for r in range(R)]
        self.ys = [y[task == r] for r in range(R)]
        params = list(self.shared.parameters()) + list(self.specific.parameters())
        self.opt = torch.optim.Adam(params, lr=1e-3)

    def epoch(self) -> float:
        self.opt.zero_grad(set_to_none=True)
        loss = 0.0
        for r in range(self.R):
            Xr = self.Xs[r]
            S = self.specific[r](Xr)
            C = self.shared(Xr)
            pred = S @ self.alpha[r] + C @ self.beta[r] + self.b[r]
            loss = loss + torch.mean((pred - self.ys[r]) ** 2)
            cross = _standardize(C).T @ _standardize(S) / Xr.shape[0]
            loss = loss + GAMMA * (cross ** 2).sum()
        loss.backward()
        self.opt.step()
        return float(loss.detach())


def check_same_loss(X, y, task) -> float:
    """Both formulations give the same loss for the same weights (copied across)."""
    R = int(task.max()) + 1
    a, b = Stacked(X, y, task), Looped(X, y, task)
    with torch.no_grad():
        b.alpha, b.beta, b.b = a.alpha, a.beta, a.b
        b.shared[0].weight.copy_(a.shared.weights[0][0].T)
        b.shared[0].bias.copy_(a.shared.biases[0][0])
        b.shared[2].weight.copy_(a.shared.weights[1][0].T)
        b.shared[2].bias.copy_(a.shared.biases[1][0])
        for r in range(R):
            b.specific[r][0].weight.copy_(a.specific.weights[0][r].T)
            b.specific[r][0].bias.copy_(a.specific.biases[0][r])
            b.specific[r][2].weight.copy_(a.specific.weights[1][r].T)
            b.specific[r][2].bias.copy_(a.specific.biases[1][r])
    la, lb = a.epoch(), b.epoch()
    return abs(la - lb) / abs(lb)


# ----------------------------------------------------------------------------- 2. head step

def make_heads_problem(seed: int = 1):
    rng = np.random.default_rng(seed)
    N = R * N_R
    Z = rng.normal(size=(N, Q))
    H = rng.normal(size=(N, P)) + 0.3 * rng.normal(size=(N, 1))
    task = np.repeat(np.arange(R), N_R)
    beta = rng.normal(size=P) + 0.2 * rng.normal(size=(R, P))
    y = (H * beta[task]).sum(1) + Z @ rng.normal(size=Q) + rng.normal(size=N)
    center = rng.normal(size=P)
    return Z, H, y, np.full(R, N_R), center


def torch_heads(Z, H, y, sizes, pen, center, tol, max_iter):
    """Accelerated proximal gradient for all heads in torch, batched over tasks (float64)."""
    Zt, Ht, yt = (torch.as_tensor(a) for a in (Z, H, y))
    F = torch.cat([Zt, Ht], 1).reshape(R, N_R, Q + P)
    Y = yt.reshape(R, N_R)
    mean, ybar = F.mean(1, keepdim=True), Y.mean(1, keepdim=True)
    Fc, Yc = F - mean, Y - ybar
    s = 2.0 / N_R
    A = s * Fc.transpose(1, 2) @ Fc
    b = s * (Fc.transpose(1, 2) @ Yc.unsqueeze(-1))[..., 0]
    L = torch.linalg.eigvalsh(A)[:, -1:]
    step = 1.0 / L
    c = torch.as_tensor(center)
    pen_t = torch.as_tensor(pen)[:, None]

    def prox(v, t):
        d = v[:, Q:] - c
        nrm = d.norm(dim=1, keepdim=True)
        scale = torch.clamp(1 - t * pen_t / torch.clamp(nrm, min=1e-300), min=0.0)
        return torch.cat([v[:, :Q], c + scale * d], 1)

    def kkt(x):
        z = prox(x - step * ((A @ x.unsqueeze(-1))[..., 0] - b), step)
        return (L * (x - z)).norm(dim=1) / (1 + b.norm(dim=1))

    x = torch.cat([torch.zeros(R, Q), c.expand(R, P)], 1)
    yk, t = x.clone(), torch.ones(R, 1, dtype=x.dtype)
    it = 0
    while it < max_iter:
        it += 1
        xn = prox(yk - step * ((A @ yk.unsqueeze(-1))[..., 0] - b), step)
        tn = 0.5 * (1 + torch.sqrt(1 + 4 * t * t))
        restart = ((yk - xn) * (xn - x)).sum(1, keepdim=True) > 0
        mom = torch.where(restart, torch.zeros_like(t), (t - 1) / tn)
        yk = xn + mom * (xn - x)
        t = torch.where(restart, torch.ones_like(t), tn)
        x = xn
        if it % 10 == 0 and bool((kkt(x) <= tol).all()):
            break
    return x[:, :Q].numpy(), x[:, Q:].numpy(), it


# ----------------------------------------------------------------------------- main

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    args = parser.parse_args(argv)
    repeat = 3 if args.quick else 9
    torch.set_num_threads(1)
    print("Dual-encoder benchmark")
    print(f"python {sys.version.split()[0]}, torch {torch.__version__}, {platform.machine()}, torch threads 1")
    print()

    for i, (n_tasks, n_r) in enumerate(((R, N_R), (50, 100))):
        X, y, task = make_data(n_tasks, n_r)
        rel = check_same_loss(X, y, task)
        stacked, looped = Stacked(X, y, task), Looped(X, y, task)
        t_stacked = measure(stacked.epoch, repeat=repeat, number=3, warmup=2)
        t_looped = measure(looped.epoch, repeat=repeat, number=3, warmup=2)
        ratio1 = t_looped.best / t_stacked.best
        label = "1." if i == 0 else "1b. (many small tasks)"
        print(format_table(
            ["implementation", "best", "median"],
            [["stacked (hetmtl.nn)", format_seconds(t_stacked.best), format_seconds(t_stacked.median)],
             ["Python loop over tasks", format_seconds(t_looped.best), format_seconds(t_looped.median)]],
            title=f"{label} one epoch, R={n_tasks}, n_r={n_r}, d={D}, hidden={HIDDEN}, p={P}, q={Q} "
                  f"(same loss to rel. {rel:.1e})"))
        goal = f" (goal >= 3x: {'met' if ratio1 >= 3 else 'NOT met'})" if i == 0 else ""
        print(f"   ratio loop / stacked = {ratio1:.1f}x{goal}")
        print()

    Z, H, y2, sizes, center = make_heads_problem()
    pen = np.full(R, 0.05)
    tol = 1e-8
    t_cpp = measure(lambda: solve_heads(Z, H, y2, sizes, pen_beta=pen, beta_center=center, tol=tol,
                                        max_iter=100000), repeat=repeat, number=3)
    t_torch = measure(lambda: torch_heads(Z, H, y2, sizes, pen, center, tol, 100000),
                      repeat=max(3, repeat // 3), number=1)
    fit = t_cpp.result
    a_t, b_t, it_t = t_torch.result
    diff = max(np.abs(fit.beta - b_t).max(), np.abs(fit.alpha - a_t).max())
    ratio2 = t_torch.best / t_cpp.best
    print(format_table(
        ["implementation", "best", "median", "iterations"],
        [["C++ solve_heads", format_seconds(t_cpp.best), format_seconds(t_cpp.median), int(fit.iterations.max())],
         ["torch, batched over tasks", format_seconds(t_torch.best), format_seconds(t_torch.median), it_t]],
        title=f"2. head step, R={R}, n_r={N_R}, p={P}, q={Q}, KKT tol {tol:g} (max |difference| {diff:.1e})"))
    print(f"   ratio torch / C++ = {ratio2:.1f}x (goal >= 10x: {'met' if ratio2 >= 10 else 'NOT met'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
