"""Double-bootstrap level calibration of the robust EB intervals (hetmtl.fusion.eb_calibration)."""

from __future__ import annotations

import numpy as np
import pytest

from hetmtl.fusion import LateFusion
from hetmtl.fusion.eb_calibration import (CALIBRATION_LEVELS, _inner_halfwidths,
                                          coverage_curves, halfwidths_at, level_for,
                                          sorted_quantiles)
from hetmtl.fusion.eb_intervals import EBErrors, eb_halfwidths, robust_eb_errors
from hetmtl.fusion.robust_eb import robust_eb
from hetmtl.fusion.summary import SiteSummary

SIZES = np.geomspace(100, 1000, 10)


def _errors(rng, B=3, n_boot=40, K=6) -> EBErrors:
    err = np.abs(rng.standard_normal((B, n_boot, K)))
    err[rng.random(err.shape) < 0.2] = np.nan       # draws in the other group
    err[:, :, 0] = np.nan
    err[:, 0, 0] = 0.7                               # a site with a single draw of its group
    own = rng.random((B, K)) < 0.7
    return EBErrors(err, np.abs(rng.standard_normal((B, n_boot))), own,
                    rng.uniform(0.5, 1.5, (B, K)), rng.uniform(0, 0.1, (B, K)))


def test_quantiles_at_each_rows_level_equal_the_nominal_rule_row_by_row():
    rng = np.random.default_rng(0)
    errs = _errors(rng)
    site_level, center_level = np.array([0.8, 0.95, 0.99]), np.array([0.9, 0.5, 0.97])
    half, center = halfwidths_at(errs, site_level, center_level, 0.95)
    for b in range(3):
        one = lambda k: k[b:b + 1]  # noqa: E731
        ref_site, _ = eb_halfwidths(one(errs.abs_errors), one(errs.center_abs_errors),
                                    one(errs.own_group), one(errs.own_se), one(errs.own_shift),
                                    site_level[b], axis=1)
        # Sites kept on their own are at the nominal level, whatever the calibrated one.
        ref_own, ref_center = eb_halfwidths(
            one(errs.abs_errors), one(errs.center_abs_errors), one(errs.own_group),
            one(errs.own_se), one(errs.own_shift), 0.95, axis=1)
        ref = np.where(errs.own_group[b], ref_site[0], ref_own[0])
        np.testing.assert_allclose(half[b], ref, rtol=1e-12)
        _, ref_center = eb_halfwidths(one(errs.abs_errors), one(errs.center_abs_errors),
                                      one(errs.own_group), one(errs.own_se), one(errs.own_shift),
                                      center_level[b], axis=1)
        np.testing.assert_allclose(center[b], ref_center[0], rtol=1e-12)
    # All levels at once (the inner intervals) equal one level at a time.
    all_half, all_center = _inner_halfwidths(errs, CALIBRATION_LEVELS)
    for i, lev in enumerate(CALIBRATION_LEVELS):
        h, c = errs.halfwidths(lev)
        np.testing.assert_allclose(all_half[i], h, rtol=1e-12)
        np.testing.assert_allclose(all_center[i], c, rtol=1e-12)


def test_level_for_inverts_the_coverage_curve_row_by_row():
    levels = CALIBRATION_LEVELS
    # Coverage equal to the nominal level: the calibrated level is the target itself.
    exact = np.broadcast_to(levels, (2, len(levels)))
    np.testing.assert_allclose(level_for(exact, levels, 0.95), 0.95)
    np.testing.assert_allclose(level_for(exact, levels, 0.955), 0.955)
    rng = np.random.default_rng(1)
    curves = np.sort(rng.uniform(0.7, 1.0, (20, len(levels))), axis=1)
    got = level_for(curves, levels, 0.95)
    for row, g in zip(curves, got):
        if row[0] >= 0.95:
            assert g == levels[0]
        elif row[-1] < 0.95:
            assert g == levels[-1]
        else:  # the row's curve, inverted by linear interpolation
            assert np.interp(g, levels, row) == pytest.approx(0.95, abs=1e-12)
    assert level_for(np.full((1, len(levels)), np.nan), levels, 0.9)[0] == 0.9


