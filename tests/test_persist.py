"""Saving and loading the statistical objects: identical tables, intervals, heterogeneity and
predictions after save -> load and dumps -> loads; refused versions, formats, types and damage."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression

import hetmtl
from hetmtl.fusion import (GridSummary, KernelGrid, LateFusion, NuisanceFusion, SiteDML,
                           SiteSummary, nuisance_targets)
from hetmtl.fusion.crossfit import make_folds
from hetmtl.persist import FORMAT_VERSION, FormatError, PersistError
from hetmtl.persist._archive import state_digest

from fusion_helpers import residual_sites


def _round_trips(obj, tmp_path):
    """The object back from a file (module function and method) and from bytes."""
    path = tmp_path / "fit.hetmtl"
    hetmtl.save(obj, path)
    from_file = hetmtl.load(path)
    obj.save(tmp_path / "method.hetmtl")
    from_method = type(obj).load(tmp_path / "method.hetmtl")
    from_bytes = hetmtl.loads(hetmtl.dumps(obj))
    for back in (from_file, from_method, from_bytes):
        assert type(back) is type(obj)
    return from_file, from_method, from_bytes


def _same(a, b) -> bool:
    """Equal JSON-like structures, NaN equal to NaN."""
    return json.dumps(a, sort_keys=True, default=repr) == json.dumps(b, sort_keys=True, default=repr)


@pytest.fixture(scope="module")
def summaries():
    rng = np.random.default_rng(4)
    thetas = np.array([[0.5, 1.0], [0.6, 1.1], [0.4, 0.9], [2.5, -1.0]])
    return residual_sites(rng, thetas, [300, 250, 400, 350])[0]


@pytest.mark.parametrize("params", [
    dict(n_boot=50, random_state=0),                                   # robust EB, posterior sites
    dict(n_boot=50, random_state=0, site_intervals="bootstrap"),       # robust EB, bootstrap sites
    dict(method="blup", random_state=0),
    dict(lam="cv", n_boot=40, random_state=1),                         # penalized fusion, CV, bootstrap
    dict(method="fusion", lam=0.05, inference="conditional"),
])
def test_late_fusion_round_trip_gives_the_same_tables(summaries, params, tmp_path):
    fit = LateFusion(**params).fit(summaries)
    for back in _round_trips(fit, tmp_path):
        pd.testing.assert_frame_equal(back.summary(), fit.summary())
        pd.testing.assert_frame_equal(back.summary(level=0.8), fit.summary(level=0.8))
        pd.testing.assert_frame_equal(back.center_summary(), fit.center_summary())
        pd.testing.assert_frame_equal(back.confint(0.9), fit.confint(0.9))
        for coef in (0, "theta1"):
            h_back, h_fit = back.heterogeneity(coef), fit.heterogeneity(coef)
            assert _same(h_back.to_dict(), h_fit.to_dict())
            assert h_back.prediction_interval() == h_fit.prediction_interval()
        assert _same(back.to_dict(), fit.to_dict())
        assert back.get_params() == fit.get_params()
        np.testing.assert_array_equal(back.path_.theta, fit.path_.theta)
        assert all(isinstance(s, SiteSummary) for s in back.summaries_)
    # The refits of leave_one_out start from the loaded summaries and options.
    pd.testing.assert_frame_equal(hetmtl.loads(hetmtl.dumps(fit)).leave_one_out(), fit.leave_one_out())


def _site_frame(seed=0, n=200):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2))
    d = x[:, 0] + rng.normal(size=n)
    y = 0.7 * d + np.sin(x[:, 1]) + rng.normal(size=n)
    return pd.DataFrame({"y": y, "d": d, "x1": x[:, 0], "x2": x[:, 1]})


def _row_level_arrays(obj, n: int, path: str = "fit", seen=None) -> list[str]:
    """Where in ``obj`` (attributes, dicts, lists, dataclasses) an array has an axis of length n."""
    seen = set() if seen is None else seen
    if id(obj) in seen or isinstance(obj, (str, bytes, int, float, type(None))):
        return []
    seen.add(id(obj))
    if isinstance(obj, np.ndarray):
        return [path] if n in obj.shape else []
    if isinstance(obj, dict):
        items = obj.items()
    elif isinstance(obj, (list, tuple)):
        items = enumerate(obj)
    elif hasattr(obj, "__dict__"):
        items = vars(obj).items()
    else:
        return []
    return [hit for k, v in items for hit in _row_level_arrays(v, n, f"{path}.{k}", seen)]


def test_site_dml_round_trip_keeps_results_and_leaves_row_level_data_out(tmp_path):
    fit = SiteDML(ml_l="linear", ml_m=LinearRegression(), n_folds=3, n_rep=2, site="north",
                  random_state=3).fit(_site_frame(), y="y", d="d", x=["x1", "x2"])
    for back in _round_trips(fit, tmp_path):
        pd.testing.assert_frame_equal(back.summary(), fit.summary())
        pd.testing.assert_frame_equal(back.confint(0.9), fit.confint(0.9))
        assert back.summary_.to_dict() == fit.summary_.to_dict()
        np.testing.assert_array_equal(back.cov_, fit.cov_)
        assert back.get_params()["ml_m"].get_params() == LinearRegression().get_params()
        assert back.get_params()["ml_l"] == "linear"
        assert not hasattr(back, "predictions_") and not hasattr(back, "folds_")
        assert not hasattr(back, "linear_score_")
        assert _row_level_arrays(back, len(_site_frame())) == []
    with pytest.raises(RuntimeError, match="loaded from a file"):
        hetmtl.loads(hetmtl.dumps(fit)).private_summary(None)
    # The loaded summary fuses as the original does.
    other = SiteDML(ml_l="linear", ml_m="linear", n_folds=3, site="south",
                    random_state=4).fit(_site_frame(1), y="y", d="d", x=["x1", "x2"])
    loaded = hetmtl.loads(hetmtl.dumps(fit))
    pd.testing.assert_frame_equal(LateFusion(method="blup").fit([loaded.summary_, other.summary_]).summary(),
                                  LateFusion(method="blup").fit([fit.summary_, other.summary_]).summary())


def test_site_dml_with_a_basis_function_names_what_cannot_be_saved():
    df = _site_frame()
    df["d"] = (df["d"] > 0).astype(float)
    fit = SiteDML(model="cate_linear", ml_l="linear", ml_m="linear", n_folds=3, random_state=0,
                  basis=lambda x: x[["x1"]]).fit(df, y="y", d="d", x=["x1", "x2"])
    with pytest.raises(PersistError, match=r"SiteDML\.basis: .*function.* cannot be saved"):
        hetmtl.dumps(fit)


def _grid_sites(K=3, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for k in range(K):
        n = 150 + 20 * k
        x = rng.uniform(-2, 2, (n, 1))
        d = np.sin(x[:, 0]) + rng.normal(size=n)
        y = 0.5 * d + np.cos(x[:, 0]) + 0.3 * k + rng.normal(size=n)
        out.append((x, y, d, make_folds(n, 3, 1, np.random.SeedSequence([seed, k]))[0]))
    return out


def test_nuisance_fusion_and_grid_summaries_round_trip(tmp_path):
    sites = _grid_sites()
    grid = KernelGrid((np.linspace(-2, 2, 9),))
    summ = [GridSummary.compute(grid, x, nuisance_targets("plr", y, d), folds, [[0.5], [1.0]], site=f"s{k}")
            for k, (x, y, d, folds) in enumerate(sites)]
    for back in _round_trips(summ[0], tmp_path):
        assert back.to_dict() == summ[0].to_dict()
    nf = NuisanceFusion(n_lambda=4).fit(summ)
    x, _, _, folds = sites[1]
    for back in _round_trips(nf, tmp_path):
        assert back.lam_ == nf.lam_ and back.sites_ == nf.sites_
        for role in nf.values_:
            np.testing.assert_array_equal(back.values_[role], nf.values_[role])
            np.testing.assert_array_equal(back.cv_loss_[role], nf.cv_loss_[role])
        fused, fused_back = nf.result("s1"), back.result("s1")
        for role in ("ml_l", "ml_m"):
            np.testing.assert_array_equal(fused_back.predict(role, x, folds), fused.predict(role, x, folds))
    fused = nf.result("s1")
    for back in _round_trips(fused, tmp_path):
        np.testing.assert_array_equal(back.predict("ml_l", x, folds), fused.predict("ml_l", x, folds))


def test_site_summary_round_trip_validates_the_document(summaries, tmp_path):
    for back in _round_trips(summaries[0], tmp_path):
        assert back.to_dict() == summaries[0].to_dict()


# ----------------------------------------------------------------------------- the file itself

def _members(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


def _rewrite(data: bytes, change, keep_checksum: bool = True) -> bytes:
    """``data`` with its manifest changed by ``change`` (the checksum made to match, unless not)."""
    members = _members(data)
    manifest = json.loads(members["manifest.json"])
    change(manifest)
    if keep_checksum:
        manifest["state_sha256"] = state_digest(manifest["state"])
    members["manifest.json"] = json.dumps(manifest).encode()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, content in members.items():
            zf.writestr(name, content)
    return buf.getvalue()


def _reject_constant(name):
    raise AssertionError(f"non-standard JSON constant {name}")


def test_the_manifest_is_strict_json_with_the_format_fields(summaries):
    fit = LateFusion(n_boot=20, random_state=0).fit(summaries)
    members = _members(hetmtl.dumps(fit))
    assert list(members) == ["manifest.json"]          # no network, so no tensor file
    manifest = json.loads(members["manifest.json"], parse_constant=_reject_constant)
    assert manifest["format"] == "hetmtl"
    assert manifest["format_version"] == FORMAT_VERSION
    assert manifest["package_version"] == hetmtl.__version__
    assert manifest["object_type"] == "hetmtl.fusion.late_fusion:LateFusion"
    assert manifest["state"]["method_"] == "robust_eb"
    assert manifest["state"]["lambda_"] == {"$type": "float", "value": "nan"}


def test_a_newer_format_version_is_refused_naming_both_versions(summaries):
    data = _rewrite(hetmtl.dumps(summaries[0]), lambda m: m.update(format_version=FORMAT_VERSION + 1))
    with pytest.raises(FormatError, match=rf"format version {FORMAT_VERSION + 1} .*reads format versions "
                                          rf"1 to {FORMAT_VERSION}: upgrade hetmtl"):
        hetmtl.loads(data)


@pytest.mark.parametrize("change, message", [
    (lambda m: m.update(format="other"), r"not a hetmtl file \(format 'other'"),
    (lambda m: m.update(format_version="1"), "invalid format_version '1'"),
    (lambda m: m.update(object_type="hetmtl.fusion.late_fusion:NoSuchClass"), "unknown object type"),
    (lambda m: m.update(object_type="os:system"), "unknown object type 'os:system'"),
    (lambda m: m.update(object_type="hetmtl.fusion.kernel_grid:KernelGrid"), "not one hetmtl files hold"),
])
def test_other_formats_and_unknown_object_types_are_refused(summaries, change, message):
    with pytest.raises(FormatError, match=message):
        hetmtl.loads(_rewrite(hetmtl.dumps(LateFusion(method="own").fit(summaries)), change))


def test_damaged_files_give_a_clear_error(summaries, tmp_path):
    data = hetmtl.dumps(LateFusion(method="own").fit(summaries))
    with pytest.raises(FormatError, match="not a zip archive"):
        hetmtl.loads(data[: len(data) // 2])
    with pytest.raises(FormatError, match="not a zip archive"):
        hetmtl.loads(b"theta,se\n1,2\n")
    path = tmp_path / "broken.hetmtl"
    path.write_bytes(_rewrite(data, lambda m: m["state"].pop("theta_hat_"), keep_checksum=False))
    with pytest.raises(FormatError, match=r"broken.hetmtl'.*does not match its checksum"):
        hetmtl.load(path)
    # A state that is consistent but cannot be decoded.
    bad_value = _rewrite(data, lambda m: m["state"].update(theta_hat_={"$type": "pickle", "data": "x"}))
    with pytest.raises(FormatError, match="damaged or inconsistent.*unknown value type 'pickle'"):
        hetmtl.loads(bad_value)
    bad_class = _rewrite(data, lambda m: m["state"].update(
        summaries_={"$type": "object", "class": "subprocess:Popen", "id": 0, "state": {}}))
    with pytest.raises(FormatError, match="refusing to load class 'subprocess:Popen'"):
        hetmtl.loads(bad_class)
    members = _members(data)
    members["manifest.json"] = members["manifest.json"][:-40]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, content in members.items():
            zf.writestr(name, content)
    with pytest.raises(FormatError, match="manifest.json unreadable"):
        hetmtl.loads(buf.getvalue())


def test_objects_outside_the_format_are_refused(summaries, tmp_path):
    with pytest.raises(FormatError, match="obj: a dict cannot be saved"):
        hetmtl.dumps({"theta": 1.0})
    with pytest.raises(FormatError, match="data: expected bytes"):
        hetmtl.loads("not bytes")
    summaries[0].save(tmp_path / "summary.hetmtl")
    with pytest.raises(FormatError, match="holds a SiteSummary, not a LateFusion"):
        LateFusion.load(tmp_path / "summary.hetmtl")


def test_saving_replaces_the_file_atomically(summaries, tmp_path):
    path = tmp_path / "fit.hetmtl"
    hetmtl.save(summaries[0], path)
    hetmtl.save(summaries[1], path)
    assert hetmtl.load(path).site == summaries[1].site
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fit.hetmtl"]


def test_statistical_fits_load_without_torch_and_networks_name_the_extra(summaries, tmp_path):
    import subprocess
    import sys

    from test_torch_optional import HIDE_TORCH

    hetmtl.save(LateFusion(method="blup").fit(summaries), tmp_path / "fit.hetmtl")
    expected = LateFusion(method="blup").fit(summaries).summary().to_json()
    (tmp_path / "expected.json").write_text(expected)
    code = HIDE_TORCH + f"""
