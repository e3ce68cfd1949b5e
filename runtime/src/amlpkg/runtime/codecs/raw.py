"""Tensors as raw bytes: Triton's binary tensor extension and gRPC ``raw_*_contents``.

Fixed-size datatypes are the little-endian C-order bytes of the array. BYTES elements
are each a 4-byte little-endian length followed by that many bytes.
"""

from __future__ import annotations

import math
import struct

import numpy as np

from amlpkg.runtime.datatypes import Datatype, from_v2
from amlpkg.runtime.errors import InvalidInputError
from amlpkg.runtime.limits import DEFAULT_LIMITS, MIN_BYTES_ELEMENT, RequestLimits, check_shape

_LENGTH = struct.Struct("<I")
_LITTLE_ENDIAN: dict[str, np.dtype] = {}


def element_count(shape: tuple[int, ...]) -> int:
    """Number of elements of a tensor of ``shape`` (1 for a scalar)."""
    return math.prod(shape)


def _wire_dtype(datatype: Datatype) -> np.dtype:
    # The wire is little-endian whatever the host is; cache the derived dtype.
    cached = _LITTLE_ENDIAN.get(datatype.v2)
    if cached is None:
        cached = datatype.numpy.newbyteorder("<")
        _LITTLE_ENDIAN[datatype.v2] = cached
    return cached


def deserialize_bytes_tensor(buffer: bytes | memoryview, count: int, name: str) -> np.ndarray:
    """Split length-prefixed BYTES elements into an object array of ``bytes``."""
    view = memoryview(buffer)
    if count * MIN_BYTES_ELEMENT > len(view):
        # Before np.empty: the count is the sender's claim, the buffer is what came.
        raise InvalidInputError(
            f"input {name!r}: BYTES data holds fewer than the {count} elements its shape "
            f"says: they need at least {count * MIN_BYTES_ELEMENT} bytes, {len(view)} were sent",
            hint="each element is a 4-byte little-endian length followed by its bytes",
        )
    out = np.empty(count, dtype=np.object_)
    offset = 0
    end = len(view)
    for i in range(count):
        if offset + 4 > end:
            raise InvalidInputError(
                f"input {name!r}: BYTES data holds fewer than the {count} elements its shape says",
                hint="each element is a 4-byte little-endian length followed by its bytes",
            )
        (length,) = _LENGTH.unpack_from(view, offset)
        offset += 4
        if offset + length > end:
            raise InvalidInputError(
                f"input {name!r}: BYTES element {i} claims {length} bytes but only "
                f"{end - offset} remain",
                hint="each element is a 4-byte little-endian length followed by its bytes",
            )
        out[i] = bytes(view[offset : offset + length])
        offset += length
    if offset != end:
        raise InvalidInputError(
            f"input {name!r}: {end - offset} bytes left over after the {count} BYTES elements "
            "its shape says",
            hint="check the shape matches the number of strings sent",
        )
    return out


def serialize_bytes_tensor(array: np.ndarray) -> bytes:
    """Length-prefix every element (``bytes``, or ``str`` as UTF-8) in C order."""
    parts: list[bytes] = []
    for item in array.ravel():
        data = item.encode() if isinstance(item, str) else bytes(item)
        parts.append(_LENGTH.pack(len(data)))
        parts.append(data)
    return b"".join(parts)


def from_raw(
    buffer: bytes | memoryview,
    datatype: str,
    shape: tuple[int, ...],
    name: str,
    limits: RequestLimits = DEFAULT_LIMITS,
) -> np.ndarray:
    """Decode one input's raw bytes into an array of ``shape``; sizes must match exactly.

    The shape is checked against ``limits`` and against the bytes received before
    anything is allocated.
    """
    dt = from_v2(datatype)
    count = check_shape(shape, name, limits)
    if dt.v2 == "BYTES":
        return deserialize_bytes_tensor(buffer, count, name).reshape(shape)
    expected = count * dt.itemsize
    if len(buffer) != expected:
        raise InvalidInputError(
            f"input {name!r}: got {len(buffer)} bytes of {datatype} data, expected {expected} "
            f"for shape {list(shape)} ({count} elements x {dt.itemsize} bytes)",
            hint="the shape, the datatype and the binary data size must agree",
        )
    array = np.frombuffer(buffer, dtype=_wire_dtype(dt))
    if array.dtype != dt.numpy:
        array = array.astype(dt.numpy)  # only on big-endian hosts
    return array.reshape(shape)


def to_raw(array: np.ndarray, datatype: str) -> bytes:
    """Encode an output array as raw wire bytes."""
    if datatype == "BYTES":
        return serialize_bytes_tensor(array)
    dt = from_v2(datatype)
    wire = _wire_dtype(dt)
    if array.dtype != wire:
        array = array.astype(wire)
    return np.ascontiguousarray(array).tobytes()
