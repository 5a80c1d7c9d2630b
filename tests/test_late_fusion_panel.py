"""Targets of the default late-fusion method on a reduced summary-level panel.

Each cell runs 400 replications at once through the batched estimators (a few seconds). What is
asserted is what the study in docs/studies/late_fusion shows to hold; the targets it misses (MSE
within 1.05 x fixed-effect pooling for homogeneous sites, outliers within 1.2 x their own MSE,
coverage at most 0.97 for homogeneous sites, MSE within 1.05 x BLUP at tau >= 1 typical SE) are
reported there, not asserted here.
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
                                    np.random.default_rng(20261207), bootstrap_sites=True)
    return _CACHE[name]


def mse(out: dict, method: str, kind: str = "normal") -> float:
    return float(out[method][f"sq_err_{kind}"].mean())


def test_homogeneous_sites_pool_and_beat_blup():
    out = cell("homog_K8")
    # Every site lands in the normal group in nearly every replication.
    assert out["robust_eb"]["all_normal_fused"].mean() >= 0.95
    best_blup = min(mse(out, "blup_dl"), mse(out, "blup_reml"))
    assert mse(out, "robust_eb") <= 1.05 * best_blup
    # Conservative rather than short here (0.99 in the study: the price of covering at tau > 0).
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


@pytest.mark.parametrize("name", ["normal_tau0.5_K10", "normal_tau1_K10", "normal_tau1.5_K10"])
def test_coverage_under_gradual_heterogeneity(name):
    # The study measures 0.92-0.96 for the sites and 0.94-0.98 for the center here, with
    # Monte-Carlo SEs of about 0.006 (sites; taken over replications, since a replication's sites
    # are correlated) and 0.011 (center). Bounds about 2-3 SEs below: 0.90 for the sites, 0.925
    # for the center. BLUP's metafor intervals (sites 0.82-0.90) fail the first; intervals built
    # at a floored tau^2 estimate (center 0.91 at tau = 1-1.5) the second.
    out = cell(name)["robust_eb"]
    sites = out["cover_normal"]
    assert sites.std(ddof=1) / np.sqrt(N_REPS) < 0.008
    assert 0.90 <= sites.mean() <= 0.98
    assert 0.925 <= out["center_cover"].mean() <= 0.99
    assert out["center_inside"].all()


@pytest.mark.parametrize("name, kind", [("normal_tau1_K10", "normal"), ("normal_tau1.5_K10", "normal"),
                                        ("heldout_clusters_2.5se_K12", "normal"),
                                        ("outliers_large_K10", "outlier")])
def test_posterior_site_intervals_cover_more_where_the_bootstrap_undercovers(name, kind):
    # The default's sites take their posterior intervals (tau and the center integrated out);
    # the bootstrap's symmetric ones around the plug-in estimate undercover in these cells (0.85-
    # 0.92 in the study). Paired on the same data sets, the posterior intervals cover more, and
    # the normal sites' are not wider on average.
    out = cell(name)
    post, boot = out["robust_eb"], out["robust_eb_bootstrap"]
    assert np.nanmean(post[f"cover_{kind}"] - boot[f"cover_{kind}"]) > 0.0
    assert np.nanmean(post["width_normal"]) <= np.nanmean(boot["width_normal"])
    assert post["sites_inside"].all()


def test_blup_intervals_undercover_where_robust_eb_holds():
    # The comparison the bounds above rest on, in the same cells.
    out = cell("normal_tau0.5_K10")
    assert out["blup_reml"]["cover_normal"].mean() < 0.88 <= out["robust_eb"]["cover_normal"].mean()


def test_homogeneous_center_interval_is_not_far_above_level():
    # With 20 identical sites the center's interval covers about as a fixed-effect one would.
    out = cell("homog_K20")["robust_eb"]["center_cover"]
    assert 0.93 <= out.mean() <= 0.98


def test_default_of_late_fusion_beats_blup_and_old_fusion_with_outliers():
    # End to end through LateFusion's default on fresh data: the default must be robust EB (a
    # BLUP or the old cross-validated fusion as default fails, see the study: normal sites at
    # 2.3-2.7 x resp. 1.56 x fixed-effect pooling here, robust EB at 0.75-0.87 x).
    from hetmtl.fusion import LateFusion
    from hetmtl.simulate.summary_level import draw_effects, draw_estimates
    from hetmtl.studies.late_fusion_panel import site_summaries

    design = SummaryDesign(**DESIGNS["outliers_small_K10"])
    rng = np.random.default_rng(99)
    reps = 60
    theta, outlier = draw_effects(design, reps, rng)
    _, folds = draw_estimates(design, theta, rng, n_folds=5)
    err = {"default": [], "blup": [], "fusion": [], "fixed": []}
    params = {"default": {}, "blup": {"method": "blup"}, "fusion": {"method": "fusion", "lam": "cv"},
              "fixed": {"method": "fixed"}}
    for r in range(reps):
        sites = site_summaries(design, folds[r])
        for name, p in params.items():
            fit = LateFusion(inference="none", **p).fit(sites)
            err[name].append(np.mean((fit.theta_[~outlier[r], 0] - theta[r, ~outlier[r]]) ** 2))
    m = {k: float(np.mean(v)) for k, v in err.items()}
    assert m["default"] <= 0.9 * m["blup"]
    assert m["default"] <= 0.9 * m["fusion"]
    assert m["default"] <= 1.05 * m["fixed"]
