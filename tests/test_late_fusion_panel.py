"""Targets of the default late-fusion method on a reduced summary-level panel.

Each cell runs 400 replications at once through the batched estimators (a few seconds). What is
asserted is what the study in docs/studies/late_fusion shows to hold; the targets it misses (MSE
within 1.05 x fixed-effect pooling for homogeneous sites, outliers within 1.2 x their own MSE,
coverage at most 0.97 for homogeneous sites and at least 0.93 for tau >= 1 typical SE, MSE
within 1.05 x BLUP under gradual heterogeneity) are reported there, not asserted here.
"""

from __future__ import annotations

import numpy as np
import pytest

from hetmtl.simulate.summary_level import SummaryDesign
from hetmtl.studies.late_fusion_panel import COMPETITORS, DESIGNS, batched_cell

N_REPS = 400
_CACHE: dict[str, dict] = {}


def cell(name: str) -> dict:
    if name not in _CACHE:
        _CACHE[name] = batched_cell(SummaryDesign(**DESIGNS[name]), N_REPS,
                                    np.random.default_rng(20261207))
    return _CACHE[name]


def mse(out: dict, method: str, kind: str = "normal") -> float:
    return float(out[method][f"sq_err_{kind}"].mean())


def test_homogeneous_sites_pool_and_beat_blup():
    out = cell("homog_K8")
    # Every site lands in the normal group in nearly every replication.
    assert out["robust_eb"]["all_normal_fused"].mean() >= 0.95
    best_blup = min(mse(out, "blup_dl"), mse(out, "blup_reml"))
    assert mse(out, "robust_eb") <= 1.05 * best_blup
    assert out["robust_eb"]["cover_normal"].mean() >= 0.93
    assert 0.93 <= out["robust_eb"]["center_cover"].mean()


def test_outliers_at_small_sites_neither_pull_the_center_nor_spoil_the_others():
    out = cell("outliers_small_K10")
    best = min(mse(out, m) for m in COMPETITORS)
    best_blup = min(mse(out, "blup_dl"), mse(out, "blup_reml"))
    assert mse(out, "robust_eb") <= 1.05 * best
    assert mse(out, "robust_eb") <= 0.90 * best_blup          # at least 10% below BLUP
    # BLUP's center is dragged by the outliers; robust EB's stays with the normal sites.
    center = out["robust_eb"]["center_sq_err"].mean()
    assert center <= 0.25 * out["blup_reml"]["center_sq_err"].mean()
    # ... and is about as good as fixed-effect pooling of all sites would be without outliers:
    # within 1.5 x the variance of the GLS mean of the normal sites.
    design = SummaryDesign(**DESIGNS["outliers_small_K10"])
    normal_n = design.sizes[~design.outlier_mask()]
    assert center <= 1.5 / normal_n.sum()
    assert out["robust_eb"]["cover_normal"].mean() >= 0.93
    assert out["robust_eb"]["center_cover"].mean() >= 0.93


@pytest.mark.parametrize("name", ["normal_tau0.5_K10", "normal_tau1_K10"])
def test_gradual_heterogeneity_stays_close_to_blup(name):
    # The target is 1.05 x BLUP; the study measures 1.00-1.07 (the price of watching for
    # outliers), so this guards the measured level, not the target.
    out = cell(name)
    best_blup = min(mse(out, "blup_dl"), mse(out, "blup_reml"))
    assert mse(out, "robust_eb") <= 1.12 * best_blup
    assert mse(out, "robust_eb") <= 1.05 * min(mse(out, "own"), mse(out, "fixed"))


def test_coverage_with_mild_heterogeneity():
    out = cell("normal_tau0.5_K10")
    assert 0.93 <= out["robust_eb"]["cover_normal"].mean() <= 0.97
    assert 0.93 <= out["robust_eb"]["center_cover"].mean()
