"""The core's V2 datatype table (:mod:`amlpkg.datatypes`) for the runtime.

Lookups raise the runtime's :class:`InvalidInputError`, so a bad datatype in a
request is reported like every other mismatch between a request and its model.
"""

from __future__ import annotations

import numpy as np

from amlpkg import datatypes as _table
from amlpkg.datatypes import BY_ONNX, BY_V2, Datatype
from amlpkg.errors import InvalidArgumentError
from amlpkg.runtime.errors import InvalidInputError

__all__ = ["BY_ONNX", "BY_V2", "Datatype", "from_numpy", "from_onnx", "from_v2"]


def from_v2(name: str) -> Datatype:
    """Look up a V2 datatype name such as ``FP32``; unknown names are a client error."""
    try:
        return _table.from_v2(name)
    except InvalidArgumentError as exc:
        raise InvalidInputError(exc.message, hint=exc.hint) from None


def from_onnx(type_str: str) -> Datatype:
    """Look up an ONNX Runtime type string such as ``tensor(float)``."""
    try:
        return _table.from_onnx(type_str)
    except InvalidArgumentError as exc:
        raise InvalidInputError(exc.message, hint=exc.hint) from None


def from_numpy(dtype: np.dtype) -> Datatype:
    """The V2 datatype of a numpy dtype; unicode and bytes arrays map to BYTES."""
    try:
        return _table.from_numpy(dtype)
    except InvalidArgumentError as exc:
        raise InvalidInputError(exc.message, hint=exc.hint) from None
