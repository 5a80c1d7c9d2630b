"""The two-pathway multi-task model for block-wise missing sources."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch
from sklearn.utils.validation import check_is_fitted

from .._util.validation import check_choice, check_jobs
from ..nn import DEPRECATED, EarlyStopping, train_epochs
from ._base import BlockRegressor, TrainRows, init_generator, restore
from ._data import BlockData, anchor_columns, column_mask
from ._grid import (AUTO_GRID, GRID_KEYS, PAPER_GRID, SMALL_GRID, check_positive_int, expand_grid, run_stacks,
                    stack_cost, stack_groups)
from ._stacks import ShrinkingMinibatchStep
from ._two_pathway import ORTH_SCALES, SHARED_HEADS, NetSpec, SharedInput, TwoPathwayNet
from .layout import BlockLayout

__all__ = ["ARCHITECTURES", "AUTO_GRID", "PAPER_GRID", "SMALL_GRID", "TASK_INPUTS", "TwoPathwayMTL"]

TASK_INPUTS = ("all", "own")
#: A stack is rebuilt without its finished configurations once at most this share of it is still
#: running (1: as soon as one finishes; a rebuild costs about one training step of the stack).
SHRINK = 1.0
#: What the shared encoder reads: the completed row (default) or the anchor only (the paper).
ARCHITECTURES = ("shared", "paper")


class TwoPathwayMTL(BlockRegressor):
    """Multi-task regression on multi-source data with block-wise missing sources.

    Each task's missing sources are first completed by an imputer (fitted on the rows given to
    ``fit``; it never sees y). For task t the model is ``y = psi_c + psi_p^t`` with

    * a shared encoder ``f_c`` (one for all tasks). By default (``architecture="shared"``) it reads
      the completed row: the anchor, the observed sources and the imputed ones, the imputed values
      of source s scaled by a gate g_s in (0, 1) learned with the weights, and one indicator input
      per source that says whether the task's block is imputed. A source's observed and imputed
      values meet the same weights, so the link from a source to the response is learned from all
      the tasks that observe it and carried to those that do not, and how far imputations are
      trusted is learned per source. With ``architecture="paper"`` it reads the anchor only,
      ``f_c = E_c(x_0)``, as in the paper;
    * a task encoder ``f_p^t = E_p^t(x)`` (one per task), on the task's own observed sources
      (default of the shared architecture) or on the completed vector (the paper's);
    * a shared head ``psi_c`` on the shared stream and a task head ``psi_p^t`` that reads its own
      stream and, layer by layer, the shared head's stream.

    It minimizes ``sum_t mse_t + gamma R_orth + delta R_imp + kappa R_dr`` on minibatches, where

    * ``R_orth = sum_t ||F_c^t' F_p^t / m||_F^2 / d^2`` over the batch's m rows of task t and the
      codes' width d: the mean squared entry of the cross-moment matrix of shared and task codes
      (``orth_scale="mean"``, the default; ``"sum"`` gives the paper's
      ``sum_t ||F_c^t' F_p^t||_F^2``);
    * ``R_imp = sum_t sum_{s missing for t} ||W_1^t[s]||_F^2``, the first-layer weights of task t's
      encoder on the columns of its imputed blocks (down-weights imputed inputs); with the shared
      architecture also ``sum_s g_s^2 ||W_c[s]||_F^2``, the weights the shared encoder puts on
      imputed values of s;
    * ``R_dr = sum_l ||(sum_t B_l^t) A_l'||_F^2``, where B_l^t are task head t's weights on the
      shared stream and A_l the shared head's weights of layer l (the output layer gives
      ``((sum_t b^t)' a)^2``): task heads read directions of the shared stream the shared head
      does not use.

    Configurations of a grid are trained together: those of one depth and width form one stack of
    networks (narrower widths are padded with exact zeros into a wider stack where that costs less
    than a stack of their own) that sees one pass over the data, every network with its own
    weights, Adam state and early stopping, so that each ends as if trained alone with the same
    ``random_state`` (up to rounding). Once a configuration's early stopping has ended, its stack
    is rebuilt without it, so it costs nothing more; ``n_jobs`` stacks train at once.

    Parameters
    ----------
    layout : BlockLayout
        Sources, anchor and the sources each task observes.
    imputer : {"hbi", "mean", "iterative"}, imputer object or None
        What completes the missing blocks: any object with ``fit(X, task)`` and ``transform(X,
        task)`` returning every column of the layout (copied before fitting). None: no imputation
        (HTL): each encoder reads only the sources its task observes (a missing block is zero, its
        indicator one), and R_imp vanishes.
    architecture : {"shared", "paper"}
        What the shared encoder reads: the completed row with gated imputed inputs and indicators
        (``"shared"``) or the anchor only (``"paper"``).
    hidden : int
        Width d of the encodings and of every hidden layer.
    n_layers : int
        Layers L of each encoder.
    gamma, delta, kappa : float
        Weights of R_orth, R_imp and R_dr.
    orth_scale : {"mean", "sum"}
        How R_orth is scaled: ``"mean"`` divides the paper's sum by ``(m d)^2`` (batch rows per
        task and code width), so that gamma means the same at any batch size and width; ``"sum"``
        is the paper's unscaled form (kept to reproduce it; with a standardized response it
        dominates the loss at gamma = 0.1, see Notes).
    shared_head : {"paper", "code"}
        The shared head reads f_c only (the paper), or [f_p^t, f_c] in its first layer (the
        authors' code; the shared head's output then depends on the task).
    task_inputs : {"all", "own"} or None
        What each task encoder reads: the completed vector (``"all"``; with ``imputer=None``, the
        sources its task observes), or only its task's observed sources other than the anchor
        (``"own"``; with ``imputer=None`` and ``architecture="paper"`` this is the paper's HTL
        competitor, see :func:`htl`). None: ``"own"`` with the shared architecture (imputed
        inputs reach the model through the shared encoder only), ``"all"`` with the paper's.
    head_layers : int
        Linear layers of each head (1: linear heads).
    activation : {"relu", "tanh", "gelu"}
    batch_size : int
        Rows of every task per minibatch.
    lr, lr_decay, lr_step : float, float, int
        Adam's step size, multiplied by ``lr_decay`` every ``lr_step`` epochs.
    weight_decay : float
        L2 weight ``lambda`` of each configuration, adding ``lambda / 2`` times its squared weights
        to its loss (Adam's coupled weight decay, per configuration; the gates are left out). A
        grid key like the others (the default grid chooses it on validation).
    max_epochs, patience : int
        Epoch budget; early stopping after ``patience`` epochs without improvement of the summed
        validation MSE (each configuration on its own). The paper's patience is 30 (see Notes).
    validation_fraction : float
        Share of each task's rows held out for validation (0.25 of the non-test rows gives the
        paper's 60/20/20 split).
    grid : dict, {"auto", "paper", "small"} or None
        Lists of values over ``hidden``, ``n_layers``, ``gamma``, ``delta``, ``kappa``,
        ``weight_decay`` (keys left out take the parameters above); the configuration with the
        lowest validation loss is kept. ``"auto"`` (default) is :data:`AUTO_GRID`, three L2
        weights trained as one stack; ``"paper"`` is :data:`PAPER_GRID` (72 configurations),
        ``"small"`` :data:`SMALL_GRID`. None fits the parameters above only.
    device : str or torch.device
        Where the networks train and predict (``"cpu"``, ``"cuda"``, ...); an imputer given by name
        (``"hbi"``) trains there too.
    n_threads : int or None
        torch threads during fit and predict (None leaves torch's setting).
    n_jobs : int
        Stacks of the grid trained at once (-1: one per CPU), each in a thread of its own running torch on
        ``n_threads`` threads (torch releases the interpreter lock inside its operations). Results
        do not depend on it: every stack trains as it would alone. Worth it with a grid of several
        stacks (``grid="paper"``: nine) and a core per stack; the default grid is one stack.
    verbose : bool
        Show a progress bar.
    random_state : None, int or SeedSequence
    val_fraction : float
        Deprecated spelling of ``validation_fraction`` (removed in the next release).

    Attributes
    ----------
    imputer_ : object or None
        The fitted imputer.
    best_params_ : dict
        The selected configuration.
    cv_results_ : DataFrame
        One row per configuration: its parameters, the summed validation MSE of the standardized
        responses (the selection criterion, ``val_loss``), the summed per-task validation MSE in the
        units of y (``val_mse``), the best epoch and the rank.
    history_ : DataFrame
        Training and validation loss per epoch of the selected configuration, until early
        stopping finished it.
    net_ : module
        The selected network.

    Notes
    -----
    Inputs are standardized with the training rows' statistics (each column over the rows that
    observe it) and y per task; predictions are in the units of y.

    Defaults. The loss is a per-row mean of the standardized response, which for a nearly
    noiseless target falls to about 0.005, while the paper's unscaled R_orth sums m^2 d^2 products
    of non-negative (relu) codes: at gamma = 0.1, batch 16 and d = 64 it outweighs the fit and the
    model underfits. R_orth is therefore scaled to a mean (``orth_scale="mean"``); R_imp and R_dr
    are penalties on weights whose size does not grow with the batch, and are left as in the paper
    (switching them off changed nothing measurable). On small noisy data sets (a hundred or two
    rows per task) every configuration overfits within ten to twenty epochs: the training loss
    falls towards zero while the validation loss rises, whatever the step size or patience, so
    stopping there is not premature; what helps is L2 on the weights, which the default grid
    chooses on validation (a nearly noiseless response as in the paper's designs needs none).
    Batches of 32 rows per task and patience 50 keep a fit to a few seconds. On the paper's setting A (rho_2 = 0.7, 10 replicates) this took the
    mean task test RMSE of the HBI pipeline from 0.79 to 0.44 and that of HTL from 0.90 to about
    0.40 (the README section on block-wise missing data has the table): in that design the anchor
    carries nearly all the information of the missing blocks, and HTL, with far fewer inputs per
    task encoder, is as good as or better than the imputing model; imputation pays off where a
    task's missing block is predictable from the anchor through rows that task does not have.
    """

    def __init__(self, layout: BlockLayout, imputer: Any = "hbi", architecture: str = "shared", hidden: int = 64,
                 n_layers: int = 2, gamma: float = 0.1, delta: float = 0.1, kappa: float = 0.1, orth_scale: str = "mean",
                 shared_head: str = "paper", task_inputs: str | None = None,
                 head_layers: int = 2, activation: str = "relu", batch_size: int = 32, lr: float = 1e-3,
                 weight_decay: float = 0.0,
                 lr_decay: float = 0.5, lr_step: int = 100, max_epochs: int = 500, patience: int = 50,
                 validation_fraction: float = 0.25, grid: Any = "auto", device: str = "cpu",
                 n_threads: int | None = 1, n_jobs: int = 1, verbose: bool = False, random_state: Any = None,
                 val_fraction: Any = DEPRECATED):
        self.layout = layout
        self.imputer = imputer
        self.architecture = architecture
        self.hidden = hidden
        self.n_layers = n_layers
        self.gamma = gamma
        self.delta = delta
        self.kappa = kappa
        self.orth_scale = orth_scale
        self.shared_head = shared_head
        self.task_inputs = task_inputs
        self.head_layers = head_layers
        self.activation = activation
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.lr_decay = lr_decay
        self.lr_step = lr_step
        self.max_epochs = max_epochs
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.grid = grid
        self.device = device
        self.n_threads = n_threads
        self.n_jobs = n_jobs
        self.verbose = verbose
        self.random_state = random_state
        self.val_fraction = val_fraction

    def _imputer_spec(self) -> Any:
        return self.imputer

    def _configs(self) -> list[dict[str, Any]]:
        return expand_grid(self.grid, {k: getattr(self, k) for k in GRID_KEYS})

    def _check_params(self) -> None:
        super()._check_params()
        check_choice(self.shared_head, "shared_head", SHARED_HEADS)
        check_choice(self.orth_scale, "orth_scale", ORTH_SCALES)
        check_choice(self.architecture, "architecture", ARCHITECTURES)
        if self.task_inputs is not None:
            check_choice(self.task_inputs, "task_inputs", TASK_INPUTS)
        check_positive_int(self.head_layers, "head_layers")
        check_jobs(self.n_jobs, "n_jobs")
        self._configs()

    # -- fitting ----------------------------------------------------------------------------------------

    def _fit_data(self, data: BlockData, seed: np.random.SeedSequence) -> None:
        configs = self._configs()
        rows = self._train_rows(data)
        K = len(configs)
        loss, val_mse, best_epoch = np.empty(K), np.empty(K), np.empty(K, dtype=int)
        groups = stack_groups(configs)  # one stack, one pass over the data per epoch

        def train(members: list[int]):
            return self._train_stack(data, rows, [configs[i] for i in members], seed)

        trained = run_stacks(train, groups, [stack_cost(configs, g) for g in groups],
                             check_jobs(self.n_jobs, "n_jobs"))
        stacks = []  # (members, net, training record) of every stack
        for members, (net, res, val) in zip(groups, trained):
            loss[members], best_epoch[members], val_mse[members] = res.stopper.best_loss, res.stopper.best_epoch, val
            stacks.append((members, net, res))
        if not np.isfinite(loss).any():
            raise FloatingPointError("fit: every configuration diverged (non-finite validation loss); lower lr")
        best = int(np.nanargmin(np.where(np.isfinite(loss), loss, np.nan)))
        members, net, res = next(s for s in stacks if best in s[0])
        j = members.index(best)
        self.net_ = net.select(j)
        self.best_params_ = dict(configs[best])
        table = pd.DataFrame(configs)
        table["val_loss"] = loss
        table["val_mse"] = val_mse
        table["best_epoch"] = best_epoch
        table["rank"] = table["val_loss"].rank(method="min").astype(int)
        self.cv_results_ = table
        stop = int(res.stopper.stop_epoch[j])
        n = res.n_epochs if stop < 0 else stop + 1  # the epochs until the configuration finished
        tr, va = np.stack(res.train_loss)[:n, j], np.stack(res.val_loss)[:n, j]
        self.history_ = pd.DataFrame({"epoch": np.arange(n), "train_loss": tr, "val_loss": va})
        self.best_epoch_ = int(best_epoch[best])

    def _train_stack(self, data: BlockData, rows: TrainRows, configs: list[dict], seed: np.random.SeedSequence):
        """Train configurations of one depth as one stack; returns the net (best weights of
        every configuration), the training record and the per-configuration validation MSE in the
        units of y."""
        layout = self.layout
        widths = [c["hidden"] for c in configs]
        anchor_cols = torch.as_tensor(anchor_columns(layout))
        imputed = data.imputer is not None
        input_mask, imputed_mask = self._masks(imputed=imputed, own_sources_only=self._task_inputs() == "own")
        shared = self._shared_input(imputed) if self.architecture == "shared" else None
        p_shared = anchor_cols.numel() if shared is None else shared.width
        spec = NetSpec(n_tasks=data.n_tasks, p_anchor=p_shared, p_in=len(layout.all_columns),
                       n_layers=configs[0]["n_layers"], head_layers=int(self.head_layers),
                       shared_head=self.shared_head, activation=self.activation)
        gens = [init_generator(seed, c["hidden"], c["n_layers"]) for c in configs]
        net = TwoPathwayNet(spec, widths, gens, anchor_cols, input_mask, imputed_mask, shared).to(self._device)
        weights = {k: torch.tensor([c[k] for c in configs], dtype=torch.float32, device=self._device)
                   for k in ("gamma", "delta", "kappa", "weight_decay")}
        use = {k: bool((v > 0).any()) for k, v in weights.items()}

        def batch_loss(net: TwoPathwayNet, weights: dict, xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
            f_c, f_p = net.encode(xb)
            loss = (net.heads(f_c, f_p) - yb).square().mean(-1).sum(-1)
            if use["gamma"]:
                loss = loss + weights["gamma"] * net.orthogonality(f_c, f_p, self.orth_scale)
            if use["delta"]:
                loss = loss + weights["delta"] * net.imputation_penalty()
            if use["kappa"]:
                loss = loss + weights["kappa"] * net.decorrelation()
            if use["weight_decay"]:  # (wd/2) ||theta||^2: the gradient of Adam's coupled weight decay
                loss = loss + 0.5 * weights["weight_decay"] * net.squared_norm()
            return loss

        def val_loss(net: TwoPathwayNet) -> torch.Tensor:
            return rows.val_mse(net(rows.x_val)).sum(-1)

        stopper = EarlyStopping(len(configs), patience=int(self.patience))
        step = ShrinkingMinibatchStep(net, weights, batch_loss, val_loss, stopper, rows.Z, rows.y, rows.codes,
                                      data.n_tasks, self._batching(seed), shrink=SHRINK)
        res = train_epochs(step, stopper, self.max_epochs, self._progress(f"two-pathway, L={spec.n_layers}"))
        res.val_loss = step.val_history  # every configuration's column, NaN once it is shed
        restore(net, res.stopper.best_state)
        with torch.no_grad():
            per_task = rows.val_mse(net(rows.x_val)).cpu().double().numpy()  # (G, T)
        val = (per_task * data.scaler.y_scale**2).sum(-1)
        return net, res, val

    def _predict_blocks(self, x_t: torch.Tensor) -> torch.Tensor:
        return self.net_(x_t)[0]

    def _task_inputs(self) -> str:
        if self.task_inputs is not None:
            return self.task_inputs
        return "own" if self.architecture == "shared" else "all"

    def _shared_input(self, imputed: bool) -> SharedInput:
        """The completed-row input of the shared encoder: which entries are imputed, the gate of
        each column's source and the indicators of the sources missing for each task."""
        layout = self.layout
        missing = ~layout.observed_matrix()  # (T, sources)
        sometimes = np.flatnonzero(missing.any(0))
        widths = [layout.width(s) for s in layout.sources]
        gate_of = np.repeat(np.searchsorted(sometimes, np.arange(len(widths))).clip(max=max(len(sometimes) - 1, 0)),
                            widths)
        imputed_cols = column_mask(layout, "missing") if imputed else np.zeros((layout.n_tasks, sum(widths)), bool)
        return SharedInput(imputed=torch.as_tensor(imputed_cols, dtype=torch.float32),
                           gate_of=torch.as_tensor(gate_of), n_gates=len(sometimes) if imputed else 0,
                           indicators=torch.as_tensor(missing[:, sometimes], dtype=torch.float32))

    def imputation_gates(self) -> pd.Series:
        """The learned gate of each imputed source (how much of its imputed values the shared
        encoder reads, 1 = as if observed); empty without imputation or with the paper's
        architecture."""
        check_is_fitted(self, "net_")
        layout = self.layout
        names = [s for s, m in zip(layout.sources, (~layout.observed_matrix()).any(0)) if m]
        if not self.net_.n_gates:
            return pd.Series([], dtype=float, name="gate", index=pd.Index([], name="source"))
        g = self.net_.gates().detach().cpu().double().numpy()[0]
        return pd.Series(g, index=pd.Index(names, name="source"), name="gate")

