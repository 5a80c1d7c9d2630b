"""Benchmark of the kernel grid sums: hetmtl's core against vectorized NumPy, and the cost's slopes.

Run from the repository root::

    python benchmarks/bench_kernel_grid.py            # best of several repeats
    python benchmarks/bench_kernel_grid.py --quick    # fewer repeats, a rough check

1. Local-constant grid sums (S0, S1 and the counts) for n = 100,000 rows, G = 400 grid points
   (20 x 20), d = 2, 5 folds, Gaussian kernel, one thread, against two NumPy peers computed in the
   same run:
   - "numpy (direct)": the definition vectorized over row blocks: the n x G weight matrix from
     the coordinate differences, then one matrix product with the fold-split targets;
   - "numpy (tensor)": the same sums using the product structure of the kernel, one einsum per
     fold (what a careful NumPy user would write).
   Both are checked against the core's result. Goal: >= 20x faster than the direct NumPy peer.
2. Nanoseconds per kernel evaluation (n x G evaluations) against the arithmetic bound of one pass:
   every kernel evaluation feeds C multiply-adds (C = 3: S0, S1, count), and the bound is n G C
   multiply-adds at the rate a single-threaded BLAS GEMM reaches on this machine, timed
   alternately with the grid sums in the same run. Goal: within 3x of that bound. The core gets
   the counts from a difference array, without products, so the ratio against the bound of the
   products it does compute (C = 2) is printed too. The core with the Gaussian factors' recurrence
   turned off (one exp per axis point instead of three per axis) is timed as a peer.
3. Slopes of log(time) against log(n) (G fixed) and log(G) (n fixed): both should be close to 1.
   The local-linear fit and the compact Epanechnikov kernel are timed as well for reference.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys

import numpy as np

from _timing import format_seconds, format_table, measure

from hetmtl import _core
from hetmtl.fusion.kernel_grid_core import grid_options, grid_sums

N, M_AXIS, F, H = 100_000, 20, 5, 0.1


def make_data(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.uniform(0.0, 1.0, (n, 2))
    y = np.sin(3 * X[:, 0]) + X[:, 1] + rng.normal(size=n)
    folds = rng.permutation(np.arange(n) % F)
    return X, y, folds


def numpy_direct(X, y, folds, axes, h, block: int = 4000):
    """S0, S1 per fold and grid point from the n x G kernel matrix (row blocks)."""
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, X.shape[1])
    onehot = np.zeros((X.shape[0], F))
    onehot[np.arange(X.shape[0]), folds] = 1.0
    rhs = np.concatenate([onehot, onehot * y[:, None]], axis=1)  # (n, 2F)
    out = np.zeros((grid.shape[0], 2 * F))
    for s in range(0, X.shape[0], block):
        U = (X[s:s + block, None, :] - grid[None]) / h
        K = np.exp(-0.5 * np.einsum("igj,igj->ig", U, U))
        out += K.T @ rhs[s:s + block]
    return out[:, :F].T, out[:, F:].T


def numpy_tensor(X, y, folds, axes, h):
    """The same sums with the kernel's product structure: S = K1' diag(w) K2 per fold."""
    K1 = np.exp(-0.5 * ((X[:, [0]] - axes[0][None]) / h) ** 2)
    K2 = np.exp(-0.5 * ((X[:, [1]] - axes[1][None]) / h) ** 2)
    S0 = np.empty((F, K1.shape[1] * K2.shape[1]))
    S1 = np.empty_like(S0)
    for f in range(F):
        rows = folds == f
        S0[f] = (K1[rows].T @ K2[rows]).ravel()
        S1[f] = (K1[rows].T @ (K2[rows] * y[rows, None])).ravel()
    return S0, S1


def exact_exp_sums(X, y, folds, axes, h):
    """The core's grid sums with the recurrence for equally spaced axes turned off (a core option)."""
    opt = grid_options()
    opt.gauss_recurrence = False
    return _core.grid_sums(X, y[:, None], folds.astype(np.int32), F, axes, np.array([h, h]), opt)


def interleaved_bound(run, repeat: int) -> tuple[float, float]:
    """Best time of ``run`` and the single-threaded GEMM multiply-add rate, measured alternately so
    that both see the same load on a shared machine."""
    rng = np.random.default_rng(1)
    A = rng.normal(size=(1024, 1024))
    B = rng.normal(size=(1024, 1024))
    t_run, t_gemm = [], []
    for _ in range(repeat):
        t_gemm.append(measure(lambda: A @ B, repeat=1).best)
        t_run.append(measure(run, repeat=1).best)
    return min(t_run), 1024 ** 3 / min(t_gemm)


def slope(xs, ts) -> float:
    return float(np.polyfit(np.log(xs), np.log(ts), 1)[0])


