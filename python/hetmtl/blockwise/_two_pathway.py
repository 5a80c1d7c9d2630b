"""The two-pathway network, stacked over G configurations and T tasks, and its regularizers.

Streams are features first (as :meth:`hetmtl.nn.StackedMLP.forward_t`) in one of two layouts:
the shared layout (G, width, T m), one block per configuration with the rows of all tasks side by
side, and the task layout (G T, width, m), one block per configuration and task. For
configuration g:

* shared encoder f_c = E_c(x_0), one network per configuration (``StackedMLP`` with R = G);
* task encoders f_p^t = E_p^t(x), one per configuration and task (R = G T), reading the completed
  vector (or, without imputation, the task's observed columns only: the others are zero);
* shared head psi_c on the shared stream (``"paper"``) or with [f_p, f_c] in its first layer
  (``"code"``), and task heads psi_p^t reading their own stream and, layer by layer, the shared
  stream; the prediction is psi_c + psi_p^t.

The shared encoder reads the anchor (the paper) or, with a :class:`SharedInput`, the completed row:
every column, the imputed entries of source s scaled by a learned gate g_s in (0, 1) (one per
configuration and source), followed by one indicator per imputed source (1 where the task's block
is imputed). Observed and imputed values of a source then go through the same first-layer weights,
so the link between a source and the response is learned from every task that observes it.

Configurations of one depth but different widths can share one stack: a narrower configuration sits
in the leading block of the widest one with exact zeros elsewhere. With an activation that maps 0
to 0 (relu, tanh, gelu), no bias and no incoming or outgoing weight of a padded unit ever gets a
non-zero gradient (from the loss or any regularizer), and Adam leaves a weight whose gradient is
always zero unchanged, so each configuration trains as it would alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch

from ..nn import ACTIVATIONS, StackedMLP
from ._stacks import select_models

SHARED_HEADS = ("paper", "code")
ORTH_SCALES = ("mean", "sum")

# Initial gate on imputed inputs, sigmoid(GATE_INIT) = 0.8: imputations start mostly trusted.
GATE_INIT = math.log(4.0)


@dataclass(frozen=True)
class SharedInput:
    """What a shared encoder on the completed row reads (see the module docstring).

    Attributes
    ----------
    imputed : Tensor of shape (T, p_in)
        1 where task t's column is imputed.
    gate_of : LongTensor of shape (p_in,)
        The gate of each column's source (any index for a column never imputed).
    n_gates : int
        Imputed sources (one gate each; 0: no gate).
    indicators : Tensor of shape (T, n_gates)
        1 where task t's block of that source is imputed (the extra inputs).
    """

    imputed: torch.Tensor
    gate_of: torch.Tensor
    n_gates: int
    indicators: torch.Tensor

    @property
    def width(self) -> int:
        return int(self.imputed.shape[1]) + int(self.indicators.shape[1])


@dataclass(frozen=True)
class NetSpec:
    """Shapes common to the configurations of one stack."""

    n_tasks: int
    p_anchor: int
    p_in: int
    n_layers: int
    head_layers: int
    shared_head: str
    activation: str


def _uniform(shape: tuple[int, ...], fan_in: int, gen: torch.Generator) -> torch.Tensor:
    bound = 1.0 / math.sqrt(max(fan_in, 1))
    return (torch.rand(shape, generator=gen) * 2 - 1) * bound


def _param(shape: tuple[int, ...]) -> torch.nn.Parameter:
    return torch.nn.Parameter(torch.zeros(shape))


class TwoPathwayNet(torch.nn.Module):
    """G two-pathway networks of one depth (widths ``widths``) for T tasks.

    Parameters
    ----------
    spec : NetSpec
    widths : sequence of int
        Width d_g of every configuration (encodings and hidden layers).
    generators : sequence of torch.Generator
        One per configuration: its initial weights depend on nothing else.
    anchor_cols : LongTensor
        Positions of the anchor's columns in the input.
    input_mask : Tensor of shape (T, p_in)
        1 where task t's encoder reads a column (0: its first-layer weights stay zero).
    imputed_mask : Tensor of shape (T, p_in)
        1 on the columns of blocks imputed for task t (the support of R_imp).
    shared_input : SharedInput, optional
        The shared encoder reads the completed row (then ``spec.p_anchor`` is its
        ``width`` and ``anchor_cols`` is ignored); None: the anchor's columns only.
    """

    # Networks saved before the task encoders' inputs were compacted read every column, masked.
    compact_inputs = False

    def __init__(self, spec: NetSpec, widths: Sequence[int], generators: Sequence[torch.Generator],
                 anchor_cols: torch.Tensor, input_mask: torch.Tensor, imputed_mask: torch.Tensor,
                 shared_input: SharedInput | None = None):
        super().__init__()
        self.spec = spec
        self._set_shared_input(shared_input, len(widths))
        self.widths = tuple(int(w) for w in widths)
        G, T, L, H = len(self.widths), spec.n_tasks, spec.n_layers, spec.head_layers
        D = max(self.widths)
        self.register_buffer("anchor_cols", anchor_cols.long())
        self._set_task_columns(input_mask > 0, imputed_mask > 0)
        p_task = int(self.input_mask.shape[1])
        # Built with a throwaway generator (the global one stays untouched) and zeroed: every
        # configuration's weights are drawn below into their slots, the padding stays exactly 0.
        scratch = torch.Generator().manual_seed(0)
        self.shared_enc = StackedMLP(G, spec.p_anchor, D, (D,) * (L - 1), spec.activation, generator=scratch)
        self.task_enc = StackedMLP(G * T, p_task, D, (D,) * (L - 1), spec.activation, generator=scratch)
        # Head weights are stored (fan_out, fan_in), the orientation of the products on
        # features-first streams: their gradients then come out in the parameters' own layout.
        head_out = [D] * (H - 1) + [1]
        head_in = [D] + head_out[:-1]
        c_in0 = 2 * D if spec.shared_head == "code" else D
        self.A = torch.nn.ParameterList([_param((G, 1, head_out[l], c_in0 if l == 0 else head_in[l])) for l in range(H)])
        self.a = torch.nn.ParameterList([_param((G, 1, head_out[l], 1)) for l in range(H)])
        self.W = torch.nn.ParameterList([_param((G, T, head_out[l], head_in[l])) for l in range(H)])
        self.B = torch.nn.ParameterList([_param((G, T, head_out[l], head_in[l])) for l in range(H)])
        self.c = torch.nn.ParameterList([_param((G, T, head_out[l], 1)) for l in range(H)])
        with torch.no_grad():
            for p in [*self.shared_enc.parameters(), *self.task_enc.parameters()]:
                p.zero_()
            for g, (d, gen) in enumerate(zip(self.widths, generators)):
                self._init_config(g, d, gen)

    # -- initialization ---------------------------------------------------------------------------

    def _set_task_columns(self, read: torch.Tensor, imputed: torch.Tensor) -> None:
        """The task encoders' inputs: each task's read columns, in order, padded to the widest
        task with a column of zeros (position p_in of the input with a zero column appended).

        Columns a task does not read would only ever meet first-layer weights fixed at zero, so
        they are left out of the product instead (with the shared architecture a task encoder
        reads one source of many). ``input_mask`` (T, p_task) marks the real entries;
        ``imputed_rows`` lists the first-layer rows, (task, entry) flattened, that read imputed
        columns."""
        T, p = read.shape
        n_read = read.sum(1)
        p_task = max(int(n_read.max()), 1)
        order = torch.argsort((~read).to(torch.int8), dim=1, stable=True)[:, :p_task]  # read columns first
        valid = torch.arange(p_task).unsqueeze(0) < n_read.unsqueeze(1)
        self.compact_inputs = not bool(read.all())
        self.register_buffer("input_mask", valid.float())
        self.register_buffer("task_cols", torch.where(valid, order, torch.full_like(order, p)))
        self.register_buffer("input_rows", (torch.arange(T).unsqueeze(1) * (p + 1) + self.task_cols).flatten())
        read_imputed = torch.gather(imputed, 1, order) & valid
        self.register_buffer("imputed_rows", torch.nonzero(read_imputed.reshape(-1)).flatten())

    def _set_shared_input(self, shared: SharedInput | None, n_configs: int) -> None:
        self.reads_row = shared is not None
        self.n_gates = 0 if shared is None else int(shared.n_gates)
        if shared is None:
            return
        self.register_buffer("imputed", shared.imputed.float())
        self.register_buffer("gate_of", shared.gate_of.long())
        self.register_buffer("indicators", shared.indicators.float())
        self.register_buffer("gated_cols", torch.nonzero(shared.imputed.amax(0) > 0).flatten())
        if self.n_gates:
            self.gate_logit = torch.nn.Parameter(torch.full((n_configs, self.n_gates), GATE_INIT))

    def _init_config(self, g: int, d: int, gen: torch.Generator) -> None:
        """Draw configuration g's weights (true width d, torch.nn.Linear's bounds) into its slots."""
        spec, T = self.spec, self.spec.n_tasks
        rows = slice(g * T, (g + 1) * T)

        def mlp(net: StackedMLP, sel, n: int, in_dim: int, first_rows=None) -> None:
            fan_in = in_dim
            for l, (w, b) in enumerate(zip(net.weights, net.biases)):
                draw = _uniform((n, fan_in, d), fan_in, gen)
                if l == 0 and first_rows is not None:
                    draw = first_rows(draw)
                w[sel, :draw.shape[1], :d] = draw
                b[sel, :d] = _uniform((n, d), fan_in, gen)
                fan_in = d

        mlp(self.shared_enc, slice(g, g + 1), 1, spec.p_anchor)
        # Drawn for every column, so that the draws and the fan-in do not depend on what a task
        # reads; then the columns read are kept, in the encoder's input order.
        mlp(self.task_enc, rows, T, spec.p_in, self._task_input_rows)
        H = spec.head_layers
        for l in range(H):
            out = 1 if l == H - 1 else d
            if l == 0 and spec.shared_head == "code":  # [f_p, f_c] in the padded layout [D, D]
                D = self.A[0].shape[3] // 2
                draw = _uniform((out, 2 * d), 2 * d, gen)
                self.A[0][g, 0, :out, :d] = draw[:, :d]
                self.A[0][g, 0, :out, D:D + d] = draw[:, d:]
                self.a[0][g, 0, :out, 0] = _uniform((out,), 2 * d, gen)
            else:
                self.A[l][g, 0, :out, :d] = _uniform((out, d), d, gen)
                self.a[l][g, 0, :out, 0] = _uniform((out,), d, gen)
            # The task head's first layer reads [own stream, shared stream]: fan-in 2d.
            self.W[l][g, :, :out, :d] = _uniform((T, out, d), 2 * d, gen)
            self.B[l][g, :, :out, :d] = _uniform((T, out, d), 2 * d, gen)
            self.c[l][g, :, :out, 0] = _uniform((T, out), 2 * d, gen)

    def _task_input_rows(self, w: torch.Tensor) -> torch.Tensor:
        """First-layer rows (T, p_in, k) of the task encoders over every column, to their input
        order (T, p_task, k): the columns read, then zeros."""
        if not self.compact_inputs:
            return w * self.input_mask.unsqueeze(-1)
        T, p, k = w.shape
        padded = torch.cat([w, w.new_zeros(T, 1, k)], 1).reshape(T * (p + 1), k)
        return padded.index_select(0, self.input_rows).view(T, -1, k)

    def task_input_weights(self) -> torch.Tensor:
        """The task encoders' first-layer weights over every input column, (G T, p_in, D), zero on
        the columns a task does not read (the stored weight holds only the columns read)."""
        w = self.task_enc.weights[0]
        if not self.compact_inputs:
            return w
        GT, _, D = w.shape
        idx = self.task_cols.repeat(GT // self.spec.n_tasks, 1).unsqueeze(-1).expand(-1, -1, D)
        return w.new_zeros(GT, self.spec.p_in + 1, D).scatter(1, idx, w)[:, :-1]

    @property
    def n_configs(self) -> int:
        return len(self.widths)

    # -- forward ------------------------------------------------------------------------------------

    def encode(self, x_t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Codes of per-task blocks ``x_t`` (T, p_in, m): shared codes in the shared layout
        (G, D, T m) (rows task by task) and task codes in the task layout (G T, D, m)."""
        G, (T, _, m) = self.n_configs, x_t.shape
        act = ACTIVATIONS[self.spec.activation]
        if self.reads_row:
            x0 = self._completed_input(x_t)
        else:
            x0 = x_t.index_select(1, self.anchor_cols).transpose(0, 1).reshape(1, -1, T * m).expand(G, -1, -1)
        f_c = act(self.shared_enc.forward_t(x0))
        xx = self._task_input_rows(x_t)
        xx = xx.unsqueeze(0).expand(G, -1, -1, -1).reshape(G * T, -1, m)
        return f_c, act(self.task_enc.forward_t(xx))

    def gates(self) -> torch.Tensor:
        """The gates on imputed inputs, (G, n_gates)."""
        return torch.sigmoid(self.gate_logit)

    def _completed_input(self, x_t: torch.Tensor) -> torch.Tensor:
        """The shared encoder's input (G, p_in + n_gates, T m): the completed row, imputed entries
        scaled by their source's gate, then the indicators of imputed sources."""
        G, (T, _, m) = self.n_configs, x_t.shape
        x = x_t.unsqueeze(0)
        if self.n_gates:  # scale (G, T, p): 1 on observed entries, g_s on imputed ones
            scale = 1 - self.imputed * (1 - self.gates()[:, self.gate_of].unsqueeze(1))
            x = x * scale.unsqueeze(-1)
        else:
            x = x.expand(G, -1, -1, -1)
        ind = self.indicators.view(1, T, -1, 1).expand(G, -1, -1, m)
        return torch.cat([x, ind], dim=2).transpose(1, 2).reshape(G, -1, T * m)

    def _per_task(self, s: torch.Tensor) -> torch.Tensor:
        """Shared layout (G, k, T m) to task layout (G T, k, m) (a copy of activations only)."""
        G, k, _ = s.shape
        T = self.spec.n_tasks
        return s.view(G, k, T, -1).transpose(1, 2).reshape(G * T, k, -1)

    def _shared_layout(self, s: torch.Tensor) -> torch.Tensor:
        """Task layout (G T, k, m) to shared layout (G, k, T m)."""
        GT, k, m = s.shape
        T = self.spec.n_tasks
        return s.view(GT // T, T, k, m).transpose(1, 2).reshape(GT // T, k, T * m)

    def heads(self, f_c: torch.Tensor, f_p: torch.Tensor) -> torch.Tensor:
        """Predictions (G, T, m) from the codes of :meth:`encode`.

        Weights are only ever viewed, never broadcast: the shared head runs in the shared layout,
        the task heads in the task layout, and the shared stream is copied into the latter."""
        act = ACTIVATIONS[self.spec.activation]
        G, T = self.n_configs, self.spec.n_tasks
        sc, sp = f_c, f_p
        H = self.spec.head_layers
        for l in range(H):
            A = self.A[l][:, 0]
            if l == 0 and self.spec.shared_head == "code":
                D = A.shape[2] // 2
                new_c = torch.baddbmm(self.a[l][:, 0], A[:, :, D:], sc)
                new_c = torch.baddbmm(new_c, A[:, :, :D], self._shared_layout(f_p))
            else:
                new_c = torch.baddbmm(self.a[l][:, 0], A, sc)
            k_out, k_in = self.W[l].shape[2:]
            new_p = torch.baddbmm(self.c[l].view(G * T, k_out, 1), self.W[l].view(G * T, k_out, k_in), sp)
            new_p = torch.baddbmm(new_p, self.B[l].view(G * T, k_out, k_in), self._per_task(sc))
            if l < H - 1:
                new_c, new_p = act(new_c), act(new_p)
            sc, sp = new_c, new_p
        return (self._per_task(sc) + sp).view(G, T, -1)

    def forward(self, x_t: torch.Tensor) -> torch.Tensor:
        """Predictions (G, T, m) of per-task blocks ``x_t`` (T, p_in, m)."""
        return self.heads(*self.encode(x_t))

    # -- regularizers (each (G,): one value per configuration) ---------------------------------------

    def orthogonality(self, f_c: torch.Tensor, f_p: torch.Tensor, scale: str = "mean") -> torch.Tensor:
        """R_orth on the codes of :meth:`encode`: ``sum_t ||F_c^t' F_p^t||_F^2`` (``scale="sum"``)
        or, with ``"mean"``, ``sum_t ||F_c^t' F_p^t / m||_F^2 / d^2``, the mean squared entry of the
        codes' cross-moment matrix over m rows and a true width d (independent of batch size and
        width).

        With m rows and width D, ``||F_c' F_p||_F^2 = sum(K_c * K_p)`` for the row Gram matrices
        ``K = F F'`` (m x m): far cheaper than the D x D product when batches are small."""
        G = self.n_configs
        fc = self._per_task(f_c)
        gram_c = torch.bmm(fc.transpose(1, 2), fc)
        gram_p = torch.bmm(f_p.transpose(1, 2), f_p)
        total = (gram_c * gram_p).view(G, -1).sum(1)
        if scale not in ORTH_SCALES:
            raise ValueError(f"scale: must be one of {ORTH_SCALES}, got {scale!r}")
        if scale == "sum":
            return total
        d = torch.tensor(self.widths, dtype=total.dtype, device=total.device)
        return total / (f_p.shape[-1] * d) ** 2

    def imputation_penalty(self) -> torch.Tensor:
        """R_imp = sum_t ||first-layer weights of E_p^t on the columns imputed for t||_F^2; with a
        shared encoder on the completed row, also sum_s g_s^2 ||its first-layer weights on source
        s||_F^2, the weight it puts on imputed values of s."""
        total = self._task_imputation_penalty()
        if self.n_gates:  # squared first-layer weights of the gated columns, summed per source
            per_col = self.shared_enc.weights[0].index_select(1, self.gated_cols).square().sum(-1)
            per_gate = per_col.new_zeros(self.n_configs, self.n_gates).index_add_(1, self.gate_of[self.gated_cols], per_col)
            total = total + (self.gates().square() * per_gate).sum(1)
        return total

    def _task_imputation_penalty(self) -> torch.Tensor:
        G = self.n_configs
        w = self.task_enc.weights[0]
        if self.imputed_rows.numel() == 0:
            return w.new_zeros(G)
        rows = w.view(G, -1, w.shape[-1]).index_select(1, self.imputed_rows)
        return rows.square().sum(dim=(1, 2))

    def squared_norm(self) -> torch.Tensor:
        """Sum of squared weights and biases of each configuration, (G,) (the gates left out): the
        L2 penalty of a per-configuration weight decay (its gradient is zero on padded units,
        which therefore stay zero)."""
        G, total = self.n_configs, 0
        for name, p in self.named_parameters():
            if name != "gate_logit":
                total = total + p.view(G, -1).square().sum(1)
        return total

    def decorrelation(self) -> torch.Tensor:
        """R_dr = sum_l ||(sum_t B_l^t) A_l'||_F^2 (the output layer gives ((sum_t b^t)' a)^2), with
        A_l restricted to the columns that read the shared stream (the f_c half of the code
        variant's first layer)."""
        total = 0
        for l in range(self.spec.head_layers):
            A = self.A[l][:, 0]
            if l == 0 and self.spec.shared_head == "code":
                A = A[:, :, A.shape[2] // 2:]
            total = total + torch.bmm(self.B[l].sum(1), A.transpose(1, 2)).square().sum(dim=(1, 2))
        return total

    def select(self, g: int) -> "TwoPathwayNet":
        """A copy holding configuration ``g`` only."""
        return self.select_configs([g])

    def select_configs(self, keep: Sequence[int]) -> "TwoPathwayNet":
        """A copy holding the configurations ``keep`` (in that order), padded as in this stack."""
        G, T = self.n_configs, self.spec.n_tasks
        out = select_models(self, G, keep)
        out.widths = tuple(self.widths[g] for g in keep)
        out.shared_enc.n_models = len(keep)
        out.task_enc.n_models = len(keep) * T
        return out
