"""Run a simulation study: many configurations times many replications, reproducibly.

A study is a function ``fn(config, seed)`` run once per (configuration, replication) pair, a
*task*. :func:`run_study` gives every task its own random stream, runs the tasks in parallel
without oversubscribing the cores, shows progress, and can checkpoint finished tasks so that an
interrupted run resumes where it stopped.

Seeds
-----
The stream of a task is ``SeedSequence(seed.entropy, spawn_key=seed.spawn_key + (h1, .., h4,
rep))`` where ``h1..h4`` are 32-bit words of a SHA-256 hash of the task's configuration (by
default all its keys; ``seed_keys`` narrows them). It depends on nothing else: not on ``n_jobs``,
the backend, the order of execution, the other configurations or ``n_reps``. So results are
identical for any ``n_jobs``; ``n_reps`` can be raised later and only the new replications run;
and configurations that agree on ``seed_keys`` share their random numbers (common random
numbers, e.g. the same data sets for every value of a tuning parameter).

Checkpoints
-----------
``checkpoint`` names a folder. It holds ``study.json`` (the seed, ``seed_keys`` and the name of
``fn``, checked on resume) and ``chunk-*.json`` files, each a batch of finished tasks with their
result rows and a checksum. A chunk is written to a temporary file and renamed into place, so a
killed run leaves whole chunks only; the next run reads them, skips those tasks and runs the rest.
A damaged chunk (truncated, unreadable, or edited by hand so that its checksum no longer holds)
is moved to ``quarantine/`` with a :class:`~hetmtl.studies.checkpoint.CheckpointWarning` and its
tasks run again. Rows pass through the same JSON conversion whether or not they are
checkpointed, so a resumed run returns exactly what an uninterrupted one would. If ``fn``
changes, start a new folder: old chunks would be reused as they are. A run locks its folder; a
second run on the same folder is refused with
:class:`~hetmtl.studies.checkpoint.CheckpointBusyError` (see :mod:`hetmtl.studies.checkpoint`).

Errors
------
A task that raises stops the study (fail fast): tasks finished so far are written to the
checkpoint before the exception propagates, with a note naming the failing configuration and
replication. Tasks that were running in other workers at that moment are not recorded and run
again on resume.
"""

from __future__ import annotations

import hashlib
import json
import math
import numbers
import os
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np
import pandas as pd

from .._util.seeds import as_seed_sequence, child_seed
from .._util.validation import check_int_at_least
from .backends import BACKENDS as _BACKENDS
from .backends import run_dask, run_loky
from .checkpoint import FORMAT as _FORMAT
from .checkpoint import FORMAT_VERSION as _FORMAT_VERSION
from .checkpoint import MANIFEST as _MANIFEST
from .checkpoint import CheckpointFolder, read_tasks
from .checkpoint import canonical_json as _canonical

__all__ = ["config_grid", "load_checkpoint", "run_study", "task_seed"]

_RESERVED = ("rep",)

StudyResult = "Mapping[str, Any] | Sequence[Mapping[str, Any]]"
StudyFn = Callable[[dict, np.random.SeedSequence], StudyResult]


# --------------------------------------------------------------------------- value conversion

