"""Row-level panel of the late-fusion study: real DML on simulated rows, then every method.

The designs are those of the summary-level panel (:mod:`hetmtl.studies.late_fusion_panel`): site
``k`` has true effect ``theta_k`` and ``n_k`` rows of a partially linear model::

    X ~ N(0, I_5),   d = m(X) + V,   y = theta_k d + g(X) + U,   U, V ~ N(0, 1),
    m(X) = 0.5 tanh(X_1) + 0.3 X_2,   g(X) = sin(X_1) + 0.5 X_3^2,

so the DML estimate has standard error close to ``1 / sqrt(n_k)``, as in the summary-level panel.
Each site runs five-fold DML for the partialling-out score with either

- ``"oracle"`` nuisances (the true ``m`` and ``E[y | X] = theta_k m + g``): the site estimate is
  the exact orthogonal-score estimate, with fold summaries and the sandwich variance from the
  rows; cheap, so the main designs run at full replication counts;
- ``"forest"`` nuisances (:class:`~hetmtl.fusion.site_dml.SiteDML` with random forests), where
  nuisance error adds to each site's estimate as in practice.

The site summaries then go through every method of the panel, scored by the same metrics.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..fusion.site_dml import SiteDML
from ..fusion.summary import FoldSummary, SiteSummary
from ..simulate.summary_level import SummaryDesign, draw_effects
from .late_fusion_panel import DESIGNS, N_FOLDS, batched_metrics, method_rows, metric_rows

NUISANCES = ("oracle", "forest")
N_COVARIATES = 5


def _m(X: np.ndarray) -> np.ndarray:
    return 0.5 * np.tanh(X[:, 0]) + 0.3 * X[:, 1]


def _g(X: np.ndarray) -> np.ndarray:
    return np.sin(X[:, 0]) + 0.5 * X[:, 2] ** 2


def simulate_site(theta: float, n: int, rng: np.random.Generator):
    """Rows ``(y, d, X)`` of one site with effect ``theta`` (see the module notes)."""
    X = rng.standard_normal((n, N_COVARIATES))
    d = _m(X) + rng.standard_normal(n)
    y = theta * d + _g(X) + rng.standard_normal(n)
    return y, d, X


def _moments(ry: np.ndarray, rd: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Partialling-out estimate, mean Jacobian and mean squared score of residual rows."""
    theta = (rd * ry).sum() / (rd * rd).sum()
    J = -np.mean(rd * rd)
    Omega = np.mean(((ry - theta * rd) * rd) ** 2)
    return np.array([theta]), np.array([[J]]), np.array([[Omega]])


def oracle_summary(theta: float, y: np.ndarray, d: np.ndarray, X: np.ndarray,
                   rng: np.random.Generator, site: str) -> SiteSummary:
    """Five-fold DML with the true nuisances: fold summaries and the site's summary."""
    m = _m(X)
    rd, ry = d - m, y - (theta * m + _g(X))
    fold = rng.permutation(len(y)) % N_FOLDS
    folds = tuple(FoldSummary(int((fold == f).sum()), *_moments(ry[fold == f], rd[fold == f]))
                  for f in range(N_FOLDS))
    return SiteSummary(*_moments(ry, rd), n=float(len(y)), site=site, folds=folds)


def forest_learner(seed: int):
    """The panel's random forest (50 trees, leaves of at least 5 rows, half the covariates per
    split)."""
    from sklearn.ensemble import RandomForestRegressor

    return RandomForestRegressor(n_estimators=50, min_samples_leaf=5, max_features=0.5,
                                 random_state=seed)


def forest_summary(y: np.ndarray, d: np.ndarray, X: np.ndarray, rng: np.random.Generator,
                   site: str) -> SiteSummary:
    """Five-fold DML with random-forest nuisances (:class:`SiteDML`, partialling out)."""
    l_seed, m_seed, fold_seed = (int(s) for s in rng.integers(0, 2**31, 3))
    est = SiteDML("plr", ml_l=forest_learner(l_seed), ml_m=forest_learner(m_seed),
                  n_folds=N_FOLDS, site=site, random_state=fold_seed)
    return est.fit(y=y, d=d, x=X).summary_


def row_chunk(config: dict[str, Any], seed: np.random.SeedSequence) -> list[dict]:
    """Study function for :func:`hetmtl.studies.run_study`: ``chunk`` replications of a design.

    Config keys: ``design`` (a name of :data:`~hetmtl.studies.late_fusion_panel.DESIGNS`),
    ``nuisance`` (one of :data:`NUISANCES`), ``n_boot``, ``chunk`` and ``fusion_cv`` (whether
    to run the penalized fusion with cross-validated lambda too, one fit per replication), and
    optionally ``bootstrap_sites`` (add robust EB with the bootstrap's site intervals). The
    other methods run batched over the chunk (:func:`~hetmtl.studies.late_fusion_panel.
    batched_metrics`); a row's ``sub`` is its replication inside the chunk.
    """
    if config["nuisance"] not in NUISANCES:
        raise ValueError(f"nuisance: expected one of {NUISANCES}, got {config['nuisance']!r}")
    design = SummaryDesign(**DESIGNS[config["design"]])
    rng = np.random.default_rng(seed)
    theta, outlier = draw_effects(design, int(config["chunk"]), rng)
    target = np.nan if design.kind == "clusters" else design.theta0
    y, v, rows = np.empty(theta.shape), np.empty(theta.shape), []
    for r, th_r in enumerate(theta):
        summaries = []
        for k, (th, n) in enumerate(zip(th_r, design.sizes.astype(int))):
            yk, dk, Xk = simulate_site(th, n, rng)
            summaries.append(oracle_summary(th, yk, dk, Xk, rng, f"s{k}")
                             if config["nuisance"] == "oracle" else forest_summary(yk, dk, Xk, rng,
                                                                                   f"s{k}"))
        y[r] = [s.theta[0] for s in summaries]
        v[r] = [s.cov[0, 0] for s in summaries]
        if config.get("fusion_cv"):
            rows += [{**row, "sub": r} for row in method_rows(
                summaries, th_r, outlier[r], target, n_boot=int(config["n_boot"]),
                seed=int(rng.integers(2**31)), methods=["fusion_cv"])]
    return rows + metric_rows(batched_metrics(y, v, theta, outlier, target, rng,
                                              n_boot=int(config["n_boot"]),
                                              bootstrap_sites=bool(config.get("bootstrap_sites"))))
