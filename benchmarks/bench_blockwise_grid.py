"""Benchmark of the two-pathway model's grid search: configurations trained together against the
same configurations trained one at a time.

Run from the repository root::

    python benchmarks/bench_blockwise_grid.py            # the paper's grid (72 configurations)
    python benchmarks/bench_blockwise_grid.py --quick    # 8 configurations, a rough check

The data follow the paper's default design (two tasks, a 100-column anchor, 25 columns per
task-specific source, 300 rows per task of which 20% are set aside as test rows, then 25% of the
rest validate; batches of 16 rows per task). Missing blocks are filled with column means (the
imputer is not what is timed). Every fit runs the same fixed number of epochs (patience = epoch
budget, so early stopping never ends a fit sooner). Ways to train the same grid:

1. ``TwoPathwayMTL(grid=...)``: one stack per (depth, width), a narrower width padded with exact
   zeros into the next wider stack where that costs less than a stack of its own
   (``hetmtl.blockwise._grid.stack_groups``); every stack makes one pass over the data per epoch;
2. one stack per depth, every width padded to the widest (the same code with unlimited padding);
3. one fit per configuration (``grid=None``), as the authors' loop does.

On one core (torch on one thread): 1, 2 and 3. On the whole machine (every core, the same cores
for both): 1 with ``n_jobs`` = the number of cores (that many stacks at once, one torch thread
each) against 3 with torch's default intra-op threads (one per core), as a user would run one
configuration at a time.

The validation losses of all ways are compared (stacking changes the rounding only; ``n_jobs``
changes nothing). The ways are timed in turns (one repeat of each, then the next round), so that a
change of load between them hits all; the best wall time and the best CPU time of the process are
reported. On one thread and an idle core the two agree, and on a loaded machine the CPU time is the
steadier figure; for the whole-machine pair the wall time is the speed (its CPU time counts every
core). Goal: the grid >= 5x faster than one configuration at a time.
"""

from __future__ import annotations

import argparse
import functools
import itertools
import os
import platform
import sys
import time

import numpy as np
import pandas as pd
import torch

from _timing import format_seconds, format_table

import hetmtl.blockwise.model as model_module
from hetmtl.blockwise import PAPER_GRID, TwoPathwayMTL
from hetmtl.blockwise._grid import expand_grid, stack_groups
from hetmtl.simulate import make_blockwise_tasks

QUICK_GRID = {"hidden": [32, 64], "n_layers": [2, 3], "gamma": [0.01, 0.1]}


class ColumnMeans:
    """Fills missing blocks with the observed column means."""

    def __init__(self, layout):
        self.layout = layout

    def fit(self, X, task):
        self.means_ = np.nanmean(X, axis=0)
        return self

    def transform(self, X, task):
        return np.where(np.isnan(X), self.means_, X)


def configs(grid: dict) -> list[dict]:
    keys = list(grid)
    return [dict(zip(keys, v)) for v in itertools.product(*(grid[k] for k in keys))]


