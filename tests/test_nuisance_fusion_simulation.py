"""Simulation evidence for nuisance fusion on a moderate design (IRM, one covariate, 8 sites of
80 to 500 rows, 20 replications with a fixed seed).

Asserted (it held for every seed tried, and in a 40-replication study run):

* S1 (identical propensity across sites): the fused propensity has a mean squared error at least
  20% below each site's own kernel fit, on all sites and on the smaller half;
* S3 (unrelated propensities): cross-validation keeps the penalty small enough that the fused
  propensity is no worse than the site's own fit (within 10%).

Not asserted: the squared error of the target itself. On this design it is dominated by heavy
tails of the AIPW score at small sites, and fused nuisances did not lower it reliably (seed to
seed the mean ranged from 10% better to 25% worse); ``scripts/study_nuisance_fusion.py`` shows
those curves with Monte-Carlo standard errors.
"""

from __future__ import annotations

import pytest

from hetmtl.studies.nuisance_fusion import nuisance_fusion_study

DESIGN = dict(model="irm", q=1, n_sites=8, n_per_site=[80, 100, 120, 150, 200, 300, 400, 500],
              eta=0.3, n_points=25)
N_REP = 20


def _mean_errors(scenario):
    df = nuisance_fusion_study(N_REP, scenario=scenario, random_state=1, **DESIGN)
    small = df["n"] <= df.groupby("rep")["n"].transform("median")
    return [df.groupby("method")["err_m"].mean(), df[small].groupby("method")["err_m"].mean()]


@pytest.mark.slow
def test_fused_propensity_is_better_when_shared_and_no_worse_when_unrelated():
    for err in _mean_errors("S1"):
        assert err["fused"] < 0.8 * err["per-site"]
    for err in _mean_errors("S3"):
        assert err["fused"] <= 1.10 * err["per-site"]