def affine_fit(xs, ts) -> tuple[float, float, float]:
    """Least-squares ``t = a + b x``: intercept, slope and R^2 (linear cost means R^2 near 1)."""
    xs, ts = np.asarray(xs, float), np.asarray(ts, float)
    b, a = np.polyfit(xs, ts, 1)
    resid = ts - (a + b * xs)
    return float(a), float(b), float(1.0 - resid @ resid / np.sum((ts - ts.mean()) ** 2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    args = parser.parse_args()
    repeat = 2 if args.quick else 10
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - scikit-learn brings it
        threadpool_limits = None
    if threadpool_limits is not None:
        threadpool_limits(limits=1)  # BLAS on one thread for the whole run, like the core

    print(f"python {sys.version.split()[0]}, numpy {np.__version__}, {platform.machine()}, "
          f"{os.cpu_count()} cpus; one thread everywhere")
    print(f"hetmtl core built for -march={_core.build_march or '(portable default)'}")
    X, y, folds = make_data(N)
    axes = [np.linspace(0.0, 1.0, M_AXIS)] * 2
    G = M_AXIS ** 2
    ours = measure(lambda: grid_sums(X, y, axes, H, folds=folds, n_folds=F), repeat=repeat)
    direct = measure(lambda: numpy_direct(X, y, folds, axes, H), repeat=max(1, repeat // 2))
    tensor = measure(lambda: numpy_tensor(X, y, folds, axes, H), repeat=repeat)
    exact = measure(lambda: exact_exp_sums(X, y, folds, axes, H), repeat=repeat)
    res = ours.result
    for name, (S0, S1) in (("direct", direct.result), ("tensor", tensor.result)):
        err = max(np.abs(S0 - res.M[:, :, 0, 0]).max(), np.abs(S1 - res.V[:, :, 0, 0]).max())
        if err > 1e-8 * max(1.0, np.abs(S0).max()):
            raise SystemExit(f"numpy ({name}) disagrees with the core: max abs difference {err:.3g}")
    if not np.allclose(exact.result.M, res.M, rtol=1e-12, atol=0.0):
        raise SystemExit("the core's exact path disagrees with its recurrence")
    rows = [
        ["hetmtl core", format_seconds(ours.best), 1.0],
        ["hetmtl core, one exp per axis point", format_seconds(exact.best), exact.best / ours.best],
        ["numpy (direct)", format_seconds(direct.best), direct.best / ours.best],
        ["numpy (tensor)", format_seconds(tensor.best), tensor.best / ours.best],
    ]
    print(format_table(["method", "best time", "time / hetmtl"], rows,
                       title=f"\n1. grid sums, n={N}, G={G} (d=2), {F} folds, Gaussian, local constant"))
    goal = direct.best / ours.best >= 20
    print(f"goal >= 20x faster than numpy (direct): {'met' if goal else 'NOT met'} "
          f"({direct.best / ours.best:.1f}x)")

    best, rate = interleaved_bound(lambda: grid_sums(X, y, axes, H, folds=folds, n_folds=F), 2 * repeat)
    evals = N * G
    C = 3  # S0, S1, count
    ns_per_eval = best / evals * 1e9
    bound = evals * C / rate
    print(f"\n2. {ns_per_eval:.3f} ns per kernel evaluation; single-thread GEMM rate "
          f"{rate / 1e9:.2f} G multiply-adds/s, so the bound of one pass ({C} multiply-adds per "
          f"evaluation) is {format_seconds(bound)} = {bound / evals * 1e9:.3f} ns per evaluation")
    print(f"   time / bound = {best / bound:.2f} (goal <= 3: {'met' if best / bound <= 3 else 'NOT met'}; "
          "grid sums and GEMM timed alternately)")
    print(f"   against the products the core computes (2 multiply-adds per evaluation; the counts come "
          f"from a difference array): time / bound = {best / (bound * 2 / C):.2f}")

    ns = [25_000, 50_000, 100_000, 200_000]
    t_n = []
    for n in ns:
        Xn, yn, fn = make_data(n, seed=2)
        t_n.append(measure(lambda: grid_sums(Xn, yn, axes, H, folds=fn), repeat=repeat).best)
    ms = [10, 15, 20, 30, 40]
    t_g = []
    for m in ms:
        ax = [np.linspace(0.0, 1.0, m)] * 2
        t_g.append(measure(lambda: grid_sums(X, y, ax, H, folds=folds), repeat=repeat).best)
    rows = [[f"n={n}", format_seconds(t), t / (n * G) * 1e9] for n, t in zip(ns, t_n)]
    rows += [[f"G={m * m}", format_seconds(t), t / (N * m * m) * 1e9] for m, t in zip(ms, t_g)]
    print(format_table(["size", "best time", "ns / evaluation"], rows, title="\n3. scaling"))
    print(f"log-log slope in n (G={G}): {slope(ns, t_n):.2f}; in G (n={N}): "
          f"{slope([m * m for m in ms], t_g):.2f}")
    a, b, r2 = affine_fit([m * m for m in ms], t_g)
    print(f"time = a + b G (n={N}): a = {format_seconds(a)} (work per row that does not grow with G: "
          f"the kernel factors), b = {b / N * 1e9:.3f} ns per row and grid point, R^2 = {r2:.4f}")

    others = []
    for kernel, fit in (("gaussian", "linear"), ("epanechnikov", "constant"), ("epanechnikov", "linear")):
        t = measure(lambda: grid_sums(X, y, axes, H, folds=folds, kernel=kernel, fit=fit), repeat=repeat)
        others.append([f"{kernel}, {fit}", format_seconds(t.best), t.best / evals * 1e9])
    print(format_table(["kernel, fit", "best time", "ns / (n G)"], others,
                       title=f"\nfor reference (n={N}, G={G}; the Epanechnikov kernel visits only "
                             f"grid points within one bandwidth)"))


if __name__ == "__main__":
    main()
