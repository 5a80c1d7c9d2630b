"""The nuisance fusion round trip through the ``hetmtl`` command equals the Python API."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from hetmtl._util.io import read_csv_exact
from hetmtl.cli import main
from hetmtl.fusion import GridSummary, KernelGrid, NuisanceFusion, SiteDML, nuisance_targets
from hetmtl.fusion.summary import SiteSummary

SEED = 4
BANDWIDTHS = [0.8, 1.6]


@pytest.fixture(scope="module")
def csvs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("nf_cli")
    rng = np.random.default_rng(0)
    paths = []
    for k in range(3):
        n = 200 + 50 * k
        x = rng.uniform(0, 10, n)
        d = np.sin(x / 2) + rng.normal(size=n)
        y = 0.5 * d + np.cos(x / 3) + 0.2 * k + rng.normal(size=n)
        path = tmp / f"s{k}.csv"
        pd.DataFrame({"y": y, "d": d, "x": x}).to_csv(path, index=False)
        paths.append(path)
    return tmp, paths


def _summarize(csv, site, out, *extra):
    return main(["summarize", str(csv), "--site", site, "--y", "y", "--d", "d", "--x", "x",
                 "--learner", "linear", "--seed", str(SEED), "-o", str(out), *extra])


def test_round_trip_equals_python_api(csvs, capsys):
    tmp, paths = csvs
    grid_json = tmp / "grid.json"
    assert main(["nuisance-grid", "--range", "0", "10", "--n-points", "15", "--bandwidth",
                 *map(str, BANDWIDTHS), "-o", str(grid_json)]) == 0
    for k, csv in enumerate(paths):
        assert _summarize(csv, f"S{k}", tmp / f"S{k}.json", "--nuisance-grid", str(grid_json)) == 0
    assert main(["fuse-nuisance", *[str(tmp / f"S{k}.grid.json") for k in range(3)],
                 "--out-dir", str(tmp / "fused")]) == 0
    assert _summarize(paths[0], "S0", tmp / "S0f.json", "--fused-nuisance",
                      str(tmp / "fused" / "S0.fused.json")) == 0
    out = capsys.readouterr().out
    assert "fused nuisances" in out and "bandwidth" in out

    # The same steps through the Python API.
    grid = KernelGrid((np.linspace(0, 10, 15),))
    summaries, data = [], []
    for k, csv in enumerate(paths):
        df = read_csv_exact(csv)
        folds = SiteDML(n_folds=5, random_state=SEED).split(df, y="y", d="d", x=["x"])[0]
        summaries.append(GridSummary.compute(grid, df[["x"]].to_numpy(), nuisance_targets(
            "plr", df["y"].to_numpy(), df["d"].to_numpy()), folds, BANDWIDTHS, site=f"S{k}"))
        data.append((df, folds))
    nf = NuisanceFusion().fit(summaries)
    df, folds = data[0]
    preds = nf.result("S0").predictions(df[["x"]].to_numpy(), folds)
    ref = SiteDML(n_folds=5, random_state=SEED, site="S0").fit(df, y="y", d="d", x=["x"], folds=[folds],
                                                              predictions=preds)
    ours = SiteSummary.from_json(tmp / "S0f.json")
    np.testing.assert_allclose(ours.theta, ref.coef_, rtol=1e-10)
    np.testing.assert_allclose(ours.cov, ref.cov_, rtol=1e-10)
    on_disk = GridSummary.from_json(tmp / "S1.grid.json")
    np.testing.assert_allclose(on_disk.nuisances["ml_m"].M, summaries[1].nuisances["ml_m"].M, rtol=1e-12)
    assert json.loads((tmp / "grid.json").read_text())["threshold"] == 5.0


def test_errors(csvs, capsys):
    tmp, paths = csvs
    rc = _summarize(paths[0], "S0", tmp / "x.json", "--nuisance-grid", str(tmp / "missing.json"))
    assert rc == 2 and "--nuisance-grid: file" in capsys.readouterr().err
    grid_json = tmp / "grid_err.json"
    assert main(["nuisance-grid", "--range", "0", "5", "--bandwidth", "1", "-o", str(grid_json)]) == 0
    rc = _summarize(paths[0], "S0", tmp / "x.json", "--nuisance-grid", str(grid_json))
    err = capsys.readouterr().err
    assert rc == 2 and "--x: row" in err and "outside the grid's range" in err
    rc = _summarize(paths[0], "S0", tmp / "x.json", "--nuisance-grid", str(grid_json), "--n-rep", "2")
    assert rc == 2 and "--n-rep: nuisance fusion uses one sample split" in capsys.readouterr().err
    rc = main(["nuisance-grid", "--range", "0", "5", "--bandwidth", "-1", "-o", str(grid_json)])
    assert rc == 2 and "--bandwidth: all values must be positive" in capsys.readouterr().err
    rc = main(["fuse-nuisance", str(paths[0]), "--out-dir", str(tmp)])
    assert rc == 2 and "GRID_SUMMARY" in capsys.readouterr().err
