"""The dual-encoder multi-task regressor."""

from __future__ import annotations

import warnings
from dataclasses import replace
from typing import Any, NamedTuple, Sequence

import numpy as np
import pandas as pd
import torch
from sklearn.utils.validation import check_is_fitted

from .._util.validation import check_choice, check_fraction, check_int, check_int_at_least, check_number
from ..nn import (ORTHOGONALITY_MODES, StackedMLP, TaskLayout, hidden_widths, orthogonality_per_task, torch_generator,
                  torch_threads)
from ._base import SEED_INIT, SEED_SINGLE, TaskRegressor
from .._util.tasks import as_seed_sequence, child_seed, split_rows
from ._data import Prepared, Split, Standardizer, stack_inputs
from ._ensemble import EnsembleMember, ensemble_predict, member_seeds
from ._specific import SpecificEvidence, select_specific
from .alternating import (CENTERS, PENALTIES, AltConfig, DualNet, Heads, fit_alternating, make_data,
                          settle_heads, weighted_val_loss)
from .baselines import SingleTaskMLP
from .negative_transfer import TransferTest, fit_reference, paired_transfer_test
from .transfer import TransferredTask

NEGATIVE_TRANSFER = ("warn", "fallback", "off")
LAM_SCALING = ("sqrt_p_n", "none")
ENCODER_ORDER = ("joint", "alternate")
SPECIFIC_SELECTION = ("test", "validation", "penalty")
#: Level of the paired test that switches a task's specific encoder off (``specific_selection="test"``).
SPECIFIC_TEST_LEVEL = 0.05
LAM_BETA_SEARCH = ("heads", "refit")


class _MemberFit(NamedTuple):
    """What one member's fit chose: its lam_beta, network, options, result and specific evidence."""

    lam_beta: float
    net: DualNet
    cfg: AltConfig
    res: Any
    evidence: SpecificEvidence | None
    path: pd.DataFrame | None


