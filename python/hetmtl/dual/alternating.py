"""The alternating fit of the dual-encoder model: encoder steps (Adam, torch), head steps (the
compiled proximal solver) and center steps (geometric median or mean), with validation early
stopping on whole rounds."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import torch

from ..nn import EarlyStopping, EpochStep, StackedMLP, TaskLayout, task_mse, train_epochs
from ..prox import geometric_median, solve_heads
from ._encoder_step import EncoderStep

CENTERS = ("geomedian", "mean")
PENALTIES = ("l2", "l2sq", "ball")


class DualNet(torch.nn.Module):
    """A shared encoder C (one network) and R task-specific encoders S_r (stacked); either may be
    absent (width 0)."""

    def __init__(self, shared: StackedMLP | None, specific: StackedMLP | None):
        super().__init__()
        self.shared = shared
        self.specific = specific

    @property
    def p(self) -> int:
        return 0 if self.shared is None else self.shared.out_dim

    @property
    def q(self) -> int:
        return 0 if self.specific is None else self.specific.out_dim

    def encode(self, X: torch.Tensor, layout: TaskLayout, blocks: torch.Tensor | None = None):
        """Rows' encodings S (N, q) and C (N, p), and the padded blocks (R, m, q), (R, m, p).
        ``blocks`` may hold ``layout.gather(X)`` computed once (X is fixed during training)."""
        if blocks is None:
            blocks = layout.gather(X)
        if self.specific is None:
            S_pad = X.new_zeros(blocks.shape[:2] + (0,))
        else:
            S_pad = self.specific(blocks)
        S = layout.scatter(S_pad)
        if self.shared is None:
            C = X.new_zeros((X.shape[0], 0))
        else:
            C = self.shared.forward_shared(X)
        return S, C, S_pad, layout.gather(C)


@dataclass
class Heads:
    """Linear heads per task and their centers (standardized scale)."""

    alpha: np.ndarray
    beta: np.ndarray
    intercept: np.ndarray
    alpha_center: np.ndarray
    beta_center: np.ndarray
    fused_alpha: np.ndarray
    fused_beta: np.ndarray
    # Standard deviations of the encodings the penalties were measured in (see head_step).
    alpha_scale: np.ndarray | None = None
    beta_scale: np.ndarray | None = None

    @classmethod
    def zeros(cls, R: int, q: int, p: int) -> "Heads":
        return cls(np.zeros((R, q)), np.zeros((R, p)), np.zeros(R), np.zeros(q), np.zeros(p),
                   np.zeros(R, bool), np.zeros(R, bool), np.ones(q), np.ones(p))

    def tensors(self, device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        f = lambda a: torch.as_tensor(a, dtype=torch.float32, device=device)  # noqa: E731
        return f(self.alpha), f(self.beta), f(self.intercept)


@dataclass
class AltConfig:
    """Options of the alternating fit (already validated)."""

    loss_weights: np.ndarray
    pen_beta: np.ndarray
    pen_alpha: np.ndarray
    penalty_beta: str
    penalty_alpha: str
    center: str
    gamma: float
    orthogonality: str
    encoder_steps: int
    encoder_order: str
    lr: float
    weight_decay: float
    max_epochs: int
    patience: int
    head_tol: float
    head_ridge: float | np.ndarray = 0.0  # per task (R,), or one value for all
    update_center: bool = True
    learn_alpha_center: bool = True
    warmup_rounds: int = 0  # rounds without the penalty on alpha, then as many to ramp it in

    def at_round(self, epoch: int) -> "AltConfig":
        """The options of round ``epoch`` (-1: the initial head solves): the penalty on alpha is
        off for the first ``warmup_rounds`` rounds and grows linearly to its level over as many
        more, so that no task-specific head is zeroed before its encoder has trained."""
        factor = 1.0 if self.warmup_rounds <= 0 else min(1.0, max(0.0, (epoch + 1 - self.warmup_rounds)
                                                                  / self.warmup_rounds))
        if factor == 1.0 or self.penalty_alpha == "none":
            return self
        if factor == 0.0:
            return replace(self, penalty_alpha="none")
        # a radius loosens as the others tighten
        level = self.pen_alpha / factor if self.penalty_alpha == "ball" else self.pen_alpha * factor
        return replace(self, pen_alpha=level)


@dataclass
class Data:
    """Tensors of one split part (rows sorted by task)."""

    X: torch.Tensor
    y: torch.Tensor
    codes: torch.Tensor
    layout: TaskLayout
    sizes: np.ndarray
    y_np: np.ndarray
    blocks: torch.Tensor | None = None  # X gathered into padded task blocks, computed once


@dataclass
class AltResult:
    heads: Heads
    best_epoch: int
    n_epochs: int
    history: list = field(default_factory=list)
    val_loss: float = float("nan")  # weighted validation loss of the returned model


def predict_rows(net: DualNet, heads_t, X: torch.Tensor, codes: torch.Tensor, layout: TaskLayout,
                 blocks: torch.Tensor | None = None):
    """Predictions f_r(x) = alpha_r' S_r(x) + beta_r' C(x) + b_r and the padded encodings."""
    alpha, beta, b = heads_t
    S, C, S_pad, C_pad = net.encode(X, layout, blocks)
    pred = (S * alpha[codes]).sum(1) + (C * beta[codes]).sum(1) + b[codes]
    return pred, S_pad, C_pad, layout.mask


def weighted_center(V: np.ndarray, weights: np.ndarray, method: str) -> np.ndarray:
    """Center of the heads: weighted geometric median (exact for the l2 penalty) or mean."""
    if V.shape[1] == 0:
        return np.zeros(0)
    w = weights if weights.sum() > 0 else np.ones_like(weights)
    if method == "mean":
        return w @ V / w.sum()
    return geometric_median(V, w, tol=1e-9, max_iter=500, warn=False)


def shift_center(S: np.ndarray, C: np.ndarray, y: np.ndarray, sizes: np.ndarray, heads: Heads,
                 cfg: AltConfig) -> Heads:
    """Move the center c of the shared heads with every deviation v_r = beta_r - c held fixed, to
    the exact minimizer of the loss (and ridge) over c.

    In the coordinates (v_r, c) the head problem is a smooth coupling term plus a penalty on the
    v_r alone, so alternating this step with the head step converges to the joint solution. The
    re-centering step (geometric median of the beta_r) alone stalls as soon as every task is
    fused: the median of identical points is that point, whatever the loss prefers.
    """
    p = C.shape[1]
    if p == 0:
        return heads
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    task = np.repeat(np.arange(sizes.size), sizes)
    centered = [a - (np.add.reduceat(a, starts, axis=0) / sizes[:, None])[task] for a in (C, S)]
    Cc, Sc = centered
    yc = y - (np.add.reduceat(y, starts) / sizes)[task]
    v = heads.beta - heads.beta_center
    t = yc - (Sc * heads.alpha[task]).sum(1) - (Cc * v[task]).sum(1)
    omega = (2.0 * cfg.loss_weights / sizes)[task]
    ridge = task_ridge(cfg, sizes.size)
    gram = (Cc * omega[:, None]).T @ Cc + ridge.sum() * np.eye(p)
    rhs = (Cc * omega[:, None]).T @ t - ridge @ v
    try:
        center = np.linalg.solve(gram, rhs)
    except np.linalg.LinAlgError:  # encodings constant on every task: nothing to move
        return heads
    beta = center + v
    means_c = np.add.reduceat(C, starts, axis=0) / sizes[:, None]
    means_s = np.add.reduceat(S, starts, axis=0) / sizes[:, None]
    intercept = np.add.reduceat(y, starts) / sizes - (means_s * heads.alpha).sum(1) - (means_c * beta).sum(1)
    return Heads(heads.alpha, beta, intercept, heads.alpha_center, center, heads.fused_alpha, heads.fused_beta,
                 heads.alpha_scale, heads.beta_scale)


def task_ridge(cfg: AltConfig, n_tasks: int) -> np.ndarray:
    """The ridge level of every task's heads, shape (R,)."""
    return np.broadcast_to(np.asarray(cfg.head_ridge, dtype=float), (n_tasks,))


