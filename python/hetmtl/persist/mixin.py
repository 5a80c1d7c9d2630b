""":class:`Persistable`: ``save``/``load`` methods and the state hooks of the objects hetmtl files
hold. A class joins the format by deriving from it (or from :class:`SchemaPersistable` when it
already has a validated ``to_dict``/``from_dict``)."""

from __future__ import annotations

import importlib
import os
from typing import Any, TypeVar

T = TypeVar("T", bound="Persistable")


def _archive():
    # Loaded on call: the classes that derive from this mixin are imported by the archive's
    # loader, never the other way round at import time.
    return importlib.import_module("hetmtl.persist._archive")


class Persistable:
    """Mixin of the objects that :func:`hetmtl.save` writes and :func:`hetmtl.load` reads.

    The default state is every attribute of the object (parameters and fitted attributes) except
    those named in ``_persist_exclude``; an attribute left out is absent after loading.
    """

    #: Attributes not written to files (row-level data, for instance).
    _persist_exclude: tuple[str, ...] = ()

    def save(self, path: str | os.PathLike) -> None:
        """Write this object to the hetmtl file ``path`` (see :mod:`hetmtl.persist`).

        Parameters
        ----------
        path : str or path-like
        """
        _archive().save(self, path)

    @classmethod
    def load(cls: type[T], path: str | os.PathLike) -> T:
        """Read an object of this class from the hetmtl file ``path``.

        Parameters
        ----------
        path : str or path-like

        Returns
        -------
        The loaded object; a file holding an object of another class is refused.
        """
        obj = _archive().load(path)
        if not isinstance(obj, cls):
            raise _archive().FormatError(f"path: {os.fspath(path)!r} holds a {type(obj).__name__}, "
                                         f"not a {cls.__name__}")
        return obj

    def _state_to_dict(self, encoder: Any) -> dict:
        """The JSON state of this object (``encoder`` encodes values that are not plain JSON)."""
        attributes = {k: v for k, v in vars(self).items() if k not in self._persist_exclude}
        return encoder.encode_attributes(attributes, type(self).__name__)

    @classmethod
    def _state_from_dict(cls: type[T], state: dict, decoder: Any) -> T:
        """Inverse of :meth:`_state_to_dict`: the object, built without running ``__init__``."""
        return decoder.restore_attributes(cls.__new__(cls), state)


class SchemaPersistable(Persistable):
    """For classes with a versioned, validated ``to_dict``/``from_dict`` (site and grid summaries):
    the file holds that document and loading validates it again."""

    def _state_to_dict(self, encoder: Any) -> dict:
        return {"document": encoder.encode(self.to_dict(), type(self).__name__)}

    @classmethod
    def _state_from_dict(cls, state: dict, decoder: Any):
        return cls.from_dict(decoder.decode(state["document"]))