class NegativeTransferWarning(UserWarning):
    """A paired test on validation rows finds a task worse off in the multi-task fit than in a
    single-task fit (see ``DualEncoderMTL(negative_transfer=...)``)."""


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
      small schools), so the value of ``lam_beta_grid`` with the lowest validation loss is kept
      (``lam_beta_``, ``lam_beta_path_``). By default the encoders are trained once and only the
      heads are re-solved per value (``lam_beta_search="heads"``), which was as accurate as a
      whole fit per value at a third of the cost (``docs/studies/dual_encoder``).
    * ``head_ridge=32``: the heads are solved exactly for the current encodings, which lets
      encoders and heads fit the noise of small tasks within a few rounds (training loss near 0,
      early stopping at round 1-10). A ridge fixed in units of rows (its weight falls as
      1 / n_r) slows this down on small tasks and fades on large ones.
    * ``latent_shared=12``: the shared encoding is as wide as that of the :func:`shared_only`
      ablation, so the task-specific encoders come on top of it. With 8 outputs, the full model
      lost to the ablation on tasks of 50 rows: the wider shared encoder carries directions of
      single tasks, learned alongside the others, better than a per-task encoder on 40 rows.
    * ``lam_specific=0`` with ``specific_selection="test"``: the specific heads are ridge fits
      like the shared ones (``head_ridge``), and a task's specific encoder is switched off only
      when a one-sided paired t-test of its per-row squared validation errors (level
      ``SPECIFIC_TEST_LEVEL``) finds the task worse with it than without it. A group lasso on
      alpha_r, at the level ``sqrt(q / n_r)`` of 40-row tasks, zeroed or shrank the heads of
      encoders with a real signal, and choosing on the smaller validation loss of 10 rows
      switched off others at random: 11-28% of the tasks with a strong specific signal lost
      their encoder. The group lasso stays available (``lam_specific > 0``, then with
      ``warmup_rounds`` so that no head is zeroed at the random initial encodings).
    * ``negative_transfer="warn"``: a task is flagged only when a one-sided paired test on its
      validation rows finds the multi-task fit worse than a single-task fit that did not choose
      anything on those rows, with Holm's correction across tasks (``transfer_level``). Comparing
      the two validation losses without a test flagged some task in nearly every fit of alike
      tasks. Falling back to single-task predictions on that decision is an option
      (``"fallback"``), not the default.
    * ``ensemble_size=3``: the model predicts the mean of three fits that differ only in their
      initial weights (same split, same options). On tasks of 50 rows the test RMSE of a single
      fit varied about as much from seed to seed (SD 0.04) as the full model's gain over the
      ``shared_only`` ablation, so one fit could tie or beat the ablation depending on its seed;
      the average removes most of that variance at three times the training cost.

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
        Candidate values of ``lam_beta`` for ``"auto"``.
    lam_beta_search : {"heads", "refit"}
        How ``"auto"`` compares the candidates: ``"heads"`` trains the encoders once, at the first
        value of the grid, and re-solves the heads and their center for each value on those
        encoders (one training run); ``"refit"`` trains a whole model per value, each from the same
        initial encoders.
    lam_alpha : float or None
        Pull of alpha_r toward a learned center, like beta_r (None: the task-specific heads are not
        centered, each encoder keeps its own coordinates).
    lam_specific : float
        Used when ``lam_alpha`` is None: group-lasso shrinkage of alpha_r toward zero, which may
        zero the specific head of a task on its training rows (with ``specific_selection`` other
        than ``"penalty"`` the validation rows have the last word). 0 (default): none, the
        specific heads carry only the ridge ``head_ridge``.
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
        Test every task for negative transfer against a single-task MLP fitted on the same
        training rows (early stopping on an inner split of them, then a refit on all of them, so
        the validation rows choose nothing): a one-sided paired t-test of the per-row squared
        validation errors, Holm-corrected across tasks at ``transfer_level``. ``"warn"``: warn
        about the flagged tasks; ``"fallback"``: also predict them with the single-task fit;
        ``"off"``: skip the single-task fit.
    transfer_tol : float
        Relative margin of the test: a task counts as worse off only when its multi-task MSE
        exceeds ``1 + transfer_tol`` times its single-task MSE (0: any excess).
    transfer_level : float
        Family-wise error rate of the negative-transfer test across tasks, in (0, 1).
    head_ridge : float
        Ridge of the heads in units of rows: task r's heads get ``(head_ridge w_r / (2 n_r))
        ||(alpha_r, beta_r)||^2``, so that on its own rows the head fit is a ridge regression
        with penalty ``head_ridge / 2`` on standardized encodings. It keeps the exactly solved heads
        from fitting noise on small tasks and fades as n_r grows (0: none).
    head_tol : float
        KKT tolerance of the head solver.
    warmup_rounds : int
        Rounds at the start without the penalty on alpha (the heads are ridge fits), followed by
        as many rounds in which it grows linearly to its level: every task-specific encoder
        trains before the penalty may zero its head. 0: the penalty from the start. Only matters
        with ``lam_specific > 0`` (or ``lam_alpha``).
    specific_selection : {"test", "validation", "penalty"}
        Used when ``lam_alpha`` is None. After training, each task's heads are solved with and
        without its specific encoding (the former without the penalty where the penalty zeroed
        alpha_r). ``"test"``: the task keeps its specific encoder unless a one-sided paired
        t-test of the per-row squared validation errors finds it worse with the encoder than
        without (level ``SPECIFIC_TEST_LEVEL`` = 0.05). ``"validation"``: it keeps the encoder
        only when that lowers its validation MSE at all. ``"penalty"``: the specific encoders
        the group lasso left on.
    ensemble_size : int
        Number of fits whose predictions are averaged (at least 1). Member 0 draws its initial
        weights from the model's own streams (an ensemble of one is the single fit), the others
        from child streams; all use the same training and validation rows, so the validation
        rows stay held out for the averaged model.
    device : str
        torch device of the encoders ("cpu" by default).
    n_threads : int or None
        torch threads during fit/predict (None leaves torch's setting).
    verbose : bool
        Show a progress bar during fit, and print :meth:`report` when it ends.
    random_state : None, int or SeedSequence

    Attributes
    ----------
    classes_ : ndarray
        Task labels in the order of the per-task attributes.
    members_ : list of EnsembleMember
        The fitted members (network and heads each); predictions are their mean. The attributes
        of one fit below (heads, centers, ``lam_beta_``, the specific-encoder choices, history,
        ``net_``, the encoder :meth:`transfer` reuses) are those of member 0; the validation MSE
        and the negative-transfer test are those of the averaged predictions.
    member_specific_used_ : ndarray of bool, shape (ensemble_size, R)
        Which tasks keep their specific encoder in each member.
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
        Tasks whose alpha is exactly zero (specific encoder switched off).
    specific_used_ : ndarray of bool, shape (R,)
        Tasks that use their specific encoder (``~specific_off_`` when ``lam_alpha`` is None).
    specific_gain_ : ndarray of shape (R,)
        What each task's specific encoder adds on its validation rows: the validation MSE of the
        task's heads solved without it minus with it (units of y squared; > 0: it helps; for a
        task switched off, what it would have added). NaN without specific encoders or with a
        centered alpha.
    specific_p_value_ : ndarray of shape (R,)
        With ``specific_selection="test"``: one-sided p-value of the paired test that the task
        does worse with its specific encoder (switched off at ``SPECIFIC_TEST_LEVEL``); else NaN.
    head_distances_ : DataFrame (R x R)
        Distances ``||beta_r - beta_s||``, in units of the standardized shared encodings (the
        coordinates the penalty acts in). ``center_distances_`` likewise to the center.
    orthogonality_ : Series
        Mean squared correlation between shared and specific encodings per task (training rows).
    validation_loss_, single_task_validation_loss_ : ndarray of shape (R,)
        Per-task validation MSE of this model (the averaged predictions) and of the single-task
        reference (NaN when ``"off"``).
    transfer_difference_, transfer_p_value_, transfer_p_adjusted_ : ndarray of shape (R,)
        The negative-transfer test per task: mean over validation rows of ``e_mtl^2 - (1 +
        transfer_tol) e_single^2`` (units of y squared), its one-sided p-value and the Holm-adjusted
        p-value (NaN when ``"off"`` or with fewer than two validation rows).
    negative_transfer_, fallback_ : ndarray of bool, shape (R,)
        Tasks flagged by the test (adjusted p-value at most ``transfer_level``), and those
        predicted by the single-task reference (``"fallback"``).
    task_report_ : DataFrame
        The per-task diagnostics in one table (:meth:`report` prints the main columns).
    history_ : DataFrame
        Training and validation loss per round.
    """

    def __init__(self, latent_shared: int = 12, latent_specific: int = 2, hidden: Sequence[int] | int = (32,),
                 lam_beta: float | str = "auto", lam_beta_grid: Sequence[float] = (0.0, 0.3, 1.0),
                 lam_alpha: float | None = None, lam_specific: float = 0.0, gamma: float = 0.1,
                 penalty: str = "l2", center: str = "geomedian", orthogonality: str = "standardized",
                 task_weights: str = "equal", lam_scaling: str = "sqrt_p_n", encoder_steps: int = 5,
                 encoder_order: str = "joint", activation: str = "relu", lr: float = 1e-2,
                 weight_decay: float = 1e-3, max_epochs: int = 200, patience: int = 20,
                 validation_fraction: float = 0.2, standardize: str = "pooled",
                 negative_transfer: str = "warn", transfer_tol: float = 0.0, transfer_level: float = 0.05,
                 head_ridge: float = 32.0,
                 head_tol: float = 1e-7, warmup_rounds: int = 10, specific_selection: str = "test",
                 lam_beta_search: str = "heads", ensemble_size: int = 3,
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
        self.transfer_level = transfer_level
        self.head_ridge = head_ridge
        self.head_tol = head_tol
        self.warmup_rounds = warmup_rounds
        self.specific_selection = specific_selection
        self.lam_beta_search = lam_beta_search
        self.ensemble_size = ensemble_size
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
        check_choice(self.specific_selection, "specific_selection", SPECIFIC_SELECTION)
        check_choice(self.lam_beta_search, "lam_beta_search", LAM_BETA_SEARCH)
        check_int_at_least(self.warmup_rounds, "warmup_rounds", 0)
        check_int_at_least(self.ensemble_size, "ensemble_size", 1)
        check_fraction(self.transfer_level, "transfer_level")
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
            learn_alpha_center=self.lam_alpha is not None, warmup_rounds=int(self.warmup_rounds))

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
        train, val = self._data(prep.train, R), self._data(prep.val, R)
        fits = [self._fit_member(prep, train, val, s) for s in member_seeds(seed, int(self.ensemble_size))]
        first = fits[0]
        self.lam_beta_, self.net_, self.config_ = first.lam_beta, first.net, first.cfg
        self.lam_beta_path_ = first.path
        self._set_heads(first.res.heads, prep.classes)
        self._set_specific(first.evidence, prep)
        self.members_ = [EnsembleMember(f.net, f.res.heads) for f in fits]
        self.member_specific_used_ = np.array([f.evidence.used if f.evidence is not None else np.zeros(R, bool)
                                               for f in fits])
        self.best_epoch_ = first.res.best_epoch
        self.n_epochs_ = first.res.n_epochs
        self.history_ = pd.DataFrame(first.res.history, columns=["epoch", "train_loss", "val_loss"])
        self._diagnose(prep, seed)
        if self.verbose:
            print(self.report())

    def _fit_member(self, prep: Prepared, train, val, seed: np.random.SeedSequence) -> "_MemberFit":
        """One whole fit from the initial weights of ``seed``: the lam_beta search and the choice
        of the specific encoders."""
        R = prep.n_tasks
        p, q = int(self.latent_shared), int(self.latent_specific)
        # Without a shared encoder lam_beta acts on nothing: one fit.
        candidates = self._lam_beta_candidates()[:1 if p == 0 else None]
        best, path = None, []
        trained = None
        for lam in candidates:
            cfg = self._config(prep.train.sizes, update_center=True, lam_beta=lam)
            if trained is None or self.lam_beta_search == "refit":
                # a whole fit, each from the same initial encoders
                net, groups = self._network(R, prep.n_features, seed)
                res = fit_alternating(net, groups, train, val, Heads.zeros(R, q, p), cfg,
                                      self._progress(f"dual encoder (lam_beta={lam:g})"))
                trained = (net, res.heads)
            else:  # the encoders trained at the first value; only heads and center re-solved
                net = trained[0]
                heads = settle_heads(net, train, trained[1], cfg)
                res = replace(res, heads=heads, val_loss=weighted_val_loss(net, heads, val, cfg.loss_weights))
            evidence = self._select_specific(net, train, val, res, cfg)
            path.append({"lam_beta": lam, "val_loss": res.val_loss, "best_epoch": res.best_epoch,
                         "n_fused": int(np.sum(res.heads.fused_beta)),
                         "n_specific_used": int(evidence.used.sum()) if evidence is not None else 0})
            # ties keep the earlier value; a non-finite loss loses to any finite one
            if best is None or res.val_loss < best.res.val_loss or (
                    not np.isfinite(best.res.val_loss) and np.isfinite(res.val_loss)):
                best = _MemberFit(lam, net, cfg, res, evidence, None)
        return best._replace(path=pd.DataFrame(path))

    def _select_specific(self, net: DualNet, train, val, res, cfg: AltConfig) -> SpecificEvidence | None:
        """Validation evidence on each task's specific encoder; unless ``specific_selection=
        "penalty"`` the heads of ``res`` are replaced by the selected ones (and its validation
        loss updated). None when there is no specific encoder or alpha is centered."""
        if net.q == 0 or self.lam_alpha is not None:
            return None
        heads, evidence = select_specific(net, train, val, res.heads, cfg,
                                          apply=self.specific_selection != "penalty",
                                          level=SPECIFIC_TEST_LEVEL if self.specific_selection == "test" else None)
        res.heads = heads
        res.val_loss = weighted_val_loss(net, heads, val, cfg.loss_weights)
        return evidence

    def _set_specific(self, evidence: SpecificEvidence | None, prep: Prepared) -> None:
        R = prep.n_tasks
        y2 = prep.scaler.y_scale ** 2
        self.specific_p_value_ = np.full(R, np.nan)
        if evidence is None:
            self.specific_used_ = np.zeros(R, bool)
            self.specific_gain_ = np.full(R, np.nan)
            return
        self.specific_used_ = evidence.used.copy()
        self.specific_gain_ = evidence.gain * y2
        if evidence.p_value is not None:
            self.specific_p_value_ = evidence.p_value.copy()

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
            pred = ensemble_predict(self._members(), val.X, val.codes, val.layout, val.blocks)
            resid = (pred - val.y).double().cpu().numpy()
            self.validation_loss_ = np.bincount(prep.val.codes, resid ** 2, minlength=R) / prep.val.sizes * y2
            _, _, S_pad, C_pad = self.net_.encode(train.X, train.layout)
            if self.net_.p and self.net_.q:
                orth = orthogonality_per_task(C_pad, S_pad, train.layout.mask, "standardized")
                orth = orth.double().cpu().numpy() / (self.net_.p * self.net_.q)
            else:
                orth = np.zeros(R)
        self.orthogonality_ = pd.Series(orth, index=prep.classes, name="mean squared correlation")
        self._test_transfer(prep, seed, (resid ** 2) * y2)
        self.task_report_ = pd.DataFrame({
            "n_train": prep.train.sizes, "n_val": prep.val.sizes,
            "val_mse": self.validation_loss_, "val_mse_single_task": self.single_task_validation_loss_,
            "transfer_difference": self.transfer_difference_, "transfer_p_value": self.transfer_p_value_,
            "transfer_p_adjusted": self.transfer_p_adjusted_,
            "negative_transfer": self.negative_transfer_, "fallback": self.fallback_,
            "fused": self.fused_, "distance_to_center": self.center_distances_,
            "specific_off": self.specific_off_, "specific_used": self.specific_used_,
            "specific_gain": self.specific_gain_, "specific_p_value": self.specific_p_value_,
            "orthogonality": orth}, index=pd.Index(prep.classes, name="task"))

    def _test_transfer(self, prep: Prepared, seed: np.random.SeedSequence, sq_multi: np.ndarray) -> None:
        """The negative-transfer test of every task (``sq_multi``: this model's squared errors on
        the validation rows, units of y squared); warns or sets up the fallback."""
        R = prep.n_tasks
        y2 = prep.scaler.y_scale ** 2
        self.single_task_validation_loss_ = np.full(R, np.nan)
        self.fallback_ = np.zeros(R, bool)
        self.single_task_model_ = None
        test = TransferTest(*(np.full(R, np.nan) for _ in range(3)), flagged=np.zeros(R, bool))
        if self.negative_transfer != "off":
            single = SingleTaskMLP(
                hidden=(*hidden_widths(self.hidden), int(self.latent_shared) + int(self.latent_specific)),
                activation=self.activation, lr=self.lr, weight_decay=self.weight_decay,
                max_epochs=int(self.max_epochs) * int(self.encoder_steps),
                patience=max(1, int(self.patience) * int(self.encoder_steps) // 2),
                validation_fraction=self.validation_fraction, standardize=self.standardize,
                device=self.device, n_threads=self.n_threads, random_state=child_seed(seed, SEED_SINGLE))
            fit_reference(single, prep, child_seed(seed, SEED_SINGLE))
            self.single_task_validation_loss_ = single.validation_loss_
            with torch.no_grad():
                X, y, codes, _ = self._tensors(prep.val, R)
                sq_single = ((single._predict_std(X, codes) - y).double().cpu().numpy() ** 2) * y2
            test = paired_transfer_test(sq_multi, sq_single, prep.val.codes, R, float(self.transfer_tol),
                                        float(self.transfer_level))
            if self.negative_transfer == "fallback":
                self.fallback_ = test.flagged.copy()
                self.single_task_model_ = single
            elif test.flagged.any():
                bad = prep.classes[test.flagged].tolist()   # plain labels in the message
                warnings.warn(
                    f"negative transfer: task(s) {bad} do worse than a single-task fit (one-sided paired "
                    f"test on validation rows, Holm-adjusted p <= {float(self.transfer_level):g}; see "
                    "task_report_; negative_transfer='fallback' predicts them single-task)",
                    NegativeTransferWarning, stacklevel=5)
        self.transfer_difference_, self.transfer_p_value_ = test.difference, test.p_value
        self.transfer_p_adjusted_ = test.p_adjusted
        self.negative_transfer_ = test.flagged

    def report(self) -> str:
        """The per-task diagnostics as text: validation MSE, whether the task's specific encoder is
        used and what it adds on validation rows, fusion of the shared head, negative transfer.

        Returns
        -------
        str
        """
        check_is_fitted(self, "task_report_")
        rep = self.task_report_
        cols = {"n_train": "n_train", "val_mse": "val MSE", "specific_used": "specific used",
                "specific_gain": "specific adds", "fused": "fused", "val_mse_single_task": "single-task val MSE",
                "transfer_difference": "MSE excess", "transfer_p_adjusted": "p (Holm)",
                "negative_transfer": "negative transfer"}
        table = rep[list(cols)].rename(columns=cols)
        transfer = ["single-task val MSE", "MSE excess", "p (Holm)", "negative transfer"]
        if self.negative_transfer == "off":
            table = table.drop(columns=transfer)
        n_fits = len(self._members())
        fits = f"mean of {n_fits} fits; the first: " if n_fits > 1 else ""
        lines = [f"DualEncoderMTL: {len(rep)} tasks, {fits}lam_beta = {self.lam_beta_:g}, "
                 f"best round {self.best_epoch_} of {self.n_epochs_}",
                 f"specific encoders used by {int(self.specific_used_.sum())} of {len(rep)} tasks "
                 "('specific adds': validation MSE without the task's specific encoder minus with it)",
                 table.to_string(float_format=lambda v: f"{v:.4g}")]
        if self.negative_transfer != "off":
            factor = 1 + float(self.transfer_tol)
            lines.insert(2, "negative transfer: one-sided paired t-test per task of the validation squared errors "
                            f"against a single-task fit ('MSE excess': mean of e_mtl^2 - {factor:g} e_single^2), "
                            f"Holm-adjusted across tasks, flagged at p <= {float(self.transfer_level):g}")
        return "\n".join(lines)

    # ------------------------------------------------------------------ prediction
    def _predict_std(self, X: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        layout = TaskLayout.from_tasks(codes, self.n_tasks_)
        pred = ensemble_predict(self._members(), X, codes, layout)
        if self.fallback_.any():
            rows = torch.as_tensor(self.fallback_, device=X.device)[codes]
            pred = torch.where(rows, self.single_task_model_._predict_std(X, codes), pred)
        return pred

    def _members(self) -> list[EnsembleMember]:
        # fits saved before ensembles existed hold one network and its heads
        return getattr(self, "members_", None) or [EnsembleMember(self.net_, self.heads_)]

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
        tr, va = split_rows(codes, 1, float(self.validation_fraction), child_seed(seed, 0), ["new"])
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
