"""Step (a) of the alternating fit: full-batch Adam steps on the encoders with the heads fixed."""

from __future__ import annotations

from contextlib import contextmanager
from typing import TYPE_CHECKING, Iterator, Sequence

import torch

from ..nn import TaskRows, adam, heads_objective

if TYPE_CHECKING:  # pragma: no cover
    from .alternating import DualNet


class EncoderStep:
    """The encoder step of one fit; what does not change between steps is prepared once.

    Training rows are laid out features first (see :meth:`hetmtl.nn.StackedMLP.forward_t`): the
    shared encoder reads all rows ``(1, d, N)``, the task-specific encoders the padded task blocks
    ``(R, d, m)``; the objective (:func:`hetmtl.nn.heads_objective`) reads the encodings in the
    same layout, so a step gathers and scatters nothing but the shared encodings of padded tasks.

    Parameters
    ----------
    net : DualNet
        The encoders.
    groups : sequence of lists of parameters
        Parameter groups, one Adam optimizer each (empty groups are dropped).
    X, y : Tensor
        Training rows (N, d) and responses (N,).
    layout : TaskLayout
        The task layout of the rows.
    loss_weights : Tensor of shape (R,)
        Task weights w_r.
    gamma : float
        Weight of the orthogonality penalty (0: none).
    orthogonality : str
        Normalization of the encodings in the penalty.
    lr, weight_decay : float
        Adam's step size and L2 weight decay.
    """

    def __init__(self, net: "DualNet", groups: Sequence[list[torch.nn.Parameter]], X: torch.Tensor,
                 y: torch.Tensor, layout, loss_weights: torch.Tensor, gamma: float, orthogonality: str,
                 lr: float, weight_decay: float):
        self.net = net
        self.groups = [list(g) for g in groups if g]
        self.optimizers = [adam(g, lr, weight_decay) for g in self.groups]
        self.layout = layout
        R, m = layout.index.shape
        x_t = X.T.contiguous()
        self.x_t = x_t.unsqueeze(0)
        blocks_t = layout.gather_t(x_t)  # a view of x_t when no task is padded: one copy of X, not two
        self.blocks_t = blocks_t if layout.is_reshape else blocks_t.contiguous()
        self.rows = TaskRows.build(layout, y, loss_weights)
        self.gamma = float(gamma)
        self.orthogonality = orthogonality
        self._empty = X.new_zeros((R, 0, m))

    def encodings_t(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Shared (R, p, m) and task-specific (R, q, m) encodings of the training blocks."""
        net = self.net
        shared = self._empty
        if net.shared is not None:
            shared = self.layout.gather_t(net.shared.forward_t(self.x_t)[0])
        specific = self._empty if net.specific is None else net.specific.forward_t(self.blocks_t)
        return shared, specific

    def loss(self, heads_t: tuple[torch.Tensor, torch.Tensor, torch.Tensor]) -> torch.Tensor:
        """The smooth objective of the encoders for heads ``(alpha, beta, intercept)``."""
        alpha, beta, intercept = heads_t
        shared, specific = self.encodings_t()
        return heads_objective(shared, specific, beta, alpha, intercept, self.rows, self.gamma,
                               self.orthogonality)

    def __call__(self, heads_t: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
                 group: int | None = None) -> torch.Tensor:
        """One Adam step on every group (``group=None``) or on one; returns the loss before it."""
        for g in self.groups:
            for p in g:
                p.grad = None
        loss = self.loss(heads_t)
        loss.backward()
        for opt in (self.optimizers if group is None else [self.optimizers[group]]):
            opt.step()
        return loss.detach()

    @contextmanager
    def only(self, group: int | None) -> Iterator[None]:
        """Inside the block, only ``group`` (None: all) is differentiated: the other groups' gradients
        would not be used by the step, so they are not computed."""
        idle = [] if group is None else [p for i, g in enumerate(self.groups) if i != group for p in g]
        flags = [p.requires_grad for p in idle]
        for p in idle:
            p.requires_grad_(False)
        try:
            yield
        finally:
            for p, f in zip(idle, flags):
                p.requires_grad_(f)
