"""Data-generating processes for simulation studies of hetmtl's methods.

Every generator takes one ``random_state`` and returns the data together with the truth (site
parameters, nuisance functions) so that studies can score estimates against it.
"""

from .late_fusion import LateFusionSites, make_late_fusion_sites

__all__ = ["LateFusionSites", "make_late_fusion_sites"]
