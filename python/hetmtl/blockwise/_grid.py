"""Hyperparameter grids of the two-pathway model. No torch."""

from __future__ import annotations

import itertools
from typing import Any, Mapping

import numpy as np

GRID_KEYS = ("hidden", "n_layers", "gamma", "delta", "kappa")

#: The grid of the paper: width, depth and each regularizer weight (72 configurations).
PAPER_GRID: dict[str, list] = {
    "hidden": [32, 64, 128],
    "n_layers": [2, 3, 4],
    "gamma": [0.01, 0.1],
    "delta": [0.01, 0.1],
    "kappa": [0.01, 0.1],
}

#: A smaller grid (8 configurations, one depth, trained as one stack).
SMALL_GRID: dict[str, list] = {
    "hidden": [32, 64],
    "n_layers": [2],
    "gamma": [0.01, 0.1],
    "delta": [0.01, 0.1],
}

NAMED_GRIDS = {"paper": PAPER_GRID, "small": SMALL_GRID}


def check_config(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """Validate one configuration (``hidden``, ``n_layers`` positive ints; weights >= 0)."""
    out = {}
    for key in ("hidden", "n_layers"):
        v = cfg[key]
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{key}: must be a positive int, got {v!r}")
        out[key] = int(v)
    for key in ("gamma", "delta", "kappa"):
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
    axes = [g.get(k, [defaults[k]]) for k in GRID_KEYS]
    return [check_config(dict(zip(GRID_KEYS, combo))) for combo in itertools.product(*axes)]
