"""Nuisance fusion: lambda = 0 reproduces each site's own kernel fit, DML with the fused nuisances
matches DoubleML given the same external predictions, disclosure control, fusion at large lambda."""

from __future__ import annotations

import doubleml as dml
from doubleml.utils.propensity_score_processing import PSProcessorConfig
import numpy as np
import pandas as pd
import pytest
from scipy.interpolate import RegularGridInterpolator
from sklearn.linear_model import LinearRegression, LogisticRegression

from hetmtl.fusion import (FusedNuisance, GridSummary, KernelGrid, NuisanceFusion, SiteDML,
                           WithheldGridWarning, nuisance_targets, site_quantiles)
from hetmtl.fusion.crossfit import labels_from_tests, make_folds
from hetmtl.fusion.disclosure import SIMULATION_POLICY


RTOL = 1e-8


def _sites(K=4, d=1, binary=False, seed=0, n_range=(250, 400), m=None, g=None):
    """Sites with X uniform on [-2, 2]^d, PLR (continuous d) or IRM (binary d) data, 5 folds."""
    rng = np.random.default_rng(seed)
    out = []
    for k in range(K):
        n = int(rng.integers(*n_range))
        x = rng.uniform(-2, 2, (n, d))
        s = x.sum(1)
        if binary:
            dd = (rng.uniform(size=n) < 1 / (1 + np.exp(-s))).astype(float)
        else:
            dd = np.sin(s) + rng.normal(size=n)
        y = 0.5 * dd + np.cos(s) + 0.3 * k + rng.normal(size=n)
        folds = make_folds(n, 5, 1, np.random.SeedSequence([seed, k]))[0]
        out.append((x, y, dd, folds))
    return out


def _grid(sites, m, **kw):
    return KernelGrid.from_site_quantiles([site_quantiles(s[0]) for s in sites], m, **kw)


def _summaries(sites, grid, h, model="plr", threshold=5.0, policy=None):
    return [GridSummary.compute(grid, x, nuisance_targets(model, y, dd), folds, h, site=f"s{k}",
                                threshold=threshold, policy=policy)
            for k, (x, y, dd, folds) in enumerate(sites)]


def _own_fit(grid, x, t, rows_train, h):
    """Plain NumPy local fit of a site's training rows at the grid points (no fusion)."""
    pts = grid.points
    U = (x[rows_train, None, :] - pts[None]) / h
    K = np.exp(-0.5 * U ** 2).prod(-1) if grid.kernel == "gaussian" else np.maximum(0, 1 - U ** 2).prod(-1)
    if grid.fit == "constant":
        return (K * t[rows_train, None]).sum(0) / K.sum(0)
    out = np.empty(len(pts))
    for g in range(len(pts)):  # reference only: a plain weighted least-squares per grid point
        Z = np.column_stack([np.ones(rows_train.sum()), x[rows_train] - pts[g]])
        W = K[:, g]
        out[g] = np.linalg.solve(Z.T @ (W[:, None] * Z), Z.T @ (W * t[rows_train]))[0]
    return out


@pytest.mark.parametrize("d, fit, penalty", [(1, "constant", "function"), (1, "linear", "pointwise"),
                                             (2, "constant", "pointwise"), (2, "linear", "function")])
def test_lambda_zero_equals_each_sites_own_fit(d, fit, penalty):
    sites = _sites(K=3, d=d, seed=d)
    grid = _grid(sites, 9 if d == 1 else 6, fit=fit)
    h = np.full(d, 0.6 if d == 1 else 1.0)
    # Release every point, even the corners (simulated data: the site lowers its own floor).
    summ = _summaries(sites, grid, h, threshold=1.0, policy=SIMULATION_POLICY)
    for s in summ:
        assert all(v.released.all() for v in s.nuisances.values())
    nf = NuisanceFusion(lam=0.0, penalty=penalty).fit(summ)
    for k, (x, y, dd, folds) in enumerate(sites):
        fused = nf.result(f"s{k}")
        preds = fused.predictions(x, folds)
        labels = labels_from_tests(folds, len(y))
        for role, t in (("ml_l", y), ("ml_m", dd)):
            ref = np.empty(len(y))
            for f in range(5):
                own = _own_fit(grid, x, t, labels != f, h).reshape(grid.shape)
                ref[labels == f] = RegularGridInterpolator(grid.axes, own)(x[labels == f])
            np.testing.assert_allclose(preds[role], ref, rtol=1e-7, atol=1e-9)


