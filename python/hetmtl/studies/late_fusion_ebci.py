"""Robust empirical-Bayes critical values (Armstrong, Kolesar and Plagborg-Moller 2022) on the panel.

For a site shrunk as ``theta_hat = mu + w (y - mu)`` with ``w = tau^2 / (tau^2 + v)``, the error over
``w se`` is ``Z + b`` with the normalized bias ``b = (v / tau^2) (theta - mu) / se``, whose second
moment over the sites is ``m2 = v / tau^2``. An interval ``theta_hat +- chi w se`` covers on
average over sites with at least ``1 - alpha`` when ``chi = cva(m2)``, the smallest value with
``sup_F E_F[r(b^2, chi)] <= alpha`` over effect distributions ``F`` with ``E b^2 = m2`` (and, in
the second variant, ``E b^4 = kappa m2^2``), where ``r(t, chi) = P(|Z + sqrt(t)| > chi)``. Normal
effects give ``chi = z sqrt(1 + m2)``; the ratio of the two critical values is how much the
shape of the effect distribution can cost.

The panel's intervals are a parametric bootstrap of the whole procedure with normal effects
(:mod:`hetmtl.fusion.eb_intervals`), which accounts for the estimated center and tau^2. The
variant measured here multiplies the normal group's bootstrap half-widths by that ratio at
``m2 = v_k / E[tau^2 | data]`` (the mean of the interval's own tau^2 draws, so that it stays
finite when tau^2 is estimated as 0), making them robust to the shape of the effects; outlying
sites keep their own intervals. :func:`ebci_table` reports site coverage before and after.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Sequence

import numpy as np
import pandas as pd
from scipy import optimize, stats

from ..fusion.eb_intervals import draw_tau2, robust_eb_errors
from ..fusion.robust_eb import robust_eb
from ..simulate.summary_level import SummaryDesign, draw_effects, draw_estimates
from .late_fusion_panel import DESIGNS, LEVEL

M2_GRID = np.geomspace(1e-4, 1e4, 81)


def noncoverage(t, chi):
    """``P(|Z + sqrt(t)| > chi)`` for standard normal ``Z``."""
    st = np.sqrt(t)
    return stats.norm.sf(chi - st) + stats.norm.cdf(-chi - st)


def _worst_second_moment(m2: float, chi: float) -> float:
    """``sup E r(t, chi)`` over ``E t = m2``: the least concave majorant of ``r`` at ``m2``,
    linear from ``t = 0`` to the tangent point ``t0`` and ``r`` itself beyond it."""
    r0 = noncoverage(0.0, chi)

    def slope(t):
        st = np.sqrt(t)
        return (stats.norm.pdf(chi - st) - stats.norm.pdf(chi + st)) / (2 * st)

    gap = lambda t: noncoverage(t, chi) - r0 - t * slope(t)  # noqa: E731
    ts = np.geomspace(1e-6, 1e8, 6000)
    g = gap(ts)
    up = np.flatnonzero((g[:-1] <= 0) & (g[1:] > 0))
    if up.size == 0:
        return float(noncoverage(m2, chi))
    t0 = optimize.brentq(gap, ts[up[0]], ts[up[0] + 1])
    return float(r0 + m2 / t0 * (noncoverage(t0, chi) - r0) if m2 < t0 else noncoverage(m2, chi))


def _worst_two_moments(m2: float, kappa: float, chi: float, n: int = 300) -> float:
    """``sup E r(t, chi)`` over ``E t = m2`` and ``E t^2 = kappa m2^2``: a linear program over
    distributions on a grid of ``t``."""
    ts = np.concatenate([[0.0, m2], np.geomspace(m2 * 1e-3, m2 * max(kappa, 1.0) * 50, n)])
    A = np.vstack([np.ones_like(ts), ts / m2, (ts / m2) ** 2])
    res = optimize.linprog(-noncoverage(ts, chi), A_eq=A, b_eq=[1.0, 1.0, kappa],
                           bounds=(0, None), method="highs")
    return float(-res.fun)


def robust_cva(m2: float, alpha: float = 1 - LEVEL, kappa: float | None = None) -> float:
    """Robust critical value at ``m2`` (second moment only, or also kurtosis ``kappa``)."""
    def excess(chi):
        worst = (_worst_second_moment(m2, chi) if kappa is None
                 else _worst_two_moments(m2, kappa, chi))
        return worst - alpha
    z = stats.norm.ppf(1 - alpha / 2)
    # r(t, chi) grows with t, so every distribution needs at least z.
    return optimize.brentq(excess, 0.999 * z, 50 * z * np.sqrt(1 + m2) + 10)


@lru_cache(maxsize=4)
def cva_ratio_table(kappa: float | None = None) -> np.ndarray:
    """Robust over normal-effects critical value on :data:`M2_GRID`."""
    z = stats.norm.ppf(0.5 + LEVEL / 2)
    return np.array([robust_cva(m, kappa=kappa) / (z * np.sqrt(1 + m)) for m in M2_GRID])


def cva_ratio(m2: np.ndarray, kappa: float | None = None) -> np.ndarray:
    """Robust over normal-effects critical value at ``m2`` (log-linear interpolation)."""
    logm = np.log(np.clip(m2, M2_GRID[0], M2_GRID[-1]))
    return np.interp(logm, np.log(M2_GRID), cva_ratio_table(kappa))


VARIANTS = {"akp_m2": None, "akp_kurtosis3": 3.0}


def ebci_rows(name: str, n_reps: int, seed: int, n_boot: int = 200) -> dict:
    """Coverage of normal sites' intervals in one design: the default and each AKP variant (and
    the default's among the smaller and the larger half of the sites)."""
    design = SummaryDesign(**DESIGNS[name])
    rng = np.random.default_rng(seed)
    theta, outlier = draw_effects(design, n_reps, rng)
    y, _ = draw_estimates(design, theta, rng)
    v = np.broadcast_to(1.0 / design.sizes, y.shape).copy()
    fit = robust_eb(y, v)
    tau2 = draw_tau2(fit, y, v, n_boot, rng)
    errs = robust_eb_errors(fit, y, v, n_boot=n_boot, rng=rng, tau2_gen=tau2)
    half, _ = errs.halfwidths(LEVEL)
    m2 = v / tau2.mean(axis=1)[:, None]
    row = {"design": name}
    for label, h in (("default", half), *((lab, np.where(errs.own_group, half * cva_ratio(m2, k),
                                                           half)) for lab, k in VARIANTS.items())):
        covered = np.abs(fit.estimate - theta) <= h
        row[f"cover_{label}"] = float(covered[~outlier].mean())
        row[f"width_{label}"] = float(2 * h[~outlier].mean())
    # Where the default's misses fall: normal sites of the smaller and of the larger half.
    small = np.arange(design.n_sites) < design.n_sites // 2
    covered = np.abs(fit.estimate - theta) <= half
    row["cover_default_smaller_half"] = float(covered[~outlier & small].mean())
    row["cover_default_larger_half"] = float(covered[~outlier & ~small].mean())
    return row


def ebci_table(n_reps: int = 300, seed: int = 17, designs: Sequence[str] | None = None,
               n_boot: int = 200) -> pd.DataFrame:
    """Normal sites' coverage and mean width, default against the AKP variants, per design."""
    names = list(designs or DESIGNS)
    return pd.DataFrame([ebci_rows(n, n_reps, seed + i, n_boot) for i, n in enumerate(names)]
                        ).set_index("design")
