"""The `hetmtl` command: the multi-site workflow end to end, against the Python API."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hetmtl.cli import main, make_learners
from hetmtl.fusion.late_fusion import LateFusion
from hetmtl.fusion.site_dml import SiteDML
from hetmtl.fusion.summary import SiteSummary

THETA = (0.5, 0.5, 1.0)  # sites A and B share the effect, C differs
X_COLS = ["x1", "x2", "x3"]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _simulate_site(rng: np.random.Generator, n_people: int, theta: float) -> pd.DataFrame:
    """Linear partially linear model, two rows per person (independent person effects in d and y,
    so errors are correlated within a person but d is exogenous given x)."""
    person = np.repeat(np.arange(n_people), 2)
    n = person.size
    x = rng.normal(size=(n, 3))
    u_d, u_y = (np.repeat(rng.normal(scale=0.5, size=n_people), 2) for _ in range(2))
    d = x @ np.array([0.6, -0.4, 0.2]) + u_d + rng.normal(size=n)
    y = theta * d + x @ np.array([1.0, 0.5, -0.5]) + u_y + rng.normal(size=n)
    return pd.DataFrame({"y": y, "d": d, "x1": x[:, 0], "x2": x[:, 1], "x3": x[:, 2],
                         "person": [f"p{i}" for i in person]})


@pytest.fixture(scope="module")
def sites(tmp_path_factory) -> dict:
    """Three site CSVs, summarized through the command; their paths and the frames."""
    root = tmp_path_factory.mktemp("cli")
    rng = np.random.default_rng(20240611)
    out = {"root": root, "frames": {}, "csv": {}, "json": {}}
    for name, theta in zip("ABC", THETA):
        df = _simulate_site(rng, 200, theta)
        csv = root / f"site_{name}.csv"
        df.to_csv(csv, index=False)
        out["frames"][name], out["csv"][name] = df, csv
        out["json"][name] = root / f"{name}.json"
        rc = main(["summarize", str(csv), "--site", name, "--y", "y", "--d", "d", "--x", *X_COLS,
                   "--cluster", "person", "--learner", "linear", "--seed", "7",
                   "-o", str(out["json"][name])])
        assert rc == 0
    return out


def test_summarize_matches_python_api(sites):
    for name in "ABC":
        df = sites["frames"][name]
        learners = make_learners("linear", "plr", binary_outcome=False, binary_treatment=False,
                                 random_state=7)
        est = SiteDML(model="plr", n_folds=5, site=name, random_state=7, **learners).fit(
            df, y="y", d="d", x=X_COLS, cluster="person")
        got = SiteSummary.from_json(sites["json"][name])
        assert got.site == name and got.n == 400 and got.coef_names == ["d"]
        # The CSV is parsed exactly and JSON stores floats exactly: the numbers are identical.
        np.testing.assert_array_equal(got.theta, est.summary_.theta)
        np.testing.assert_array_equal(got.J, est.summary_.J)
        np.testing.assert_array_equal(got.Omega, est.summary_.Omega)
        assert len(got.folds) == 5
        assert got.metadata["n_clusters"] == 200


def test_summarize_linear_learner_is_cross_fitted_ols(sites):
    # Independent oracle: with --learner linear the PLR estimate is the residual-on-residual slope
    # of out-of-fold least-squares predictions, computed here with numpy on the same folds.
    df = sites["frames"]["A"]
    learners = make_learners("linear", "plr", binary_outcome=False, binary_treatment=False,
                             random_state=7)
    est = SiteDML(model="plr", n_folds=5, site="A", random_state=7, **learners).fit(
        df, y="y", d="d", x=X_COLS, cluster="person")
    X = np.column_stack([np.ones(len(df)), df[X_COLS].to_numpy()])
    y, d = df["y"].to_numpy(), df["d"].to_numpy()
    yt, dt = np.empty_like(y), np.empty_like(d)
    for test in est.folds_[0]:
        train = np.setdiff1d(np.arange(len(df)), test)
        for target, res in ((y, yt), (d, dt)):
            beta = np.linalg.lstsq(X[train], target[train], rcond=None)[0]
            res[test] = target[test] - X[test] @ beta
    theta = np.dot(dt, yt) / np.dot(dt, dt)
    got = SiteSummary.from_json(sites["json"]["A"])
    assert got.theta[0] == pytest.approx(theta, rel=1e-10)
    # Cluster-robust sandwich by hand: sum over persons of the summed scores.
    psi = dt * (yt - dt * theta)
    S = pd.Series(psi).groupby(df["person"].to_numpy()).sum().to_numpy()
    se = np.sqrt(np.sum(S**2)) / np.dot(dt, dt)
    assert got.se[0] == pytest.approx(se, rel=1e-8)


def test_site_estimates_recover_the_simulated_effects(sites):
    for name, theta in zip("ABC", THETA):
        s = SiteSummary.from_json(sites["json"][name])
        assert abs(s.theta[0] - theta) < 4 * s.se[0], (name, s.theta[0], s.se[0])
        assert 0.02 < s.se[0] < 0.15


def test_fuse_outputs_equal_python_api(sites, capsys):
    out_dir = sites["root"] / "fused"
    paths = [str(sites["json"][k]) for k in "ABC"]
    capsys.readouterr()
    rc = main(["fuse", *paths, "--lam", "cv", "--n-boot", "200", "--seed", "3",
               "--out-dir", str(out_dir)])
    assert rc == 0
    text = capsys.readouterr().out
    for piece in ("Per-site estimates", "Center", "Q =", "I^2", "tau^2",
                  "prediction interval", "A", "B", "C"):
        assert piece in text
    for fname in ("fused.csv", "fused.json", "heterogeneity.json", "forest.png", "path.png"):
        assert (out_dir / fname).is_file(), fname
    for fname in ("forest.png", "path.png"):
        assert (out_dir / fname).read_bytes()[:8] == PNG_MAGIC

    fit = LateFusion(lam="cv", n_boot=200, random_state=3).fit(
        [SiteSummary.from_json(p) for p in paths])
    saved = json.loads((out_dir / "fused.json").read_text())
    assert saved["site_names"] == ["A", "B", "C"]
    np.testing.assert_allclose(saved["center"], fit.center_, rtol=1e-12)
    np.testing.assert_allclose(saved["theta"], fit.theta_, rtol=1e-12)
    assert saved["lambda"] == pytest.approx(fit.lambda_, rel=1e-12)
    assert saved["fused"] == fit.fused_mask_.tolist()
    table = pd.read_csv(out_dir / "fused.csv").set_index("site")
    expected = fit.summary()
    for col in ("estimate", "std err", "fused estimate", "fused std err", "fused ci lower",
                "fused ci upper", "weight %"):
        np.testing.assert_allclose(table[col].to_numpy(), expected[col].to_numpy(), rtol=1e-12)
    meta = json.loads((out_dir / "heterogeneity.json").read_text())["d"]
    ref = fit.heterogeneity()
    assert meta["Q"] == pytest.approx(ref.Q, rel=1e-12)
    assert meta["models"]["random_reml"]["tau2"] == pytest.approx(ref.random_reml.tau2, abs=1e-14)
    # Site C (theta 1.0) differs from A and B (0.5) by many standard errors: Q must detect it.
    assert meta["Q_pvalue"] < 1e-3
    assert not fit.fused_mask_[2]


def test_fuse_fixed_lambda_and_conditional_inference(sites, capsys):
    out_dir = sites["root"] / "fused_fixed"
    paths = [str(sites["json"][k]) for k in "ABC"]
    rc = main(["fuse", *paths, "--lam", "0", "--inference", "conditional", "--weight", "hessian",
               "--out-dir", str(out_dir)])
    assert rc == 0
    saved = json.loads((out_dir / "fused.json").read_text())
    # lambda = 0 leaves every site at its own estimate.
    own = [SiteSummary.from_json(p).theta[0] for p in paths]
    np.testing.assert_allclose(np.ravel(saved["theta"]), own, rtol=1e-8)
    assert saved["params"]["weight"] == "hessian"


def test_fuse_default_is_robust_eb_and_old_fusion_stays_reachable(sites, capsys):
    paths = [str(sites["json"][k]) for k in "ABC"]
    received = [SiteSummary.from_json(p) for p in paths]
    for argv, params in (([], {}), (["--method", "fusion"], {"method": "fusion"}),
                         (["--method", "blup", "--tau2-method", "DL"],
                          {"method": "blup", "tau2_method": "DL"})):
        out_dir = sites["root"] / f"fused_{'_'.join(argv) or 'default'}"
        rc = main(["fuse", *paths, *argv, "--n-boot", "100", "--seed", "2", "--out-dir",
                   str(out_dir)])
        assert rc == 0
        saved = json.loads((out_dir / "fused.json").read_text())
        fit = LateFusion(n_boot=100, random_state=2, **params).fit(received)
        assert saved["params"]["method"] == params.get("method")
        np.testing.assert_allclose(np.ravel(saved["theta"]), fit.theta_.ravel(), rtol=1e-12)
    assert fit.method_ == "blup"
    # lam belongs to the penalized fusion: asking for it with another method names the flag.
    assert main(["fuse", *paths, "--method", "robust_eb", "--lam", "0.1"]) == 2
    assert "--lam" in capsys.readouterr().err


def test_console_script_runs_the_workflow(sites, tmp_path):
    script = Path(sys.executable).with_name("hetmtl")
    cmd = [str(script)] if script.is_file() else [sys.executable, "-m", "hetmtl.cli"]
    env = {**os.environ, "PYTHONWARNINGS": "error"}
    paths = [str(sites["json"][k]) for k in "ABC"]
    res = subprocess.run([*cmd, "fuse", *paths, "--inference", "none", "--out-dir",
                          str(tmp_path)], capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "Per-site estimates" in res.stdout
    assert (tmp_path / "fused.json").is_file()
    res = subprocess.run([sys.executable, "-m", "hetmtl.cli", "fuse", str(tmp_path / "nope.json")],
                         capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 2
    assert "Traceback" not in res.stderr
    assert "SUMMARY" in res.stderr and "nope.json" in res.stderr


# --------------------------------------------------------------------------- errors
def _error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def test_missing_data_file(tmp_path, capsys):
    rc = main(["summarize", str(tmp_path / "missing.csv"), "--site", "A", "--y", "y", "--d", "d",
               "--x", "x1", "-o", str(tmp_path / "A.json")])
    assert rc == 2
    line = _error_line(capsys)
    assert line.startswith("hetmtl summarize: error: DATA") and "missing.csv" in line


@pytest.mark.parametrize("flag,args", [
    ("--x", ["--y", "y", "--d", "d", "--x", "x1", "nope"]),
    ("--y", ["--y", "nope", "--d", "d", "--x", "x1"]),
    ("--d", ["--y", "y", "--d", "nope", "--x", "x1"]),
    ("--cluster", ["--y", "y", "--d", "d", "--x", "x1", "--cluster", "nope"]),
])
def test_unknown_column(sites, tmp_path, capsys, flag, args):
    rc = main(["summarize", str(sites["csv"]["A"]), "--site", "A", *args,
               "-o", str(tmp_path / "A.json")])
    assert rc == 2
    line = _error_line(capsys)
    assert f"error: {flag}: column 'nope' not found" in line
    assert not (tmp_path / "A.json").exists()


def test_non_numeric_and_missing_values(sites, tmp_path, capsys):
    df = sites["frames"]["A"].copy()
    df["x1"] = df["x1"].astype(object)
    df.loc[0, "x1"] = "high"
    df.loc[3, "x2"] = np.nan
    csv = tmp_path / "bad.csv"
    df.to_csv(csv, index=False)
    base = ["summarize", str(csv), "--site", "A", "--y", "y", "--d", "d", "-o",
            str(tmp_path / "A.json")]
    assert main([*base, "--x", "x1"]) == 2
    assert "--x: column 'x1' is not numeric" in _error_line(capsys)
    assert main([*base, "--x", "x2"]) == 2
    assert "--x: column 'x2' has 1 missing value(s)" in _error_line(capsys)


def test_library_errors_name_the_flag(sites, tmp_path, capsys):
    # A continuous treatment with the ATE model: the library's "d: ..." becomes "--d: ...".
    rc = main(["summarize", str(sites["csv"]["A"]), "--site", "A", "--y", "y", "--d", "d",
               "--x", *X_COLS, "--model", "irm", "-o", str(tmp_path / "A.json")])
    assert rc == 2
    line = _error_line(capsys)
    assert "error: --d:" in line and "0/1" in line
    # More folds than clusters.
    small = sites["frames"]["A"].head(6)
    csv = tmp_path / "small.csv"
    small.to_csv(csv, index=False)
    rc = main(["summarize", str(csv), "--site", "A", "--y", "y", "--d", "d", "--x", *X_COLS,
               "--cluster", "person", "-o", str(tmp_path / "A.json")])
    assert rc == 2
    assert "error: --n-folds:" in _error_line(capsys)


def test_bad_summary_files(sites, tmp_path, capsys):
    good = str(sites["json"]["A"])
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    rc = main(["fuse", good, str(broken), "--out-dir", str(tmp_path)])
    assert rc == 2
    line = _error_line(capsys)
    assert line.startswith("hetmtl fuse: error: SUMMARY") and "broken.json" in line

    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({"schema": "something else", "theta": [1.0]}))
    assert main(["fuse", good, str(wrong), "--out-dir", str(tmp_path)]) == 2
    line = _error_line(capsys)
    assert "SUMMARY" in line and "wrong.json" in line and "schema" in line

    # Row-level data riding along is refused.
    d = json.loads(Path(good).read_text())
    d["rows"] = [[1.0, 2.0]]
    leaky = tmp_path / "leaky.json"
    leaky.write_text(json.dumps(d))
    assert main(["fuse", good, str(leaky)]) == 2
    assert "unknown field" in _error_line(capsys)

    assert main(["fuse", good, str(tmp_path / "absent.json")]) == 2
    assert "SUMMARY: file" in _error_line(capsys)

    # The same site twice.
    assert main(["fuse", good, good, "--out-dir", str(tmp_path)]) == 2
    line = _error_line(capsys)
    assert "SUMMARY" in line and "unique" in line
    assert not (tmp_path / "fused.json").exists()


@pytest.mark.parametrize("argv,needle", [
    (["fuse", "a.json", "--lam", "big"], "--lam"),
    (["fuse", "a.json", "--lam", "-1"], "--lam"),
    (["fuse", "a.json", "--weight", "foo"], "--weight"),
    (["fuse", "a.json", "--method", "lasso"], "--method"),
    (["fuse", "a.json", "--n-boot", "1"], "--n-boot"),
    (["summarize", "a.csv", "--site", "A", "--y", "y", "--d", "d", "--x", "x", "-o", "o.json",
      "--n-folds", "1"], "--n-folds"),
    (["summarize", "a.csv", "--y", "y", "--d", "d", "--x", "x", "-o", "o.json"], "--site"),
])
def test_usage_errors_exit_2(capsys, argv, needle):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err


def test_help_exits_0(capsys):
    assert main(["--help"]) == 0
    assert "summarize" in capsys.readouterr().out


# --------------------------------------------------------------------------- learners
@pytest.mark.parametrize("model,outcome_role", [("plr", "ml_l"), ("irm", "ml_g"),
                                                ("cate_linear", "ml_l")])
def test_make_learners_roles(model, outcome_role):
    from sklearn.base import is_classifier, is_regressor

    for name in ("rf", "gbm", "lasso", "linear"):
        lr = make_learners(name, model, binary_outcome=False, binary_treatment=True, random_state=1)
        assert set(lr) == {outcome_role, "ml_m"}
        assert is_regressor(lr[outcome_role]) and is_classifier(lr["ml_m"])
        lb = make_learners(name, model, binary_outcome=True, binary_treatment=True)
        assert is_classifier(lb[outcome_role])
    with pytest.raises(ValueError, match="learner"):
        make_learners("svm", model, binary_outcome=False, binary_treatment=True)


def test_make_learners_continuous_treatment():
    from sklearn.base import is_regressor

    lr = make_learners("rf", "plr", binary_outcome=False, binary_treatment=False, random_state=1)
    assert is_regressor(lr["ml_m"])
    with pytest.raises(ValueError, match="^d: "):
        make_learners("rf", "irm", binary_outcome=False, binary_treatment=False)


@pytest.mark.parametrize("learner", ["rf", "gbm", "lasso", "linear"])
def test_every_learner_recovers_a_randomized_effect(tmp_path, learner):
    # A coin-flip treatment with effect 1.0: every learner must find it (ATE model).
    rng = np.random.default_rng(5)
    n = 400
    x = rng.normal(size=(n, 3))
    a = rng.integers(0, 2, size=n)
    y = 1.0 * a + x[:, 0] + 0.5 * x[:, 1] ** 2 + rng.normal(size=n)
    csv = tmp_path / "r.csv"
    pd.DataFrame({"y": y, "a": a, "x1": x[:, 0], "x2": x[:, 1], "x3": x[:, 2]}).to_csv(csv, index=False)
    out = tmp_path / "r.json"
    assert main(["summarize", str(csv), "--site", "R", "--y", "y", "--d", "a", "--x", "x1", "x2",
                 "x3", "--model", "irm", "--learner", learner, "-o", str(out)]) == 0
    s = SiteSummary.from_json(out)
    assert abs(s.theta[0] - 1.0) < 4 * s.se[0]
    assert 0.05 < s.se[0] < 0.25
    assert s.metadata["model"] == "irm"


def test_fuse_blup_with_knapp_hartung_intervals(sites, tmp_path, capsys):
    paths = [str(sites["json"][n]) for n in "ABC"]
    out = tmp_path / "knha"
    assert main(["fuse", *paths, "--method", "blup", "--test", "knha", "--out-dir", str(out)]) == 0
    assert "knha (Knapp-Hartung, t on 2 df)" in capsys.readouterr().out
    ref = LateFusion(method="blup", test="knha").fit([SiteSummary.from_json(p) for p in paths]).summary()
    table = pd.read_csv(out / "fused.csv")
    np.testing.assert_allclose(table["fused ci upper"], ref["fused ci upper"], rtol=1e-10)
    assert main(["fuse", *paths, "--test", "knha"]) == 2
    assert "--test: applies to method='blup' only" in capsys.readouterr().err
