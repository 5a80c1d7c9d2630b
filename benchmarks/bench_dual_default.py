"""Benchmark of a default DualEncoderMTL fit on about 600 rows: the current defaults against the
previous ones, measured in the same run on the same data.

Run from the repository root::

    python benchmarks/bench_dual_default.py            # 3 data sets, best of 3 fits each
    python benchmarks/bench_dual_default.py --quick    # 1 data set, 1 fit each

The data: 6 tasks of 100 rows (d = 8, covariate shift, a shared two-factor part and a strong
task-specific part; ``make_dual_encoder_tasks``) and 500 test rows per task. The previous defaults
are the current estimator as a single fit (``ensemble_size=1``) instead of the mean of three fits;
``earlier defaults`` adds the options of the release before (a shared encoding of 8 outputs, the
group lasso on the task-specific heads, a task's specific encoder kept when it lowers the
validation MSE). All include the negative-transfer test of ``negative_transfer="warn"`` (a
single-task reference fit and its refit). ``refit`` is a single fit with a whole fit per
``lam_beta``, to show what the head-level search costs in accuracy. Times are CPU seconds of this process on one torch thread (what a fit costs on
one core, also on a busy machine) and wall seconds; the first fit of a process also pays torch's
one-off imports, so every configuration is fitted once before timing. With CUDA, the current
defaults are also timed with ``device="cuda"``.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
import warnings

import numpy as np
import torch

from _timing import format_table
from hetmtl.dual import DualEncoderMTL
from hetmtl.simulate import make_dual_encoder_tasks, per_task_rmse

PREVIOUS = dict(ensemble_size=1)
EARLIER = dict(PREVIOUS, latent_shared=8, lam_specific=1.0, specific_selection="validation")
CONFIGS = {"current defaults": {}, "previous defaults": PREVIOUS, "earlier defaults": EARLIER,
           "previous, refit per lam_beta": {**PREVIOUS, "lam_beta_search": "refit"}}
GOAL_SECONDS = 3.0


def data(seed: int):
    return make_dual_encoder_tasks(6, 600, 8, n_shared=2, signal=2.0, specific=1.5, noise=0.5, covariate_shift=1.0,
                                   test_fraction=500 / 600, random_state=seed)


def fit_once(ds, options: dict, seed: int) -> tuple[float, float, float]:
    """CPU seconds, wall seconds and mean per-task test RMSE of one fit."""
    model = DualEncoderMTL(random_state=seed, n_threads=1, **options)
    cpu, wall = time.process_time(), time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # negative-transfer warnings of the default fit
        model.fit(ds.X, ds.y, ds.task)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    rmse = per_task_rmse(ds.y_test, model.predict(ds.X_test, ds.task_test), ds.task_test, ds.n_tasks).mean()
    return cpu, wall, float(rmse)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one data set, one timed fit per configuration")
    args = parser.parse_args(argv)
    n_data, repeat = (1, 1) if args.quick else (3, 3)
    torch.set_num_threads(1)
    configs = dict(CONFIGS)
    if torch.cuda.is_available():
        configs["current defaults, cuda"] = {"device": "cuda"}
    print("Dual-encoder default fit, 6 tasks x 100 rows (600 rows), d = 8")
    print(f"python {sys.version.split()[0]}, torch {torch.__version__}, {platform.machine()}, torch threads 1")
    for options in configs.values():  # torch's one-off imports and caches, before any timing
        fit_once(data(99), {**options, "max_epochs": 2}, 0)
    cpu = {name: [] for name in configs}
    wall = {name: [] for name in configs}
    rmse = {name: [] for name in configs}
    for seed in range(n_data):
        ds = data(seed)
        for _ in range(repeat):  # configurations in turns, so that load bursts hit them alike
            for name, options in configs.items():
                c, w, r = fit_once(ds, options, seed)
                cpu[name].append(c)
                wall[name].append(w)
                rmse[name].append(r)
    rows = []
    for name in configs:
        c = np.reshape(cpu[name], (n_data, repeat)).min(1)  # best repeat per data set
        w = np.reshape(wall[name], (n_data, repeat)).min(1)
        r = np.reshape(rmse[name], (n_data, repeat))[:, 0]
        rows.append([name, f"{c.mean():.2f}", f"{w.mean():.2f}", f"{r.mean():.4f}"])
    print(format_table(["configuration", "CPU s (mean of best)", "wall s", "test RMSE"], rows))
    old = np.reshape(cpu["previous defaults"], (n_data, repeat)).min(1).mean()
    new = np.reshape(cpu["current defaults"], (n_data, repeat)).min(1).mean()
    print(f"\nratio previous / current defaults (CPU) = {old / new:.2f}x; current default fit {new:.2f} s "
          f"(goal < {GOAL_SECONDS:g} s: {'met' if new < GOAL_SECONDS else 'NOT met'})")
    if "current defaults, cuda" in configs:
        gpu = np.reshape(wall["current defaults, cuda"], (n_data, repeat)).min(1).mean()
        cpu_wall = np.reshape(wall["current defaults"], (n_data, repeat)).min(1).mean()
        print(f"wall: cpu {cpu_wall:.2f} s, cuda {gpu:.2f} s (ratio {cpu_wall / gpu:.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
