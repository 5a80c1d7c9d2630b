"""The training loop every network of the package runs: epochs, validation, early stopping per
model, a progress bar and the loss history; and the two ways of stepping through an epoch that
most methods use (one full-batch Adam step; minibatches holding rows of every task).

A method plugs in an :class:`EpochStep`: what one epoch of training does, the validation losses of
the models it trains, and the state early stopping keeps. The loop knows nothing else about the
method, so an algorithm with its own inner steps (the dual encoder's encoder steps followed by
exact head solves, for instance) is one more ``EpochStep``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import numpy as np
import torch

from .runtime import adam
from .stopping import EarlyStopping


class EpochStep:
    """One epoch of a method's training (subclass and override the three methods).

    Attributes
    ----------
    validate_first : bool
        False: an epoch trains, then validates the new weights. True: an epoch validates the
        current weights, then trains (for methods whose training pass also yields the validation
        loss); epoch e then scores the weights after e training passes, and the loop validates
        once more after the last pass.
    live : ndarray of int or None
        Which of the stacked models the step still holds (None: all); see
        :meth:`EarlyStopping.update`.
    """

    validate_first: bool = False
    live: np.ndarray | None = None

    def train_epoch(self, epoch: int) -> Any:
        """Train for one epoch; returns the training loss (per model, or one value), or None."""
        raise NotImplementedError

    def validation_losses(self) -> np.ndarray:
        """Validation loss of every model held (shape (K,), or (1,) for one model); the step turns
        gradients off where it does not need them."""
        raise NotImplementedError

    def state(self) -> Any:
        """What early stopping keeps of the current weights (see :class:`EarlyStopping`)."""
        raise NotImplementedError


@dataclass
class TrainingRecord:
    """What the loop saw: the stopper, and per epoch the training and validation losses.

    Attributes
    ----------
    stopper : EarlyStopping
        The early-stopping rule, with the best epoch and weights.
    train_loss, val_loss : list
        Per epoch losses.
    last_epoch : int
        Last epoch run (-1 before training).
    """

    stopper: EarlyStopping
    train_loss: list = field(default_factory=list)
    val_loss: list = field(default_factory=list)
    last_epoch: int = -1

    @property
    def n_epochs(self) -> int:
        return self.last_epoch + 1


def _summary(val: np.ndarray) -> str:
    finite = val[np.isfinite(val)]  # every entry NaN once every model has diverged
    return f"{float(finite.mean()):.4g}" if finite.size else "nan"


def train_epochs(step: EpochStep, stopper: EarlyStopping, max_epochs: int, bar: Any = None) -> TrainingRecord:
    """Run ``step`` epoch by epoch until ``stopper`` says stop or ``max_epochs`` have passed.

    Parameters
    ----------
    step : EpochStep
    stopper : EarlyStopping
        Sees every epoch's validation losses and ``step.state()``; keeps the best states.
    max_epochs : int
        Training epochs at most.
    bar : progress bar, optional
        Gets ``update``/``set_postfix`` every epoch and is closed at the end (see :func:`progress`).

    Returns
    -------
    TrainingRecord
    """
    max_epochs = int(max_epochs)
    record = TrainingRecord(stopper)
    first = step.validate_first
    try:
        for epoch in range(max_epochs + int(first)):
            if not first:
                record.train_loss.append(step.train_epoch(epoch))
            val = np.asarray(step.validation_losses(), dtype=float)
            record.val_loss.append(val)
            record.last_epoch = epoch
            stop = stopper.update(epoch, val, step.state(), step.live)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(val=_summary(val), refresh=False)
            if stop:
                break
            if first and epoch < max_epochs:
                record.train_loss.append(step.train_epoch(epoch))
    finally:
        if bar is not None:
            bar.close()
    return record


class FullBatchStep(EpochStep):
    """An epoch is one Adam step on the whole training set.

    Parameters
    ----------
    params : iterable of Parameter
    train_loss : callable
        ``() -> Tensor``: the scalar to minimize (a sum over the models trained together).
    val_losses : callable
        ``() -> array (K,)``: the models' validation losses (called without gradients).
    state : callable
        ``() -> state`` for early stopping.
    lr, weight_decay : float
        Adam's step size and L2 weight decay.
    """

    def __init__(self, params: Iterable[torch.nn.Parameter], train_loss: Callable[[], torch.Tensor],
                 val_losses: Callable[[], Any], state: Callable[[], Any], lr: float, weight_decay: float = 0.0):
        self.opt = adam(list(params), lr, weight_decay)
        self._train_loss, self._val_losses, self._state = train_loss, val_losses, state

    def train_epoch(self, epoch: int) -> torch.Tensor:
        self.opt.zero_grad(set_to_none=True)
        loss = self._train_loss()
        loss.backward()
        self.opt.step()
        return loss.detach()

    def validation_losses(self) -> np.ndarray:
        with torch.no_grad():
            return np.asarray(self._val_losses())

    def state(self) -> Any:
        return self._state()


def epoch_batches(codes: np.ndarray, n_tasks: int, batch_size: int, rng: np.random.Generator) -> np.ndarray:
    """Row positions (into ``codes``) of one epoch's minibatches, shape (steps, tasks, batch_size).

    Every step takes ``batch_size`` rows of every task, so that all tasks' networks run as one
    batched product with no padding. An epoch is ``ceil(n_max / batch_size)`` steps; each task walks
    through a fresh permutation of its rows, starting over when it runs out (smaller tasks are
    seen more than once per epoch).

    Parameters
    ----------
    codes : ndarray of int, shape (N,)
        Task code of each row.
    n_tasks : int
        Number of tasks.
    batch_size : int
        Rows of every task per step.
    rng : numpy.random.Generator
        Source of the permutations.

    Returns
    -------
    ndarray of int, shape (steps, n_tasks, batch_size)
    """
    n = np.bincount(codes, minlength=n_tasks)
    steps = int(np.ceil(n.max() / batch_size))
    order = np.lexsort((rng.random(codes.size), codes))  # a random permutation within each task
    start = np.concatenate([[0], np.cumsum(n)[:-1]])
    k = np.arange(steps * batch_size)
    pos = start[:, None] + k[None, :] % n[:, None]
    return order[pos].reshape(n_tasks, steps, batch_size).transpose(1, 0, 2)


@dataclass
class Batching:
    """Minibatches of :func:`epoch_batches` and the step decay of the learning rate.

    Attributes
    ----------
    batch_size : int
        Rows of every task per step.
    lr : float
        Initial learning rate.
    lr_decay : float
        Factor applied to the learning rate every ``lr_step`` epochs.
    lr_step : int
        Epochs between two decays.
    rng : numpy.random.Generator
        Source of the permutations.
    """

    batch_size: int
    lr: float
    lr_decay: float = 1.0
    lr_step: int = 1
    rng: np.random.Generator = field(default_factory=np.random.default_rng)


class MinibatchStep(EpochStep):
    """An epoch is a pass of Adam steps over minibatches holding ``batch_size`` rows of every task,
    with the learning rate multiplied by ``lr_decay`` every ``lr_step`` epochs.

    Parameters
    ----------
    params : iterable of Parameter
    batch_loss : callable
        ``(x_t (T, p, b), y (T, b)) -> (K,)``: each model's training loss on one batch (the sum is
        minimized; models that share no parameter each get their own gradient).
    val_losses : callable
        ``() -> Tensor (K,)``: validation losses.
    state : callable
        ``() -> state`` for early stopping.
    n_models : int
    Z, y : Tensor
        Training rows (N, p) and responses (N,) on the device.
    codes : ndarray of int
        Task code of every training row.
    n_tasks : int
    batching : Batching
    """

    def __init__(self, params: Iterable[torch.nn.Parameter], batch_loss: Callable, val_losses: Callable[[], torch.Tensor],
                 state: Callable[[], Any], n_models: int, Z: torch.Tensor, y: torch.Tensor, codes: np.ndarray,
                 n_tasks: int, batching: Batching):
        self.opt = adam(list(params), batching.lr)
        self.sched = torch.optim.lr_scheduler.StepLR(self.opt, step_size=int(batching.lr_step),
                                                     gamma=float(batching.lr_decay))
        self._batch_loss, self._val_losses, self._state = batch_loss, val_losses, state
        self.n_models, self.codes, self.n_tasks, self.batching = int(n_models), codes, int(n_tasks), batching
        self.Zt = Z.T.contiguous()  # features first: a batch comes out as (T, p, b) by one gather
        self.y = y

    def train_epoch(self, epoch: int) -> np.ndarray:
        b = self.batching
        idx = torch.as_tensor(epoch_batches(self.codes, self.n_tasks, int(b.batch_size), b.rng), device=self.Zt.device)
        total = torch.zeros(self.n_models, device=self.Zt.device)
        for step in idx:  # one batch of every task per step
            losses = self._batch_loss(self.Zt[:, step].transpose(0, 1), self.y[step])
            self.opt.zero_grad(set_to_none=True)
            losses.sum().backward()
            self.opt.step()
            total += losses.detach()
        self.sched.step()
        return (total / idx.shape[0]).cpu().numpy()

    def validation_losses(self) -> np.ndarray:
        with torch.no_grad():
            return self._val_losses().cpu().numpy()

    def state(self) -> Any:
        return self._state()
