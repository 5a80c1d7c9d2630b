"""Multi-source data with block-wise missing sources (the block-wise missing designs).

T tasks and T + 1 sources: the anchor x_0 (``p_anchor`` columns) is observed for every task, source
t (``p_specific`` columns) only for task t. Over the full concatenated vector of length
p = p_anchor + T p_specific, task t draws::

    x ~ N(0, Sigma(rho_t)),   Sigma(rho)_ij = rho ** (0.01 |i - j|)
    (non-Gaussian variant: x <- x + 0.3 sin(x))
    y = alpha (1/p) sum_j v_c[j] x_j^2 + (1 - alpha) (1/p) sum_j v_t[j] x_j + e,   e ~ N(0, noise^2)

with v_c (shared) and v_t (one per task) i.i.d. N(-10, 10^2), drawn once per data set. The response
depends on every source, including the blocks that are missing for the task; the full rows are
returned too, so that imputations can be scored against the truth.

Randomness: fixed-key child streams of one SeedSequence give v_c, and per task v_t, x, e and the
test split, so that a task's draws do not depend on the other tasks' settings (common random
numbers across the levels of a study).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from ..blockwise.layout import BlockLayout
from .._util.tasks import as_seed_sequence
from .._util.validation import check_fraction
from ._random import child_rng, task_sizes

__all__ = ["BLOCKWISE_SETTINGS", "BlockwiseTasks", "blockwise_setting", "make_blockwise_tasks"]

_SHARED, _TASK = 0, 1
_T_COEF, _T_X, _T_E, _T_SPLIT = range(4)


@dataclass(frozen=True)
class BlockwiseTasks:
    """One simulated block-wise missing data set.

    Attributes
    ----------
    X, y, task : ndarray
        Rows to fit on, all tasks stacked (``task`` codes 0..T-1); ``X`` has NaN in each task's
        missing blocks.
    X_full : ndarray
        The same rows with every block (the truth behind the NaN).
    X_test, X_test_full, y_test, task_test, f_test : ndarray
        Held-out rows per task (with and without missing blocks), their responses and the
        noiseless regression function.
    layout : BlockLayout
        Sources ``"x0"`` (anchor), ``"x1"``..``"xT"`` by column position; task t observes x0 and x(t+1).
    v_shared, v_task : ndarray of shape (p,), (T, p)
        Coefficients of the quadratic (shared) and linear (task) parts.
    rho : ndarray of shape (T,)
    alpha, noise : float
    """

    X: np.ndarray
    X_full: np.ndarray
    y: np.ndarray
    task: np.ndarray
    X_test: np.ndarray
    X_test_full: np.ndarray
    y_test: np.ndarray
    task_test: np.ndarray
    f_test: np.ndarray
    layout: BlockLayout
    v_shared: np.ndarray
    v_task: np.ndarray
    rho: np.ndarray
    alpha: float
    noise: float

    @property
    def n_tasks(self) -> int:
        return int(self.rho.shape[0])


def _block_layout(n_tasks: int, p_anchor: int, p_specific: int) -> BlockLayout:
    sources = {"x0": list(range(p_anchor))}
    for t in range(n_tasks):
        start = p_anchor + t * p_specific
        sources[f"x{t + 1}"] = list(range(start, start + p_specific))
    return BlockLayout(sources, "x0", {t: [f"x{t + 1}"] for t in range(n_tasks)})


def _correlation_factor(rho: float, p: int) -> np.ndarray:
    """Cholesky factor of Sigma(rho)_ij = rho ** (0.01 |i - j|)."""
    lag = np.abs(np.subtract.outer(np.arange(p), np.arange(p)))
    return np.linalg.cholesky(rho ** (0.01 * lag))


def make_blockwise_tasks(n_tasks: int = 2, n_per_task: int | Sequence[int] = 300, *, p_anchor: int = 100,
                         p_specific: int = 25, rho: float | Sequence[float] | None = None, alpha: float = 0.3,
                         noise: float = 0.1, gaussian: bool = True, test_fraction: float = 0.2,
                         random_state: Any = None) -> BlockwiseTasks:
    """Simulate T tasks with block-wise missing sources (see the module docstring for the model).

    Parameters
    ----------
    n_tasks : int
        T (at least 1); there are T + 1 sources.
    n_per_task : int or sequence of int
        Rows per task before the test split (unequal sizes allowed).
    p_anchor, p_specific : int
        Widths of the anchor and of each task-specific source.
    rho : float, sequence of float or None
        Correlation parameter of each task's covariate law, in (0, 1): one value for all tasks or
        one per task (distribution heterogeneity). None: 0.95 for the first task and 0.7 for the
        others (setting A's default with two tasks).
    alpha : float
        Share of the shared quadratic part in the response, in [0, 1].
    noise : float
        Standard deviation of the noise.
    gaussian : bool
        False for the non-Gaussian variant ``x + 0.3 sin(x)``.
    test_fraction : float
        Share of each task's rows held out as test rows.
    random_state : None, int or SeedSequence

    Returns
    -------
    BlockwiseTasks
    """
    T = int(n_tasks)
    if T < 1:
        raise ValueError(f"n_tasks: must be at least 1, got {n_tasks!r}")
    for name, val in (("p_anchor", p_anchor), ("p_specific", p_specific)):
        if not isinstance(val, (int, np.integer)) or isinstance(val, bool) or val < 1:
            raise ValueError(f"{name}: must be a positive int, got {val!r}")
    if rho is None:
        rho = (0.95,) + (0.7,) * (T - 1)
    rhos = np.broadcast_to(np.asarray(rho, dtype=float), (T,)) if np.ndim(rho) == 0 else np.asarray(rho, dtype=float)
    if rhos.shape != (T,):
        raise ValueError(f"rho: expected one value or {T} values, got {rho!r}")
    if not np.all((rhos > 0) & (rhos < 1)):
        raise ValueError(f"rho: every value must lie in (0, 1), got {rho!r}")
    if not 0 <= alpha <= 1:
        raise ValueError(f"alpha: must lie in [0, 1], got {alpha!r}")
    if not (np.isfinite(noise) and noise >= 0):
        raise ValueError(f"noise: must be a finite non-negative number, got {noise!r}")
    check_fraction(test_fraction, "test_fraction")
    sizes = task_sizes(n_per_task, T)
    layout = _block_layout(T, int(p_anchor), int(p_specific))
    p = int(p_anchor) + T * int(p_specific)
    root = as_seed_sequence(random_state)
    v_shared = child_rng(root, _SHARED).normal(-10.0, 10.0, size=p)
    v_task = np.empty((T, p))
    observed = layout.observed_matrix()
    cols = [np.asarray(layout.columns(s)) for s in layout.sources]

    parts: dict[str, list] = {}
    for t in range(T):  # data generation only (not an estimator's hot path)
        v_task[t] = child_rng(root, _TASK, t, _T_COEF).normal(-10.0, 10.0, size=p)
        n = int(sizes[t])
        x = child_rng(root, _TASK, t, _T_X).normal(size=(n, p)) @ _correlation_factor(float(rhos[t]), p).T
        if not gaussian:
            x = x + 0.3 * np.sin(x)
        f = alpha * (x**2 @ v_shared) / p + (1 - alpha) * (x @ v_task[t]) / p
        y = f + noise * child_rng(root, _TASK, t, _T_E).normal(size=n)
        add_task_rows(parts, t, x, f, y, observed[t], cols, child_rng(root, _TASK, t, _T_SPLIT), test_fraction)
    return BlockwiseTasks(**stacked_rows(parts), layout=layout, v_shared=v_shared, v_task=v_task, rho=rhos.copy(),
                          alpha=float(alpha), noise=float(noise))


def add_task_rows(parts: dict[str, list], t: int, x: np.ndarray, f: np.ndarray, y: np.ndarray, observed: np.ndarray,
                  cols: list[np.ndarray], split_rng: np.random.Generator, test_fraction: float) -> None:
    """Append task t's rows to ``parts``: its missing sources set to NaN, split into fitting and
    test rows (``split_rng`` draws the test rows)."""
    n = x.shape[0]
    masked = x.copy()
    for j, c in enumerate(cols):
        if not observed[j]:
            masked[:, c] = np.nan
    n_test = min(n - 1, max(1, int(round(test_fraction * n))))  # both parts keep a row
    test = np.zeros(n, bool)
    test[split_rng.permutation(n)[:n_test]] = True
    for key, val in (("X", masked[~test]), ("X_full", x[~test]), ("y", y[~test]), ("task", np.full((~test).sum(), t)),
                     ("X_test", masked[test]), ("X_test_full", x[test]), ("y_test", y[test]),
                     ("task_test", np.full(test.sum(), t)), ("f_test", f[test])):
        parts.setdefault(key, []).append(val)


def stacked_rows(parts: dict[str, list]) -> dict[str, np.ndarray]:
    """The row fields of :class:`BlockwiseTasks`, every task's rows stacked."""
    return {key: np.concatenate(val) for key, val in parts.items()}


# The paper's simulation settings: each maps its varied value to make_blockwise_tasks's arguments.
BLOCKWISE_SETTINGS: dict[str, dict[str, Any]] = {
    "A": {"varies": "rho_2", "values": (0.5, 0.6, 0.7, 0.8, 0.9), "default": 0.7},
    "B": {"varies": "alpha", "values": (0.1, 0.2, 0.3, 0.4, 0.5), "default": 0.3},
    "C": {"varies": "n_per_task", "values": (100, 200, 300, 400, 500, 600), "default": 300},
    "D": {"varies": "p_specific", "values": (25, 50, 75, 100, 125), "default": 25},
    "T3": {"varies": None, "values": (None,), "default": None},
    "T4": {"varies": None, "values": (None,), "default": None},
}


def blockwise_setting(setting: str, value: Any = None) -> dict[str, Any]:
    """Arguments of :func:`make_blockwise_tasks` for one of the paper's settings.

    ``"A"``: rho_1 = 0.95 and rho_2 = ``value`` (distribution heterogeneity); ``"B"``: rho = 0.8 for
    both tasks and alpha = ``value``; ``"C"``: ``value`` rows per task; ``"D"``: ``value`` columns per
    task-specific source; ``"T3"``, ``"T4"``: three or four tasks with a 125-column anchor, 25 columns
    per task-specific source and rho = 0.95, 0.9, 0.9(, 0.9). ``value`` None takes the setting's
    default. Other arguments keep the paper's defaults (two tasks, p_0 = 100, p_t = 25, n = 300,
    alpha = 0.3).

    Parameters
    ----------
    setting : {"A", "B", "C", "D", "T3", "T4"}
        The paper's setting.
    value : object, optional
        The setting's varying quantity (see above).

    Returns
    -------
    dict
        Keyword arguments of :func:`make_blockwise_tasks`.
    """
    if setting not in BLOCKWISE_SETTINGS:
        raise ValueError(f"setting: must be one of {tuple(BLOCKWISE_SETTINGS)}, got {setting!r}")
    spec = BLOCKWISE_SETTINGS[setting]
    v = spec["default"] if value is None else value
    if setting == "A":
        return {"rho": (0.95, float(v))}
    if setting == "B":
        return {"rho": 0.8, "alpha": float(v)}
    if setting == "C":
        return {"n_per_task": int(v)}
    if setting == "D":
        return {"p_specific": int(v)}
    T = 3 if setting == "T3" else 4
    return {"n_tasks": T, "p_anchor": 125, "p_specific": 25, "rho": (0.95,) + (0.9,) * (T - 1)}
