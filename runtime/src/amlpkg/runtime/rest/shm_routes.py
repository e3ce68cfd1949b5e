"""Triton's shared-memory REST routes (``/v2/systemsharedmemory/...``).

CUDA shared memory needs a GPU build; here its routes answer 400 with a clear message
rather than 404, so a client knows the extension, not the URL, is what is missing.
"""

from __future__ import annotations

from typing import Any

from amlpkg.errors import NotFoundError
from amlpkg.runtime.errors import InvalidInputError
from amlpkg.runtime.shm import SharedMemoryRegistry


def handle_shared_memory(
    registry: SharedMemoryRegistry, rest: list[str], body: dict[str, Any], path: str
) -> list[dict[str, Any]] | bytes:
    """Answer ``rest`` = ``["systemsharedmemory", ...]`` (the path after ``/v2``)."""
    if rest[0] == "cudasharedmemory":
        raise InvalidInputError(
            "CUDA shared memory is not supported by the amlpkg runtime",
            hint="use system shared memory (/v2/systemsharedmemory)",
        )
    tail = rest[1:]
    name = None
    if len(tail) == 3 and tail[0] == "region":
        name, tail = tail[1], tail[2:]
    if tail == ["status"]:
        return [
            {"name": r.name, "key": r.key, "offset": r.offset, "byte_size": r.byte_size}
            for r in registry.status(name)
        ]
    if tail == ["register"] and name is not None:
        key = body.get("key")
        if not isinstance(key, str):
            raise InvalidInputError("register needs a 'key' string (the shm_open name)")
        registry.register(name, key, body.get("offset", 0), body.get("byte_size"))
        return b""
    if tail == ["unregister"]:
        registry.unregister(name)
        return b""
    raise NotFoundError(f"no route for {path}")
