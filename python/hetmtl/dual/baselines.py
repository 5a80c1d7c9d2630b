"""Baselines for multi-task regression, with the same interface as :class:`DualEncoderMTL`.

* :class:`SingleTaskMLP` -- one MLP per task, trained independently (stacked weights; each task
  keeps the weights of its own best validation epoch);
* :class:`PooledMLP` -- one MLP for all rows, ignoring the task;
* :class:`HardSharingMTL` -- hard parameter sharing: a shared trunk with a linear head per task;
* :func:`shared_only` and :func:`specific_only` -- the dual encoder without its task-specific or
  without its shared encoder (ablations).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from .._util.tasks import child_seed
from ..nn import (EarlyStopping, FullBatchStep, StackedMLP, TaskLayout, hidden_widths, task_mse, torch_generator,
                  torch_threads, train_epochs)
from ._base import SEED_INIT, TaskRegressor
from ._data import Prepared

__all__ = ["HardSharingMTL", "PooledMLP", "SingleTaskMLP", "shared_only", "specific_only"]


class _MLPBaseline(TaskRegressor):
    """Parameters common to the baselines (see :class:`SingleTaskMLP`)."""

    def __init__(self, hidden: Sequence[int] | int = (32, 12), activation: str = "relu", lr: float = 1e-2,
                 weight_decay: float = 1e-4, max_epochs: int = 500, patience: int = 30,
                 validation_fraction: float = 0.2, standardize: str = "pooled", task_weights: str = "equal",
                 device: str = "cpu", n_threads: int | None = 1, verbose: bool = False,
                 random_state: Any = None):
        self.hidden = hidden
        self.activation = activation
        self.lr = lr
        self.weight_decay = weight_decay
        self.max_epochs = max_epochs
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.standardize = standardize
        self.task_weights = task_weights
        self.device = device
        self.n_threads = n_threads
        self.verbose = verbose
        self.random_state = random_state

    def _generator(self, seed: np.random.SeedSequence) -> torch.Generator:
        return torch_generator(child_seed(seed, SEED_INIT))

    def _stack(self, n_models: int, d: int, out: int, seed) -> StackedMLP:
        return StackedMLP(n_models, d, out, hidden_widths(self.hidden), self.activation,
                          generator=self._generator(seed)).to(self._device)

    def _train(self, module: torch.nn.Module, train_loss, val_losses, stopper: EarlyStopping, desc: str,
               max_epochs: int | None = None) -> None:
        """Full-batch Adam on ``train_loss`` until ``stopper`` stops; ``module`` ends at its best state."""
        step = FullBatchStep(module.parameters(), train_loss, val_losses, module.state_dict, self.lr,
                             self.weight_decay)
        train_epochs(step, stopper, self.max_epochs if max_epochs is None else max_epochs, self._progress(desc))
        module.load_state_dict(stopper.best_state)


class EpochBudget(EarlyStopping):
    """Keeps each stacked model's state at its own epoch ``budget[k]`` (no early stopping): the
    losses passed to :meth:`update` are recorded but decide nothing.

    Parameters
    ----------
    budget : ndarray of int, shape (K,)
        Epoch (0-based, as ``EarlyStopping.best_epoch``) whose state each model keeps.
    """

    def __init__(self, budget: np.ndarray):
        super().__init__(len(budget), patience=1)
        self.budget = np.asarray(budget, dtype=int)

    def update(self, epoch: int, losses, state, live: np.ndarray | None = None) -> bool:
        live = np.arange(self.n_models) if live is None else np.asarray(live)
        due = self.budget[live] == epoch
        self._keep(state, due, live)
        self.best_loss[live[due]] = np.atleast_1d(np.asarray(losses, dtype=float))[due]
        self.best_epoch[live[due]] = epoch
        self.active[live[due]] = False
        return bool(epoch >= self.budget.max())


class SingleTaskMLP(_MLPBaseline):
    """One MLP per task, each fitted on its own task only.

    All R networks are trained together with stacked weights (one batched product per layer), but
    their losses and parameters are independent and each task keeps the weights of its own best
    validation epoch, so the result is R separate single-task fits.

    Parameters
    ----------
    hidden : sequence of int, or int
        Hidden widths of each task's MLP, one per layer (an int: one hidden layer).
    activation : {"relu", "tanh", "gelu"}
    lr, weight_decay : float
        Adam's step size and L2 weight decay (full-batch training).
    max_epochs, patience : int
        Epoch budget and early-stopping patience (epochs without a validation improvement).
    validation_fraction : float
        Share of each task's rows held out for early stopping.
    standardize : {"pooled", "task", "none"}
        Standardization of X (y is standardized over all rows).
    task_weights : {"equal", "size"}
        Loss weight of each task (irrelevant to the fit here; kept for a common interface).
    device : str
        torch device ("cpu" by default).
    n_threads : int or None
        torch threads during fit/predict (None leaves torch's setting).
    verbose : bool
        Show a progress bar.
    random_state : None, int or SeedSequence
    """

    def _fit_prepared(self, prep: Prepared, seed) -> None:
        # Each task keeps its best epoch; training goes on while any task improves.
        stopper = EarlyStopping(prep.n_tasks, patience=self.patience, rule="any")
        self._fit_stack(prep, seed, stopper, max_epochs=int(self.max_epochs))
        self.validation_loss_ = stopper.best_loss * prep.scaler.y_scale ** 2

    def fit_epochs(self, prep: Prepared, seed, epochs: np.ndarray) -> "SingleTaskMLP":
        """Fit every task's MLP for a fixed number of epochs, without early stopping.

        Task r keeps its weights after ``epochs[r] + 1`` full-batch steps (``epochs`` counts like
        ``best_epoch_``, so a budget chosen by an earlier fit replays it); the validation rows are
        only scored (``validation_loss_``), never used to choose anything.

        Parameters
        ----------
        prep : Prepared
        seed : SeedSequence
        epochs : ndarray of int, shape (R,)

        Returns
        -------
        self
        """
        self._check_common()
        self._check_params()
        budget = EpochBudget(np.maximum(np.asarray(epochs, dtype=int), 0))
        with torch_threads(self.n_threads):
            self._fit_stack(prep, seed, budget, max_epochs=int(budget.budget.max()) + 1, validate=False)
            Xv, yv, cv, lv = self._tensors(prep.val, prep.n_tasks)
            with torch.no_grad():
                val = task_mse(self.net_.forward_rows(Xv, lv)[:, 0] - yv, cv, prep.n_tasks).double().cpu().numpy()
        self.validation_loss_ = val * prep.scaler.y_scale ** 2
        self._set_fitted(prep.classes, prep.n_features, prep.scaler)
        return self

    def _fit_stack(self, prep: Prepared, seed, stopper: EarlyStopping, max_epochs: int, validate: bool = True) -> None:
        R, d = prep.n_tasks, prep.n_features
        net = self._stack(R, d, 1, seed)
        Xt, yt, ct, lt = self._tensors(prep.train, R)
        Xv, yv, cv, lv = self._tensors(prep.val, R)

        def train_loss():
            return task_mse(net.forward_rows(Xt, lt)[:, 0] - yt, ct, R).sum()

        def val_losses():
            if not validate:
                return np.zeros(R)
            return task_mse(net.forward_rows(Xv, lv)[:, 0] - yv, cv, R).cpu().numpy()

        self._train(net, train_loss, val_losses, stopper, "single-task MLP", max_epochs)
        self.net_ = net
        self.best_epoch_ = stopper.best_epoch

    def _predict_std(self, X: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        return self.net_.forward_rows(X, TaskLayout.from_tasks(codes, self.n_tasks_))[:, 0]


class PooledMLP(_MLPBaseline):
    """One MLP fitted on all rows together, ignoring the task labels (parameters as
    :class:`SingleTaskMLP`)."""

    def _fit_prepared(self, prep: Prepared, seed) -> None:
        R, d = prep.n_tasks, prep.n_features
        net = self._stack(1, d, 1, seed)
        Xt, yt, ct, _ = self._tensors(prep.train, R)
        Xv, yv, cv, _ = self._tensors(prep.val, R)
        w = torch.as_tensor(self._task_weights(prep.train.sizes), dtype=torch.float32, device=self._device)
        stopper = EarlyStopping(patience=self.patience)
        self._train(net, lambda: torch.mean((net.forward_shared(Xt)[:, 0] - yt) ** 2),
                    lambda: [np.mean((w * task_mse(net.forward_shared(Xv)[:, 0] - yv, cv, R)).cpu().numpy())],
                    stopper, "pooled MLP")
        self.net_ = net
        self.best_epoch_ = int(stopper.best_epoch[0])

    def _predict_std(self, X: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        return self.net_.forward_shared(X)[:, 0]


class HardSharingMTL(_MLPBaseline):
    """Hard parameter sharing: one shared MLP trunk ``d -> hidden -> latent`` and a linear head
    (weights and intercept) per task, trained jointly on the weighted sum of task losses.

    Parameters
    ----------
    latent : int
        Width of the trunk's output (the heads' input). The other parameters are those of
        :class:`SingleTaskMLP`.
    """

    def __init__(self, latent: int = 12, hidden: Sequence[int] | int = (32,), activation: str = "relu",
                 lr: float = 1e-2, weight_decay: float = 1e-4, max_epochs: int = 500, patience: int = 30,
                 validation_fraction: float = 0.2, standardize: str = "pooled", task_weights: str = "equal",
                 device: str = "cpu", n_threads: int | None = 1, verbose: bool = False,
                 random_state: Any = None):
        super().__init__(hidden=hidden, activation=activation, lr=lr, weight_decay=weight_decay,
                         max_epochs=max_epochs, patience=patience, validation_fraction=validation_fraction,
                         standardize=standardize, task_weights=task_weights, device=device,
                         n_threads=n_threads, verbose=verbose, random_state=random_state)
        self.latent = latent

    def _fit_prepared(self, prep: Prepared, seed) -> None:
        R, d = prep.n_tasks, prep.n_features
        gen = self._generator(seed)
        trunk = StackedMLP(1, d, int(self.latent), hidden_widths(self.hidden), self.activation, generator=gen)
        bound = 1.0 / np.sqrt(max(int(self.latent), 1))
        heads = torch.nn.Parameter((torch.rand((R, int(self.latent)), generator=gen) * 2 - 1) * bound)
        bias = torch.nn.Parameter(torch.zeros(R))
        model = torch.nn.ParameterDict({"heads": heads, "bias": bias})
        module = torch.nn.ModuleDict({"trunk": trunk, "head": model}).to(self._device)
        Xt, yt, ct, _ = self._tensors(prep.train, R)
        Xv, yv, cv, _ = self._tensors(prep.val, R)
        w = torch.as_tensor(self._task_weights(prep.train.sizes), dtype=torch.float32, device=self._device)

        def pred(X, c):
            h = module["trunk"].forward_shared(X)
            return (h * module["head"]["heads"][c]).sum(1) + module["head"]["bias"][c]

        stopper = EarlyStopping(patience=self.patience)
        self._train(module, lambda: (w * task_mse(pred(Xt, ct) - yt, ct, R)).sum(),
                    lambda: [np.mean((w * task_mse(pred(Xv, cv) - yv, cv, R)).cpu().numpy())],
                    stopper, "hard-sharing MTL")
        self.module_ = module
        self.best_epoch_ = int(stopper.best_epoch[0])

    def _predict_std(self, X: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        h = self.module_["trunk"].forward_shared(X)
        return (h * self.module_["head"]["heads"][codes]).sum(1) + self.module_["head"]["bias"][codes]