def solve_task_heads(S: np.ndarray, C: np.ndarray, y: np.ndarray, sizes: np.ndarray, heads: Heads,
                     cfg: AltConfig, max_iter: int = 2000) -> Heads:
    """Every task's heads for fixed encodings and centers (warm started at ``heads``)."""
    fit = solve_heads(S, C, y, sizes, loss_weights=cfg.loss_weights, pen_beta=cfg.pen_beta,
                      pen_alpha=cfg.pen_alpha,
                      beta_center=heads.beta_center, alpha_center=heads.alpha_center,
                      alpha0=heads.alpha, beta0=heads.beta, penalty_beta=cfg.penalty_beta,
                      penalty_alpha=cfg.penalty_alpha, tol=cfg.head_tol, max_iter=max_iter,
                      ridge=task_ridge(cfg, sizes.size), warn=False)
    return Heads(fit.alpha, fit.beta, fit.intercept, heads.alpha_center, heads.beta_center,
                 fit.fused_alpha, fit.fused_beta)


def column_scale(A: np.ndarray) -> np.ndarray:
    sd = A.std(axis=0) if A.shape[0] else np.ones(A.shape[1])
    return np.where(sd > 1e-8, sd, 1.0)


def rescale_heads(heads: Heads, sa: np.ndarray, sb: np.ndarray) -> Heads:
    """Heads in the coordinates of encodings divided by (sa, sb) (multiply by 1/sa, 1/sb to undo)."""
    return Heads(heads.alpha * sa, heads.beta * sb, heads.intercept, heads.alpha_center * sa,
                 heads.beta_center * sb, heads.fused_alpha, heads.fused_beta, heads.alpha_scale,
                 heads.beta_scale)


