"""Dual-encoder multi-task regression for covariate shift and posterior drift.

:class:`DualEncoderMTL` learns a shared encoder C and a task-specific encoder S_r per task with
linear heads ``f_r(x) = alpha_r' S_r(x) + beta_r' C(x) + b_r``; the shared heads beta_r are pulled
toward a learned center (exactly fused for similar tasks) and the two encodings are kept
orthogonal. Baselines with the same interface: :class:`SingleTaskMLP`, :class:`PooledMLP`,
:class:`HardSharingMTL`, and the ablations :func:`shared_only`, :func:`specific_only`.

Needs torch (``pip install hetmtl[torch]``).
"""

from .. import nn as _nn  # noqa: F401  (first: without torch it raises the message naming the extra)
from .ablations import shared_only, specific_only
from .baselines import HardSharingMTL, PooledMLP, SingleTaskMLP
from .estimator import DualEncoderMTL, NegativeTransferWarning
from .transfer import TransferredTask

__all__ = [
    "DualEncoderMTL",
    "HardSharingMTL",
    "NegativeTransferWarning",
    "PooledMLP",
    "SingleTaskMLP",
    "TransferredTask",
    "shared_only",
    "specific_only",
]
