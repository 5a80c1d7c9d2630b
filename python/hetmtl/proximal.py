"""Deprecated alias of :mod:`hetmtl.prox` (the wrapper of the core's ``prox`` area).

Kept importable for one release: every name resolves to the one in :mod:`hetmtl.prox`.
"""

import warnings

from . import prox as _prox

__all__ = list(_prox.__all__)

warnings.warn("hetmtl.proximal is deprecated and will be removed in the next release; "
              "import hetmtl.prox instead", DeprecationWarning, stacklevel=2)


def __getattr__(name: str):
    return getattr(_prox, name)
