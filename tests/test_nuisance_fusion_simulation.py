"""Simulation evidence for nuisance fusion on a moderate design (IRM, one covariate, 8 sites of
80 to 500 rows, 20 replications with a fixed seed).

What holds robustly across seeds on this design (and is asserted):

* S1 (identical propensity across sites): the fused propensity has a clearly lower mean squared
  error than each site's own kernel fit, on all sites and on the smaller half;
* S1 and S3 (unrelated nuisances): the per-site squared error of the target, before and after late
  fusion, is no worse with fused nuisances than with per-site ones (within 10%, about the
  Monte-Carlo noise of 20 replications).

The target-level gain in S1 is small on this design (the DML target depends on nuisance errors
only through products of errors): seed-to-seed it ranges from about 10% better to 5% worse, so
it is shown by the study script with Monte-Carlo standard errors, not asserted here.
"""

from __future__ import annotations

import pytest

from hetmtl.studies.nuisance_fusion import nuisance_fusion_study

DESIGN = dict(model="irm", q=1, n_sites=8, n_per_site=[80, 100, 120, 150, 200, 300, 400, 500],
              eta=0.3, n_points=25)
N_REP = 20
COLS = ["err_site", "err_late", "err_m"]


def _mean_errors(scenario):
    df = nuisance_fusion_study(N_REP, scenario=scenario, random_state=1, **DESIGN)
    small = df["n"] <= df.groupby("rep")["n"].transform("median")
    return df.groupby("method")[COLS].mean(), df[small].groupby("method")[COLS].mean()


@pytest.mark.slow
@pytest.mark.parametrize("scenario", ["S1", "S3"])
def test_fused_nuisances_help_when_similar_and_do_no_harm(scenario):
    every, small = _mean_errors(scenario)
    for table in (every, small):
        if scenario == "S1":
            assert table.loc["fused", "err_m"] < 0.8 * table.loc["per-site", "err_m"]
        for col in ("err_site", "err_late"):
            assert table.loc["fused", col] <= 1.10 * table.loc["per-site", col]
