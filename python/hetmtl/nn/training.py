"""Pieces of a reproducible training loop: seeding, thread caps, early stopping, progress."""

from __future__ import annotations

import copy
from contextlib import contextmanager
from typing import Iterable, Iterator

import numpy as np
import torch


class TorchDevice:
    """Mixin of estimators with a ``device`` parameter: the device, and arrays moved onto it."""

    device: str

    @property
    def _device(self) -> torch.device:
        try:
            return torch.device(self.device)
        except (RuntimeError, TypeError) as exc:
            raise ValueError(f"device: not a torch device ({exc})") from None

    def _tensor(self, a: np.ndarray) -> torch.Tensor:
        """Float32 rows on the device."""
        return torch.as_tensor(np.ascontiguousarray(a), dtype=torch.float32, device=self._device)

    def _codes(self, codes: np.ndarray) -> torch.Tensor:
        """Integer task codes on the device."""
        return torch.as_tensor(codes, dtype=torch.long, device=self._device)


def torch_generator(seed: np.random.SeedSequence, device: str | torch.device = "cpu") -> torch.Generator:
    """A torch.Generator seeded from a NumPy SeedSequence (no global torch state is touched)."""
    gen = torch.Generator(device=device)
    gen.manual_seed(int(seed.generate_state(1, dtype=np.uint64)[0]) & 0x7FFF_FFFF_FFFF_FFFF)
    return gen


@contextmanager
def torch_threads(n_threads: int | None) -> Iterator[None]:
    """Cap torch's intra-op threads inside the block (None: leave as is), restoring them after."""
    if n_threads is None:
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(max(1, int(n_threads)))
    try:
        yield
    finally:
        torch.set_num_threads(old)


# Devices with torch's fused Adam kernel (on others Adam runs its default per-tensor loop).
_FUSED_ADAM_DEVICES = ("cpu", "cuda")


def adam(params: Iterable[torch.nn.Parameter], lr: float, weight_decay: float = 0.0) -> torch.optim.Adam:
    """Adam with L2 weight decay, as one fused kernel for all parameters where the device has one.

    The fused update is the same algorithm as torch's default per-tensor loop (equal up to
    rounding); the loop costs about ten small operations per parameter tensor and step.
    """
    params = list(params)
    fused = all(p.device.type in _FUSED_ADAM_DEVICES and p.is_floating_point() for p in params)
    return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, fused=fused or None)


class EarlyStopping:
    """Keep the state with the best validation loss; stop after ``patience`` epochs without a
    relative improvement of at least ``min_delta``.

    Parameters
    ----------
    patience : int
    min_delta : float
        Relative improvement that counts as progress.
    """

    def __init__(self, patience: int = 20, min_delta: float = 1e-4):
        self.patience = int(patience)
        self.min_delta = float(min_delta)
        self.best_loss = float("inf")
        self.best_epoch = -1
        self.best_state = None
        self._since = 0

    def update(self, epoch: int, loss: float, state) -> bool:
        """Record an epoch's validation loss; ``state`` (deep-copied) is kept if it is the best.
        Returns True when training should stop."""
        if not np.isfinite(loss):
            return True
        if loss < self.best_loss * (1 - self.min_delta) or self.best_state is None:
            self.best_loss, self.best_epoch = float(loss), int(epoch)
            self.best_state = copy.deepcopy(state)
            self._since = 0
        else:
            self._since += 1
        return self._since >= self.patience


class PerTaskBest:
    """Early stopping per task for stacked models: every tensor of a state whose first axis is the
    task keeps, task by task, the slice from that task's best validation epoch.

    Stops when no task has improved for ``patience`` epochs.
    """

    def __init__(self, n_tasks: int, patience: int = 20, min_delta: float = 1e-4):
        self.patience = int(patience)
        self.min_delta = float(min_delta)
        self.best_loss = np.full(n_tasks, np.inf)
        self.best_epoch = np.full(n_tasks, -1)
        self.best_state: dict[str, torch.Tensor] | None = None
        self._since = 0

    def update(self, epoch: int, losses: np.ndarray, state: dict[str, torch.Tensor]) -> bool:
        losses = np.asarray(losses, dtype=float)
        better = np.isfinite(losses) & (losses < self.best_loss * (1 - self.min_delta))
        if self.best_state is None:
            self.best_state = {k: v.detach().clone() for k, v in state.items()}
            better = np.isfinite(losses)
        elif better.any():
            idx = torch.as_tensor(np.nonzero(better)[0])
            for k, v in state.items():
                self.best_state[k][idx.to(v.device)] = v.detach()[idx.to(v.device)]
        self.best_loss[better] = losses[better]
        self.best_epoch[better] = epoch
        self._since = 0 if better.any() else self._since + 1
        return self._since >= self.patience


def progress(total: int, enabled: bool, desc: str):
    """A tqdm progress bar (or a silent stand-in with the same ``update``/``set_postfix``/``close``)."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, disable=not enabled, leave=False)
