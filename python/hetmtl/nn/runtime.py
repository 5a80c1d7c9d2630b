"""What every torch estimator needs around its networks: the device, seeded generators, thread
caps, the optimizer and a progress bar."""

from __future__ import annotations

import sys
import time
from contextlib import contextmanager
from typing import Iterable, Iterator, TextIO

import numpy as np
import torch


class TorchDevice:
    """Mixin of estimators with a ``device`` parameter: the device, and arrays moved onto it."""

    device: str

    @property
    def _device(self) -> torch.device:
        try:
            device = torch.device(self.device)
        except (RuntimeError, TypeError) as exc:
            raise ValueError(f"device: not a torch device ({exc})") from None
        if device.type == "cuda" and not torch.cuda.is_available():
            why = ("this torch build has no CUDA support" if torch.version.cuda is None
                   else "torch finds no CUDA device")
            raise ValueError(f"device: {self.device!r} was asked for, but {why}; use device='cpu' "
                             "or install a CUDA build of torch")
        return device

    def _tensor(self, a: np.ndarray) -> torch.Tensor:
        """Float32 rows on the device."""
        return torch.as_tensor(np.ascontiguousarray(a), dtype=torch.float32, device=self._device)

    def _codes(self, codes: np.ndarray) -> torch.Tensor:
        """Integer task codes on the device."""
        return torch.as_tensor(codes, dtype=torch.long, device=self._device)


def torch_generator(seed: np.random.SeedSequence, device: str | torch.device = "cpu") -> torch.Generator:
    """A torch.Generator seeded from a NumPy SeedSequence (no global torch state is touched).

    Parameters
    ----------
    seed : numpy.random.SeedSequence
        The stream to seed from.
    device : str or torch.device, default "cpu"
        Device of the generator.

    Returns
    -------
    torch.Generator
    """
    gen = torch.Generator(device=device)
    gen.manual_seed(int(seed.generate_state(1, dtype=np.uint64)[0]) & 0x7FFF_FFFF_FFFF_FFFF)
    return gen


@contextmanager
def torch_threads(n_threads: int | None) -> Iterator[None]:
    """Cap torch's intra-op threads inside the block (None: leave as is), restoring them after.

    Parameters
    ----------
    n_threads : int or None
        Threads inside the block.

    Yields
    ------
    None
    """
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

    Parameters
    ----------
    params : iterable of torch.nn.Parameter
        Parameters to optimize.
    lr : float
        Learning rate.
    weight_decay : float, default 0.0
        L2 weight decay.

    Returns
    -------
    torch.optim.Adam
    """
    params = list(params)
    fused = all(p.device.type in _FUSED_ADAM_DEVICES and p.is_floating_point() for p in params)
    return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, fused=fused or None)


class _SilentBar:
    """The progress bar's interface, doing nothing (progress off)."""

    def update(self, n: int = 1) -> None:
        pass

    def set_postfix(self, refresh: bool = True, **values: object) -> None:
        pass

    def close(self) -> None:
        pass


class PlainBar(_SilentBar):
    """A text progress bar on stderr, redrawn at most every ``interval`` seconds (where tqdm is
    not installed)."""

    def __init__(self, total: int, desc: str, stream: TextIO | None = None, interval: float = 0.5):
        self.total, self.desc, self.n, self.postfix = int(total), desc, 0, ""
        self.stream = sys.stderr if stream is None else stream
        self.interval, self._last = float(interval), -float("inf")

    def update(self, n: int = 1) -> None:
        self.n += int(n)
        now = time.monotonic()
        if now - self._last >= self.interval:
            self._last = now
            self._draw()

    def set_postfix(self, refresh: bool = True, **values: object) -> None:
        self.postfix = ", ".join(f"{k}={v}" for k, v in values.items())

    def _draw(self, end: str = "") -> None:
        done = min(self.n, self.total)
        filled = int(20 * done / max(self.total, 1))
        text = f"\r{self.desc}: [{'#' * filled}{'.' * (20 - filled)}] {done}/{self.total}"
        self.stream.write(text + (f" {self.postfix}" if self.postfix else "") + end)
        self.stream.flush()

    def close(self) -> None:
        self._draw(end="\n")


def progress(total: int, enabled: bool, desc: str):
    """A progress bar with ``update``/``set_postfix``/``close``.

    Parameters
    ----------
    total : int
        Number of steps, an upper bound (an epoch budget): a run that stops early ends the bar
        short of it.
    enabled : bool
        False for a silent stand-in.
    desc : str
        Label of the bar.

    Returns
    -------
    tqdm.tqdm or PlainBar or a silent stand-in
        tqdm's bar when enabled and installed, else a plain bar on stderr.
    """
    if not enabled:
        return _SilentBar()
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return PlainBar(total, desc)
    return tqdm(total=total, desc=desc, leave=False)
