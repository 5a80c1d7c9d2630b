"""Nuisance fusion says when the disclosure rule withheld most grid points at a site: the fused
function there is not the site's own kernel fit, and that should not pass silently."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from hetmtl.fusion import GridSummary, KernelGrid, NuisanceFusion, WithheldGridWarning, nuisance_targets
from hetmtl.fusion.crossfit import make_folds
from hetmtl.fusion.disclosure import SIMULATION_POLICY

GRID = KernelGrid((np.linspace(-2, 2, 25),))


def _summary(n, seed, name, bandwidths, spread=2.0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-spread, spread, (n, 1))
    d = np.sin(x[:, 0]) + rng.normal(size=n)
    y = 0.5 * d + np.cos(x[:, 0]) + rng.normal(size=n)
    folds = make_folds(n, 5, 1, np.random.SeedSequence(seed))[0]
    return GridSummary.compute(GRID, x, nuisance_targets("plr", y, d), folds, bandwidths, site=name,
                               policy=SIMULATION_POLICY)


def test_small_sites_that_release_few_points_are_named_with_their_counts():
    # Two large sites over the whole range; a small site (folds of 8 rows) and a site whose rows
    # cover a corner of the grid only, at a narrow bandwidth.
    h = [[0.15]]
    summ = [_summary(600, 1, "large a", h), _summary(500, 2, "large b", h), _summary(40, 3, "small", h),
            _summary(300, 4, "corner", h, spread=0.5)]
    released = {s.site: int(s.nuisances["ml_l"].released[0].sum()) for s in summ}
    assert released["large a"] > 12 and released["large b"] > 12
    assert released["small"] < 12 and released["corner"] < 12
    with pytest.warns(WithheldGridWarning) as record:
        nf = NuisanceFusion(lam=0.0).fit(summ)
    messages = [str(w.message) for w in record]
    assert len(messages) == 2                                        # one per nuisance
    for role, message in zip(("ml_l", "ml_m"), messages):
        assert message.startswith(f"nuisance {role!r}, chosen bandwidth [0.15]: most grid points withheld")
        counts = {s.site: int(s.nuisances[role].released[0].sum()) for s in summ}
        assert f"site 'small' {counts['small']} of 25" in message
        assert f"site 'corner' {counts['corner']} of 25" in message
        assert "large" not in message
        np.testing.assert_array_equal(nf.n_released_[role], [counts[s.site] for s in summ])


def test_the_count_is_taken_at_the_chosen_bandwidth():
    # At the narrow bandwidth the small site releases little, at the wide one nearly everything;
    # cross-validation decides which one counts.
    H = [[0.15], [3.0]]
    summ = [_summary(600, 1, "large a", H), _summary(500, 2, "large b", H), _summary(40, 3, "small", H)]
    np.testing.assert_array_equal(summ[2].nuisances["ml_l"].released.sum(axis=1), [0, 25])
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        nf = NuisanceFusion(n_lambda=4).fit(summ)
    for role in ("ml_l", "ml_m"):
        b = int(np.flatnonzero((np.asarray(H) == nf.bandwidth_[role]).all(axis=1))[0])
        expected = [int(s.nuisances[role].released[b].sum()) for s in summ]
        np.testing.assert_array_equal(nf.n_released_[role], expected)
        warned = [str(w.message) for w in record if issubclass(w.category, WithheldGridWarning)
                  and str(w.message).startswith(f"nuisance {role!r}")]
        assert bool(warned) == (min(expected) < 12.5)


def test_no_warning_when_every_site_releases_most_points():
    summ = [_summary(600, 1, "a", [[1.0]]), _summary(500, 2, "b", [[1.0]])]
    with warnings.catch_warnings():
        warnings.simplefilter("error", WithheldGridWarning)
        nf = NuisanceFusion(lam="cv", n_lambda=4).fit(summ)
    assert (nf.n_released_["ml_l"] >= 13).all()