def in_turns(fns: dict, repeat: int) -> tuple[dict, dict, dict]:
    """Best wall and CPU seconds of each function, timed in turns; and each one's last result."""
    wall = {k: float("inf") for k in fns}
    cpu, result = dict(wall), {}
    for _ in range(repeat):
        for name, fn in fns.items():
            w, c = time.perf_counter(), time.process_time()
            result[name] = fn()
            wall[name] = min(wall[name], time.perf_counter() - w)
            cpu[name] = min(cpu[name], time.process_time() - c)
    return wall, cpu, result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="8 configurations, one repeat")
    parser.add_argument("--epochs", type=int, default=10, help="epochs per fit")
    args = parser.parse_args(argv)
    grid = QUICK_GRID if args.quick else PAPER_GRID
    repeat = 1 if args.quick else 2
    cores = torch.get_num_threads()  # torch's default: one intra-op thread per core
    data = make_blockwise_tasks(random_state=0)
    base = dict(imputer=ColumnMeans(data.layout), max_epochs=args.epochs, patience=args.epochs, n_threads=1,
                random_state=0)
    n_cfg = len(configs(grid))
    print("Two-pathway grid benchmark")
    print(f"python {sys.version.split()[0]}, torch {torch.__version__}, {platform.machine()}, "
          f"{os.cpu_count()} CPUs, torch's default threads {cores}, load average {os.getloadavg()[0]:.1f}")
    print(f"{n_cfg} configurations in {len(stack_groups(expand_grid(grid, TwoPathwayMTL(data.layout).get_params())))} "
          f"stacks, {args.epochs} epochs each, {data.X.shape[0]} rows, {data.X.shape[1]} columns")
    print()

    def stacked(**kw):
        return TwoPathwayMTL(data.layout, grid=grid, **{**base, **kw}).fit(data.X, data.y, data.task).cv_results_

    def per_depth():
        padded = functools.partial(stack_groups, pad_budget=float("inf"))
        original, model_module.stack_groups = model_module.stack_groups, padded
        try:
            return stacked()
        finally:
            model_module.stack_groups = original

    def one_by_one(n_threads=1):
        return pd.concat([TwoPathwayMTL(data.layout, **cfg, **{**base, "n_threads": n_threads}, grid=None)
                          .fit(data.X, data.y, data.task).cv_results_ for cfg in configs(grid)], ignore_index=True)

    # Untimed warm-up: the first fit pays for lazy imports (the learning-rate scheduler's, ...).
    TwoPathwayMTL(data.layout, **{**base, "max_epochs": 1}, grid=None).fit(data.X, data.y, data.task)
    ways = {"stack": stacked, "depth": per_depth, "loop": one_by_one,
            "stack_all": functools.partial(stacked, n_jobs=cores), "loop_all": functools.partial(one_by_one, cores)}
    wall, cpu, result = in_turns(ways, repeat)

    key = ["hidden", "n_layers", "gamma", "delta", "kappa"]
    ref = result["stack"].set_index(key)["val_loss"]
    diffs = {k: "-" if k == "stack" else f"{relative_difference(result[k], ref, key):.1e}" for k in ways}
    labels = {"stack": "hetmtl grid (stacks by depth and width)", "depth": "one stack per depth, widths padded",
              "loop": "one configuration at a time",
              "stack_all": f"hetmtl grid, n_jobs={cores} (a torch thread each)",
              "loop_all": f"one configuration at a time, {cores} torch threads"}
    rows = [[labels[k], "1" if k in ("stack", "depth", "loop") else str(cores), format_seconds(wall[k]),
             format_seconds(cpu[k]), format_seconds(cpu[k] / n_cfg), diffs[k]] for k in labels]
    print(format_table(["training", "cores", "best wall", "best CPU", "CPU per configuration",
                        "max rel. diff. of val. loss"], rows,
                       title=f"grid of {n_cfg} configurations, {args.epochs} epochs"))
    one = cpu["loop"] / cpu["stack"]
    whole = wall["loop_all"] / wall["stack_all"]
    # The peer's own best: under load its threads can wait on each other far longer than one
    # thread alone takes, which must not count for the grid.
    fair = min(wall["loop_all"], wall["loop"]) / wall["stack_all"]
    print(f"   one core: one at a time / hetmtl grid = {one:.1f}x CPU time, {wall['loop'] / wall['stack']:.1f}x wall; "
          f"one at a time / one stack per depth = {cpu['loop'] / cpu['depth']:.1f}x CPU time")
    print(f"   whole machine ({cores} cores): one at a time / hetmtl grid = {whole:.1f}x wall "
          f"({cpu['loop_all'] / cpu['stack_all']:.1f}x CPU time); against the faster of one at a time on "
          f"{cores} threads and on one: {fair:.1f}x wall")
    if wall["loop_all"] > wall["loop"]:
        print(f"   one at a time was slower on {cores} threads than on one: the machine is busy, and the "
              "whole-machine ratio says more about the load than about the grid")
    print(f"   goal >= 5x: one core {'met' if one >= 5 else 'NOT met'}, whole machine {'met' if fair >= 5 else 'NOT met'}"
          f" (load average at the end {os.getloadavg()[0]:.1f})")
    return 0


def relative_difference(table: pd.DataFrame, ref: pd.Series, key: list[str]) -> float:
    """Largest relative difference of the validation losses of ``table`` to ``ref``, by configuration."""
    vals = table.set_index(key)["val_loss"].reindex(ref.index).to_numpy()
    return float(np.max(np.abs(vals - ref.to_numpy()) / ref.to_numpy()))


if __name__ == "__main__":
    raise SystemExit(main())
