"""Stacked MLPs: R networks of the same shape evaluated together with batched matrix products."""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch

from .._util.validation import check_int_at_least

ACTIVATIONS = {"relu": torch.relu, "tanh": torch.tanh, "gelu": torch.nn.functional.gelu}
# In place on a layer's fresh output (the product's gradient does not need it): one buffer less.
_IN_PLACE = {"relu": torch.relu_, "tanh": torch.tanh_, "gelu": torch.nn.functional.gelu}
# Below this many outputs a weight gradient is computed as (fan_out, fan_in) and transposed: BLAS
# kernels can be several times slower when a product's output has only a few columns.
_NARROW = 8
# Stacked weights of at least this many entries go through _StackedLayer; below it the transposing
# copy costs less than the Python calls of a custom autograd function (a few dozen microseconds).
_OWN_BACKWARD_MIN = 1 << 16


class _StackedLayer(torch.autograd.Function):
    """``b + W' h`` on features-first blocks, for weights stored (R, fan_in, fan_out).

    Autograd's own backward of ``baddbmm(b, W', h)`` gives the weight gradient as (fan_out,
    fan_in) and then copies it, transposed, into the parameter's layout (a strided copy of every
    weight, every step); here it comes out in that layout from one product."""

    @staticmethod
    def forward(ctx, h: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(h, w)
        return torch.baddbmm(b.unsqueeze(-1), w.transpose(1, 2), h)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        h, w = ctx.saved_tensors
        grad_h = torch.bmm(w, grad) if ctx.needs_input_grad[0] else None
        grad_w = grad_b = None
        if ctx.needs_input_grad[1]:
            if w.shape[2] < _NARROW:
                grad_w = torch.bmm(grad, h.transpose(1, 2)).transpose(1, 2).contiguous()
            else:
                grad_w = torch.bmm(h, grad.transpose(1, 2))
        if ctx.needs_input_grad[2]:
            grad_b = grad.sum(-1)
        return grad_h, grad_w, grad_b


def hidden_widths(hidden: int | Sequence[int], n_layers: int = 1, name: str = "hidden") -> tuple[int, ...]:
    """The hidden widths an estimator's ``hidden`` option stands for: a sequence gives one width per
    hidden layer (empty: no hidden layer), a number ``w`` gives ``n_layers`` layers of width ``w``.
    Widths are whole numbers of at least 1 (the package's shared check: 32.0 is 32).

    Parameters
    ----------
    hidden : int or sequence of int
        The estimator's option.
    n_layers : int, default 1
        Number of layers when ``hidden`` is a number.
    name : str, default "hidden"
        The option's name, for error messages.

    Returns
    -------
    tuple of int
    """
    try:
        widths = (hidden,) * int(n_layers) if np.ndim(hidden) == 0 else tuple(hidden)
        return tuple(check_int_at_least(w, name) for w in widths)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: widths must be positive ints, got {hidden!r}") from None


class StackedMLP(torch.nn.Module):
    """R independent MLPs ``in_dim -> hidden... -> out_dim`` with stacked weights.

    Layer l holds a weight of shape ``(R, fan_in, fan_out)`` and a bias ``(R, fan_out)``; the
    forward pass on a padded block ``(R, m, in_dim)`` is one ``baddbmm`` per layer, so no Python
    loop over the R networks (training code passes blocks features first, :meth:`forward_t`).
    ``R = 1`` is an ordinary MLP (use :meth:`forward_rows` with a one-task layout, or
    :meth:`forward_shared` on plain rows).

    Parameters
    ----------
    n_models : int
        R, the number of networks.
    in_dim, out_dim : int
        Input and output widths.
    hidden : sequence of int
        Hidden widths (empty: a linear map).
    activation : {"relu", "tanh", "gelu"}
        Between layers (none after the last).
    generator : torch.Generator, optional
        Source of the initial weights (uniform(-1/sqrt(fan_in), 1/sqrt(fan_in)) as torch.nn.Linear).
    dtype : torch.dtype
    """

    def __init__(self, n_models: int, in_dim: int, out_dim: int, hidden: Sequence[int] = (),
                 activation: str = "relu", generator: torch.Generator | None = None,
                 dtype: torch.dtype = torch.float32):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation: must be one of {tuple(ACTIVATIONS)}, got {activation!r}")
        self.n_models, self.in_dim, self.out_dim = int(n_models), int(in_dim), int(out_dim)
        self.hidden = tuple(int(h) for h in hidden)
        self.activation = activation
        widths = (self.in_dim, *self.hidden, self.out_dim)
        self.weights = torch.nn.ParameterList()
        self.biases = torch.nn.ParameterList()
        for fan_in, fan_out in zip(widths[:-1], widths[1:]):
            bound = 1.0 / math.sqrt(max(fan_in, 1))
            w = (torch.rand((self.n_models, fan_in, fan_out), generator=generator, dtype=dtype) * 2 - 1) * bound
            b = (torch.rand((self.n_models, fan_out), generator=generator, dtype=dtype) * 2 - 1) * bound
            self.weights.append(torch.nn.Parameter(w))
            self.biases.append(torch.nn.Parameter(b))

    def forward(self, blocks: torch.Tensor) -> torch.Tensor:
        """Padded blocks ``(R, m, in_dim)`` to ``(R, m, out_dim)``; network r reads block r."""
        return self.forward_t(blocks.transpose(1, 2)).transpose(1, 2)

    def forward_t(self, blocks_t: torch.Tensor) -> torch.Tensor:
        """The same networks in the features-first layout: ``(R, in_dim, m)`` to ``(R, out_dim, m)``.

        Each layer is ``h <- b + W' h``. BLAS kernels can be several times slower when a product's
        output has only a few columns (MKL on AMD CPUs, for instance), which the row-major layout
        gives an encoder's last layer and its weight gradient. Here the layer outputs and the
        input gradients keep the row axis last, and weight gradients come out as
        ``(fan_out, fan_in)``, so a narrow output layer never puts its width last.
        """
        act = _IN_PLACE[self.activation]
        h = blocks_t
        last = len(self.weights) - 1
        for l, (w, b) in enumerate(zip(self.weights, self.biases)):
            if w.numel() >= _OWN_BACKWARD_MIN:
                h = _StackedLayer.apply(h, w, b)
            else:
                h = torch.baddbmm(b.unsqueeze(-1), w.transpose(1, 2), h)
            if l < last:
                h = act(h)
        return h

    def forward_rows(self, x: torch.Tensor, layout) -> torch.Tensor:
        """Rows ``x`` (N, in_dim), each through its own task's network, to (N, out_dim)."""
        return layout.scatter(self.forward(layout.gather(x)))

    def forward_shared(self, x: torch.Tensor) -> torch.Tensor:
        """Rows ``x`` (N, in_dim) through the single network of an ``R = 1`` stack, to (N, out_dim)."""
        if self.n_models != 1:
            raise ValueError(f"forward_shared: needs a single network, this stack holds {self.n_models}")
        return self.forward(x.unsqueeze(0))[0]

    def select(self, models: Sequence[int]) -> "StackedMLP":
        """A new StackedMLP holding copies of the listed networks."""
        out = StackedMLP(len(models), self.in_dim, self.out_dim, self.hidden, self.activation,
                         dtype=self.weights[0].dtype)
        idx = torch.as_tensor(list(models), dtype=torch.long)
        with torch.no_grad():
            for dst, src in zip(list(out.weights) + list(out.biases), list(self.weights) + list(self.biases)):
                dst.copy_(src[idx.to(src.device)])
        return out.to(self.weights[0].device)