def head_step(net: DualNet, data: Data, heads: Heads, cfg: AltConfig, update_center: bool) -> Heads:
    """Solve every task's head given the encoders and the center; then, optionally, move the
    center: first with the deviations fixed (:func:`shift_center`), then to the weighted
    geometric median (or mean) of the heads. Each is an exact block minimization of the same
    objective, so none increases it.

    The head problem is posed on encodings scaled to unit standard deviation (over all training
    rows), so that the penalties act on standardized coefficients: the encoders cannot dodge the
    pull toward the center by growing their outputs, nor get stuck fused by starting small.
    """
    with torch.no_grad():
        S_t, C_t, _, _ = net.encode(data.X, data.layout, data.blocks)
    S, C = S_t.double().cpu().numpy(), C_t.double().cpu().numpy()
    sa, sb = column_scale(S), column_scale(C)
    S, C = S / sa, C / sb
    heads = rescale_heads(heads, sa, sb)
    new = solve_task_heads(S, C, data.y_np, data.sizes, heads, cfg)
    if update_center:
        new = shift_center(S, C, data.y_np, data.sizes, new, cfg)
        new.beta_center = weighted_center(new.beta, cfg.pen_beta, cfg.center)
        if cfg.penalty_alpha != "none" and cfg.learn_alpha_center:
            new.alpha_center = weighted_center(new.alpha, cfg.pen_alpha, cfg.center)
    out = rescale_heads(new, 1.0 / sa, 1.0 / sb)
    out.alpha_scale, out.beta_scale = sa, sb
    return out


def _val_mse(net: DualNet, heads: Heads, data: Data, n_tasks: int) -> np.ndarray:
    with torch.no_grad():
        pred, *_ = predict_rows(net, heads.tensors(data.X.device), data.X, data.codes, data.layout, data.blocks)
        return task_mse(pred - data.y, data.codes, n_tasks).double().cpu().numpy()


def encoder_step(net: DualNet, groups: list[list[torch.nn.Parameter]], train: Data,
                 cfg: AltConfig) -> EncoderStep:
    """The encoder step (a) of the alternating fit on the training rows."""
    w_t = torch.as_tensor(cfg.loss_weights, dtype=train.X.dtype, device=train.X.device)
    return EncoderStep(net, groups, train.X, train.y, train.layout, w_t, cfg.gamma, cfg.orthogonality,
                       cfg.lr, cfg.weight_decay)


