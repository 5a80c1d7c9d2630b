"""Benchmark of HBI's grid training: configurations stacked against one network at a time.

Run from the repository root::

    python benchmarks/bench_blockwise_imputer.py            # best of 3 repeats, 100 epochs
    python benchmarks/bench_blockwise_imputer.py --quick    # one repeat, 30 epochs, no full fit

The grid is HBIImputer's default (widths 8, 16, 32; depths 1, 2, 3; lam_orth 0, 1), 18
configurations per imputed source. Every side runs the same estimator code with the same initial
weights, data and loss; only ``stacking`` differs: ``"shape"`` (the default: one stack per width
and depth), ``"depth"`` (one stack per depth, narrower networks zero-padded) and ``"none"`` (a
loop over the networks, as the authors' code loops over configurations). Torch on one thread.

1. A fixed budget of epochs (early stopping switched off by a patience above the budget): the
   cost of training the grid, on three data sizes: the paper's setting A (two tasks, anchor of
   100 columns, 25 per source, 240 training rows per task: 36 networks), setting T4 with 100 rows
   per task (four sources, anchor of 125 columns: 72 networks) and a small design (two tasks, 48
   training rows each, anchor of 20 columns, 5 per source).
2. A complete fit on setting A with the default early stopping (patience 30, at most 1000
   epochs): a stack runs until its last network stops, the loop stops each network on its own, so
   this ratio is below the fixed-budget one.

The imputations of the sides are compared (they agree up to float32 rounding). Where torch finds
a CUDA device, the complete fit also runs with ``device="cuda"`` against ``device="cpu"`` (wall
time; the imputations agree up to float rounding).
"""

from __future__ import annotations

import argparse
import platform
import sys

import numpy as np
import torch

from _timing import format_seconds, format_table, measure

from hetmtl.blockwise import HBIImputer
from hetmtl.simulate import blockwise_setting, make_blockwise_tasks

MODES = ("shape", "depth", "none")


def fit(data, stacking: str, **kwargs) -> HBIImputer:
    return HBIImputer(data.layout, stacking=stacking, random_state=0, n_threads=1, **kwargs).fit(data.X, data.task)


def compare(data, repeat: int, modes=MODES, **kwargs) -> tuple[dict, float]:
    """Best time of each mode (timed in turns, so that load bursts hit all alike) and the largest
    difference between the modes' imputations."""
    times = {m: [] for m in modes}
    results = {}
    for _ in range(repeat):
        for m in modes:
            t = measure(lambda: fit(data, m, **kwargs), repeat=1, warmup=0)
            times[m].append(t.best)
            results[m] = t.result
    out = [r.transform(data.X_test, data.task_test) for r in results.values()]
    diff = max(float(np.max(np.abs(o - out[0]))) for o in out)
    return {m: min(v) for m, v in times.items()}, diff


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one repeat, 30 epochs, no full fit")
    args = parser.parse_args()
    torch.set_num_threads(1)
    repeat, epochs = (1, 30) if args.quick else (3, 100)
    print(f"python {sys.version.split()[0]}, torch {torch.__version__}, {platform.machine()}, 1 thread\n")
    designs = {
        "setting A (480 rows, p0 100)": make_blockwise_tasks(**blockwise_setting("A"), random_state=0),
        "setting T4 (320 rows, p0 125)": make_blockwise_tasks(**{**blockwise_setting("T4"), "n_per_task": 100},
                                                              random_state=0),
        "small (96 rows, p0 20)": make_blockwise_tasks(n_per_task=60, p_anchor=20, p_specific=5, random_state=0),
    }
    fit(designs["small (96 rows, p0 20)"], "shape", max_epochs=5)  # warm-up (first-call costs)
    rows = []
    for name, data in designs.items():
        best, diff = compare(data, repeat, max_epochs=epochs, patience=10 ** 6)
        rows.append([name, format_seconds(best["shape"]), format_seconds(best["depth"]), format_seconds(best["none"]),
                     f"{best['none'] / best['shape']:.1f}x", f"{best['none'] / best['depth']:.1f}x", f"{diff:.1g}"])
    print(format_table(["", "shape", "depth", "none (loop)", "loop/shape", "loop/depth", "max diff"], rows,
                       title=f"HBI grid, {epochs} epochs, no early stopping (best of {repeat})"))
    if args.quick:
        return
    best, diff = compare(designs["setting A (480 rows, p0 100)"], 1, modes=("shape", "none"))
    print(format_table(["", "shape", "none (loop)", "loop/shape", "max diff"],
                       [["setting A", format_seconds(best["shape"]), format_seconds(best["none"]),
                         f"{best['none'] / best['shape']:.1f}x", f"{diff:.2g}"]],
                       title="\nHBI grid, complete fit (patience 30, at most 1000 epochs)"))
    if not torch.cuda.is_available():
        print("\nCPU against GPU: skipped (torch finds no CUDA device)")
        return
    data = designs["setting A (480 rows, p0 100)"]
    fit(data, "shape", device="cuda", max_epochs=5)  # warm-up: CUDA context and kernels
    times = {dev: measure(lambda dev=dev: fit(data, "shape", device=dev), repeat=1, warmup=0) for dev in ("cpu", "cuda")}
    out = {dev: t.result.transform(data.X_test, data.task_test) for dev, t in times.items()}
    print(format_table(["", "CPU", "GPU", "CPU / GPU", "max diff"],
                       [["setting A", format_seconds(times["cpu"].best), format_seconds(times["cuda"].best),
                         f"{times['cpu'].best / times['cuda'].best:.1f}x",
                         f"{float(np.max(np.abs(out['cuda'] - out['cpu']))):.2g}"]],
                       title=f"\nHBI grid, complete fit on the CPU and on {torch.cuda.get_device_name()}"))


if __name__ == "__main__":
    main()
