"""The scaffolding shared by every multi-task regressor of this subpackage: inputs, split,
scaling, prediction, scoring, devices and threads."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.metrics import r2_score
from sklearn.utils.validation import check_is_fitted

from .._util.validation import check_choice
from ..nn import TaskLayout, TorchDevice, progress, torch_threads
from .._util.tasks import as_seed_sequence, child_seed
from ._data import Prepared, Split, encode_tasks, prepare, stack_inputs

TASK_WEIGHTS = ("equal", "size")
# Fixed keys of the independent random streams drawn from one random_state.
SEED_SPLIT, SEED_INIT, SEED_SINGLE = 0, 1, 2


class TaskRegressor(TorchDevice, RegressorMixin, BaseEstimator):
    """Base class: ``fit(X, y, task)``, ``predict(X, task)``, ``score(X, y, task)``.

    Subclasses implement ``_fit_prepared(prep, seed)`` (training on standardized, split data) and
    ``_predict_std(X, codes)`` (standardized predictions from standardized inputs, as tensors).
    Common parameters: ``validation_fraction``, ``standardize``, ``device``, ``n_threads``,
    ``verbose``, ``random_state``.
    """

    # ------------------------------------------------------------------ public API
    def fit(self, X: Any, y: Any = None, task: Any = None) -> "TaskRegressor":
        """Fit on rows ``X`` with responses ``y`` and a task label per row.

        Parameters
        ----------
        X : array_like of shape (N, d), or a list of R per-task arrays (n_r, d)
        y : array_like of shape (N,), or a list of R per-task arrays (n_r,)
        task : array_like of shape (N,), optional
            Task label of each row (any hashable values); must be None when X is a list.

        Returns
        -------
        self
        """
        self._check_common()
        seed = as_seed_sequence(self.random_state)
        prep = prepare(X, y, task, self.validation_fraction, self.standardize, child_seed(seed, SEED_SPLIT))
        return fit_prepared(self, prep, seed)

    def predict(self, X: Any, task: Any = None) -> np.ndarray | list[np.ndarray]:
        """Predict the response of rows ``X`` of tasks ``task``.

        Parameters
        ----------
        X : array_like of shape (N, d), or a list of R per-task arrays (fitted task order)
        task : array_like of shape (N,), optional
            Labels among the fitted tasks (None when X is a list).

        Returns
        -------
        ndarray of shape (N,), or a list of per-task arrays when X is a list
        """
        check_is_fitted(self, "classes_")
        as_list = isinstance(X, (list, tuple))
        if as_list and len(X) != self.n_tasks_:
            raise ValueError(f"X: expected a list of {self.n_tasks_} per-task arrays, got {len(X)}")
        Xa, _, labels = stack_inputs(X, None, task)
        if Xa.shape[1] != self.n_features_in_:
            raise ValueError(f"X: has {Xa.shape[1]} columns but the model was fitted with {self.n_features_in_}")
        codes = labels.astype(np.int64) if as_list else encode_tasks(labels, self.classes_)
        with torch_threads(self.n_threads), torch.no_grad():
            out = self._predict_std(self._tensor(self.scaler_.x(Xa, codes)), self._codes(codes))
        pred = self.scaler_.y_inverse(out.detach().cpu().double().numpy())
        if as_list:
            return np.split(pred, np.cumsum([np.shape(x)[0] for x in X])[:-1])
        return pred

    def score(self, X: Any, y: Any = None, task: Any = None, sample_weight=None) -> float:
        """Coefficient of determination R^2 of the predictions over all rows."""
        _, ya, _ = stack_inputs(X, y, task)
        pred = self.predict(X, task)
        if isinstance(pred, list):
            pred = np.concatenate(pred)
        return float(r2_score(ya, pred, sample_weight=sample_weight))

    # ------------------------------------------------------------------ helpers for subclasses
    def _check_common(self) -> None:
        if self.n_threads is not None and int(self.n_threads) < 1:
            raise ValueError(f"n_threads: must be at least 1 or None, got {self.n_threads!r}")
        for name in ("max_epochs", "patience"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name}: must be at least 1, got {getattr(self, name)!r}")
        for name in ("lr",):
            val = getattr(self, name)
            if not (np.isfinite(val) and val > 0):
                raise ValueError(f"{name}: must be a positive number, got {val!r}")
        if not (np.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise ValueError(f"weight_decay: must be non-negative, got {self.weight_decay!r}")

    def _tensors(self, part: Split, n_tasks: int):
        """(X, y, codes, layout) tensors of one split part."""
        codes = self._codes(part.codes)
        return self._tensor(part.X), self._tensor(part.y), codes, TaskLayout.from_tasks(codes, n_tasks)

    def _task_weights(self, sizes: np.ndarray) -> np.ndarray:
        """Loss weights w_r: 1 (``"equal"``) or R n_r / N (``"size"``, mean 1)."""
        check_choice(self.task_weights, "task_weights", TASK_WEIGHTS)
        if self.task_weights == "equal":
            return np.ones(sizes.size)
        return sizes.size * sizes / sizes.sum()

    def _progress(self, desc: str):
        return progress(int(self.max_epochs), bool(self.verbose), desc)


def fit_prepared(model: TaskRegressor, prep: Prepared, seed: np.random.SeedSequence) -> TaskRegressor:
    """Fit ``model`` on already prepared data (the same split and scaling as another model)."""
    model._check_common()
    with torch_threads(model.n_threads):
        model._fit_prepared(prep, seed)
    model.classes_ = prep.classes
    model.n_tasks_ = prep.n_tasks
    model.n_features_in_ = prep.n_features
    model.scaler_ = prep.scaler
    return model
