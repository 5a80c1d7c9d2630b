"""Which task-specific encoders a fitted dual encoder keeps, decided on each task's validation rows.

The group lasso on alpha_r (``lam_specific``), when used, shrinks and may zero a task's specific
head, but it sees training rows only. Here, with the encoders fixed, every task's heads are solved
twice -- with its specific encoding (the penalized solution, or the ridge-only one where the penalty
zeroed alpha_r) and without it -- and the validation rows decide: by default the encoder stays
unless a one-sided paired test says the task does worse with it (with 10 validation rows, a choice
on the smaller validation loss alone switches off encoders with a real signal at random). Both
solves run for all tasks at once (the tasks' heads are independent given the center), so this
costs two head solves.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from .alternating import AltConfig, Data, DualNet, Heads, column_scale, rescale_heads, solve_task_heads
from .negative_transfer import paired_transfer_test


@dataclass(frozen=True)
class SpecificEvidence:
    """Validation evidence on every task's specific encoder (standardized scale of y).

    Attributes
    ----------
    used : ndarray of bool, shape (R,)
        Tasks whose specific part is kept.
    val_mse_with, val_mse_without : ndarray of shape (R,)
        Validation MSE of the task's heads with its specific encoding and without it.
    p_value : ndarray of shape (R,) or None
        One-sided p-value of the paired test that the task does worse with its specific encoding
        (None when the decision used no test).
    """

    used: np.ndarray
    val_mse_with: np.ndarray
    val_mse_without: np.ndarray
    p_value: np.ndarray | None = None

    @property
    def gain(self) -> np.ndarray:
        """What the specific part adds: validation MSE without it minus with it (> 0: it helps)."""
        return self.val_mse_without - self.val_mse_with


def _encodings(net: DualNet, data: Data) -> tuple[np.ndarray, np.ndarray]:
    with torch.no_grad():
        S, C, _, _ = net.encode(data.X, data.layout, data.blocks)
    return S.double().cpu().numpy(), C.double().cpu().numpy()


def _squared_errors(S: np.ndarray, C: np.ndarray, data: Data, heads: Heads) -> np.ndarray:
    codes = data.codes.cpu().numpy()
    pred = (S * heads.alpha[codes]).sum(1) + (C * heads.beta[codes]).sum(1) + heads.intercept[codes]
    return (pred - data.y_np) ** 2


def _task_mean(values: np.ndarray, data: Data) -> np.ndarray:
    codes = data.codes.cpu().numpy()
    R = data.sizes.size
    return np.bincount(codes, values, minlength=R) / np.maximum(np.bincount(codes, minlength=R), 1)


def _pick(use: np.ndarray, a: Heads, b: Heads) -> Heads:
    """Task by task, the heads of ``a`` where ``use`` and of ``b`` elsewhere (same centers)."""
    col = use[:, None]
    return Heads(np.where(col, a.alpha, b.alpha), np.where(col, a.beta, b.beta),
                 np.where(use, a.intercept, b.intercept), a.alpha_center, a.beta_center,
                 np.where(use, a.fused_alpha, b.fused_alpha), np.where(use, a.fused_beta, b.fused_beta))


def select_specific(net: DualNet, train: Data, val: Data, heads: Heads, cfg: AltConfig,
                    apply: bool = True, level: float | None = None) -> tuple[Heads, SpecificEvidence]:
    """Keep or switch off each task's specific encoder on the evidence of its validation rows.

    Parameters
    ----------
    net : DualNet
        The fitted encoders (with a task-specific encoder, ``net.q > 0``).
    train, val : Data
        Training and validation rows.
    heads : Heads
        The heads solved under the full penalty for these encoders.
    cfg : AltConfig
    apply : bool
        False: only measure (``heads`` are returned unchanged and a task counts as using its
        specific part where the penalty left alpha_r non-zero).
    level : float or None
        None: a task keeps its specific part when it lowers the validation MSE at all. A number:
        it keeps it unless a one-sided paired t-test of the per-row squared validation errors
        finds it worse than without at this level.

    Returns
    -------
    heads : Heads
        Per task, the heads with its specific part (kept) or without it (switched off, alpha_r = 0).
    evidence : SpecificEvidence
    """
    S, C = _encodings(net, train)
    sa, sb = column_scale(S), column_scale(C)
    S, C = S / sa, C / sb
    scaled = rescale_heads(heads, sa, sb)
    # Without the group penalty: what the specific part can add where the penalty zeroed it.
    ridge_only = solve_task_heads(S, C, train.y_np, train.sizes, scaled, replace(cfg, penalty_alpha="none"))
    zeroed = np.all(scaled.alpha == 0, axis=1)
    on = _pick(~zeroed, scaled, ridge_only)
    off = solve_task_heads(np.zeros_like(S), C, train.y_np, train.sizes,
                           replace(scaled, alpha=np.zeros_like(scaled.alpha)), replace(cfg, penalty_alpha="none"))
    off.alpha[:] = 0.0
    Sv, Cv = _encodings(net, val)
    Sv, Cv = Sv / sa, Cv / sb
    sq_without = _squared_errors(Sv, Cv, val, off)
    without_s = _task_mean(sq_without, val)
    if not apply:
        return heads, SpecificEvidence(used=~zeroed, val_mse_with=_task_mean(_squared_errors(Sv, Cv, val, scaled), val),
                                       val_mse_without=without_s)
    sq_with = _squared_errors(Sv, Cv, val, on)
    with_s = _task_mean(sq_with, val)
    p = None
    if level is None:
        used = with_s < without_s
    else:
        p = paired_transfer_test(sq_with, sq_without, val.codes.cpu().numpy(), val.sizes.size).p_value
        used = ~(p <= level)
    chosen = _pick(used, on, off)
    chosen.fused_alpha = ~used
    out = rescale_heads(chosen, 1.0 / sa, 1.0 / sb)
    out.alpha_scale, out.beta_scale = sa, sb
    return out, SpecificEvidence(used=used, val_mse_with=with_s, val_mse_without=without_s, p_value=p)


__all__ = ["SpecificEvidence", "select_specific"]
