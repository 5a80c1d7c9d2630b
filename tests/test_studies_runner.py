"""The study runner: seeds, parallel equivalence, checkpoints and resume, summaries, validation."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
import uuid
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import hetmtl.studies.runner as runner_mod
from hetmtl.studies.checkpoint import CheckpointWarning
from hetmtl.studies import (config_grid, load_checkpoint, run_study, summarize_study,
                            task_seed)

CONFIGS = config_grid(a=[1, 2], b=["u", "v"])
N_REPS = 6
SEED = 20240601
TESTS_DIR = str(Path(__file__).resolve().parent)


class CountingFn:
    """A study function that leaves one file per completed call.

    It can fail once on a chosen (a, rep) task, or end its process abruptly (like a kill) once
    ``kill_after`` calls have completed. The replication index is the last element of the
    SeedSequence's spawn key (see ``task_seed``).
    """

    def __init__(self, calls_dir, fail_once_on=None, kill_after=None):
        self.calls_dir = str(calls_dir)
        self.fail_once_on = fail_once_on
        self.kill_after = kill_after

    def __call__(self, config, seed):
        calls = Path(self.calls_dir)
        rep = seed.spawn_key[-1]
        if self.kill_after is not None and len(list(calls.glob("call-*"))) >= self.kill_after:
            os._exit(17)
        if self.fail_once_on == (config["a"], rep):
            flag = calls / "failed-once"
            if not flag.exists():
                flag.touch()
                raise RuntimeError("planned failure")
        rng = np.random.default_rng(seed)
        x = rng.standard_normal(50)
        A = rng.standard_normal((30, 30))
        top = np.linalg.eigvalsh(A @ A.T)[-1]
        (calls / f"call-{config['a']}-{config['b']}-{rep}-{uuid.uuid4().hex}").touch()
        return [
            {"method": "mean", "value": float(x.mean()), "positive": bool(x.mean() > 0)},
            {"method": "eig", "value": top, "n": np.int64(30)},
        ]


def _count_calls(calls_dir) -> Counter:
    counts: Counter = Counter()
    for f in Path(calls_dir).glob("call-*"):
        _, a, b, rep, _ = f.name.split("-")
        counts[(int(a), b, int(rep))] += 1
    return counts


def _first_draw(config, seed):
    return {"draw": float(np.random.default_rng(seed).random())}


def _blas_threads(config, seed):
    from threadpoolctl import threadpool_info

    blas = [d["num_threads"] for d in threadpool_info() if d["user_api"] == "blas"]
    return {"blas_threads": max(blas)}


@pytest.fixture()
def calls(tmp_path):
    d = tmp_path / "calls"
    d.mkdir()
    return d


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted run without a checkpoint: the result every other run must match."""
    d = tmp_path_factory.mktemp("ref_calls")
    return run_study(CountingFn(d), CONFIGS, N_REPS, seed=SEED, progress=False)


# ----------------------------------------------------------------------------- results and seeds

def test_table_layout(reference):
    df = reference
    assert list(df.columns) == ["a", "b", "rep", "method", "value", "positive", "n"]
    assert len(df) == len(CONFIGS) * N_REPS * 2
    # Configuration order, then replication order, then fn's row order.
    expected = [(c["a"], c["b"], r, m) for c in CONFIGS for r in range(N_REPS)
                for m in ("mean", "eig")]
    assert list(df[["a", "b", "rep", "method"]].itertuples(index=False, name=None)) == expected
    assert df.attrs["config_columns"] == ["a", "b"]
    assert df.attrs["metric_columns"] == ["method", "value", "positive", "n"]
    assert df["rep"].dtype == np.int64 and df["value"].dtype == np.float64
    # Rows that lack a key get NaN.
    assert df.loc[df["method"] == "mean", "n"].isna().all()


def test_fn_receives_the_documented_seed():
    cfgs = config_grid(a=[1, 2])
    df = run_study(_first_draw, cfgs, 3, seed=5, progress=False)
    root = np.random.SeedSequence(5)
    expected = [np.random.default_rng(task_seed(root, c, r)).random() for c in cfgs
                for r in range(3)]
    assert df["draw"].tolist() == expected
    assert len(set(expected)) == 6


