"""Data handling shared by the block-wise multi-task models: checking rows against the layout,
completing the missing blocks, the per-task split and standardization. No torch."""

from __future__ import annotations

import copy
import importlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .._util.validation import as_float_array
from .._util.tasks import child_seed, split_rows
from ._imputer_base import BlockImputer
from .layout import BlockLayout

# Imputers by name: (submodule, class); resolved on use so that this module needs neither.
IMPUTERS: dict[str, tuple[str, str]] = {
    "hbi": ("imputer", "HBIImputer"),
    "mean": ("simple_imputers", "MeanBlockImputer"),
    "iterative": ("simple_imputers", "IterativeBlockImputer"),
}


def make_imputer(spec: Any, layout: BlockLayout, seed: np.random.SeedSequence, verbose: bool = False,
                 device: Any = "cpu") -> Any:
    """A fresh, unfitted imputer from ``spec``: a name of :data:`IMPUTERS` (with ``verbose`` and
    ``device`` where it has those options), an imputer object (copied, so that the caller's object
    is left unfitted, and left on its own device), or None (no imputation)."""
    if spec is None:
        return None
    if isinstance(spec, str):
        if spec not in IMPUTERS:
            raise ValueError(f"imputer: must be one of {tuple(IMPUTERS)}, None or an imputer object, got {spec!r}")
        module, name = IMPUTERS[spec]
        try:
            cls = getattr(importlib.import_module(f".{module}", __package__), name)
        except (ImportError, AttributeError) as exc:
            raise ValueError(
                f"imputer: {spec!r} needs {name} (hetmtl.blockwise.{module}), which this installation lacks ({exc})"
            ) from None
        imputer = cls(layout)
        params = imputer.get_params() if hasattr(imputer, "get_params") else {}
        if "random_state" in params:
            imputer.set_params(random_state=int(seed.generate_state(1)[0]))
        if "verbose" in params:
            imputer.set_params(verbose=bool(verbose))
        if "device" in params:
            imputer.set_params(device=device)
        return imputer
    if not (callable(getattr(spec, "fit", None)) and callable(getattr(spec, "transform", None))):
        raise ValueError(f"imputer: an imputer object needs fit(X, task) and transform(X, task), got {spec!r}")
    try:
        from sklearn.base import clone

        return clone(spec)
    except TypeError:  # not a scikit-learn estimator
        return copy.deepcopy(spec)


def _reads_split(imputer: Any, layout: BlockLayout) -> bool:
    """Whether ``imputer`` is one of the package's imputers on ``layout``, with the standard fit and
    transform: it can then take the rows already split by the layout instead of splitting them again."""
    return (isinstance(imputer, BlockImputer) and type(imputer).fit is BlockImputer.fit
            and type(imputer).transform is BlockImputer.transform and imputer.layout == layout)


def _as_given(layout: BlockLayout, X: Any, blocks: dict[str, np.ndarray]) -> Any:
    """``X`` as it came in (a frame: its layout columns; an array: every column, since the layout
    names columns by position) with every block the layout declares missing set to NaN, for an
    imputer of the user's: values the layout declares missing never reach it."""
    if isinstance(X, pd.DataFrame):
        observed = np.hstack([blocks[s] for s in layout.sources])
        return pd.DataFrame(observed, index=X.index, columns=X.columns)
    out = np.array(X, dtype=np.float64)
    for s, pos in layout.source_positions(X).items():
        out[:, pos] = blocks[s]
    return out


def _completed(layout: BlockLayout, imputer: Any, X: Any, task: Any, blocks: dict[str, np.ndarray],
               codes: np.ndarray) -> np.ndarray:
    """Rows in ``layout.all_columns`` order with missing blocks filled by ``imputer`` (NaN when
    None); observed blocks are always the data."""
    observed = np.hstack([blocks[s] for s in layout.sources])
    if imputer is None:
        return observed
    filled = imputer.transform_split(blocks, codes) if _reads_split(imputer, layout) else \
        imputer.transform(_as_given(layout, X, blocks), task)
    filled = np.asarray(filled, dtype=np.float64)
    if filled.shape != observed.shape:
        raise ValueError(f"imputer: transform returned shape {filled.shape}, expected {observed.shape} "
                         "(every column of the layout, source by source)")
    seen = np.isfinite(observed)
    if not np.isfinite(filled[~seen]).all():
        raise ValueError("imputer: transform left NaN or infinite values in the missing blocks")
    return np.where(seen, observed, filled)


def column_mask(layout: BlockLayout, which: str) -> np.ndarray:
    """(tasks x columns) mask of each task's ``"observed"`` or ``"missing"`` columns (all columns
    in ``layout.all_columns`` order)."""
    widths = [layout.width(s) for s in layout.sources]
    seen = np.repeat(layout.observed_matrix(), widths, axis=1)
    return seen if which == "observed" else ~seen


def anchor_columns(layout: BlockLayout) -> np.ndarray:
    """Positions of the anchor's columns in ``layout.all_columns`` order."""
    offsets = np.cumsum([0] + [layout.width(s) for s in layout.sources])
    a = layout.sources.index(layout.anchor)
    return np.arange(int(offsets[a]), int(offsets[a + 1]))


