"""uvicorn's httptools protocol with the guards a server on the internet needs.

httptools (llhttp) has no header size limit and uvicorn no read timeouts: a client can
send a 100 MiB header, or half a request, and hold the connection forever. This
subclass adds, per connection:

- a header size limit (request line + headers): 431 and close above it;
- a header deadline: the request line and headers must arrive within
  ``header_timeout`` of the first byte (slowloris sends one byte every few seconds, so
  a per-read timeout would never fire); a connection that sends nothing at all is
  closed after the same time;
- a body read timeout: no byte for ``read_timeout`` while a body is incomplete closes
  the connection (the request handler then sees a disconnect).

It also sends each response in one write: uvicorn writes the status line and headers,
then the body, as two ``send`` calls; on a small inference answer each is a whole trip
through the kernel's TCP stack, and under load the second one was about an eighth of
the event loop's time. :class:`OneWriteResponse` holds the head until the body comes.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

_IDLE, _HEAD, _BODY = 0, 1, 2
_HEAD_END = b"\r\n\r\n"


def _plain_response(status: bytes, message: bytes) -> bytes:
    return (
        b"HTTP/1.1 " + status + b"\r\ncontent-type: text/plain; charset=utf-8\r\n"
        b"content-length: "
        + str(len(message)).encode()
        + b"\r\nconnection: close\r\n\r\n"
        + message
    )


class OneWriteResponse:
    """The transport one request/response cycle writes to: the response head is held
    and sent together with the first body write.

    Only a write made after the response started is held (a ``100 Continue`` interim
    answer goes out at once: the client waits for it). The head is released by the next
    write, by the end of the response (a HEAD request or a 204 has no body write), by
    ``close`` and by any other use of the transport.
    """

    __slots__ = ("_cycle", "_done", "_head", "_on_response", "_transport")

    def __init__(self, transport: asyncio.Transport, cycle: Any) -> None:
        self._transport = transport
        self._cycle = cycle
        self._head: bytes | None = None
        self._done = False  # the head was seen: later writes pass straight through
        self._on_response = cycle.on_response
        cycle.on_response = self._response_complete

    def write(self, data: bytes) -> None:
        """Hold the response head; send it with the next write."""
        head = self._head
        if head is not None:
            self._head = None
            self._transport.write(head + data)
        elif not self._done and self._cycle.response_started:
            self._done = True
            self._head = data
        else:
            self._transport.write(data)

    def flush(self) -> None:
        """Send a held head now."""
        head = self._head
        if head is not None:
            self._head = None
            self._transport.write(head)

    def close(self) -> None:
        """Send what is held, then close."""
        self.flush()
        self._transport.close()

    def is_closing(self) -> bool:
        """Whether the connection is closing."""
        return self._transport.is_closing()

    def _response_complete(self) -> None:
        self.flush()
        self._on_response()

    def __getattr__(self, name: str) -> Any:
        # Anything else (pause_reading, get_extra_info, ...) sees the real transport,
        # after what is held has been sent.
        self.flush()
        return getattr(self._transport, name)


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """HttpToolsProtocol plus header size limit, header deadline and body read timeout.

    The limits are class attributes, set on a subclass made by :func:`guarded_protocol`
    (uvicorn builds protocols from a class, without extra arguments).
    """

    max_header_size = 32 * 1024
    header_timeout = 10.0
    read_timeout = 30.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._phase = _IDLE
        self._head_bytes = 0
        # One lazy timer per connection: moving the deadline is a float store; the timer,
        # when it fires, re-arms itself for a deadline that moved. No timer object is made
        # or cancelled per request (measured: that cost shows on small requests).
        self._guard: asyncio.TimerHandle | None = None
        self._deadline: float | None = None

    def _arm(self, seconds: float) -> None:
        self._deadline = self.loop.time() + seconds
        if self._guard is None:
            self._guard = self.loop.call_at(self._deadline, self._check)

    def _disarm(self) -> None:
        self._deadline = None  # the pending timer sees it and stops

    def _stop_timer(self) -> None:
        self._deadline = None
        if self._guard is not None:
            self._guard.cancel()
            self._guard = None

    def _check(self) -> None:
        self._guard = None
        if self._deadline is None:
            return
        if self._deadline > self.loop.time():
            self._guard = self.loop.call_at(self._deadline, self._check)
            return
        self._expired()

    def _expired(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        if self._phase != _BODY:
            # Nothing handed to the app yet: say why before closing.
            self.transport.write(_plain_response(b"408 Request Timeout", b"request timeout"))
        self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Start the header deadline: a connection that sends nothing is closed too."""
        super().connection_made(transport)
        self._arm(self.header_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        """Drop the timer with the connection."""
        self._stop_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        """Count header bytes and keep the body read timeout fresh, then parse."""
        if self._phase == _IDLE:
            self._phase, self._head_bytes = _HEAD, 0
            self._arm(self.header_timeout)
        if self._phase == _HEAD:
            end = data.find(_HEAD_END)
            self._head_bytes += len(data) if end < 0 else end + len(_HEAD_END)
            if self._head_bytes > self.max_header_size:
                self._disarm()
                self.transport.write(
                    _plain_response(
                        b"431 Request Header Fields Too Large",
                        b"request line and headers are over the server's limit",
                    )
                )
                self.transport.close()
                return
        elif self._phase == _BODY:
            self._arm(self.read_timeout)
        super().data_received(data)

    def on_headers_complete(self) -> None:
        """Headers are in: from now on only the body read timeout applies."""
        self._phase = _BODY
        self._arm(self.read_timeout)
        before = self.cycle
        super().on_headers_complete()
        cycle = self.cycle
        if cycle is not None and cycle is not before:  # not an upgrade: a new request
            cycle.transport = OneWriteResponse(self.transport, cycle)  # type: ignore[assignment]

    def on_message_complete(self) -> None:
        """The whole request is in: the app has it, no timer until the next request."""
        self._phase = _IDLE
        self._disarm()
        super().on_message_complete()


def guarded_protocol(
    *, max_header_size: int, header_timeout: float, read_timeout: float
) -> type[GuardedHttpToolsProtocol]:
    """A protocol class with these limits, for ``uvicorn.Config(http=...)``."""
    return type(
        "ConfiguredGuardedHttpToolsProtocol",
        (GuardedHttpToolsProtocol,),
        {
            "max_header_size": max_header_size,
            "header_timeout": header_timeout,
            "read_timeout": read_timeout,
        },
    )
