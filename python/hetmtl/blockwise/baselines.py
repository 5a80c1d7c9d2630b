"""Competitors of :class:`TwoPathwayMTL`, with the same interface.

* :class:`SingleTaskBlockMLP` -- one MLP per task on the sources that task observes;
* :func:`htl` -- the two-pathway model without imputation (each task encoder reads its task's
  observed sources only);
* :func:`without_orthogonality`, :func:`without_imputation_penalty`,
  :func:`without_decorrelation` -- ablations with one regularizer switched off.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from ..nn import DEPRECATED, EarlyStopping, MinibatchStep, StackedMLP, hidden_widths, train_epochs
from ._base import BlockRegressor, init_generator, parameter_state, restore
from ._data import BlockData
from ._grid import check_positive_int, resolve_grid
from .layout import BlockLayout
from .model import TwoPathwayMTL

__all__ = ["SingleTaskBlockMLP", "htl", "without_decorrelation", "without_imputation_penalty",
           "without_orthogonality"]


class SingleTaskBlockMLP(BlockRegressor):
    """One MLP per task, fitted on that task's rows and observed sources only.

    The T networks are trained together with stacked weights (one batched product per layer):
    each reads the full row with its task's missing blocks set to zero and its first-layer weights
    on those columns fixed at zero, so it depends on the observed sources only. Losses, parameters
    and early stopping are per task, so the result is T separate single-task fits.

    Parameters
    ----------
    layout : BlockLayout
    hidden : int or sequence of int
        Hidden widths of each task's MLP: an int is the width of ``n_layers`` hidden layers, a
        sequence gives one width per layer (as for :class:`hetmtl.dual.SingleTaskMLP`).
    n_layers : int
        Hidden layers when ``hidden`` is an int.
    activation, batch_size, lr, lr_decay, lr_step, max_epochs, patience, validation_fraction, device,
    n_threads, verbose, random_state
        As for :class:`TwoPathwayMTL`.
    val_fraction : float
        Deprecated spelling of ``validation_fraction`` (removed in the next release).

    Attributes
    ----------
    net_ : StackedMLP
        The T networks.
    validation_loss_ : ndarray of shape (T,)
        Validation MSE per task (units of y).
    best_epoch_ : ndarray of shape (T,)
    """

    def __init__(self, layout: BlockLayout, hidden: int | Sequence[int] = 64, n_layers: int = 2, activation: str = "relu",
                 batch_size: int = 16, lr: float = 1e-3, lr_decay: float = 0.5, lr_step: int = 100,
                 max_epochs: int = 1000, patience: int = 100, validation_fraction: float = 0.25, device: str = "cpu",
                 n_threads: int | None = 1, verbose: bool = False, random_state: Any = None,
                 val_fraction: Any = DEPRECATED):
        self.layout = layout
        self.hidden = hidden
        self.n_layers = n_layers
        self.activation = activation
        self.batch_size = batch_size
        self.lr = lr
        self.lr_decay = lr_decay
        self.lr_step = lr_step
        self.max_epochs = max_epochs
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.device = device
        self.n_threads = n_threads
        self.verbose = verbose
        self.random_state = random_state
        self.val_fraction = val_fraction

    def _check_params(self) -> None:
        super()._check_params()
        check_positive_int(self.n_layers, "n_layers")
        hidden_widths(self.hidden, self.n_layers)

    def _fit_data(self, data: BlockData, seed: np.random.SeedSequence) -> None:
        rows = self._train_rows(data)
        T, p = data.n_tasks, data.Z.shape[1]
        input_mask, _ = self._masks(imputed=False)
        widths = hidden_widths(self.hidden, self.n_layers)
        # keyed by the shape: (width, layers) for equal widths, as a two-pathway configuration
        keys = (widths[0], len(widths)) if len(set(widths)) == 1 else (*widths, len(widths))
        gen = init_generator(seed, *keys)
        net = StackedMLP(T, p, 1, widths, self.activation, generator=gen)
        with torch.no_grad():
            net.weights[0].mul_(input_mask.unsqueeze(-1))
        net = net.to(self._device)

        def batch_loss(xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
            return (net.forward_t(xb)[:, 0] - yb).square().mean(-1)

        step = MinibatchStep(net.parameters(), batch_loss, lambda: rows.val_mse(net.forward_t(rows.x_val)[:, 0]),
                             lambda: parameter_state(net), T, rows.Z, rows.y, rows.codes, T, self._batching(seed))
        res = train_epochs(step, EarlyStopping(T, patience=int(self.patience)), self.max_epochs,
                           self._progress("single-task MLP"))
        restore(net, res.stopper.best_state)
        self.net_ = net
        self.validation_loss_ = res.stopper.best_loss * data.scaler.y_scale**2
        self.best_epoch_ = res.stopper.best_epoch

    def _predict_blocks(self, x_t: torch.Tensor) -> torch.Tensor:
        return self.net_.forward_t(x_t)[:, 0]


def htl(layout: BlockLayout, **params: Any) -> TwoPathwayMTL:
    """The two-pathway model without imputation (HTL, the paper's competitor): the shared encoder
    reads the anchor and each task encoder only its task's own sources, x_t (``imputer=None``,
    ``architecture="paper"``, ``task_inputs="own"``; R_imp has nothing to act on).

    Parameters
    ----------
    layout : BlockLayout
        Sources and the tasks that observe them.
    **params
        Any other parameter of :class:`TwoPathwayMTL`; ``imputer`` and ``task_inputs`` are set.

    Returns
    -------
    TwoPathwayMTL
        The model, not fitted.
    """
    return TwoPathwayMTL(layout, **{**params, "imputer": None, "architecture": "paper", "task_inputs": "own"})


def _without(weight: str, layout: BlockLayout, params: dict[str, Any]) -> TwoPathwayMTL:
    params = {**params, weight: 0.0}
    grid = resolve_grid(params.get("grid"))
    if grid is not None:  # a named grid becomes its dict, with the weight fixed at 0
        params["grid"] = {**grid, weight: [0.0]} if weight in grid else grid
    return TwoPathwayMTL(layout, **params)


def without_orthogonality(layout: BlockLayout, **params: Any) -> TwoPathwayMTL:
    """The two-pathway model with ``gamma = 0`` (no R_orth), also across a grid.

    Parameters
    ----------
    layout : BlockLayout
        As for :class:`TwoPathwayMTL`.
    **params
        Its other parameters; ``gamma`` is 0 in every grid configuration.

    Returns
    -------
    TwoPathwayMTL
    """
    return _without("gamma", layout, params)


def without_imputation_penalty(layout: BlockLayout, **params: Any) -> TwoPathwayMTL:
    """The two-pathway model with ``delta = 0`` (no R_imp), also across a grid.

    Parameters
    ----------
    layout : BlockLayout
        Which sources each task observes.
    **params
        Passed on, except ``delta``, which is 0 (in a grid too).

    Returns
    -------
    TwoPathwayMTL
        Unfitted.
    """
    return _without("delta", layout, params)


def without_decorrelation(layout: BlockLayout, **params: Any) -> TwoPathwayMTL:
    """The two-pathway model with ``kappa = 0`` (no R_dr), also across a grid.

    Parameters
    ----------
    layout : BlockLayout
        The block layout of the data.
    **params
        Other options of the two-pathway model; ``kappa`` is forced to 0, grid included.

    Returns
    -------
    TwoPathwayMTL
        A model to fit.
    """
    return _without("kappa", layout, params)
