"""DoubleML 0.10.1 on the current scikit-learn: a shared autouse fixture for tests that call it."""

from __future__ import annotations

import inspect

import doubleml.irm.irm
import doubleml.plm.plr
import pytest
import sklearn.utils


@pytest.fixture(autouse=True)
def doubleml_on_current_sklearn(monkeypatch):
    """DoubleML 0.10.1 calls ``check_X_y(..., force_all_finite=...)``, a keyword scikit-learn 1.8
    removed (it is ``ensure_all_finite`` since 1.6). Translate it in the two DoubleML modules these
    tests use; on an older scikit-learn nothing is patched."""
    if "force_all_finite" in inspect.signature(sklearn.utils.check_X_y).parameters:
        return

    def check_X_y(X, y, force_all_finite=True, **kwargs):
        return sklearn.utils.check_X_y(X, y, ensure_all_finite=force_all_finite, **kwargs)

    monkeypatch.setattr(doubleml.plm.plr, "check_X_y", check_X_y)
    monkeypatch.setattr(doubleml.irm.irm, "check_X_y", check_X_y)
