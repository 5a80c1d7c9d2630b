"""Study checkpoints under faults: damaged chunks, hand edits, two runs on one folder, stale
temporary files of atomic writes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import pandas as pd
import pytest

from hetmtl._util.io import atomic_write_json, read_json, remove_stale_temporaries
from hetmtl.studies import load_checkpoint, run_study
from hetmtl.studies.checkpoint import (QUARANTINE, CheckpointBusyError, CheckpointFolder,
                                       CheckpointWarning)
from test_studies_runner import CONFIGS, N_REPS, SEED, TESTS_DIR, CountingFn, _count_calls
from test_studies_runner import calls, reference  # noqa: F401, F811  (shared fixtures)

ALL_TASKS = {(c["a"], c["b"], r) for c in CONFIGS for r in range(N_REPS)}


def _run(calls, ckpt, fn=None, **kwargs):
    return run_study(fn or CountingFn(calls), CONFIGS, N_REPS, seed=SEED, checkpoint=ckpt,
                     progress=False, **kwargs)


def _chunk_tasks(chunk: Path) -> set[tuple]:
    obj = json.loads(chunk.read_text())
    return {(t["config"]["a"], t["config"]["b"], t["rep"]) for t in obj["tasks"]}


def _edit_value(text: str) -> str:
    obj = json.loads(text)
    obj["tasks"][0]["rows"][1]["value"] += 1.0  # a plausible hand edit; the checksum is kept
    return json.dumps(obj)


def _drop_checksum(text: str) -> str:
    obj = json.loads(text)
    del obj["sha256"]
    return json.dumps(obj)


DAMAGE = {
    "truncated": (lambda text: text[: len(text) // 2], "not valid JSON"),
    "empty": (lambda text: "", "not valid JSON"),
    "garbage": (lambda text: "\udcff\x00 binary", "not valid JSON"),
    "edited row": (_edit_value, "checksum mismatch"),
    "checksum removed": (_drop_checksum, "no checksum"),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_damaged_chunk_is_quarantined_and_its_tasks_run_again(tmp_path, calls, reference, damage):
    ckpt = tmp_path / "ckpt"
    _run(calls, ckpt, chunk_size=5)
    victim = sorted(ckpt.glob("chunk-*.json"))[1]
    lost = _chunk_tasks(victim)
    assert len(lost) == 5
    change, reason = DAMAGE[damage]
    victim.write_bytes(change(victim.read_text()).encode("utf-8", "surrogateescape"))

    with pytest.warns(CheckpointWarning, match=rf"checkpoint: cannot read .*{victim.name} "
                      rf"\({reason}.*moved to .*{QUARANTINE}.*will run again"):
        df = _run(calls, ckpt)
    pd.testing.assert_frame_equal(df, reference, check_exact=True)
    counts = _count_calls(calls)
    assert {t for t, n in counts.items() if n == 2} == lost  # exactly the lost tasks ran again
    assert set(counts) == ALL_TASKS and set(counts.values()) == {1, 2}
    assert not victim.exists() and (ckpt / QUARANTINE / victim.name).is_file()

    with warnings.catch_warnings():  # the folder is whole again: no warning, nothing runs
        warnings.simplefilter("error")
        again = _run(calls, ckpt)
    pd.testing.assert_frame_equal(again, reference, check_exact=True)
    assert _count_calls(calls) == counts


def test_reformatted_chunk_is_still_trusted(tmp_path, calls, reference):
    ckpt = tmp_path / "ckpt"
    _run(calls, ckpt, chunk_size=5)
    chunk = sorted(ckpt.glob("chunk-*.json"))[0]
    chunk.write_text(json.dumps(json.loads(chunk.read_text()), indent=4))  # same content
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        df = _run(calls, ckpt)
    pd.testing.assert_frame_equal(df, reference, check_exact=True)
    assert set(_count_calls(calls).values()) == {1}


def test_peek_skips_a_damaged_chunk_without_moving_it(tmp_path, calls, reference):
    ckpt = tmp_path / "ckpt"
    _run(calls, ckpt, chunk_size=5)
    victim = sorted(ckpt.glob("chunk-*.json"))[0]
    victim.write_text(_edit_value(victim.read_text()))
    with pytest.warns(CheckpointWarning, match=rf"{victim.name} \(checksum mismatch.*skipped"):
        peek = load_checkpoint(ckpt)
    assert len(peek) == len(reference) - 5 * 2  # five tasks of two rows each are not trusted
    assert victim.exists() and not (ckpt / QUARANTINE).exists()


@pytest.mark.parametrize("record,reason", [
    ({"config": {"a": 1, "b": "u"}, "rep": "0", "rows": []}, "rep is '0'"),
    ({"config": {"a": 1, "b": "u"}, "rep": 0}, "lacks config, rep or rows"),
    ({"config": {"a": [1]}, "rep": 0, "rows": []}, "non-scalar value under 'a'"),
    ({"config": {"a": 1}, "rep": 0, "rows": [{"x": {"y": 1}}]}, "non-scalar value under 'x'"),
])
def test_malformed_records_with_a_valid_checksum_are_refused(tmp_path, record, reason):
    from hetmtl.studies.checkpoint import DamagedChunk, chunk_bytes, parse_chunk

    chunk = tmp_path / "chunk-1.json"
    chunk.write_bytes(chunk_bytes([record]))
    with pytest.raises(DamagedChunk, match=reason):
        parse_chunk(chunk)


# ----------------------------------------------------------------------------- one run per folder

class GatedFn(CountingFn):
    """CountingFn that waits for a gate file before each task (bounded: 60 s)."""

    def __init__(self, calls_dir, gate):
        super().__init__(calls_dir)
        self.gate = str(gate)

    def __call__(self, config, seed):
        deadline = time.monotonic() + 60
        while not os.path.exists(self.gate) and time.monotonic() < deadline:
            time.sleep(0.02)
        return super().__call__(config, seed)


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(f"the first run ended early: {proc.communicate()}")
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(0.05)


def test_second_run_on_a_folder_in_use_is_refused_and_harms_nothing(tmp_path, calls, reference):
    ckpt, gate = tmp_path / "ckpt", tmp_path / "gate"
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {TESTS_DIR!r})
        from test_studies_checkpoint import CONFIGS, N_REPS, SEED, GatedFn
        from hetmtl.studies import run_study
        run_study(GatedFn({str(calls)!r}, {str(gate)!r}), CONFIGS, N_REPS, seed=SEED,
                  checkpoint={str(ckpt)!r}, chunk_size=2, progress=False)
    """)
    first = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(ckpt / ".study.owner", first)
        # What a chunk write of the first run looks like while it is in flight.
        in_flight = ckpt / ".chunk-00000000000000000001-1-000001.json.abcd.tmp"
        in_flight.write_text('{"sha256": "0", "tasks": [')
        with pytest.raises(CheckpointBusyError,
                           match=rf"checkpoint: .*ckpt is in use by another run \(process "
                                 rf"{first.pid} on host .*; wait for it"):
            _run(calls, ckpt, GatedFn(calls, gate))
        assert in_flight.exists()  # the refused run removed nothing
        assert not list(calls.glob("call-*"))  # and ran nothing
        in_flight.unlink()
    finally:
        gate.touch()
        out, err = first.communicate(timeout=120)
    assert first.returncode == 0, err
    assert set(_count_calls(calls).values()) == {1}
    # After the first run, the second resumes from its chunks: nothing runs twice.
    df = _run(calls, ckpt, GatedFn(calls, gate))
    pd.testing.assert_frame_equal(df, reference, check_exact=True)
    assert set(_count_calls(calls)) == ALL_TASKS and set(_count_calls(calls).values()) == {1}
    assert not (ckpt / ".study.owner").exists()