import pathlib, hetmtl
fit = hetmtl.load({str(tmp_path / "fit.hetmtl")!r})
assert fit.summary().to_json() == pathlib.Path({str(tmp_path / "expected.json")!r}).read_text()
print("ok")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr
    # A file with networks needs torch, and says so.
    pytest.importorskip("torch")
    from hetmtl.dual import PooledMLP

    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(40, 2)), rng.normal(size=40)
    PooledMLP(hidden=(3,), max_epochs=2, random_state=0).fit(X, y, np.repeat(["a", "b"], 20)).save(
        tmp_path / "net.hetmtl")
    code = HIDE_TORCH + f"""
import hetmtl
try:
    hetmtl.load({str(tmp_path / "net.hetmtl")!r})
except ImportError as exc:
    print(exc)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert "hetmtl[torch]" in out.stdout, out.stderr


def test_values_of_every_kind_survive_the_json_state():
    from hetmtl.persist import _tables  # noqa: F401  (registers the pandas handlers)
    from hetmtl.persist._codec import Decoder, Encoder

    frame = pd.DataFrame({"site": pd.Series(["a", "b", None], dtype="str"), "n": [1, 2, 3],
                          "est": [0.1, np.nan, -np.inf]},
                         index=pd.MultiIndex.from_tuples([("x", 1), ("x", 2), ("y", 1)], names=["g", "k"]))
    shared = np.arange(3.0)
    value = {
        "frame": frame, "series": frame["est"], "index": pd.Index(["u", "v"], name="w"),
        "arrays": [np.array([[1.5, np.nan]], dtype=np.float32), np.array([True, False]),
                   np.array(["p", "q"]), np.array([1, "a", None], dtype=object)],
        "scalars": (np.int64(3), np.float64(np.inf), float("nan"), 2**70),
        "keys": {1: "one", (2, 3): "pair"}, "set": {3, 1}, "seed": np.random.SeedSequence(7, spawn_key=(2,)),
        "rng": np.random.default_rng(5), "dtype": np.dtype("float32"), "same": [shared, shared],
    }
    back = Decoder(lambda name: {}).decode(json.loads(json.dumps(Encoder().encode(value), allow_nan=False)))
    pd.testing.assert_frame_equal(back["frame"], frame)
    pd.testing.assert_series_equal(back["series"], frame["est"])
    pd.testing.assert_index_equal(back["index"], value["index"])
    for a, b in zip(back["arrays"], value["arrays"]):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(a, b)
    assert type(back["scalars"][0]) is np.int64 and back["scalars"][1] == np.inf
    assert np.isnan(back["scalars"][2]) and back["scalars"][3] == 2**70
    assert back["keys"] == value["keys"] and back["set"] == {1, 3}
    assert back["seed"].generate_state(2).tolist() == value["seed"].generate_state(2).tolist()
    assert back["rng"].random() == np.random.default_rng(5).random()
    assert back["dtype"] == np.float32
