"""The dual-encoder multi-task regressor."""

from __future__ import annotations

import warnings
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch
from sklearn.utils.validation import check_is_fitted

from .._util.validation import check_choice, check_int, check_number
from ..nn import (ORTHOGONALITY_MODES, StackedMLP, TaskLayout, hidden_widths, orthogonality_per_task, torch_generator,
                  torch_threads)
from ._base import SEED_INIT, SEED_SINGLE, TaskRegressor
from .._util.tasks import as_seed_sequence, child_seed, split_rows
from ._data import Prepared, Split, Standardizer, stack_inputs
from .alternating import CENTERS, PENALTIES, AltConfig, DualNet, Heads, fit_alternating, make_data, predict_rows
from .baselines import SingleTaskMLP
from .transfer import TransferredTask

NEGATIVE_TRANSFER = ("warn", "fallback", "off")
LAM_SCALING = ("sqrt_p_n", "none")
ENCODER_ORDER = ("joint", "alternate")


class NegativeTransferWarning(UserWarning):
    """A task's validation loss under the multi-task model exceeds its single-task fit's."""


class DualEncoderMTL(TaskRegressor):
    """Multi-task regression with a shared and a task-specific encoder per task.

    The model for task r is ``f_r(x) = alpha_r' S_r(x) + beta_r' C(x) + b_r`` with a shared MLP
    encoder C (width ``latent_shared``), a task-specific MLP encoder S_r (width
    ``latent_specific``) and linear heads. It minimizes::

        sum_r w_r mse_r + sum_r lam_r ||beta_r - beta_bar||_2 (+ the alpha term)
          + sum_r (head_ridge w_r / (2 n_r)) ||(alpha_r, beta_r)||^2
          + gamma sum_r ||C~_r' S~_r / n_r||_F^2 + weight decay

    by alternating Adam steps on the encoders, an exact proximal solve of every head (compiled
    core) and a center update, with early stopping on a per-task validation split.

    Defaults, and why (see the study in ``docs/studies/dual_encoder``):

    * ``lam_beta="auto"``: how strongly tasks should share their heads depends on the data (no
      gain, and a loss for unrelated tasks, in the simulation with 4 tasks; a clear gain with 63
      small schools), so the model is fitted for every value of ``lam_beta_grid`` and the one
      with the lowest validation loss is kept (``lam_beta_``, ``lam_beta_path_``). This costs one
      fit per grid value; pass a number to fit once.
    * ``head_ridge=32``: the heads are solved exactly for the current encodings, which lets
      encoders and heads fit the noise of small tasks within a few rounds (training loss near 0,
      early stopping at round 1-10). A ridge fixed in units of rows (its weight falls as
      1 / n_r) slows this down on small tasks and fades on large ones.
    * ``lam_specific=1``: a stronger shrinkage (3) switched every task-specific encoder off,
      which cost unrelated tasks about 4% of RMSE; none at all cost alike tasks about 3%.
    * ``negative_transfer="warn"``: a per-task fallback to the single-task fit, chosen on the few
      validation rows of each task, cost accuracy when tasks are alike and was within noise when
      they are unrelated, so it is an option (``"fallback"``) rather than the default.

    Parameters
    ----------
    latent_shared, latent_specific : int
        Widths p of the shared and q of the task-specific encodings (0 removes that encoder).
    hidden : sequence of int, or int
        Hidden widths of every encoder MLP, one per layer (an int: one hidden layer).
    lam_beta : float or "auto"
        Strength of the pull of beta_r toward the center. With ``penalty="ball"`` it is the
        radius B of the constraint ``||beta_r - beta_bar|| <= B``. ``"auto"``: chosen among
        ``lam_beta_grid`` by the validation loss.
    lam_beta_grid : sequence of float
        Candidate values of ``lam_beta`` for ``"auto"`` (every candidate starts from the same
        initial encoders).
    lam_alpha : float or None
        Pull of alpha_r toward a learned center, like beta_r (None: the task-specific heads are not
        centered, each encoder keeps its own coordinates).
    lam_specific : float
        Used when ``lam_alpha`` is None: group-lasso shrinkage of alpha_r toward zero, which
        switches off the specific encoder of a task it does not help (``specific_off_``) and
        keeps the per-task encoders from fitting noise on small tasks. 0 disables it.
    gamma : float
        Weight of the orthogonality penalty between shared and specific encodings.
    penalty : {"l2", "l2sq", "ball"}
        Un-squared l2 distance (exact fusion of similar tasks), squared distance, or constraint.
    center : {"geomedian", "mean"}
        Center estimate (weighted geometric median: the exact center for ``"l2"``; weighted mean).
    orthogonality : {"standardized", "centered", "raw"}
        Normalization of the encodings in the orthogonality penalty.
    task_weights : {"equal", "size"}
        Loss weight w_r: 1, or R n_r / N.
    lam_scaling : {"sqrt_p_n", "none"}
        Per-task penalty level ``lam * w_r * sqrt(p / n_r)`` (ARMUL-like) or ``lam * w_r``.
    encoder_steps : int
        Adam steps on the encoders per round (between head steps).
    encoder_order : {"joint", "alternate"}
        All encoders in every round, or task-specific and shared encoders in alternate rounds.
    activation : {"relu", "tanh", "gelu"}
    lr, weight_decay : float
        Adam's step size and L2 weight decay of the encoders.
    max_epochs, patience : int
        Budget of rounds and early-stopping patience (rounds without validation improvement).
    validation_fraction : float
        Share of each task's rows held out for early stopping and diagnostics.
    standardize : {"pooled", "task", "none"}
        Standardization of X (y is standardized over all rows; per-task intercepts remain).
    negative_transfer : {"warn", "fallback", "off"}
        Compare each task's validation loss with a single-task MLP fitted on the same split: warn
        about tasks that do worse, also predict those tasks with the single-task fit, or skip.
    transfer_tol : float
        Relative margin before a task counts as negatively transferred.
    head_ridge : float
        Ridge of the heads in units of rows: task r's heads get ``(head_ridge w_r / (2 n_r))
        ||(alpha_r, beta_r)||^2``, so that on its own rows the head fit is a ridge regression
        with penalty ``head_ridge / 2`` on standardized encodings. It keeps the exactly solved heads
        from fitting noise on small tasks and fades as n_r grows (0: none).
    head_tol : float
        KKT tolerance of the head solver.
    device : str
        torch device of the encoders ("cpu" by default).
    n_threads : int or None
        torch threads during fit/predict (None leaves torch's setting).
    verbose : bool
        Show a progress bar.
    random_state : None, int or SeedSequence

    Attributes
    ----------
    classes_ : ndarray
        Task labels in the order of the per-task attributes.
    alpha_, beta_, intercept_ : ndarray
        Heads (standardized scale), shapes (R, q), (R, p), (R,).
    beta_center_, alpha_center_ : ndarray
        Centers of the heads.
    lam_beta_ : float
        The value of ``lam_beta`` used (the chosen one with ``"auto"``).
    lam_beta_path_ : DataFrame
        Validation loss, best round and number of fused tasks for every value of ``lam_beta``
        fitted (the grid with ``"auto"``, else one row).
    fused_ : ndarray of bool, shape (R,)
        Tasks whose beta equals the center exactly.
    specific_off_ : ndarray of bool, shape (R,)
        Tasks whose alpha is exactly zero (specific encoder switched off by ``lam_specific``).
    head_distances_ : DataFrame (R x R)
        Distances ``||beta_r - beta_s||``, in units of the standardized shared encodings (the
        coordinates the penalty acts in). ``center_distances_`` likewise to the center.
    orthogonality_ : Series
        Mean squared correlation between shared and specific encodings per task (training rows).
    validation_loss_, single_task_validation_loss_ : ndarray of shape (R,)
        Per-task validation MSE of this model and of the single-task fit (NaN when ``"off"``).
    negative_transfer_, fallback_ : ndarray of bool, shape (R,)
    task_report_ : DataFrame
        The per-task diagnostics in one table.
    history_ : DataFrame
        Training and validation loss per round.
    """

    def __init__(self, latent_shared: int = 8, latent_specific: int = 2, hidden: Sequence[int] | int = (32,),
                 lam_beta: float | str = "auto", lam_beta_grid: Sequence[float] = (0.0, 0.3, 1.0),
                 lam_alpha: float | None = None, lam_specific: float = 1.0, gamma: float = 0.1,
                 penalty: str = "l2", center: str = "geomedian", orthogonality: str = "standardized",
                 task_weights: str = "equal", lam_scaling: str = "sqrt_p_n", encoder_steps: int = 5,
                 encoder_order: str = "joint", activation: str = "relu", lr: float = 1e-2,
                 weight_decay: float = 1e-3, max_epochs: int = 200, patience: int = 20,
                 validation_fraction: float = 0.2, standardize: str = "pooled",
                 negative_transfer: str = "warn", transfer_tol: float = 0.0, head_ridge: float = 32.0,
                 head_tol: float = 1e-7,
                 device: str = "cpu", n_threads: int | None = 1, verbose: bool = False,
                 random_state: Any = None):
        self.latent_shared = latent_shared
        self.latent_specific = latent_specific
        self.hidden = hidden
        self.lam_beta = lam_beta
        self.lam_beta_grid = lam_beta_grid
        self.lam_alpha = lam_alpha
        self.lam_specific = lam_specific
        self.gamma = gamma
        self.penalty = penalty
        self.center = center
        self.orthogonality = orthogonality
        self.task_weights = task_weights
        self.lam_scaling = lam_scaling
        self.encoder_steps = encoder_steps
        self.encoder_order = encoder_order
        self.activation = activation
        self.lr = lr
        self.weight_decay = weight_decay
        self.max_epochs = max_epochs
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.standardize = standardize
        self.negative_transfer = negative_transfer
        self.transfer_tol = transfer_tol
        self.head_ridge = head_ridge
        self.head_tol = head_tol
        self.device = device
        self.n_threads = n_threads
        self.verbose = verbose
        self.random_state = random_state

    # ------------------------------------------------------------------ validation
    def _check_params(self) -> None:
        super()._check_params()
        for name in ("latent_shared", "latent_specific", "encoder_steps"):
            check_int(getattr(self, name), name)
        for name in ("lam_specific", "gamma", "transfer_tol", "head_ridge", "head_tol"):
            check_number(getattr(self, name), name)
        check_choice(self.penalty, "penalty", PENALTIES)
        check_choice(self.center, "center", CENTERS)
        check_choice(self.orthogonality, "orthogonality", ORTHOGONALITY_MODES)
        check_choice(self.lam_scaling, "lam_scaling", LAM_SCALING)
        check_choice(self.encoder_order, "encoder_order", ENCODER_ORDER)
        check_choice(self.negative_transfer, "negative_transfer", NEGATIVE_TRANSFER)
        for name in ("latent_shared", "latent_specific"):
            if int(getattr(self, name)) < 0:
                raise ValueError(f"{name}: must be non-negative, got {getattr(self, name)!r}")
        if int(self.latent_shared) + int(self.latent_specific) == 0:
            raise ValueError("latent_shared, latent_specific: at least one encoder must have a positive width")
        for name in ("lam_specific", "gamma", "transfer_tol", "head_ridge"):
            val = getattr(self, name)
            if not (np.isfinite(val) and val >= 0):
                raise ValueError(f"{name}: must be a finite non-negative number, got {val!r}")
        self._lam_beta_candidates()
        if self.lam_alpha is not None and not (np.isfinite(self.lam_alpha) and self.lam_alpha >= 0):
            raise ValueError(f"lam_alpha: must be None or a finite non-negative number, got {self.lam_alpha!r}")
        if int(self.encoder_steps) < 1:
            raise ValueError(f"encoder_steps: must be at least 1, got {self.encoder_steps!r}")
        hidden_widths(self.hidden)
        if not (np.isfinite(self.head_tol) and self.head_tol > 0):
            raise ValueError(f"head_tol: must be a positive number, got {self.head_tol!r}")

    def _lam_beta_candidates(self) -> list[float]:
        """The values of lam_beta to fit (one unless ``"auto"``)."""
        def valid(v: Any) -> bool:
            return isinstance(v, (int, float, np.number)) and not isinstance(v, bool) and np.isfinite(v) and v >= 0

        if isinstance(self.lam_beta, str):
            if self.lam_beta != "auto":
                raise ValueError(f"lam_beta: must be a finite non-negative number or 'auto', got {self.lam_beta!r}")
            grid = list(np.atleast_1d(np.asarray(self.lam_beta_grid, dtype=object)))
            if not grid or not all(valid(v) for v in grid):
                raise ValueError("lam_beta_grid: must be a non-empty sequence of finite non-negative numbers, "
                                 f"got {self.lam_beta_grid!r}")
            return [float(v) for v in grid]
        if not valid(self.lam_beta):
            raise ValueError(f"lam_beta: must be a finite non-negative number or 'auto', got {self.lam_beta!r}")
        return [float(self.lam_beta)]

    def _penalty_levels(self, lam: float | None, dim: int, sizes: np.ndarray, w: np.ndarray) -> np.ndarray:
        if lam is None:
            return np.zeros(sizes.size)
        if self.penalty == "ball":
            return np.full(sizes.size, float(lam))
        scale = np.sqrt(dim / sizes) if self.lam_scaling == "sqrt_p_n" else np.ones(sizes.size)
        return float(lam) * w * scale

    def _config(self, sizes: np.ndarray, update_center: bool, lam_beta: float) -> AltConfig:
        w = self._task_weights(sizes)
        p, q = int(self.latent_shared), int(self.latent_specific)
        lam_a = float(self.lam_specific if self.lam_alpha is None else self.lam_alpha)
        pen_alpha = self._penalty_levels(lam_a, q, sizes, w)
        return AltConfig(
            loss_weights=w, pen_beta=self._penalty_levels(lam_beta, p, sizes, w),
            pen_alpha=pen_alpha,
            penalty_beta=self.penalty if p > 0 else "none",
            penalty_alpha=self.penalty if (q > 0 and lam_a > 0) else "none",
            center=self.center, gamma=float(self.gamma), orthogonality=self.orthogonality,
            encoder_steps=int(self.encoder_steps), encoder_order=self.encoder_order, lr=float(self.lr),
            weight_decay=float(self.weight_decay), max_epochs=int(self.max_epochs),
            patience=int(self.patience), head_tol=float(self.head_tol),
            head_ridge=float(self.head_ridge) * w / sizes,
            update_center=update_center,
            learn_alpha_center=self.lam_alpha is not None)

    def _data(self, part: Split, n_tasks: int):
        X, y, codes, _ = self._tensors(part, n_tasks)
        return make_data(X, y, codes, n_tasks, part.sizes, part.y)

    def _stack(self, n_models: int, d: int, width: int, gen: torch.Generator) -> StackedMLP | None:
        if width == 0:
            return None
        return StackedMLP(n_models, d, width, hidden_widths(self.hidden), self.activation,
                          generator=gen)

    def _network(self, n_tasks: int, d: int, seed: np.random.SeedSequence):
        """The initial encoders and their optimizer groups (one, or specific then shared)."""
        gen = torch_generator(child_seed(seed, SEED_INIT))
        p, q = int(self.latent_shared), int(self.latent_specific)
        net = DualNet(self._stack(1, d, p, gen), self._stack(n_tasks, d, q, gen)).to(self._device)
        groups = ([list(net.specific.parameters()) if net.specific is not None else [],
                   list(net.shared.parameters()) if net.shared is not None else []])
        if self.encoder_order == "joint":
            groups = [groups[0] + groups[1]]
        return net, groups

    # ------------------------------------------------------------------ fitting
    def _fit_prepared(self, prep: Prepared, seed: np.random.SeedSequence) -> None:
        R = prep.n_tasks
        p, q = int(self.latent_shared), int(self.latent_specific)
        train, val = self._data(prep.train, R), self._data(prep.val, R)
        # Without a shared encoder lam_beta acts on nothing: one fit.
        candidates = self._lam_beta_candidates()[:1 if p == 0 else None]
        best, path = None, []
        for lam in candidates:  # a handful of whole fits, each from the same initial encoders
            net, groups = self._network(R, prep.n_features, seed)
            cfg = self._config(prep.train.sizes, update_center=True, lam_beta=lam)
            res = fit_alternating(net, groups, train, val, Heads.zeros(R, q, p), cfg,
                                  self._progress(f"dual encoder (lam_beta={lam:g})"))
            path.append({"lam_beta": lam, "val_loss": res.val_loss, "best_epoch": res.best_epoch,
                         "n_fused": int(np.sum(res.heads.fused_beta))})
            # ties keep the earlier value; a non-finite loss loses to any finite one
            if best is None or res.val_loss < best[0] or (not np.isfinite(best[0]) and np.isfinite(res.val_loss)):
                best = (res.val_loss, lam, net, cfg, res)
        _, self.lam_beta_, self.net_, self.config_, res = best
        self.lam_beta_path_ = pd.DataFrame(path)
        self._set_heads(res.heads, prep.classes)
        self.best_epoch_ = res.best_epoch
        self.n_epochs_ = res.n_epochs
        self.history_ = pd.DataFrame(res.history, columns=["epoch", "train_loss", "val_loss"])
        self._diagnose(prep, seed)

    def _set_heads(self, heads: Heads, classes: np.ndarray) -> None:
        self.heads_ = heads
        self.alpha_, self.beta_, self.intercept_ = heads.alpha, heads.beta, heads.intercept
        self.alpha_center_, self.beta_center_ = heads.alpha_center, heads.beta_center
        self.fused_ = np.asarray(heads.fused_beta, dtype=bool)
        self.specific_off_ = (heads.alpha.shape[1] > 0) & np.all(heads.alpha == 0, axis=1)
        # Distances in the coordinates the penalty uses: coefficients of unit-variance encodings.
        beta = heads.beta * heads.beta_scale
        diff = beta[:, None, :] - beta[None, :, :]
        self.head_distances_ = pd.DataFrame(np.linalg.norm(diff, axis=-1), index=classes, columns=classes)
        self.center_distances_ = np.linalg.norm(beta - heads.beta_center * heads.beta_scale, axis=1)

    def _diagnose(self, prep: Prepared, seed: np.random.SeedSequence) -> None:
        R = prep.n_tasks
        y2 = prep.scaler.y_scale ** 2
        val = self._data(prep.val, R)
        train = self._data(prep.train, R)
        with torch.no_grad():
            pred, *_ = predict_rows(self.net_, self.heads_.tensors(self._device), val.X, val.codes, val.layout)
            resid = (pred - val.y).double().cpu().numpy()
            self.validation_loss_ = np.bincount(prep.val.codes, resid ** 2, minlength=R) / prep.val.sizes * y2
            _, _, S_pad, C_pad = self.net_.encode(train.X, train.layout)
            if self.net_.p and self.net_.q:
                orth = orthogonality_per_task(C_pad, S_pad, train.layout.mask, "standardized")
                orth = orth.double().cpu().numpy() / (self.net_.p * self.net_.q)
            else:
                orth = np.zeros(R)
        self.orthogonality_ = pd.Series(orth, index=prep.classes, name="mean squared correlation")
        self.single_task_validation_loss_ = np.full(R, np.nan)
        self.negative_transfer_ = np.zeros(R, bool)
        self.fallback_ = np.zeros(R, bool)
        self.single_task_model_ = None
        if self.negative_transfer != "off":
            single = SingleTaskMLP(
                hidden=(*hidden_widths(self.hidden), int(self.latent_shared) + int(self.latent_specific)),
                activation=self.activation, lr=self.lr, weight_decay=self.weight_decay,
                max_epochs=int(self.max_epochs) * int(self.encoder_steps),
                patience=max(1, int(self.patience) * int(self.encoder_steps) // 2),
                validation_fraction=self.validation_fraction, standardize=self.standardize,
                device=self.device, n_threads=self.n_threads, random_state=child_seed(seed, SEED_SINGLE))
            single.fit_prepared(prep, child_seed(seed, SEED_SINGLE))
            self.single_task_validation_loss_ = single.validation_loss_
            self.negative_transfer_ = self.validation_loss_ > single.validation_loss_ * (1 + self.transfer_tol)
            if self.negative_transfer == "fallback":
                self.fallback_ = self.negative_transfer_.copy()
                self.single_task_model_ = single
            elif self.negative_transfer_.any():
                bad = list(prep.classes[self.negative_transfer_])
                warnings.warn(
                    f"negative transfer: task(s) {bad} have a higher validation loss than a single-task "
                    "fit (see task_report_; negative_transfer='fallback' predicts them single-task)",
                    NegativeTransferWarning, stacklevel=4)
        self.task_report_ = pd.DataFrame({
            "n_train": prep.train.sizes, "n_val": prep.val.sizes,
            "val_mse": self.validation_loss_, "val_mse_single_task": self.single_task_validation_loss_,
            "negative_transfer": self.negative_transfer_, "fallback": self.fallback_,
            "fused": self.fused_, "distance_to_center": self.center_distances_,
            "specific_off": self.specific_off_,
            "orthogonality": orth}, index=pd.Index(prep.classes, name="task"))

    # ------------------------------------------------------------------ prediction
    def _predict_std(self, X: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        layout = TaskLayout.from_tasks(codes, self.n_tasks_)
        pred, *_ = predict_rows(self.net_, self.heads_.tensors(X.device), X, codes, layout)
        if self.fallback_.any():
            rows = torch.as_tensor(self.fallback_, device=X.device)[codes]
            pred = torch.where(rows, self.single_task_model_._predict_std(X, codes), pred)
        return pred

    # ------------------------------------------------------------------ transfer
    def transfer(self, X_new: Any, y_new: Any, random_state: Any = None) -> "TransferredTask":
        """Fit a new task that reuses the fitted shared encoder.

        Only a new task-specific encoder and the new task's heads are trained; the shared encoder
        stays fixed and the new beta is pulled toward the fitted center ``beta_center_``.

        Parameters
        ----------
        X_new : array_like of shape (n, d)
        y_new : array_like of shape (n,)
        random_state : None, int or SeedSequence
            Seed of the new task's split and encoder (default: derived from the model's).

        Returns
        -------
        TransferredTask
        """
        check_is_fitted(self, "net_")
        self._check_feature_names(X_new)
        Xa, ya, codes = stack_inputs([X_new], [y_new], None)
        if Xa.shape[1] != self.n_features_in_:
            raise ValueError(f"X_new: has {Xa.shape[1]} columns but the model was fitted with {self.n_features_in_}")
        seed = as_seed_sequence(self.random_state if random_state is None else random_state)
        seed = child_seed(seed, 100)
        tr, va = split_rows(codes, 1, float(self.validation_fraction), child_seed(seed, 0), np.array(["new"]))
        if self.standardize == "task":
            x_scaler = Standardizer.fit(Xa[tr], ya[tr], codes[tr], 1, "task")
            scaler = Standardizer(x_scaler.x_mean, x_scaler.x_scale, self.scaler_.y_mean, self.scaler_.y_scale)
        else:
            scaler = self.scaler_

        def part(idx):
            return Split(X=scaler.x(Xa[idx], codes[idx]), y=scaler.y(ya[idx]), codes=codes[idx],
                         sizes=np.array([idx.size]))

        p, q = int(self.latent_shared), int(self.latent_specific)
        gen = torch_generator(child_seed(seed, 1))
        shared = None
        if self.net_.shared is not None:
            shared = self.net_.shared.select([0])
            shared.requires_grad_(False)
        net = DualNet(shared, self._stack(1, self.n_features_in_, q, gen)).to(self._device)
        cfg = self._config(np.array([tr.size]), update_center=False, lam_beta=self.lam_beta_)
        heads = Heads.zeros(1, q, p)
        heads.beta_center = self.beta_center_.copy()
        heads.alpha_center = self.alpha_center_.copy()
        heads.beta = self.beta_center_[None, :].copy()
        groups = [list(net.specific.parameters())] if net.specific is not None else []
        if not groups:
            cfg.max_epochs = 1  # nothing to train but the head
        with torch_threads(self.n_threads):
            res = fit_alternating(net, groups, self._data(part(tr), 1), self._data(part(va), 1), heads, cfg,
                                  self._progress("transfer"))
        return TransferredTask(net, res.heads, scaler, self.n_features_in_, self._device, self.n_threads)