def _scalar(value: Any, where: str) -> Any:
    """Convert a config or metric value to a plain JSON-representable Python scalar."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, np.generic):
        value = value.item()
        if isinstance(value, (bool, str)) or value is None:
            return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    raise ValueError(
        f"{where}: values must be scalars (str, int, float, bool or None), got "
        f"{type(value).__name__}; return several rows for vector-valued results"
    )


def _normalize_configs(configs: Any) -> list[dict[str, Any]]:
    if isinstance(configs, Mapping):
        configs = [configs]
    if isinstance(configs, (str, bytes)) or not isinstance(configs, Iterable):
        raise ValueError(f"configs: expected a sequence of dicts, got {type(configs).__name__}")
    out: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    for i, cfg in enumerate(configs):
        if not isinstance(cfg, Mapping):
            raise ValueError(f"configs[{i}]: expected a dict, got {type(cfg).__name__}")
        norm = {}
        for key, value in cfg.items():
            if not isinstance(key, str):
                raise ValueError(f"configs[{i}]: keys must be strings, got {key!r}")
            if key in _RESERVED:
                raise ValueError(f"configs[{i}]: key {key!r} is reserved for the replication index")
            val = _scalar(value, f"configs[{i}][{key!r}]")
            if isinstance(val, float) and not math.isfinite(val):
                raise ValueError(f"configs[{i}][{key!r}]: must be finite, got {val}")
            norm[key] = val
        text = _canonical(norm)
        if text in seen:
            raise ValueError(f"configs[{i}]: duplicates configs[{seen[text]}] ({norm})")
        seen[text] = i
        out.append(norm)
    if not out:
        raise ValueError("configs: no configurations given")
    return out


def _normalize_rows(result: Any, config: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Check ``fn``'s return value and turn it into a list of plain-scalar row dicts."""
    if isinstance(result, Mapping):
        rows = [result]
    elif isinstance(result, (list, tuple)):
        rows = list(result)
    else:
        raise ValueError(f"fn: must return a dict or a list of dicts, got {type(result).__name__}")
    out = []
    for i, row in enumerate(rows):
        if not isinstance(row, Mapping):
            raise ValueError(f"fn: row {i} is a {type(row).__name__}, expected a dict")
        norm = {}
        for key, value in row.items():
            if not isinstance(key, str):
                raise ValueError(f"fn: row {i} has a non-string key {key!r}")
            if key in _RESERVED or key in config:
                raise ValueError(
                    f"fn: result key {key!r} clashes with a configuration key or 'rep'; rename it"
                )
            norm[key] = _scalar(value, f"fn: row {i}, key {key!r}")
        out.append(norm)
    # The same JSON round trip as a checkpoint, so checkpointed and direct runs agree exactly.
    return json.loads(json.dumps(out, allow_nan=True))


# --------------------------------------------------------------------------- seeds

def _seed_words(config: Mapping[str, Any], seed_keys: Sequence[str] | None) -> tuple[int, ...]:
    sub = dict(config) if seed_keys is None else {k: config[k] for k in seed_keys}
    digest = hashlib.sha256(_canonical(sub).encode("utf-8")).digest()
    return tuple(int.from_bytes(digest[4 * i:4 * i + 4], "little") for i in range(4))


def task_seed(root: np.random.SeedSequence, config: Mapping[str, Any], rep: int,
              seed_keys: Sequence[str] | None = None) -> np.random.SeedSequence:
    """The SeedSequence :func:`run_study` hands to ``fn`` for one (config, rep) task.

    Parameters
    ----------
    root : SeedSequence
        The study's seed (``SeedSequence(seed)`` for an integer seed).
    config : dict
        The task's configuration (plain scalars).
    rep : int
        Replication index.
    seed_keys : sequence of str or None
        Configuration keys that identify the random stream; None means all keys.

    Returns
    -------
    numpy.random.SeedSequence
    """
    words = _seed_words(config, seed_keys)
    return child_seed(root, *words, rep)


# --------------------------------------------------------------------------- thread caps

_CONTROLLER: list[Any] = [None, -1]  # [ThreadpoolController, len(sys.modules) when built]


def _controller() -> Any:
    # Scanning the loaded native libraries costs milliseconds; redo it only when new modules
    # (and so possibly new BLAS/OpenMP libraries) have been imported since the last scan.
    from threadpoolctl import ThreadpoolController

    if _CONTROLLER[0] is None or _CONTROLLER[1] != len(sys.modules):
        _CONTROLLER[0] = ThreadpoolController()
        _CONTROLLER[1] = len(sys.modules)
    return _CONTROLLER[0]


@contextmanager
def _thread_caps(n_threads: int) -> Iterator[None]:
    """Cap BLAS/OpenMP (and torch, when already imported) threads inside a task."""
    torch = None
    if "torch" in sys.modules:  # never import torch here; cap it only if the task uses it
        torch = sys.modules["torch"]
        old = torch.get_num_threads()
        torch.set_num_threads(n_threads)
    try:
        with _controller().limit(limits=n_threads):
            yield
    finally:
        if torch is not None:
            torch.set_num_threads(old)


def _run_task(fn: StudyFn, ci: int, config: dict, rep: int, seed: np.random.SeedSequence,
              n_threads: int) -> tuple[int, int, list[dict]]:
    try:
        with _thread_caps(n_threads):
            result = fn(dict(config), seed)
        return ci, rep, _normalize_rows(result, config)
    except Exception as exc:
        if hasattr(exc, "add_note"):  # Python >= 3.11: say which task failed
            exc.add_note(f"hetmtl.studies: raised for config={config!r}, rep={rep}")
        raise


