"""Every exported R function against the Python API: same data, same seed, same numbers.

The R side runs in a child Rscript (its own process, as an R user's session would), the Python
side here; data cross as CSV rounded to 6 decimals so that both parsers read the same doubles.
The neural models are compared to 1e-12: torch runs its matrix products on its own BLAS inside
R too. ``install_hetmtl`` is the one export left out: it installs packages from the network.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hetmtl._util.io import read_csv_exact
from r_session import R_PACKAGE, install_package, run_r

pytestmark = pytest.mark.r
RTOL = 1e-12

_SCRIPT = r"""
library(hetmtl)
args <- commandArgs(trailingOnly = TRUE)
inp <- args[1]
out <- args[2]
res <- list(available = hetmtl_python_available())

# Site summaries: from an estimate, written, read back; the summary of a fit.
s <- site_summary_from_estimate(c(a = 0.4, b = -0.2), cov = matrix(c(0.04, 0.01, 0.01, 0.09), 2),
                                n = 250, site = "pub")
write_site_summary(s, file.path(out, "pub.json"))
back <- read_site_summary(file.path(out, "pub.json"))
res$pub_estimate <- unname(coef(back))
plr <- read.csv(file.path(inp, "plr.csv"))
fit <- site_dml(y ~ d | x1 + x2, data = plr, learner = "gbm", n_folds = 3, seed = 4, site = "A",
                learner_args = list(n_estimators = 20))
res$site_summary_estimate <- unname(coef(site_summary(fit)))
res$tidy_site <- tidy(fit, conf.int = TRUE)$conf.high
res$glance_nobs <- glance(fit)$nobs
priv <- site_summary_private(fit, epsilon = 20, regressor_bound = 4, outcome_bound = 6, seed = 9)
res$private_estimate <- unname(coef(priv))
res$private_se <- unname(sqrt(diag(vcov(priv))))
lf <- late_fusion(list(A = fit, pub = site_summary_from_estimate(c(d = 0.9), se = 0.1, n = 300)),
                  n_boot = 40, seed = 2)
res$tidy_fused <- tidy(lf)$estimate
res$augment_resid <- augment(lf)$.resid
res$glance_method <- glance(lf)$method
het <- heterogeneity(lf)
res$het_tidy <- tidy(het)$estimate
res$het_glance_q <- glance(het)$statistic

# A learner by name.
py_builtins <- reticulate::import_builtins(convert = FALSE)
res$learner_repr <- reticulate::py_to_r(py_builtins$repr(py_builtins$sorted(
  dml_learner("gbm", "classifier", seed = 3, n_estimators = 20)$get_params(deep = FALSE)$items())))

# Nuisance fusion.
nf <- read.csv(file.path(inp, "nf.csv"))
grid <- nuisance_grid(rbind(c(0, 10)), bandwidths = c(1, 2), n_points = 12)
gs <- lapply(c("S1", "S2"), function(k) grid_summary(nf[nf$site == k, ], y = "y", d = "d", x = "x",
                                                     grid = grid, n_folds = 3,
                                                     seed = if (k == "S1") 11 else 12, site = k))
center <- nuisance_fusion(gs)
fn <- fused_nuisance(center, "S1")
fused_fit <- site_dml(nf[nf$site == "S1", ], y = "y", d = "d", x = "x", n_folds = 3,
                      fused_nuisance = fn, site = "S1")
res$nf_coef <- unname(coef(fused_fit))
res$nf_se <- unname(fused_fit$se)

# Dual encoder, two-pathway model, block imputation.
mt <- read.csv(file.path(inp, "tasks.csv"))
dual <- dual_encoder_mtl(mt, y = "y", task = "task", x = c("x1", "x2"), latent_shared = 3,
                         latent_specific = 1, hidden = 8, lam_beta = 0.3, max_epochs = 10,
                         patience = 5, negative_transfer = "off", seed = 3)
res$dual_pred <- predict(dual, mt)
bl <- read.csv(file.path(inp, "blocks.csv"))
sources <- list(base = c("a1", "a2"), s1 = c("p1", "p2"))
bw <- blockwise_mtl(bl, y = "y", task = "cohort", sources = sources, anchor = "base",
                    imputer = "mean", hidden = 6, n_layers = 1, max_epochs = 8, patience = 4,
                    seed = 2)
res$blockwise_pred <- predict(bw, bl)
imp <- block_impute(bl, task = "cohort", sources = sources, anchor = "base", width = 4, depth = 1,
                    lam_orth = 0, max_epochs = 10, patience = 3, seed = 5)
res$impute_p1 <- imp$p1

