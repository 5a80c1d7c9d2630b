"""The HBI imputation networks, stacked so that many of them train together.

One network per (source, configuration) reads the anchor x0 of every training row:

* encoders E_c, E_p^(s), E_p^(-s): x0 -> R^w (``depth`` layers, hidden width w);
* decoder D: [E_c(x0), E_p(x0)] -> x0, with E_p^(s) on rows of tasks that observe s, E_p^(-s) on
  the others;
* predictor G: E_c(x0) -> x_s.

Networks trained together live in one :class:`HBIStack`: the three encoders of R networks are one
:class:`~hetmtl.nn.StackedMLP` of 3R models, decoders and predictors one of R each, so a layer of
every network is one batched product. Networks of different widths (same depth) may share a stack
by zero padding to the largest width: the padded units start at zero weights and zero biases, receive zero
gradients (nothing reads them and they read nothing), and so stay exactly zero under Adam; a
padded network computes what the compact one computes. Likewise predictors of narrower sources
have padded output columns that the loss ignores. :meth:`HBIStack.pack` and
:meth:`HBIStack.unpack` move networks between the compact (one network, its own width) and the
padded form, so the stacked and the one-at-a-time training start from the same weights.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch

from ..nn import EarlyStopping, EpochStep, StackedMLP, adam, train_epochs
from ._stacks import members_to_keep, retarget_adam, select_models

_ROLES = 3  # shared, private (observer tasks), private (other tasks)
_FRO_EPS = 1e-12  # keeps the gradient of an un-squared norm finite at zero


def _scratch() -> torch.Generator:
    """A private generator for weights that are overwritten at once (the global one stays untouched)."""
    return torch.Generator().manual_seed(0)


def _hidden(width: int, depth: int) -> tuple[int, ...]:
    return (width,) * (depth - 1)


class HBIStack(torch.nn.Module):
    """R HBI networks of one depth, padded to a common width ``max(widths)``.

    Parameters
    ----------
    p_anchor : int
        Width of the anchor x0.
    p_out : int
        Output width of the predictors (the widest source among the R networks).
    depth : int
        Layers of every encoder, of the decoder and of the predictor.
    widths : sequence of int
        Code width w of each network.
    out_widths : sequence of int
        Width of each network's source (at most ``p_out``).
    generator : torch.Generator, optional
        Initial weights (only for a single network; stacks are built with :meth:`pack`).
    """

    def __init__(self, p_anchor: int, p_out: int, depth: int, widths: Sequence[int], out_widths: Sequence[int],
                 generator: torch.Generator | None = None):
        super().__init__()
        self.n_models = len(widths)
        self.p_anchor, self.p_out, self.depth = int(p_anchor), int(p_out), int(depth)
        self.widths = tuple(int(w) for w in widths)
        self.out_widths = tuple(int(p) for p in out_widths)
        W, R = max(self.widths), self.n_models
        self.code_width = W
        hidden = _hidden(W, self.depth)
        # Encoders model-major: network r's roles are models 3r, 3r + 1, 3r + 2.
        self.enc = StackedMLP(_ROLES * R, self.p_anchor, W, hidden, generator=generator)
        self.dec = StackedMLP(R, 2 * W, self.p_anchor, hidden, generator=generator)
        self.pred = StackedMLP(R, W, self.p_out, hidden, generator=generator)

    # -- padding ---------------------------------------------------------------------------------------

    def _index(self, net: str, layer: int, r: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Rows and columns of layer ``layer``'s weight of network ``r`` that its compact form fills."""
        w, W, last = self.widths[r], self.code_width, layer == self.depth - 1
        device = self.device

        def arange(n: int) -> torch.Tensor:
            return torch.arange(n, device=device)

        code = arange(w)
        if net == "enc":
            rows = arange(self.p_anchor) if layer == 0 else code
            return rows, code
        if net == "dec":
            rows = torch.cat([code, W + code]) if layer == 0 else code
            return rows, arange(self.p_anchor) if last else code
        return code, arange(self.out_widths[r]) if last else code

    def _slots(self, net: str, r: int) -> range:
        return range(_ROLES * r, _ROLES * (r + 1)) if net == "enc" else range(r, r + 1)

    @classmethod
    def pack(cls, nets: Sequence["HBIStack"]) -> "HBIStack":
        """One stack holding copies of single networks (each an ``HBIStack`` with R = 1)."""
        out = cls(nets[0].p_anchor, max(n.p_out for n in nets), nets[0].depth,
                  [n.widths[0] for n in nets], [n.out_widths[0] for n in nets], _scratch())
        with torch.no_grad():
            for p in out.parameters():
                p.zero_()
            for r, small in enumerate(nets):
                if small.n_models != 1 or small.depth != out.depth:
                    raise ValueError("nets: expected single networks of one depth")
                out._copy_network(small, r, into_self=True)
        return out

    def unpack(self, r: int) -> "HBIStack":
        """Network ``r`` as a compact single network (on the stack's device)."""
        small = HBIStack(self.p_anchor, self.out_widths[r], self.depth, [self.widths[r]], [self.out_widths[r]],
                         _scratch()).to(self.device)
        with torch.no_grad():
            self._copy_network(small, r, into_self=False)
        return small

    def _copy_network(self, small: "HBIStack", r: int, into_self: bool) -> None:
        for net in ("enc", "dec", "pred"):
            big, little = getattr(self, net), getattr(small, net)
            for l in range(self.depth):
                rows, cols = self._index(net, l, r)
                for k, slot in enumerate(self._slots(net, r)):
                    W, b = big.weights[l][slot], big.biases[l][slot]
                    if into_self:
                        W[rows.unsqueeze(1), cols] = little.weights[l][k]
                        b[cols] = little.biases[l][k]
                    else:
                        little.weights[l][k].copy_(W[rows.unsqueeze(1), cols])
                        little.biases[l][k].copy_(b[cols])

    @property
    def device(self) -> torch.device:
        """Where the weights are."""
        return self.enc.weights[0].device

    # -- evaluation ------------------------------------------------------------------------------------

    def forward(self, x0t: torch.Tensor, observer: torch.Tensor):
        """Codes, reconstruction and prediction of all networks, features first.

        Parameters
        ----------
        x0t : Tensor of shape (p_anchor, N)
            The anchor of every row (transposed).
        observer : BoolTensor of shape (R, 1, N)
            Rows whose task observes network r's source (they use the private encoder E_p^(s)).

        Returns
        -------
        shared, private_s, private_other : Tensor of shape (R, W, N)
        reconstruction : Tensor of shape (R, p_anchor, N)
        prediction : Tensor of shape (R, p_out, N)
        """
        R = self.n_models
        codes = self.enc.forward_t(x0t.expand(_ROLES * R, -1, -1)).view(R, _ROLES, -1, x0t.shape[1])
        shared, priv_s, priv_o = codes[:, 0], codes[:, 1], codes[:, 2]
        private = torch.where(observer, priv_s, priv_o)
        recon = self.dec.forward_t(torch.cat([shared, private], dim=1))
        return shared, priv_s, priv_o, recon, self.pred.forward_t(shared)

    def impute(self, x0t: torch.Tensor) -> torch.Tensor:
        """Predictions G(E_c(x0)) of every network, shape (R, p_out, N)."""
        R = self.n_models
        codes = self.enc.forward_t(x0t.expand(_ROLES * R, -1, -1)).view(R, _ROLES, -1, x0t.shape[1])
        return self.pred.forward_t(codes[:, 0])

    def select(self, models: Sequence[int]) -> "HBIStack":
        """A stack of copies of the listed networks, with the same padded shapes."""
        out = select_models(self, self.n_models, models)
        out.n_models = len(models)
        out.widths = tuple(self.widths[m] for m in models)
        out.out_widths = tuple(self.out_widths[m] for m in models)
        for net in (out.enc, out.dec, out.pred):
            net.n_models = net.n_models // self.n_models * out.n_models
        return out

    def model_views(self) -> list[torch.Tensor]:
        """Every parameter viewed as (R, -1): row r holds network r's values."""
        return [p.view(self.n_models, -1) for p in self.parameters()]