def test_lock_is_released_after_each_run_and_on_errors(tmp_path):
    manifest = {"format": "hetmtl.study_checkpoint", "format_version": 2,
                "seed": {"entropy": 1, "spawn_key": []}, "seed_keys": None, "fn": "f"}
    first = CheckpointFolder(tmp_path, manifest)
    with pytest.raises(CheckpointBusyError, match=f"process {os.getpid()}"):
        CheckpointFolder(tmp_path, manifest)
    first.close()
    first.close()  # idempotent
    with pytest.raises(ValueError, match="different study"):
        CheckpointFolder(tmp_path, {**manifest, "fn": "g"})
    CheckpointFolder(tmp_path, manifest).close()  # neither refusal kept the lock


# ----------------------------------------------------------------------------- stale temporaries

def test_killed_json_writer_leaves_a_temporary_that_readers_ignore_and_writers_clean(tmp_path):
    target = tmp_path / "summary.json"
    atomic_write_json(target, {"version": 1})
    script = textwrap.dedent(f"""
        import os
        from hetmtl._util.io import atomic_write_json
        os.replace = lambda *args: os._exit(9)   # killed between writing and renaming
        atomic_write_json({str(target)!r}, {{"version": 2}})
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=60)
    assert proc.returncode == 9, proc.stderr
    (stale,) = tmp_path.glob(".summary.json.*.tmp")
    assert json.loads(stale.read_text()) == {"version": 2}  # the unfinished write
    assert read_json(target) == {"version": 1}  # readers see the last whole file

    unrelated = tmp_path / ".other.json.x.tmp"
    unrelated.write_text("{")
    in_flight = tmp_path / ".summary.json.live.tmp"  # a young one may be another writer's
    in_flight.write_text("{")
    old = time.time() - 2 * 3600
    for path in (stale, unrelated):
        os.utime(path, (old, old))
    atomic_write_json(target, {"version": 3})
    assert not stale.exists()
    assert in_flight.exists() and unrelated.exists()
    assert read_json(target) == {"version": 3}
    assert remove_stale_temporaries(target, max_age=0.0) == 1 and not in_flight.exists()
