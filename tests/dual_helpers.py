"""Small multi-task data sets for the dual-encoder tests."""

from __future__ import annotations

import numpy as np

FAST = dict(hidden=(8,), latent_shared=3, latent_specific=2, max_epochs=12, patience=5,
            encoder_steps=2, negative_transfer="off", n_threads=1)


def small_tasks(seed=0, sizes=(30, 45, 20), d=3, labels=("north", "south", "west")):
    """Rows of len(sizes) related tasks (shared nonlinear signal, task-specific slopes)."""
    rng = np.random.default_rng(seed)
    n = int(np.sum(sizes))
    task = np.repeat(np.asarray(labels, dtype=object), sizes)
    X = rng.normal(size=(n, d)) + np.repeat(np.arange(len(sizes)), sizes)[:, None] * 0.2
    codes = np.repeat(np.arange(len(sizes)), sizes)
    y = np.tanh(X[:, 0]) + 0.3 * codes * X[:, 1] + 0.1 * rng.normal(size=n)
    return X, y, task