@dataclass(frozen=True)
class StackData:
    """The training data of R networks, features first (rows on the last axis).

    ``observer``, ``fit``, ``other`` and ``val`` are per-network row masks of shape (R, 1, N): rows
    observing the source, its training rows with x_s, rows of tasks that miss it, and its held-out
    rows with x_s. ``target`` (R, p_out, N) holds x_s (0 elsewhere), ``columns`` (R, p_out, 1) marks
    each network's real output columns, ``lam`` (R,) the orthogonality weights.
    """

    x0t: torch.Tensor
    observer: torch.Tensor
    fit: torch.Tensor
    other: torch.Tensor
    val: torch.Tensor
    target: torch.Tensor
    columns: torch.Tensor
    lam: torch.Tensor

    def select(self, models: Sequence[int], p_out: int) -> "StackData":
        idx = torch.as_tensor(list(models), dtype=torch.long, device=self.x0t.device)
        return StackData(self.x0t, self.observer[idx], self.fit[idx], self.other[idx], self.val[idx],
                         self.target[idx, :p_out], self.columns[idx, :p_out], self.lam[idx])


def _count(mask: torch.Tensor) -> torch.Tensor:
    return mask.sum(-1).clamp(min=1)


def _cross_norm(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``|| A' B / n ||_F`` per network over the rows of ``mask`` (un-squared)."""
    cross = torch.bmm(a * mask, b.transpose(1, 2)) / _count(mask).unsqueeze(-1)
    return torch.sqrt(cross.square().sum(dim=(1, 2)) + _FRO_EPS)


def stack_losses(stack: HBIStack, data: StackData) -> tuple[torch.Tensor, torch.Tensor]:
    """Training objective and validation loss of every network, each of shape (R,).

    Objective: mean squared reconstruction error of x0 over the observer rows plus the same over
    the other tasks' rows, mean squared prediction error of x_s on the observer training rows, and
    ``lam`` times the un-squared Frobenius norms of the cross-products of shared and private codes
    in each group, divided by the group's row count (so ``lam`` does not scale with n).
    Validation: mean squared prediction error of x_s on the held-out observer rows.
    """
    shared, priv_s, priv_o, recon, pred = stack(data.x0t, data.observer)
    rec = (recon - data.x0t).square().mean(1, keepdim=True)
    rec_loss = (rec * data.fit).sum(-1) / _count(data.fit) + (rec * data.other).sum(-1) / _count(data.other)
    width = data.columns.sum(1)
    err = ((pred - data.target).square() * data.columns).sum(1, keepdim=True) / width.unsqueeze(-1)
    fit_loss = (err * data.fit).sum(-1) / _count(data.fit)
    val_loss = (err * data.val).sum(-1) / _count(data.val)
    orth = _cross_norm(shared, priv_s, data.fit) + _cross_norm(shared, priv_o, data.other)
    return rec_loss[:, 0] + fit_loss[:, 0] + data.lam * orth, val_loss[:, 0]


@dataclass(frozen=True)
class TrainResult:
    """Per network: best validation loss, epoch of the best state and epochs run."""

    val_loss: np.ndarray
    best_epoch: np.ndarray
    epochs: np.ndarray


class HBIEpochs(EpochStep):
    """Full-batch Adam on a stack of HBI networks as an epoch of :func:`hetmtl.nn.train_epochs`.

    One forward pass gives both the objective and the validation loss of the current weights, so
    an epoch validates first and then steps on the same pass. Finished networks keep training in
    the stack (their best state is frozen) until at most ``shrink`` of the stack is still running;
    the stack is then rebuilt with the running networks only, their Adam moments included, so
    that a long-running network does not make the finished ones cost arithmetic.
    """

    validate_first = True

    def __init__(self, stack: HBIStack, data: StackData, stopper: EarlyStopping, lr: float, shrink: float):
        self.stack, self.data, self.stopper, self.shrink = stack, data, stopper, float(shrink)
        self.live = np.arange(stack.n_models)
        self.opt = adam(stack.parameters(), lr)
        self.objective: torch.Tensor | None = None

    def validation_losses(self) -> np.ndarray:
        self.objective, val = stack_losses(self.stack, self.data)
        return val.detach().cpu().numpy().astype(float)

    def state(self) -> list[torch.Tensor]:
        return self.stack.model_views()

    def train_epoch(self, epoch: int) -> None:
        keep = members_to_keep(self.stopper.active[self.live], self.shrink)
        if keep is not None:
            small = self.stack.select(keep.tolist())
            retarget_adam(self.opt, list(small.parameters()), self.stack.n_models, keep.tolist())
            self.stack, self.data = small, self.data.select(keep.tolist(), self.stack.p_out)
            self.live = self.live[keep]
            self.objective, _ = stack_losses(self.stack, self.data)  # the same values, on the new parameters
        self.opt.zero_grad(set_to_none=True)
        self.objective.sum().backward()
        self.opt.step()


def train_stack(stack: HBIStack, data: StackData, *, lr: float, max_epochs: int, patience: int,
                shrink: float = 0.5, bar: Any = None) -> TrainResult:
    """Full-batch Adam on the sum of the networks' objectives (each network's gradient is its own
    objective's), with early stopping per network (see :class:`HBIEpochs`); leaves every network
    at its best state."""
    stopper = EarlyStopping(stack.n_models, patience=patience)
    record = train_epochs(HBIEpochs(stack, data, stopper, lr, shrink), stopper, max_epochs, bar)
    epochs = np.where(stopper.active, record.last_epoch, stopper.stop_epoch)
    with torch.no_grad():
        for v, best in zip(stack.model_views(), stopper.best_state):
            v.copy_(best)
    return TrainResult(stopper.best_loss, stopper.best_epoch, epochs)