@pytest.mark.parametrize("n_jobs,backend", [(2, None), (1, "loky"), (-1, "loky")])
def test_parallel_runs_identical(calls, reference, n_jobs, backend):
    par = run_study(CountingFn(calls), CONFIGS, N_REPS, seed=SEED, n_jobs=n_jobs,
                    backend=backend, progress=False)
    pd.testing.assert_frame_equal(par, reference, check_exact=True)
    assert sum(_count_calls(calls).values()) == len(CONFIGS) * N_REPS


def test_seeds_do_not_depend_on_order_or_on_other_configs(calls, reference):
    reordered = run_study(CountingFn(calls), CONFIGS[::-1] + [{"a": 3, "b": "w"}], N_REPS,
                          seed=SEED, progress=False)
    key = ["a", "b", "rep", "method"]
    same = reordered[reordered["a"] != 3].sort_values(key).reset_index(drop=True)
    ref = reference.sort_values(key).reset_index(drop=True)
    pd.testing.assert_frame_equal(same, ref, check_exact=True)
    # Fewer replications give the first replications of a longer run.
    short = run_study(CountingFn(calls), CONFIGS, 2, seed=SEED, progress=False)
    pd.testing.assert_frame_equal(short, reference[reference["rep"] < 2].reset_index(drop=True),
                                  check_exact=True)
    other = run_study(CountingFn(calls), CONFIGS, 2, seed=SEED + 1, progress=False)
    assert not np.array_equal(other["value"], short["value"])


def test_seed_keys_give_common_random_numbers():
    cfgs = config_grid(a=[1, 2], b=["u", "v"])
    df = run_study(_first_draw, cfgs, 3, seed=1, seed_keys=["a"], progress=False)
    wide = df.pivot_table(index=["a", "rep"], columns="b", values="draw")
    np.testing.assert_array_equal(wide["u"], wide["v"])  # same a: same streams
    assert len(set(df["draw"])) == 6  # 2 values of a x 3 reps
    shared = run_study(_first_draw, cfgs, 3, seed=1, seed_keys=[], progress=False)
    assert shared.groupby("rep")["draw"].nunique().eq(1).all()
    # SeedSequence seeds work like their integer entropy.
    via_ss = run_study(_first_draw, cfgs, 3, seed=np.random.SeedSequence(1), seed_keys=["a"],
                       progress=False)
    pd.testing.assert_frame_equal(via_ss, df, check_exact=True)


def test_threads_capped_in_tasks():
    from threadpoolctl import threadpool_info

    before = [d["num_threads"] for d in threadpool_info() if d["user_api"] == "blas"]
    cfgs = config_grid(a=[1, 2])
    one = run_study(_blas_threads, cfgs, 2, seed=0, progress=False)
    assert one["blas_threads"].eq(1).all()
    two = run_study(_blas_threads, cfgs, 2, seed=0, n_jobs=2, progress=False)
    assert two["blas_threads"].eq(1).all()
    after = [d["num_threads"] for d in threadpool_info() if d["user_api"] == "blas"]
    assert after == before  # the cap is lifted after each task


def test_empty_and_uneven_rows():
    def fn(config, seed):
        return [] if config["k"] == 0 else [{"x": i} for i in range(config["k"])]

    df = run_study(fn, config_grid(k=[0, 2]), 2, seed=0, progress=False)
    assert df[["k", "rep", "x"]].values.tolist() == [[2, 0, 0], [2, 0, 1], [2, 1, 0], [2, 1, 1]]
    none = run_study(fn, [{"k": 0}], 2, seed=0, progress=False)
    assert list(none.columns) == ["k", "rep"] and len(none) == 0


def test_progress_bar(capsys):
    run_study(_first_draw, config_grid(a=[1, 2, 3]), 4, seed=0, progress=True)
    err = capsys.readouterr().err
    assert "12/12" in err
    run_study(_first_draw, config_grid(a=[1, 2, 3]), 4, seed=0, progress=False)
    assert capsys.readouterr().err == ""


