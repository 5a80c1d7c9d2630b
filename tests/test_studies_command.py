"""The ``hetmtl study`` command and the shared --scheduler-address option (local runs)."""

from __future__ import annotations

import argparse
import json
import re

import pandas as pd
import pytest

from hetmtl._util.io import read_csv_exact
from hetmtl.cli import main
from hetmtl.studies import config_grid, run_study
from hetmtl.studies.checkpoint import CheckpointFolder
from hetmtl.studies.cluster_args import add_cluster_arguments, cluster_options
from test_studies_runner import _first_draw


def _raises(config, seed):
    raise ValueError("the study function's own bug")


def _study(tmp_path, *extra):
    out = tmp_path / "results.csv"
    rc = main(["study", "test_studies_runner:_first_draw", "--reps", "3", "--seed", "5",
               "--no-progress", "-o", str(out), *extra])
    return rc, out


def test_grid_and_configs_file_give_the_run_study_table(tmp_path, capsys):
    expected = run_study(_first_draw, config_grid(a=[1, 2], b=["u", "v"]), 3, seed=5,
                         progress=False)
    rc, out = _study(tmp_path, "--grid", "a=1,2", "--grid", "b=u,v", "--n-jobs", "2",
                     "--checkpoint", str(tmp_path / "ckpt"))
    assert rc == 0, capsys.readouterr().err
    assert f"wrote 12 rows to {out}" in capsys.readouterr().out
    pd.testing.assert_frame_equal(read_csv_exact(out), expected,
                                  check_exact=True)
    configs = tmp_path / "configs.json"
    configs.write_text(json.dumps(config_grid(a=[1, 2], b=["u", "v"])))
    rc, out = _study(tmp_path, "--configs", str(configs))
    assert rc == 0
    pd.testing.assert_frame_equal(read_csv_exact(out), expected,
                                  check_exact=True)


def test_grid_values_are_typed():
    from hetmtl.studies.command import _grid_axis

    assert _grid_axis("x=1,2.5,true,null,S1") == ("x", [1, 2.5, True, None, "S1"])
    with pytest.raises(argparse.ArgumentTypeError, match="expected NAME=V1,V2"):
        _grid_axis("x")


@pytest.mark.parametrize("args,message", [
    (["nosuchmodule_xyz:f"], "MODULE:FUNCTION: cannot import 'nosuchmodule_xyz'"),
    (["test_studies_runner:nope"], "has no function 'nope'"),
    (["test_studies_runner"], "MODULE:FUNCTION: expected"),
    (["test_studies_runner:_first_draw", "--configs", "missing.json"],
     "--configs: cannot read 'missing.json'"),
    (["test_studies_runner:_first_draw", "--grid", "a=1", "--seed-keys", "zz"],
     r"seed_keys: configs\[0\] lacks"),
    (["test_studies_runner:_first_draw", "--grid", "a=1", "--grid", "a=2"],
     "--grid: axis 'a' given more than once"),
])
def test_input_errors_are_one_line_with_status_2(tmp_path, capsys, args, message):
    rc = main(["study", *args, "--reps", "1", "--seed", "0", "-o", str(tmp_path / "o.csv"),
               "--no-progress", *([] if "--configs" in args or "--grid" in args
                                 else ["--grid", "a=1"])])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.startswith("hetmtl study: error: ") and len(err.strip().splitlines()) == 1
    assert re.search(message, err), err


@pytest.mark.parametrize("args", [["--grid", "a"], ["--reps", "-1"],
                                  ["--scheduler-address", "tcp://a b:1"]])
def test_usage_errors(tmp_path, capsys, args):
    base = {"--grid": "a=1", "--reps": "1"}
    for flag, value in base.items():
        if flag not in args:
            args = [*args, flag, value]
    rc = main(["study", "test_studies_runner:_first_draw", "--seed", "0", "-o",
               str(tmp_path / "o.csv"), *args])
    assert rc == 2
    assert "hetmtl study: error: argument" in capsys.readouterr().err


def test_folder_in_use_is_refused(tmp_path, capsys):
    ckpt = tmp_path / "ckpt"
    holder = CheckpointFolder(ckpt, {"format": "hetmtl.study_checkpoint", "format_version": 2,
                                     "seed": {"entropy": 5, "spawn_key": []}, "seed_keys": None,
                                     "fn": "_first_draw"})
    try:
        rc, out = _study(tmp_path, "--grid", "a=1", "--checkpoint", str(ckpt))
    finally:
        holder.close()
    assert rc == 2 and "is in use by another run" in capsys.readouterr().err
    assert not out.exists()


def test_errors_of_the_study_function_keep_their_traceback(tmp_path):
    with pytest.raises(ValueError, match="the study function's own bug"):
        main(["study", "test_studies_command:_raises", "--grid", "a=1", "--reps", "1",
              "--seed", "0", "--no-progress", "-o", str(tmp_path / "o.csv")])


def test_shared_scheduler_option():
    parser = argparse.ArgumentParser()
    add_cluster_arguments(parser)
    assert cluster_options(parser.parse_args([])) == {"scheduler_address": None}
    for address in ("tcp://10.0.0.1:8786", "127.0.0.1:8786", "tls://head.example.org:8786",
                    "ucx://10.0.0.1:13337"):
        assert cluster_options(parser.parse_args(["--scheduler-address", address])) == {
            "scheduler_address": address}
    for bad in ("", "tcp://", "a b", "tcp://host:port"):
        with pytest.raises(SystemExit):
            parser.parse_args(["--scheduler-address", bad])
