"""Benchmark of a README-sized block-wise fit: the current defaults against the previous ones.

Run from the repository root::

    python benchmarks/bench_blockwise_default.py            # 3 data sets, best of 2 each
    python benchmarks/bench_blockwise_default.py --quick    # 1 data set, one timing, the default grid

Data: ``make_shared_mapping_tasks`` with 125 rows per task, of which 20% are test rows: three
tasks and 300 rows to fit, as in the README's example (an anchor of 10 columns, two sources of
20). The call timed is the default one, ``TwoPathwayMTL(layout)`` (HBI, ``grid="auto"``: three L2
weights in one stack), then (not with ``--quick``) the same with ``grid="small"`` and with no
grid, on one torch thread. Its peer, in the same run on the same data, is the
previous default: the paper's architecture (shared encoder on the anchor, task encoders on the
completed row), HBI's previous training options (Adam step 1e-3, patience 30, 20% of the
observers validating) and the two-pathway model's previous ones (batches of 16 rows per task,
patience 100, step decay every 100 epochs). Both are scored by mean task test RMSE, so that a
speed-up that costs accuracy shows. Goal: under 10 s per fit, at no loss of accuracy. Beside the
wall time, the table gives the default fit's CPU time (torch runs on one thread, so on an idle core
the two agree; on a loaded machine the CPU time is the steadier figure).

Two more comparisons of the default fit on the same data sets, timed in turns:

* finished configurations shed against kept: a stack of the grid is rebuilt without the
  configurations whose early stopping has ended (``hetmtl.blockwise.model.SHRINK = 1``, the
  default) or keeps computing them to the end (``SHRINK = 0``, as before); the validation losses
  must agree;
* where torch finds a CUDA device: ``device="cuda"`` against ``device="cpu"`` (model and HBI
  imputer on the device; wall time, and the test RMSE of both).
"""

from __future__ import annotations

import argparse
import platform
import sys
import time

import numpy as np
import torch

from _timing import format_seconds, format_table, measure
from bench_blockwise_grid import in_turns

import hetmtl.blockwise.model as model_module
from hetmtl.blockwise import HBIImputer, TwoPathwayMTL
from hetmtl.simulate import make_shared_mapping_tasks

#: The options of HBI and of the two-pathway model before this version.
OLD_HBI = dict(lr=1e-3, max_epochs=1000, patience=30, validation_fraction=0.2)
OLD_MODEL = dict(architecture="paper", task_inputs="all", hidden=64, batch_size=16, lr=1e-3, lr_decay=0.5,
                 lr_step=100, max_epochs=1000, patience=100, validation_fraction=0.25)


def fitters(layout, grid):
    def new():
        return TwoPathwayMTL(layout, imputer="hbi", grid=grid, n_threads=1, random_state=0)

    def old():
        hbi = HBIImputer(layout, **OLD_HBI, n_threads=1, random_state=0)
        return TwoPathwayMTL(layout, imputer=hbi, grid=grid, **OLD_MODEL, n_threads=1, random_state=0)

    return new, old


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one data set, one timing, the default grid only")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    seeds = (0,) if args.quick else (0, 1, 2)
    grids = ("auto",) if args.quick else ("auto", "small", None)
    repeat = 1 if args.quick else 2
    print("Block-wise default fit benchmark (README size: 3 tasks, 300 rows)")
    print(f"python {sys.version.split()[0]}, torch {torch.__version__}, {platform.machine()}, torch threads 1")
    print()
    for grid in grids:
        rows, ratios = [], []
        for seed in seeds:
            d = make_shared_mapping_tasks(125, test_fraction=0.2, random_state=seed)
            new, old = fitters(d.layout, grid)
            cpu: list[float] = []

            def fit(make, clock=None):
                start = time.process_time()
                model = make().fit(d.X, d.y, d.task)
                if clock is not None:
                    clock.append(time.process_time() - start)
                return model

            t_new = measure(lambda: fit(new, cpu), repeat=repeat, warmup=0)
            t_old = measure(lambda: fit(old), repeat=repeat, warmup=0)
            r_new, r_old = (float(t.result.per_task_rmse(d.X_test, d.y_test, d.task_test).mean())
                            for t in (t_new, t_old))
            ratios.append(t_old.best / t_new.best)
            rows.append([f"data set {seed}", format_seconds(t_new.best), format_seconds(min(cpu)),
                         format_seconds(t_old.best),
                         f"{ratios[-1]:.1f}x", f"{r_new:.3f}", f"{r_old:.3f}"])
        print(format_table(["", "default", "default, CPU", "previous default", "previous / default", "RMSE default",
                            "RMSE previous"], rows, title=f"grid={grid!r}"))
        print(f"   geometric mean ratio previous / default = {float(np.exp(np.mean(np.log(ratios)))):.1f}x")
        print()
    shedding(seeds, repeat)
    if torch.cuda.is_available():
        on_device(seeds, repeat)
    else:
        print("CPU against GPU: skipped (torch finds no CUDA device)")
    return 0


def shedding(seeds, repeat: int) -> None:
    """The default fit with finished configurations shed from its stack against kept in it."""

    def fit(d, shrink):
        def run():
            model_module.SHRINK = shrink
            try:
                return TwoPathwayMTL(d.layout, n_threads=1, random_state=0).fit(d.X, d.y, d.task)
            finally:
                model_module.SHRINK = 1.0
        return run

    rows = []
    for seed in seeds:
        d = make_shared_mapping_tasks(125, test_fraction=0.2, random_state=seed)
        wall, cpu, fits = in_turns({"shed": fit(d, 1.0), "kept": fit(d, 0.0)}, repeat)
        same = np.array_equal(fits["shed"].cv_results_["val_loss"], fits["kept"].cv_results_["val_loss"])
        rows.append([f"data set {seed}", format_seconds(cpu["shed"]), format_seconds(cpu["kept"]),
                     f"{cpu['kept'] / cpu['shed']:.2f}x", f"{wall['kept'] / wall['shed']:.2f}x",
                     "equal" if same else "differ", " ".join(map(str, fits["shed"].cv_results_["best_epoch"]))])
    print(format_table(["", "shed, CPU", "kept, CPU", "kept / shed, CPU", "kept / shed, wall", "val. losses",
                        "best epochs"], rows, title="finished configurations shed from the stack or kept"))
    print()


def on_device(seeds, repeat: int) -> None:
    """The default fit (model and HBI) on the GPU against the CPU."""
    rows = []
    for seed in seeds:
        d = make_shared_mapping_tasks(125, test_fraction=0.2, random_state=seed)
        fits = {dev: (lambda dev=dev: TwoPathwayMTL(d.layout, device=dev, n_threads=1, random_state=0)
                      .fit(d.X, d.y, d.task)) for dev in ("cpu", "cuda")}
        fits["cuda"]()  # warm-up: CUDA context and kernels
        wall, _, models = in_turns(fits, repeat)
        rmse = {k: float(m.per_task_rmse(d.X_test, d.y_test, d.task_test).mean()) for k, m in models.items()}
        rows.append([f"data set {seed}", format_seconds(wall["cpu"]), format_seconds(wall["cuda"]),
                     f"{wall['cpu'] / wall['cuda']:.2f}x", f"{rmse['cpu']:.4f}", f"{rmse['cuda']:.4f}"])
    print(format_table(["", "CPU, wall", "GPU, wall", "CPU / GPU", "RMSE CPU", "RMSE GPU"], rows,
                       title=f"default fit on the CPU and on {torch.cuda.get_device_name()}"))


if __name__ == "__main__":
    raise SystemExit(main())
