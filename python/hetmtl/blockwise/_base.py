"""Scaffolding shared by the block-wise multi-task regressors: fit/predict/score, parameter checks,
tensors and the validation rows."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.metrics import r2_score
from sklearn.utils.validation import check_is_fitted

from .._util.validation import as_float_array
from .._util.tasks import as_seed_sequence, child_seed
from ..nn import ACTIVATIONS, TaskLayout, TorchDevice, progress, torch_threads
from ._data import BlockData, anchor_columns, column_mask, prepare_fit, prepare_predict
from ._grid import check_positive_int
from .layout import BlockLayout

# Fixed keys of the independent random streams drawn from one random_state.
SEED_SPLIT, SEED_INIT, SEED_BATCH, SEED_IMPUTER = 0, 1, 2, 3


class BlockRegressor(TorchDevice, RegressorMixin, BaseEstimator):
    """Base class: ``fit(X, y, task)``, ``predict(X, task)``, ``score``, ``per_task_rmse``.

    Subclasses set ``_imputer_spec()`` (what completes the missing blocks), implement
    ``_fit_data(data, seed)`` and ``_predict_std(x_t)`` (standardized predictions (T, m) of padded
    per-task blocks ``x_t`` (T, p, m)), and have the parameters ``layout``, ``batch_size``, ``lr``,
    ``lr_decay``, ``lr_step``, ``max_epochs``, ``patience``, ``val_fraction``, ``activation``,
    ``device``, ``n_threads``, ``verbose`` and ``random_state``.
    """

    def _imputer_spec(self) -> Any:
        return None

    # -- public API -----------------------------------------------------------------------------

    def fit(self, X: Any, y: Any, task: Any) -> "BlockRegressor":
        """Fit on rows ``X`` (NaN or anything in each task's missing blocks), responses ``y`` and a
        task label per row.

        Parameters
        ----------
        X : DataFrame or array of shape (N, columns)
            Columns as named by ``layout`` (names for a DataFrame, positions for an array).
        y : array_like of shape (N,)
        task : array_like of shape (N,)
            Labels among ``layout.tasks``.

        Returns
        -------
        self
        """
        self._check_common()
        seed = as_seed_sequence(self.random_state)
        with torch_threads(self.n_threads):
            data = prepare_fit(self.layout, X, y, task, self._imputer_spec(), self.val_fraction, seed,
                               SEED_SPLIT, SEED_IMPUTER)
            self._fit_data(data, seed)
        self.imputer_ = data.imputer
        self.scaler_ = data.scaler
        self.classes_ = np.asarray(self.layout.tasks, dtype=object)
        self.n_tasks_ = self.layout.n_tasks
        self.n_features_in_ = len(self.layout.all_columns)
        return self

    def predict(self, X: Any, task: Any) -> np.ndarray:
        """Predicted responses (N,) of rows ``X`` of tasks ``task``, in the units of ``y``."""
        check_is_fitted(self, "scaler_")
        Z, codes = prepare_predict(self.layout, X, task, self.imputer_, self.scaler_)
        with torch_threads(self.n_threads), torch.no_grad():
            lay = TaskLayout.from_tasks(self._codes(codes), self.n_tasks_)
            pred = self._predict_std(lay.gather_t(self._tensor(Z.T)))
            out = lay.scatter(pred.unsqueeze(-1))[:, 0]
        return self.scaler_.y_inverse(out.cpu().double().numpy(), codes)

    def score(self, X: Any, y: Any, task: Any, sample_weight=None) -> float:
        """Coefficient of determination R^2 over all rows."""
        return float(r2_score(as_float_array(y, "y"), self.predict(X, task), sample_weight=sample_weight))

    def per_task_rmse(self, X: Any, y: Any, task: Any) -> pd.Series:
        """Root mean squared prediction error of each task (indexed by task label)."""
        ya = as_float_array(y, "y", ndim=1)
        codes = self.layout.task_codes(task)
        r = ya - self.predict(X, task)
        n = np.maximum(np.bincount(codes, minlength=self.n_tasks_), 1)
        rmse = np.sqrt(np.bincount(codes, r**2, minlength=self.n_tasks_) / n)
        return pd.Series(rmse, index=pd.Index(self.classes_, name="task"), name="rmse")

    # -- helpers for subclasses ------------------------------------------------------------------

    def _check_common(self) -> None:
        if not isinstance(self.layout, BlockLayout):
            raise ValueError(f"layout: expected a BlockLayout, got {type(self.layout).__name__}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation: must be one of {tuple(ACTIVATIONS)}, got {self.activation!r}")
        for name in ("batch_size", "max_epochs", "patience", "lr_step"):
            check_positive_int(getattr(self, name), name)
        if not (isinstance(self.lr, (int, float)) and np.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr: must be a positive number, got {self.lr!r}")
        if not (isinstance(self.lr_decay, (int, float)) and 0 < self.lr_decay <= 1):
            raise ValueError(f"lr_decay: must lie in (0, 1], got {self.lr_decay!r}")
        if self.n_threads is not None and int(self.n_threads) < 1:
            raise ValueError(f"n_threads: must be at least 1 or None, got {self.n_threads!r}")

    def _progress(self, desc: str):
        return progress(int(self.max_epochs), bool(self.verbose), desc)

    def _masks(self, imputed: bool, own_sources_only: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """(input mask, imputed-column mask), each (T, p): what each task's network reads and
        which of those columns are imputed. ``own_sources_only``: the anchor's columns are left out
        (a task encoder of the task's other observed sources only)."""
        seen = column_mask(self.layout, "observed")
        read = np.ones(seen.shape, dtype=bool) if imputed else seen.copy()
        if own_sources_only:
            read[:, anchor_columns(self.layout)] = False
        imputed_cols = read & ~seen
        return torch.as_tensor(read, dtype=torch.float32), torch.as_tensor(imputed_cols, dtype=torch.float32)


class TrainRows:
    """Tensors of a fit: training rows, and validation rows in padded per-task blocks."""

    def __init__(self, model: BlockRegressor, data: BlockData):
        T = data.n_tasks
        tr, va = data.train, data.val
        self.codes = data.codes[tr]
        self.Z = model._tensor(data.Z[tr])
        self.y = model._tensor(data.y[tr])
        lay = TaskLayout.from_tasks(model._codes(data.codes[va]), T)
        self.x_val = lay.gather_t(model._tensor(data.Z[va].T))  # (T, p, m)
        self.y_val = lay.gather_t(model._tensor(data.y[va])[None, :])[:, 0]  # (T, m)
        self.mask_val = lay.mask.to(self.y_val.dtype)
        self.n_val = lay.counts.clamp(min=1).to(self.y_val.dtype)

    def val_mse(self, pred: torch.Tensor) -> torch.Tensor:
        """Per-task validation MSE (..., T) of predictions (..., T, m)."""
        return ((pred - self.y_val).square() * self.mask_val).sum(-1) / self.n_val


def init_generator(seed: np.random.SeedSequence, *keys: int) -> torch.Generator:
    """The generator of a network's initial weights, named by ``keys`` (its shape): networks of one
    shape start from the same weights, whichever stack they are trained in."""
    from ..nn import torch_generator

    return torch_generator(child_seed(seed, SEED_INIT, *keys))


def parameter_state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return dict(module.named_parameters())


def restore(module: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    with torch.no_grad():
        for k, p in module.named_parameters():
            p.copy_(state[k])
