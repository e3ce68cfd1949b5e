"""The switching proxy's HTTP/2 handling, on bytes (the end-to-end proof is blue/green)."""

from __future__ import annotations

import asyncio
from typing import Any

from amlpkg.runtime.proxy.switching import _GrpcConnection, _interim

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def _frame(kind: int, stream: int, payload: bytes = b"", flags: int = 0) -> bytes:
    return (
        len(payload).to_bytes(3, "big")
        + bytes([kind, flags])
        + stream.to_bytes(4, "big")
        + (payload)
    )


class _Writer:
    """Collects what the proxy writes to the client."""

    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, data: bytes) -> None:
        self.data += data

    def is_closing(self) -> bool:
        return False


def _conn() -> tuple[_GrpcConnection, _Writer]:
    writer = _Writer()
    writer_any: Any = writer
    return _GrpcConnection(writer_any), writer


def test_frames_split_anywhere_are_forwarded_whole_and_in_order() -> None:
    conn, _ = _conn()
    stream = (
        PREFACE
        + _frame(0x4, 0, b"\x00" * 6)  # SETTINGS
        + _frame(0x1, 1, b"h" * 20, flags=0x4)  # HEADERS
        + _frame(0x0, 1, b"d" * 300, flags=0x1)  # DATA
    )
    out = b"".join(conn._forwardable(stream[i : i + 7]) for i in range(0, len(stream), 7))
    assert out == stream
    assert conn.max_stream == 1


def test_goaway_names_the_last_stream_and_later_streams_are_held_back() -> None:
    conn, client = _conn()
    conn._forwardable(PREFACE + _frame(0x1, 1, b"h") + _frame(0x1, 3, b"h"))
    conn.go_away()
    conn.go_away()  # once only
    assert bytes(client.data) == _frame(0x7, 0, (3).to_bytes(4, "big") + (0).to_bytes(4, "big"))
    # Stream 3 may still send its body; stream 5 (opened after our GOAWAY) is refused.
    late = _frame(0x0, 3, b"body") + _frame(0x1, 5, b"h") + _frame(0x0, 5, b"x")
    assert conn._forwardable(late) == _frame(0x0, 3, b"body")
    # Connection-level frames (stream 0) still pass.
    assert conn._forwardable(_frame(0x8, 0, b"\x00\x00\x01\x00")) == _frame(
        0x8, 0, b"\x00\x00\x01\x00"
    )


def test_backend_bytes_reach_the_client_in_whole_frames() -> None:
    conn, client = _conn()
    frames = _frame(0x4, 0, b"") + _frame(0x1, 1, b"r" * 50) + _frame(0x0, 1, b"z" * 10)

    async def run() -> list[int]:
        reader = asyncio.StreamReader()
        sizes: list[int] = []
        task = asyncio.ensure_future(conn.backend_to_client(reader))
        for i in range(0, len(frames), 13):
            reader.feed_data(frames[i : i + 13])
            await asyncio.sleep(0)
            sizes.append(len(client.data))
        reader.feed_eof()
        await task
        return sizes

    client_any: Any = client
    client_any.drain = _noop
    client_any.can_write_eof = lambda: False
    sizes = asyncio.run(run())
    assert bytes(client.data) == frames
    boundaries = {0, 9, 9 + 9 + 50, len(frames)}
    assert set(sizes) <= boundaries


async def _noop() -> None:
    return None


def test_100_continue_is_not_the_answer() -> None:
    assert _interim(b"HTTP/1.1 100 Continue\r\n\r\n")
    assert not _interim(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}")
