"""Early stopping of one model, or of K models trained together in one stack."""

from __future__ import annotations

import copy
from typing import Any, Mapping, Sequence

import numpy as np
import torch

#: How the models of a stack stop: each on its own (a model that has gone ``patience`` epochs
#: without improving is finished and its best state frozen), or all together once no model has
#: improved for ``patience`` epochs (a model may still improve late while another one does).
STOP_RULES = ("each", "any")


def snapshot(state: Any) -> Any:
    """A copy of ``state`` that later training does not change: tensors detached and cloned,
    dicts and lists copied entry by entry, anything else deep-copied.

    Parameters
    ----------
    state : object
        A state dict, tensor, list or any object.

    Returns
    -------
    object
        The copy.
    """
    if isinstance(state, torch.Tensor):
        return state.detach().clone()
    if isinstance(state, Mapping):
        return {k: snapshot(v) for k, v in state.items()}
    if isinstance(state, (list, tuple)):
        return type(state)(snapshot(v) for v in state)
    return copy.deepcopy(state)


def _tensors(state: Mapping[str, torch.Tensor] | Sequence[torch.Tensor]) -> list[torch.Tensor]:
    return list(state.values()) if isinstance(state, Mapping) else list(state)


class EarlyStopping:
    """Keep each model's state from its best validation epoch; stop when the models are finished.

    A validation loss counts as an improvement when it is finite and below ``(1 - min_delta)``
    times the model's best so far. With several models (``n_models > 1``) every tensor of the
    state holds the K models along its first axis (one slot each, or several consecutive slots
    per model), and each model's slice is kept from its own best epoch; with one model the whole
    state (any object) is kept.

    Parameters
    ----------
    n_models : int
        K, the number of models trained together.
    patience : int
        Epochs without improvement before stopping.
    min_delta : float
        Relative improvement that counts as progress.
    rule : {"each", "any"}
        ``"each"``: a model is finished once it has gone ``patience`` epochs without improving
        (or its loss is not finite: it diverged and keeps its best state so far), exactly as if
        it had been trained alone; training stops when every model is finished. ``"any"``:
        training stops once no model has improved for ``patience`` epochs.

    Attributes
    ----------
    best_loss, best_epoch : ndarray of shape (K,)
        Best validation loss of each model and its epoch (-1: none finite yet).
    stop_epoch : ndarray of shape (K,)
        Epoch at which each model finished (-1: still running).
    active : ndarray of bool, shape (K,)
        Models still running.
    best_state
        The kept state (None before the first update).
    """

    def __init__(self, n_models: int = 1, patience: int = 20, min_delta: float = 1e-4, rule: str = "each"):
        if rule not in STOP_RULES:
            raise ValueError(f"rule: must be one of {STOP_RULES}, got {rule!r}")
        self.n_models, self.patience, self.min_delta, self.rule = int(n_models), int(patience), float(min_delta), rule
        self.best_loss = np.full(self.n_models, np.inf)
        self.best_epoch = np.full(self.n_models, -1)
        self.stop_epoch = np.full(self.n_models, -1)
        self.active = np.ones(self.n_models, dtype=bool)
        self.since = np.zeros(self.n_models, dtype=int)
        self.best_state: Any = None

    @property
    def done(self) -> bool:
        """Whether training should stop."""
        if self.rule == "any":
            return bool(self.since[0] >= self.patience) or not self.active.any()
        return not self.active.any()

    def update(self, epoch: int, losses: Any, state: Any, live: np.ndarray | None = None) -> bool:
        """Record an epoch's validation losses and keep the improved models' states.

        Parameters
        ----------
        epoch : int
        losses : float or array_like of shape (L,)
            Validation loss of every model held in ``state``.
        state
            The current state (see the class description), holding the models ``live``.
        live : ndarray of int, optional
            Which of the K models ``losses`` and ``state`` hold, in order (default: all). A stack
            may drop finished models; the first update must hold all of them.

        Returns
        -------
        bool
            True when training should stop.
        """
        live = np.arange(self.n_models) if live is None else np.asarray(live)
        losses = np.atleast_1d(np.asarray(losses, dtype=float))
        finite = np.isfinite(losses)
        active = self.active[live]
        better = active & finite & (losses < self.best_loss[live] * (1 - self.min_delta))
        self._keep(state, better, live)
        self.best_loss[live[better]] = losses[better]
        self.best_epoch[live[better]] = epoch
        if self.rule == "any":
            self.since[:] = 0 if better.any() else self.since + 1
        else:
            self.since[live] = np.where(better, 0, self.since[live] + 1)
            newly = live[active & ((self.since[live] >= self.patience) | ~finite)]
            self.active[newly] = False
            self.stop_epoch[newly] = epoch
        return self.done

    def _keep(self, state: Any, better: np.ndarray, live: np.ndarray) -> None:
        if self.best_state is None:
            if live.size != self.n_models:
                raise ValueError("live: the first update must hold every model")
            self.best_state = snapshot(state)
            return
        if not better.any():
            return
        if self.n_models == 1:
            self.best_state = snapshot(state)
            return
        local = torch.as_tensor(np.flatnonzero(better))
        held = torch.as_tensor(live[better])
        K, L = self.n_models, live.size
        for best, cur in zip(_tensors(self.best_state), _tensors(state)):
            dst = best.view(K, -1, *cur.shape[1:])
            dst[held.to(dst.device)] = cur.detach().view(L, -1, *cur.shape[1:])[local.to(cur.device)]
