"""Size helpers shared by the simulation generators (and their seeding helper, from _util.seeds)."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from .._util.seeds import child_rng  # noqa: F401  (the generators import it from here)


def task_sizes(n_per_task: int | Sequence[int], n_tasks: int, minimum: int = 5) -> np.ndarray:
    """Rows per task from one int or one int per task, each at least ``minimum``."""
    sizes = np.broadcast_to(np.asarray(n_per_task), (n_tasks,)) if np.ndim(n_per_task) == 0 else \
        np.asarray(n_per_task)
    if sizes.shape != (n_tasks,) or not np.issubdtype(sizes.dtype, np.integer):
        raise ValueError(f"n_per_task: expected an int or {n_tasks} ints, got {n_per_task!r}")
    if np.any(sizes < minimum):
        raise ValueError(f"n_per_task: every task needs at least {minimum} rows, got {int(sizes.min())}")
    return sizes.astype(int)