def _doubleml_frame(x, y, dd):
    df = pd.DataFrame(x, columns=[f"x{j}" for j in range(x.shape[1])])
    df["y"], df["d"] = y, dd
    return df


def _smpls(folds, n):
    return [[(np.setdiff1d(np.arange(n), t), t) for t in folds]]


def test_plr_with_fused_nuisances_matches_doubleml_external_predictions():
    sites = _sites(K=3, d=2, seed=4)
    grid = _grid(sites, 7)
    nf = NuisanceFusion(lam=0.0).fit(_summaries(sites, grid, [0.7, 0.7]))
    for k, (x, y, dd, folds) in enumerate(sites):
        preds = nf.result(f"s{k}").predictions(x, folds)
        ours = SiteDML("plr", n_folds=5).fit(y=y, d=dd, x=x, folds=folds, predictions=preds)
        ref = dml.DoubleMLPLR(dml.DoubleMLData(_doubleml_frame(x, y, dd), "y", "d"), LinearRegression(),
                              LinearRegression(), draw_sample_splitting=False)
        ref.set_sample_splitting(_smpls(folds, len(y)))
        ref.fit(external_predictions={"d": {"ml_l": preds["ml_l"][:, None], "ml_m": preds["ml_m"][:, None]}})
        np.testing.assert_allclose(ours.coef_, ref.coef, rtol=RTOL)
        np.testing.assert_allclose(ours.se_, ref.se, rtol=RTOL)
        assert ours.summary_.metadata["learners"] == {"ml_l": "external", "ml_m": "external"}


@pytest.mark.parametrize("lam", [0.0, "cv"])
def test_irm_propensity_fusion_matches_doubleml_external_predictions(lam):
    sites = _sites(K=3, d=1, binary=True, seed=5)
    grid = _grid(sites, 11)
    summ = _summaries(sites, grid, [[0.5], [0.8]], model="irm")
    assert summ[0].nuisances["ml_m"].binary and not summ[0].nuisances["ml_g1"].binary
    nf = NuisanceFusion(lam=lam).fit(summ)
    for k, (x, y, dd, folds) in enumerate(sites):
        preds = nf.result(f"s{k}").predictions(x, folds)
        assert np.all((preds["ml_m"] >= 0) & (preds["ml_m"] <= 1))
        ours = SiteDML("irm", n_folds=5, clip=0.01).fit(y=y, d=dd, x=x, folds=folds, predictions=preds)
        ref = dml.DoubleMLIRM(dml.DoubleMLData(_doubleml_frame(x, y, dd), "y", "d"), LinearRegression(),
                              LogisticRegression(),
                              ps_processor_config=PSProcessorConfig(clipping_threshold=0.01),
                              draw_sample_splitting=False)
        ref.set_sample_splitting(_smpls(folds, len(y)))
        ref.fit(external_predictions={"d": {r: preds[r][:, None] for r in ("ml_g0", "ml_g1", "ml_m")}})
        np.testing.assert_allclose(ours.coef_, ref.coef, rtol=RTOL)
        np.testing.assert_allclose(ours.se_, ref.se, rtol=RTOL)


def test_large_lambda_fuses_every_site_to_the_center():
    sites = _sites(K=4, d=1, seed=6)
    grid = _grid(sites, 9)
    nf = NuisanceFusion(lam=1e6).fit(_summaries(sites, grid, 0.6))
    vals = nf.values_["ml_m"]  # (K, F, G)
    np.testing.assert_allclose(vals, np.broadcast_to(nf.center_["ml_m"][None], vals.shape), atol=1e-8)


def test_cv_picks_full_fusion_for_identical_functions_and_less_for_shifted_ones():
    """ml_m is the same at every site; ml_l is shifted by 0.3 k, so fusing it fully is wrong."""
    sites = _sites(K=6, d=1, seed=7, n_range=(300, 400))
    grid = _grid(sites, 15)
    nf = NuisanceFusion().fit(_summaries(sites, grid, [[0.3], [0.6]]))
    assert nf.lambda_fraction_["ml_m"] > nf.lambda_fraction_["ml_l"]
    assert nf.lambda_fraction_["ml_l"] < 0.1
    assert nf.cv_loss_["ml_l"].shape == (2, 13)


