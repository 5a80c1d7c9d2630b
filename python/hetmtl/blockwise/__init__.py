"""Multi-task learning with multi-source block-wise missing data.

Whole sources are missing per task: every task observes an anchoring source, and each other source
is observed by some tasks only. :class:`BlockLayout` describes that structure (which columns form
which source, which sources each task observes) and checks data against it. Imputers complete the
missing blocks from the anchor: :class:`HBIImputer` (heterogeneous block-wise imputation, neural)
and the references :class:`MeanBlockImputer` and :class:`IterativeBlockImputer`; all return the
completed rows in the order of ``layout.all_columns``. :class:`TwoPathwayMTL` is the multi-task
model on the completed rows (by default a shared encoder of the completed row with gated imputed
inputs, or the paper's shared encoder of the anchor; one encoder per task, shared and task
heads), with its competitors :class:`SingleTaskBlockMLP`, :func:`htl` and the ablations. The layout
and the reference imputers need only NumPy, pandas and scikit-learn; the neural estimators are
loaded on first use and need torch (``pip install hetmtl[torch]``).
"""

from __future__ import annotations

import importlib
from typing import Any

from .layout import BlockLayout, MissingBlockValuesWarning

# Public name -> submodule; imported on first access so that the layout works without torch.
_LAZY: dict[str, str] = {
    "TwoPathwayMTL": "model",
    "AUTO_GRID": "_grid",
    "PAPER_GRID": "_grid",
    "SMALL_GRID": "_grid",
    "SingleTaskBlockMLP": "baselines",
    "htl": "baselines",
    "without_orthogonality": "baselines",
    "without_imputation_penalty": "baselines",
    "without_decorrelation": "baselines",
    "HBIImputer": "imputer",
    "IterativeBlockImputer": "simple_imputers",
    "MeanBlockImputer": "simple_imputers",
}

_TORCH_FREE = {"_grid", "simple_imputers"}

__all__ = ["BlockLayout", "MissingBlockValuesWarning", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        if _LAZY[name] not in _TORCH_FREE:  # hetmtl.nn first: its error names the torch extra
            importlib.import_module("..nn", __name__)
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
