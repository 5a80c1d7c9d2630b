"""Simulation study of nuisance fusion: per-site target error with fused versus per-site kernel
nuisances, each followed by late fusion of the site estimates.

One replication (:func:`nuisance_fusion_replication`) simulates K sites with
:func:`~hetmtl.simulate.make_late_fusion_sites` (low-dimensional X), fixes every site's sample
split, and estimates every site's target twice with kernel nuisances on a shared grid:

* ``"per-site"``: each site's own kernel regression (``NuisanceFusion(lam=0)``: no borrowing; the
  common bandwidth is still chosen by summary-level cross-validation);
* ``"fused"``: nuisance fusion with lambda chosen by summary-level cross-validation.

Both sets of site estimates are then fused by :class:`~hetmtl.fusion.late_fusion.LateFusion`.
The result has one row per site and method with the squared errors of the site DML estimate
(``err_site``) and of the late-fusion estimate (``err_late``), and the mean squared error of the
treatment nuisance (propensity for IRM) over the site's rows (``err_m``).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd

from .._util.seeds import as_seed_sequence, child_seed
from .._util.validation import check_int_at_least
from ..fusion.crossfit import make_folds
from ..fusion.disclosure import SIMULATION_POLICY
from ..fusion.grid_summary import GridSummary, common_bandwidths, nuisance_targets
from ..fusion.kernel_grid import KernelGrid, silverman_bandwidth, site_quantiles
from ..fusion.late_fusion import LateFusion
from ..fusion.nuisance_fusion import NuisanceFusion, WithheldGridWarning
from ..fusion.site_dml import SiteDML
from ..simulate import make_late_fusion_sites

METHODS = ("per-site", "fused")


def nuisance_fusion_replication(*, scenario: str = "S1", n_sites: int = 10,
                                n_per_site: Any = "unequal", q: int = 1, eta: float = 0.3,
                                model: str = "plr", n_points: int = 25, n_folds: int = 5,
                                fit: str = "constant", penalty: str = "function",
                                bandwidth_factors=(0.5, 1.0, 2.0), threshold: float = 5.0,
                                clip: float = 0.05,
                                random_state: int | np.random.SeedSequence | None = None) -> pd.DataFrame:
    """Run one replication; see the module docstring.

    Parameters
    ----------
    scenario : {"S1", "S2", "S3"}
        Nuisances identical, mildly different or unrelated across sites.
    n_sites, n_per_site, q, eta, model
        Passed to :func:`~hetmtl.simulate.make_late_fusion_sites` (``p = 1``, no outliers).
    n_points : int
        Grid points per axis.
    n_folds : int
        Cross-fitting folds.
    fit : {"constant", "linear"}
        Local fit of the kernel regressions.
    penalty : {"function", "pointwise"}
        Nuisance fusion penalty.
    bandwidth_factors : sequence of float
        Candidate bandwidths as multiples of the median Silverman bandwidth of the sites.
    threshold : float
        Disclosure threshold of the grid summaries.
    clip : float
        ``"irm"``: propensities are clipped to ``[clip, 1 - clip]`` in the score (both methods).
        The simulated propensities lie in [0.05, 0.95]; a kernel fit with a small bandwidth can
        overshoot toward 0 or 1 at the edge of the data, and the AIPW score then divides by
        almost nothing, so the default trims at the design's own bound.
    random_state : int or SeedSequence
        Seed of the data and the sample splits.

    Returns
    -------
    pandas.DataFrame
        Columns ``site``, ``n``, ``method``, ``estimate``, ``late``, ``theta``, ``err_site``,
        ``err_late``, ``err_m``.
    """
    root = as_seed_sequence(random_state)
    data_seed, fold_seed = child_seed(root, 0), child_seed(root, 1)
    sim = make_late_fusion_sites(n_sites=n_sites, n_per_site=n_per_site, p=1, q=q, eta=eta,
                                 scenario=scenario, model=model, random_state=data_seed)
    site_col = sim.data["site"].to_numpy()
    sites = []
    for k, name in enumerate(sim.site_names):
        sub = sim.data.loc[site_col == name]
        x = sub[sim.x_cols].to_numpy(float)
        y = sub["y"].to_numpy(float)
        d = sub["d"].to_numpy(float)
        strata = d if model == "irm" else None
        folds = make_folds(len(y), n_folds, 1, child_seed(fold_seed, k), strata=strata)[0]
        sites.append((name, x, y, d, folds))

    grid = KernelGrid.from_site_quantiles([site_quantiles(s[1]) for s in sites], n_points, fit=fit)
    H = common_bandwidths([silverman_bandwidth(s[1]) for s in sites], bandwidth_factors)
    summaries = [GridSummary.compute(grid, x, nuisance_targets(model, y, d), folds, H, site=name,
                                     threshold=threshold, policy=SIMULATION_POLICY)
                 for name, x, y, d, folds in sites]
    rows = []
    for method in METHODS:
        lam = 0.0 if method == "per-site" else "cv"
        with warnings.catch_warnings():  # small sites withhold most grid points by design here
            warnings.simplefilter("ignore", WithheldGridWarning)
            nf = NuisanceFusion(lam=lam, penalty=penalty).fit(summaries)
        site_summaries, estimates, err_m = [], [], []
        for k, (name, x, y, d, folds) in enumerate(sites):
            preds = nf.result(name).predictions(x, folds)
            true_m = np.asarray(sim.nuisance(k, x)["m"]).reshape(len(y), -1)[:, 0]
            err_m.append(float(np.mean((preds["ml_m"] - true_m) ** 2)))
            est = SiteDML(model, n_folds=n_folds, site=name, clip=clip).fit(y=y, d=d, x=x, folds=folds,
                                                                 predictions=preds)
            site_summaries.append(est.summary_)
            estimates.append(float(est.coef_[0]))
        late = LateFusion(inference="none").fit(site_summaries)
        for k, name in enumerate(sim.site_names):
            truth = float(sim.theta[k, 0])
            rows.append({"site": name, "n": int(sim.n_per_site[k]), "method": method,
                         "estimate": estimates[k], "late": float(late.theta_[k, 0]), "theta": truth,
                         "err_site": (estimates[k] - truth) ** 2,
                         "err_late": (float(late.theta_[k, 0]) - truth) ** 2, "err_m": err_m[k]})
    return pd.DataFrame(rows)


def nuisance_fusion_study(n_rep: int, *, random_state: int = 0, **design: Any) -> pd.DataFrame:
    """Run ``n_rep`` replications (sequentially) and stack them with a ``rep`` column."""
    root = as_seed_sequence(random_state)
    out = []
    for r in range(check_int_at_least(n_rep, "n_rep")):
        rep = nuisance_fusion_replication(random_state=child_seed(root, r), **design)
        rep.insert(0, "rep", r)
        out.append(rep)
    return pd.concat(out, ignore_index=True)
