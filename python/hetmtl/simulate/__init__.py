"""Data-generating processes for simulation studies of hetmtl's methods.

Every generator takes one ``random_state`` and returns the data together with the truth (site
parameters, nuisance functions) so that studies can score estimates against it.
"""

from .blockwise import BLOCKWISE_SETTINGS, BlockwiseTasks, blockwise_setting, make_blockwise_tasks
from .blockwise_shared import make_shared_mapping_tasks
from .dual_encoder import DualEncoderTasks, make_dual_encoder_tasks, per_task_rmse
from .late_fusion import LateFusionSites, make_late_fusion_sites

__all__ = [
    "BLOCKWISE_SETTINGS",
    "BlockwiseTasks",
    "DualEncoderTasks",
    "LateFusionSites",
    "blockwise_setting",
    "make_blockwise_tasks",
    "make_dual_encoder_tasks",
    "make_late_fusion_sites",
    "make_shared_mapping_tasks",
    "per_task_rmse",
]
