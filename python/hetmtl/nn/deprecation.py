"""Parameters renamed in a release: the old spelling keeps working, with a DeprecationWarning,
for one more release."""

from __future__ import annotations

import inspect
import os
import warnings
from typing import Any, ClassVar

import numpy as np

#: The default of a parameter kept only under its old name: its value when the caller did not set it.
DEPRECATED = "deprecated"


_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _outside_stacklevel() -> int:
    """The ``stacklevel`` (for a warning raised by the caller of this function) of the first frame
    outside the package: the user's line, where Python shows a DeprecationWarning by default."""
    frame, level = inspect.currentframe(), 0
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(_PACKAGE_DIR):
        frame, level = frame.f_back, level + 1
    return max(level, 1)


def _is_set(value: Any) -> bool:
    return not (isinstance(value, str) and value == DEPRECATED)


def _same(a: Any, b: Any) -> bool:
    try:
        return np.shape(a) == np.shape(b) and bool(np.all(a == b))
    except (TypeError, ValueError):
        return a is b


class RenamedParameters:
    """Mixin of estimators with renamed parameters.

    ``_renamed`` maps each old name to its new name. The old name stays a parameter (so that
    ``get_params``, ``set_params`` and ``clone`` keep working) with the default
    :data:`DEPRECATED`; code reads an option through :meth:`_option`, which takes the old
    spelling when the caller set it, and :meth:`_warn_renamed` warns once per fit.
    """

    _renamed: ClassVar[dict[str, str]] = {}

    def _given(self, name: str) -> tuple[str, Any]:
        """The spelling the caller used for option ``name`` (the old one, if set) and its value."""
        for old, new in self._renamed.items():
            if new == name and _is_set(getattr(self, old, DEPRECATED)):
                default = inspect.signature(type(self).__init__).parameters[new].default
                if not _same(getattr(self, new), default):
                    raise ValueError(f"{old}, {new}: give only {new} ({old} is its deprecated spelling)")
                return old, getattr(self, old)
        return name, getattr(self, name)

    def _option(self, name: str) -> Any:
        """The value of option ``name``, under whichever spelling it was given."""
        return self._given(name)[1]

    def _warn_renamed(self) -> None:
        """A DeprecationWarning for every old spelling the caller set (call after the checks, so
        that a bad value is reported under the name it was given)."""
        for old, new in self._renamed.items():
            if _is_set(getattr(self, old, DEPRECATED)):
                warnings.warn(f"{type(self).__name__}: {old} is renamed {new}; the old name will be removed "
                              "in the next release", DeprecationWarning, stacklevel=_outside_stacklevel())
