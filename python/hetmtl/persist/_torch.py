"""Networks and tensors in hetmtl files: each network's weights are a torch state dict in a file of
its own (``networks/<n>.pt``), its structure (classes, sizes, options) is JSON. Files are read
with ``torch.load(weights_only=True)``, which builds tensors and nothing else.

Imported on first use: only objects that hold tensors need torch.
"""

from __future__ import annotations

import io
from typing import Any

from .. import nn as _nn  # noqa: F401  (first: without torch it raises the message naming the extra)
import torch

from ._codec import TAG, Decoder, Encoder, PersistError, class_name, register, resolve_class

# What torch.nn.Module.__init__ sets up and a loaded module gets anew from it (hooks and the like).
_MODULE_INTERNALS = frozenset(vars(torch.nn.Module())) - {"training", "_non_persistent_buffers_set"}
LOOSE_TENSORS = "tensors.pt"


def write_tensor_file(tensors: dict[str, torch.Tensor]) -> bytes:
    """The bytes of a ``.pt`` file holding ``tensors`` (a flat dict of CPU tensors)."""
    buf = io.BytesIO()
    torch.save(tensors, buf)
    return buf.getvalue()


def read_tensor_file(data: bytes) -> dict[str, torch.Tensor]:
    """The tensors of a ``.pt`` file, loaded with ``weights_only=True`` onto the CPU."""
    out = torch.load(io.BytesIO(data), weights_only=True, map_location="cpu")
    if not isinstance(out, dict) or not all(isinstance(t, torch.Tensor) for t in out.values()):
        raise PersistError("a tensor file does not hold a dict of tensors")
    return out


def _store(enc: Encoder, tensor: torch.Tensor, name: str | None = None) -> dict:
    """Put ``tensor`` in the current network's file (or the loose one) and return its reference."""
    file, prefix = getattr(enc, "_network", (LOOSE_TENSORS, None))
    bucket = enc.tensors.setdefault(file, {})
    key = f"{prefix}{name}" if prefix is not None and name is not None else str(len(bucket))
    bucket[key] = tensor.detach().cpu().clone()
    return {TAG: "tensor", "file": file, "key": key, "requires_grad": bool(tensor.requires_grad),
            "parameter": isinstance(tensor, torch.nn.Parameter), "device": str(tensor.device)}


def _encode_module(enc: Encoder, module: torch.nn.Module) -> dict:
    seen = enc.known(module)
    if seen is not None:
        return {TAG: "ref", "id": seen}
    node_id = enc.remember(module)
    outer = getattr(enc, "_network", None)
    if outer is None or outer[1] is None:      # a network of its own: a new state dict file
        enc._network = (f"networks/{sum(f.startswith('networks/') for f in enc.tensors)}.pt", "")
        enc.tensors.setdefault(enc._network[0], {})
    file, prefix = enc._network
    try:
        params = {k: None if p is None else _store(enc, p, k) for k, p in module._parameters.items()}
        buffers = {k: None if b is None else _store(enc, b, k) for k, b in module._buffers.items()}
        children = {}
        for k, child in module._modules.items():
            enc._network = (file, f"{prefix}{k}.")
            children[k] = None if child is None else _encode_module(enc, child)
        enc._network = (file, prefix)
        attributes = {k: v for k, v in vars(module).items()
                      if k not in _MODULE_INTERNALS and k not in ("_parameters", "_buffers", "_modules")}
        # Tensors held as plain attributes go to the loose file, as any tensor outside a network.
        enc._network = (LOOSE_TENSORS, None)
        state = enc.encode_attributes(attributes, type(module).__name__)
    finally:
        enc._network = outer
    return {TAG: "module", "class": class_name(type(module)), "id": node_id, "parameters": params,
            "buffers": buffers, "modules": children, "attributes": state}


def _decode_module(dec: Decoder, node: dict) -> torch.nn.Module:
    cls = resolve_class(node["class"])
    if not issubclass(cls, torch.nn.Module):
        raise PersistError(f"{node['class']!r} is not a torch module")
    module = dec.keep(node, cls.__new__(cls))
    torch.nn.Module.__init__(module)
    for k, p in node["parameters"].items():
        module._parameters[k] = None if p is None else dec.decode(p)
    for k, b in node["buffers"].items():
        module._buffers[k] = None if b is None else dec.decode(b)
    for k, child in node["modules"].items():
        module._modules[k] = None if child is None else dec.decode(child)
    return dec.restore_attributes(module, node["attributes"])


def _decode_tensor(dec: Decoder, node: dict) -> torch.Tensor:
    try:
        tensor = dec.tensors(node["file"])[node["key"]]
    except KeyError:
        raise PersistError(f"tensor {node.get('key')!r} is missing from {node.get('file')!r}") from None
    device = torch.device(node.get("device", "cpu"))
    if device.type != "cpu" and (device.type != "cuda" or torch.cuda.is_available()):
        tensor = tensor.to(device)
    if node.get("parameter"):
        return torch.nn.Parameter(tensor, requires_grad=bool(node["requires_grad"]))
    return tensor.requires_grad_(bool(node["requires_grad"]))


def _decode_dtype(dec: Decoder, node: dict) -> torch.dtype:
    dtype = getattr(torch, str(node["value"]).removeprefix("torch."), None)
    if not isinstance(dtype, torch.dtype):
        raise PersistError(f"unknown torch dtype {node['value']!r}")
    return dtype


def _decode_generator(dec: Decoder, node: dict) -> torch.Generator:
    gen = torch.Generator(device="cpu")
    gen.set_state(dec.decode(node["state"]))
    return gen


def _encode_other(enc: Encoder, value: Any) -> dict:
    if isinstance(value, torch.nn.Module):
        return _encode_module(enc, value)
    if isinstance(value, torch.Tensor):
        outer = getattr(enc, "_network", None)
        enc._network = (LOOSE_TENSORS, None)
        try:
            return _store(enc, value)
        finally:
            enc._network = outer
    if isinstance(value, torch.dtype):
        return {TAG: "torch_dtype", "value": str(value)}
    if isinstance(value, torch.device):
        return {TAG: "torch_device", "value": str(value)}
    if isinstance(value, torch.Generator):
        if value.device.type != "cpu":
            raise PersistError("a torch.Generator on a device other than the CPU cannot be saved")
        return {TAG: "torch_generator", "state": _encode_other(enc, value.get_state())}
    raise PersistError(f"a {type(value).__module__}.{type(value).__qualname__} cannot be saved")


register(lambda v: isinstance(v, (torch.nn.Module, torch.Tensor, torch.dtype, torch.device, torch.Generator)),
         _encode_other,
         {"module": _decode_module, "tensor": _decode_tensor, "torch_dtype": _decode_dtype,
          "torch_device": lambda dec, node: torch.device(node["value"]),
          "torch_generator": _decode_generator})
