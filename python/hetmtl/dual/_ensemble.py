"""Ensembles of dual-encoder fits that differ only in their initial weights.

On small tasks the test error of one fit depends on its random initial encoders about as much as
on the data (``scripts/diagnose_dual_small.py``: a seed-to-seed SD of the test RMSE of 0.04 at 40
training rows per task). Averaging the predictions of a few fits on the same split removes most of
that variance. All members early-stop on the same validation rows, so those rows stay held out
for the averaged model and its diagnostics (validation MSE, negative-transfer test) remain honest.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

from .._util.seeds import child_seed
from ..nn import TaskLayout
from ..nn.estimator import FIRST_METHOD_SEED
from .alternating import DualNet, Heads, predict_rows

# Streams of members 1, 2, ... (member 0 draws from the model's own streams, so that an ensemble
# of one is the single fit of before).
SEED_MEMBERS = FIRST_METHOD_SEED + 1


class EnsembleMember(NamedTuple):
    """One fitted member: its encoders and its selected heads (standardized scale)."""

    net: DualNet
    heads: Heads


def member_seeds(seed: np.random.SeedSequence, size: int) -> list[np.random.SeedSequence]:
    """The root seed of every member: ``seed`` itself, then independent child streams."""
    return [seed] + [child_seed(seed, SEED_MEMBERS, k) for k in range(1, int(size))]


def ensemble_predict(members: list[EnsembleMember], X: torch.Tensor, codes: torch.Tensor,
                     layout: TaskLayout, blocks: torch.Tensor | None = None) -> torch.Tensor:
    """The mean of the members' standardized predictions for rows ``X`` of tasks ``codes``."""
    total = None
    for member in members:  # a handful of members, each a batched forward pass over all rows
        pred, *_ = predict_rows(member.net, member.heads.tensors(X.device), X, codes, layout, blocks)
        total = pred if total is None else total + pred
    return total / len(members)


__all__ = ["EnsembleMember", "SEED_MEMBERS", "ensemble_predict", "member_seeds"]
