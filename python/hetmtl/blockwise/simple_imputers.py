"""Reference imputations of missing blocks: column means and scikit-learn's iterative imputer.

Both follow the interface of :class:`hetmtl.blockwise.HBIImputer` (``fit``, ``transform``,
``score``, the completed matrix in ``layout.all_columns`` order) so that they can feed the same
multi-task model. NumPy, pandas and scikit-learn only (no torch).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.experimental import enable_iterative_imputer  # noqa: F401  (makes IterativeImputer importable)
from sklearn.impute import IterativeImputer

from ._imputer_base import BlockImputer, observer_rows, require_observers
from .layout import BlockLayout

__all__ = ["IterativeBlockImputer", "MeanBlockImputer"]


class MeanBlockImputer(BlockImputer):
    """Fill a missing block with its column means over the training rows that observe it.

    Parameters
    ----------
    layout : BlockLayout

    Attributes
    ----------
    means_ : dict of str to ndarray
        Column means of every imputed source.
    """

    def __init__(self, layout: BlockLayout):
        self.layout = layout

    def _fit_blocks(self, blocks: dict[str, np.ndarray], codes: np.ndarray) -> None:
        seen = observer_rows(self.layout_, codes)
        require_observers(self.layout_, seen)
        self.means_ = {s: blocks[s][seen[s]].mean(axis=0) for s in self.layout_.imputed_sources}

    def _impute(self, source: str, blocks: dict[str, np.ndarray], rows: np.ndarray) -> np.ndarray:
        return np.broadcast_to(self.means_[source], (int(rows.sum()), self.means_[source].size))


class IterativeBlockImputer(BlockImputer):
    """scikit-learn's :class:`~sklearn.impute.IterativeImputer` on the anchor and all other sources.

    The imputer is fitted on the training rows with every missing block as NaN (each column is
    regressed on all the others in turn, observed entries of other sources included); a new row
    is completed from whatever its own task observes.

    Parameters
    ----------
    layout : BlockLayout
    **kwargs
        Passed to ``IterativeImputer`` (e.g. ``max_iter``, ``estimator``, ``random_state``,
        ``n_nearest_features``). Defaults are scikit-learn's.

    Attributes
    ----------
    imputer_ : IterativeImputer
        The fitted imputer, on the columns in ``layout.all_columns`` order.
    """

    def __init__(self, layout: BlockLayout, **kwargs: Any):
        self.layout = layout
        self.kwargs = kwargs

    def get_params(self, deep: bool = True) -> dict:
        return {"layout": self.layout, **self.kwargs}

    def set_params(self, **params: Any) -> "IterativeBlockImputer":
        if "layout" in params:
            self.layout = params.pop("layout")
        self.kwargs = {**self.kwargs, **params}
        return self

    def _fit_blocks(self, blocks: dict[str, np.ndarray], codes: np.ndarray) -> None:
        require_observers(self.layout_, observer_rows(self.layout_, codes))
        # keep_empty_features: a column is never dropped, so the output keeps the layout's width.
        self.imputer_ = IterativeImputer(**{"keep_empty_features": True, **self.kwargs})
        self.imputer_.fit(np.hstack([blocks[s] for s in self.layout_.sources]))

    def _impute_all(self, blocks: dict[str, np.ndarray], missing: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        # One imputer pass completes every source of every row.
        full = self.imputer_.transform(np.hstack([blocks[s] for s in self.layout_.sources]))
        out, start = {}, 0
        for s in self.layout_.sources:
            width = self.layout_.width(s)
            if s in missing and missing[s].any():
                out[s] = full[missing[s], start:start + width]
            start += width
        return out
