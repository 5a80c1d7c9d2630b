"""Which task-specific encoders a fitted dual encoder keeps: a task's specific part stays switched
on only where it lowers that task's validation loss.

The group lasso on alpha_r (``lam_specific``) shrinks and may zero a task's specific head, but it
sees training rows only. Here, with the encoders fixed, every task's heads are solved twice -- with
its specific encoding (the penalized solution, or the ridge-only one where the penalty zeroed
alpha_r) and without it -- and the validation rows decide. Both solves run for all tasks at once
(the tasks' heads are independent given the center), so this costs two head solves.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from .alternating import AltConfig, Data, DualNet, Heads, column_scale, rescale_heads, solve_task_heads


@dataclass(frozen=True)
class SpecificEvidence:
    """Validation evidence on every task's specific encoder (standardized scale of y).

    Attributes
    ----------
    used : ndarray of bool, shape (R,)
        Tasks whose specific part is kept.
    val_mse_with, val_mse_without : ndarray of shape (R,)
        Validation MSE of the task's heads with its specific encoding and without it.
    """

    used: np.ndarray
    val_mse_with: np.ndarray
    val_mse_without: np.ndarray

    @property
    def gain(self) -> np.ndarray:
        """What the specific part adds: validation MSE without it minus with it (> 0: it helps)."""
        return self.val_mse_without - self.val_mse_with


def _encodings(net: DualNet, data: Data) -> tuple[np.ndarray, np.ndarray]:
    with torch.no_grad():
        S, C, _, _ = net.encode(data.X, data.layout, data.blocks)
    return S.double().cpu().numpy(), C.double().cpu().numpy()


def _task_mse(S: np.ndarray, C: np.ndarray, data: Data, heads: Heads) -> np.ndarray:
    codes = data.codes.cpu().numpy()
    pred = (S * heads.alpha[codes]).sum(1) + (C * heads.beta[codes]).sum(1) + heads.intercept[codes]
    R = data.sizes.size
    n = np.bincount(codes, minlength=R)
    return np.bincount(codes, (pred - data.y_np) ** 2, minlength=R) / np.maximum(n, 1)


def _pick(use: np.ndarray, a: Heads, b: Heads) -> Heads:
    """Task by task, the heads of ``a`` where ``use`` and of ``b`` elsewhere (same centers)."""
    col = use[:, None]
    return Heads(np.where(col, a.alpha, b.alpha), np.where(col, a.beta, b.beta),
                 np.where(use, a.intercept, b.intercept), a.alpha_center, a.beta_center,
                 np.where(use, a.fused_alpha, b.fused_alpha), np.where(use, a.fused_beta, b.fused_beta))


def select_specific(net: DualNet, train: Data, val: Data, heads: Heads, cfg: AltConfig,
                    apply: bool = True) -> tuple[Heads, SpecificEvidence]:
    """Keep each task's specific encoder only where it lowers the task's validation loss.

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
    without_s = _task_mse(Sv, Cv, val, off)
    if not apply:
        return heads, SpecificEvidence(used=~zeroed, val_mse_with=_task_mse(Sv, Cv, val, scaled),
                                       val_mse_without=without_s)
    with_s = _task_mse(Sv, Cv, val, on)
    used = with_s < without_s
    chosen = _pick(used, on, off)
    chosen.fused_alpha = ~used
    out = rescale_heads(chosen, 1.0 / sa, 1.0 / sb)
    out.alpha_scale, out.beta_scale = sa, sb
    return out, SpecificEvidence(used=used, val_mse_with=with_s, val_mse_without=without_s)


__all__ = ["SpecificEvidence", "select_specific"]
