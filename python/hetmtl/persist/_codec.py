"""The JSON encoding of an object's state: plain JSON where a value is plain JSON, a tagged object
(``{"$type": ...}``) for everything else.

Only data is written, never code: NumPy arrays and scalars, tuples, sets, dicts with keys that are
not strings, non-finite floats, random seeds and generators, and objects of the package (or
scikit-learn estimators) as their class name and their attributes. Tensors do not enter the JSON:
the encoder collects them in :attr:`Encoder.tensors` (the archive stores them as torch files) and
the JSON refers to them by name. An object met twice is written once and referred to by ``id``
afterwards, so that two attributes that shared an object still share one after loading.

Decoding builds classes only from the package, scikit-learn (estimators) and torch (modules),
resolved by name: a file cannot make the loader run code of its choosing.
"""

from __future__ import annotations

import enum
import importlib
import math
import sys
from typing import Any, Callable

import numpy as np

TAG = "$type"

# Where a class named in a file may come from (checked before its module is imported).
_CLASS_ROOTS = ("hetmtl", "sklearn", "torch")
_NONFINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


class PersistError(ValueError):
    """A value that the format cannot hold, or a file whose content is not a valid state."""


def class_name(cls: type) -> str:
    """``module:qualname`` of a class, the form the files use."""
    return f"{cls.__module__}:{cls.__qualname__}"


def resolve_class(name: Any) -> type:
    """The class named ``module:qualname``, imported only from the package, scikit-learn or torch."""
    if not isinstance(name, str) or name.count(":") != 1:
        raise PersistError(f"not a class name: {name!r}")
    module, qualname = name.split(":")
    if module.split(".")[0] not in _CLASS_ROOTS or "<" in qualname:
        raise PersistError(f"refusing to load class {name!r}: only classes of hetmtl, scikit-learn "
                           "and torch are allowed in hetmtl files")
    try:
        obj: Any = importlib.import_module(module)
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except AttributeError:
        raise PersistError(f"unknown class {name!r} (written by another version of hetmtl?)") from None
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.split(".")[0] == "hetmtl":
            raise PersistError(f"unknown class {name!r} (written by another version of hetmtl?)") from None
        raise
    if not isinstance(obj, type):
        raise PersistError(f"{name!r} is not a class")
    return obj


def _allowed_object(cls: type) -> bool:
    root = cls.__module__.split(".")[0]
    if root == "hetmtl":
        return True
    if root == "sklearn":
        from sklearn.base import BaseEstimator

        # Estimators, and the named tuples some estimators keep their fitted parts in.
        return issubclass(cls, BaseEstimator) or (issubclass(cls, tuple) and hasattr(cls, "_fields"))
    return False


# Extra handlers (torch's, registered by hetmtl.persist._torch): encode predicate -> function, and
# tag -> decode function.
Encode = Callable[["Encoder", Any], Any]
Decode = Callable[["Decoder", dict], Any]
_ENCODERS: list[tuple[Callable[[Any], bool], Encode]] = []
_DECODERS: dict[str, Decode] = {}
# Tags whose decoders live in a module loaded on first use.
_LAZY_TAGS = {"tensor": "hetmtl.persist._torch", "module": "hetmtl.persist._torch",
              "torch_dtype": "hetmtl.persist._torch", "torch_device": "hetmtl.persist._torch",
              "torch_generator": "hetmtl.persist._torch"}


def register(predicate: Callable[[Any], bool], encode: Encode, decoders: dict[str, Decode]) -> None:
    """Add an encoder for the values ``predicate`` accepts and the decoders of its tags."""
    _ENCODERS.append((predicate, encode))
    _DECODERS.update(decoders)


def _float_json(x: float) -> Any:
    if math.isfinite(x):
        return x
    return {TAG: "float", "value": "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")}


