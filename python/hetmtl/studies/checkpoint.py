"""The checkpoint folder of a study: chunk files with checksums, quarantine, and a lock.

Layout of a folder::

    study.json          the manifest (seed, seed_keys, name of fn), checked on resume
    chunk-*.json        batches of finished tasks: {"sha256": ..., "tasks": [...]}
    quarantine/         damaged chunks, moved aside (never read again)
    .study.lock         an operating-system file lock held by the run using the folder
    .study.owner        who holds the lock (process id, host, start time), for the error message

Integrity. Each chunk carries the SHA-256 of its task list as written. A chunk that cannot be
parsed (truncated by a full disk, overwritten by garbage), lacks its checksum or no longer matches
it (rows changed by hand) is moved to ``quarantine/`` with a :class:`CheckpointWarning`; its
tasks are missing from what was read, so they run again. The checksum detects accidental damage
and hand edits, not a deliberate forgery that also recomputes it.

Concurrency. A run locks the folder for its whole duration (``filelock``, an ``flock`` on POSIX:
the kernel releases it when the process dies, so a killed run never leaves a stale lock). A
second run on a locked folder is refused at once with :class:`CheckpointBusyError` before it
touches anything: it neither removes the first run's in-flight temporary files nor repeats its
tasks. Waiting for the first run and then resuming from its chunks is the way to continue.
Reading a folder without running (:func:`read_tasks` with ``quarantine=False``, used by
``load_checkpoint``) takes no lock: chunks appear by atomic rename, so a reader sees whole chunks.
"""

from __future__ import annotations

import hashlib
import json
import math
import numbers
import os
import socket
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .._util.io import atomic_write_bytes

__all__ = ["CheckpointBusyError", "CheckpointFolder", "CheckpointWarning", "canonical_json",
           "read_tasks"]

MANIFEST = "study.json"
FORMAT = "hetmtl.study_checkpoint"
FORMAT_VERSION = 2  # 2: chunks carry a checksum
CHUNK_PREFIX = "chunk-"
QUARANTINE = "quarantine"
LOCK_FILE = ".study.lock"
OWNER_FILE = ".study.owner"

#: Finished tasks keyed by (canonical configuration text, rep): (configuration, result rows).
DoneTasks = dict[tuple[str, int], tuple[dict, list[dict]]]


class CheckpointWarning(UserWarning):
    """A damaged chunk file was set aside (or skipped by a reader); its tasks run again."""


class CheckpointBusyError(RuntimeError):
    """Another run holds the checkpoint folder's lock."""


class DamagedChunk(Exception):
    """A chunk file that cannot be trusted; the message says why."""


