"""The base of every neural multi-task regressor: one table plus a task label per row in, the
scikit-learn estimator contract out."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch
from scipy.sparse import issparse
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.metrics import r2_score
from sklearn.utils.validation import check_is_fitted

from .._util.sklearn_api import PandasPredictions
from .._util.display import ReportDisplay
from .._util.tasks import as_seed_sequence
from .._util.validation import (ArgumentError, as_float_array, check_choice, check_fraction,
                                check_int_at_least, check_positive_number, check_threads)
from ..persist.mixin import Persistable
from .deprecation import RenamedParameters
from .display import neural_report
from .mlp import ACTIVATIONS
from .runtime import TorchDevice, progress, torch_threads

# Fixed keys of the independent random streams drawn from one random_state; a method numbers its
# own streams from FIRST_METHOD_SEED on.
SEED_SPLIT, SEED_INIT, FIRST_METHOD_SEED = 0, 1, 2


def frame_columns(X: Any) -> list[np.ndarray] | None:
    """The column names of a DataFrame ``X`` (one entry), of every frame of a list of DataFrames,
    or None when ``X`` carries no names."""
    frames = X if isinstance(X, (list, tuple)) else [X]
    if not frames or not all(isinstance(f, pd.DataFrame) for f in frames):
        return None
    return [np.asarray(f.columns, dtype=object) for f in frames]


def _check_rows(X: Any, task: Any) -> None:
    """Refuse what no multi-task regressor reads: sparse matrices, and rows without task labels."""
    if issparse(X):
        raise ArgumentError("X", "sparse input is not supported; pass a dense array (X.toarray())")
    if task is None and not isinstance(X, (list, tuple)):
        raise ArgumentError("task", "a task label per row of X is required (or, where the estimator "
                                    "takes them, lists of per-task arrays)")


class MultiTaskRegressor(ReportDisplay, Persistable, PandasPredictions, RenamedParameters,
                         TorchDevice, RegressorMixin, BaseEstimator):
    """Base class: ``fit(X, y, task)``, ``predict(X, task)``, ``score(X, y, task)``.

    Every subclass has the parameters ``activation``, ``lr``, ``max_epochs``, ``patience``,
    ``validation_fraction``, ``device``, ``n_threads``, ``verbose`` and ``random_state``. It
    implements

    * ``_check_params()``: checks of its own options (the common ones are checked here first);
    * ``_fit(X, y, task, seed)``: training, ending with :meth:`_set_fitted`;
    * ``_standardized_rows(X, task)``: validated, standardized rows of new data and their task
      codes (NumPy);
    * ``_predict_standardized(Z, codes)``: standardized predictions (a tensor of shape (N,)).

    The base class draws the seed, caps torch's threads, records ``feature_names_in_`` when ``X``
    is a DataFrame (and refuses reordered or renamed columns at prediction), raises scikit-learn's
    ``NotFittedError`` before fitting, and maps the response back to its units. Parameters renamed
    in a release are listed in ``_renamed`` (see :class:`~hetmtl.nn.deprecation.RenamedParameters`).

    Notes
    -----
    **Output.** ``predict`` returns a NumPy array, as scikit-learn's regressors do (a list of
    per-task arrays for a list of per-task inputs). After ``set_output(transform="pandas")`` (or
    with scikit-learn's global ``transform_output="pandas"``) it returns a pandas Series named
    ``"prediction"`` with the index of ``X`` when ``X`` is a DataFrame.

    **Task labels in scikit-learn's tools.** ``task`` is metadata in scikit-learn's sense. With
    ``sklearn.set_config(enable_metadata_routing=True)``, request it where it is needed::

        est = DualEncoderMTL().set_fit_request(task=True).set_score_request(task=True)
        cross_val_score(est, X, y, params={"task": task}, cv=5)
        GridSearchCV(est, {"gamma": [0.01, 0.1]}).fit(X, y, task=task)

    and ``set_predict_request(task=True)`` where a tool passes metadata to ``predict`` (a
    ``Pipeline``: ``pipe.predict(X, task=task)``). The labels are split with the rows of every
    fold.

    **Saving.** ``save(path)`` and ``load(path)`` keep a fitted estimator (parameters, fitted
    attributes and the networks' state dicts) in a hetmtl file (see :mod:`hetmtl.persist`).
    """

    # ------------------------------------------------------------------ public API
    def fit(self, X: Any, y: Any = None, task: Any = None) -> "MultiTaskRegressor":
        """Fit on rows ``X`` with responses ``y`` and a task label per row.

        Parameters
        ----------
        X : DataFrame or array_like of shape (N, d)
        y : array_like of shape (N,)
        task : array_like of shape (N,)
            Task label of each row.

        Returns
        -------
        self
        """
        self._check_common()
        self._check_params()
        if y is None and not issparse(X):
            raise ArgumentError("y", "requires y to be passed, but the target y is None")
        _check_rows(X, task)
        seed = as_seed_sequence(self.random_state)
        with torch_threads(self.n_threads):
            self._fit(X, y, task, seed)
        names = frame_columns(X)
        if names is None:
            self.__dict__.pop("feature_names_in_", None)
        else:
            self.feature_names_in_ = names[0]
        return self

    def predict(self, X: Any, task: Any = None) -> Any:
        """Predicted responses of rows ``X`` of tasks ``task``, in the units of ``y``.

        Parameters
        ----------
        X : DataFrame or array_like of shape (N, d)
            With the columns given to ``fit`` (a DataFrame: the same names in the same order).
        task : array_like of shape (N,)
            Labels among the fitted tasks.

        Returns
        -------
        ndarray of shape (N,), or a pandas Series after ``set_output(transform="pandas")``
        """
        check_is_fitted(self, "scaler_")
        _check_rows(X, task)
        self._check_feature_names(X)
        Z, codes = self._standardized_rows(X, task)
        with torch_threads(self.n_threads), torch.no_grad():
            out = self._predict_standardized(Z, codes)
        pred = self.scaler_.y_inverse(out.detach().cpu().double().numpy(), codes)
        return self._as_output(self._format_prediction(pred, X), X)

    def score(self, X: Any, y: Any = None, task: Any = None, sample_weight: Any = None) -> float:
        """Coefficient of determination R^2 of the predictions over all rows."""
        pred = self.predict(X, task)
        if isinstance(pred, list):
            pred = np.concatenate(pred)
        pred = np.asarray(pred)
        return float(r2_score(self._response(X, y, task), pred, sample_weight=sample_weight))

    def _display_report(self):
        return neural_report(self)

    # ------------------------------------------------------------------ for subclasses
    def _check_params(self) -> None:
        """Checks of a method's own options (none here)."""

    def _fit(self, X: Any, y: Any, task: Any, seed: np.random.SeedSequence) -> None:  # pragma: no cover
        raise NotImplementedError

    def _standardized_rows(self, X: Any, task: Any) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover
        raise NotImplementedError

    def _predict_standardized(self, Z: np.ndarray, codes: np.ndarray) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def _format_prediction(self, pred: np.ndarray, X: Any) -> Any:
        return pred

    def _response(self, X: Any, y: Any, task: Any) -> np.ndarray:
        return as_float_array(y, "y")

    def _set_fitted(self, classes: np.ndarray, n_features: int, scaler: Any) -> None:
        """The attributes every fitted model has."""
        self.classes_ = classes
        self.n_tasks_ = int(len(classes))
        self.n_features_in_ = int(n_features)
        self.scaler_ = scaler

    def _progress(self, desc: str):
        return progress(int(self.max_epochs), bool(self.verbose), desc)

    # ------------------------------------------------------------------ checks
    def _check_common(self) -> None:
        """Options every neural multi-task regressor has."""
        if self.n_threads is not None:
            try:
                check_threads(self.n_threads, "n_threads")
            except ValueError:
                raise ValueError(f"n_threads: must be at least 1 or None, got {self.n_threads!r}") from None
        check_int_at_least(self.max_epochs, "max_epochs")
        check_int_at_least(self.patience, "patience")
        check_positive_number(self.lr, "lr")
        check_choice(self.activation, "activation", tuple(ACTIVATIONS))
        name, value = self._given("validation_fraction")
        check_fraction(value, name)
        self._device  # noqa: B018  (raises for a string that names no torch device)
        self._warn_renamed()

    def _check_feature_names(self, X: Any) -> None:
        fitted = getattr(self, "feature_names_in_", None)
        given = frame_columns(X)
        if fitted is None or given is None:
            return
        for names in given:
            if names.shape == fitted.shape and bool(np.all(names == fitted)):
                continue
            missing = [c for c in fitted if c not in set(names)]
            unseen = [c for c in names if c not in set(fitted)]
            if not missing and not unseen:
                raise ValueError(f"X: the columns are in another order than at fit; reorder them as at fit: "
                                 f"{list(fitted)[:20]}")
            raise ValueError(f"X: the column names differ from those seen at fit (missing: {missing[:10]}; "
                             f"not seen at fit: {unseen[:10]})")
