"""Differential privacy of released grid sums: the Gaussian mechanism with clipping.

A site that sets a :class:`PrivacyBudget` in its
:class:`~hetmtl.fusion.disclosure.DisclosurePolicy` releases its kernel grid sums with Gaussian
noise calibrated so that the whole grid summary is (epsilon, delta)-differentially private with
respect to adding or removing one row. Each row's targets are clipped to bounds the site declares,
which bounds the row's contribution; the noise scale follows the analytic Gaussian mechanism
(Balle and Wang, 2018), exact for every epsilon. Which grid points are released is decided on the
noisy kernel sums, so the release pattern is private too.

What one row can change (the L2 sensitivity): for each nuisance the row enters, its kernel weights
at all grid points and bandwidths (kernel sum S0), the same weights times its clipped target (S1),
and its fold's row count. For a unimodal kernel with ``k(0) = 1`` on an axis of spacing at least
``delta``, ``sum_j k((a_j - x) / h)^2 <= 1 + (h / delta) * int k(s)^2 ds`` for every x; a tensor
grid multiplies the per-axis bounds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.optimize import brentq
from scipy.stats import norm

from .._util.validation import check_choice

# int k(s)^2 ds of the package's kernels (both with k(0) = 1).
_KERNEL_SQ_INTEGRAL = {"gaussian": float(np.sqrt(np.pi)), "epanechnikov": 16.0 / 15.0}


@dataclass(frozen=True)
class PrivacyBudget:
    """(epsilon, delta) differential privacy the site grants each grid summary it releases.

    Parameters
    ----------
    epsilon : float
        Privacy loss, > 0 (smaller is more private and noisier).
    delta : float, default 1e-6
        Probability of exceeding ``epsilon``, in (0, 1); keep it well below 1 / n.
    bounds : dict of str to (float, float)
        Clipping range of each nuisance's target, e.g. ``{"ml_l": (-10, 10)}``. Targets coded 0/1
        need none (they are clipped to [0, 1]); any other target must have one.
    random_state : int, optional
        Seed of the noise, for reproducible simulation studies only. Leave it ``None`` wherever
        the rows are real: a fixed seed repeats the same noise in every release, and subtracting
        two releases then cancels it.
    """

    epsilon: float
    delta: float = 1e-6
    bounds: dict = field(default_factory=dict)
    random_state: Any = None

    def __post_init__(self) -> None:
        eps, delta = _finite(self.epsilon, "epsilon"), _finite(self.delta, "delta")
        if eps <= 0:
            raise ValueError(f"epsilon: must be a positive number, got {self.epsilon!r}")
        if not 0 < delta < 1:
            raise ValueError(f"delta: must be in (0, 1), got {self.delta!r}")
        if not isinstance(self.bounds, dict):
            raise ValueError(f"bounds: expected a dict role -> (low, high), got {self.bounds!r}")
        bounds = {}
        for role, pair in self.bounds.items():
            lo, hi = (_finite(v, f"bounds[{role!r}]") for v in np.broadcast_to(pair, (2,)))
            if not lo < hi:
                raise ValueError(f"bounds[{role!r}]: low must be below high, got {pair!r}")
            bounds[str(role)] = (lo, hi)
        object.__setattr__(self, "epsilon", eps)
        object.__setattr__(self, "delta", delta)
        object.__setattr__(self, "bounds", bounds)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (without the seed)."""
        return {"epsilon": self.epsilon, "delta": self.delta,
                "bounds": {k: list(v) for k, v in self.bounds.items()}}

    def target_bounds(self, role: str, binary: bool) -> tuple[float, float]:
        """Clipping range of nuisance ``role``'s target."""
        if role in self.bounds:
            return self.bounds[role]
        if binary:
            return 0.0, 1.0
        raise ValueError(f"bounds: differential privacy needs a clipping range for the target of "
                         f"{role!r} (e.g. bounds={{{role!r}: (low, high)}})")


def _finite(value: Any, name: str) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        out = float("nan")
    if isinstance(value, bool) or not np.isfinite(out):
        raise ValueError(f"{name}: must be a finite number, got {value!r}")
    return out


def gaussian_sigma(epsilon: float, delta: float, sensitivity: float) -> float:
    """Smallest noise standard deviation of the analytic Gaussian mechanism.

    The mechanism ``f(D) + N(0, sigma^2 I)`` with L2 sensitivity ``sensitivity`` is
    (epsilon, delta)-DP iff ``Phi(s/(2 sigma) - eps sigma/s) - e^eps Phi(-s/(2 sigma) - eps sigma/s)
    <= delta`` (Balle and Wang, 2018, Theorem 8); the left side falls as sigma grows.
    """
    if not sensitivity > 0:
        raise ValueError(f"sensitivity: must be positive, got {sensitivity!r}")

    def excess(log_sigma: float) -> float:
        sigma = np.exp(log_sigma)
        a, b = sensitivity / (2 * sigma), epsilon * sigma / sensitivity
        return norm.cdf(a - b) - np.exp(epsilon + norm.logcdf(-a - b)) - delta

    lo, hi = np.log(sensitivity) - 20, np.log(sensitivity) + 20
    return float(np.exp(brentq(excess, lo, hi, xtol=1e-12)))


def kernel_sq_bound(axes: tuple[np.ndarray, ...], bandwidth: np.ndarray, kernel: str) -> float:
    """Upper bound of ``sum_g k_h(g - x)^2`` over the grid, for every point x."""
    check_choice(kernel, "kernel", tuple(_KERNEL_SQ_INTEGRAL))
    total = 1.0
    for a, h in zip(axes, bandwidth):
        spacing = float(np.min(np.diff(a)))
        total *= min(float(a.size), 1.0 + h * _KERNEL_SQ_INTEGRAL[kernel] / spacing)
    return total


def grid_sensitivity(axes: tuple[np.ndarray, ...], bandwidths: np.ndarray, kernel: str,
                     target_scales: list[float]) -> float:
    """L2 sensitivity of a whole grid summary to one row (see the module notes).

    ``target_scales``: the largest absolute clipped target of each nuisance.
    """
    per_weight = sum(kernel_sq_bound(axes, h, kernel) for h in bandwidths)
    return float(np.sqrt(sum(per_weight * (1.0 + c * c) + 1.0 for c in target_scales)))


def privatize_grid(budget: PrivacyBudget, axes, bandwidths: np.ndarray, kernel: str,
                   sums: dict[str, dict[str, np.ndarray]]) -> float:
    """Add the Gaussian mechanism's noise in place to every nuisance's S0, S1 and row counts.

    Parameters
    ----------
    budget : PrivacyBudget
    axes, bandwidths, kernel
        The grid's axes, the (B, d) bandwidths and the kernel.
    sums : dict
        ``role -> {"M": (B, F, G, 1, 1), "V": (B, F, G, 1), "n_rows": (F,), "scale": float}``:
        local-constant moments (S0 and S1) of targets already clipped; ``scale`` is the largest
        absolute clipped target.

    Returns
    -------
    float
        The noise standard deviation used.
    """
    scales = [float(s["scale"]) for s in sums.values()]
    sigma = gaussian_sigma(budget.epsilon, budget.delta, grid_sensitivity(axes, bandwidths, kernel, scales))
    rng = np.random.default_rng(budget.random_state)
    for s in sums.values():
        for key in ("M", "V", "n_rows"):
            s[key] += rng.normal(scale=sigma, size=s[key].shape)
        s["n_rows"] = np.maximum(s["n_rows"], 1.0)   # post-processing keeps the guarantee
    return sigma
