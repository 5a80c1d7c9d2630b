"""Throughput of a study on a dask.distributed LocalCluster with one worker against two.

Run from the repository root (needs ``dask[distributed]``, in the test extra)::

    python benchmarks/bench_study_dask.py            # 48 tasks of ~0.2 s, best of 3
    python benchmarks/bench_study_dask.py --quick    # 16 tasks, best of 1

Both clusters are LocalClusters on 127.0.0.1 of single-threaded worker processes, driven by
:func:`hetmtl.studies.run_study` with ``scheduler_address`` exactly as a study script on a real
cluster would be. The task is CPU-bound NumPy work (symmetric eigenvalues; the runner caps BLAS at
one thread per task), each one a fresh random matrix from the task's seed. Each cluster first runs
an untimed warm-up study (imports and first pickling in the workers), then the timed ones; every
timed study uses a new seed so no result is reused. The ratio is tasks per second with two workers
over one: 2.0 would be perfect scaling, and the machine needs two idle cores to show it. The same
study run serially in this process (``n_jobs=1``) is timed too, as the no-overhead reference of
one worker. Both clusters' results are checked to be identical to that local run.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

from _timing import format_seconds, format_table, measure

from hetmtl.studies import config_grid, run_study

MATRIX_SIZE = 220
EIG_PER_TASK = 10


def cpu_task(config: dict, seed: np.random.SeedSequence) -> dict:
    """About 0.2 s of single-threaded linear algebra."""
    rng = np.random.default_rng(seed)
    top = 0.0
    for _ in range(EIG_PER_TASK):
        a = rng.standard_normal((MATRIX_SIZE, MATRIX_SIZE))
        top = max(top, float(np.linalg.eigvalsh(a + a.T)[-1]))
    return {"top_eig": top}


def study(address: str, n_tasks: int, seed: int):
    return run_study(cpu_task, config_grid(block=list(range(n_tasks // 4))), 4, seed=seed,
                     scheduler_address=address, progress=False)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="16 tasks, one repeat")
    args = ap.parse_args(argv)
    from distributed import LocalCluster

    n_tasks, repeat = (16, 1) if args.quick else (48, 3)
    configs = config_grid(block=list(range(n_tasks // 4)))
    local = run_study(cpu_task, configs, 4, seed=0, progress=False)
    serial = measure(lambda: run_study(cpu_task, configs, 4, seed=1, progress=False),
                     repeat=repeat, number=1, warmup=0)
    rows = [["serial, in process", format_seconds(serial.best), format_seconds(serial.median),
             f"{n_tasks / serial.best:.1f}"]]
    throughput = {}
    for n_workers in (1, 2):
        with LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                          host="127.0.0.1", dashboard_address=None) as cluster:
            address = cluster.scheduler_address
            assert study(address, n_tasks, seed=0).equals(local), "cluster != local run"
            seeds = iter(range(1, 1000))
            timing = measure(lambda: study(address, n_tasks, next(seeds)), repeat=repeat,
                             number=1, warmup=0)
        throughput[n_workers] = n_tasks / timing.best
        rows.append([f"LocalCluster, {n_workers} worker(s)", format_seconds(timing.best), format_seconds(timing.median),
                     f"{throughput[n_workers]:.1f}"])
    print(f"{n_tasks} tasks of {EIG_PER_TASK} eigendecompositions of {MATRIX_SIZE}x{MATRIX_SIZE} "
          f"matrices; {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    print(format_table(["run", "best", "median", "tasks/s"], rows))
    print(f"throughput ratio, 2 workers / 1 worker: {throughput[2] / throughput[1]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