class Encoder:
    """Encodes values into JSON, collecting tensors by storage file in :attr:`tensors`."""

    def __init__(self) -> None:
        self.tensors: dict[str, dict[str, Any]] = {}
        self._ids: dict[int, int] = {}
        self._keep: list[Any] = []    # the encoded objects stay alive, so that no id is reused

    def encode(self, value: Any, where: str = "state") -> Any:
        """JSON form of ``value``; ``where`` names it in errors (``state.summaries_[2]``)."""
        if value is None or isinstance(value, (bool, str)):
            return value
        if isinstance(value, np.generic):
            return {TAG: "scalar", "dtype": value.dtype.str, "value": self.encode(value.item(), where)}
        if isinstance(value, int):
            return int(value)
        if isinstance(value, float):
            return _float_json(float(value))
        if isinstance(value, np.ndarray):
            return self._array(value, where)
        if isinstance(value, list):
            return [self.encode(v, f"{where}[{i}]") for i, v in enumerate(value)]
        if isinstance(value, tuple) and hasattr(value, "_fields") and _allowed_object(type(value)):
            return {TAG: "namedtuple", "class": class_name(type(value)),
                    "items": [self.encode(v, f"{where}.{k}") for k, v in zip(value._fields, value)]}
        if isinstance(value, (tuple, set, frozenset)):
            kind = "tuple" if isinstance(value, tuple) else type(value).__name__
            items = value if isinstance(value, tuple) else sorted(value, key=repr)
            return {TAG: kind, "items": [self.encode(v, f"{where}[{i}]") for i, v in enumerate(items)]}
        if type(value) is dict:
            return self._dict(value, where)
        if "torch" in sys.modules:     # torch's values (a network may be of a hetmtl class)
            importlib.import_module("hetmtl.persist._torch")    # registers their handlers
        for predicate, encode in _ENCODERS:
            if predicate(value):
                return encode(self, value)
        return self._other(value, where)

    def _dict(self, value: dict, where: str) -> Any:
        if all(isinstance(k, str) for k in value) and TAG not in value:
            return {k: self.encode(v, f"{where}[{k!r}]") for k, v in value.items()}
        return {TAG: "dict", "items": [[self.encode(k, where), self.encode(v, f"{where}[{k!r}]")]
                                       for k, v in value.items()]}

    def _array(self, a: np.ndarray, where: str) -> dict:
        if a.dtype.kind == "O":
            return {TAG: "ndarray", "dtype": "object", "shape": list(a.shape),
                    "items": [self.encode(v, f"{where}[{i}]") for i, v in enumerate(a.ravel().tolist())]}
        if a.dtype.kind not in "biufU":
            raise PersistError(f"{where}: arrays of dtype {a.dtype} cannot be saved")
        data = a.ravel().tolist()
        if a.dtype.kind == "f" and not np.isfinite(a).all():
            for i in np.flatnonzero(~np.isfinite(a.ravel())):
                data[i] = _float_json(data[i])["value"]
        return {TAG: "ndarray", "dtype": a.dtype.str, "shape": list(a.shape), "data": data}

    def _other(self, value: Any, where: str) -> Any:
        if isinstance(value, np.random.SeedSequence):
            return {TAG: "seed_sequence", "entropy": self.encode(value.entropy, where),
                    "spawn_key": list(value.spawn_key), "pool_size": value.pool_size,
                    "n_children_spawned": value.n_children_spawned}
        if isinstance(value, np.random.RandomState):
            return {TAG: "random_state", "state": self.encode(value.get_state(), where)}
        if isinstance(value, np.dtype):
            return {TAG: "dtype", "value": self.encode(value.str if value.kind != "O" else "object", where)}
        if isinstance(value, np.random.Generator):
            return {TAG: "generator", "bit_generator": type(value.bit_generator).__name__,
                    "state": self.encode(value.bit_generator.state, where)}
        cls = type(value)
        if isinstance(value, enum.Enum) and _allowed_object(cls):
            return {TAG: "enum", "class": class_name(cls), "name": value.name}
        if not _allowed_object(cls) or not hasattr(value, "__dict__"):
            raise PersistError(f"{where}: a {cls.__module__}.{cls.__qualname__} cannot be saved "
                               "(hetmtl files hold data, arrays and objects of hetmtl and "
                               "scikit-learn, never functions or other code)")
        seen = self._ids.get(id(value))
        if seen is not None:
            return {TAG: "ref", "id": seen}
        return {TAG: "object", "class": class_name(cls), "id": self.remember(value),
                "state": self.encode_attributes(vars(value), where)}

    def remember(self, value: Any) -> int:
        """A new id for ``value`` (met for the first time)."""
        self._ids[id(value)] = len(self._ids)
        self._keep.append(value)
        return self._ids[id(value)]

    def known(self, value: Any) -> int | None:
        """The id of ``value`` when it was encoded before."""
        return self._ids.get(id(value))

    def encode_attributes(self, attributes: dict[str, Any], where: str) -> dict[str, Any]:
        """The JSON form of an object's attributes (a dict keyed by attribute name)."""
        return {k: self.encode(v, f"{where}.{k}") for k, v in attributes.items()}