def canonical_json(obj: Any) -> str:
    """Key-sorted compact JSON: the identity of a configuration."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=True)


def _tasks_text(tasks: Any) -> str:
    # Row keys keep their order (it sets the column order), so the text is not key-sorted; a
    # JSON round trip of Python floats, ints and strings reproduces it exactly.
    return json.dumps(tasks, separators=(",", ":"), allow_nan=True)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def chunk_bytes(records: list[dict[str, Any]]) -> bytes:
    """The bytes of a chunk file holding ``records`` (dicts with config, rep and rows)."""
    text = _tasks_text(records)
    return f'{{"sha256":"{_digest(text)}","tasks":{text}}}\n'.encode("utf-8")


# --------------------------------------------------------------------------- reading chunks

def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, (bool, str, numbers.Real))


def _check_mapping(obj: Any, what: str) -> None:
    if not isinstance(obj, dict):
        raise DamagedChunk(f"{what} is not an object")
    for key, value in obj.items():
        if not _is_scalar(value):
            raise DamagedChunk(f"{what} holds a non-scalar value under {key!r}")


def _check_record(rec: Any) -> tuple[dict, int, list[dict]]:
    if not isinstance(rec, dict) or set(rec) != {"config", "rep", "rows"}:
        raise DamagedChunk("a task record lacks config, rep or rows")
    config, rep, rows = rec["config"], rec["rep"], rec["rows"]
    _check_mapping(config, "a task's config")
    if any(isinstance(v, float) and not math.isfinite(v) for v in config.values()):
        raise DamagedChunk("a task's config holds a non-finite number")
    if not isinstance(rep, int) or isinstance(rep, bool) or rep < 0:
        raise DamagedChunk(f"a task's rep is {rep!r}, not a non-negative integer")
    if not isinstance(rows, list):
        raise DamagedChunk("a task's rows are not a list")
    for row in rows:
        _check_mapping(row, "a result row")
    return config, rep, rows


def parse_chunk(path: Path) -> list[tuple[dict, int, list[dict]]]:
    """The (config, rep, rows) records of one chunk file; :class:`DamagedChunk` if untrustworthy."""
    try:
        obj = json.loads(path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DamagedChunk(f"not valid JSON, probably truncated: {exc}") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("tasks"), list):
        raise DamagedChunk("no 'tasks' list")
    stored = obj.get("sha256")
    if not isinstance(stored, str):
        raise DamagedChunk("no checksum (sha256)")
    if _digest(_tasks_text(obj["tasks"])) != stored:
        raise DamagedChunk("checksum mismatch: its rows changed after it was written")
    return [_check_record(rec) for rec in obj["tasks"]]


def _quarantine(folder: Path, chunk: Path) -> Path:
    dest_dir = folder / QUARANTINE
    dest_dir.mkdir(exist_ok=True)
    dest = dest_dir / chunk.name
    if dest.exists():  # the same name quarantined before: keep both
        dest = dest_dir / f"{chunk.name}.{time.time_ns()}"
    os.replace(chunk, dest)
    return dest


def read_tasks(folder: str | os.PathLike, *, quarantine: bool) -> DoneTasks:
    """Finished tasks of every intact chunk in ``folder``.

    Parameters
    ----------
    folder : path
        A checkpoint folder.
    quarantine : bool
        Move damaged chunks to ``quarantine/`` (only the run holding the lock may); otherwise
        skip them. Either way a :class:`CheckpointWarning` names each one.

    Returns
    -------
    dict
        ``(canonical config text, rep) -> (config, rows)``. A task found in several chunks keeps
        its first record (identical copies arise when a chunk's write was retried).
    """
    folder = Path(folder)
    done: DoneTasks = {}
    for chunk in sorted(folder.glob(f"{CHUNK_PREFIX}*.json")):
        try:
            records = parse_chunk(chunk)
        except FileNotFoundError:  # quarantined by the run that owns the folder meanwhile
            continue
        except DamagedChunk as exc:
            if quarantine:
                dest = _quarantine(folder, chunk)
                action = f"moved to {dest}; its tasks will run again"
            else:
                action = "skipped"
            warnings.warn(f"checkpoint: cannot read {chunk} ({exc}); {action}",
                          CheckpointWarning, stacklevel=3)
            continue
        for config, rep, rows in records:
            done.setdefault((canonical_json(config), rep), (config, rows))
    return done


# --------------------------------------------------------------------------- the folder of a run

def _describe_owner(path: Path) -> str:
    try:
        owner = json.loads(path.read_text(encoding="utf-8"))
        return (f"process {owner['pid']} on host {owner['host']}, started "
                f"{owner['started']}")
    except (OSError, ValueError, KeyError, TypeError):
        return "owner unknown"


class CheckpointFolder:
    """A checkpoint folder locked for one run: manifest check, intact tasks, chunk writes.

    Parameters
    ----------
    path : path
        The folder (created if missing).
    manifest : dict
        The run's manifest (JSON types); a folder written by another study is refused.

    Raises
    ------
    CheckpointBusyError
        Another run holds the folder.
    ValueError
        ``path`` is not a folder, or holds another study.
    """

    def __init__(self, path: str | os.PathLike, manifest: dict[str, Any]):
        from filelock import FileLock, Timeout

        self.path = Path(path)
        if self.path.exists() and not self.path.is_dir():
            raise ValueError(f"checkpoint: {self.path} exists and is not a folder")
        self.path.mkdir(parents=True, exist_ok=True)
        self._lock = FileLock(str(self.path / LOCK_FILE), timeout=0)
        try:
            self._lock.acquire()
        except Timeout:
            owner = _describe_owner(self.path / OWNER_FILE)
            raise CheckpointBusyError(
                f"checkpoint: {self.path} is in use by another run ({owner}); wait for it to "
                "finish and run again to resume from its results, or use another folder"
            ) from None
        self._counter = 0
        try:
            self._claim(manifest)
            self.done = read_tasks(self.path, quarantine=True)
        except BaseException:
            self.close()
            raise

    def _claim(self, manifest: dict[str, Any]) -> None:
        owner = {"pid": os.getpid(), "host": socket.gethostname(),
                 "started": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        (self.path / OWNER_FILE).write_text(json.dumps(owner) + "\n", encoding="utf-8")
        mpath = self.path / MANIFEST
        if mpath.exists():
            old = _read_manifest(mpath)
            for key in ("format", "seed", "seed_keys", "fn"):
                if old.get(key) != manifest[key]:
                    raise ValueError(
                        f"checkpoint: {self.path} was written by a different study ({key} was "
                        f"{old.get(key)!r}, now {manifest[key]!r}); use a new folder or delete it"
                    )
        else:
            atomic_write_bytes(mpath, (json.dumps(manifest, indent=2) + "\n").encode("utf-8"))
        # Under the lock no other writer exists: leftover temporary files are a killed run's.
        for stale in self.path.glob(f".{CHUNK_PREFIX}*.tmp"):
            stale.unlink(missing_ok=True)

    def write(self, records: list[dict[str, Any]]) -> None:
        """Write finished tasks (dicts with config, rep, rows) as one new chunk."""
        if not records:
            return
        self._counter += 1
        name = f"{CHUNK_PREFIX}{time.time_ns():020d}-{os.getpid()}-{self._counter:06d}.json"
        atomic_write_bytes(self.path / name, chunk_bytes(records))

    def close(self) -> None:
        """Release the folder (idempotent)."""
        if self._lock.is_locked:
            (self.path / OWNER_FILE).unlink(missing_ok=True)
            self._lock.release()


def _read_manifest(path: Path) -> dict:
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"checkpoint: cannot read {path} ({exc})") from None
    if not isinstance(obj, dict):
        raise ValueError(f"checkpoint: {path} does not hold a JSON object")
    return obj
