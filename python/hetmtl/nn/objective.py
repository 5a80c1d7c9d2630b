"""The smooth objective of an encoder step for linear task heads on a shared and a task-specific
encoding, with a hand-written gradient.

For task r with encodings C_r (p x n_r) and S_r (q x n_r) in the features-first layout, heads
beta_r, alpha_r and intercept b_r::

    sum_r w_r / n_r || beta_r' C_r + alpha_r' S_r + b_r - y_r ||^2
      + gamma sum_r || C~_r S~_r' / n_r ||_F^2

(``~``: the normalization of :func:`hetmtl.nn.penalties.normalize_encodings`). Written as one
autograd node, whose backward pass is a few products on the encodings, forward and backward take
about 60 tensor operations; left to autograd (with the gathers of a row-wise layout), about 150.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .layout import TaskLayout
from .penalties import ORTHOGONALITY_MODES, normalize_encodings


@dataclass(frozen=True)
class TaskRows:
    """Per-task constants of the objective on one padded features-first layout ``(R, ., m)``.

    Attributes
    ----------
    y : Tensor of shape (R, 1, m)
        Responses, 0 in the padding.
    weight : Tensor of shape (R, 1, m)
        ``w_r / n_r`` on the used slots, 0 in the padding.
    mask : Tensor of shape (R, 1, m) or None
        1 on the used slots (None: no padding).
    n : Tensor of shape (R, 1, 1)
        Rows per task (at least 1).
    """

    y: torch.Tensor
    weight: torch.Tensor
    mask: torch.Tensor | None
    n: torch.Tensor

    @classmethod
    def build(cls, layout: TaskLayout, y: torch.Tensor, task_weights: torch.Tensor) -> "TaskRows":
        """From a layout, responses ``y`` (N,) in row order and loss weights ``w_r`` (R,)."""
        dtype = y.dtype
        mask = layout.mask.unsqueeze(1).to(dtype)
        n = layout.counts.clamp(min=1).to(dtype).view(-1, 1, 1)
        y_t = layout.gather_t(y.unsqueeze(0))
        weight = mask * (task_weights.to(dtype).view(-1, 1, 1) / n)
        return cls(y=y_t.contiguous(), weight=weight, mask=None if layout.is_reshape else mask, n=n)


def heads_objective(shared_t: torch.Tensor, specific_t: torch.Tensor, beta: torch.Tensor,
                    alpha: torch.Tensor, intercept: torch.Tensor, rows: TaskRows, gamma: float,
                    mode: str = "standardized") -> torch.Tensor:
    """The objective above (a scalar), differentiable in the encodings and the heads.

    Parameters
    ----------
    shared_t : Tensor of shape (R, p, m)
        Shared encodings, features first (p may be 0).
    specific_t : Tensor of shape (R, q, m)
        Task-specific encodings (q may be 0).
    beta : Tensor of shape (R, p)
    alpha : Tensor of shape (R, q)
    intercept : Tensor of shape (R,)
    rows : TaskRows
        Responses, weights and padding of the layout.
    gamma : float
        Weight of the orthogonality penalty (0: none).
    mode : {"standardized", "centered", "raw"}

    Returns
    -------
    Tensor (0-dimensional)
    """
    if mode not in ORTHOGONALITY_MODES:
        raise ValueError(f"mode: must be one of {ORTHOGONALITY_MODES}, got {mode!r}")
    return _HeadsObjective.apply(shared_t, specific_t, beta.unsqueeze(1), alpha.unsqueeze(1),
                                 intercept.view(-1, 1, 1), rows, float(gamma), mode)


class _HeadsObjective(torch.autograd.Function):
    """Gradient of the penalty: with K = 2 gamma M / n (M = C~ S~' / n), dP/dC~ = K S~ and
    dP/dS~ = K' C~. Centering needs no correction (the rows of K S~ and K' C~ already sum to zero
    within a task); for standardized encodings, dividing by sd(C~) adds the term
    -C~ diag(rowsum(K * M)) / sd."""

    @staticmethod
    def forward(ctx, shared_t, specific_t, beta, alpha, intercept, rows: TaskRows, gamma: float, mode: str):
        resid = torch.baddbmm(intercept - rows.y, beta, shared_t)
        resid = torch.baddbmm(resid, alpha, specific_t)
        w_resid = resid * rows.weight
        loss = (w_resid * resid).sum()
        saved = [w_resid, beta, alpha, shared_t, specific_t]
        ctx.orth = gamma > 0 and shared_t.shape[1] > 0 and specific_t.shape[1] > 0
        if ctx.orth:
            c, c_sd = normalize_encodings(shared_t, rows.mask, rows.n, mode, dim=2)
            s, s_sd = normalize_encodings(specific_t, rows.mask, rows.n, mode, dim=2)
            cross = torch.bmm(c, s.transpose(1, 2)) / rows.n
            loss = loss + gamma * cross.square().sum()
            saved += [c, s, cross, rows.n, c_sd, s_sd]
        ctx.gamma = gamma
        ctx.save_for_backward(*saved)
        return loss

    @staticmethod
    def backward(ctx, grad):
        w_resid, beta, alpha, shared_t, specific_t, *orth = ctx.saved_tensors
        need = ctx.needs_input_grad
        g_resid = (2 * grad) * w_resid  # (R, 1, m), 0 in the padding
        d_shared = d_specific = None
        if ctx.orth:
            c, s, cross, n, c_sd, s_sd = orth
            K = (2 * ctx.gamma) * grad * cross / n
            if need[0]:
                d_shared = _penalty_grad(K, s, c, cross.mul(K).sum(2, keepdim=True), c_sd)
            if need[1]:
                Kt = K.transpose(1, 2)
                d_specific = _penalty_grad(Kt, c, s, cross.mul(K).sum(1).unsqueeze(-1), s_sd)
        if need[0]:
            d_shared = torch.bmm(beta.transpose(1, 2), g_resid) if d_shared is None else \
                torch.baddbmm(d_shared, beta.transpose(1, 2), g_resid)
        if need[1]:
            d_specific = torch.bmm(alpha.transpose(1, 2), g_resid) if d_specific is None else \
                torch.baddbmm(d_specific, alpha.transpose(1, 2), g_resid)
        d_beta = torch.bmm(g_resid, shared_t.transpose(1, 2)) if need[2] else None
        d_alpha = torch.bmm(g_resid, specific_t.transpose(1, 2)) if need[3] else None
        d_intercept = g_resid.sum(2, keepdim=True) if need[4] else None
        return d_shared, d_specific, d_beta, d_alpha, d_intercept, None, None, None


def _penalty_grad(K: torch.Tensor, other: torch.Tensor, own: torch.Tensor, k_dot_cross: torch.Tensor,
                  sd: torch.Tensor | None) -> torch.Tensor:
    """Gradient of the penalty in one encoding: ``K @ other``, and through its scaling by ``sd``."""
    if sd is None:
        return torch.bmm(K, other)
    return torch.baddbmm(own * (-k_dot_cross / sd), K / sd, other)
