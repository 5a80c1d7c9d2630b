"""Differential privacy of grid sums: the analytic Gaussian mechanism, the sensitivity bound, the
noise actually added, and the site's settings checked."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm

from hetmtl.fusion import GridSummary, KernelGrid, nuisance_targets
from hetmtl.fusion.crossfit import make_folds
from hetmtl.fusion.disclosure import DisclosurePolicy
from hetmtl.fusion.privacy import (PrivacyBudget, gaussian_sigma, grid_sensitivity,
                                   kernel_sq_bound)


@pytest.mark.parametrize("eps,delta", [(0.1, 1e-5), (1.0, 1e-6), (8.0, 1e-8)])
def test_analytic_gaussian_sigma_meets_its_privacy_curve(eps, delta):
    s = 2.5
    sigma = gaussian_sigma(eps, delta, s)

    def curve(sig):
        a, b = s / (2 * sig), eps * sig / s
        return norm.cdf(a - b) - np.exp(eps) * norm.cdf(-a - b)

    assert curve(sigma) == pytest.approx(delta, rel=1e-6)
    assert curve(0.99 * sigma) > delta                       # the smallest such sigma
    if eps < 1:  # never noisier than the classical mechanism where that one applies
        assert sigma <= s * np.sqrt(2 * np.log(1.25 / delta)) / eps
    assert gaussian_sigma(eps, delta, 2 * s) == pytest.approx(2 * sigma, rel=1e-8)


@pytest.mark.parametrize("kernel", ["gaussian", "epanechnikov"])
def test_kernel_square_bound_holds_at_every_point(kernel):
    rng = np.random.default_rng(0)
    for axes, tight in [((np.sort(rng.uniform(0, 4, 15)), np.linspace(-1, 1, 9)), False),
                        ((np.linspace(0, 4, 15), np.linspace(-1, 1, 9)), True)]:
        h = np.array([0.3, 0.2])
        bound = kernel_sq_bound(axes, h, kernel)
        pts = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 2)
        x = np.column_stack([rng.uniform(-1, 5, 4000), rng.uniform(-2, 2, 4000)])
        u = (pts[None] - x[:, None]) / h
        k = np.exp(-0.5 * u**2) if kernel == "gaussian" else np.maximum(0, 1 - u**2)
        worst = (k.prod(-1) ** 2).sum(1).max()
        assert worst <= bound
        if tight:   # equal spacing: within a factor 2 per axis of the true worst case
            assert bound < 4 * worst, (bound, worst)
            one_axis = (np.exp(-0.5 * u[..., 0]**2) if kernel == "gaussian"
                        else np.maximum(0, 1 - u[..., 0]**2))[:, ::9]
            assert kernel_sq_bound(axes[:1], h[:1], kernel) < 2 * (one_axis**2).sum(1).max()


def _site(n=500, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-2, 2, n)
    d = (rng.uniform(size=n) < 0.5).astype(float)
    y = d + np.sin(x) + rng.normal(size=n)
    return x, y, d, make_folds(n, 2, 1, np.random.SeedSequence(seed))[0]


def test_noise_has_the_calibrated_scale_and_release_uses_the_noisy_sums():
    x, y, d, folds = _site()
    grid = KernelGrid.from_ranges([[-2, 2]], 15)
    H = [[0.5], [1.0]]
    budget = PrivacyBudget(epsilon=2.0, delta=1e-6, bounds={"ml_l": (-4, 4)}, random_state=3)
    exact = GridSummary.compute(grid, x, nuisance_targets("plr", y, d), folds, H, threshold=1,
                                policy=DisclosurePolicy(min_count=1))
    noisy = GridSummary.compute(grid, x, nuisance_targets("plr", y, d), folds, H, threshold=1,
                                policy=DisclosurePolicy(min_count=1, privacy=budget))
    sens = grid_sensitivity(grid.axes, np.array(H), "gaussian", [4.0, 1.0])
    sigma = gaussian_sigma(2.0, 1e-6, sens)
    assert noisy.privacy["sigma"] == pytest.approx(sigma)
    assert noisy.privacy["epsilon"] == 2.0 and noisy.privacy["mechanism"] == "gaussian"
    diffs = []
    for role in ("ml_l", "ml_m"):
        e, p = exact.nuisances[role], noisy.nuisances[role]
        rel = p.released
        assert np.all(p.M[..., 0, 0][:, :, ~rel[0]][0] == 0)   # withheld stay zero
        assert np.all(p.M[..., 0, 0].transpose(1, 0, 2)[:, rel] >= 1)   # released: noisy S0 >= threshold
        diffs.append((p.M - e.M)[..., 0, 0].transpose(1, 0, 2)[:, rel])
        diffs.append((p.V - e.V)[..., 0].transpose(1, 0, 2)[:, rel])
        assert not np.array_equal(p.n_rows, e.n_rows)
    z = np.concatenate([v.ravel() for v in diffs]) / sigma
    assert z.size > 100
    assert abs(z.std() - 1) < 0.15 and abs(z.mean()) < 0.15
    back = GridSummary.from_dict(noisy.to_dict())
    assert back.privacy == noisy.privacy


def test_privacy_settings_are_checked():
    x, y, d, folds = _site()
    grid = KernelGrid.from_ranges([[-2, 2]], 9)
    with pytest.raises(ValueError, match="bounds: differential privacy needs a clipping range .*'ml_l'"):
        GridSummary.compute(grid, x, nuisance_targets("plr", y, d), folds, 0.5,
                            policy=DisclosurePolicy(privacy=PrivacyBudget(1.0)))
    with pytest.raises(ValueError, match="local-constant fit only"):
        GridSummary.compute(KernelGrid.from_ranges([[-2, 2]], 9, fit="linear"), x,
                            nuisance_targets("plr", y, d), folds, 0.5,
                            policy=DisclosurePolicy(privacy=PrivacyBudget(1.0, bounds={"ml_l": (-3, 3)})))
    for kw, msg in [({"epsilon": 0}, "epsilon: must be a positive"), ({"epsilon": "a"}, "epsilon: must be a finite"),
                    ({"epsilon": 1, "delta": 1}, r"delta: must be in \(0, 1\)"),
                    ({"epsilon": 1, "bounds": {"ml_l": (2, 1)}}, "low must be below high")]:
        with pytest.raises(ValueError, match=msg):
            PrivacyBudget(**kw)
    pol = DisclosurePolicy.from_dict({"privacy": {"epsilon": 0.5, "bounds": {"ml_l": [-1, 1]}}})
    assert pol.privacy.bounds == {"ml_l": (-1.0, 1.0)}
    assert DisclosurePolicy.from_dict(pol.to_dict()) == pol