exam <- hetmtl_data("exam")
res$exam_rows <- nrow(exam)
res$exam_mean <- mean(exam$normexam)
writeLines(jsonlite::toJSON(res, digits = NA, auto_unbox = TRUE), file.path(out, "r.json"))
"""

# Every export of the R package and the keys of r.json that compare it with Python.
COVERED = {
    "hetmtl_python_available": ["available"],
    "site_summary_from_estimate": ["pub_estimate"], "write_site_summary": ["pub_estimate"],
    "read_site_summary": ["pub_estimate"], "site_summary": ["site_summary_estimate"],
    "site_dml": ["site_summary_estimate", "nf_coef"], "late_fusion": ["tidy_fused"],
    "site_summary_private": ["private_estimate", "private_se"],
    "heterogeneity": ["het_tidy"], "tidy": ["tidy_site", "tidy_fused", "het_tidy"],
    "glance": ["glance_nobs", "glance_method", "het_glance_q"], "augment": ["augment_resid"],
    "dml_learner": ["learner_repr"], "nuisance_grid": ["nf_coef"], "grid_summary": ["nf_coef"],
    "nuisance_fusion": ["nf_coef"], "fused_nuisance": ["nf_coef"],
    "dual_encoder_mtl": ["dual_pred"], "blockwise_mtl": ["blockwise_pred"],
    "block_impute": ["impute_p1"], "hetmtl_data": ["exam_rows", "exam_mean"],
}
NOT_RUN = {"install_hetmtl"}


def _exports() -> set[str]:
    text = (R_PACKAGE / "NAMESPACE").read_text(encoding="utf-8")
    names = set()
    for group in re.findall(r"^export\(([^)]*)\)", text, flags=re.M):
        names.update(n.strip() for n in group.split(","))
    return names


def test_every_export_is_covered():
    assert _exports() == set(COVERED) | NOT_RUN


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    """Partially linear data, two nuisance-fusion sites, three tasks and two block-missing cohorts."""
    d = tmp_path_factory.mktemp("parity-inputs")
    rng = np.random.default_rng(77)
    n = 150
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    dd = 0.6 * x1 + rng.normal(size=n)
    pd.DataFrame({"y": 0.5 * dd + np.sin(x2) + rng.normal(size=n), "d": dd, "x1": x1,
                  "x2": x2}).round(6).to_csv(d / "plr.csv", index=False)
    frames = []
    for site in ("S1", "S2"):
        x = rng.uniform(0, 10, size=120)
        t = np.sin(x / 2) + rng.normal(size=120)
        frames.append(pd.DataFrame({"site": site, "x": x, "d": t,
                                    "y": 0.5 * t + np.cos(x / 3) + rng.normal(size=120)}))
    pd.concat(frames).round({"x": 6, "d": 6, "y": 6}).to_csv(d / "nf.csv", index=False)
    task = np.repeat(["a", "b", "c"], 40)
    u1, u2 = rng.normal(size=120), rng.normal(size=120)
    slope = pd.Series({"a": 1.0, "b": 1.2, "c": -0.5})[task].to_numpy()
    pd.DataFrame({"y": np.tanh(u1) + slope * u2 + 0.1 * rng.normal(size=120), "task": task,
                  "x1": u1, "x2": u2}).round({"y": 6, "x1": 6, "x2": 6}).to_csv(d / "tasks.csv", index=False)
    cohort = np.repeat(["A", "B"], 30)
    z = rng.normal(size=60)
    blocks = pd.DataFrame({"cohort": cohort, "a1": z + 0.3 * rng.normal(size=60),
                           "a2": z + 0.3 * rng.normal(size=60), "p1": z + 0.3 * rng.normal(size=60),
                           "p2": -z + 0.3 * rng.normal(size=60)})
    blocks["y"] = z + 0.5 * blocks["p1"] + 0.1 * rng.normal(size=60)
    blocks = blocks.round(6)
    blocks.loc[blocks["cohort"] == "B", ["p1", "p2"]] = np.nan
    blocks.to_csv(d / "blocks.csv", index=False)
    return d


@pytest.fixture(scope="module")
def r_json(inputs, tmp_path_factory) -> dict:
    r_env = install_package(tmp_path_factory.mktemp("R-library"))
    out = tmp_path_factory.mktemp("parity-r")
    script = out / "parity.R"
    script.write_text(_SCRIPT, encoding="utf-8")
    proc = run_r(r_env, [str(script), str(inputs), str(out)], timeout=600)
    assert proc.returncode == 0, f"R parity script failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    return json.loads((out / "r.json").read_text(encoding="utf-8"))


def _close(r_value, py_value, rtol=RTOL, atol=1e-300):
    np.testing.assert_allclose(np.asarray(r_value, dtype=float), np.asarray(py_value, dtype=float),
                               rtol=rtol, atol=atol)


def test_summaries_and_site_dml(r_json, inputs):
    from hetmtl.fusion.late_fusion import LateFusion
    from hetmtl.fusion.site_dml import SiteDML
    from hetmtl.fusion.summary import SiteSummary
    from hetmtl.fusion.summary_privacy import SummaryPrivacy

    assert r_json["available"] is True
    pub = SiteSummary.from_estimate(np.array([0.4, -0.2]), cov=np.array([[0.04, 0.01], [0.01, 0.09]]),
                                    n=250, site="pub", coef_names=["a", "b"])
    _close(r_json["pub_estimate"], pub.theta)
    plr = read_csv_exact(inputs / "plr.csv")
    fit = SiteDML(ml_l="gbm", ml_m="gbm", n_folds=3, random_state=4, site="A",
                  learner_args={"n_estimators": 20}).fit(plr, y="y", d="d", x=["x1", "x2"])
    _close(r_json["site_summary_estimate"], fit.summary_.theta)
    _close(r_json["tidy_site"], fit.confint(level=0.95).iloc[:, 1])
    assert r_json["glance_nobs"] == 150
    priv = fit.private_summary(SummaryPrivacy(epsilon=20.0, regressor_bound=4.0, outcome_bound=6.0,
                                              random_state=9))
    _close(r_json["private_estimate"], priv.theta)
    _close(r_json["private_se"], priv.se)
    lf = LateFusion(n_boot=40, random_state=2).fit(
        {"A": fit.summary_, "pub": SiteSummary.from_estimate(np.array([0.9]), se=np.array([0.1]), n=300,
                                                             coef_names=["d"])})
    tab = lf.summary()
    _close(r_json["tidy_fused"], tab["fused estimate"])
    # a difference of two numbers of order one: its rounding is absolute, not relative
    _close(r_json["augment_resid"], tab["estimate"] - tab["fused estimate"], atol=1e-12)
    assert r_json["glance_method"] == lf.method_ == "robust_eb"
    ma = lf.heterogeneity()
    _close(r_json["het_tidy"], ma.summary()["estimate"])
    _close(r_json["het_glance_q"], ma.heterogeneity_table()["Q"].iloc[0])


def test_learner_by_name(r_json):
    from hetmtl.fusion.learners import make_learner

    est = make_learner("gbm", "classifier", random_state=3, n_estimators=20)
    assert r_json["learner_repr"] == repr(sorted(est.get_params(deep=False).items()))


def test_nuisance_fusion(r_json, inputs):
    from hetmtl.fusion.grid_summary import site_grid_summary
    from hetmtl.fusion.kernel_grid import KernelGrid
    from hetmtl.fusion.nuisance_fusion import NuisanceFusion
    from hetmtl.fusion.site_dml import SiteDML

    nf = read_csv_exact(inputs / "nf.csv")
    grid = KernelGrid.from_ranges(np.array([[0.0, 10.0]]), 12)
    bw = np.array([[1.0], [2.0]])
    sums = [site_grid_summary(nf[nf["site"] == k].reset_index(drop=True), y="y", d="d", x=["x"],
                              grid=grid, bandwidths=bw, n_folds=3, random_state=seed, site=k)[0]
            for k, seed in (("S1", 11), ("S2", 12))]
    fused = NuisanceFusion().fit(sums).result("S1")
    rows = nf[nf["site"] == "S1"][["y", "d", "x"]].reset_index(drop=True)
    est = SiteDML(n_folds=3, random_state=11, site="S1")
    split = est.split(rows, y="y", d=["d"], x=["x"])[0]
    fit = est.fit(rows, y="y", d=["d"], x=["x"], folds=[split],
                  predictions=fused.predictions(rows[["x"]].to_numpy(), split))
    _close(r_json["nf_coef"], fit.coef_, rtol=1e-10)
    _close(r_json["nf_se"], fit.se_, rtol=1e-10)


def test_neural_models_equal_across_processes(r_json, inputs):
    from hetmtl.blockwise import BlockLayout, HBIImputer, TwoPathwayMTL
    from hetmtl.dual import DualEncoderMTL

    mt = read_csv_exact(inputs / "tasks.csv")
    X = mt[["x1", "x2"]].to_numpy()
    task = mt["task"].astype(str).to_numpy()
    dual = DualEncoderMTL(latent_shared=3, latent_specific=1, hidden=(8,), lam_beta=0.3,
                          max_epochs=10, patience=5, negative_transfer="off", n_threads=1,
                          random_state=3).fit(X, mt["y"].to_numpy(), task)
    _close(r_json["dual_pred"], dual.predict(X, task))
    bl = read_csv_exact(inputs / "blocks.csv")
    sources = {"base": ["a1", "a2"], "s1": ["p1", "p2"]}
    Xb = bl[["a1", "a2", "p1", "p2"]].astype(float)
    labels = bl["cohort"].astype(str).to_numpy()
    layout = BlockLayout.from_data(Xb, labels, sources, "base")
    model = TwoPathwayMTL(layout, imputer="mean", hidden=6, n_layers=1, max_epochs=8, patience=4,
                          random_state=2).fit(Xb, bl["y"].to_numpy(), labels)
    _close(r_json["blockwise_pred"], model.predict(Xb, labels))
    imp = HBIImputer(layout, width=(4,), depth=(1,), lam_orth=(0.0,), max_epochs=10, patience=3,
                     random_state=5).fit(Xb, labels)
    _close(r_json["impute_p1"], imp.transform(Xb, labels)[:, 2])


def test_data_sets(r_json):
    from hetmtl.datasets import load_exam

    exam = load_exam()
    assert r_json["exam_rows"] == len(exam)
    _close(r_json["exam_mean"], exam["normexam"].mean())
