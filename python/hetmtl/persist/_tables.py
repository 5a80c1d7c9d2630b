"""pandas values in hetmtl files: indexes, Series and DataFrames as their values (NumPy arrays)
and dtype names, so that a loaded table equals the saved one, dtypes included."""

from __future__ import annotations

from typing import Any

import pandas as pd

from ._codec import TAG, Decoder, Encoder, PersistError, register

TABLE_TYPES = (pd.Index, pd.Series, pd.DataFrame)


def _dtype(name: Any):
    try:
        return pd.api.types.pandas_dtype(name)
    except TypeError:
        raise PersistError(f"unknown pandas dtype {name!r}") from None


def _column(enc: Encoder, values: Any, where: str) -> dict:
    return {"values": enc.encode(values.to_numpy(), where), "dtype": str(values.dtype)}


def _encode(enc: Encoder, value: Any) -> dict:
    where = type(value).__name__
    if isinstance(value, pd.RangeIndex):
        return {TAG: "pd_range_index", "start": value.start, "stop": value.stop, "step": value.step,
                "name": enc.encode(value.name, where)}
    if isinstance(value, pd.MultiIndex):
        return {TAG: "pd_multi_index", "tuples": enc.encode(list(value), where),
                "names": enc.encode(list(value.names), where)}
    if isinstance(value, pd.Index):
        return {TAG: "pd_index", **_column(enc, value, where), "name": enc.encode(value.name, where)}
    if isinstance(value, pd.Series):
        return {TAG: "pd_series", **_column(enc, value, where), "index": _encode(enc, value.index),
                "name": enc.encode(value.name, where)}
    return {TAG: "pd_frame", "index": _encode(enc, value.index), "columns": _encode(enc, value.columns),
            "data": [_column(enc, value.iloc[:, j], f"{where}[{j}]") for j in range(value.shape[1])]}


def _values(dec: Decoder, node: dict) -> Any:
    return pd.array(dec.decode(node["values"]), dtype=_dtype(node["dtype"]))


def _frame(dec: Decoder, node: dict) -> pd.DataFrame:
    columns = dec.decode(node["columns"])
    data = {j: _values(dec, col) for j, col in enumerate(node["data"])}
    frame = pd.DataFrame(data, index=dec.decode(node["index"]))
    frame.columns = columns
    return frame


register(lambda v: isinstance(v, TABLE_TYPES), _encode, {
    "pd_range_index": lambda dec, node: pd.RangeIndex(node["start"], node["stop"], node["step"],
                                                      name=dec.decode(node["name"])),
    "pd_multi_index": lambda dec, node: pd.MultiIndex.from_tuples(dec.decode(node["tuples"]),
                                                                  names=dec.decode(node["names"])),
    "pd_index": lambda dec, node: pd.Index(_values(dec, node), name=dec.decode(node["name"])),
    "pd_series": lambda dec, node: pd.Series(_values(dec, node), index=dec.decode(node["index"]),
                                             name=dec.decode(node["name"])),
    "pd_frame": _frame,
})
