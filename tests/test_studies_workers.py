"""Local study workers do not outlive a killed parent."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from test_studies_runner import TESTS_DIR

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(),
                                reason="reads the process table from /proc")

WORKER_EXIT_WAIT = 10.0  # seconds allowed for the workers to notice and exit


class SleepyFn:
    """Leaves a file named after its process id, then works (sleeps) for up to two minutes."""

    def __init__(self, pids_dir):
        self.pids_dir = str(pids_dir)

    def __call__(self, config, seed):
        Path(self.pids_dir, f"pid-{os.getpid()}").touch()
        time.sleep(120)
        return {"x": 1.0}


def _alive(pid: int) -> bool:
    """True for a running process (an unreaped zombie counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _children(pid: int) -> set[int]:
    """Every descendant of ``pid`` now running."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {p for p, pp in parents.items() if pp in frontier} - found
        found |= frontier
    return found


def test_killed_parent_leaves_no_worker_processes(tmp_path):
    pids_dir = tmp_path / "pids"
    pids_dir.mkdir()
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {TESTS_DIR!r})
        from test_studies_workers import SleepyFn
        from hetmtl.studies import config_grid, run_study
        run_study(SleepyFn({str(pids_dir)!r}), config_grid(a=[1, 2]), 1, seed=0,
                  n_jobs=3, checkpoint={str(tmp_path / "ckpt")!r}, progress=False)
    """)
    log = tmp_path / "parent.log"
    with open(log, "wb") as fh:  # a file, not a pipe: a surviving worker cannot block a read
        parent = subprocess.Popen([sys.executable, "-c", script], stderr=fh)
    workers: set[int] = set()
    try:
        deadline = time.monotonic() + 90
        # Two workers inside a task; the third has none (an idle worker must exit too).
        while len(list(pids_dir.iterdir())) < 2 or len(_children(parent.pid)) < 3:
            assert parent.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "the workers did not start"
            time.sleep(0.1)
        workers = _children(parent.pid)
        task_pids = {int(p.name.split("-")[1]) for p in pids_dir.iterdir()}
        assert task_pids <= workers and len(workers - task_pids) >= 1
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=30)
        deadline = time.monotonic() + WORKER_EXIT_WAIT
        while any(_alive(p) for p in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        left = {p for p in workers if _alive(p)}
        assert not left, f"processes still running {WORKER_EXIT_WAIT} s after the parent died"
    finally:
        if parent.poll() is None:
            parent.kill()
        parent.wait()
        for pid in workers:  # never leave strays behind, whatever the outcome
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
