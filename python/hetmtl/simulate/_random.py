"""Seeding and size helpers shared by the simulation generators."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np


def seed_sequence(random_state: Any) -> np.random.SeedSequence:
    """``random_state`` (None, a non-negative int or a SeedSequence) as a SeedSequence."""
    if isinstance(random_state, np.random.SeedSequence):
        return random_state
    if random_state is None or (isinstance(random_state, (int, np.integer)) and not isinstance(random_state, bool)
                                and random_state >= 0):
        return np.random.SeedSequence(None if random_state is None else int(random_state))
    raise ValueError(f"random_state: expected None, a non-negative int or a SeedSequence, got {random_state!r}")


def child_rng(root: np.random.SeedSequence, *keys: int) -> np.random.Generator:
    """A generator on the fixed-key child stream ``keys`` of ``root`` (``root`` is not mutated)."""
    return np.random.default_rng(np.random.SeedSequence(root.entropy, spawn_key=tuple(root.spawn_key) + keys))


def task_sizes(n_per_task: int | Sequence[int], n_tasks: int, minimum: int = 5) -> np.ndarray:
    """Rows per task from one int or one int per task, each at least ``minimum``."""
    sizes = np.broadcast_to(np.asarray(n_per_task), (n_tasks,)) if np.ndim(n_per_task) == 0 else \
        np.asarray(n_per_task)
    if sizes.shape != (n_tasks,) or not np.issubdtype(sizes.dtype, np.integer):
        raise ValueError(f"n_per_task: expected an int or {n_tasks} ints, got {n_per_task!r}")
    if np.any(sizes < minimum):
        raise ValueError(f"n_per_task: every task needs at least {minimum} rows, got {int(sizes.min())}")
    return sizes.astype(int)
