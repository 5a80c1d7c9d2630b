"""The published JSON Schemas of summary files: valid, shipped in the package, followed by what
the package writes, and backed by consistency checks on load."""

from __future__ import annotations

import json
from importlib import resources

import jsonschema
import numpy as np
import pytest

from hetmtl.fusion import GridSummary, KernelGrid, nuisance_targets
from hetmtl.fusion.crossfit import make_folds
from hetmtl.fusion.disclosure import load_schema
from hetmtl.fusion.summary import FoldSummary, SiteSummary

from fusion_helpers import residual_site


@pytest.mark.parametrize("name", ["site_summary", "grid_summary"])
def test_schemas_ship_in_the_package_and_are_valid(name):
    path = resources.files("hetmtl.fusion").joinpath("schemas", f"{name}.schema.json")
    schema = json.loads(path.read_text("utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema == load_schema(name)
    assert schema["additionalProperties"] is False
    meta = schema["properties"]["metadata"]
    meta = schema["$defs"]["metadata"] if "$ref" in meta else meta
    assert meta["additionalProperties"] is False


def _grid_summary():
    rng = np.random.default_rng(0)
    x = rng.uniform(-2, 2, 300)
    d = rng.normal(size=300)
    y = d + np.cos(x) + rng.normal(size=300)
    folds = make_folds(300, 3, 1, np.random.SeedSequence(0))[0]
    grid = KernelGrid.from_ranges([[-3, 3]], 11)             # no rows near the ends
    return GridSummary.compute(grid, x, nuisance_targets("plr", y, d), folds, [[0.3], [0.6]],
                               metadata={"model": "plr"})


def test_written_files_follow_the_schemas():
    s, _, _ = residual_site(np.random.default_rng(1), np.array([0.5, -1.0]), 300)
    jsonschema.validate(json.loads(json.dumps(s.to_dict())), load_schema("site_summary"))
    g = _grid_summary()
    jsonschema.validate(json.loads(json.dumps(g.to_dict())), load_schema("grid_summary"))
    assert GridSummary.from_dict(g.to_dict()).metadata == {"model": "plr"}


def test_site_summary_consistency_checks():
    s, _, _ = residual_site(np.random.default_rng(2), np.array([0.5]), 300, n_folds=3)
    d = s.to_dict()
    d["folds"][0]["n"] += 1
    with pytest.raises(ValueError, match="folds: fold sizes add up to 301, not to the site's n = 300"):
        SiteSummary.from_dict(d)
    d = s.to_dict()
    d["withheld_fold_rows"] = [0]
    with pytest.raises(ValueError, match="withheld_fold_rows.0: 0 is less than the minimum of 1"):
        SiteSummary.from_dict(d)
    d = s.to_dict()
    d["theta"] = "0.5"
    with pytest.raises(ValueError, match="summary: theta: '0.5' is not of type 'array'"):
        SiteSummary.from_dict(d)
    # A withheld fold's size keeps the total consistent.
    folds = s.folds
    kept = SiteSummary(s.theta, s.J, s.Omega, s.n, folds=folds[1:], withheld_fold_rows=(folds[0].n,))
    assert SiteSummary.from_dict(kept.to_dict()).withheld_fold_rows == (folds[0].n,)
    with pytest.raises(ValueError, match="fold sizes add up to"):
        SiteSummary(s.theta, s.J, s.Omega, s.n, folds=folds[1:])
    assert isinstance(kept.folds[0], FoldSummary)


@pytest.mark.parametrize("edit,msg", [
    (lambda d: d["nuisances"]["ml_l"]["M"][0][0].__setitem__(0, [[3.0]]),
     "flagged as withheld carries non-zero sums"),
    (lambda d: d["nuisances"]["ml_m"]["V"][1][2].__setitem__(0, [1.0]),
     "flagged as withheld carries non-zero sums"),
    ("negative", "kernel sum below the threshold"),
    (lambda d: d.__setitem__("threshold", 0.5), "threshold: 0.5 is less than the minimum of 1"),
    (lambda d: d["nuisances"].__setitem__("rows", d["nuisances"]["ml_l"]), "nuisances: 'rows' is not one of"),
    (lambda d: d["nuisances"]["ml_l"].__setitem__("x", [1.0]), r"unknown field\(s\) \['x'\]"),
    (lambda d: d.__setitem__("bandwidths", [[0.3]] * 11), "bandwidths: .* is too long"),
])
def test_grid_summary_consistency_checks(edit, msg):
    g = _grid_summary()
    d = json.loads(json.dumps(g.to_dict()))
    rel = g.nuisances["ml_l"].released
    assert not rel[0, 0] and rel[0].any()                       # the corner is withheld
    if edit == "negative":
        b, k = 0, int(np.flatnonzero(rel[0])[0])
        d["nuisances"]["ml_l"]["M"][b][1][k] = [[-1.0]]
    else:
        edit(d)
    with pytest.raises(ValueError, match=msg):
        GridSummary.from_dict(d)
