"""The per-task train/validation split shared by the multi-task estimators (NumPy only).

The seed helpers live in :mod:`hetmtl._util.seeds`; they are imported here too because the
estimators take both from this module.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .seeds import as_seed_sequence, child_seed  # noqa: F401  (re-exported for the estimators)


def split_rows(codes: np.ndarray, n_tasks: int, validation_fraction: float,
               seed: np.random.SeedSequence, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row indices of a per-task random split (train, validation), each sorted by task.

    Every task keeps at least two training rows and one validation row; a smaller task raises.
    """
    n = np.bincount(codes, minlength=n_tasks)
    n_val = np.maximum(1, np.rint(validation_fraction * n).astype(int))
    small = np.nonzero(n - n_val < 2)[0]
    if small.size:
        r = int(small[0])
        raise ValueError(
            f"task: task {plain_label(labels[r])!r} has {int(n[r])} row(s); validation_fraction={validation_fraction} needs "
            f"at least {int(n_val[r]) + 2} rows per task ({int(n_val[r])} to validate, 2 to train)"
        )
    order, is_val = random_first_per_task(codes, n_val, seed)
    return order[~is_val], order[is_val]


def random_first_per_task(codes: np.ndarray, n_first: np.ndarray,
                          seed: np.random.SeedSequence) -> tuple[np.ndarray, np.ndarray]:
    """Row indices in a random order within each task (tasks in code order), and a mask of the
    first ``n_first[task]`` rows of each task in that order (a random draw of that many rows)."""
    n = np.bincount(codes, minlength=n_first.size)
    # A random key per row, sorted within task.
    key = np.random.default_rng(seed).random(codes.size)
    order = np.lexsort((key, codes))
    start = np.concatenate([[0], np.cumsum(n)[:-1]])
    pos = np.arange(codes.size) - start[codes[order]]
    return order, pos < n_first[codes[order]]


def plain_label(label: Any) -> Any:
    """A label as Python has it (``'d'``, not ``np.str_('d')``), for messages."""
    return label.item() if isinstance(label, np.generic) else label
