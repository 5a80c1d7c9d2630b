"""What the regressors of this subpackage add to :class:`hetmtl.nn.MultiTaskRegressor`: inputs
as one table plus labels or as lists of per-task arrays, a per-task split and standardization
shared by models fitted on the same data, and loss weights per task."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .._util.tasks import child_seed
from .._util.validation import check_choice, check_number
from ..nn import MultiTaskRegressor, TaskLayout, torch_threads
from ..nn.estimator import FIRST_METHOD_SEED, SEED_INIT, SEED_SPLIT
from ._data import Prepared, Split, encode_tasks, is_task_list, prepare, stack_inputs

TASK_WEIGHTS = ("equal", "size")
# The stream of the single-task comparison fit (after the streams every estimator draws).
SEED_SINGLE = FIRST_METHOD_SEED

__all__ = ["SEED_INIT", "SEED_SINGLE", "SEED_SPLIT", "TASK_WEIGHTS", "TaskRegressor", "fit_prepared"]


class TaskRegressor(MultiTaskRegressor):
    """Base class of the dual-encoder regressors: ``fit(X, y, task)`` or ``fit(Xs, ys)`` with
    lists of per-task arrays, ``predict``, ``score``.

    Subclasses implement ``_fit_prepared(prep, seed)`` (training on standardized, split data) and
    ``_predict_std(X, codes)`` (standardized predictions from standardized inputs, as tensors).
    Parameters beyond the common ones: ``weight_decay``, ``standardize`` and ``task_weights``.
    """

    def fit(self, X: Any, y: Any = None, task: Any = None) -> "TaskRegressor":
        """Fit on rows ``X`` with responses ``y`` and a task label per row.

        Parameters
        ----------
        X : array_like of shape (N, d), or a list of R per-task arrays (n_r, d)
            A list whose entries are 1-D is a list of rows (one table), not per-task arrays.
        y : array_like of shape (N,), or a list of R per-task arrays (n_r,)
        task : array_like of shape (N,), optional
            Task label of each row (any hashable values); must be None when X is a list of
            per-task arrays.

        Returns
        -------
        self
        """
        return super().fit(X, y, task)

    def predict(self, X: Any, task: Any = None) -> np.ndarray | list[np.ndarray]:
        """Predict the response of rows ``X`` of tasks ``task``.

        Parameters
        ----------
        X : array_like of shape (N, d), or a list of R per-task arrays (fitted task order)
        task : array_like of shape (N,), optional
            Labels among the fitted tasks (None when X is a list of per-task arrays).

        Returns
        -------
        ndarray of shape (N,), or a list of per-task arrays when X is a list
        """
        return super().predict(X, task)

    def fit_prepared(self, prep: Prepared, seed: np.random.SeedSequence) -> "TaskRegressor":
        """Fit on data already split and standardized (by :func:`hetmtl.dual._data.prepare`), so that
        two models see the same training and validation rows and the same scaling.

        Parameters
        ----------
        prep : Prepared
        seed : SeedSequence
            The root of the model's random streams.

        Returns
        -------
        self
        """
        self._check_common()
        self._check_params()
        with torch_threads(self.n_threads):
            self._fit_prepared(prep, seed)
        self._set_fitted(prep.classes, prep.n_features, prep.scaler)
        return self

    # ------------------------------------------------------------------ the base class's hooks
    def _fit(self, X: Any, y: Any, task: Any, seed: np.random.SeedSequence) -> None:
        prep = prepare(X, y, task, self.validation_fraction, self.standardize, child_seed(seed, SEED_SPLIT))
        self._fit_prepared(prep, seed)
        self._set_fitted(prep.classes, prep.n_features, prep.scaler)

    def _check_params(self) -> None:
        check_number(self.weight_decay, "weight_decay", low=0)
        if not (np.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise ValueError(f"weight_decay: must be non-negative, got {self.weight_decay!r}")
        check_choice(self.task_weights, "task_weights", TASK_WEIGHTS)

    def _standardized_rows(self, X: Any, task: Any) -> tuple[np.ndarray, np.ndarray]:
        as_list = is_task_list(X)
        if as_list and len(X) != self.n_tasks_:
            raise ValueError(f"X: expected a list of {self.n_tasks_} per-task arrays, got {len(X)}")
        Xa, _, labels = stack_inputs(X, None, task)
        if Xa.shape[1] != self.n_features_in_:
            raise ValueError(f"X: has {Xa.shape[1]} columns but the model was fitted with {self.n_features_in_}")
        codes = labels.astype(np.int64) if as_list else encode_tasks(labels, self.classes_)
        return self.scaler_.x(Xa, codes), codes

    def _predict_standardized(self, Z: np.ndarray, codes: np.ndarray) -> torch.Tensor:
        return self._predict_std(self._tensor(Z), self._codes(codes))

    def _format_prediction(self, pred: np.ndarray, X: Any) -> Any:
        if is_task_list(X):
            return np.split(pred, np.cumsum([np.shape(x)[0] for x in X])[:-1])
        return pred

    def _response(self, X: Any, y: Any, task: Any) -> np.ndarray:
        return stack_inputs(X, y, task)[1]

    # ------------------------------------------------------------------ helpers for subclasses
    def _predict_std(self, X: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def _tensors(self, part: Split, n_tasks: int):
        """(X, y, codes, layout) tensors of one split part."""
        codes = self._codes(part.codes)
        return self._tensor(part.X), self._tensor(part.y), codes, TaskLayout.from_tasks(codes, n_tasks)

    def _task_weights(self, sizes: np.ndarray) -> np.ndarray:
        """Loss weights w_r: 1 (``"equal"``) or R n_r / N (``"size"``, mean 1)."""
        if self.task_weights == "equal":
            return np.ones(sizes.size)
        return sizes.size * sizes / sizes.sum()


def fit_prepared(model: TaskRegressor, prep: Prepared, seed: np.random.SeedSequence) -> TaskRegressor:
    """Fit ``model`` on already prepared data (see :meth:`TaskRegressor.fit_prepared`)."""
    return model.fit_prepared(prep, seed)
