"""Shared pytest fixtures.

R-backed tests carry ``@pytest.mark.r`` and take the ``robjects`` fixture: it starts R in-process
through rpy2 and skips the test only when rpy2 or R cannot be imported at all, and never under CI
(the set-up installs both). A missing R
*package* (metafor, ...) is a failure, not a skip, because the project's set-up installs it.
"""

from __future__ import annotations

import os

import pytest
from r_python import r_side_python


@pytest.fixture(scope="session", autouse=True)
def _reticulate_uses_this_python():
    """Point reticulate in child R processes at the R side's Python, which can import hetmtl."""
    old = os.environ.get("RETICULATE_PYTHON")
    os.environ["RETICULATE_PYTHON"] = r_side_python()
    yield
    if old is None:
        os.environ.pop("RETICULATE_PYTHON", None)
    else:
        os.environ["RETICULATE_PYTHON"] = old


@pytest.fixture(scope="session")
def robjects():
    """``rpy2.robjects`` with R started; skips when rpy2 or R is unavailable."""
    from hetmtl.rbridge import require_r

    try:
        return require_r()
    except ImportError as exc:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"R through rpy2 is not available, but CI=true (the set-up provides it): {exc}")
        pytest.skip(f"R through rpy2 is not available: {exc}")
