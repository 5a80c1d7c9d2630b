"""The R package: its testthat suite, and R results against the Python API on the same data.

R code that calls the package through reticulate runs in a child ``Rscript`` process, never in
rpy2's embedded R (reticulate releases Python objects without the GIL there and the process
crashes). The R package is installed from the current sources into a temporary library first, so
the tests never run an R library left behind by an older set-up.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hetmtl._util.io import read_csv_exact
from hetmtl.fusion.late_fusion import LateFusion
from hetmtl.fusion.site_dml import SiteDML
from hetmtl.fusion.summary import SiteSummary
from r_python import r_side_python
from r_session import install_package, run_r

REPO = Path(__file__).resolve().parents[1]
R_PACKAGE = REPO / "r-wrapper"
TESTTHAT_DIR = R_PACKAGE / "tests" / "testthat"
RTOL = 1e-10

pytestmark = pytest.mark.r


@pytest.fixture(scope="module")
def r_env(tmp_path_factory) -> tuple[str, dict[str, str]]:
    """Rscript and an environment whose R library holds the package built from this checkout."""
    return install_package(tmp_path_factory.mktemp("R-library"))


def _run_r(r_env, args: list[str], timeout: int = 300) -> subprocess.CompletedProcess:
    return run_r(r_env, args, timeout=timeout)


# --------------------------------------------------------------------------- testthat suite

_TESTTHAT_CODE = r"""
res <- as.data.frame(testthat::test_dir(
  commandArgs(trailingOnly = TRUE)[1], package = "hetmtl", load_package = "installed",
  reporter = testthat::ProgressReporter$new(show_praise = FALSE), stop_on_failure = FALSE))
cat(sprintf("\nHETMTL-TESTTHAT tests=%d passed=%d failed=%d errors=%d skipped=%d warnings=%d\n",
            nrow(res), sum(res$passed), sum(res$failed), sum(res$error), sum(res$skipped),
            sum(res$warning)))
quit(status = if (sum(res$failed) + sum(res$error) > 0) 1L else 0L)
"""


def test_testthat_suite_passes(r_env):
    proc = _run_r(r_env, ["-e", _TESTTHAT_CODE, str(TESTTHAT_DIR)])
    out = proc.stdout + proc.stderr
    match = re.search(r"HETMTL-TESTTHAT tests=(\d+) passed=(\d+) failed=(\d+) errors=(\d+) "
                      r"skipped=(\d+) warnings=(\d+)", out)
    assert match is not None, f"testthat did not report (exit code {proc.returncode}):\n{out[-6000:]}"
    tests, passed, failed, errors, skipped, warned = map(int, match.groups())
    assert proc.returncode == 0, out[-6000:]
    assert failed == 0 and errors == 0, out[-6000:]
    # Skips happen only when reticulate cannot import hetmtl, which must not be the case here.
    assert skipped == 0, out[-6000:]
    assert warned == 0, out[-6000:]
    # A floor on the expectations run, so that a suite that silently lost its files cannot pass.
    assert tests >= 20 and passed >= 150, out[-6000:]


# --------------------------------------------------------------------------- parity with Python

_PARITY_SCRIPT = r"""
library(hetmtl)
args <- commandArgs(trailingOnly = TRUE)
df <- read.csv(args[1], stringsAsFactors = FALSE)
out <- args[2]
stopifnot(is.integer(df$x3))  # read.csv makes the count column integer: the wrapper must coerce
fits <- list()
for (s in unique(df$site)) {
  rows <- df[df$site == s, c("y", "d", "x1", "x2", "x3")]
  fits[[s]] <- site_dml(rows, y = "y", d = "d", x = c("x1", "x2", "x3"), n_folds = 3, seed = 7,
                        site = s)
  write_site_summary(fits[[s]], file.path(out, paste0(s, ".json")))
}
site_tab <- do.call(rbind, lapply(names(fits), function(s) {
  ci <- confint(fits[[s]], level = 0.9)
  data.frame(site = s, coef = coef(fits[[s]]), se = fits[[s]]$se,
             ci_lower = ci[, 1], ci_upper = ci[, 2])
}))
write.csv(site_tab, file.path(out, "site_dml.csv"), row.names = FALSE)
lf <- late_fusion(fits, lam = "cv", n_boot = 50, seed = 5)
write.csv(summary(lf), file.path(out, "late_fusion.csv"), row.names = FALSE)
write.csv(data.frame(lambda = lf$lambda, rule = lf$lambda_rule, center = lf$center,
                     center_lower = lf$center_table$ci_lower,
                     center_upper = lf$center_table$ci_upper),
          file.path(out, "center.csv"), row.names = FALSE)
