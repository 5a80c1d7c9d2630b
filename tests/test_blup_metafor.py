"""Random-effects BLUP (batched) against metafor's ``blup()`` through rpy2, on metafor's examples."""

from __future__ import annotations

import numpy as np
import pytest

from hetmtl import rbridge
from hetmtl.fusion import LateFusion, SiteSummary
from hetmtl.fusion.blup import random_effects
from hetmtl.fusion.heterogeneity import meta_analysis
from test_heterogeneity_metafor import DATASETS, dataset

pytestmark = [pytest.mark.r, pytest.mark.usefixtures("robjects")]

_BLUP_R = """
function(yi, vi, method) {
  fit <- metafor::rma.uni(yi, vi, method = method,
                          control = list(threshold = 1e-12, maxiter = 1000))
  b <- metafor::blup(fit)
  data.frame(pred = b$pred, se = b$se, pi_lb = b$pi.lb, pi_ub = b$pi.ub,
             tau2 = fit$tau2, mu = as.numeric(fit$beta), mu_se = fit$se)
}
"""


_BLUP_KNHA_R = """
function(yi, vi, method) {
  fit <- metafor::rma.uni(yi, vi, method = method, test = "knha",
                          control = list(threshold = 1e-12, maxiter = 1000))
  b <- metafor::blup(fit)
  data.frame(pred = b$pred, se = b$se, pi_lb = b$pi.lb, pi_ub = b$pi.ub,
             mu = as.numeric(fit$beta), mu_se = fit$se, ci_lb = fit$ci.lb, ci_ub = fit$ci.ub)
}
"""


def metafor_blup(yi, vi, method, knha=False):
    robjects = pytest.importorskip("rpy2.robjects")
    name = "hetmtl_test_blup_knha" if knha else "hetmtl_test_blup"
    robjects.globalenv[name] = robjects.r(_BLUP_KNHA_R if knha else _BLUP_R)
    out = rbridge.r_call(name, yi, vi, method)
    return rbridge.r_to_pandas(out, rownames=False)


@pytest.mark.parametrize("name", DATASETS)
@pytest.mark.parametrize("method", ["DL", "REML"])
def test_knapp_hartung_blup_matches_metafor(name, method):
    # LateFusion(method="blup", test="knha") against rma.uni(test="knha") and its blup(): the
    # center's and every site's SE and interval (t quantiles on K - 1 df).
    yi, vi = dataset(name)
    ref = metafor_blup(yi, vi, method, knha=True)
    summaries = [SiteSummary.from_estimate(float(e), float(np.sqrt(s)), site=f"s{k}")
                 for k, (e, s) in enumerate(zip(yi, vi))]
    fit = LateFusion(method="blup", tau2_method=method, test="knha").fit(summaries)
    atol = 1e-7 if name == "boundary" else 1e-10
    table, center = fit.summary(), fit.center_summary()
    np.testing.assert_allclose(table["fused estimate"], ref["pred"], rtol=1e-8, atol=atol)
    np.testing.assert_allclose(table["fused std err"], ref["se"], rtol=1e-7, atol=atol)
    np.testing.assert_allclose(table["fused ci lower"], ref["pi_lb"], rtol=1e-7, atol=atol)
    np.testing.assert_allclose(table["fused ci upper"], ref["pi_ub"], rtol=1e-7, atol=atol)
    np.testing.assert_allclose(center["std err"], ref["mu_se"].iloc[0], rtol=1e-7, atol=atol)
    np.testing.assert_allclose(center["ci lower"], ref["ci_lb"].iloc[0], rtol=1e-7, atol=atol)
    np.testing.assert_allclose(center["ci upper"], ref["ci_ub"].iloc[0], rtol=1e-7, atol=atol)


@pytest.mark.parametrize("name", DATASETS)
@pytest.mark.parametrize("method", ["DL", "REML"])
def test_blup_matches_metafor(name, method):
    yi, vi = dataset(name)
    ref = metafor_blup(yi, vi, method)
    fit = random_effects(yi, vi, method=method)
    # On the boundary metafor's step halving stops a hair above tau^2 = 0 (about 1e-13).
    atol = 1e-7 if name == "boundary" else 1e-12
    np.testing.assert_allclose(fit.tau2[0], ref["tau2"].iloc[0], rtol=1e-8, atol=atol)
    np.testing.assert_allclose(fit.mu[0], ref["mu"].iloc[0], rtol=1e-8, atol=atol)
    np.testing.assert_allclose(np.sqrt(fit.mu_var[0]), ref["mu_se"].iloc[0], rtol=1e-8)
    np.testing.assert_allclose(fit.blup[0], ref["pred"], rtol=1e-8, atol=atol)
    np.testing.assert_allclose(np.sqrt(fit.blup_var[0]), ref["se"], rtol=1e-7, atol=atol)
    # The batched tau^2 equals the one of the (single data set) meta-analysis.
    res = meta_analysis(yi, np.sqrt(vi))
    single = res.random_reml if method == "REML" else res.random_dl
    np.testing.assert_allclose(fit.tau2[0], single.tau2, rtol=1e-8, atol=1e-12)


def test_batched_rows_equal_single_fits():
    rows = [dataset(name) for name in ("bcg", "homogeneous")]
    k = min(len(y) for y, _ in rows)
    y = np.stack([r[0][:k] for r in rows])
    v = np.stack([r[1][:k] for r in rows])
    both = random_effects(y, v)
    for i in range(2):
        one = random_effects(y[i], v[i])
        np.testing.assert_allclose(both.blup[i], one.blup[0], rtol=1e-12)
        np.testing.assert_allclose(both.tau2[i], one.tau2[0], rtol=1e-12, atol=1e-15)