def test_disclosure_threshold_withholds_sparse_grid_points(tmp_path):
    rng = np.random.default_rng(8)
    n = 200
    x = np.concatenate([rng.uniform(0, 1, n - 3), [2.9, 2.95, 3.0]])[:, None]  # 3 rows near x = 3
    y = rng.normal(size=n)
    folds = make_folds(n, 2, 1, np.random.SeedSequence(1))[0]
    grid = KernelGrid((np.linspace(0, 3, 13),), kernel="epanechnikov")
    s = GridSummary.compute(grid, x, {"ml_l": (y, None)}, folds, 0.3, threshold=5)
    ref = grid.sums(x, y, 0.3, folds=labels_from_tests(folds, n))
    expected = np.all((ref.count >= 5) & (ref.M[..., 0, 0] >= 5), axis=0)
    rel = s.nuisances["ml_l"].released[0]
    np.testing.assert_array_equal(rel, expected)
    assert not rel[-1] and rel[0]
    assert np.all(s.nuisances["ml_l"].M[0][:, ~rel] == 0) and np.all(s.nuisances["ml_l"].V[0][:, ~rel] == 0)
    s.to_json(tmp_path / "grid.json")
    back = GridSummary.from_json(tmp_path / "grid.json")
    assert back.threshold == 5.0
    np.testing.assert_array_equal(back.nuisances["ml_l"].released, s.nuisances["ml_l"].released)
    np.testing.assert_allclose(back.nuisances["ml_l"].M, s.nuisances["ml_l"].M)
    # The center treats withheld points as missing: the site still gets finite predictions there.
    other = GridSummary.compute(grid, x[:-3], {"ml_l": (y[:-3], None)}, [f[f < n - 3] for f in folds],
                                0.3, site="other")
    with pytest.warns(WithheldGridWarning, match="site 'site' 5 of 13, site 'other' 5 of 13 released"):
        nf = NuisanceFusion(lam=0.0).fit([s, other])
    fused = nf.result("site")
    assert np.all(np.isfinite(fused.predict("ml_l", x, folds)))
    fused.to_json(tmp_path / "fused.json")
    again = FusedNuisance.from_json(tmp_path / "fused.json")
    np.testing.assert_allclose(again.predict("ml_l", x, folds), fused.predict("ml_l", x, folds))


def test_bad_input():
    sites = _sites(K=2, d=1, seed=9)
    grid = _grid(sites, 9)
    summ = _summaries(sites, grid, 0.6)
    other = KernelGrid.from_ranges([[-3, 3]], 9)
    x, y, dd, folds = sites[0]
    with pytest.raises(ValueError, match="different grid"):
        NuisanceFusion().fit([summ[0], GridSummary.compute(other, x, nuisance_targets("plr", y, dd),
                                                           folds, 0.6, site="z")])
    with pytest.raises(ValueError, match=r"lam: must lie in \[0, inf\)"):
        NuisanceFusion(lam=-1.0).fit(summ)
    with pytest.raises(ValueError, match="site names must be unique"):
        NuisanceFusion().fit([summ[0], summ[0]])
    with pytest.raises(ValueError, match="X: row .* lies outside the grid's range"):
        GridSummary.compute(KernelGrid.from_ranges([[0, 1]], 5), x, {"ml_l": (y, None)}, folds, 0.5)
    with pytest.raises(ValueError, match="predictions: external predictions need the sample splits"):
        SiteDML().fit(y=y, d=dd, x=x, predictions={"ml_l": y})
    with pytest.raises(ValueError, match="predictions\\['ml_l'\\]: expected shape"):
        SiteDML().fit(y=y, d=dd, x=x, folds=folds, predictions={"ml_l": y[:-1]})
    with pytest.raises(ValueError, match="unknown role 'ml_g'"):
        SiteDML().fit(y=y, d=dd, x=x, folds=folds, predictions={"ml_g": y})
    d = summ[0].to_dict()
    d["rows"] = [1, 2]
    with pytest.raises(ValueError, match="unknown field"):
        GridSummary.from_dict(d)


