"""What the block-wise regressors add to :class:`hetmtl.nn.MultiTaskRegressor`: rows checked
against a :class:`BlockLayout` and completed by an imputer, minibatch options, the tensors of a
fit and per-task errors."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch

from .._util.tasks import child_seed
from .._util.validation import as_float_array, check_number
from ..nn import Batching, MultiTaskRegressor, TaskLayout, torch_generator
from ..nn.estimator import FIRST_METHOD_SEED, SEED_INIT, SEED_SPLIT
from ._data import BlockData, anchor_columns, column_mask, prepare_fit, prepare_predict
from ._grid import check_positive_int
from .layout import BlockLayout

# Streams of this subpackage, after the ones every estimator draws (split, initial weights).
SEED_BATCH, SEED_IMPUTER = FIRST_METHOD_SEED, FIRST_METHOD_SEED + 1

__all__ = ["BlockRegressor", "SEED_BATCH", "SEED_IMPUTER", "SEED_INIT", "SEED_SPLIT", "TrainRows",
           "init_generator", "parameter_state", "restore"]


class BlockRegressor(MultiTaskRegressor):
    """Base class: ``fit(X, y, task)``, ``predict(X, task)``, ``score``, ``per_task_rmse``.

    Subclasses set ``_imputer_spec()`` (what completes the missing blocks), implement
    ``_fit_data(data, seed)`` and ``_predict_blocks(x_t)`` (standardized predictions (T, m) of
    padded per-task blocks ``x_t`` (T, p, m)), and have the parameters ``layout``, ``batch_size``,
    ``lr_decay`` and ``lr_step`` besides the common ones.
    """

    _renamed = {"val_fraction": "validation_fraction"}

    def _imputer_spec(self) -> Any:
        return None

    # -- public API -----------------------------------------------------------------------------

    def fit(self, X: Any, y: Any = None, task: Any = None) -> "BlockRegressor":
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
        super().fit(X, y, task)
        if hasattr(self, "feature_names_in_"):  # the layout's columns: the others are never read
            self.feature_names_in_ = np.asarray(self.layout.all_columns, dtype=object)
        return self

    def _check_feature_names(self, X: Any) -> None:
        """Columns are found by the layout's names (a missing one is named there): a frame may
        carry others, such as the response or the task label, and in any order."""

    def predict(self, X: Any, task: Any = None) -> np.ndarray:
        """Predicted responses (N,) of rows ``X`` of tasks ``task``, in the units of ``y``."""
        return super().predict(X, task)

    def per_task_rmse(self, X: Any, y: Any, task: Any) -> pd.Series:
        """Root mean squared prediction error of each task (indexed by task label)."""
        ya = as_float_array(y, "y", ndim=1)
        codes = self.layout.task_codes(task)
        r = ya - self.predict(X, task)
        n = np.maximum(np.bincount(codes, minlength=self.n_tasks_), 1)
        rmse = np.sqrt(np.bincount(codes, r**2, minlength=self.n_tasks_) / n)
        return pd.Series(rmse, index=pd.Index(self.classes_, name="task"), name="rmse")

    # -- the base class's hooks --------------------------------------------------------------------

    def _check_params(self) -> None:
        if not isinstance(self.layout, BlockLayout):
            raise ValueError(f"layout: expected a BlockLayout, got {type(self.layout).__name__}")
        for name in ("batch_size", "lr_step"):
            check_positive_int(getattr(self, name), name)
        check_number(self.lr_decay, "lr_decay", low=0, high=1, low_open=True)
        if not (isinstance(self.lr_decay, (int, float)) and 0 < self.lr_decay <= 1):
            raise ValueError(f"lr_decay: must lie in (0, 1], got {self.lr_decay!r}")

    def _fit(self, X: Any, y: Any, task: Any, seed: np.random.SeedSequence) -> None:
        data = prepare_fit(self.layout, X, y, task, self._imputer_spec(), self._option("validation_fraction"),
                           seed, SEED_SPLIT, SEED_IMPUTER, bool(self.verbose), self.device)
        self._fit_data(data, seed)
        self.imputer_ = data.imputer
        self._set_fitted(np.asarray(self.layout.tasks, dtype=object), len(self.layout.all_columns), data.scaler)

    def _standardized_rows(self, X: Any, task: Any) -> tuple[np.ndarray, np.ndarray]:
        return prepare_predict(self.layout, X, task, self.imputer_, self.scaler_)

    def _predict_standardized(self, Z: np.ndarray, codes: np.ndarray) -> torch.Tensor:
        lay = TaskLayout.from_tasks(self._codes(codes), self.n_tasks_)
        pred = self._predict_blocks(lay.gather_t(self._tensor(Z.T)))
        return lay.scatter(pred.unsqueeze(-1))[:, 0]

    # -- helpers for subclasses ------------------------------------------------------------------

    def _fit_data(self, data: BlockData, seed: np.random.SeedSequence) -> None:  # pragma: no cover
        raise NotImplementedError

    def _predict_blocks(self, x_t: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def _batching(self, seed: np.random.SeedSequence) -> Batching:
        """The minibatch options, with the stream of the batches' order."""
        return Batching(batch_size=int(self.batch_size), lr=float(self.lr), lr_decay=float(self.lr_decay),
                        lr_step=int(self.lr_step), rng=np.random.default_rng(child_seed(seed, SEED_BATCH)))

    def _masks(self, imputed: bool, own_sources_only: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """(input mask, imputed-column mask), each (T, p): what each task's network reads and
        which of those columns are imputed. ``own_sources_only``: the task's observed sources other
        than the anchor, never an imputed block."""
        seen = column_mask(self.layout, "observed")
        read = np.ones(seen.shape, dtype=bool) if imputed and not own_sources_only else seen.copy()
        if own_sources_only:
            read[:, anchor_columns(self.layout)] = False
        imputed_cols = read & ~seen
        return torch.as_tensor(read, dtype=torch.float32), torch.as_tensor(imputed_cols, dtype=torch.float32)

    def _train_rows(self, data: BlockData) -> "TrainRows":
        """The tensors of a fit on the model's device."""
        return TrainRows(data, self._tensor, self._codes)


class TrainRows:
    """Tensors of a fit: training rows, and validation rows in padded per-task blocks.

    Parameters
    ----------
    data : BlockData
    tensor, codes : callable
        Float rows and integer task codes as tensors on the model's device.
    """

    def __init__(self, data: BlockData, tensor, codes):
        T = data.n_tasks
        tr, va = data.train, data.val
        self.codes = data.codes[tr]
        self.Z = tensor(data.Z[tr])
        self.y = tensor(data.y[tr])
        lay = TaskLayout.from_tasks(codes(data.codes[va]), T)
        self.x_val = lay.gather_t(tensor(data.Z[va].T))  # (T, p, m)
        self.y_val = lay.gather_t(tensor(data.y[va])[None, :])[:, 0]  # (T, m)
        self.mask_val = lay.mask.to(self.y_val.dtype)
        self.n_val = lay.counts.clamp(min=1).to(self.y_val.dtype)

    def val_mse(self, pred: torch.Tensor) -> torch.Tensor:
        """Per-task validation MSE (..., T) of predictions (..., T, m)."""
        return ((pred - self.y_val).square() * self.mask_val).sum(-1) / self.n_val


def init_generator(seed: np.random.SeedSequence, *keys: int) -> torch.Generator:
    """The generator of a network's initial weights, named by ``keys`` (its shape): networks of one
    shape start from the same weights, whichever stack they are trained in."""
    return torch_generator(child_seed(seed, SEED_INIT, *keys))


def parameter_state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return dict(module.named_parameters())


def restore(module: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    with torch.no_grad():
        for k, p in module.named_parameters():
            p.copy_(state[k])
