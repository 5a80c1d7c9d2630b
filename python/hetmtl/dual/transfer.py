"""A new task fitted on top of a fitted dual encoder's shared encoder."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from sklearn.metrics import r2_score

from ..nn import TaskLayout, torch_threads
from ._data import Standardizer, stack_inputs
from .alternating import DualNet, Heads, predict_rows

__all__ = ["TransferredTask"]


class TransferredTask:
    """A new task fitted on top of a :class:`DualEncoderMTL`'s shared encoder.

    Attributes
    ----------
    alpha_, beta_, intercept_ : ndarray
        The new task's heads (standardized scale).
    fused_ : bool
        Whether the new beta equals the fitted center.
    """

    def __init__(self, net: DualNet, heads: Heads, scaler: Standardizer, n_features: int, device, n_threads):
        self.net_ = net
        self.heads_ = heads
        self.scaler_ = scaler
        self.n_features_in_ = n_features
        self.alpha_, self.beta_, self.intercept_ = heads.alpha[0], heads.beta[0], float(heads.intercept[0])
        self.fused_ = bool(heads.fused_beta[0])
        self._device = device
        self.n_threads = n_threads

    def predict(self, X: Any) -> np.ndarray:
        """Predict the new task's response for rows ``X`` (n, d)."""
        Xa, _, codes = stack_inputs([X], None, None)
        if Xa.shape[1] != self.n_features_in_:
            raise ValueError(f"X: has {Xa.shape[1]} columns but the model was fitted with {self.n_features_in_}")
        Xt = torch.as_tensor(self.scaler_.x(Xa, codes), dtype=torch.float32, device=self._device)
        ct = torch.as_tensor(codes, dtype=torch.long, device=self._device)
        with torch_threads(self.n_threads), torch.no_grad():
            pred, *_ = predict_rows(self.net_, self.heads_.tensors(self._device), Xt, ct,
                                    TaskLayout.from_tasks(ct, 1))
        return self.scaler_.y_inverse(pred.double().cpu().numpy())

    def score(self, X: Any, y: Any) -> float:
        """R^2 of the new task's predictions."""
        return float(r2_score(np.asarray(y, dtype=float), self.predict(X)))

