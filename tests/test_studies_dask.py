"""Studies on a real dask.distributed cluster (loopback only): a scheduler and workers started as
separate processes, and a LocalCluster; a worker killed mid-study costs nothing."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pandas as pd
import pytest

from hetmtl._util.io import read_csv_exact
from hetmtl.studies import config_grid, load_checkpoint, run_study
from test_studies_runner import (CONFIGS, N_REPS, SEED, TESTS_DIR, CountingFn, _count_calls,
                                 _first_draw)
from test_studies_runner import calls, reference  # noqa: F401, F811  (shared fixtures)

distributed = pytest.importorskip("distributed")

ALL_TASKS = {(c["a"], c["b"], r) for c in CONFIGS for r in range(N_REPS)}
VICTIM = (2, "u", 1)  # the task whose worker is killed (mid-study: task 13 of 24)
START_TIMEOUT = 60.0


class VictimFn(CountingFn):
    """CountingFn whose first attempt at VICTIM announces its process and waits to be killed.

    Every call also leaves ``ran-<pid>-*`` so the test can see which workers did work.
    """

    def __call__(self, config, seed):
        calls = Path(self.calls_dir)
        if (config["a"], config["b"], seed.spawn_key[-1]) == VICTIM:
            flag = calls / "victim-started"
            if not flag.exists():
                flag.write_text(str(os.getpid()))
                time.sleep(60)  # killed long before this ends
        (calls / f"ran-{os.getpid()}-{uuid.uuid4().hex}").touch()
        return super().__call__(config, seed)


@contextmanager
def _kill_victim_worker(calls: Path) -> Iterator[dict]:
    """A thread that SIGKILLs the worker running VICTIM's first attempt as soon as it starts."""
    killed: dict = {}
    stop = threading.Event()

    def watch() -> None:
        flag = calls / "victim-started"
        while not stop.is_set():
            if flag.exists() and flag.read_text():
                killed["pid"] = int(flag.read_text())
                os.kill(killed["pid"], signal.SIGKILL)
                return
            time.sleep(0.02)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    try:
        yield killed
    finally:
        stop.set()
        thread.join(timeout=5)


def _check_nothing_lost(df, reference, calls, ckpt, killed) -> None:
    pd.testing.assert_frame_equal(df, reference, check_exact=True)
    assert "pid" in killed, "the victim worker was never killed"
    counts = _count_calls(calls)
    assert set(counts) == ALL_TASKS  # every task finished at least once
    workers = {int(p.name.split("-")[1]) for p in calls.glob("ran-*")}
    assert workers - {killed["pid"]}  # the victim's task finished on another worker
    peek = load_checkpoint(ckpt)
    key = ["a", "b", "rep", "method"]
    pd.testing.assert_frame_equal(peek.sort_values(key).reset_index(drop=True),
                                  reference.sort_values(key).reset_index(drop=True),
                                  check_exact=True)


# ----------------------------------------------------------------------------- processes by hand

def _spawn(args: list[str], log: Path) -> subprocess.Popen:
    path = os.pathsep.join([TESTS_DIR, os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "PYTHONPATH": path}
    with open(log, "wb") as fh:
        return subprocess.Popen([sys.executable, "-m", *args], stdout=fh, stderr=subprocess.STDOUT,
                                env=env)


@contextmanager
def _scheduler_and_workers(tmp_path: Path, n_workers: int) -> Iterator[tuple[str, list]]:
    """``dask scheduler`` and ``dask worker`` processes on 127.0.0.1; always shut down."""
    sched_file = tmp_path / "scheduler.json"
    procs = [_spawn(["distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", "0",
                     "--no-dashboard", "--scheduler-file", str(sched_file)],
                    tmp_path / "scheduler.log")]
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not (sched_file.exists() and sched_file.stat().st_size):
            assert procs[0].poll() is None, (tmp_path / "scheduler.log").read_text()
            assert time.monotonic() < deadline, "the scheduler did not start"
            time.sleep(0.1)
        address = json.loads(sched_file.read_text())["address"]
        for i in range(n_workers):
            procs.append(_spawn(["distributed.cli.dask_worker", address, "--host", "127.0.0.1",
                                 "--nthreads", "1", "--no-nanny", "--no-dashboard",
                                 "--local-directory", str(tmp_path / f"worker{i}")],
                                tmp_path / f"worker{i}.log"))
        with distributed.Client(address, set_as_default=False) as client:
            client.wait_for_workers(n_workers, timeout=START_TIMEOUT)
        yield address, procs
    finally:
        for proc in procs[::-1]:
            if proc.poll() is None:
                proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def test_scheduler_and_worker_processes_survive_a_killed_worker(tmp_path, calls, reference):
    ckpt = tmp_path / "ckpt"
    with _scheduler_and_workers(tmp_path, n_workers=2) as (address, procs):
        with _kill_victim_worker(calls) as killed:
            df = run_study(VictimFn(calls), CONFIGS, N_REPS, seed=SEED, checkpoint=ckpt,
                           scheduler_address=address, chunk_size=4, progress=False)
        dead = [p for p in procs[1:] if p.poll() is not None]
        assert [p.pid for p in dead] == [killed["pid"]]  # one worker was really killed
    _check_nothing_lost(df, reference, calls, ckpt, killed)


# ----------------------------------------------------------------------------- LocalCluster

@contextmanager
def _local_cluster(n_workers: int) -> Iterator[object]:
    with distributed.LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                                  host="127.0.0.1", dashboard_address=None) as cluster:
        yield cluster


