"""Stacks of networks trained together that shed their finished members: the listed members' part
of every parameter, and Adam's state carried over to it.

In a stack of K networks every parameter holds the networks along its first axis, one slot each or
several consecutive slots per network (the encoders of HBI's roles, the task encoders of the
two-pathway model). Once early stopping has finished a network, computing it further only costs
arithmetic; a stack rebuilt with the running networks, their Adam moments included, trains them
exactly as the full stack would (each network's loss, gradient and update are its own).
"""

from __future__ import annotations

import copy
from collections import defaultdict
from typing import Callable, Sequence

import numpy as np
import torch

from ..nn import Batching, EarlyStopping, MinibatchStep


def model_rows(t: torch.Tensor, n_models: int, idx: torch.Tensor) -> torch.Tensor:
    """The listed networks' part of a stacked tensor whose first axis holds ``n_models`` networks
    (one slot each, or several consecutive slots)."""
    per = t.shape[0] // n_models
    idx = idx.to(t.device)
    return t.reshape(n_models, -1)[idx].reshape(idx.numel() * per, *t.shape[1:]).clone()


def select_models(module: torch.nn.Module, n_models: int, keep: Sequence[int]) -> torch.nn.Module:
    """A copy of ``module`` whose every parameter holds only the networks ``keep`` (buffers are
    copied as they are; attributes that count networks are the caller's to update)."""
    out = copy.deepcopy(module)
    idx = torch.as_tensor(list(keep), dtype=torch.long)
    with torch.no_grad():
        for sub in out.modules():
            for name, p in list(sub.named_parameters(recurse=False)):
                sub.register_parameter(name, torch.nn.Parameter(model_rows(p.detach(), n_models, idx)))
    return out


def retarget_adam(opt: torch.optim.Optimizer, params: Sequence[torch.nn.Parameter], n_models: int,
                  keep: Sequence[int]) -> None:
    """Point ``opt`` (one parameter group) at ``params``, the networks ``keep`` of the stack it
    optimized, with their rows of Adam's moments; its step count, learning rate and any scheduler
    attached to it carry on."""
    (group,) = opt.param_groups
    idx = torch.as_tensor(list(keep), dtype=torch.long)
    state = defaultdict(dict)
    for old, new in zip(group["params"], params, strict=True):
        if old.shape[1:] != new.shape[1:]:
            raise ValueError("params: not the parameters of the stack, in its order")
        kept = opt.state.get(old)
        if kept:
            state[new] = {k: v.clone() if v.ndim == 0 else model_rows(v, n_models, idx) for k, v in kept.items()}
    group["params"] = list(params)
    opt.state = state


def members_to_keep(running: np.ndarray, shrink: float) -> np.ndarray | None:
    """Positions of the running members of a stack (``running``: bool per member) when the stack
    is to be rebuilt with them only, i.e. some have finished and at most ``shrink`` of it still
    runs; None when it stays as it is."""
    n_running = int(running.sum())
    if n_running < running.size and n_running <= shrink * running.size:
        return np.flatnonzero(running)
    return None


class ShrinkingMinibatchStep(MinibatchStep):
    """:class:`hetmtl.nn.MinibatchStep` over a stack of configurations that sheds the finished ones.

    Before an epoch, once early stopping has finished a configuration and at most ``shrink`` of
    the stack is still running, the stack is rebuilt with the running configurations only
    (``net.select_configs``), their Adam moments and the per-configuration tensors
    ``per_config`` (loss weights, first axis the configurations) included; the batches' order is
    the stack's, so each configuration sees the batches it would have seen in the full stack.

    Parameters
    ----------
    net : module
        The stack, with ``n_configs`` and ``select_configs(keep)``.
    per_config : dict of str to Tensor
        Tensors of shape (G,) read by ``batch_loss``.
    batch_loss : callable
        ``(net, per_config, x_t, y) -> (G_live,)``.
    val_losses : callable
        ``(net) -> (G_live,)``.
    stopper : EarlyStopping
        The rule that finishes configurations (what ``train_epochs`` updates).
    Z, y, codes, n_tasks, batching
        As for :class:`hetmtl.nn.MinibatchStep`.
    shrink : float
        Largest share of the stack still running at which it is rebuilt.

    Attributes
    ----------
    val_history : list of ndarray of shape (G,)
        Validation losses of every epoch, NaN for the configurations shed.
    """

    def __init__(self, net: torch.nn.Module, per_config: dict[str, torch.Tensor], batch_loss: Callable,
                 val_losses: Callable, stopper: EarlyStopping, Z: torch.Tensor, y: torch.Tensor, codes: np.ndarray,
                 n_tasks: int, batching: Batching, shrink: float = 1.0):
        self.net, self.per_config, self.stopper, self.shrink = net, dict(per_config), stopper, float(shrink)
        self.n_all = int(net.n_configs)
        self.live = np.arange(self.n_all)
        self.val_history: list[np.ndarray] = []
        super().__init__(net.parameters(), lambda xb, yb: batch_loss(self.net, self.per_config, xb, yb),
                         lambda: val_losses(self.net), lambda: dict(self.net.named_parameters()), self.n_all,
                         Z, y, codes, n_tasks, batching)

    def train_epoch(self, epoch: int) -> np.ndarray:
        keep = members_to_keep(self.stopper.active[self.live], self.shrink)
        if keep is not None:
            self._keep(keep)
        return self._full(super().train_epoch(epoch))

    def validation_losses(self) -> np.ndarray:
        val = super().validation_losses()
        self.val_history.append(self._full(val))
        return val

    def _full(self, values: np.ndarray) -> np.ndarray:
        out = np.full(self.n_all, np.nan)
        out[self.live] = values
        return out

    def _keep(self, keep: np.ndarray) -> None:
        small = self.net.select_configs(keep.tolist())
        retarget_adam(self.opt, list(small.parameters()), self.net.n_configs, keep.tolist())
        idx = torch.as_tensor(keep, dtype=torch.long)
        self.per_config = {k: v[idx.to(v.device)] for k, v in self.per_config.items()}
        self.net, self.live, self.n_models = small, self.live[keep], int(keep.size)
