"""The late-fusion data-generating process: design, truth, reproducibility, validation."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import RandomForestRegressor

from hetmtl.simulate import LateFusionSites, make_late_fusion_sites


def _site_rows(sim: LateFusionSites, k: int) -> pd.DataFrame:
    return sim.data[sim.data["site"] == sim.site_names[k]]


def _pairwise_corr(values: np.ndarray) -> np.ndarray:
    c = np.corrcoef(values)
    return c[np.triu_indices(values.shape[0], 1)]


# ----------------------------------------------------------------------------- shapes and columns

@pytest.mark.parametrize("p,q", [(1, 10), (3, 2), (1, 1), (2, 1)])
def test_shapes_and_columns(p, q):
    sim = make_late_fusion_sites(n_sites=4, n_per_site=50, p=p, q=q, random_state=0)
    d_cols = ["d"] if p == 1 else [f"d{j + 1}" for j in range(p)]
    x_cols = [f"x{j + 1}" for j in range(q)]
    assert list(sim.data.columns) == ["site", "y", *d_cols, *x_cols]
    assert sim.d_cols == d_cols and sim.x_cols == x_cols
    assert sim.data.shape == (200, 2 + p + q)
    assert sim.theta.shape == (4, p) and sim.is_outlier.shape == (4,)
    assert sim.site_names == ("site01", "site02", "site03", "site04")
    assert sim.data["site"].tolist() == [s for s in sim.site_names for _ in range(50)]
    assert sim.n_per_site.tolist() == [50] * 4 and sim.n_sites == 4
    assert np.all(np.isfinite(sim.data[["y", *d_cols, *x_cols]].to_numpy()))


def test_site_names_sort_in_site_order():
    sim = make_late_fusion_sites(n_sites=12, n_per_site=2, random_state=0)
    assert list(sim.site_names) == sorted(sim.site_names)
    assert sim.site_names[-1] == "site12"


# ----------------------------------------------------------------------------- reproducibility

def test_same_seed_same_data_bit_for_bit():
    kw = dict(n_sites=5, n_per_site="unequal", p=2, scenario="S3", outlier_frac=0.4)
    a = make_late_fusion_sites(**kw, random_state=123)
    b = make_late_fusion_sites(**kw, random_state=123)
    pd.testing.assert_frame_equal(a.data, b.data, check_exact=True)
    assert np.array_equal(a.theta, b.theta) and np.array_equal(a.is_outlier, b.is_outlier)
    c = make_late_fusion_sites(**kw, random_state=124)
    assert not np.array_equal(a.data["y"].to_numpy()[:100], c.data["y"].to_numpy()[:100])
    # seed_entropy reproduces the data.
    d = make_late_fusion_sites(**kw, random_state=a.seed_entropy)
    pd.testing.assert_frame_equal(a.data, d.data, check_exact=True)


def test_seed_sequence_is_not_mutated_and_generator_is_accepted():
    ss = np.random.SeedSequence(7)
    a = make_late_fusion_sites(n_sites=3, n_per_site=20, random_state=ss)
    b = make_late_fusion_sites(n_sites=3, n_per_site=20, random_state=ss)
    pd.testing.assert_frame_equal(a.data, b.data, check_exact=True)
    assert ss.n_children_spawned == 0
    c = make_late_fusion_sites(n_sites=3, n_per_site=20, random_state=np.random.SeedSequence(7))
    pd.testing.assert_frame_equal(a.data, c.data, check_exact=True)
    g1 = make_late_fusion_sites(n_sites=3, n_per_site=20, random_state=np.random.default_rng(5))
    g2 = make_late_fusion_sites(n_sites=3, n_per_site=20, random_state=np.random.default_rng(5))
    pd.testing.assert_frame_equal(g1.data, g2.data, check_exact=True)


def test_common_random_numbers_across_eta():
    a = make_late_fusion_sites(n_sites=6, n_per_site=80, p=2, eta=0.2, theta0=1.0,
                               random_state=3)
    b = make_late_fusion_sites(n_sites=6, n_per_site=80, p=2, eta=0.8, theta0=1.0,
                               random_state=3)
    assert np.array_equal(a.data[a.x_cols].to_numpy(), b.data[b.x_cols].to_numpy())
    # Same noise V = D - m(X): only the parameters differ.
    for k in range(6):
        ra, rb = _site_rows(a, k), _site_rows(b, k)
        va = ra[a.d_cols].to_numpy() - a.nuisance(k, ra[a.x_cols].to_numpy())["m"]
        vb = rb[b.d_cols].to_numpy() - b.nuisance(k, rb[b.x_cols].to_numpy())["m"]
        np.testing.assert_array_equal(va, vb)
    # The same directions u_k, scaled by eta.
    np.testing.assert_allclose(b.theta - 1.0, 4.0 * (a.theta - 1.0), rtol=1e-12, atol=1e-12)


def test_site_data_do_not_change_when_sites_are_added():
    small = make_late_fusion_sites(n_sites=5, n_per_site=60, scenario="S2", random_state=11)
    large = make_late_fusion_sites(n_sites=9, n_per_site=60, scenario="S2", random_state=11)
    # Labels are zero-padded to two digits in both cases, so the frames compare directly.
    pd.testing.assert_frame_equal(small.data, large.data.iloc[: 5 * 60], check_exact=True)
    np.testing.assert_array_equal(small.theta, large.theta[:5])


def test_larger_site_extends_smaller_site():
    a = make_late_fusion_sites(n_sites=2, n_per_site=100, scenario="S3", random_state=4)
    b = make_late_fusion_sites(n_sites=2, n_per_site=[250, 100], scenario="S3", random_state=4)
    pd.testing.assert_frame_equal(_site_rows(a, 0), _site_rows(b, 0).iloc[:100],
                                  check_exact=True)


# ----------------------------------------------------------------------------- site parameters

@pytest.mark.parametrize("n_sites,frac,expected", [
    (10, 0.0, 0), (10, 0.2, 2), (30, 0.2, 6), (20, 0.2, 4), (10, 0.25, 3), (10, 0.35, 4),
    (7, 0.1, 1), (3, 1.0, 3), (4, 0.1, 0),
])
def test_outlier_count(n_sites, frac, expected):
    sim = make_late_fusion_sites(n_sites=n_sites, n_per_site=5, p=2, outlier_frac=frac, eta=0.3,
                                 theta0=[1.0, -1.0], random_state=n_sites)
    assert int(sim.is_outlier.sum()) == expected
    np.testing.assert_allclose(np.linalg.norm(sim.theta[sim.is_outlier], axis=1), 2.0,
                               rtol=1e-12)
    np.testing.assert_allclose(
        np.linalg.norm(sim.theta[~sim.is_outlier] - sim.theta0, axis=1), 0.3, rtol=1e-12)


@pytest.mark.parametrize("eta", [0.0, 0.1, 1.0])
def test_theta_spread_equals_eta(eta):
    sim = make_late_fusion_sites(n_sites=20, n_per_site=5, p=5, eta=eta, theta0=0.5,
                                 random_state=2)
    dist = np.linalg.norm(sim.theta - 0.5, axis=1)
    np.testing.assert_allclose(dist, eta, atol=1e-12)


def test_p1_directions_are_signs():
    sim = make_late_fusion_sites(n_sites=2000, n_per_site=1, eta=0.5, q=1, random_state=5)
    u = (sim.theta[:, 0] - 0.0) / 0.5
    assert set(np.round(u, 12)) == {-1.0, 1.0}
    # P(+1) = 1/2: within 4 standard errors.
    assert abs(np.mean(u > 0) - 0.5) < 4 * np.sqrt(0.25 / 2000)


def test_directions_uniform_on_sphere():
    K, p = 2000, 3
    sim = make_late_fusion_sites(n_sites=K, n_per_site=1, p=p, q=1, eta=1.0, random_state=6)
    u = sim.theta
    # E u = 0 with Var(u_j) = 1/p; E u u' = I/p with Var(u_j^2) = 4/45 for p = 3.
    assert np.all(np.abs(u.mean(axis=0)) < 4 * np.sqrt(1 / (p * K)))
    second = u.T @ u / K
    assert np.all(np.abs(second - np.eye(p) / p) < 4 * np.sqrt(4 / 45 / K) + 1e-12)


def test_theta0_forms():
    a = make_late_fusion_sites(n_sites=3, n_per_site=5, p=2, eta=0.0, theta0=0.7, random_state=0)
    np.testing.assert_array_equal(a.theta, np.full((3, 2), 0.7))
    b = make_late_fusion_sites(n_sites=3, n_per_site=5, p=2, eta=0.0, theta0=[1, 2],
                               random_state=0)
    np.testing.assert_array_equal(b.theta, np.tile([1.0, 2.0], (3, 1)))
    c = make_late_fusion_sites(n_sites=3, n_per_site=5, p=2, eta=0.0, random_state=0)
    np.testing.assert_array_equal(c.theta0, [0.0, 0.0])


def test_pooled_theta_is_size_weighted():
    sim = make_late_fusion_sites(n_sites=6, n_per_site=[10, 20, 30, 40, 50, 60], p=2, eta=1.0,
                                 outlier_frac=0.34, random_state=1)
    w = np.array([10, 20, 30, 40, 50, 60], dtype=float)
    np.testing.assert_allclose(sim.pooled_theta(), w @ sim.theta / w.sum(), rtol=1e-14)
    keep = ~sim.is_outlier
    np.testing.assert_allclose(sim.pooled_theta(inliers_only=True),
                               w[keep] @ sim.theta[keep] / w[keep].sum(), rtol=1e-14)
    allout = make_late_fusion_sites(n_sites=2, n_per_site=5, outlier_frac=1.0, random_state=0)
    with pytest.raises(ValueError, match="inliers_only"):
        allout.pooled_theta(inliers_only=True)


# ----------------------------------------------------------------------------- site sizes

def test_unequal_sizes():
    sim = make_late_fusion_sites(n_sites=200, n_per_site="unequal", q=1, random_state=8)
    n = sim.n_per_site
    assert n.min() >= 100 and n.max() <= 500
    # Uniform on 100..500: mean 300, sd about 116.
    assert abs(n.mean() - 300) < 4 * 116 / np.sqrt(200)
    assert len(np.unique(n)) > 100
    counts = sim.data.groupby("site", sort=True).size()
    np.testing.assert_array_equal(counts.to_numpy(), n)


def test_sizes_from_sequence():
    sim = make_late_fusion_sites(n_sites=3, n_per_site=(5, 17, 2), random_state=0)
    assert sim.n_per_site.tolist() == [5, 17, 2]
    assert sim.data.groupby("site", sort=True).size().tolist() == [5, 17, 2]


# ----------------------------------------------------------------------------- nuisance scenarios

def _nuisance_stack(sim: LateFusionSites, X: np.ndarray, key: str) -> np.ndarray:
    out = []
    for k in range(sim.n_sites):
        v = sim.nuisance(k, X)[key]
        out.append(v[:, 0] if v.ndim == 2 else v)
    return np.array(out)


def test_scenarios_identical_mild_unrelated():
    X = np.random.default_rng(0).standard_normal((3000, 10))
    sims = {s: make_late_fusion_sites(n_sites=10, n_per_site=5, scenario=s, random_state=21)
            for s in ("S1", "S2", "S3")}
    for key in ("m", "g"):
        s1 = _nuisance_stack(sims["S1"], X, key)
        assert all(np.array_equal(s1[0], s1[k]) for k in range(1, 10))
        s2 = _nuisance_stack(sims["S2"], X, key)
        assert not np.array_equal(s2[0], s2[1])
        assert _pairwise_corr(s2).min() > 0.7  # mild: same shapes, shifted coefficients
        s3 = _nuisance_stack(sims["S3"], X, key)
        corr3 = _pairwise_corr(s3)
        assert abs(corr3.mean()) < 0.3 and corr3.min() < 0.0  # unrelated functions
    # S1 nuisances do not depend on the seed either.
    other = make_late_fusion_sites(n_sites=2, n_per_site=5, scenario="S1", random_state=99)
    np.testing.assert_array_equal(_nuisance_stack(other, X, "g")[0],
                                  _nuisance_stack(sims["S1"], X, "g")[0])


def test_s1_confounded_by_shared_covariate():
    # Regressing Y on D alone is biased because m and g share x1: the naive slope is off.
    sim = make_late_fusion_sites(n_sites=1, n_per_site=20000, eta=0.0, theta0=0.5,
                                 random_state=2)
    d, y = sim.data["d"].to_numpy(), sim.data["y"].to_numpy()
    naive = np.cov(d, y)[0, 1] / np.var(d, ddof=1)
    assert naive - 0.5 > 0.2


@pytest.mark.parametrize("scenario,p,q", [("S1", 1, 10), ("S2", 3, 2), ("S3", 1, 1),
                                          ("S3", 2, 4)])
def test_data_follow_the_model(scenario, p, q):
    sim = make_late_fusion_sites(n_sites=8, n_per_site=600, p=p, q=q, eta=0.7,
                                 outlier_frac=0.25, scenario=scenario, random_state=30)
    V, E = [], []
    for k in range(sim.n_sites):
        rows = _site_rows(sim, k)
        X = rows[sim.x_cols].to_numpy()
        nu = sim.nuisance(k, X)
        D = rows[sim.d_cols].to_numpy()
        V.append(D - nu["m"])
        E.append(rows["y"].to_numpy() - D @ sim.theta[k] - nu["g"])
        np.testing.assert_allclose(nu["l"], nu["m"] @ sim.theta[k] + nu["g"], rtol=1e-12)
    V, E = np.concatenate(V), np.concatenate(E)
    N = V.shape[0]
    # V ~ N(0, I_p), e ~ N(0, 1), independent: moments within 4-5 standard errors.
    assert np.all(np.abs(V.mean(axis=0)) < 4 / np.sqrt(N))
    np.testing.assert_allclose(np.cov(V.T).reshape(p, p), np.eye(p), atol=5 * np.sqrt(2 / N))
    assert abs(E.mean()) < 4 / np.sqrt(N) and abs(E.var() - 1) < 5 * np.sqrt(2 / N)
    assert np.all(np.abs(V.T @ E / N) < 4 / np.sqrt(N))
    # The oracle orthogonal-score estimate recovers every site's theta.
    orc = sim.oracle_estimates()
    assert len(orc) == sim.n_sites * p
    z = (orc["estimate"] - orc["theta"]) / orc["std_err"]
    assert np.all(np.abs(z) < 4.5)
    np.testing.assert_allclose(orc["theta"].to_numpy(), sim.theta.ravel())


def test_pooled_partialling_out_targets_pooled_theta():
    sim = make_late_fusion_sites(n_sites=10, n_per_site="unequal", eta=1.0, theta0=0.5,
                                 scenario="S3", random_state=12)
    num = den = 0.0
    for k in range(sim.n_sites):
        rows = _site_rows(sim, k)
        nu = sim.nuisance(k, rows[sim.x_cols].to_numpy())
        vt = rows["d"].to_numpy() - nu["m"][:, 0]
        num += vt @ (rows["y"].to_numpy() - nu["l"])
        den += vt @ vt
    N = sim.n_per_site.sum()
    # The pooled estimate scatters around sum n_k theta_k / N with sd about sd(theta)/sqrt(N)
    # plus the noise term 1/sqrt(N); 5/sqrt(N) covers both.
    assert abs(num / den - sim.pooled_theta()[0]) < 5 / np.sqrt(N)


def test_irm_design():
    sim = make_late_fusion_sites(n_sites=6, n_per_site=2000, model="irm", q=3, eta=0.5,
                                 theta0=1.0, scenario="S2", random_state=9)
    assert list(sim.data.columns) == ["site", "y", "d", "x1", "x2", "x3"]
    assert set(np.unique(sim.data["d"])) == {0, 1}
    resid = []
    for k in range(sim.n_sites):
        rows = _site_rows(sim, k)
        nu = sim.nuisance(k, rows[sim.x_cols].to_numpy())
        assert nu["m"].ndim == 1
        assert nu["m"].min() >= 0.05 and nu["m"].max() <= 0.95
        np.testing.assert_allclose(nu["mu1"] - nu["mu0"], sim.theta[k, 0])
        resid.append(rows["d"].to_numpy() - nu["m"])
    resid = np.concatenate(resid)
    assert abs(resid.mean()) < 4 * 0.5 / np.sqrt(resid.size)
    orc = sim.oracle_estimates()
    z = (orc["estimate"] - orc["theta"]) / orc["std_err"]
    assert np.all(np.abs(z) < 4.5)


@pytest.mark.parametrize("scenario", ["S1", "S3"])
def test_nuisances_learnable_by_random_forest(scenario):
    # Train on a site's first 500 rows; the rows after them are fresh draws of the same site.
    sim = make_late_fusion_sites(n_sites=1, n_per_site=2500, scenario=scenario, random_state=3)
    X = sim.data[sim.x_cols].to_numpy()
    truth = sim.nuisance(0, X[500:])
    for target, key in (("d", "m"), ("y", "l")):
        rf = RandomForestRegressor(n_estimators=100, min_samples_leaf=5, max_features=0.5,
                                   random_state=0, n_jobs=1)
        rf.fit(X[:500], sim.data[target].to_numpy()[:500])
        true = truth[key][:, 0] if truth[key].ndim == 2 else truth[key]
        r2 = 1 - np.mean((rf.predict(X[500:]) - true) ** 2) / np.var(true)
        assert r2 > 0.5, (key, r2)


# ----------------------------------------------------------------------------- validation

@pytest.mark.parametrize("kwargs,match", [
    (dict(n_sites=0), "n_sites"),
    (dict(n_sites=2.5), "n_sites"),
    (dict(n_sites=True), "n_sites"),
    (dict(p=0), "p:"),
    (dict(q=0), "q:"),
    (dict(n_per_site=0), "n_per_site"),
    (dict(n_per_site="equal"), "n_per_site"),
    (dict(n_per_site=[100, 200]), "n_per_site: got 2 sizes"),
    (dict(n_sites=2, n_per_site=[100, -1]), r"n_per_site\[1\]"),
    (dict(n_per_site=3.5), "n_per_site"),
    (dict(eta=-0.1), "eta"),
    (dict(eta=np.nan), "eta"),
    (dict(eta=[0.1, 0.2]), "eta"),
    (dict(outlier_frac=1.5), "outlier_frac"),
    (dict(outlier_frac=-0.1), "outlier_frac"),
    (dict(scenario="S4"), "scenario"),
    (dict(scenario=1), "scenario"),
    (dict(model="iv"), "model"),
    (dict(model="irm", p=2), "p: the 'irm' model"),
    (dict(p=2, theta0=[1, 2, 3]), "theta0"),
    (dict(theta0=np.inf), "theta0"),
    (dict(random_state=-1), "random_state"),
    (dict(random_state="seed"), "random_state"),
    (dict(random_state=1.5), "random_state"),
])
def test_bad_inputs(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_late_fusion_sites(**{"n_sites": 3, "n_per_site": 10, **kwargs})


def test_case_insensitive_options_and_nuisance_validation():
    sim = make_late_fusion_sites(n_sites=2, n_per_site=10, q=2, scenario="s2", model="PLR",
                                 random_state=0)
    assert sim.scenario == "S2" and sim.model == "plr"
    X = np.zeros((4, 2))
    np.testing.assert_array_equal(sim.nuisance("site02", X)["g"], sim.nuisance(1, X)["g"])
    with pytest.raises(ValueError, match="site: unknown site label"):
        sim.nuisance("site03", X)
    with pytest.raises(ValueError, match="site: index 2 out of range"):
        sim.nuisance(2, X)
    with pytest.raises(ValueError, match=r"X: expected shape \(n, 2\)"):
        sim.nuisance(0, np.zeros((4, 3)))
    with pytest.raises(ValueError, match="X: contains"):
        sim.nuisance(0, np.full((4, 2), np.nan))
    one = make_late_fusion_sites(n_sites=1, n_per_site=10, q=1, random_state=0)
    assert one.nuisance(0, np.linspace(-1, 1, 5))["g"].shape == (5,)


def test_all_combinations_run():
    # Every scenario x model x small q combination builds without error or warning.
    for scenario, model, q in itertools.product(("S1", "S2", "S3"), ("plr", "irm"), (1, 2)):
        sim = make_late_fusion_sites(n_sites=3, n_per_site=20, q=q, scenario=scenario,
                                     model=model, outlier_frac=0.3, random_state=1)
        assert sim.data.shape == (60, 3 + q)
        assert np.all(np.isfinite(sim.oracle_estimates()["estimate"]))
