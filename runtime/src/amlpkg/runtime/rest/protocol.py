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
        """Count header bytes, parse, then give what is still incomplete its deadline.

        A request that arrives whole in one read (the common case) touches no timer: the
        deadlines are set after parsing, only for a head or body left incomplete.
        """
        phase = self._phase
        if phase == _IDLE:
            self._phase = phase = _HEAD
            self._head_bytes = 0
        if phase == _HEAD:
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
        super().data_received(data)
        phase = self._phase
        if phase == _HEAD:
            if self._deadline is None:  # from the request's first byte, not moved by later ones
                self._arm(self.header_timeout)
        elif phase == _BODY:
            self._arm(self.read_timeout)  # each read of an incomplete body renews it

    def on_headers_complete(self) -> None:
        """Headers are in: from now on only the body read timeout applies."""
        self._phase = _BODY
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        """The whole request is in: the app has it, no timer until the next request."""
        self._phase = _IDLE
        self._deadline = None  # the pending timer, if any, sees it and stops
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
