"""What every block-wise imputer shares: the fit/transform/score contract, per-source
standardization and the layout of the completed matrix. NumPy and pandas only (no torch)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from .._util.sklearn_api import TaskTransformer
from ..persist.mixin import Persistable
from .layout import BlockLayout


@dataclass(frozen=True)
class BlockScaler:
    """Column means and standard deviations of each source (zero spread counts as 1)."""

    mean: dict[str, np.ndarray]
    scale: dict[str, np.ndarray]

    @classmethod
    def fit(cls, blocks: dict[str, np.ndarray], rows: dict[str, np.ndarray], standardize: bool) -> "BlockScaler":
        """Statistics of each source over ``rows[source]`` (identity when not ``standardize``)."""
        mean, scale = {}, {}
        for s, block in blocks.items():
            x = block[rows[s]]
            if standardize:
                sd = x.std(axis=0)
                mean[s], scale[s] = x.mean(axis=0), np.where(sd > 0, sd, 1.0)
            else:
                mean[s], scale[s] = np.zeros(block.shape[1]), np.ones(block.shape[1])
        return cls(mean, scale)

    def forward(self, source: str, x: np.ndarray) -> np.ndarray:
        return (x - self.mean[source]) / self.scale[source]

    def inverse(self, source: str, z: np.ndarray) -> np.ndarray:
        return z * self.scale[source] + self.mean[source]


def check_layout(layout: Any) -> BlockLayout:
    if not isinstance(layout, BlockLayout):
        raise ValueError(f"layout: expected a BlockLayout, got {type(layout).__name__}")
    return layout


def observer_rows(layout: BlockLayout, codes: np.ndarray) -> dict[str, np.ndarray]:
    """Per source, a boolean mask of the rows whose task observes it."""
    seen = layout.observed_matrix()
    return {s: seen[codes, j] for j, s in enumerate(layout.sources)}


def require_observers(layout: BlockLayout, seen: dict[str, np.ndarray]) -> None:
    """Raise unless every imputed source is observed on some training row."""
    absent = [s for s in layout.imputed_sources if not seen[s].any()]
    if absent:
        raise ValueError(f"X: no training row observes source(s) {absent} (observed by tasks "
                         f"{[layout.observers(s) for s in absent]}); nothing to learn their imputation from")


class BlockImputer(Persistable, TaskTransformer, BaseEstimator):
    """Base class: ``fit(X, task)``, ``transform(X, task)``, ``fit_transform``, ``score``.

    Subclasses implement ``_fit_blocks(blocks, codes)`` (training rows split into per-source
    blocks, NaN where missing; ``self.layout_`` is set) and ``_impute(source, blocks, rows)``, which returns the imputed
    block ``source`` for the boolean ``rows`` of ``blocks`` (or ``_impute_all``, for imputers
    that complete every source at once). The base class checks the data against
    the layout, copies observed blocks unchanged and lays the completed matrix out in the order of
    ``layout.all_columns``.
    """

    def fit(self, X: Any, task: Any) -> "BlockImputer":
        """Learn the imputation of every source some task misses, from the training rows.

        Parameters
        ----------
        X : DataFrame or array_like of shape (n, d)
            Rows of all tasks; the layout's columns by name (DataFrame) or by position (array).
            Blocks missing for a row's task are ignored (NaN or anything else).
        task : array_like of shape (n,)
            Task label of each row, among the layout's tasks.

        Returns
        -------
        self
        """
        layout = check_layout(self.layout)
        return self.fit_split(layout, *layout.split(X, task))

    def fit_split(self, layout: BlockLayout, blocks: dict[str, np.ndarray], codes: np.ndarray) -> "BlockImputer":
        """:meth:`fit` on rows already split by ``layout`` (a model that has split them to check
        its data need not have them split again).

        Parameters
        ----------
        layout : BlockLayout
        blocks : dict of str to ndarray
            Per-source blocks of the rows, as :meth:`BlockLayout.split` returns them.
        codes : ndarray of int
            Task code of every row.

        Returns
        -------
        self
        """
        if codes.size == 0:
            raise ValueError("X: has no rows")
        self.layout_ = layout  # what _fit_blocks reads (it may impute, e.g. to score validation rows)
        try:
            self._fit_blocks(blocks, codes)
        except BaseException:
            del self.layout_  # not fitted
            raise
        self.n_features_out_ = len(layout.all_columns)
        return self

    def transform(self, X: Any, task: Any) -> np.ndarray:
        """The completed rows: observed blocks as given, missing blocks imputed.

        Parameters
        ----------
        X : DataFrame or array_like of shape (n, d)
            As in :meth:`fit` (the same column names or positions).
        task : array_like of shape (n,)

        Returns
        -------
        ndarray of shape (n, len(layout.all_columns))
            Columns in the order of ``layout.all_columns`` (source by source).
        """
        check_is_fitted(self, "layout_")
        return self.transform_split(*self.layout_.split(X, task))

    def transform_split(self, blocks: dict[str, np.ndarray], codes: np.ndarray) -> np.ndarray:
        """:meth:`transform` on rows already split by ``layout_`` (see :meth:`fit_split`).

        Parameters
        ----------
        blocks : dict of str to ndarray
            Per-source blocks, as :meth:`BlockLayout.split` returns them.
        codes : ndarray of int
            Task code of every row.

        Returns
        -------
        ndarray of shape (n, len(layout.all_columns))
        """
        check_is_fitted(self, "layout_")
        seen = observer_rows(self.layout_, codes)
        fills = self._impute_all(blocks, {s: ~seen[s] for s in self.layout_.imputed_sources})
        parts = []
        for s in self.layout_.sources:
            block = blocks[s]
            if s in fills:
                block = block.copy()
                block[~seen[s]] = fills[s]
            parts.append(block)
        return np.hstack(parts)

    def fit_transform(self, X: Any, task: Any) -> np.ndarray:
        """:meth:`fit` then :meth:`transform` on the same rows."""
        return self.fit(X, task).transform(X, task)

    def score(self, X_full: Any, task: Any) -> pd.DataFrame:
        """Imputation error against the truth, per imputed source (for simulations).

        Parameters
        ----------
        X_full : DataFrame or array_like of shape (n, d)
            Rows with every block present, missing ones included (the truth behind them).
        task : array_like of shape (n,)

        Returns
        -------
        DataFrame
            One row per source missing for some of the rows: ``rmse`` over the entries of the
            blocks missing for each row's task, and ``n_rows``, the number of such rows.
        """
        check_is_fitted(self, "layout_")
        layout = self.layout_
        blocks, codes = layout.split(X_full, task)
        completed = self.transform_split(blocks, codes)
        seen = observer_rows(layout, codes)
        positions = layout.source_positions(X_full)
        values = X_full.to_numpy() if isinstance(X_full, pd.DataFrame) else np.asarray(X_full)
        out = {}
        start = 0
        for s in layout.sources:
            width = layout.width(s)
            missing = ~seen[s]
            if missing.any():
                truth = np.asarray(values[np.ix_(missing, positions[s])], dtype=np.float64)
                if not np.isfinite(truth).all():
                    raise ValueError(f"X_full: the truth of source {s!r} has NaN or infinite values on rows "
                                     "that miss it")
                err = completed[missing, start:start + width] - truth
                out[s] = {"rmse": float(np.sqrt(np.mean(err ** 2))), "n_rows": int(missing.sum())}
            start += width
        return pd.DataFrame.from_dict(out, orient="index", columns=["rmse", "n_rows"]).rename_axis("source")

    def _output_columns(self) -> list:
        return list(self.layout_.all_columns)

    # -- for subclasses ------------------------------------------------------------------------------

    def _fit_blocks(self, blocks: dict[str, np.ndarray], codes: np.ndarray) -> None:  # pragma: no cover
        raise NotImplementedError

    def _impute(self, source: str, blocks: dict[str, np.ndarray], rows: np.ndarray) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    def _impute_all(self, blocks: dict[str, np.ndarray], missing: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Imputed blocks of every source with missing rows (``missing[source]``, boolean)."""
        return {s: self._impute(s, blocks, rows) for s, rows in missing.items() if rows.any()}
