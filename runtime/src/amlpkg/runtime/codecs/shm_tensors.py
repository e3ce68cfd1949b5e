"""Tensors in system shared memory: Triton's ``shared_memory_*`` tensor parameters."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from amlpkg.runtime.codecs.raw import from_raw, to_raw
from amlpkg.runtime.errors import InvalidInputError
from amlpkg.runtime.limits import RequestLimits
from amlpkg.runtime.shm import SharedMemoryRegistry

SHM_REGION = "shared_memory_region"
SHM_OFFSET = "shared_memory_offset"
SHM_SIZE = "shared_memory_byte_size"


def _registry(shm: SharedMemoryRegistry | None, what: str) -> SharedMemoryRegistry:
    if shm is None:
        raise InvalidInputError(f"{what}: shared memory is not available on this transport")
    return shm


def read_shm_input(
    shm: SharedMemoryRegistry | None,
    params: Mapping[str, Any],
    datatype: str,
    shape: tuple[int, ...],
    *,
    name: str,
    limits: RequestLimits,
) -> np.ndarray:
    """The input ``name`` read (copied) from the region its parameters name."""
    what = f"input {name!r}"
    if SHM_SIZE not in params:
        raise InvalidInputError(f"{what}: shared_memory_region needs shared_memory_byte_size")
    data = _registry(shm, what).read(
        params[SHM_REGION], params.get(SHM_OFFSET, 0), params[SHM_SIZE], what
    )
    return from_raw(data, datatype, shape, name, limits)


def write_shm_output(
    shm: SharedMemoryRegistry | None,
    params: Mapping[str, Any],
    array: np.ndarray,
    datatype: str,
    name: str,
) -> dict[str, Any]:
    """Write output ``name`` into its region; the parameters the response reports."""
    what = f"output '{name}'"
    if SHM_SIZE not in params:
        raise InvalidInputError(f"{what}: shared_memory_region needs shared_memory_byte_size")
    data = to_raw(array, datatype)
    offset = params.get(SHM_OFFSET, 0)
    _registry(shm, what).write(params[SHM_REGION], offset, params[SHM_SIZE], data, what)
    reported: dict[str, Any] = {SHM_REGION: params[SHM_REGION], SHM_SIZE: len(data)}
    if offset:
        reported[SHM_OFFSET] = offset
    return reported
