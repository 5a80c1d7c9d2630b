"""File input and output: atomic writes (a reader never sees a half-written file, and a crash
leaves the old one) and JSON reads whose errors name the file.

A writer killed between creating its temporary file and renaming it leaves ``.NAME.*.tmp``
beside the target. Readers never open those (they read NAME only), and the next JSON write of
the same target removes the ones older than :data:`STALE_TEMPORARY_AGE` seconds: a live writer
holds its file for milliseconds, so an older one has no writer left.
"""

from __future__ import annotations

import glob
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and ``os.replace``."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


STALE_TEMPORARY_AGE = 3600.0


def remove_stale_temporaries(path: str | os.PathLike, max_age: float = STALE_TEMPORARY_AGE) -> int:
    """Delete temporary files of :func:`atomic_write_bytes` for ``path`` older than ``max_age``.

    Returns the number of files removed. Younger ones may belong to a writer at work and stay.
    """
    target = Path(path)
    pattern = os.path.join(glob.escape(str(target.parent)), f".{glob.escape(target.name)}.*.tmp")
    cutoff = time.time() - max_age
    removed = 0
    for tmp in glob.glob(pattern):
        try:
            if os.stat(tmp).st_mtime < cutoff:
                os.unlink(tmp)
                removed += 1
        except FileNotFoundError:  # another writer's rename or clean-up got there first
            continue
    return removed


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    """Serialize ``obj`` as indented JSON and write it atomically (stale temporaries removed)."""
    remove_stale_temporaries(path)
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=False) + "\n").encode("utf-8"))


def read_json(path: str | os.PathLike) -> Any:
    """Parse the JSON file at ``path``; invalid JSON is a ValueError that names the file."""
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except json.JSONDecodeError as exc:
        raise ValueError(f"path: {os.fspath(path)!r} is not valid JSON ({exc})") from None


def read_csv_exact(path: str | os.PathLike, **kwargs: Any):
    """``pandas.read_csv`` with every float read back exactly as it was written.

    pandas before 3.1 needs ``float_precision="round_trip"`` for that; from 3.1 on it is the
    default and the option is deprecated.
    """
    import pandas as pd

    major, minor = (int(part) for part in pd.__version__.split(".")[:2])
    if (major, minor) < (3, 1):
        kwargs.setdefault("float_precision", "round_trip")
    return pd.read_csv(path, **kwargs)