def test_config_grid():
    grid = config_grid(n=[10, 20], eta=np.array([0.0, 0.5]), s="S1")
    assert grid == [{"n": 10, "eta": 0.0, "s": "S1"}, {"n": 10, "eta": 0.5, "s": "S1"},
                    {"n": 20, "eta": 0.0, "s": "S1"}, {"n": 20, "eta": 0.5, "s": "S1"}]
    assert type(grid[0]["eta"]) is float
    with pytest.raises(ValueError, match="eta: no values"):
        config_grid(eta=[])
    with pytest.raises(ValueError, match="eta: values must be scalars"):
        config_grid(eta=[[0.1, 0.2]])


# ----------------------------------------------------------------------------- checkpoints

def test_checkpoint_run_matches_plain_run(tmp_path, calls, reference):
    ckpt = tmp_path / "ckpt"
    df = run_study(CountingFn(calls), CONFIGS, N_REPS, seed=SEED, checkpoint=ckpt,
                   chunk_size=5, progress=False)
    pd.testing.assert_frame_equal(df, reference, check_exact=True)
    chunks = sorted(ckpt.glob("chunk-*.json"))
    assert len(chunks) == 5  # 24 tasks in chunks of 5
    manifest = json.loads((ckpt / "study.json").read_text())
    assert manifest["seed"]["entropy"] == SEED and manifest["fn"] == "CountingFn"
    # A second call reads everything back and runs nothing.
    again = run_study(CountingFn(calls), CONFIGS, N_REPS, seed=SEED, checkpoint=ckpt,
                      progress=False)
    pd.testing.assert_frame_equal(again, reference, check_exact=True)
    assert set(_count_calls(calls).values()) == {1}
    peek = load_checkpoint(ckpt)
    assert len(peek) == len(reference)
    assert set(peek.columns) == set(reference.columns)


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_resume_after_failure(tmp_path, calls, reference, n_jobs):
    ckpt = tmp_path / "ckpt"
    fn = CountingFn(calls, fail_once_on=(2, 3))
    with pytest.raises(RuntimeError, match="planned failure"):
        run_study(fn, CONFIGS, N_REPS, seed=SEED, n_jobs=n_jobs, checkpoint=ckpt, chunk_size=2,
                  progress=False)
    saved = load_checkpoint(ckpt)
    saved_tasks = set()
    if len(saved):  # an empty checkpoint has no configuration columns yet
        saved_tasks = set(saved[["a", "b", "rep"]].itertuples(index=False, name=None))
    if n_jobs == 1:
        # Every task before the failing one, including the partial last chunk, was kept.
        assert len(saved_tasks) == 2 * N_REPS + 3
    # With two workers, how many tasks finish before the failure depends on scheduling (on a busy
    # machine, none): the resume below must be right either way.
    assert (2, "u", 3) not in saved_tasks
    df = run_study(fn, CONFIGS, N_REPS, seed=SEED, n_jobs=n_jobs, checkpoint=ckpt,
                   progress=False)
    pd.testing.assert_frame_equal(df, reference, check_exact=True)
    counts = _count_calls(calls)
    assert all(counts[t] == 1 for t in saved_tasks)  # finished tasks were not run again
    assert set(counts) == {(c["a"], c["b"], r) for c in CONFIGS for r in range(N_REPS)}
    if n_jobs == 1:
        assert set(counts.values()) == {1}


def test_resume_after_kill(tmp_path, calls, reference):
    ckpt = tmp_path / "ckpt"
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {TESTS_DIR!r})
        from test_studies_runner import CONFIGS, N_REPS, SEED, CountingFn
        from hetmtl.studies import run_study
        run_study(CountingFn({str(calls)!r}, kill_after=5), CONFIGS, N_REPS, seed=SEED,
                  checkpoint={str(ckpt)!r}, chunk_size=2, progress=False)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 17, proc.stderr
    # 5 tasks finished, chunks of 2 were written: 4 tasks survive the kill, the 5th is lost.
    saved = load_checkpoint(ckpt)
    saved_tasks = set(saved[["a", "b", "rep"]].itertuples(index=False, name=None))
    assert saved_tasks == {(1, "u", r) for r in range(4)}
    assert sum(_count_calls(calls).values()) == 5
    df = run_study(CountingFn(calls), CONFIGS, N_REPS, seed=SEED, checkpoint=ckpt,
                   progress=False)
    pd.testing.assert_frame_equal(df, reference, check_exact=True)
    counts = _count_calls(calls)
    assert all(counts[t] == 1 for t in saved_tasks)
    assert counts[(1, "u", 4)] == 2  # finished but not yet written when killed
    assert sum(counts.values()) == len(CONFIGS) * N_REPS + 1


