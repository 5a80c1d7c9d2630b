"""Run DoubleML 0.10.1 on the installed scikit-learn (shared by the DoubleML tests and benchmarks).

Why: DoubleML 0.10.1 (the last release that supports NumPy < 2, which this project needs) calls
``sklearn.utils.check_X_y(..., force_all_finite=...)``. scikit-learn renamed that keyword to
``ensure_all_finite`` in 1.6 and removed the old name in 1.8, so DoubleML's PLR and IRM models
raise a TypeError on fit. The fix is narrow: replace the ``check_X_y`` name inside the two
DoubleML modules we use by a wrapper that translates the keyword. Nothing in scikit-learn itself
is changed, and on a scikit-learn that still accepts the old keyword nothing is patched.
"""

from __future__ import annotations

import inspect
from types import ModuleType
from typing import Callable

import pytest
import sklearn.utils


def _check_X_y(X, y, force_all_finite=True, **kwargs):
    return sklearn.utils.check_X_y(X, y, ensure_all_finite=force_all_finite, **kwargs)


def doubleml_patches() -> list[tuple[ModuleType, str, Callable]]:
    """The ``(module, attribute, replacement)`` triples that make DoubleML work here.

    Apply them with ``monkeypatch.setattr(*patch)`` in tests (undone after each test) or with
    ``setattr(*patch)`` in a script. Empty when scikit-learn still accepts ``force_all_finite``.
    """
    if "force_all_finite" in inspect.signature(sklearn.utils.check_X_y).parameters:
        return []
    import doubleml.irm.irm
    import doubleml.plm.plr

    return [(doubleml.plm.plr, "check_X_y", _check_X_y), (doubleml.irm.irm, "check_X_y", _check_X_y)]


def apply_doubleml_patches() -> None:
    """Apply :func:`doubleml_patches` for the rest of the process (for benchmarks and scripts)."""
    for module, name, replacement in doubleml_patches():
        setattr(module, name, replacement)


@pytest.fixture(autouse=True)
def doubleml_on_current_sklearn(monkeypatch):
    """Autouse fixture for test modules that import it: the patches, undone after each test."""
    for patch in doubleml_patches():
        monkeypatch.setattr(*patch)