# --------------------------------------------------------------------------- checkpoint store

def _fn_name(fn: Callable) -> str:
    return getattr(fn, "__qualname__", None) or type(fn).__qualname__


def load_checkpoint(checkpoint: str | os.PathLike) -> pd.DataFrame:
    """Results stored so far in a checkpoint folder (for a peek at a running study).

    Parameters
    ----------
    checkpoint : path
        Folder given as ``checkpoint`` to :func:`run_study`.

    Returns
    -------
    pandas.DataFrame
        One row per result row, with the configuration columns, ``rep`` and the metrics, in no
        guaranteed task order (sorted by configuration text and rep).
    """
    path = Path(checkpoint)
    if not (path / _MANIFEST).is_file():
        raise ValueError(f"checkpoint: {path} is not a study checkpoint folder (no {_MANIFEST})")
    done = read_tasks(path, quarantine=False)
    tasks = [(cfg, rep, rows) for (_, rep), (cfg, rows) in sorted(done.items())]
    return _assemble(tasks)


def _assemble(tasks: Iterable[tuple[dict, int, list[dict]]]) -> pd.DataFrame:
    records: list[dict[str, Any]] = []
    config_cols: dict[str, None] = {}
    metric_cols: dict[str, None] = {}
    for config, rep, rows in tasks:
        config_cols.update(dict.fromkeys(config))
        for row in rows:
            metric_cols.update(dict.fromkeys(row))
            records.append({**config, "rep": rep, **row})
    columns = [*config_cols, "rep", *metric_cols]
    df = pd.DataFrame.from_records(records, columns=columns) if records else pd.DataFrame(
        columns=columns)
    df.attrs["config_columns"] = list(config_cols)
    df.attrs["metric_columns"] = list(metric_cols)
    return df


# --------------------------------------------------------------------------- public API

def config_grid(**axes: Any) -> list[dict[str, Any]]:
    """All combinations of the given values, as a list of configuration dicts.

    Parameters
    ----------
    **axes
        ``name=values``: a sequence of values (a scalar counts as one value). The last axis
        varies fastest.

    Returns
    -------
    list of dict

    Examples
    --------
    >>> config_grid(n_sites=[10, 20], eta=[0.0, 0.5])
    [{'n_sites': 10, 'eta': 0.0}, {'n_sites': 10, 'eta': 0.5}, {'n_sites': 20, 'eta': 0.0}, \
{'n_sites': 20, 'eta': 0.5}]
    """
    import itertools

    names, values = [], []
    for name, vals in axes.items():
        if isinstance(vals, (str, bytes)) or not isinstance(vals, Iterable):
            vals = [vals]
        vals = [_scalar(v, f"{name}") for v in vals]
        if not vals:
            raise ValueError(f"{name}: no values given")
        names.append(name)
        values.append(vals)
    return [dict(zip(names, combo)) for combo in itertools.product(*values)]


