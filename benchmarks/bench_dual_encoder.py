"""Benchmark of the dual encoder's two inner steps against peers written the plain way.

Run from the repository root::

    python benchmarks/bench_dual_encoder.py            # best of several repeats
    python benchmarks/bench_dual_encoder.py --quick    # fewer repeats, a rough check

1. One training epoch at R = 10 tasks, n_r = 500 rows, d = 50: one full-batch encoder step of the
   alternating fit (forward, loss with the orthogonality penalty, backward, Adam step), the very
   step ``DualEncoderMTL.fit`` runs with its default options (set up by the estimator's own code),
   against the same model written with a Python loop over per-task encoders (``nn.Linear`` layers
   per task): same widths, loss, task weights, heads and optimizer (Adam with the estimator's step
   size and weight decay). Loss and gradients are compared for the same weights. A third line
   writes the loop's products features first, as the package does, to separate the gain of that
   layout from the loop's per-task overhead. Torch on one thread. Goal: stacked >= 3x faster.
   The gain grows with the number of tasks and shrinks as tasks grow (1b: R = 50, n_r = 100).
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

from _timing import Timing, format_seconds, format_table, measure

from hetmtl.dual import DualEncoderMTL
from hetmtl.dual.alternating import encoder_step
from hetmtl.dual.alternating import make_data as make_train
from hetmtl.nn import adam
from hetmtl.prox import solve_heads

R, N_R, D = 10, 500, 50
HIDDEN, P, Q = 32, 8, 2


# ----------------------------------------------------------------------------- 1. one epoch

def make_data(R: int, n_r: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(R * n_r, D, generator=g)
    task = torch.arange(R).repeat_interleave(n_r)
    y = torch.randn(R * n_r, generator=g)
    heads = torch.randn(R, Q, generator=g), torch.randn(R, P, generator=g), torch.randn(R, generator=g)
    return X, y, task, heads


class Stacked:
    """The package's own encoder step, set up as DualEncoderMTL.fit sets it up (default options)."""

    def __init__(self, X, y, task, heads):
        R = int(task.max()) + 1
        sizes = np.bincount(task.numpy(), minlength=R)
        est = DualEncoderMTL(latent_shared=P, latent_specific=Q, hidden=(HIDDEN,), random_state=0)
        self.net, groups = est._network(R, D, np.random.SeedSequence(0))
        self.cfg = est._config(sizes, update_center=True, lam_beta=0.3)  # no effect on the encoder step
        self.step = encoder_step(self.net, groups, make_train(X, y, task, R, sizes, y.double().numpy()), self.cfg)
        self.heads = heads

    def epoch(self) -> float:
        return float(self.step(self.heads))


def _standardize(Z: torch.Tensor, dim: int) -> torch.Tensor:
    Zc = Z - Z.mean(dim, keepdim=True)
    return Zc / torch.sqrt((Zc ** 2).mean(dim, keepdim=True) + 1e-6)


def _mlp(out: int) -> torch.nn.Sequential:
    return torch.nn.Sequential(torch.nn.Linear(D, HIDDEN), torch.nn.ReLU(), torch.nn.Linear(HIDDEN, out))


class Looped:
    """The same model written plainly: one nn.Sequential per task and a Python loop over the tasks;
    same loss, weights and optimizer (Adam, fused, with the estimator's lr and weight decay).

    ``features_first=True`` writes every product with the rows along the last axis, as the
    package does (``b + W h`` on ``X_r'``), to separate the gain of that layout from the loop's."""

    def __init__(self, X, y, task, heads, cfg, features_first: bool = False):
        R = int(task.max()) + 1
        self.R, self.cfg, self.features_first = R, cfg, features_first
        torch.manual_seed(0)
        self.shared = _mlp(P)
        self.specific = torch.nn.ModuleList(_mlp(Q) for _ in range(R))
        self.alpha, self.beta, self.b = heads
        self.Xs = [X[task == r] for r in range(R)]
        if features_first:
            self.Xs = [x.T.contiguous() for x in self.Xs]
        self.ys = [y[task == r] for r in range(R)]
        self.w = torch.as_tensor(cfg.loss_weights, dtype=torch.float32)
        self.opt = adam(self.parameters(), cfg.lr, cfg.weight_decay)

    def parameters(self) -> list[torch.nn.Parameter]:
        return list(self.shared.parameters()) + list(self.specific.parameters())

    def _forward_t(self, net: torch.nn.Sequential, x_t: torch.Tensor) -> torch.Tensor:
        h = torch.relu(torch.addmm(net[0].bias.unsqueeze(1), net[0].weight, x_t))
        return torch.addmm(net[2].bias.unsqueeze(1), net[2].weight, h)

    def loss(self) -> torch.Tensor:
        loss = 0.0
        for r in range(self.R):
            Xr = self.Xs[r]
            if self.features_first:
                S, C = self._forward_t(self.specific[r], Xr), self._forward_t(self.shared, Xr)
                pred = self.alpha[r] @ S + self.beta[r] @ C + self.b[r]
                cross = _standardize(C, 1) @ _standardize(S, 1).T / Xr.shape[1]
            else:
                S, C = self.specific[r](Xr), self.shared(Xr)
                pred = S @ self.alpha[r] + C @ self.beta[r] + self.b[r]
                cross = _standardize(C, 0).T @ _standardize(S, 0) / Xr.shape[0]
            loss = loss + self.w[r] * torch.mean((pred - self.ys[r]) ** 2)
            loss = loss + self.cfg.gamma * (cross ** 2).sum()
        return loss

    def epoch(self) -> float:
        self.opt.zero_grad(set_to_none=True)
        loss = self.loss()
        loss.backward()
        self.opt.step()
        return float(loss.detach())


