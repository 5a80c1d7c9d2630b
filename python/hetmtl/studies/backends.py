"""Where a study's tasks run: worker processes on this machine (loky) or a dask cluster.

Both runners take the task function, an iterable of its argument tuples and a callback that
receives each return value as soon as it arrives (in any order), so the caller can checkpoint
while the study is running.

Local workers (loky). A worker started by joblib's loky backend outlives a parent that is killed
(SIGKILL, an out-of-memory kill, a scheduler's time limit): it finishes its task and then waits
minutes for work that never comes. Each worker here, from its start, watches its parent process
from a daemon thread and exits within a second of the parent's death, ending the task it was
running.

Clusters (dask.distributed). Tasks go to the scheduler through a ``distributed.Client``
directly, a bounded window at a time (a study of a million tasks does not put a million futures
on the scheduler at once), and results are taken as they complete. When a worker dies, the
scheduler reruns its tasks elsewhere (up to ``distributed.scheduler.allowed-failures`` times per
task); since every task's seed depends only on its configuration and replication, a rerun gives
the same rows, so the study loses nothing and matches a local run exactly.
"""

from __future__ import annotations

import os
import threading
import time
from contextlib import contextmanager
from typing import Any, Callable, Iterable, Iterator

__all__ = ["BACKENDS", "run_dask", "run_loky"]

BACKENDS = ("loky", "dask")

#: Seconds between two checks of a local worker's parent.
PARENT_CHECK_INTERVAL = 0.25
#: Exit status of a worker whose parent died.
ORPHAN_EXIT_STATUS = 75

Task = Callable[..., Any]
OnResult = Callable[[Any], None]


# --------------------------------------------------------------------------- local workers

def _exit_when_orphaned(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(PARENT_CHECK_INTERVAL)
    os._exit(ORPHAN_EXIT_STATUS)  # no clean-up: the parent that wanted results is gone


def _watch_parent(parent_pid: int) -> None:
    """Worker initializer: a daemon thread ends this process when ``parent_pid`` dies.

    It runs when the worker starts, so a worker that never got a task exits too.
    """
    if os.getppid() == parent_pid:  # only a direct child of the run watches its parent
        threading.Thread(target=_exit_when_orphaned, args=(parent_pid,), daemon=True,
                         name="hetmtl-parent-watch").start()


def run_loky(task: Task, calls: Iterable[tuple], on_result: OnResult, *, n_jobs: int,
             n_threads: int) -> None:
    """Run ``task(*args)`` for every tuple in ``calls`` in local worker processes.

    Parameters
    ----------
    task : callable
        Picklable (cloudpickle) task function.
    calls : iterable of tuple
        Positional arguments, one tuple per task.
    on_result : callable
        Called in this process with each task's return value, in completion order.
    n_jobs : int
        Workers, joblib semantics (-1: all cores).
    n_threads : int
        BLAS/OpenMP threads per worker (set in the workers' environment).
    """
    from joblib import Parallel, delayed, parallel_config

    # Backend parameters (the initializer) reach loky's executor from joblib 1.5 on. An executor
    # reused from an earlier run of this process keeps its workers, which watch this same pid.
    with parallel_config(backend="loky", inner_max_num_threads=n_threads,
                         initializer=_watch_parent, initargs=(os.getpid(),)):
        results = Parallel(n_jobs=n_jobs, return_as="generator_unordered")(
            delayed(task)(*args) for args in calls)
        for result in results:
            on_result(result)


# --------------------------------------------------------------------------- dask clusters

def _import_distributed() -> Any:
    try:
        import distributed
    except ImportError:
        raise ImportError(
            "backend='dask': dask.distributed is not installed; install it with "
            "`pip install 'dask[distributed]'` (or the package's 'dask' extra)"
        ) from None
    return distributed


@contextmanager
def _dask_client(distributed: Any, scheduler_address: str | None) -> Iterator[Any]:
    if scheduler_address is None:
        try:
            client = distributed.get_client()
        except ValueError:
            raise ValueError(
                "backend: 'dask' needs a running dask.distributed Client or a scheduler_address"
            ) from None
        yield client  # the caller's client: left open
        return
    try:
        client = distributed.Client(scheduler_address, set_as_default=False)
    except OSError as exc:
        raise OSError(f"scheduler_address: cannot reach a dask scheduler at "
                      f"{scheduler_address!r} ({exc})") from None
    try:
        yield client
    finally:
        client.close()


def _window(client: Any) -> int:
    # Enough queued work to keep every worker thread busy while results travel back.
    return max(64, 4 * sum(client.nthreads().values()))


def run_dask(task: Task, calls: Iterable[tuple], on_result: OnResult, *,
             scheduler_address: str | None) -> None:
    """Run ``task(*args)`` for every tuple in ``calls`` on a dask.distributed cluster.

    Parameters
    ----------
    task, calls, on_result
        As for :func:`run_loky`; ``task`` and its arguments must be importable or picklable on
        the workers.
    scheduler_address : str or None
        The scheduler to connect to (a client is opened and closed here); None uses the
        current default ``distributed`` Client.
    """
    distributed = _import_distributed()
    with _dask_client(distributed, scheduler_address) as client:
        pending = iter(calls)
        completed = distributed.as_completed(loop=client.loop)
        in_flight: set[Any] = set()

        def submit_next() -> None:
            args = next(pending, None)
            if args is not None:
                future = client.submit(task, *args, pure=False)
                in_flight.add(future)
                completed.add(future)

        for _ in range(_window(client)):
            submit_next()
        try:
            for future in completed:
                in_flight.discard(future)
                on_result(future.result())
                submit_next()
        finally:
            if in_flight:  # fail fast: a task raised, or the caller was interrupted
                client.cancel(list(in_flight))
