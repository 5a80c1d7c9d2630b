"""Rows grouped by task into a padded index, built with vectorized torch operations."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class TaskLayout:
    """Where each task's rows sit in a padded ``(R, m)`` block (``m`` the largest task size).

    Attributes
    ----------
    index : LongTensor of shape (R, m)
        Row numbers of task r in its first ``counts[r]`` slots, 0 in the padding.
    mask : BoolTensor of shape (R, m)
        True in the used slots.
    counts : LongTensor of shape (R,)
        Rows per task (0 for a task absent from the batch).
    task : LongTensor of shape (N,)
        The task of every row (as given).
    slot : LongTensor of shape (N,)
        Position of every row in the flattened block, ``task * m + rank within the task``.
    is_reshape : bool
        True when the rows are sorted by task and every task has ``m`` rows: the padded block is
        then a plain reshape of the rows (no copy, no padding).
    """

    index: torch.Tensor
    mask: torch.Tensor
    counts: torch.Tensor
    task: torch.Tensor
    slot: torch.Tensor
    is_reshape: bool = False

    @classmethod
    def from_tasks(cls, task: torch.Tensor, n_tasks: int) -> "TaskLayout":
        """Build the layout of rows labelled ``task`` (integers in ``0..n_tasks-1``)."""
        task = task.long()
        N = task.numel()
        counts = torch.bincount(task, minlength=n_tasks)
        m = int(counts.max()) if N else 0
        order = torch.argsort(task, stable=True)
        sorted_task = task[order]
        starts = torch.cumsum(counts, 0) - counts
        pos = torch.arange(N, device=task.device) - starts[sorted_task]
        index = torch.zeros((n_tasks, m), dtype=torch.long, device=task.device)
        mask = torch.zeros((n_tasks, m), dtype=torch.bool, device=task.device)
        index[sorted_task, pos] = order
        mask[sorted_task, pos] = True
        slot = torch.empty_like(task)
        slot[order] = sorted_task * m + pos
        is_reshape = n_tasks * m == N and bool(torch.equal(slot, torch.arange(N, device=task.device)))
        return cls(index=index, mask=mask, counts=counts, task=task, slot=slot, is_reshape=is_reshape)

    @property
    def n_tasks(self) -> int:
        return self.index.shape[0]

    def gather(self, x: torch.Tensor) -> torch.Tensor:
        """Rows ``x`` (N, k) to a padded block (R, m, k) with zeros in the padding."""
        # index_select (whose gradient is a plain index_add) rather than advanced indexing.
        R, m = self.index.shape
        if self.is_reshape:
            return x.reshape(R, m, x.shape[-1])
        blocks = x.index_select(0, self.index.reshape(-1)).reshape(R, m, x.shape[-1])
        return blocks * self.mask.unsqueeze(-1).to(x.dtype)

    def gather_t(self, x_t: torch.Tensor) -> torch.Tensor:
        """Features-first rows ``x_t`` (k, N) to a padded block (R, k, m) with zeros in the padding.

        The features-first layout keeps the row axis last, so that the narrow matrix products of an
        encoder's output layer run along the long axis (see :meth:`StackedMLP.forward_t`).
        """
        R, m = self.index.shape
        k = x_t.shape[0]
        if self.is_reshape:
            return x_t.reshape(k, R, m).transpose(0, 1)
        blocks = x_t.index_select(1, self.index.reshape(-1)).reshape(k, R, m).transpose(0, 1)
        return blocks * self.mask.unsqueeze(1).to(x_t.dtype)

    def scatter(self, blocks: torch.Tensor) -> torch.Tensor:
        """A padded block (R, m, k) back to rows (N, k) in the original order."""
        R, m, k = blocks.shape
        if self.is_reshape:
            return blocks.reshape(R * m, k)
        return blocks.reshape(R * m, k).index_select(0, self.slot)

    def to(self, device) -> "TaskLayout":
        return TaskLayout(self.index.to(device), self.mask.to(device), self.counts.to(device),
                          self.task.to(device), self.slot.to(device), self.is_reshape)