write.csv(as.data.frame(heterogeneity(lf)), file.path(out, "heterogeneity.csv"), row.names = FALSE)
"""


@pytest.fixture(scope="module")
def parity_data() -> pd.DataFrame:
    """Three sites of partially linear data (one with a larger effect), rounded to 6 decimals
    so that R's and Python's text parsers read exactly the same doubles."""
    rng = np.random.default_rng(20240611)
    frames = []
    for site, theta in (("A", 0.5), ("B", 0.6), ("C", 1.5)):
        n = 120
        x1, x2 = rng.normal(size=n), rng.normal(size=n)
        x3 = rng.integers(0, 5, size=n)
        d = 0.7 * x1 + 0.2 * x3 + rng.normal(size=n)
        y = theta * d + np.sin(x2) + 0.3 * x3 + rng.normal(size=n)
        frames.append(pd.DataFrame({"site": site, "y": y, "d": d, "x1": x1, "x2": x2, "x3": x3}))
    df = pd.concat(frames, ignore_index=True)
    return df.round({"y": 6, "d": 6, "x1": 6, "x2": 6})


@pytest.fixture(scope="module")
def r_results(r_env, parity_data, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("r-parity")
    data_path = out / "sites.csv"
    parity_data.to_csv(data_path, index=False)
    script = out / "parity.R"
    script.write_text(_PARITY_SCRIPT, encoding="utf-8")
    proc = _run_r(r_env, [str(script), str(data_path), str(out)])
    assert proc.returncode == 0, f"R parity script failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return out


@pytest.fixture(scope="module")
def python_fits(parity_data) -> dict[str, SiteDML]:
    fits = {}
    for site, rows in parity_data.groupby("site", sort=False):
        rows = rows[["y", "d", "x1", "x2", "x3"]].astype(float).reset_index(drop=True)
        fits[site] = SiteDML(n_folds=3, random_state=7, site=site).fit(
            rows, y="y", d="d", x=["x1", "x2", "x3"])
    return fits


def test_site_dml_parity(r_results, python_fits):
    r_tab = pd.read_csv(r_results / "site_dml.csv")
    assert list(r_tab["site"]) == ["A", "B", "C"]
    for _, row in r_tab.iterrows():
        fit = python_fits[row["site"]]
        ci = fit.confint(level=0.9).iloc[0]
        np.testing.assert_allclose(row["coef"], fit.coef_[0], rtol=RTOL)
        np.testing.assert_allclose(row["se"], fit.se_[0], rtol=RTOL)
        np.testing.assert_allclose([row["ci_lower"], row["ci_upper"]], ci.to_numpy(), rtol=RTOL)


def test_late_fusion_parity(r_results, python_fits):
    ref = LateFusion(lam="cv", n_boot=50, random_state=5).fit(
        {site: fit.summary_ for site, fit in python_fits.items()})
    center = pd.read_csv(r_results / "center.csv")
    assert center["rule"].iloc[0].startswith("cv")
    np.testing.assert_allclose(center["lambda"].iloc[0], ref.lambda_, rtol=RTOL)
    np.testing.assert_allclose(center["center"], ref.center_, rtol=RTOL)
    ref_center = ref.center_summary()
    np.testing.assert_allclose(center["center_lower"], ref_center["ci lower"], rtol=RTOL)
    np.testing.assert_allclose(center["center_upper"], ref_center["ci upper"], rtol=RTOL)

    r_tab = pd.read_csv(r_results / "late_fusion.csv")
    py_tab = ref.summary().reset_index()
    assert list(r_tab["site"]) == list(py_tab["site"])
    assert list(r_tab["fused"]) == list(py_tab["fused"])
    for r_col, py_col in (("estimate", "estimate"), ("std_err", "std err"),
                          ("fused_estimate", "fused estimate"), ("fused_std_err", "fused std err"),
                          ("fused_ci_lower", "fused ci lower"), ("fused_ci_upper", "fused ci upper"),
                          ("weight_pct", "weight %")):
        np.testing.assert_allclose(r_tab[r_col], py_tab[py_col], rtol=RTOL, err_msg=r_col)

    het = pd.read_csv(r_results / "heterogeneity.csv").set_index("model")
    ma = ref.heterogeneity()
    np.testing.assert_allclose(het["estimate"], ma.summary()["estimate"], rtol=RTOL)
    np.testing.assert_allclose(het["tau2"], ma.heterogeneity_table()["tau2"], rtol=RTOL, atol=1e-300)
    np.testing.assert_allclose(het["Q"], ma.heterogeneity_table()["Q"], rtol=RTOL)


def test_summaries_written_by_r_fuse_in_python(r_results, python_fits):
    """The JSON files the R package writes are what Python's own summaries would be."""
    loaded = {site: SiteSummary.from_json(r_results / f"{site}.json") for site in python_fits}
    for site, fit in python_fits.items():
        s = loaded[site]
        assert s.site == site and s.model == "plr" and len(s.folds) == 3
        np.testing.assert_allclose(s.theta, fit.summary_.theta, rtol=RTOL)
        np.testing.assert_allclose(s.J, fit.summary_.J, rtol=RTOL)
        np.testing.assert_allclose(s.Omega, fit.summary_.Omega, rtol=RTOL)
    from_files = LateFusion(lam="cv", inference="none").fit(loaded)
    direct = LateFusion(lam="cv", inference="none").fit(
        {site: fit.summary_ for site, fit in python_fits.items()})
    np.testing.assert_allclose(from_files.theta_, direct.theta_, rtol=RTOL)


