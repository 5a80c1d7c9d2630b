"""Results print like a statistics package: whole tables, integers whole, the CLI's report."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from fusion_helpers import residual_sites

from hetmtl._util.display import Report, Section, format_frame, format_number
from hetmtl.fusion import LateFusion, SiteDML, SiteSummary
from hetmtl.fusion.report import fusion_report


@pytest.fixture(scope="module")
def summaries():
    rng = np.random.default_rng(5)
    return residual_sites(rng, np.array([[0.3], [0.35], [0.2], [1.4]]), [120, 400, 12000, 250])[0]


@pytest.fixture(scope="module")
def fit(summaries):
    return LateFusion(method="blup", n_boot=50, random_state=0).fit(summaries)


# --------------------------------------------------------------------------- numbers and tables
@pytest.mark.parametrize("value, text", [
    (12000, "12000"), (np.int64(7), "7"), (12000.0, "12000"), (0.012346, "0.01235"),
    (1.5e-7, "1.500e-07"), (123456.7, "123457"), (float("nan"), "nan"), (True, "yes"), (0.0, "0"),
])
def test_format_number(value, text):
    assert format_number(value) == text


def test_whole_number_columns_print_as_integers_and_tables_are_never_cut():
    wide = pd.DataFrame({f"a rather long column name {i}": [1.23456789, 2.5] for i in range(30)})
    wide["n"] = [12000.0, 400.0]  # integers stored as floats (as SiteSummary.n is)
    with pd.option_context("display.width", 40, "display.max_columns", 4):
        text = format_frame(wide)
    assert "..." not in text
    assert all(f"a rather long column name {i}" in text for i in range(30))
    assert "12000" in text and "12000.0" not in text and "1.2e+04" not in text
    assert "1.235" in text


def test_report_renders_text_and_html():
    report = Report("Title", [Section("Numbers", table=pd.DataFrame({"x": [1, 2]})),
                              Section(values={"n": 3, "rate": 0.5}, lines=["a <line>"])])
    assert report.text().startswith("Title\n")
    assert "n: 3" in report.text() and "rate: 0.5000" in report.text()
    html = report.html()
    assert "<table" in html and "a &lt;line&gt;" in html


# --------------------------------------------------------------------------- late fusion
def test_print_late_fusion_shows_the_cli_report(fit):
    text = str(fit)
    assert text + "\n" == fusion_report(fit)
    for piece in ("Per-site estimates", "Center", "Q =", "I^2", "H^2", "tau^2",
                  "prediction interval", "s0", "s3", "weight %"):
        assert piece in text
    assert "12000" in text and "1.2e+04" not in text  # the size of site s2, whole
    assert repr(fit) == text


def test_late_fusion_table_is_whole_at_any_pandas_width(fit):
    with pd.option_context("display.width", 30, "display.max_columns", 3):
        text = str(fit)
    for column in fit.summary().columns:
        assert column in text
    assert "..." not in text


def test_unfitted_estimators_keep_the_constructor_repr():
    lf = LateFusion(method="blup")
    assert repr(lf) == "LateFusion(method='blup')"
    assert "not fitted" in str(lf)
    assert repr(SiteDML(site="A")) == "SiteDML(site='A')"


def test_notebook_html(fit):
    html = fit._repr_html_()
    assert html.count("<table") >= 3 and "Per-site estimates" in html
    bundle = fit._repr_mimebundle_()
    assert bundle["text/html"] == html and bundle["text/plain"] == repr(fit)


def test_heterogeneity_prints_every_statistic(fit):
    meta = fit.heterogeneity()
    text = str(meta)
    assert text.startswith("MetaAnalysis(k=4")
    for piece in ("Q =", "I^2 =", "H^2 =", "tau^2 =", "prediction interval", "random (REML)",
                  "weight % (REML)", "pi lower"):
        assert piece in text
    lo, hi = meta.prediction_interval()
    assert format_number(lo) in text and format_number(hi) in text


# --------------------------------------------------------------------------- one site
def test_site_dml_and_summary_print_their_estimates():
    rng = np.random.default_rng(0)
    df = pd.DataFrame(rng.normal(size=(150, 3)), columns=["x1", "x2", "d"])
    df["y"] = 0.5 * df.d + df.x1 + rng.normal(size=150)
    est = SiteDML(ml_l="linear", ml_m="linear", n_folds=3, site="Oslo", random_state=0)
    est.fit(df, y="y", d="d", x=["x1", "x2"])
    text = str(est)
    assert "SiteDML of site 'Oslo'" in text and "rows: 150" in text and "folds: 3" in text
    assert format_number(est.coef_[0]) in text
    summary_text = repr(est.summary_)
    assert "SiteSummary of site 'Oslo'" in summary_text and "array(" not in summary_text
    assert "n: 150" in summary_text
    published = SiteSummary.from_estimate(0.2, 0.05, n=400, site="B")
    assert "estimate" in str(published) and "n: 400" in str(published)


# --------------------------------------------------------------------------- nuisance fusion
def test_grid_summary_and_nuisance_fusion_print_reports_not_arrays():
    from hetmtl.fusion import GridSummary, KernelGrid, NuisanceFusion, nuisance_targets

    rng = np.random.default_rng(1)
    grid = KernelGrid.from_ranges([(-2.0, 2.0)], n_points=9, outside="clip")
    sums = []
    for k in range(3):
        x = rng.normal(size=(120, 1))
        d = (rng.random(120) < 0.5).astype(float)
        y = np.sin(x[:, 0]) + d + 0.3 * rng.normal(size=120)
        folds = np.arange(120) % 3
        sums.append(GridSummary.compute(grid, x, nuisance_targets("plr", y, d), folds,
                                        np.array([[0.5], [0.8]]), site=f"s{k}"))
    text = repr(sums[0])
    assert "GridSummary of site 's0'" in text and "array(" not in text
    assert "released (h0)" in text and "9 points" in text
    nf = NuisanceFusion()
    assert "not fitted" in repr(nf)
    nf.fit(sums)
    text = repr(nf)
    assert "NuisanceFusion of 3 sites" in text and "ml_l" in text and "ml_m" in text
    assert "array(" not in text
    assert "FusedNuisance for site 's1'" in repr(nf.result("s1"))
    assert "<table" in nf._repr_html_()


# --------------------------------------------------------------------------- neural estimators
def test_neural_estimators_print_state_tasks_and_settings():
    pytest.importorskip("torch")
    from dual_helpers import small_tasks

    from hetmtl.dual import DualEncoderMTL, SingleTaskMLP

    X, y, task = small_tasks()
    model = DualEncoderMTL(hidden=8, max_epochs=5, lam_beta=0.3, negative_transfer="off",
                           random_state=0)
    assert repr(model).startswith("DualEncoderMTL(")
    assert "not fitted" in str(model) and "latent_shared: 12" in str(model)
    model.fit(X, y, task)
    text = repr(model)
    assert "DualEncoderMTL, fitted" in text and "tasks: 3 (north, south, west)" in text
    assert "features: 3" in text and "n_train" in text and "lam_beta: 0.3" in text
    assert "<table" in model._repr_html_()
    single = SingleTaskMLP(max_epochs=3, random_state=0).fit(X, y, task)
    assert "SingleTaskMLP, fitted" in str(single) and "max_epochs: 3" in str(single)


def test_blockwise_model_prints_its_layout_and_grid():
    pytest.importorskip("torch")
    from hetmtl.blockwise import TwoPathwayMTL
    from hetmtl.simulate import make_blockwise_tasks

    data = make_blockwise_tasks(n_tasks=2, n_per_task=60, p_anchor=4, p_specific=2, random_state=0)
    model = TwoPathwayMTL(data.layout, imputer="mean", hidden=8, max_epochs=3, patience=2,
                          random_state=0)
    assert "not fitted" in str(model)
    model.fit(data.X, data.y, data.task)
    text = str(model)
    assert "TwoPathwayMTL, fitted" in text and "observed" in text and "missing" in text
    assert "imputer: 'mean'" in text


def test_late_fusion_report_names_where_site_intervals_come_from(summaries):
    assert "site intervals: posterior" in str(LateFusion(n_boot=30, random_state=0).fit(summaries))
    boot = LateFusion(n_boot=30, random_state=0, site_intervals="bootstrap").fit(summaries)
    assert "site intervals: bootstrap" in str(boot)
    assert "site intervals" not in str(LateFusion(method="blup", random_state=0).fit(summaries))


def test_robust_eb_report_with_few_sites_points_to_knapp_hartung():
    sites = [SiteSummary.from_estimate(e, s, n=n, site=name) for name, e, s, n in
             [("A", 0.5, 0.06, 300), ("B", 0.6, 0.09, 120), ("C", 0.55, 0.13, 60)]]
    few = str(LateFusion(n_boot=50, random_state=0).fit(sites))
    assert "With 3 sites robust EB" in few and "test='knha'" in few
    assert "Knapp-Hartung" not in str(LateFusion(method="blup").fit(sites))
    knha = str(LateFusion(method="blup", test="knha").fit(sites))
    assert "knha (Knapp-Hartung, t on 2 df)" in knha and "t quantiles (Knapp-Hartung)" in knha