def test_site_grid_summary_uses_the_splits_of_site_dml():
    from hetmtl.fusion.grid_summary import site_grid_summary

    x, y, dd, _ = _sites(K=1, d=1, binary=True, seed=11)[0]
    df = pd.DataFrame({"y": y, "d": dd, "x": x[:, 0]})
    grid = KernelGrid.from_ranges([[-2, 2]], 9)
    gs, folds = site_grid_summary(df, y="y", d="d", x=["x"], grid=grid, bandwidths=0.7, model="irm",
                                  n_folds=4, random_state=3, site="A")
    fit = SiteDML("irm", ml_g=LinearRegression(), ml_m=LogisticRegression(), n_folds=4,
                  random_state=3).fit(df, y="y", d="d", x=["x"])
    for a, b in zip(folds, fit.folds_[0]):
        np.testing.assert_array_equal(a, b)
    ref = GridSummary.compute(grid, x, nuisance_targets("irm", y, dd), folds, 0.7, site="A")
    for role in ("ml_g0", "ml_g1", "ml_m"):
        np.testing.assert_array_equal(gs.nuisances[role].M, ref.nuisances[role].M)
        np.testing.assert_array_equal(gs.nuisances[role].n_rows, ref.nuisances[role].n_rows)


def test_lambda_path_with_missing_grid_values_converges():
    """Two sites with one unreleased grid point each: warm starts along the path used to stop
    short of the tolerance here; every lambda must converge (no ConvergenceWarning) and match a
    cold solve."""
    from hetmtl.fusion.kernel_grid_core import fused_grid_solve
    from hetmtl.fusion.nuisance_fusion import _FoldProblem, _solve_path
    from hetmtl.fusion.fused import make_options

    D = np.array([[0.0, 0.20060284166874895, 0.24497214397630018, 0.21286431413161216],
                  [0.21475802747080733, 0.2545627261572478, 0.252854371410293, 0.0]])
    th = np.array([[0.0, 0.32860979453570854, -0.08850884212396036, -0.6662207437986605],
                   [1.4829979801521662, 1.1610684719052828, 1.066269987608683, 0.0]])
    n = np.array([143.0, 143.0])
    lams = np.append(2.0492892498733237 * 0.5336 ** np.arange(12), 0.0)
    pb = _FoldProblem(value=th, curvature=D * n[:, None], n_train=n)
    theta, center = _solve_path(pb, lams, "function", None, make_options(tol=1e-9))
    w = np.sqrt(n)

    def objective(a, u):
        a = np.where(D > 0, a, u)  # unreleased values sit at the center
        return 0.5 * np.sum(n[:, None] * D * (a - th) ** 2) + lam * w @ np.linalg.norm(a - u, axis=1)

    # With two sites the center is not unique (any point between them); compare objectives.
    for i, lam in enumerate(lams):
        ref = fused_grid_solve(D, th, n, lam, tol=1e-9)
        assert objective(theta[i], center[i]) <= objective(ref.theta, ref.center) + 1e-9


def test_cv_scores_on_the_smallest_bandwidth_that_released_anything():
    # Small sites: at the smallest candidate bandwidth no grid point reaches the disclosure
    # threshold in every fold, so that bandwidth's held-out sums are all zero. Scoring on them
    # would rate every lambda alike (and pick full fusion by the tie) although the sites' outcome
    # functions differ by a large shift.
    sites = _sites(K=4, n_range=(90, 110), seed=3)
    sites = [(x, y + 3.0 * k, dd, folds) for k, (x, y, dd, folds) in enumerate(sites)]
    grid = _grid(sites, 15)
    H = np.array([[0.05], [1.0]])
    summ = _summaries(sites, grid, H, policy=SIMULATION_POLICY)   # folds of about 20 rows
    assert not any(s.nuisances["ml_l"].released[0].any() for s in summ)
    nf = NuisanceFusion().fit(summ)
    loss = nf.cv_loss_["ml_l"][1]
    assert np.ptp(loss) > 0.0
    assert nf.lambda_fraction_["ml_l"] < 1.0
    # Each site keeps its own level: the fused outcome functions stay about 3 apart.
    levels = nf.values_["ml_l"].mean(axis=(1, 2))
    assert np.all(np.diff(levels) > 2.0)


def test_nothing_released_at_any_bandwidth_is_a_clear_error():
    sites = _sites(K=3, n_range=(20, 25), seed=4)
    summ = _summaries(sites, _grid(sites, 15), np.array([[0.02], [0.05]]), policy=SIMULATION_POLICY)
    with pytest.raises(ValueError, match="summaries: no site released any grid point"):
        NuisanceFusion().fit(summ)
