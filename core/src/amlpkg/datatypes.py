"""KServe v2 datatypes and their numpy / ONNX / Triton counterparts, in one table.

Every role reads datatypes from here: the runtime's codecs, the trainer's model
signature, the deploy smoke inference, the Triton export and the optimizer's data.
numpy is imported on first use of this module, never by ``import amlpkg``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from amlpkg.errors import InvalidArgumentError


@dataclass(frozen=True, slots=True)
class Datatype:
    """One V2 datatype: its wire name, numpy dtype, ONNX type and Triton config name."""

    v2: str
    numpy: np.dtype
    onnx: str
    triton: str
    itemsize: int  # bytes per element in the binary/raw encoding; 0 for BYTES


_TABLE: tuple[Datatype, ...] = (
    Datatype("BOOL", np.dtype(np.bool_), "tensor(bool)", "TYPE_BOOL", 1),
    Datatype("UINT8", np.dtype(np.uint8), "tensor(uint8)", "TYPE_UINT8", 1),
    Datatype("UINT16", np.dtype(np.uint16), "tensor(uint16)", "TYPE_UINT16", 2),
    Datatype("UINT32", np.dtype(np.uint32), "tensor(uint32)", "TYPE_UINT32", 4),
    Datatype("UINT64", np.dtype(np.uint64), "tensor(uint64)", "TYPE_UINT64", 8),
    Datatype("INT8", np.dtype(np.int8), "tensor(int8)", "TYPE_INT8", 1),
    Datatype("INT16", np.dtype(np.int16), "tensor(int16)", "TYPE_INT16", 2),
    Datatype("INT32", np.dtype(np.int32), "tensor(int32)", "TYPE_INT32", 4),
    Datatype("INT64", np.dtype(np.int64), "tensor(int64)", "TYPE_INT64", 8),
    Datatype("FP16", np.dtype(np.float16), "tensor(float16)", "TYPE_FP16", 2),
    Datatype("FP32", np.dtype(np.float32), "tensor(float)", "TYPE_FP32", 4),
    Datatype("FP64", np.dtype(np.float64), "tensor(double)", "TYPE_FP64", 8),
    # BYTES travel as length-prefixed byte strings; in memory an object array of bytes.
    Datatype("BYTES", np.dtype(np.object_), "tensor(string)", "TYPE_STRING", 0),
)

BY_V2: dict[str, Datatype] = {d.v2: d for d in _TABLE}
BY_ONNX: dict[str, Datatype] = {d.onnx: d for d in _TABLE}
_BY_NUMPY: dict[np.dtype, Datatype] = {d.numpy: d for d in _TABLE}


def from_v2(name: str) -> Datatype:
    """Look up a V2 datatype name such as ``FP32``; unknown names are a client error."""
    try:
        return BY_V2[name]
    except KeyError:
        raise InvalidArgumentError(
            f"unknown datatype {name!r}",
            hint=f"use one of {', '.join(BY_V2)}",
        ) from None


def from_onnx(type_str: str) -> Datatype:
    """Look up an ONNX Runtime type string such as ``tensor(float)``."""
    try:
        return BY_ONNX[type_str]
    except KeyError:
        raise InvalidArgumentError(f"ONNX type {type_str!r} has no KServe v2 datatype") from None


def from_numpy(dtype: np.dtype) -> Datatype:
    """The V2 datatype of a numpy dtype; unicode and bytes arrays map to BYTES."""
    if dtype.kind in ("U", "S", "O"):
        return BY_V2["BYTES"]
    try:
        return _BY_NUMPY[np.dtype(dtype)]
    except KeyError:
        raise InvalidArgumentError(f"numpy dtype {dtype} has no KServe v2 datatype") from None