class AlternatingStep(EpochStep):
    """One round of the alternating fit as an epoch of :func:`hetmtl.nn.train_epochs`: Adam steps
    on the encoders (all groups, or one group per round with ``encoder_order="alternate"``), then
    an exact solve of every head (and, optionally, of the center); validated on the held-out rows."""

    def __init__(self, net: DualNet, groups: list[list[torch.nn.Parameter]], train: Data, val: Data,
                 heads: Heads, cfg: AltConfig):
        self.net, self.train, self.val, self.heads, self.cfg = net, train, val, heads, cfg
        self.encoders = encoder_step(net, groups, train, cfg)
        self.n_groups = len(self.encoders.groups)

    def train_epoch(self, epoch: int) -> float:
        cfg = self.cfg
        group = epoch % self.n_groups if cfg.encoder_order == "alternate" and self.n_groups else None
        heads_t = self.heads.tensors(self.train.X.device)
        loss = None
        # No trainable encoder (a transferred task without its own encoder): heads only.
        with self.encoders.only(group):
            for _ in range(int(cfg.encoder_steps) if self.n_groups else 0):
                loss = self.encoders(heads_t, group)
        self.heads = head_step(self.net, self.train, self.heads, cfg.at_round(epoch), cfg.update_center)
        return float("nan") if loss is None else float(loss)

    def validation_losses(self) -> np.ndarray:
        return np.array([weighted_val_loss(self.net, self.heads, self.val, self.cfg.loss_weights)])

    def state(self) -> dict:
        return {"net": self.net.state_dict(), "heads": self.heads}


def weighted_val_loss(net: DualNet, heads: Heads, val: Data, weights: np.ndarray) -> float:
    """The task-weighted mean of the validation MSEs."""
    return float(weights @ _val_mse(net, heads, val, weights.size) / weights.sum())


def settle_heads(net: DualNet, train: Data, heads: Heads, cfg: AltConfig) -> Heads:
    """Heads and center for fixed encoders: a few head and center steps (when the center is
    learned), then the heads for the last center."""
    for _ in range(3 if cfg.update_center else 0):
        heads = head_step(net, train, heads, cfg, True)
    return head_step(net, train, heads, cfg, False)


def fit_alternating(net: DualNet, groups: list[list[torch.nn.Parameter]], train: Data, val: Data,
                    heads: Heads, cfg: AltConfig, bar) -> AltResult:
    """Run the alternating fit; ``net`` ends at the best validation round and the returned heads
    are re-solved (to the KKT tolerance) for those encoders and centers."""
    heads = settle_heads(net, train, heads, cfg.at_round(-1))
    step = AlternatingStep(net, groups, train, val, heads, cfg)
    stopper = EarlyStopping(patience=cfg.patience)
    record = train_epochs(step, stopper, cfg.max_epochs, bar)
    net.load_state_dict(stopper.best_state["net"])
    heads = head_step(net, train, stopper.best_state["heads"], cfg, False)
    history = [{"epoch": e, "train_loss": t, "val_loss": float(v[0])}
               for e, (t, v) in enumerate(zip(record.train_loss, record.val_loss))]
    return AltResult(heads=heads, best_epoch=int(stopper.best_epoch[0]), n_epochs=record.n_epochs, history=history,
                     val_loss=weighted_val_loss(net, heads, val, cfg.loss_weights))


def make_data(X: torch.Tensor, y: torch.Tensor, codes: torch.Tensor, n_tasks: int, sizes: np.ndarray,
              y_np: np.ndarray) -> Data:
    layout = TaskLayout.from_tasks(codes, n_tasks)
    return Data(X, y, codes, layout, np.asarray(sizes, dtype=np.int64),
                np.ascontiguousarray(y_np, dtype=np.float64), layout.gather(X))


__all__ = ["AltConfig", "AlternatingStep", "CENTERS", "DualNet", "Heads", "PENALTIES", "column_scale", "encoder_step",
           "fit_alternating", "head_step", "make_data", "predict_rows", "rescale_heads", "settle_heads",
           "solve_task_heads", "task_ridge", "weighted_center", "weighted_val_loss"]