def run_study(
    fn: StudyFn,
    configs: Sequence[Mapping[str, Any]] | Mapping[str, Any],
    n_reps: int,
    *,
    seed: int | np.random.SeedSequence,
    n_jobs: int = 1,
    checkpoint: str | os.PathLike | None = None,
    progress: bool = True,
    backend: str | None = None,
    scheduler_address: str | None = None,
    seed_keys: Sequence[str] | None = None,
    chunk_size: int | None = None,
    flush_interval: float = 30.0,
    threads_per_worker: int = 1,
) -> pd.DataFrame:
    """Run ``fn`` for every configuration and replication; return one tidy table.

    Parameters
    ----------
    fn : callable
        ``fn(config: dict, seed: numpy.random.SeedSequence)`` returning a dict of scalar
        metrics, or a list of such dicts (several rows, e.g. one per method or per site). Build
        every random quantity from ``seed`` (``numpy.random.default_rng(seed)``, or pass it as a
        ``random_state``; ``int(seed.generate_state(1)[0])`` gives an int). Must be picklable
        (cloudpickle) when ``n_jobs != 1``. Result keys may not repeat configuration keys or
        ``"rep"``.
    configs : sequence of dict, or a dict
        Design points; values must be scalars (str, int, float, bool, None). See
        :func:`config_grid`. Duplicates are refused.
    n_reps : int
        Replications per configuration (reps 0..n_reps-1).
    seed : int, SeedSequence or Generator
        Root of every task's stream (see the module docstring); None is refused, since a study
        must be reproducible.
    n_jobs : int, default 1
        Parallel workers (joblib semantics: -1 uses all cores). 1 runs in this process.
    checkpoint : path or None
        Folder for resumable results (see the module docstring).
    progress : bool, default True
        Show a tqdm progress bar.
    backend : {None, "loky", "dask"}
        None means "loky" (processes on this machine) when ``n_jobs != 1``. ``"dask"`` runs the
        tasks on a ``dask.distributed`` cluster through the current Client (``n_jobs`` is then
        ignored: the cluster's workers set the parallelism); see :mod:`hetmtl.studies.backends`.
    scheduler_address : str or None
        Address of a dask scheduler (e.g. ``"tcp://10.0.0.1:8786"``); implies ``backend="dask"``.
    seed_keys : sequence of str or None
        Configuration keys that identify a task's random stream (None: all keys). Configurations
        that agree on these keys get the same streams (common random numbers).
    chunk_size : int or None
        Finished tasks per checkpoint chunk; default ``max(10, 4 * workers)``.
    flush_interval : float, default 30
        Also write a chunk when this many seconds have passed since the last one.
    threads_per_worker : int, default 1
        BLAS/OpenMP (and torch) threads inside each task, also for ``n_jobs=1`` so that
        results do not depend on ``n_jobs``.

    Returns
    -------
    pandas.DataFrame
        One row per result row: configuration columns, ``rep``, then the metric columns, in
        configuration order and then replication order. ``df.attrs`` records
        ``config_columns`` and ``metric_columns`` (used by :func:`summarize_study`).

    Raises
    ------
    CheckpointBusyError
        Another run is using the ``checkpoint`` folder.
    Exception
        Whatever ``fn`` raises; tasks finished before it are in the checkpoint already.
    """
    opts = _check_options(fn, configs, n_reps, seed, n_jobs, backend, scheduler_address, seed_keys,
                          chunk_size, flush_interval, threads_per_worker)
    cfgs, keys = opts.configs, [_canonical(c) for c in opts.configs]
    store, done = None, {}
    if checkpoint is not None:
        manifest = {"format": _FORMAT, "format_version": _FORMAT_VERSION,
                    "seed": {"entropy": opts.root.entropy, "spawn_key": list(opts.root.spawn_key)},
                    "seed_keys": opts.seed_keys, "fn": _fn_name(fn)}
        # The manifest stores JSON types; compare like with like. The folder stays locked until
        # the run ends.
        store = CheckpointFolder(checkpoint, json.loads(json.dumps(manifest)))
        done = {key: rows for key, (_, rows) in store.done.items()}

    pending = [(ci, rep) for ci in range(len(cfgs)) for rep in range(opts.n_reps)
               if (keys[ci], rep) not in done]
    recorder = _Recorder(opts, keys, done, store, len(cfgs) * opts.n_reps - len(pending), progress)
    try:
        if pending and opts.backend is None and opts.n_jobs == 1:
            for ci, rep in pending:
                seed_ci = task_seed(opts.root, cfgs[ci], rep, opts.seed_keys)
                recorder.record(*_run_task(fn, ci, cfgs[ci], rep, seed_ci, opts.n_threads))
        elif pending:
            _run_parallel(fn, opts, pending, scheduler_address, recorder.record)
    finally:
        try:  # keep whatever finished, also when fn raised or the run was interrupted
            recorder.flush()
        finally:
            recorder.bar.close()
            if store is not None:
                store.close()

    return _assemble((cfgs[ci], rep, done[(keys[ci], rep)])
                     for ci in range(len(cfgs)) for rep in range(opts.n_reps))


@dataclass(frozen=True)
class _Options:  # the checked arguments of run_study
    configs: list[dict[str, Any]]
    n_reps: int
    root: np.random.SeedSequence
    n_jobs: int
    n_threads: int
    backend: str | None
    seed_keys: list[str] | None
    chunk: int
    flush_interval: float


