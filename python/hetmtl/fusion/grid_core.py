"""Deprecated alias of :mod:`hetmtl.fusion.kernel_grid_core` (the wrapper of the core's
``kernel_grid`` area).

Kept importable for one release: every name resolves to the one in
:mod:`hetmtl.fusion.kernel_grid_core`.
"""

import warnings

from . import kernel_grid_core as _kernel_grid_core

__all__ = list(_kernel_grid_core.__all__)

warnings.warn("hetmtl.fusion.grid_core is deprecated and will be removed in the next release; "
              "import hetmtl.fusion.kernel_grid_core instead", DeprecationWarning, stacklevel=2)


def __getattr__(name: str):
    return getattr(_kernel_grid_core, name)
