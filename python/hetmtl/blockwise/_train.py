"""Minibatch training of K stacked, independent models with early stopping per model."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from ..nn import adam
from ._data import epoch_batches


class StackStopper:
    """Early stopping for K independent models stacked along the first axis of every state tensor.

    Model k keeps the state of its best validation epoch; once it has gone ``patience`` epochs
    without a relative improvement of ``min_delta`` it is finished and its best state is frozen,
    exactly as if it had been trained alone (training stops when every model is finished).
    """

    def __init__(self, n_models: int, patience: int, min_delta: float = 1e-4):
        self.patience, self.min_delta = int(patience), float(min_delta)
        self.best_loss = np.full(n_models, np.inf)
        self.best_epoch = np.full(n_models, -1)
        self.active = np.ones(n_models, dtype=bool)
        self.best_state: dict[str, torch.Tensor] | None = None
        self._since = np.zeros(n_models, dtype=int)

    def update(self, epoch: int, losses: np.ndarray, state: dict[str, torch.Tensor]) -> bool:
        """Record an epoch's validation losses (K,); returns True when every model has finished."""
        losses = np.asarray(losses, dtype=float)
        K = self.best_loss.size
        finite = np.isfinite(losses)
        better = self.active & finite & (losses < self.best_loss * (1 - self.min_delta))
        if self.best_state is None:
            self.best_state = {k: v.detach().clone() for k, v in state.items()}
            better = self.active & finite
        elif better.any():
            idx = torch.as_tensor(np.flatnonzero(better))
            for k, v in state.items():
                dst = self.best_state[k].view(K, -1, *v.shape[1:])
                dst[idx] = v.detach().view(K, -1, *v.shape[1:])[idx]
        self.best_loss[better] = losses[better]
        self.best_epoch[better] = epoch
        self._since = np.where(better, 0, self._since + 1)
        # A model whose loss is not finite has diverged: it keeps its best state so far.
        self.active &= (self._since < self.patience) & finite
        return not self.active.any()


@dataclass
class TrainResult:
    stopper: StackStopper
    train_loss: list = field(default_factory=list)  # per epoch, arrays (K,)
    val_loss: list = field(default_factory=list)


def train_stacked(params: list[torch.nn.Parameter], batch_loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                  val_loss: Callable[[], torch.Tensor], state: Callable[[], dict], n_models: int,
                  Z: torch.Tensor, y: torch.Tensor, codes: np.ndarray, n_tasks: int, *, batch_size: int,
                  lr: float, lr_decay: float, lr_step: int, max_epochs: int, patience: int,
                  rng: np.random.Generator, bar) -> TrainResult:
    """Adam on minibatches with step decay of the learning rate and early stopping per model.

    Parameters
    ----------
    batch_loss : callable
        ``(x_t (T, p, b), y (T, b)) -> (K,)``: each model's training loss on one batch (the sum is
        minimized; the models share no parameter, so each gets its own gradient).
    val_loss : callable
        ``() -> (K,)`` validation losses.
    Z, y, codes : the training rows (tensors on the device) and their task codes (NumPy).
    rng : the source of the batches' order.
    """
    opt = adam(params, lr)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=int(lr_step), gamma=float(lr_decay))
    stopper = StackStopper(n_models, patience)
    out = TrainResult(stopper)
    Zt = Z.T.contiguous()  # features first: batches come out as (T, p, b) by one gather
    try:
        for epoch in range(int(max_epochs)):
            idx = torch.as_tensor(epoch_batches(codes, n_tasks, batch_size, rng), device=Z.device)
            total = torch.zeros(n_models, device=Z.device)
            for step in idx:  # one batch of every task per step
                xb = Zt[:, step].transpose(0, 1)
                losses = batch_loss(xb, y[step])
                opt.zero_grad(set_to_none=True)
                losses.sum().backward()
                opt.step()
                total += losses.detach()
            sched.step()
            with torch.no_grad():
                val = val_loss().cpu().numpy()
            out.train_loss.append((total / idx.shape[0]).cpu().numpy())
            out.val_loss.append(val)
            bar.update(1)
            finite = val[np.isfinite(val)]  # all NaN once every model has diverged: no warning then
            bar.set_postfix(val=f"{float(finite.min()):.4g}" if finite.size else "nan", refresh=False)
            if stopper.update(epoch, val, state()):
                break
    finally:
        bar.close()
    return out