@dataclass
class Scaler:
    """Column standardization (pooled over the rows that observe a column) and per-task y scaling."""

    x_mean: np.ndarray  # (p,)
    x_scale: np.ndarray
    y_mean: np.ndarray  # (T,)
    y_scale: np.ndarray

    @classmethod
    def fit(cls, Z: np.ndarray, y: np.ndarray, codes: np.ndarray, seen: np.ndarray, n_tasks: int) -> "Scaler":
        """From completed rows ``Z``, responses, task codes and the observed-cell mask ``seen``."""
        w = seen.astype(np.float64)
        cnt = np.maximum(w.sum(0), 1.0)
        vals = np.where(seen, Z, 0.0)
        mean = vals.sum(0) / cnt
        var = (np.where(seen, Z - mean, 0.0) ** 2).sum(0) / cnt
        n = np.maximum(np.bincount(codes, minlength=n_tasks), 1)
        y_mean = np.bincount(codes, y, minlength=n_tasks) / n
        y_var = np.bincount(codes, (y - y_mean[codes]) ** 2, minlength=n_tasks) / n

        def safe(s: np.ndarray) -> np.ndarray:
            return np.where(s > 1e-12, s, 1.0)

        return cls(mean, safe(np.sqrt(var)), y_mean, safe(np.sqrt(y_var)))

    def x(self, Z: np.ndarray) -> np.ndarray:
        """Standardized rows; NaN (blocks not imputed) become 0, the training mean."""
        return np.nan_to_num((Z - self.x_mean) / self.x_scale, nan=0.0)

    def y(self, y: np.ndarray, codes: np.ndarray) -> np.ndarray:
        return (y - self.y_mean[codes]) / self.y_scale[codes]

    def y_inverse(self, z: np.ndarray, codes: np.ndarray) -> np.ndarray:
        return z * self.y_scale[codes] + self.y_mean[codes]


@dataclass
class BlockData:
    """Standardized, completed rows of a fit, split per task into training and validation rows."""

    Z: np.ndarray  # (n, p) standardized, all columns
    y: np.ndarray  # (n,) standardized per task
    codes: np.ndarray
    train: np.ndarray  # row indices, sorted by task
    val: np.ndarray
    scaler: Scaler
    imputer: Any
    n_tasks: int


def layout_columns(layout: BlockLayout, X: Any) -> Any:
    """A frame ``X`` with only the layout's columns, source by source (what an imputer is given):
    it may also hold the response, the task label or anything else. An array, whose columns the
    layout names by position, is returned as it is."""
    if not isinstance(X, pd.DataFrame):
        return X
    positions = np.concatenate([np.asarray(p, dtype=int) for p in layout.source_positions(X).values()])
    return X.iloc[:, positions]


def prepare_fit(layout: BlockLayout, X: Any, y: Any, task: Any, imputer_spec: Any, validation_fraction: float,
                seed: np.random.SeedSequence, split_key: int, imputer_key: int, verbose: bool = False,
                device: Any = "cpu") -> BlockData:
    """Check rows against ``layout``, fit the imputer (on all rows given: it never sees y; one made
    from a name trains on ``device``), complete, split per task and standardize with training
    statistics (``validation_fraction`` already checked)."""
    blocks, codes = layout.split(X, task, warn_ignored=True)
    X = layout_columns(layout, X)
    ya = as_float_array(y, "y")
    if ya.ndim == 2 and ya.shape[1] == 1:
        ya = ya[:, 0]
    if ya.ndim != 1 or ya.shape[0] != codes.shape[0]:
        raise ValueError(f"y: expected {codes.shape[0]} values (one per row of X), got shape {ya.shape}")
    T = layout.n_tasks
    absent = np.flatnonzero(np.bincount(codes, minlength=T) == 0)
    if absent.size:
        raise ValueError(f"task: the layout's task {layout.tasks[absent[0]]!r} has no rows")
    tr, va = split_rows(codes, T, float(validation_fraction), child_seed(seed, split_key),
                        np.asarray(layout.tasks, dtype=object))
    imputer = make_imputer(imputer_spec, layout, child_seed(seed, imputer_key), verbose, device)
    if _reads_split(imputer, layout):
        imputer.fit_split(layout, blocks, codes)
    elif imputer is not None:
        imputer.fit(_as_given(layout, X, blocks), task)
    Z = _completed(layout, imputer, X, task, blocks, codes)
    seen = column_mask(layout, "observed")[codes]
    scaler = Scaler.fit(Z[tr], ya[tr], codes[tr], seen[tr], T)
    return BlockData(Z=scaler.x(Z), y=scaler.y(ya, codes), codes=codes, train=tr, val=va, scaler=scaler,
                     imputer=imputer, n_tasks=T)


def prepare_predict(layout: BlockLayout, X: Any, task: Any, imputer: Any, scaler: Scaler) -> tuple[np.ndarray, np.ndarray]:
    """Standardized completed rows of new data and their task codes."""
    blocks, codes = layout.split(X, task, warn_ignored=True)
    X = layout_columns(layout, X)
    return scaler.x(_completed(layout, imputer, X, task, blocks, codes)), codes
