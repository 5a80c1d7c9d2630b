"""Losses and penalties over padded task blocks (see :class:`hetmtl.nn.TaskLayout`)."""

from __future__ import annotations

import torch

ORTHOGONALITY_MODES = ("standardized", "centered", "raw")
_EPS = 1e-6


def normalize_encodings(blocks: torch.Tensor, mask: torch.Tensor | None, n: torch.Tensor, mode: str,
                        dim: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Encodings as the orthogonality penalty sees them, within each task block.

    Parameters
    ----------
    blocks : Tensor
        Padded encodings, rows along ``dim``.
    mask : Tensor or None
        Float mask broadcastable to ``blocks`` (1 on used rows); None when there is no padding.
    n : Tensor
        Rows per task, broadcastable to ``blocks``.
    mode : {"standardized", "centered", "raw"}
    dim : int
        The row axis.

    Returns
    -------
    normalized : Tensor
        Same shape as ``blocks``, zero in the padding.
    scale : Tensor or None
        The standard deviations the columns were divided by (``"standardized"``), else None.
    """
    if mode == "raw":
        return (blocks if mask is None else blocks * mask), None
    masked = blocks if mask is None else blocks * mask
    centered = blocks - masked.sum(dim, keepdim=True) / n
    if mask is not None:
        centered = centered * mask
    if mode == "centered":
        return centered, None
    sd = torch.sqrt(centered.square().sum(dim, keepdim=True) / n + _EPS)
    return centered / sd, sd


def orthogonality_per_task(shared: torch.Tensor, specific: torch.Tensor, mask: torch.Tensor,
                           mode: str = "standardized") -> torch.Tensor:
    """``|| C~_r' S~_r / n_r ||_F^2`` per task, from padded blocks.

    Parameters
    ----------
    shared : Tensor of shape (R, m, p)
        Shared encodings C(X_r) (zeros in the padding).
    specific : Tensor of shape (R, m, q)
        Task-specific encodings S_r(X_r).
    mask : BoolTensor of shape (R, m)
    mode : {"standardized", "centered", "raw"}
        ``"standardized"`` centers and scales each column within its task (the cross-product is
        then a correlation matrix, so the penalty cannot be dodged by shrinking the encodings);
        ``"centered"`` only centers; ``"raw"`` uses the encodings as they are.

    Returns
    -------
    Tensor of shape (R,)
    """
    if mode not in ORTHOGONALITY_MODES:
        raise ValueError(f"mode: must be one of {ORTHOGONALITY_MODES}, got {mode!r}")
    n = mask.sum(1).clamp(min=1).to(shared.dtype).view(-1, 1, 1)
    m = mask.unsqueeze(-1).to(shared.dtype)
    c, _ = normalize_encodings(shared, m, n, mode, dim=1)
    s, _ = normalize_encodings(specific, m, n, mode, dim=1)
    cross = torch.bmm(c.transpose(1, 2), s) / n
    return (cross ** 2).sum(dim=(1, 2))


def orthogonality_penalty(shared: torch.Tensor, specific: torch.Tensor, mask: torch.Tensor,
                          mode: str = "standardized") -> torch.Tensor:
    """Sum over tasks of :func:`orthogonality_per_task` (a scalar).

    Parameters
    ----------
    shared, specific : torch.Tensor
        Shared and task-specific encodings of padded task blocks.
    mask : torch.Tensor
        Which slots of the blocks hold rows.
    mode : str, default "standardized"
        One of :data:`ORTHOGONALITY_MODES`.

    Returns
    -------
    torch.Tensor
        A scalar.
    """
    return orthogonality_per_task(shared, specific, mask, mode).sum()


def task_mse(residual: torch.Tensor, task: torch.Tensor, n_tasks: int) -> torch.Tensor:
    """Mean squared residual per task (R,), from rows (N,) labelled ``task`` (0 for an absent task).

    Parameters
    ----------
    residual : torch.Tensor of shape (N,)
        Residuals of the rows.
    task : torch.Tensor of shape (N,)
        Task code of each row.
    n_tasks : int
        Number of tasks R.

    Returns
    -------
    torch.Tensor of shape (R,)
    """
    sse = torch.zeros(n_tasks, dtype=residual.dtype, device=residual.device).index_add_(0, task, residual ** 2)
    n = torch.bincount(task, minlength=n_tasks).clamp(min=1).to(residual.dtype)
    return sse / n
