"""The command reports every input problem in one line with exit status 2, never a traceback;
an internal error keeps its traceback."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from hetmtl import cli
from hetmtl._util.validation import ArgumentError
from hetmtl.cli import main
from hetmtl.fusion import SiteSummary


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert "Traceback" not in err[0]
    return err[0]


@pytest.fixture
def good_summary(tmp_path):
    path = tmp_path / "good.json"
    SiteSummary(theta=[0.2], J=[[-1.0]], Omega=[[1.5]], n=300, site="A").to_json(path)
    return path


def _variant(tmp_path, good_summary, name, edit):
    doc = json.loads(good_summary.read_text())
    edit(doc)
    path = tmp_path / name
    path.write_text(json.dumps(doc) if not isinstance(doc, str) else doc)
    return path


@pytest.mark.parametrize("name, edit", [
    ("array.json", lambda d: d.clear() or d.update({"not": "a summary"})),
    ("string_theta.json", lambda d: d.update(theta=["0.2"])),
    ("bool_n.json", lambda d: d.update(n=True)),
    ("nan_omega.json", lambda d: d.update(Omega=[[float("nan")]])),
    ("singular_J.json", lambda d: d.update(J=[[0.0]])),
    ("negative_omega.json", lambda d: d.update(Omega=[[-1.0]])),
    ("wrong_shape.json", lambda d: d.update(J=[[-1.0, 0.0]])),
    ("folds_not_adding_up.json", lambda d: d.update(
        folds=[{"n": 10, "theta": [0.1], "J": [[-1.0]], "Omega": [[1.0]]}])),
])
def test_malformed_summaries_give_one_line(tmp_path, capsys, good_summary, name, edit):
    bad = _variant(tmp_path, good_summary, name, edit)
    rc = main(["fuse", str(good_summary), str(bad), "--inference", "none", "--out-dir", str(tmp_path)])
    assert rc == 2
    line = _one_error_line(capsys)
    assert line.startswith("hetmtl fuse: error: ") and name in line


def test_malformed_grid_summary_and_missing_files(tmp_path, capsys):
    bad = tmp_path / "grid.json"
    bad.write_text(json.dumps({"schema": "hetmtl.grid_summary", "schema_version": 1, "site": 3}))
    assert main(["fuse-nuisance", str(bad), "--out-dir", str(tmp_path)]) == 2
    assert "grid.json" in _one_error_line(capsys)
    assert main(["fuse-nuisance", str(tmp_path / "absent.json")]) == 2
    assert "absent.json" in _one_error_line(capsys)
    assert main(["fuse", str(tmp_path)]) == 2          # a folder, not a file
    _one_error_line(capsys)


def _main_running(monkeypatch, command) -> int:
    """``main(["fuse", ...])`` with the command's function replaced by ``command``."""
    parser = cli.build_parser()
    args = parser.parse_args(["fuse", "a.json"])
    args.func = command
    monkeypatch.setattr(parser, "parse_args", lambda argv=None: args)
    monkeypatch.setattr(cli, "build_parser", lambda: parser)
    return main(["fuse", "a.json"])


@pytest.mark.parametrize("exc, expected", [
    (ArgumentError("lam", "must be a finite number, got True"), "--lam: must be a finite number"),
    (ValueError("W: matrix 0 is not positive definite"), "W: matrix 0"),
    (FileNotFoundError(2, "No such file or directory", "x.json"), "x.json: No such file"),
    (FloatingPointError("fused solver: overflow"), "overflow"),
])
def test_library_errors_reaching_main_are_one_line(monkeypatch, capsys, exc, expected):
    def command(_args):
        raise exc

    assert _main_running(monkeypatch, command) == 2
    line = _one_error_line(capsys)
    assert line.startswith("hetmtl fuse: error: ") and expected in line


def test_internal_errors_keep_their_traceback(monkeypatch):
    def broken(_args):
        raise KeyError("an internal bug")

    with pytest.raises(KeyError, match="an internal bug"):
        _main_running(monkeypatch, broken)


def test_subprocess_exit_status_and_stderr(tmp_path, good_summary):
    bad = _variant(tmp_path, good_summary, "bad.json", lambda d: d.update(Omega=[[-1.0]]))
    res = subprocess.run([sys.executable, "-m", "hetmtl.cli", "fuse", str(good_summary), str(bad),
                          "--inference", "none", "--out-dir", str(tmp_path)],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 2
    # (An editable install may print its rebuild check first.)
    errors = [ln for ln in res.stderr.splitlines() if ln.startswith("hetmtl")]
    assert len(errors) == 1 and "Traceback" not in res.stderr
    assert errors[0].startswith("hetmtl fuse: error: ") and "bad.json" in errors[0]
