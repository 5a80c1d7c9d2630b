"""What the package's multi-task estimators add to scikit-learn's contract: pandas output of
predictions and transforms, and the tags of transformers that take a task label per row.

Task labels travel through scikit-learn's metadata routing as the argument ``task`` of ``fit``,
``predict``, ``score`` and ``transform``: with ``sklearn.set_config(enable_metadata_routing=True)``,
``est.set_fit_request(task=True).set_score_request(task=True)`` makes ``cross_val_score(est, X, y,
params={"task": task})`` and ``GridSearchCV(est, grid).fit(X, y, task=task)`` split the labels
with the rows and hand them to every fit and score.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import sklearn
from sklearn.base import TransformerMixin
from sklearn.utils.validation import check_is_fitted

from .validation import check_choice

OUTPUTS = ("default", "pandas")


def output_container(estimator: Any, method: str = "transform") -> str:
    """``"pandas"`` or ``"default"``: the estimator's ``set_output`` choice, else the global one."""
    chosen = getattr(estimator, "_sklearn_output_config", {}).get(method)
    return chosen or sklearn.get_config()["transform_output"]


class PandasPredictions:
    """``set_output(transform="pandas")`` for regressors: ``predict`` then returns a Series.

    The Series has the index of ``X`` when ``X`` is a DataFrame (a RangeIndex otherwise) and the
    name ``"prediction"``. The default stays a NumPy array, as scikit-learn's regressors return.
    """

    def set_output(self, *, transform: str | None = None) -> Any:
        """Choose what ``predict`` returns: ``"pandas"`` (a Series) or ``"default"`` (an array).

        Parameters
        ----------
        transform : {"default", "pandas"} or None
            None leaves the choice unchanged. Without a choice here, scikit-learn's global
            ``transform_output`` setting decides.

        Returns
        -------
        self
        """
        if transform is None:
            return self
        check_choice(transform, "transform", OUTPUTS)
        self._sklearn_output_config = {**getattr(self, "_sklearn_output_config", {}), "transform": transform}
        return self

    def _as_output(self, pred: Any, X: Any) -> Any:
        """``pred`` (an array of one value per row) as the chosen container."""
        if not isinstance(pred, np.ndarray) or output_container(self) != "pandas":
            return pred
        index = X.index if isinstance(X, pd.DataFrame) else None
        return pd.Series(pred, index=index, name="prediction")


class TaskTransformer(TransformerMixin):
    """Transformers with ``fit(X, task)`` and ``transform(X, task)``: transformer tags, NaN
    accepted in the input (the blocks to complete), ``get_feature_names_out`` and
    ``set_output(transform="pandas")`` (a DataFrame with the index of ``X``).

    A subclass implements ``_output_columns()``: the columns of its output, in order.
    """

    def _output_columns(self) -> list:  # pragma: no cover
        raise NotImplementedError

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """Names of the output columns (column names, or ``x<position>`` for positions).

        Parameters
        ----------
        input_features : ignored
            The output columns are fixed by the fitted layout.

        Returns
        -------
        ndarray of str
        """
        check_is_fitted(self)
        return np.asarray([c if isinstance(c, str) else f"x{c}" for c in self._output_columns()],
                          dtype=object)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        tags.target_tags.required = False
        tags.transformer_tags.preserves_dtype = ["float64"]
        return tags
