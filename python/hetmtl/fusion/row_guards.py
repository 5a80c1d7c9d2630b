"""Guards on a site's own summary against nuisances that single out a row.

A site may take its nuisance predictions from outside (``SiteDML.fit(predictions=...)``), for
instance from the center's fused kernel regressions. A hostile center could craft them: a
treatment regression of ``-M`` on a tiny window around one person and 0 elsewhere makes that
person's residual ``d_t + M`` dominate every sum, and the released ``J`` and ``theta`` then give
the person's treatment and outcome back to about 1e-7. Two guards close this:

* supplied predictions are clipped to the range of their target at the site widened by its own
  width on both sides: an honest regression of y or d on x lies well inside that (a site's own
  kernel regression inside the range itself; a fused one, which also averages other sites'
  rows, a little beyond it at most), and no prediction can be made arbitrarily large;
* a summary in which one row's leverage in the residualized regressors,
  ``h_i = dt_i' (sum_j dt_j dt_j')^-1 dt_i``, exceeds ``MAX_ROW_LEVERAGE`` is refused: the row
  then carries most of the information about the coefficients, whatever the nuisances were.
"""

from __future__ import annotations

import warnings
from typing import Mapping

import numpy as np

from .disclosure import DisclosureWarning
from .scores import LinearScore

#: Largest leverage of one row in the site's residualized regressors before the site refuses to
#: release its summary (the average leverage is p / n; the crafted nuisance above drives one row to
#: 1 - 1e-9; an honest site of 20 rows and 4 coefficients reaches about 0.6).
MAX_ROW_LEVERAGE = 0.9


def clip_to_targets(predictions: Mapping[str, np.ndarray], targets: Mapping[str, np.ndarray],
                    site: str) -> dict[str, np.ndarray]:
    """Supplied predictions by role, clipped to the range of the role's target at the site
    widened by its width on both sides (see the module notes).

    ``predictions[role]`` has shape ``(n_rep, n)`` or ``(n_rep, n, k)``; ``targets[role]`` shape
    ``(n,)`` or ``(n, k)`` (ranges per column). Clipping is announced with a
    :class:`~hetmtl.fusion.disclosure.DisclosureWarning` naming the role and the count.
    """
    out = {}
    for role, pred in predictions.items():
        target = np.asarray(targets[role], float)
        lo, hi = np.nanmin(target, axis=0), np.nanmax(target, axis=0)
        clipped = np.clip(pred, lo - (hi - lo), hi + (hi - lo))
        moved = int(np.count_nonzero(clipped != pred))
        if moved:
            warnings.warn(f"site {site!r}: {moved} supplied prediction(s) of {role} lie more than the "
                          "target's range beyond it at the site and were clipped (a prediction far outside "
                          "could single out a row in the released summary)", DisclosureWarning, stacklevel=3)
        out[role] = clipped
    return out


def check_row_leverage(score: LinearScore, site: str, limit: float = MAX_ROW_LEVERAGE) -> None:
    """Refuse a site summary in which one row's leverage in the residualized regressors exceeds
    ``limit`` (see the module notes)."""
    dt = score.dt
    gram = dt.T @ dt
    try:
        leverage = np.einsum("ij,ij->i", dt, np.linalg.solve(gram, dt.T).T)
    except np.linalg.LinAlgError:
        return  # a singular design is refused by the score's own solve, with its message
    worst = int(np.argmax(leverage))
    if leverage[worst] > limit:
        raise ValueError(f"site {site!r}: one row carries {leverage[worst]:.0%} of the information about "
                         f"the coefficients (its leverage in the residualized treatment; the release limit "
                         f"is {limit:.0%}), so the summary would give that row back; check the supplied "
                         "predictions or the treatment column (a value far from all others)")
