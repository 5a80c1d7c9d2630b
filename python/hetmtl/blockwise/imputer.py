"""Heterogeneous block-wise imputation (HBI): each missing source predicted from the anchor through a
code shared by the tasks that observe it and the tasks that miss it."""

from __future__ import annotations

import itertools
from typing import Any, Sequence

import numpy as np
import pandas as pd

from .. import nn as _nn  # noqa: F401  (first: names the torch extra when torch is missing)

import torch  # noqa: E402
from sklearn.utils.validation import check_is_fitted

from .._util.tasks import as_seed_sequence, child_seed, random_first_per_task
from .._util.validation import check_choice, check_int_at_least, check_positive_number
from ..nn import DEPRECATED, RenamedParameters, TorchDevice, check_fraction, progress, torch_generator, torch_threads
from ._hbi_net import HBIStack, StackData, train_stack
from ._imputer_base import BlockImputer, BlockScaler, observer_rows, require_observers
from .layout import BlockLayout

__all__ = ["HBIImputer"]

# Fixed keys of the independent random streams drawn from one random_state.
_SEED_SPLIT, _SEED_INIT = 0, 1


class HBIImputer(RenamedParameters, TorchDevice, BlockImputer):
    """Impute whole missing sources from the anchoring source (heterogeneous block-wise imputation).

    For every source s that some task misses, with "task s" the tasks that observe s and "-s" the
    others, a network learns from the anchor x0 of all training rows:

    * a shared encoder E_c and private encoders E_p^(s), E_p^(-s) (x0 -> R^w each);
    * a decoder D([E_c(x0), E_p(x0)]) -> x0, shared by both groups;
    * a predictor G_s(E_c(x0)) -> x_s, which reads only the shared code.

    The objective is the mean squared reconstruction error of x0 in each group, plus the prediction error of
    x_s on the observer rows, plus ``lam_orth`` times ``||E_c' E_p^(s)||_F + ||E_c' E_p^(-s)||_F``
    (un-squared, each over its group's rows and divided by their number). A missing block is
    imputed by G_s(E_c(x0)). Training is full batch with Adam; the validation loss is the
    prediction error of x_s on held-out observer rows and drives early stopping and the choice of
    configuration (width x depth x lam_orth), separately for each source.

    The configurations of all sources train together rather than one at a time: networks of the
    same shape are stacked (``stacking="shape"``: one stack per width and depth of the grid, every
    source and ``lam_orth`` in it), so that each layer of all of them is one batched product and
    one Adam step updates them all. Each network keeps its own early stopping, so stacking does
    not change when it stops, and starts from the same initial weights whatever the stacking:
    results agree with one-at-a-time training up to float32 rounding. ``stacking="depth"`` also
    stacks networks of different widths (zero-padded to the widest of their depth, which leaves
    what they compute unchanged): fewer, larger products but more arithmetic, which pays off on
    small data (few rows, a narrow anchor), where the cost of a step is mostly fixed overhead;
    on the paper's sizes the arithmetic dominates and ``"shape"`` is faster. ``"none"`` trains
    the networks one at a time (for comparison). The chosen network is used as trained (no refit
    on the validation rows).

    Parameters
    ----------
    layout : BlockLayout
        Sources, anchor and the sources each task observes.
    width, depth : int or sequence of int
        Grid of code widths w (also the hidden width) and of layers per encoder, decoder and
        predictor (ReLU between layers, none after the last: codes and outputs are linear). The
        paper's grid is widths (8, 16, 32) and depths (1, 2, 3); the default drops the narrowest
        width and the deepest networks (the slowest; rarely chosen in the package's studies).
    lam_orth : float or sequence of float
        Grid of weights of the orthogonality penalty.
    lr : float
        Adam's step size (the paper's 1e-3 left the networks still improving after 1000 full-batch
        epochs on small designs; at 1e-2 they settle within about a hundred).
    max_epochs, patience : int
        Budget of full-batch epochs and early-stopping patience. With Adam's small default step
        the best networks can still be improving at the budget's end: ``report_`` then shows
        ``best_epoch`` equal to ``max_epochs`` (raise it, or ``lr``, if that matters).
    validation_fraction : float
        Share of each observer task's training rows held out to validate, per source.
    standardize : bool
        Standardize the anchor (over all training rows) and each source (over its observer rows
        that are not held out) with training statistics; outputs are in original units.
    stacking : {"shape", "depth", "none"}
        Which networks train together: those of equal width and depth, those of equal depth
        (narrower ones padded), or none.
    device : str or torch.device
        Where the networks train and impute (``"cpu"``, ``"cuda"``, ``"cuda:1"``, ...). Initial
        weights and validation rows are drawn on the CPU whatever the device, so a fit on a GPU
        starts from the same networks as on the CPU and agrees with it up to float rounding.
        :class:`TwoPathwayMTL` passes its own ``device`` to the imputer it builds by name.
    n_threads : int or None
        torch threads during fit/transform (None leaves torch's setting).
    verbose : bool
        Show a progress bar per stack of networks (epochs; a stack ends when its last network stops).
    random_state : None, int or SeedSequence
    val_fraction : float
        Deprecated spelling of ``validation_fraction`` (removed in the next release).

    Attributes
    ----------
    report_ : DataFrame
        One row per imputed source: chosen ``width``, ``depth``, ``lam_orth``, ``val_rmse``
        (validation RMSE of the chosen network, original units), ``n_observers`` (training rows
        observing the source), ``n_val`` (of which held out), ``epochs`` (epochs run) and
        ``best_epoch``.
    grid_ : DataFrame
        Every source and configuration with its validation MSE (standardized units), best and
        last epoch.
    networks_ : dict of str to HBIStack
        The chosen network of each imputed source.
    scaler_ : BlockScaler
        Training means and standard deviations of the anchor and the imputed sources.
    """

    _renamed = {"val_fraction": "validation_fraction"}

    def __init__(self, layout: BlockLayout, width: int | Sequence[int] = (16, 32),
                 depth: int | Sequence[int] = (1, 2), lam_orth: float | Sequence[float] = (0.0, 1.0),
                 lr: float = 1e-2, max_epochs: int = 1000, patience: int = 30, validation_fraction: float = 0.2,
                 standardize: bool = True, stacking: str = "shape", device: str | torch.device = "cpu",
                 n_threads: int | None = 1, verbose: bool = False, random_state: Any = None,
                 val_fraction: Any = DEPRECATED):
        self.layout = layout
        self.width = width
        self.depth = depth
        self.lam_orth = lam_orth
        self.lr = lr
        self.max_epochs = max_epochs
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.standardize = standardize
        self.stacking = stacking
        self.device = device
        self.n_threads = n_threads
        self.verbose = verbose
        self.random_state = random_state
        self.val_fraction = val_fraction

    # -- fitting -----------------------------------------------------------------------------------------

    def _grid(self) -> list[tuple[int, int, float]]:
        widths = [check_int_at_least(w, "width") for w in np.atleast_1d(self.width).tolist()]
        depths = [check_int_at_least(d, "depth") for d in np.atleast_1d(self.depth).tolist()]
        lams = [float(v) for v in np.atleast_1d(self.lam_orth).tolist()]
        if not all(np.isfinite(v) and v >= 0 for v in lams):
            raise ValueError(f"lam_orth: every value must be a finite non-negative number, got {self.lam_orth!r}")
        if not widths or not depths or not lams:
            raise ValueError("width, depth, lam_orth: each needs at least one value")
        return list(itertools.product(widths, depths, lams))

    def _check_options(self) -> None:
        check_choice(self.stacking, "stacking", STACKING)
        check_positive_number(self.lr, "lr")
        check_int_at_least(self.max_epochs, "max_epochs")
        check_int_at_least(self.patience, "patience")
        name, fraction = self._given("validation_fraction")
        check_fraction(fraction, name)
        if self.n_threads is not None:
            check_int_at_least(self.n_threads, "n_threads")
        self._device  # noqa: B018  (raises for a device that is not a torch device or is absent)
        self._warn_renamed()

    def _fit_blocks(self, blocks: dict[str, np.ndarray], codes: np.ndarray) -> None:
        self._check_options()
        grid = self._grid()
        layout: BlockLayout = self.layout_
        sources = layout.imputed_sources
        seen = observer_rows(layout, codes)
        require_observers(layout, seen)
        root = as_seed_sequence(self.random_state)
        fraction = self._option("validation_fraction")
        val = {s: _validation_rows(codes, seen[s], fraction, child_seed(root, _SEED_SPLIT, i))
               for i, s in enumerate(sources)}
        anchor = layout.anchor
        rows = {anchor: np.ones(codes.size, bool), **{s: seen[s] & ~val[s] for s in sources}}
        self.scaler_ = BlockScaler.fit({s: blocks[s] for s in rows}, rows, bool(self.standardize))
        self.networks_: dict[str, HBIStack] = {}
        self.grid_ = pd.DataFrame(columns=["source", "width", "depth", "lam_orth", "val_mse", "best_epoch", "epochs"])
        if not sources:
            self.report_ = _report([])
            return
        models = [(i, c) for i in range(len(sources)) for c in range(len(grid))]
        with torch_threads(self.n_threads):
            data = self._stack_data(blocks, seen, val, sources, [(i, grid[c]) for i, c in models])
            p0 = layout.width(anchor)
            nets = [HBIStack(p0, layout.width(sources[i]), grid[c][1], [grid[c][0]], [layout.width(sources[i])],
                             torch_generator(child_seed(root, _SEED_INIT, i, c)))
                    for i, c in models]
            trained, results = train_networks(nets, data, stacking=self.stacking, lr=float(self.lr),
                                              max_epochs=int(self.max_epochs), patience=int(self.patience),
                                              verbose=bool(self.verbose))
        self.grid_ = pd.DataFrame([
            {"source": sources[i], "width": grid[c][0], "depth": grid[c][1], "lam_orth": grid[c][2],
             "val_mse": results[m][0], "best_epoch": results[m][1], "epochs": results[m][2]}
            for m, (i, c) in enumerate(models)
        ])
        val_mse = np.array([r[0] for r in results]).reshape(len(sources), len(grid))  # models are source-major
        rows_out = []
        for i, s in enumerate(sources):
            best = i * len(grid) + int(np.argmin(val_mse[i]))
            self.networks_[s] = trained[best]
            pred = self._predict(s, blocks[anchor][val[s]])
            rmse = float(np.sqrt(np.mean((pred - blocks[s][val[s]]) ** 2)))
            w, d, lam = grid[models[best][1]]
            rows_out.append({"source": s, "width": w, "depth": d, "lam_orth": lam, "val_rmse": rmse,
                             "n_observers": int(seen[s].sum()), "n_val": int(val[s].sum()),
                             "epochs": results[best][2], "best_epoch": results[best][1]})
        self.report_ = _report(rows_out)

    def _stack_data(self, blocks, seen, val, sources, specs) -> StackData:
        """The masks and targets of every (source index, configuration) in ``specs``."""
        anchor = self.layout_.anchor
        N = blocks[anchor].shape[0]
        x0t = self._tensor(self.scaler_.forward(anchor, blocks[anchor]).T)
        p_max = max(self.layout_.width(s) for s in sources)
        per_source = []
        for s in sources:
            target = np.zeros((p_max, N))
            z = self.scaler_.forward(s, blocks[s])
            target[:z.shape[1]] = np.where(seen[s][:, None], z, 0.0).T
            columns = (np.arange(p_max) < z.shape[1]).astype(float)[:, None]
            per_source.append((seen[s], seen[s] & ~val[s], ~seen[s], val[s], target, columns))
        pick = [per_source[i] for i, _ in specs]

        def stacked(k: int, dtype=torch.float32) -> torch.Tensor:
            arr = np.stack([p[k] for p in pick])
            return torch.as_tensor(arr[:, None, :] if arr.ndim == 2 and k < 4 else arr, dtype=dtype,
                                   device=x0t.device)

        return StackData(x0t=x0t, observer=stacked(0, torch.bool), fit=stacked(1), other=stacked(2), val=stacked(3),
                         target=stacked(4), columns=stacked(5),
                         lam=torch.tensor([cfg[2] for _, cfg in specs], dtype=torch.float32, device=x0t.device))

    # -- imputing ----------------------------------------------------------------------------------------

    def _predict(self, source: str, anchor_rows: np.ndarray) -> np.ndarray:
        """G_s(E_c(x0)) in original units for raw anchor rows."""
        net = self.networks_[source]
        x0t = torch.as_tensor(np.ascontiguousarray(self.scaler_.forward(self.layout_.anchor, anchor_rows).T),
                              dtype=torch.float32, device=net.device)
        with torch_threads(self.n_threads), torch.no_grad():
            z = net.impute(x0t)[0].T.cpu().double().numpy()
        return self.scaler_.inverse(source, z)

    def _impute(self, source: str, blocks: dict[str, np.ndarray], rows: np.ndarray) -> np.ndarray:
        check_is_fitted(self, "networks_")
        return self._predict(source, blocks[self.layout_.anchor][rows])


