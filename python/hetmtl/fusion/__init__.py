"""Late fusion of per-site double machine learning estimates.

Each site fits :class:`SiteDML` on its own rows and sends a :class:`SiteSummary` (no row-level
data). The center fuses the summaries with :class:`LateFusion`: similar sites borrow strength,
outlying sites keep their own estimate.
"""

from .heterogeneity import MetaAnalysis, PooledEstimate, meta_analysis, meta_analysis_from_summaries
from .late_fusion import LambdaSelectionWarning, LateFusion, SingleSiteWarning
from .site_dml import SiteDML
from .fused import ConvergenceWarning, FusedFit, FusedPath, fused_path, fused_solve
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
    "SingleSiteWarning",
    "SiteSummary",
    "fused_path",
    "fused_solve",
    "meta_analysis",
    "meta_analysis_from_summaries",
]

# Nuisance fusion on a shared kernel grid.
from .grid_summary import GridSummary, NuisanceSums, common_bandwidths, nuisance_targets  # noqa: E402
from .kernel_grid import KernelGrid, silverman_bandwidth, site_quantiles  # noqa: E402
from .nuisance_fusion import FusedNuisance, NuisanceFusion, WithheldGridWarning  # noqa: E402

__all__ += [
    "FusedNuisance",
    "GridSummary",
    "KernelGrid",
    "NuisanceFusion",
    "NuisanceSums",
    "SiteDML",
    "WithheldGridWarning",
    "common_bandwidths",
    "nuisance_targets",
    "silverman_bandwidth",
    "site_quantiles",
]

# Site-side disclosure control and differential privacy of released sums.
from .disclosure import DisclosurePolicy, DisclosureWarning  # noqa: E402
from .privacy import PrivacyBudget  # noqa: E402
from .summary_privacy import SummaryPrivacy  # noqa: E402

__all__ += ["DisclosurePolicy", "DisclosureWarning", "PrivacyBudget", "SummaryPrivacy"]