def _pairs(a: Stacked, b: Looped):
    """(stacked parameter slice, looped parameter) pairs holding the same weights."""
    specific, shared = a.net.specific, a.net.shared
    for r, seq in enumerate(b.specific):
        for l, lin in enumerate((seq[0], seq[2])):
            yield specific.weights[l], (r,), lin.weight, True
            yield specific.biases[l], (r,), lin.bias, False
    for l, lin in enumerate((b.shared[0], b.shared[2])):
        yield shared.weights[l], (0,), lin.weight, True
        yield shared.biases[l], (0,), lin.bias, False


def check_same(X, y, task, heads) -> tuple[float, float]:
    """Copy the stacked weights into the loop model; relative differences of the loss and of the
    largest gradient entry."""
    a = Stacked(X, y, task, heads)
    b = Looped(X, y, task, heads, a.cfg)
    with torch.no_grad():
        for src, idx, dst, transpose in _pairs(a, b):
            dst.copy_(src[idx].T if transpose else src[idx])
    for p in a.step.groups[0]:
        p.grad = None
    la = a.step.loss(heads)
    la.backward()
    lb = b.loss()
    lb.backward()
    grad_diff = max(float((src.grad[idx] - (dst.grad.T if t else dst.grad)).abs().max())
                    for src, idx, dst, t in _pairs(a, b))
    grad_scale = max(float(dst.grad.abs().max()) for _, _, dst, _ in _pairs(a, b))
    la, lb = la.item(), lb.item()
    return abs(la - lb) / abs(lb), grad_diff / grad_scale


def interleaved(fns, repeat: int, number: int) -> list[Timing]:
    """Time several functions in turns (one repeat of each, then again), so that a burst of load on
    a shared machine disturbs them alike rather than whichever happened to run during it."""
    for fn in fns:
        measure(fn, repeat=1, number=1, warmup=2)
    times = [[] for _ in fns]
    for _ in range(repeat):
        for fn, ts in zip(fns, times):
            ts.extend(measure(fn, repeat=1, number=number, warmup=0).times)
    return [Timing(best=min(ts), median=float(np.median(ts)), times=tuple(ts)) for ts in times]


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
        X, y, task, heads = make_data(n_tasks, n_r)
        rel_loss, rel_grad = check_same(X, y, task, heads)
        stacked = Stacked(X, y, task, heads)
        looped = Looped(X, y, task, heads, stacked.cfg)
        looped_t = Looped(X, y, task, heads, stacked.cfg, features_first=True)
        t_stacked, t_looped, t_looped_t = interleaved([stacked.epoch, looped.epoch, looped_t.epoch],
                                                      repeat=2 * repeat, number=3)
        ratio1 = t_looped.best / t_stacked.best
        label = "1." if i == 0 else "1b. (many small tasks)"
        print(format_table(
            ["implementation", "best", "median"],
            [["stacked (hetmtl encoder step)", format_seconds(t_stacked.best), format_seconds(t_stacked.median)],
             ["Python loop over tasks", format_seconds(t_looped.best), format_seconds(t_looped.median)],
             ["Python loop, features first", format_seconds(t_looped_t.best), format_seconds(t_looped_t.median)]],
            title=f"{label} one epoch, R={n_tasks}, n_r={n_r}, d={D}, hidden={HIDDEN}, p={P}, q={Q} "
                  f"(same loss to rel. {rel_loss:.1e}, gradients to {rel_grad:.1e})"))
        goal = f" (goal >= 3x: {'met' if ratio1 >= 3 else 'NOT met'})" if i == 0 else ""
        print(f"   ratio loop / stacked = {ratio1:.1f}x{goal}; "
              f"loop written features first / stacked = {t_looped_t.best / t_stacked.best:.1f}x")
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
