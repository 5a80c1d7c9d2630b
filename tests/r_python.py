"""The Python interpreter that R code started by the tests should use through reticulate."""

from __future__ import annotations

import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def r_side_python() -> str:
    """The set-up's ``.venv-r`` (NumPy 1.x, which Debian's reticulate needs), else this Python.

    Under CI the set-up always makes ``.venv-r``, so its absence is an error there rather than a
    silent fall-back to an interpreter reticulate may not be able to use.
    """
    candidate = REPO / ".venv-r" / "bin" / "python"
    if candidate.exists():
        return str(candidate)
    if os.environ.get("CI", "").lower() == "true":
        raise RuntimeError(".venv-r is missing, but CI=true: scripts/setup.sh creates it")
    return sys.executable
