"""Minimal ASGI helpers: read a bounded body, send a complete response."""

from __future__ import annotations

import zlib
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from amlpkg.runtime.errors import InvalidInputError, PayloadTooLargeError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

JSON = b"application/json"
OCTET_STREAM = b"application/octet-stream"


class ClientDisconnectedError(Exception):
    """The client went away before the body was read; there is no one to answer."""


def header_map(scope: Scope) -> dict[bytes, bytes]:
    """The request headers (ASGI gives lower-case names); a repeated name keeps the last."""
    return dict(scope["headers"])


def _too_large(size: int, limit: int) -> PayloadTooLargeError:
    return PayloadTooLargeError(
        f"request body of {size} bytes is over the limit of {limit} bytes",
        hint="send smaller batches, use the binary tensor extension, or raise "
        "AMLPKG_SERVER_MAX_REQUEST_SIZE",
    )


async def read_body(receive: Receive, headers: dict[bytes, bytes], limit: int) -> bytes:
    """Read the whole body, refusing (413) as soon as it is known to pass ``limit``."""
    declared = headers.get(b"content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise InvalidInputError(f"bad Content-Length header {declared!r}") from None
        if size > limit:
            raise _too_large(size, limit)
    chunks: list[bytes] = []
    total = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnectedError
        chunk = message.get("body", b"")
        if chunk:
            total += len(chunk)
            if total > limit:
                raise _too_large(total, limit)
            chunks.append(chunk)
        if not message.get("more_body", False):
            break
    if len(chunks) == 1:
        return chunks[0]
    return b"".join(chunks)


# Content-Encoding -> zlib wbits; "deflate" is the zlib format, as tritonclient sends it.
_WBITS = {b"gzip": 16 + zlib.MAX_WBITS, b"deflate": zlib.MAX_WBITS}


def decompress_body(body: bytes, encoding: bytes | None, limit: int) -> bytes:
    """Undo a gzip/deflate Content-Encoding, refusing (413) output over ``limit`` bytes."""
    if encoding is None or encoding == b"identity":
        return body
    wbits = _WBITS.get(encoding.strip().lower())
    if wbits is None:
        raise InvalidInputError(
            f"Content-Encoding {encoding.decode('latin-1')!r} is not supported",
            hint="send the body uncompressed, gzip or deflate",
        )
    inflater = zlib.decompressobj(wbits)
    try:
        # Bounded output: a small compressed body must not inflate past the limit.
        data = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise InvalidInputError(
            f"the body is not valid {encoding.decode('latin-1')} data: {exc}"
        ) from None
    if len(data) > limit:
        raise _too_large(len(data), limit)
    if not inflater.eof:
        raise InvalidInputError(f"the {encoding.decode('latin-1')} body is truncated")
    return data


async def send_response(
    send: Send,
    status: int,
    body: bytes,
    content_type: bytes = JSON,
    extra_headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    """Send status, headers and the whole body in two ASGI messages."""
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    if extra_headers:
        headers.extend(extra_headers)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def lifespan(receive: Receive, send: Send) -> None:
    """Answer the ASGI lifespan protocol; the server starts the data plane itself."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
