"""Late fusion of per-site double machine learning estimates.

Each site fits :class:`SiteDML` on its own rows and sends a :class:`SiteSummary` (no row-level
data). The center fuses the summaries with :class:`LateFusion`: similar sites borrow strength,
outlying sites keep their own estimate.
"""

from .solver import ConvergenceWarning, FusedFit, FusedPath, fused_path, fused_solve
from .summary import FoldSummary, SiteSummary

__all__ = [
    "ConvergenceWarning",
    "FoldSummary",
    "FusedFit",
    "FusedPath",
    "SiteSummary",
    "fused_path",
    "fused_solve",
]
