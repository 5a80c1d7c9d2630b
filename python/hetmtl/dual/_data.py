"""Multi-task inputs (one table plus a task label per row, or lists of per-task arrays): parsing,
validation, per-task train/validation split and standardization. No torch here."""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .._util.tasks import plain_label, split_rows
from .._util.validation import as_float_array, check_choice

STANDARDIZE = ("pooled", "task", "none")


def is_task_list(X: Any) -> bool:
    """Whether ``X`` is a list of per-task arrays rather than one table given as a list of rows.

    Per-task arrays are 2-dimensional and rows are 1-dimensional, so the first entry decides (the
    others are checked when they are converted).
    """
    if not isinstance(X, (list, tuple)):
        return False
    if len(X) == 0:
        return True
    try:
        return np.ndim(X[0]) != 1
    except ValueError:  # a ragged entry: not a row of numbers; the per-task checks name it
        return True


def plain_labels(labels: Any) -> list:
    """Task labels as Python values, so that messages print ``'a'`` rather than ``np.str_('a')``."""
    return [plain_label(v) for v in labels]


def stack_inputs(X: Any, y: Any, task: Any) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """Turn (X, y, task) or lists of per-task arrays into one table, a response and labels.

    With lists of per-task arrays (see :func:`is_task_list`), ``task`` must be None and the labels
    are 0..R-1 in list order; ``y`` may be None (prediction). A list of rows is one table.
    """
    if is_task_list(X):
        if task is not None:
            raise ValueError("task: must be None when X is a list of per-task arrays (2-D, one per "
                             "task); for one table with a task label per row, pass X as a 2-D array "
                             "or a list of rows")
        if len(X) == 0:
            raise ValueError("X: the list of per-task arrays is empty")
        parts = [as_float_array(x, f"X[{r}]", ndim=2) for r, x in enumerate(X)]
        d = {p.shape[1] for p in parts}
        if len(d) != 1:
            raise ValueError(f"X: per-task arrays have different numbers of columns {sorted(d)}")
        labels = np.concatenate([np.full(p.shape[0], r) for r, p in enumerate(parts)])
        yy = None
        if y is not None:
            if not isinstance(y, (list, tuple)) or len(y) != len(parts):
                raise ValueError(f"y: expected a list of {len(parts)} per-task arrays like X")
            ys = [as_float_array(v, f"y[{r}]", ndim=1) for r, v in enumerate(y)]
            for r, (p, v) in enumerate(zip(parts, ys)):
                if v.shape[0] != p.shape[0]:
                    raise ValueError(f"y[{r}]: has {v.shape[0]} rows but X[{r}] has {p.shape[0]}")
            yy = np.concatenate(ys)
        return np.vstack(parts), yy, labels
    Xa = as_float_array(X, "X")
    if Xa.ndim != 2:
        raise ValueError(f"X: expected a 2-dimensional array (rows x features), got shape {Xa.shape}")
    if task is None:
        raise ValueError("task: a task label per row of X is required (or pass lists of per-task arrays)")
    labels = np.asarray(task)
    if labels.ndim != 1 or labels.shape[0] != Xa.shape[0]:
        raise ValueError(f"task: expected {Xa.shape[0]} labels (one per row of X), got shape {labels.shape}")
    if pd.isna(pd.Series(labels)).any():
        raise ValueError("task: contains missing labels")
    yy = None
    if y is not None:
        yy = as_float_array(y, "y")
        if yy.ndim == 2 and yy.shape[1] == 1:
            yy = yy[:, 0]
        if yy.ndim != 1:
            raise ValueError(f"y: expected a 1-dimensional response, got shape {yy.shape}")
        if yy.shape[0] != Xa.shape[0]:
            raise ValueError(f"y: has {yy.shape[0]} rows but X has {Xa.shape[0]}")
    return Xa, yy, labels


def task_classes(labels: np.ndarray) -> np.ndarray:
    """The distinct task labels, sorted (by their text when they are not mutually comparable)."""
    uniq = list(pd.unique(labels))
    try:
        ordered = sorted(uniq)
    except TypeError:
        ordered = sorted(uniq, key=str)
    return np.asarray(ordered, dtype=labels.dtype if labels.dtype != object else object)