def test_local_cluster_survives_a_killed_worker(tmp_path, calls, reference):
    ckpt = tmp_path / "ckpt"
    with _local_cluster(2) as cluster, distributed.Client(cluster):
        # backend="dask" without an address uses the current Client.
        with _kill_victim_worker(calls) as killed:
            df = run_study(VictimFn(calls), CONFIGS, N_REPS, seed=SEED, checkpoint=ckpt,
                           backend="dask", chunk_size=4, progress=False)
    _check_nothing_lost(df, reference, calls, ckpt, killed)


def test_task_error_on_a_cluster_fails_fast_and_keeps_finished_tasks(tmp_path, calls, reference):
    ckpt = tmp_path / "ckpt"
    fn = CountingFn(calls, fail_once_on=(2, 3))
    with _local_cluster(1) as cluster:
        with pytest.raises(RuntimeError, match="planned failure"):
            run_study(fn, CONFIGS, N_REPS, seed=SEED, checkpoint=ckpt,
                      scheduler_address=cluster.scheduler_address, chunk_size=1, progress=False)
        df = run_study(fn, CONFIGS, N_REPS, seed=SEED, checkpoint=ckpt,
                       scheduler_address=cluster.scheduler_address, progress=False)
    pd.testing.assert_frame_equal(df, reference, check_exact=True)
    assert set(_count_calls(calls)) == ALL_TASKS


def test_hetmtl_study_command_on_a_cluster(tmp_path, capsys):
    from hetmtl.cli import main

    out = tmp_path / "results.csv"
    with _local_cluster(2) as cluster:
        rc = main(["study", "test_studies_runner:_first_draw", "--grid", "a=1,2", "--grid",
                   "b=u,v", "--reps", "3", "--seed", "5", "--no-progress", "-o", str(out),
                   "--scheduler-address", cluster.scheduler_address])
    assert rc == 0, capsys.readouterr().err
    expected = run_study(_first_draw, config_grid(a=[1, 2], b=["u", "v"]), 3, seed=5,
                         progress=False)
    got = read_csv_exact(out)
    pd.testing.assert_frame_equal(got, expected, check_exact=True)


def test_unreachable_scheduler_is_a_clear_error():
    import dask

    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}):
        with pytest.raises(OSError, match=r"scheduler_address: cannot reach a dask scheduler "
                                          r"at 'tcp://127.0.0.1:9'"):
            run_study(_first_draw, [{"a": 1}], 1, seed=0, scheduler_address="tcp://127.0.0.1:9",
                      progress=False)


def test_study_script_on_a_cluster_matches_its_local_run(tmp_path, monkeypatch):
    scripts = Path(TESTS_DIR).parent / "scripts"
    monkeypatch.syspath_prepend(str(scripts))  # the workers import the script's function too
    spec = importlib.util.spec_from_file_location("study_nuisance_fusion",
                                                  scripts / "study_nuisance_fusion.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)

    def run(out: Path, *extra: str) -> bytes:
        monkeypatch.setattr(sys, "argv", ["study_nuisance_fusion.py", "--out", str(out),
                                          "--n-rep", "2", "--scenarios", "S1", "--n-jobs", "1",
                                          *extra])
        script.main()
        return (out / "errors.csv").read_bytes()

    local = run(tmp_path / "local")
    with _local_cluster(2) as cluster:
        remote = run(tmp_path / "cluster", "--scheduler-address", cluster.scheduler_address)
    assert remote == local
