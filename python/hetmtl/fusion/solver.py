"""Deprecated alias of :mod:`hetmtl.fusion.fused` (the wrapper of the core's ``fused`` area).

Kept importable for one release: every name resolves to the one in :mod:`hetmtl.fusion.fused`.
"""

import warnings

from .. import _core_status
from . import fused as _fused

__all__ = list(_fused.__all__)

# Private helpers other modules used to import from here, under their public names now.
_RENAMED = {"_warn_unconverged": _core_status.check_fused, "_check_lambda": _fused.check_lambda}

warnings.warn("hetmtl.fusion.solver is deprecated and will be removed in the next release; "
              "import hetmtl.fusion.fused instead", DeprecationWarning, stacklevel=2)


def __getattr__(name: str):
    return _RENAMED[name] if name in _RENAMED else getattr(_fused, name)
