"""A full-batch Adam loop with validation early stopping, shared by the baselines."""

from __future__ import annotations

from typing import Callable, Iterable

import numpy as np
import torch

from ..nn import EarlyStopping, PerTaskBest, adam


def train_full_batch(params: Iterable[torch.nn.Parameter], train_loss: Callable[[], torch.Tensor],
                     val_losses: Callable[[], np.ndarray], stopper: EarlyStopping | PerTaskBest,
                     state: Callable[[], dict], *, max_epochs: int, lr: float, weight_decay: float,
                     bar) -> None:
    """Minimize ``train_loss`` with Adam; after each epoch ``val_losses()`` (per task) feeds the
    stopper, which keeps the best ``state()``. ``bar`` is a progress bar (see hetmtl.nn.progress)."""
    params = list(params)
    opt = adam(params, lr, weight_decay)
    per_task = isinstance(stopper, PerTaskBest)
    try:
        for epoch in range(int(max_epochs)):
            opt.zero_grad(set_to_none=True)
            loss = train_loss()
            loss.backward()
            opt.step()
            with torch.no_grad():
                val = val_losses()
            stop = stopper.update(epoch, val if per_task else float(np.mean(val)), state())
            bar.update(1)
            bar.set_postfix(val=f"{float(np.mean(val)):.4g}", refresh=False)
            if stop:
                break
    finally:
        bar.close()
