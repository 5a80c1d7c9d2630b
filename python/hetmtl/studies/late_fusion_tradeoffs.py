"""Why some targets of the late-fusion panel conflict: two variations of the default, measured.

Both tables use site estimates drawn as in the summary-level panel (point estimates only, no
intervals), paired across rules within a replication:

- :func:`pretest_table`: pool every site (fixed effect) when Cochran's Q test does not reject
  homogeneity at level ``alpha``, and use robust EB otherwise. A small ``alpha`` brings
  homogeneous sites towards pooling's MSE and costs under mild heterogeneity, where the test
  rarely rejects and pooling is worse than shrinkage.
- :func:`slab_table`: robust EB with other scales ``c`` of the outlying group. A narrow outlying
  group (small ``c``) lets sites a few SEs out keep more of their own estimate, and treats
  ordinary sites in the tails the same way.

Per-site MSE of normal sites is reported over the best of own DML, fixed-effect pooling and BLUP
(DL, REML); outlying sites' over their own DML's.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from ..fusion.blup import random_effects
from ..fusion.robust_eb import robust_eb
from ..simulate.summary_level import SummaryDesign, draw_effects, draw_estimates
from .late_fusion_panel import DESIGNS

PRETEST_LEVELS = (0.05, 0.2, 0.5)
SLAB_SCALES = (2.0, 3.0, 5.0, 10.0, 20.0)
TRADEOFF_DESIGNS = ("homog_K8", "homog_K20", "normal_tau0.5_K10", "normal_tau1_K10",
                    "outliers_small_K10", "outliers_small_K20", "outliers_large_K10")

Rule = Callable[[np.ndarray, np.ndarray], np.ndarray]


def _pretest(alpha: float) -> Rule:
    def rule(y, v):
        fe = random_effects(y, v, tau2=np.zeros(y.shape[0]))
        q = ((y - fe.mu[:, None]) ** 2 / v).sum(axis=1)
        homogeneous = stats.chi2.sf(q, y.shape[1] - 1) > alpha
        return np.where(homogeneous[:, None], fe.blup, robust_eb(y, v).estimate)
    return rule


def _slab(c: float) -> Rule:
    return lambda y, v: robust_eb(y, v, slab_scale=c).estimate


def _table(rules: dict[str, Rule], designs: Sequence[str], n_reps: int, seed: int) -> pd.DataFrame:
    rows = []
    for name in designs:
        design = SummaryDesign(**DESIGNS[name])
        rng = np.random.default_rng([seed, list(DESIGNS).index(name)])
        theta, outlier = draw_effects(design, n_reps, rng)
        y, _ = draw_estimates(design, theta, rng)
        v = np.broadcast_to(1.0 / design.sizes, y.shape).copy()
        competitors = {"own": y, "fixed": random_effects(y, v, tau2=np.zeros(n_reps)).blup,
                       "blup_dl": random_effects(y, v, method="DL").blup,
                       "blup_reml": random_effects(y, v, method="REML").blup}

        def mse(est, mask):
            return float(np.mean(((est - theta) ** 2)[mask])) if mask.any() else np.nan

        best = min(mse(e, ~outlier) for e in competitors.values())
        own_out = mse(y, outlier)
        for label, rule in rules.items():
            est = rule(y, v)
            rows.append({"design": name, "rule": label, "normal_over_best": mse(est, ~outlier) / best,
                         "outlier_over_own": mse(est, outlier) / own_out if outlier.any() else np.nan})
    return pd.DataFrame(rows).pivot(index="design", columns="rule").reindex(list(designs))


def pretest_table(n_reps: int = 1000, seed: int = 3,
                  designs: Sequence[str] = TRADEOFF_DESIGNS) -> pd.DataFrame:
    """Normal sites' MSE over the best competitor for robust EB and its Q-pretest variants."""
    rules = {"robust_eb": _slab(5.0), **{f"pretest_{a:g}": _pretest(a) for a in PRETEST_LEVELS}}
    return _table(rules, designs, n_reps, seed)


def slab_table(n_reps: int = 1000, seed: int = 3,
               designs: Sequence[str] = TRADEOFF_DESIGNS) -> pd.DataFrame:
    """Normal sites over the best competitor and outliers over own DML, per slab scale ``c``."""
    return _table({f"c={c:g}": _slab(c) for c in SLAB_SCALES}, designs, n_reps, seed)