def test_calibrated_level_is_the_exact_one_when_inner_and_outer_worlds_coincide():
    # Outer errors and the n inner errors are draws of one law: an interval at the linear-
    # interpolation quantile of level l (l (n - 1) an integer) covers with probability
    # (l (n - 1) + 1) / (n + 1) exactly, so the calibrated level for 0.95 is known.
    rng = np.random.default_rng(2)
    B, n_outer, K, n = 4, 4000, 5, 101
    outer = np.abs(rng.standard_normal((B, n_outer, K)))
    inner = np.sort(np.abs(rng.standard_normal((B, n_outer, K, n))), axis=-1)
    levels = np.array([0.9, 0.93, 0.94, 0.95, 0.96, 0.97, 0.98])
    half = sorted_quantiles(inner[None], levels[:, None, None, None])
    sites, center = coverage_curves(outer, np.ones(outer.shape, bool), half,
                                    outer[..., 0], half[..., 0])
    exact = (levels * (n - 1) + 1) / (n + 1)
    np.testing.assert_allclose(sites, np.broadcast_to(exact, sites.shape), atol=0.01)
    np.testing.assert_allclose(center, np.broadcast_to(exact, center.shape), atol=0.02)
    target = (0.95 * (n + 1) - 1) / (n - 1)
    np.testing.assert_allclose(level_for(sites, levels, 0.95), target, atol=0.006)
    # With many inner draws the exact level is the nominal one.
    assert target == pytest.approx(0.95, abs=0.01)


def _sites(effects, scale=1.0):
    return [SiteSummary.from_estimate(scale * t, scale / np.sqrt(n), n=float(n), site=f"s{k}")
            for k, (t, n) in enumerate(zip(effects, SIZES))]


def test_calibrated_intervals_contain_the_estimates_and_scale_with_the_units():
    rng = np.random.default_rng(3)
    effects = 0.3 + 0.04 * rng.standard_normal(10) + rng.standard_normal(10) / np.sqrt(SIZES)
    effects[-1] += 0.4
    fits = [LateFusion(n_boot=300, random_state=4, interval_calibration="double")
            .fit(_sites(effects, s)) for s in (1.0, 1000.0)]
    for fit in fits:
        s, c = fit.summary(), fit.center_summary().iloc[0]
        assert np.all((s["fused ci lower"] <= s["fused estimate"])
                      & (s["fused estimate"] <= s["fused ci upper"]))
        assert c["ci lower"] <= c["center"] <= c["ci upper"]
    a, b = (f.summary() for f in fits)
    for col in ("fused estimate", "fused ci lower", "fused ci upper"):
        np.testing.assert_allclose(b[col], 1000 * a[col], rtol=1e-6)
    ca, cb = (f.center_summary() for f in fits)
    np.testing.assert_allclose(cb[["ci lower", "ci upper"]], 1000 * ca[["ci lower", "ci upper"]],
                               rtol=1e-6)
    # Same estimates as the nominal intervals; at_level keeps the calibration.
    plain = LateFusion(n_boot=300, random_state=4).fit(_sites(effects))
    np.testing.assert_allclose(plain.theta_, fits[0].theta_)
    inf = fits[0].inference_
    again = inf.at_level(inf.level)
    np.testing.assert_allclose(again.lower, inf.lower)
    np.testing.assert_allclose(again.center_upper, inf.center_upper)
    with pytest.raises(ValueError, match="interval_calibration"):
        LateFusion(method="blup", interval_calibration="double").fit(_sites(effects))
    with pytest.raises(ValueError, match="interval_calibration"):
        LateFusion(interval_calibration="triple").fit(_sites(effects))


def test_calibration_lifts_site_coverage_where_the_nominal_intervals_undercover():
    # Ten sites with effects normal around 0.3 at 1.5 average site SEs, 200 data sets: the
    # nominal intervals cover 0.92 of the sites; the calibrated ones read a higher quantile.
    # (Reduced outer and inner draws so that the test stays short.)
    from hetmtl.fusion.eb_calibration import calibrated_halfwidths

    rng = np.random.default_rng(1)
    reps, K = 200, 10
    v = np.broadcast_to(1 / SIZES, (reps, K)).copy()
    theta = 0.3 + 1.5 * np.sqrt(np.mean(1 / SIZES)) * rng.standard_normal((reps, K))
    y = theta + np.sqrt(v) * rng.standard_normal((reps, K))
    fit = robust_eb(y, v)
    errs = robust_eb_errors(fit, y, v, n_boot=100, rng=rng)
    nominal, _ = errs.halfwidths(0.95)
    half, _, cal = calibrated_halfwidths(fit, y, v, errs, 0.95, rng=rng, n_outer=25, n_inner=60)
    err = np.abs(fit.estimate - theta)
    before, after = (err <= nominal).mean(), (err <= half).mean()
    assert before < 0.93
    assert after - before >= 0.01 and 0.93 <= after <= 0.97
    assert cal.calibrated(0.95)[0].mean() > 0.95
    assert np.all(half >= 0)
