"""Multi-task learning with multi-source block-wise missing data.

Whole sources are missing per task: every task observes an anchoring source, and each other source
is observed by some tasks only. :class:`BlockLayout` describes that structure (which columns form
which source, which sources each task observes) and checks data against it. It needs only NumPy
and pandas; the neural estimators of this subpackage are loaded on first use and need torch
(``pip install hetmtl[torch]``).
"""

from __future__ import annotations

import importlib
from typing import Any

from .layout import BlockLayout

# Public name -> submodule; imported on first access so that the layout works without torch.
_LAZY: dict[str, str] = {
    "HBIImputer": "imputer",
    "IterativeBlockImputer": "simple_imputers",
    "MeanBlockImputer": "simple_imputers",
}

__all__ = ["BlockLayout", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