def test_more_reps_later_runs_only_new_ones(tmp_path, calls, reference):
    ckpt = tmp_path / "ckpt"
    first = run_study(CountingFn(calls), CONFIGS, 3, seed=SEED, checkpoint=ckpt, progress=False)
    assert len(first) == len(CONFIGS) * 3 * 2
    df = run_study(CountingFn(calls), CONFIGS, N_REPS, seed=SEED, checkpoint=ckpt,
                   progress=False)
    pd.testing.assert_frame_equal(df, reference, check_exact=True)
    assert set(_count_calls(calls).values()) == {1}


class _HalfWriter:
    """A file object that writes half of what it is given, then fails (a crash mid-write)."""

    def __init__(self, fh):
        self._fh = fh

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._fh.close()
        return False

    def write(self, data):
        self._fh.write(data[: len(data) // 2])
        self._fh.flush()
        raise OSError("disk full")


def test_failed_chunk_write_leaves_no_partial_file(tmp_path, calls, reference, monkeypatch):
    ckpt = tmp_path / "ckpt"
    real_fdopen = os.fdopen
    state = {"n": 0, "partial": []}

    def flaky_fdopen(fd, *args, **kwargs):
        fh = real_fdopen(fd, *args, **kwargs)
        state["n"] += 1
        if state["n"] == 4:  # 1: manifest, 2-3: first two chunks, 4: the third chunk
            state["partial"].append(fh.name)
            return _HalfWriter(fh)
        return fh

    monkeypatch.setattr(os, "fdopen", flaky_fdopen)
    with pytest.raises(OSError, match="disk full"):
        run_study(CountingFn(calls), CONFIGS, N_REPS, seed=SEED, checkpoint=ckpt, chunk_size=3,
                  progress=False)
    monkeypatch.setattr(os, "fdopen", real_fdopen)
    assert state["partial"]  # the failure did hit a chunk write
    files = sorted(p.name for p in ckpt.iterdir())
    assert not [f for f in files if f.endswith(".tmp")]
    for chunk in ckpt.glob("chunk-*.json"):
        json.loads(chunk.read_text())  # every chunk on disk is complete
    # The failed chunk's tasks were written again by the final flush, which succeeded.
    assert len(load_checkpoint(ckpt)) == 9 * 2
    df = run_study(CountingFn(calls), CONFIGS, N_REPS, seed=SEED, checkpoint=ckpt,
                   progress=False)
    pd.testing.assert_frame_equal(df, reference, check_exact=True)
    assert set(_count_calls(calls).values()) == {1}


def test_stale_temporary_file_is_ignored_and_corrupt_chunk_reported(tmp_path, calls, reference):
    ckpt = tmp_path / "ckpt"
    run_study(CountingFn(calls), CONFIGS, 2, seed=SEED, checkpoint=ckpt, progress=False)
    stale = ckpt / ".chunk-00000000000000000001-1-000001.json.tmp"
    stale.write_text('{"tasks": [{"config": {"a": 1, "b": "u"}, "rep": 5, "ro')
    df = run_study(CountingFn(calls), CONFIGS, N_REPS, seed=SEED, checkpoint=ckpt,
                   progress=False)
    pd.testing.assert_frame_equal(df, reference, check_exact=True)
    assert not stale.exists()
    (ckpt / "chunk-99999999999999999999-1-000001.json").write_text('{"tasks": [')
    # A corrupt chunk is reported by name and set aside; it no longer blocks the resume.
    with pytest.warns(CheckpointWarning, match="checkpoint: cannot read .*chunk-9999"):
        again = run_study(CountingFn(calls), CONFIGS, N_REPS, seed=SEED, checkpoint=ckpt,
                          progress=False)
    pd.testing.assert_frame_equal(again, reference, check_exact=True)


def test_checkpoint_of_another_study_is_refused(tmp_path, calls):
    ckpt = tmp_path / "ckpt"
    run_study(CountingFn(calls), CONFIGS, 1, seed=SEED, checkpoint=ckpt, progress=False)
    with pytest.raises(ValueError, match="checkpoint: .*different study \\(seed"):
        run_study(CountingFn(calls), CONFIGS, 1, seed=SEED + 1, checkpoint=ckpt, progress=False)
    with pytest.raises(ValueError, match="different study \\(seed_keys"):
        run_study(CountingFn(calls), CONFIGS, 1, seed=SEED, seed_keys=["a"], checkpoint=ckpt,
                  progress=False)
    with pytest.raises(ValueError, match="different study \\(fn"):
        run_study(_first_draw, CONFIGS, 1, seed=SEED, checkpoint=ckpt, progress=False)
    afile = tmp_path / "file"
    afile.write_text("x")
    with pytest.raises(ValueError, match="checkpoint: .* not a folder"):
        run_study(_first_draw, CONFIGS, 1, seed=SEED, checkpoint=afile, progress=False)
    with pytest.raises(ValueError, match="not a study checkpoint folder"):
        load_checkpoint(tmp_path / "calls")


# ----------------------------------------------------------------------------- validation

def _ok(config, seed):
    return {"m": 1.0}


@pytest.mark.parametrize("kwargs,match", [
    (dict(fn=3), "fn: must be callable"),
    (dict(configs=[]), "configs: no configurations"),
    (dict(configs="abc"), "configs: expected a sequence"),
    (dict(configs=[1]), r"configs\[0\]: expected a dict"),
    (dict(configs=[{"a": 1}, {"a": 1}]), r"configs\[1\]: duplicates configs\[0\]"),
    (dict(configs=[{"rep": 1}]), "reserved"),
    (dict(configs=[{"a": [1, 2]}]), "values must be scalars"),
    (dict(configs=[{"a": float("nan")}]), "must be finite"),
    (dict(configs=[{1: 1}]), "keys must be strings"),
    (dict(n_reps=0), "n_reps"),
    (dict(n_reps=2.0), "n_reps"),
    (dict(seed=None), "seed: expected"),
    (dict(seed=-1), "seed: expected"),
    (dict(seed=True), "seed: expected"),
    (dict(n_jobs=0), "n_jobs"),
    (dict(backend="spark"), "backend: must be one of"),
    (dict(backend="loky", scheduler_address="tcp://x:1"), "backend: scheduler_address"),
    (dict(scheduler_address=""), "scheduler_address"),
    (dict(seed_keys=["zzz"]), r"seed_keys: configs\[0\] lacks"),
    (dict(chunk_size=0), "chunk_size"),
    (dict(flush_interval=0), "flush_interval"),
    (dict(threads_per_worker=0), "threads_per_worker"),
])
def test_bad_arguments(kwargs, match):
    args = dict(fn=_ok, configs=[{"a": 1}], n_reps=2, seed=0, progress=False)
    args.update(kwargs)
    fn, configs, n_reps = args.pop("fn"), args.pop("configs"), args.pop("n_reps")
    with pytest.raises(ValueError, match=match):
        run_study(fn, configs, n_reps, **args)


@pytest.mark.parametrize("result,match", [
    (3.0, "fn: must return a dict or a list"),
    ([{"m": 1}, 2], "fn: row 1 is a int"),
    ({"a": 1.0}, "clashes with a configuration key"),
    ({"rep": 1.0}, "clashes"),
    ({"m": np.zeros(3)}, "values must be scalars"),
    ({2: 1.0}, "non-string key"),
])
def test_bad_results(result, match):
    with pytest.raises(ValueError, match=match):
        run_study(lambda config, seed: result, [{"a": 1}], 1, seed=0, progress=False)


def test_dask_backend_needs_dask():
    if importlib.util.find_spec("distributed") is not None:
        pytest.skip("dask.distributed is installed; this checks the message when it is absent")
    with pytest.raises(ImportError, match="dask.distributed is not installed"):
        run_study(_ok, [{"a": 1}], 1, seed=0, backend="dask", progress=False)
    with pytest.raises(ImportError, match="dask"):
        run_study(_ok, [{"a": 1}], 1, seed=0, scheduler_address="tcp://127.0.0.1:8786",
                  progress=False)


def test_module_exports():
    assert runner_mod.__all__ == ["config_grid", "load_checkpoint", "run_study", "task_seed"]


# ----------------------------------------------------------------------------- summaries

def _toy_table() -> pd.DataFrame:
    df = pd.DataFrame({
        "g": ["x"] * 4 + ["y"] * 3,
        "rep": [0, 1, 2, 3, 0, 1, 2],
        "err": [1.0, 2.0, 3.0, 4.0, 10.0, np.nan, 14.0],
        "cover": [True, False, True, True, False, False, True],
        "label": ["m"] * 7,
    })
    df.attrs["config_columns"] = ["g"]
    df.attrs["metric_columns"] = ["err", "cover", "label"]
    return df


def test_summarize_values():
    out = summarize_study(_toy_table())
    assert list(out.columns) == ["g", "metric", "n", "mean", "mcse", "sd", "min", "max"]
    assert out[["g", "metric"]].values.tolist() == [["x", "err"], ["x", "cover"],
                                                    ["y", "err"], ["y", "cover"]]
    x_err = out.iloc[0]
    sd = np.std([1, 2, 3, 4], ddof=1)
    assert x_err["n"] == 4 and x_err["mean"] == 2.5 and x_err["max"] == 4.0
    assert x_err["min"] == 1.0
    np.testing.assert_allclose([x_err["sd"], x_err["mcse"]], [sd, sd / 2], rtol=1e-14)
    y_err = out.iloc[2]  # the NaN is ignored
    assert y_err["n"] == 2 and y_err["mean"] == 12.0
    np.testing.assert_allclose(y_err["mcse"], np.std([10, 14], ddof=1) / np.sqrt(2), rtol=1e-14)
    x_cov = out.iloc[1]
    assert x_cov["mean"] == 0.75
    np.testing.assert_allclose(x_cov["sd"], np.sqrt(0.75 * 0.25 * 4 / 3), rtol=1e-14)


def test_summarize_options():
    df = _toy_table()
    overall = summarize_study(df, by=[], metrics="err")
    assert overall[["n", "mean", "max"]].values.tolist() == [[6, 34 / 6, 14.0]]
    wide = summarize_study(df, by="g", metrics=["err", "cover"], wide=True)
    assert wide.shape == (2, 12) and list(wide.index) == ["x", "y"]
    assert wide.loc["y", ("err", "mean")] == 12.0 and wide.loc["x", ("cover", "n")] == 4
    two = summarize_study(df.assign(h=[1, 1, 2, 2, 1, 1, 1]), by=["g", "h"], metrics="err",
                          wide=True)
    assert list(two.index) == [("x", 1), ("x", 2), ("y", 1)]
    np.testing.assert_allclose(two[("err", "mean")], [1.5, 3.5, 12.0])
    plain = df.copy()
    plain.attrs = {}
    inferred = summarize_study(plain, by="g")
    assert inferred["metric"].unique().tolist() == ["err", "cover"]


def test_summarize_on_a_study(reference):
    out = summarize_study(reference, by=["a", "b", "method"], metrics=["value"])
    assert len(out) == len(CONFIGS) * 2
    assert out["n"].eq(N_REPS).all()
    sub = reference[(reference["a"] == 2) & (reference["b"] == "v")
                    & (reference["method"] == "eig")]["value"]
    row = out[(out["a"] == 2) & (out["b"] == "v") & (out["method"] == "eig")].iloc[0]
    np.testing.assert_allclose(row["mean"], sub.mean(), rtol=1e-14)


@pytest.mark.parametrize("kwargs,match", [
    (dict(by="zz"), r"by: column\(s\) \['zz'\]"),
    (dict(metrics="zz"), r"metrics: column\(s\) \['zz'\] not in df"),
    (dict(metrics="label"), "not numeric"),
    (dict(by="g", metrics="g"), "also grouping"),
    (dict(by=["g", "err", "cover", "rep"], metrics=None), "no numeric metric"),
])
def test_summarize_bad_inputs(kwargs, match):
    df = _toy_table()
    df.attrs = {}
    with pytest.raises(ValueError, match=match):
        summarize_study(df, **kwargs)
    with pytest.raises(ValueError, match="df: expected a pandas DataFrame"):
        summarize_study([1, 2])
