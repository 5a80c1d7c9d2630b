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
from typing import Sequence

import torch


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