STACKING = ("shape", "depth", "none")


def train_networks(nets: Sequence[HBIStack], data: StackData, *, stacking: str, lr: float, max_epochs: int,
                   patience: int, verbose: bool = False) -> tuple[list[HBIStack], list[tuple[float, int, int]]]:
    """Train single networks (``data`` row m belongs to ``nets[m]``), stacked as ``stacking`` says
    (see :class:`HBIImputer`), on the device of ``data`` (the networks may be anywhere: they are
    packed into stacks first, and the stacks moved).

    Returns the trained single networks and, for each, (validation loss, best epoch, epochs run).
    """
    check_choice(stacking, "stacking", STACKING)
    if stacking == "none":
        groups = [[m] for m in range(len(nets))]
    else:
        key = (lambda n: (n.depth, n.widths[0])) if stacking == "shape" else (lambda n: n.depth)
        groups = [[m for m, n in enumerate(nets) if key(n) == k] for k in sorted({key(n) for n in nets})]
    trained: list[HBIStack | None] = [None] * len(nets)
    results: list[tuple[float, int, int] | None] = [None] * len(nets)
    for group in groups:  # one group per shape (or depth) of the grid: a handful
        stack = HBIStack.pack([nets[m] for m in group]).to(data.x0t.device)
        bar = progress(max_epochs, verbose, f"HBI, depth {stack.depth}, {len(group)} networks")
        res = train_stack(stack, data.select(group, stack.p_out), lr=lr, max_epochs=max_epochs, patience=patience,
                          bar=bar)
        for j, m in enumerate(group):
            trained[m] = stack.unpack(j)
            results[m] = (float(res.val_loss[j]), int(res.best_epoch[j]), int(res.epochs[j]))
    return trained, results  # type: ignore[return-value]


def _validation_rows(codes: np.ndarray, observer: np.ndarray, fraction: float,
                     seed: np.random.SeedSequence) -> np.ndarray:
    """Held-out rows of one source: about ``fraction`` of each observer task's rows, at least one
    row in all, and at least one row left to train on."""
    rows = np.flatnonzero(observer)
    if rows.size < 2:
        raise ValueError(f"X: {rows.size} training row(s) observe a source that other tasks miss; HBI needs at "
                         "least 2 (one to train on, one to validate)")
    sub = codes[rows]
    n = np.bincount(sub)
    n_val = np.minimum(np.floor(fraction * n + 0.5).astype(int), np.maximum(n - 1, 0))
    if n_val.sum() == 0:
        n_val[int(np.argmax(n))] = 1
    order, picked = random_first_per_task(sub, n_val, seed)
    out = np.zeros(codes.size, bool)
    out[rows[order[picked]]] = True
    return out


def _report(rows: list[dict]) -> pd.DataFrame:
    columns = ["width", "depth", "lam_orth", "val_rmse", "n_observers", "n_val", "epochs", "best_epoch"]
    return pd.DataFrame(rows, columns=["source", *columns]).set_index("source")
