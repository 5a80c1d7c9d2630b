"""Seeding and size helpers shared by the simulation generators."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from .._util.tasks import child_seed


def child_rng(root: np.random.SeedSequence, *keys: int) -> np.random.Generator:
    """A generator on the fixed-key child stream ``keys`` of ``root`` (``root`` is not mutated)."""
    return np.random.default_rng(child_seed(root, *keys))


def task_sizes(n_per_task: int | Sequence[int], n_tasks: int, minimum: int = 5) -> np.ndarray:
    """Rows per task from one int or one int per task, each at least ``minimum``."""
    sizes = np.broadcast_to(np.asarray(n_per_task), (n_tasks,)) if np.ndim(n_per_task) == 0 else \
        np.asarray(n_per_task)
    if sizes.shape != (n_tasks,) or not np.issubdtype(sizes.dtype, np.integer):
        raise ValueError(f"n_per_task: expected an int or {n_tasks} ints, got {n_per_task!r}")
    if np.any(sizes < minimum):
        raise ValueError(f"n_per_task: every task needs at least {minimum} rows, got {int(sizes.min())}")
    return sizes.astype(int)