def _check_options(fn, configs, n_reps, seed, n_jobs, backend, scheduler_address, seed_keys,
                   chunk_size, flush_interval, threads_per_worker) -> _Options:
    if not callable(fn):
        raise ValueError(f"fn: must be callable, got {type(fn).__name__}")
    cfgs = _normalize_configs(configs)
    n_reps = check_int_at_least(n_reps, "n_reps", integer_type=True)
    # A fixed seed is required: the checkpoint of a resumable study records it.
    root = as_seed_sequence(seed, "seed", allow_none=False)
    if not isinstance(n_jobs, numbers.Integral) or isinstance(n_jobs, bool) or n_jobs == 0:
        raise ValueError(f"n_jobs: must be a non-zero integer (-1 for all cores), got {n_jobs!r}")
    n_threads = check_int_at_least(threads_per_worker, "threads_per_worker", integer_type=True)
    if scheduler_address is not None:
        if not isinstance(scheduler_address, str) or not scheduler_address:
            raise ValueError(f"scheduler_address: expected a non-empty string, got {scheduler_address!r}")
        if backend not in (None, "dask"):
            raise ValueError(f"backend: scheduler_address needs backend='dask' or None, got {backend!r}")
        backend = "dask"
    if backend is not None and backend not in _BACKENDS:
        raise ValueError(f"backend: must be one of {(None, *_BACKENDS)}, got {backend!r}")
    if seed_keys is not None:
        seed_keys = [seed_keys] if isinstance(seed_keys, str) else list(seed_keys)
        for i, cfg in enumerate(cfgs):
            missing = [k for k in seed_keys if k not in cfg]
            if missing:
                raise ValueError(f"seed_keys: configs[{i}] lacks key(s) {missing}")
    if not float(flush_interval) > 0:
        raise ValueError(f"flush_interval: must be positive, got {flush_interval}")
    from joblib import cpu_count
    workers = 1 if n_jobs == 1 else (n_jobs if n_jobs > 0 else max(1, cpu_count() + 1 + n_jobs))
    chunk = max(10, 4 * workers) if chunk_size is None else \
        check_int_at_least(chunk_size, "chunk_size", integer_type=True)
    return _Options(cfgs, n_reps, root, int(n_jobs), n_threads, backend, seed_keys, chunk,
                    float(flush_interval))


class _Recorder:
    """Collects finished tasks, advances the progress bar and writes checkpoint chunks."""

    def __init__(self, opts: _Options, keys: list[str], done: dict, store: CheckpointFolder | None,
                 n_done: int, progress: bool) -> None:
        from tqdm.auto import tqdm
        self.opts, self.keys, self.done, self.store = opts, keys, done, store
        self.bar = tqdm(total=len(keys) * opts.n_reps, initial=n_done, disable=not progress,
                        desc="study", unit="task", dynamic_ncols=True)
        self.buffer: list[dict[str, Any]] = []
        self.last_flush = time.monotonic()

    def record(self, ci: int, rep: int, rows: list[dict]) -> None:
        self.done[(self.keys[ci], rep)] = rows
        self.bar.update(1)
        if self.store is not None:
            self.buffer.append({"config": self.opts.configs[ci], "rep": rep, "rows": rows})
            if len(self.buffer) >= self.opts.chunk or \
                    time.monotonic() - self.last_flush >= self.opts.flush_interval:
                self.flush()

    def flush(self) -> None:
        if self.store is not None and self.buffer:
            self.store.write(self.buffer)
        self.buffer.clear()
        self.last_flush = time.monotonic()


def _run_parallel(fn: StudyFn, opts: _Options, pending: list[tuple[int, int]],
                  scheduler_address: str | None, record: Callable) -> None:
    cfgs = opts.configs
    calls = ((fn, ci, cfgs[ci], rep, task_seed(opts.root, cfgs[ci], rep, opts.seed_keys),
              opts.n_threads) for ci, rep in pending)

    def on_result(result: tuple[int, int, list[dict]]) -> None:
        record(*result)

    if opts.backend == "dask":
        run_dask(_run_task, calls, on_result, scheduler_address=scheduler_address)
    else:
        run_loky(_run_task, calls, on_result, n_jobs=opts.n_jobs,
                          n_threads=opts.n_threads)