def test_missing_python_package_is_a_clear_r_error(r_env, tmp_path):
    """Pointed at a Python without hetmtl, the R package says so and names the interpreter."""
    bare = tmp_path / "bare-venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True,
                   timeout=120)
    bare_python = str(bare / "bin" / "python")
    rscript, env = r_env
    code = ("library(hetmtl); stopifnot(!hetmtl_python_available()); "
            "site_summary_from_estimate(0.1, se = 0.05)")
    # A folder named hetmtl in the working directory (R CMD check's hetmtl.Rcheck has one) is an
    # importable namespace package: it must not pass for the Python package.
    (tmp_path / "hetmtl").mkdir()
    proc = subprocess.run([rscript, "--vanilla", "-e", code], capture_output=True, text=True,
                          env={**env, "RETICULATE_PYTHON": bare_python}, timeout=120, cwd=tmp_path)
    assert proc.returncode != 0
    assert "the Python package 'hetmtl' cannot be imported" in proc.stderr
    assert bare_python in proc.stderr


# --------------------------------------------------------------------------- learner names

_LEARNER_SCRIPT = r"""
library(hetmtl)
args <- commandArgs(trailingOnly = TRUE)
df <- read.csv(args[1])
rows <- lapply(c("rf", "gbm", "lasso", "linear"), function(name) {
  fit <- site_dml(df, y = "y", d = "a", x = c("x1", "x2"), model = "irm", learner = name,
                  n_folds = 3, seed = 7, site = "S")
  data.frame(learner = name, coef = unname(coef(fit)), se = unname(fit$se))
})
write.csv(do.call(rbind, rows), args[2], row.names = FALSE)
"""


@pytest.fixture(scope="module")
def learner_data(tmp_path_factory) -> tuple[Path, pd.DataFrame]:
    """A randomized binary treatment with a nonlinear outcome, written with 6 decimals so that
    R, the command and Python read the same doubles."""
    rng = np.random.default_rng(31)
    n = 200
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    a = rng.binomial(1, 1.0 / (1.0 + np.exp(-0.5 * x1)))
    y = a + x1 + 0.5 * x2**2 + rng.normal(size=n)
    df = pd.DataFrame({"y": y, "a": a, "x1": x1, "x2": x2}).round({"y": 6, "x1": 6, "x2": 6})
    path = tmp_path_factory.mktemp("learners") / "site.csv"
    df.to_csv(path, index=False)
    return path, read_csv_exact(path)


@pytest.fixture(scope="module")
def r_learner_results(r_env, learner_data, tmp_path_factory) -> pd.DataFrame:
    out = tmp_path_factory.mktemp("r-learners")
    script = out / "learners.R"
    script.write_text(_LEARNER_SCRIPT, encoding="utf-8")
    proc = _run_r(r_env, [str(script), str(learner_data[0]), str(out / "r.csv")])
    assert proc.returncode == 0, f"R learner script failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return pd.read_csv(out / "r.csv").set_index("learner")


@pytest.mark.parametrize("name", ["rf", "gbm", "lasso", "linear"])
def test_learner_name_means_the_same_in_r_the_command_and_python(name, learner_data,
                                                                 r_learner_results, tmp_path):
    from hetmtl.cli import main

    path, df = learner_data
    py = SiteDML(model="irm", ml_g=name, ml_m=name, n_folds=3, random_state=7, site="S").fit(
        df, y="y", d="a", x=["x1", "x2"])
    out = tmp_path / "S.json"
    assert main(["summarize", str(path), "--site", "S", "--y", "y", "--d", "a", "--x", "x1", "x2",
                 "--model", "irm", "--learner", name, "--n-folds", "3", "--seed", "7",
                 "-o", str(out)]) == 0
    cli = SiteSummary.from_json(out)
    np.testing.assert_array_equal(cli.theta, py.coef_)
    np.testing.assert_allclose(cli.se, py.se_, rtol=1e-12)
    r_row = r_learner_results.loc[name]
    np.testing.assert_allclose(r_row["coef"], py.coef_[0], rtol=RTOL)
    np.testing.assert_allclose(r_row["se"], py.se_[0], rtol=RTOL)


def test_r_package_finds_the_python_named_by_hetmtl_python(r_env):
    """Without RETICULATE_PYTHON, HETMTL_PYTHON (what install_hetmtl() users set) picks Python."""
    rscript, env = r_env
    env = {k: v for k, v in env.items() if k != "RETICULATE_PYTHON"}
    env["HETMTL_PYTHON"] = r_side_python()
    code = "library(hetmtl); stopifnot(hetmtl_python_available()); cat(reticulate::py_config()$python)"
    proc = subprocess.run([rscript, "--vanilla", "-e", code], capture_output=True, text=True,
                          env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert Path(proc.stdout.strip().splitlines()[-1]).resolve() == Path(r_side_python()).resolve()