class Decoder:
    """Inverse of :class:`Encoder`; ``tensors`` maps storage file to its dict of tensors."""

    def __init__(self, tensors: Callable[[str], dict[str, Any]]) -> None:
        self.tensors = tensors
        self._objects: dict[int, Any] = {}

    def decode(self, node: Any) -> Any:
        """The value a JSON node encodes."""
        if isinstance(node, list):
            return [self.decode(v) for v in node]
        if not isinstance(node, dict):
            return node
        tag = node.get(TAG)
        if tag is None:
            return {k: self.decode(v) for k, v in node.items()}
        if tag in _BUILTIN:
            return _BUILTIN[tag](self, node)
        if tag not in _DECODERS and tag in _LAZY_TAGS:
            importlib.import_module(_LAZY_TAGS[tag])
        if tag not in _DECODERS:
            raise PersistError(f"unknown value type {tag!r}")
        return _DECODERS[tag](self, node)

    def keep(self, node: dict, obj: Any) -> Any:
        """Remember ``obj``, the object of ``node``'s id, for later references."""
        self._objects[int(node["id"])] = obj
        return obj

    def restore_attributes(self, obj: Any, state: dict) -> Any:
        """Set the decoded attributes of ``state`` on ``obj`` (no constructor runs)."""
        if not isinstance(state, dict):
            raise PersistError("an object's state must be a JSON object")
        obj.__dict__.update({k: self.decode(v) for k, v in state.items()})
        return obj

    def _ref(self, node: dict) -> Any:
        try:
            return self._objects[int(node["id"])]
        except KeyError:
            raise PersistError(f"reference to an unknown object id {node.get('id')!r}") from None

    def _object(self, node: dict) -> Any:
        cls = resolve_class(node["class"])
        if not _allowed_object(cls):
            raise PersistError(f"refusing to build {node['class']!r}: not a hetmtl class or a "
                               "scikit-learn estimator")
        obj = self.keep(node, cls.__new__(cls))
        return self.restore_attributes(obj, node["state"])


def _decode_array(dec: Decoder, node: dict) -> np.ndarray:
    shape = tuple(int(s) for s in node["shape"])
    if node["dtype"] == "object":
        out = np.empty(len(node["items"]), dtype=object)
        out[:] = [dec.decode(v) for v in node["items"]] if out.size else []
        return out.reshape(shape)
    dtype = np.dtype(node["dtype"])
    if dtype.kind not in "biufU":
        raise PersistError(f"arrays of dtype {dtype} are not part of the format")
    data = node["data"]
    if dtype.kind == "f":
        data = [_NONFINITE[v] if isinstance(v, str) else v for v in data]
    return np.array(data, dtype=dtype).reshape(shape)


def _decode_generator(dec: Decoder, node: dict) -> np.random.Generator:
    name = node["bit_generator"]
    if name not in ("PCG64", "PCG64DXSM", "MT19937", "Philox", "SFC64"):
        raise PersistError(f"unknown bit generator {name!r}")
    bit_gen = getattr(np.random, name)()
    bit_gen.state = dec.decode(node["state"])
    return np.random.Generator(bit_gen)


def _decode_namedtuple(dec: Decoder, node: dict) -> tuple:
    cls = resolve_class(node["class"])
    if not (issubclass(cls, tuple) and hasattr(cls, "_fields") and _allowed_object(cls)):
        raise PersistError(f"{node['class']!r} is not a named tuple of hetmtl or scikit-learn")
    return cls(*(dec.decode(v) for v in node["items"]))


def _decode_random_state(dec: Decoder, node: dict) -> np.random.RandomState:
    rs = np.random.RandomState()
    rs.set_state(dec.decode(node["state"]))
    return rs


def _decode_enum(dec: Decoder, node: dict) -> Any:
    cls = resolve_class(node["class"])
    if not (issubclass(cls, enum.Enum) and _allowed_object(cls)):
        raise PersistError(f"{node['class']!r} is not an enumeration of hetmtl")
    return cls[node["name"]]


_BUILTIN: dict[str, Decode] = {
    "float": lambda dec, node: _NONFINITE[node["value"]],
    "scalar": lambda dec, node: np.dtype(node["dtype"]).type(dec.decode(node["value"])),
    "ndarray": _decode_array,
    "tuple": lambda dec, node: tuple(dec.decode(v) for v in node["items"]),
    "set": lambda dec, node: {dec.decode(v) for v in node["items"]},
    "frozenset": lambda dec, node: frozenset(dec.decode(v) for v in node["items"]),
    "dict": lambda dec, node: {dec.decode(k): dec.decode(v) for k, v in node["items"]},
    "seed_sequence": lambda dec, node: np.random.SeedSequence(
        dec.decode(node["entropy"]), spawn_key=tuple(node["spawn_key"]), pool_size=node["pool_size"],
        n_children_spawned=node["n_children_spawned"]),
    "generator": _decode_generator,
    "enum": _decode_enum,
    "namedtuple": _decode_namedtuple,
    "random_state": _decode_random_state,
    "dtype": lambda dec, node: np.dtype(dec.decode(node["value"])),
    "object": Decoder._object,
    "ref": Decoder._ref,
}
