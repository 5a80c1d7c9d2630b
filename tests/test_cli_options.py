"""The `hetmtl` command's options and usage: `python -m hetmtl`, options a method does not use,
help texts and a subcommand's own usage on a mistyped option."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from hetmtl import __version__
from hetmtl.cli import main


def _one_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def test_python_dash_m_runs_the_command():
    env = {**os.environ, "PYTHONWARNINGS": "error"}
    res = subprocess.run([sys.executable, "-m", "hetmtl", "--version"], capture_output=True,
                         text=True, env=env, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip().endswith(__version__)


@pytest.mark.parametrize("method", [[], ["--method", "robust_eb"], ["--method", "fusion"]])
def test_tau2_method_outside_blup_is_refused(capsys, method):
    assert main(["fuse", "a.json", *method, "--tau2-method", "DL"]) == 2
    assert _one_line(capsys) == ("hetmtl fuse: error: --tau2-method: applies to --method blup only "
                                 "(no other method uses it); add --method blup or drop --tau2-method")


def test_tau2_method_with_blup_gets_to_the_summaries(capsys, tmp_path):
    assert main(["fuse", str(tmp_path / "a.json"), "--method", "blup", "--tau2-method", "DL"]) == 2
    assert "SUMMARY: file" in _one_line(capsys)


def test_fuse_help_says_when_heterogeneity_is_written(capsys):
    assert main(["fuse", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "heterogeneity.json (with two or more sites" in text
    assert "--tau2-method" in text and "an error with the other methods" in text


@pytest.mark.parametrize("argv, command", [
    (["fuse", "a.json", "--lerner", "rf"], "fuse"),
    (["summarize", "a.csv", "--site", "A", "--y", "y", "--d", "d", "--x", "x", "-o", "o.json",
      "--lerner", "rf"], "summarize"),
])
def test_mistyped_option_shows_the_subcommand_usage(capsys, argv, command):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"usage: hetmtl {command} [-h]")
    assert f"hetmtl {command}: error: unrecognized arguments: --lerner" in err
