"""Late fusion of per-site double machine learning estimates.

Each site fits :class:`SiteDML` on its own rows and sends a :class:`SiteSummary` (no row-level
data). The center fuses the summaries with :class:`LateFusion`: similar sites borrow strength,
outlying sites keep their own estimate.
"""

from .heterogeneity import MetaAnalysis, PooledEstimate, meta_analysis, meta_analysis_from_summaries
from .late_fusion import LambdaSelectionWarning, LateFusion
from .site_dml import SiteDML
from .solver import ConvergenceWarning, FusedFit, FusedPath, fused_path, fused_solve
from .summary import FoldSummary, SiteSummary

__all__ = [
    "ConvergenceWarning",
    "FoldSummary",
    "FusedFit",
    "FusedPath",
    "LambdaSelectionWarning",
    "LateFusion",
    "MetaAnalysis",
    "PooledEstimate",
    "SiteDML",
    "SiteSummary",
    "fused_path",
    "fused_solve",
    "meta_analysis",
    "meta_analysis_from_summaries",
]
