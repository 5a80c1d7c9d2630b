"""The file: a zip archive with ``manifest.json`` (format, versions, object type, JSON state) and,
for objects with networks, torch state dicts as ``.pt`` members."""

from __future__ import annotations

import hashlib
import importlib
import io
import json
import os
import platform
import zipfile
from typing import Any

from .._util.io import atomic_write_bytes
from ._tables import TABLE_TYPES  # noqa: F401  (importing it registers pandas values)
from ._codec import Decoder, Encoder, PersistError, class_name, resolve_class

FORMAT_NAME = "hetmtl"
#: The format version this release writes; it reads every version from 1 up to this one.
FORMAT_VERSION = 1
MANIFEST = "manifest.json"


class FormatError(PersistError):
    """A file that is not a hetmtl file, comes from an incompatible format version, names an
    object type this release does not know, or is damaged."""


def _package_version() -> str:
    return importlib.import_module("hetmtl").__version__


def _persistable(cls: type) -> bool:
    mixin = importlib.import_module("hetmtl.persist.mixin").Persistable
    return isinstance(cls, type) and issubclass(cls, mixin)


def dumps(obj: Any) -> bytes:
    """The bytes of the hetmtl file of ``obj`` (what :func:`save` writes).

    Parameters
    ----------
    obj : LateFusion, SiteDML, SiteSummary, GridSummary, NuisanceFusion, FusedNuisance, a neural
        estimator or a block-wise imputer

    Returns
    -------
    bytes
    """
    if not _persistable(type(obj)):
        raise FormatError(f"obj: a {type(obj).__name__} cannot be saved (supported: hetmtl's result "
                          "and estimator objects; see hetmtl.persist)")
    enc = Encoder()
    state = obj._state_to_dict(enc)
    manifest = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "package_version": _package_version(),
        "object_type": class_name(type(obj)),
        "python": platform.python_version(),
        "tensor_files": sorted(enc.tensors),
        "state_sha256": state_digest(state),
        "state": state,
    }
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(MANIFEST, json.dumps(manifest, allow_nan=False, separators=(",", ":")))
        if enc.tensors:
            torch_io = importlib.import_module("hetmtl.persist._torch")
            for name, tensors in sorted(enc.tensors.items()):
                zf.writestr(name, torch_io.write_tensor_file(tensors))
    return buf.getvalue()


def save(obj: Any, path: str | os.PathLike) -> None:
    """Write ``obj`` to the hetmtl file ``path`` (atomically: a reader never sees half a file).

    Parameters
    ----------
    obj : a supported hetmtl object (see :func:`dumps`)
    path : str or path-like
    """
    atomic_write_bytes(path, dumps(obj))


def state_digest(state: Any) -> str:
    """SHA-256 of the state's canonical JSON (sorted keys): a changed or damaged state is noticed."""
    canonical = json.dumps(state, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _read_manifest(zf: zipfile.ZipFile, source: str) -> dict:
    try:
        manifest = json.loads(zf.read(MANIFEST))
    except KeyError:
        raise FormatError(f"{source}: not a hetmtl file (no {MANIFEST})") from None
    except (ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise FormatError(f"{source}: damaged hetmtl file ({MANIFEST} unreadable: {exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME:
        found = manifest.get("format") if isinstance(manifest, dict) else None
        raise FormatError(f"{source}: not a hetmtl file (format {found!r}, expected {FORMAT_NAME!r})")
    version = manifest.get("format_version")
    written_by = manifest.get("package_version", "an unknown version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise FormatError(f"{source}: invalid format_version {version!r}")
    if version > FORMAT_VERSION:
        raise FormatError(f"{source}: written in hetmtl file format version {version} (by hetmtl "
                          f"{written_by}); this hetmtl ({_package_version()}) reads format versions "
                          f"1 to {FORMAT_VERSION}: upgrade hetmtl to load it")
    if "state" not in manifest or manifest.get("state_sha256") != state_digest(manifest["state"]):
        raise FormatError(f"{source}: damaged hetmtl file (the state does not match its checksum)")
    return manifest


def loads(data: bytes, *, source: str = "data") -> Any:
    """The object held in the bytes of a hetmtl file (inverse of :func:`dumps`).

    Parameters
    ----------
    data : bytes
    source : str
        How errors name the data (a file name for :func:`load`).

    Returns
    -------
    object
        The saved object, of the type it was saved as.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise FormatError(f"data: expected bytes, got {type(data).__name__}")
    try:
        zf = zipfile.ZipFile(io.BytesIO(bytes(data)))
    except zipfile.BadZipFile:
        raise FormatError(f"{source}: not a hetmtl file (not a zip archive, or damaged)") from None
    with zf:
        manifest = _read_manifest(zf, source)
        obj_type = manifest.get("object_type")
        try:
            cls = resolve_class(obj_type)
        except PersistError as exc:
            raise FormatError(f"{source}: unknown object type {obj_type!r} ({exc})") from None
        if not _persistable(cls):
            raise FormatError(f"{source}: object type {obj_type!r} is not one hetmtl files hold")
        cache: dict[str, Any] = {}

        def tensors(name: str) -> Any:
            if name not in cache:
                if name not in manifest.get("tensor_files", ()):
                    raise FormatError(f"{source}: refers to an undeclared tensor file {name!r}")
                torch_io = importlib.import_module("hetmtl.persist._torch")
                cache[name] = torch_io.read_tensor_file(zf.read(name))
            return cache[name]

        try:
            return cls._state_from_dict(manifest["state"], Decoder(tensors))
        except FormatError:
            raise
        except (PersistError, KeyError, TypeError, ValueError, zipfile.BadZipFile, EOFError,
                RuntimeError) as exc:
            raise FormatError(f"{source}: damaged or inconsistent hetmtl file "
                              f"({type(exc).__name__}: {exc})") from exc


def load(path: str | os.PathLike) -> Any:
    """The object saved in the hetmtl file ``path`` (by :func:`save` or an object's ``save``).

    Parameters
    ----------
    path : str or path-like

    Returns
    -------
    object
    """
    with open(path, "rb") as fh:
        data = fh.read()
    return loads(data, source=repr(os.fspath(path)))
