"""Shared builders for fusion tests: site summaries from residualized (Yt, Dt) data."""

from __future__ import annotations

import numpy as np

from hetmtl.fusion.summary import FoldSummary, SiteSummary


def plr_moments(yt: np.ndarray, dt: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Partialling-out estimate, Jacobian and score covariance from residualized data."""
    dt = dt.reshape(len(yt), -1)
    G = dt.T @ dt / len(yt)
    theta = np.linalg.solve(G, dt.T @ yt / len(yt))
    psi = (yt - dt @ theta)[:, None] * dt
    return theta, -G, psi.T @ psi / len(yt)


def residual_site(rng: np.random.Generator, theta: np.ndarray, n: int, n_folds: int = 5,
                  site: str = "site", noise: float = 1.0):
    """Simulate residualized PLR data for one site; return (summary, yt, dt)."""
    theta = np.atleast_1d(theta)
    dt = rng.normal(size=(n, theta.size))
    yt = dt @ theta + noise * rng.normal(size=n)
    folds = []
    for idx in np.array_split(rng.permutation(n), n_folds):
        th_f, J_f, O_f = plr_moments(yt[idx], dt[idx])
        folds.append(FoldSummary(len(idx), th_f, J_f, O_f))
    th, J, O = plr_moments(yt, dt)
    names = ["theta"] if theta.size == 1 else [f"theta{j}" for j in range(theta.size)]
    return SiteSummary(th, J, O, n, site=site, coef_names=names, folds=tuple(folds)), yt, dt


def residual_sites(rng: np.random.Generator, thetas: np.ndarray, sizes, **kw):
    """Summaries (and row-level residual data) for several sites."""
    out = [residual_site(rng, t, int(n), site=f"s{k}", **kw) for k, (t, n) in
           enumerate(zip(thetas, sizes))]
    return [o[0] for o in out], [o[1] for o in out], [o[2] for o in out]


def agreeing_sites_and_one_far(seed: int = 4) -> dict[str, SiteSummary]:
    """Published estimates (SE 0.05) of seven sites with effect 0.3 and one with 1.5, 24 SEs out."""
    rng = np.random.default_rng(seed)
    theta = np.r_[np.full(7, 0.3), 1.5]
    return {f"s{k}": SiteSummary.from_estimate([t + 0.05 * rng.standard_normal()], [0.05], n=400)
            for k, t in enumerate(theta)}
