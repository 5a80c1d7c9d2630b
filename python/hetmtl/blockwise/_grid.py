"""Hyperparameter grids of the two-pathway model, and the stacks they are trained in. No torch."""

from __future__ import annotations

import itertools
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Mapping, Sequence, TypeVar

import numpy as np

from .._util.validation import check_int_at_least

GRID_KEYS = ("hidden", "n_layers", "gamma", "delta", "kappa", "weight_decay")
# Keys a caller's defaults may leave out (added after the others).
KEY_DEFAULTS = {"weight_decay": 0.0}

#: The grid of the paper: width, depth and each regularizer weight (72 configurations).
PAPER_GRID: dict[str, list] = {
    "hidden": [32, 64, 128],
    "n_layers": [2, 3, 4],
    "gamma": [0.01, 0.1],
    "delta": [0.01, 0.1],
    "kappa": [0.01, 0.1],
}

#: A smaller grid (8 configurations, one depth, trained as one stack), with and without L2.
SMALL_GRID: dict[str, list] = {
    "hidden": [32, 64],
    "n_layers": [2],
    "gamma": [0.01, 0.1],
    "weight_decay": [0.0, 0.1],
}

#: The default: three L2 weights, chosen on validation (one stack). Small data sets overfit
#: within a few epochs without L2, while nearly noiseless responses need none.
AUTO_GRID: dict[str, list] = {"weight_decay": [0.0, 0.01, 0.1]}

NAMED_GRIDS = {"auto": AUTO_GRID, "paper": PAPER_GRID, "small": SMALL_GRID}


def check_positive_int(value: Any, name: str) -> int:
    """A whole number of at least 1 (the package's shared check: 5.0 is 5, 2.7 and bools are refused)."""
    try:
        return check_int_at_least(value, name)
    except ValueError:
        raise ValueError(f"{name}: must be a positive int, got {value!r}") from None


def check_config(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """Validate one configuration (``hidden``, ``n_layers`` positive ints; weights >= 0)."""
    out = {key: check_positive_int(cfg[key], key) for key in ("hidden", "n_layers")}
    for key in ("gamma", "delta", "kappa", "weight_decay"):
        v = cfg[key]
        if isinstance(v, bool) or not isinstance(v, (int, float, np.number)) or not (np.isfinite(v) and v >= 0):
            raise ValueError(f"{key}: must be a finite non-negative number, got {v!r}")
        out[key] = float(v)
    return out


def resolve_grid(grid: Any) -> dict[str, list] | None:
    """``grid`` as a dict of lists (a name of :data:`NAMED_GRIDS` resolved), or None."""
    if grid is None:
        return None
    if isinstance(grid, str):
        if grid not in NAMED_GRIDS:
            raise ValueError(f"grid: must be a dict, None or one of {tuple(NAMED_GRIDS)}, got {grid!r}")
        return {k: list(v) for k, v in NAMED_GRIDS[grid].items()}
    if not isinstance(grid, Mapping):
        raise ValueError(f"grid: must be a dict of lists over {GRID_KEYS}, None or a name, got {grid!r}")
    unknown = [k for k in grid if k not in GRID_KEYS]
    if unknown:
        raise ValueError(f"grid: unknown key(s) {unknown}; allowed keys are {GRID_KEYS}")
    out = {}
    for k, v in grid.items():
        values = [v] if np.ndim(v) == 0 else list(v)
        if not values:
            raise ValueError(f"grid: the list of {k!r} is empty")
        out[k] = values
    return out


def expand_grid(grid: Any, defaults: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every configuration of ``grid`` (keys it lacks take ``defaults``), validated, in grid order."""
    g = resolve_grid(grid) or {}
    defaults = {**KEY_DEFAULTS, **defaults}
    axes = [g.get(k, [defaults[k]]) for k in GRID_KEYS]
    return [check_config(dict(zip(GRID_KEYS, combo))) for combo in itertools.product(*axes)]


# Padding a group of G configurations of width d into a wider stack of width D adds work in
# proportion to G (D^2 - d^2) (hidden layers and heads); a separate stack costs a fixed overhead
# per step (a few dozen small tensor operations). On CPU, with batches of 16 rows per task, that
# overhead equals the padding of about 15,000 configuration-width^2 units (measured: a stack of 8
# configurations costs about 1.8 ms + 1.2e-4 ms * 8 D^2 per step).
PAD_BUDGET = 15_000


def stack_groups(configs: list[dict[str, Any]], pad_budget: float = PAD_BUDGET) -> list[list[int]]:
    """Indices of the configurations trained together, one list per stack.

    Configurations of one depth can share a stack (narrower ones padded with zeros to the widest);
    starting from one group per (depth, width), the narrowest group of a depth is merged into the
    next wider one while its padding costs less than ``pad_budget`` (see :data:`PAD_BUDGET`).
    """
    groups: list[list[int]] = []
    for L in sorted({c["n_layers"] for c in configs}):
        by_width: dict[int, list[int]] = {}
        for i, c in enumerate(configs):
            if c["n_layers"] == L:
                by_width.setdefault(c["hidden"], []).append(i)
        widths = sorted(by_width)
        current, width = by_width[widths[0]], widths[0]
        for w in widths[1:]:
            if len(current) * (w**2 - width**2) < pad_budget:
                current = current + by_width[w]
            else:
                groups.append(current)
                current = by_width[w]
            width = w
        groups.append(current)
    return [sorted(g) for g in groups]


def stack_cost(configs: list[dict[str, Any]], members: list[int]) -> float:
    """Relative time of one stack per epoch: per layer a fixed cost (:data:`PAD_BUDGET`) plus the
    members times the padded width squared."""
    width = max(configs[i]["hidden"] for i in members)
    return float(configs[members[0]]["n_layers"] * (PAD_BUDGET + len(members) * width**2))


_Result = TypeVar("_Result")


def run_stacks(train: Callable[[list[int]], _Result], groups: list[list[int]], costs: Sequence[float],
               n_jobs: int) -> list[_Result]:
    """``train(group)`` for every group, in order; with ``n_jobs > 1`` in that many threads, the
    costliest stacks started first (so that a long stack does not start last and run alone).

    The stacks share nothing but the data, which they only read, so the results are those of the
    serial loop whatever the number of threads."""
    if n_jobs <= 1 or len(groups) <= 1:
        return [train(g) for g in groups]
    order = sorted(range(len(groups)), key=lambda k: -costs[k])
    with ThreadPoolExecutor(max_workers=min(n_jobs, len(groups)), thread_name_prefix="hetmtl-stack") as pool:
        futures = {k: pool.submit(train, groups[k]) for k in order}
        return [futures[k].result() for k in range(len(groups))]