def encode_tasks(labels: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """Integer codes of ``labels`` among the fitted ``classes``; unknown labels raise."""
    codes = pd.Index(classes).get_indexer(pd.Index(labels))
    if np.any(codes < 0):
        unknown = pd.unique(np.asarray(labels)[codes < 0])[:5]
        raise ValueError(f"task: unknown task label(s) {plain_labels(unknown)}; fitted tasks are "
                         f"{plain_labels(classes)}")
    return codes.astype(np.int64)


@dataclass
class Standardizer:
    """Column centering and scaling of X (pooled or per task) and of y (pooled)."""

    x_mean: np.ndarray  # (1, d) or (R, d)
    x_scale: np.ndarray
    y_mean: float
    y_scale: float

    @classmethod
    def fit(cls, X: np.ndarray, y: np.ndarray, codes: np.ndarray, n_tasks: int, mode: str) -> "Standardizer":
        check_choice(mode, "standardize", STANDARDIZE)
        d = X.shape[1]
        if mode == "none":
            mean, scale = np.zeros((1, d)), np.ones((1, d))
        elif mode == "pooled":
            mean, scale = X.mean(0, keepdims=True), X.std(0, keepdims=True)
        else:
            n = np.bincount(codes, minlength=n_tasks)[:, None]
            mean = np.zeros((n_tasks, d))
            np.add.at(mean, codes, X)
            mean /= n
            var = np.zeros((n_tasks, d))
            np.add.at(var, codes, (X - mean[codes]) ** 2)
            scale = np.sqrt(var / n)
        scale = np.where(scale > 1e-12, scale, 1.0)
        ys = float(y.std())
        return cls(mean, scale, float(y.mean()), ys if ys > 1e-12 else 1.0)

    def x(self, X: np.ndarray, codes: np.ndarray) -> np.ndarray:
        rows = codes if self.x_mean.shape[0] > 1 else np.zeros_like(codes)
        return (X - self.x_mean[rows]) / self.x_scale[rows]

    def y(self, y: np.ndarray) -> np.ndarray:
        return (y - self.y_mean) / self.y_scale

    def y_inverse(self, z: np.ndarray, codes: np.ndarray | None = None) -> np.ndarray:
        """Standardized responses back in the units of y (``codes``: unused, y is scaled pooled)."""
        return z * self.y_scale + self.y_mean


@dataclass
class Split:
    """Standardized rows of one part (train or validation), sorted by task."""

    X: np.ndarray
    y: np.ndarray
    codes: np.ndarray
    sizes: np.ndarray  # rows per task (R,)


@dataclass
class Prepared:
    """Everything a model needs from the data: the split parts, the scaling and the task labels."""

    train: Split
    val: Split
    scaler: Standardizer
    classes: np.ndarray
    n_features: int

    @property
    def n_tasks(self) -> int:
        return int(self.classes.size)


def prepare(X: Any, y: Any, task: Any, validation_fraction: float, standardize: str,
            seed: np.random.SeedSequence) -> Prepared:
    """Validate, split and standardize multi-task training data."""
    if not (isinstance(validation_fraction, numbers.Real) and 0 < validation_fraction < 1):
        raise ValueError(f"validation_fraction: must lie in (0, 1), got {validation_fraction!r}")
    Xa, ya, labels = stack_inputs(X, y, task)
    if ya is None:
        raise ValueError("y: a response is required to fit")
    if Xa.shape[0] == 0 or Xa.shape[1] == 0:
        raise ValueError(f"X: needs at least one row and one column, got shape {Xa.shape}")
    classes = task_classes(labels)
    codes = encode_tasks(labels, classes)
    R = classes.size
    tr, va = split_rows(codes, R, float(validation_fraction), seed, plain_labels(classes))
    scaler = Standardizer.fit(Xa[tr], ya[tr], codes[tr], R, standardize)

    def part(idx: np.ndarray) -> Split:
        c = codes[idx]
        return Split(X=scaler.x(Xa[idx], c), y=scaler.y(ya[idx]), codes=c, sizes=np.bincount(c, minlength=R))

    return Prepared(train=part(tr), val=part(va), scaler=scaler, classes=classes, n_features=Xa.shape[1])
