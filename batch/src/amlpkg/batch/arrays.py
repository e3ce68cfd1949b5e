"""Numeric Arrow arrays and numpy arrays, one as the other without a copy.

``pa.array(ndarray)`` and ``Array.to_numpy()`` import pandas on their first call (pyarrow
looks for pandas types), which costs a fresh Spark Python worker a few tenths of a CPU
second on its first batch: the executors' Parquet path otherwise never imports pandas.
For fixed-width numbers both directions are a view of the same buffer, so these do it
from the buffers; other types (booleans are bits, strings have offsets) go through
pyarrow's own conversions.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

_NUMERIC: dict[pa.DataType, np.dtype] = {
    t: np.dtype(n)
    for t, n in [
        (pa.int8(), "i1"), (pa.int16(), "i2"), (pa.int32(), "i4"), (pa.int64(), "i8"),
        (pa.uint8(), "u1"), (pa.uint16(), "u2"), (pa.uint32(), "u4"), (pa.uint64(), "u8"),
        (pa.float16(), "f2"), (pa.float32(), "f4"), (pa.float64(), "f8"),
    ]
}  # fmt: skip
_ARROW = {dtype: kind for kind, dtype in _NUMERIC.items()}


def to_numpy(column: pa.Array) -> np.ndarray:
    """The values of ``column`` (no nulls: the caller checks) as numpy, a view when numeric."""
    dtype = _NUMERIC.get(column.type)
    if dtype is None:
        return column.to_numpy(zero_copy_only=False)
    data = np.frombuffer(column.buffers()[1], dtype=dtype)
    return data[column.offset : column.offset + len(column)]


def to_arrow(values: np.ndarray) -> pa.Array:
    """A one-dimensional numpy array as Arrow, sharing its memory when numeric."""
    kind = _ARROW.get(values.dtype) if values.dtype.isnative else None
    if kind is None or values.ndim != 1:
        return pa.array(values)
    flat = np.ascontiguousarray(values)
    return pa.Array.from_buffers(kind, len(flat), [None, pa.py_buffer(flat)])
