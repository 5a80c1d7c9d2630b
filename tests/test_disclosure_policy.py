"""The site's disclosure policy: its settings, its files, and the caps on what a site answers."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hetmtl.fusion import DisclosurePolicy, GridSummary, KernelGrid, nuisance_targets
from hetmtl.fusion.crossfit import make_folds
from hetmtl.fusion.disclosure import DEFAULT_POLICY, as_policy


def _site(n=300):
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, n)
    d = rng.normal(size=n)
    return x, nuisance_targets("plr", d + x + rng.normal(size=n), d), make_folds(n, 3, 1, np.random.SeedSequence(0))[0]


def test_caps_on_bandwidths_and_grid_points():
    x, targets, folds = _site()
    grid = KernelGrid.from_ranges([[0, 1]], 9)
    with pytest.raises(ValueError, match="bandwidths: 11 candidate bandwidths requested; the site answers at most "
                                         "max_bandwidths = 10"):
        GridSummary.compute(grid, x, targets, folds, np.linspace(0.1, 1, 11))
    with pytest.raises(ValueError, match="bandwidths: 3 candidate .* at most max_bandwidths = 2"):
        GridSummary.compute(grid, x, targets, folds, [0.2, 0.4, 0.8], policy={"max_bandwidths": 2})
    big = KernelGrid.from_ranges([[0, 1]], 101)
    with pytest.raises(ValueError, match="grid: 101 grid points requested; .* max_grid_points = 100"):
        GridSummary.compute(big, x, targets, folds, 0.3, policy=DisclosurePolicy(max_grid_points=100))
    ok = GridSummary.compute(grid, x, targets, folds, [0.2, 0.4], policy={"max_bandwidths": 2})
    assert ok.bandwidths.shape == (2, 1)


def test_policy_settings_files_and_limits(tmp_path):
    path = tmp_path / "policy.json"
    path.write_text(json.dumps({"min_count": 10, "rows_per_coef": 6}))
    pol = as_policy(str(path))
    assert pol.min_count == 10 and pol.rows_per_coef == 6 and pol.min_fold_rows == DEFAULT_POLICY.min_fold_rows
    assert as_policy(None) is DEFAULT_POLICY and as_policy(pol) is pol
    assert DisclosurePolicy.from_dict(pol.to_dict()) == pol
    path.write_text(json.dumps({"min_count": 10, "max_rows": 3}))
    with pytest.raises(ValueError, match=r"policy: unknown setting\(s\) \['max_rows'\]"):
        as_policy(path)
    path.write_text("{broken")
    with pytest.raises(ValueError, match="policy: .* is not valid JSON"):
        as_policy(path)
    with pytest.raises(ValueError, match="policy: expected a DisclosurePolicy"):
        as_policy(3)
    for kw, msg in [({"max_bandwidths": 11}, "max_bandwidths: must be at most 10"),
                    ({"max_grid_points": 0}, "max_grid_points: must be at least 1"),
                    ({"min_count": 0.5}, "min_count: must be a number >= 1"),
                    ({"min_count": True}, "min_count: must be a number"),
                    ({"min_grid_fold_rows": 2.5}, "min_grid_fold_rows: must be a whole number"),
                    ({"fold_rcond": 1e-9}, r"fold_rcond: must be in \[1e-06, 1\)"),
                    ({"privacy": 3}, "privacy: expected a PrivacyBudget")]:
        with pytest.raises(ValueError, match=msg):
            DisclosurePolicy(**kw)


def test_ledger_caps_releases_and_privacy_spent_across_runs(tmp_path):
    from hetmtl.fusion import PrivacyBudget

    x, targets, folds = _site()
    grid = KernelGrid.from_ranges([[0, 1]], 9)
    ledger = tmp_path / "releases.json"
    once = DisclosurePolicy(ledger=str(ledger), max_releases=1)
    GridSummary.compute(grid, x, targets, folds, 0.3, policy=once)
    assert len(json.loads(ledger.read_text())) == 1
    # A second request (e.g. after one more person joined, for differencing) is refused.
    with pytest.raises(ValueError, match="max_releases: the site has released 1 grid summaries"):
        GridSummary.compute(grid, x[:-1], {k: (v[0][:-1], None) for k, v in targets.items()},
                            [f[f < len(x) - 1] for f in folds], 0.3, policy=once)
    budget = PrivacyBudget(1.0, bounds={"ml_l": (-5, 5), "ml_m": (-5, 5)})
    spend = DisclosurePolicy(ledger=str(tmp_path / "dp.json"), total_epsilon=1.5, privacy=budget)
    GridSummary.compute(grid, x, targets, folds, 0.3, policy=spend)
    with pytest.raises(ValueError, match="total_epsilon: epsilon 1 spent of 1.5"):
        GridSummary.compute(grid, x, targets, folds, 0.3, policy=spend)
    with pytest.raises(ValueError, match="ledger: max_releases and total_epsilon count releases"):
        DisclosurePolicy(max_releases=2)
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ValueError, match="ledger: cannot read"):
        GridSummary.compute(grid, x, targets, folds, 0.3,
                            policy=DisclosurePolicy(ledger=str(tmp_path / "bad.json"), max_releases=3))


def test_cross_validation_runs_on_the_folds_a_site_released():
    from hetmtl.fusion import LateFusion, SiteSummary

    from fusion_helpers import residual_sites

    rng = np.random.default_rng(3)
    summ, _, _ = residual_sites(rng, np.array([[0.5], [0.6], [1.5]]), [300, 400, 500])
    s = summ[0]
    # Site 0 withheld its first fold: CV still runs, on the folds every site sent.
    summ[0] = SiteSummary(s.theta, s.J, s.Omega, s.n, site=s.site, folds=s.folds[1:],
                          withheld_fold_rows=(s.folds[0].n,))
    fit = LateFusion(lam="cv", inference="none").fit(summ)
    assert fit.cv_ is not None and fit.lambda_rule_.startswith("cv")
    assert fit.cv_.fold_scores.shape[0] == 4 and np.all(np.isfinite(fit.cv_.score))
