"""The stable endpoint of a blue/green deployment: a TCP proxy that can switch backends.

Two listeners (HTTP and gRPC) forward whole connections to the backends of the
current routes: one backend, or several by weight (a canary takes 10% of the new
work). Switching only changes where NEW work goes:

- gRPC (HTTP/2 keeps state per connection) stays on the backend it started with;
  at a switch the proxy sends each client of a backend that left the routes an
  HTTP/2 GOAWAY of its own, so the client finishes its calls there and opens its
  next ones on a new connection, which goes to the new routes: how HTTP/2 drains
  by design, without waiting for the old server to shut down. By weight, each new
  connection picks its backend.
- HTTP/1.1 is stateless between requests, so a kept-alive client connection is
  moved at a request boundary: when the client sends again after the backend has
  answered (clients do not pipeline), the proxy picks the backend for that request
  (by weight) and, when it is another one, sends the request there on a new
  connection. So a keep-alive client keeps scoring across a switch without a
  single failed request, and a canary's share counts requests, not connections.

``outstanding`` counts, per backend, HTTP requests sent and not yet answered, so
the old backend is stopped only once it has answered everything it got.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Sequence
from dataclasses import dataclass

_CHUNK = 256 * 1024
_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
_FRAME_HEADER = 9
_HEADERS, _GOAWAY = 0x1, 0x7


@dataclass(frozen=True)
class Backend:
    """Where one revision's runtime listens."""

    key: str
    host: str
    http_port: int
    grpc_port: int


@dataclass(frozen=True)
class Route:
    """A backend and its share of new work (weights are relative, any positive numbers)."""

    backend: Backend
    weight: float = 1.0


class SwitchingProxy:
    """Forward connections to the backends of :attr:`routes`; see the module docstring."""

    def __init__(self, rng: random.Random | None = None) -> None:
        self.routes: tuple[Route, ...] = ()
        self.outstanding: dict[str, int] = {}
        self.connections: dict[str, int] = {}
        self.grpc: dict[str, set[_GrpcConnection]] = {}
        self._rng = rng or random.Random()

    @property
    def current(self) -> Backend | None:
        """The backend with the largest share (None when nothing is routed)."""
        if not self.routes:
            return None
        return max(self.routes, key=lambda r: r.weight).backend

    def switch(self, backend: Backend) -> None:
        """Send all new connections (and new HTTP requests) to ``backend`` from now on."""
        self.route([Route(backend)])

    def route(self, routes: Sequence[Route]) -> None:
        """Split new work over ``routes`` by weight from now on (empty: refuse new work).

        gRPC clients of backends that are not in ``routes`` get a GOAWAY: they finish
        their calls there and open a new connection for the next ones.
        """
        if any(r.weight <= 0 for r in routes) or len({r.backend.key for r in routes}) < len(routes):
            raise ValueError("every route needs a positive weight and its own backend key")
        self.routes = tuple(routes)
        keys = {r.backend.key for r in routes}
        for key, live in self.grpc.items():
            if key not in keys:
                for conn in live:
                    conn.go_away()

    def pick(self) -> Backend | None:
        """The backend for the next connection or request (by weight)."""
        routes = self.routes
        if len(routes) <= 1:
            return routes[0].backend if routes else None
        point = self._rng.random() * sum(r.weight for r in routes)
        for route in routes:
            point -= route.weight
            if point < 0:
                return route.backend
        return routes[-1].backend

    def busy(self, key: str) -> bool:
        """Whether ``key`` still has HTTP requests to answer or gRPC connections open."""
        return self.outstanding.get(key, 0) > 0 or bool(self.grpc.get(key))

    def _count(self, table: dict[str, int], key: str, delta: int) -> None:
        table[key] = table.get(key, 0) + delta

    async def handle_grpc(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """A whole client connection piped to the backend current when it arrived."""
        backend = self.pick()
        if backend is None:
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(backend.host, backend.grpc_port)
        except OSError:
            writer.close()
            return
        conn = _GrpcConnection(writer)
        live = self.grpc.setdefault(backend.key, set())
        live.add(conn)
        try:
            await asyncio.gather(
                conn.client_to_backend(reader, up_writer), conn.backend_to_client(up_reader)
            )
        finally:
            live.discard(conn)
            for w in (writer, up_writer):
                w.close()

    async def handle_http(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """A client connection whose requests go to the current backend at each boundary."""
        conn = _HttpConnection(self, writer)
        try:
            while True:
                data = await reader.read(_CHUNK)
                if not data:
                    break
                if not await conn.send(data):
                    break
        except (ConnectionError, OSError):
            pass
        finally:
            await conn.close()
            writer.close()


class _HttpConnection:
    """One client connection of the HTTP listener and its (replaceable) backend connection."""

    def __init__(self, proxy: SwitchingProxy, client: asyncio.StreamWriter) -> None:
        self.proxy = proxy
        self.client = client
        self.backend: Backend | None = None
        self.up_writer: asyncio.StreamWriter | None = None
        self.pump: asyncio.Task[None] | None = None
        # True when every request sent upstream has been (at least partly) answered.
        self.answered = True
        self.upstream_closed = False

    async def send(self, data: bytes) -> bool:
        """Forward client bytes, moving to the picked backend at a request boundary."""
        boundary = self.answered
        current = self.proxy.pick() if boundary or self.backend is None else self.backend
        if current is None:
            return False
        if self.up_writer is None or (
            boundary and (self.upstream_closed or self.backend != current)
        ):
            await self._drop_upstream()
            try:
                up_reader, self.up_writer = await asyncio.open_connection(
                    current.host, current.http_port
                )
            except OSError:
                return False
            self.backend = current
            self.upstream_closed = False
            self.proxy._count(self.proxy.connections, current.key, 1)
            self.pump = asyncio.create_task(self._pump(up_reader, current))
        assert self.backend is not None and self.up_writer is not None
        if boundary:
            self.answered = False
            self.proxy._count(self.proxy.outstanding, self.backend.key, 1)
        self.up_writer.write(data)
        await self.up_writer.drain()
        return True

    async def _pump(self, up_reader: asyncio.StreamReader, backend: Backend) -> None:
        """Backend bytes to the client; marks the exchange answered on the first real bytes."""
        try:
            while True:
                data = await up_reader.read(_CHUNK)
                if not data:
                    break
                if not self.answered and not _interim(data):
                    self.answered = True
                    self.proxy._count(self.proxy.outstanding, backend.key, -1)
                self.client.write(data)
                await self.client.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            self.upstream_closed = True
            if not self.answered:
                # The backend went away mid-request: the client must see the failure.
                self.answered = True
                self.proxy._count(self.proxy.outstanding, backend.key, -1)
                self.client.close()

    async def _drop_upstream(self) -> None:
        if self.up_writer is not None:
            self.up_writer.close()
            self.up_writer = None
        if self.pump is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.pump
            self.pump = None
        if self.backend is not None:
            self.proxy._count(self.proxy.connections, self.backend.key, -1)
            self.backend = None

    async def close(self) -> None:
        """Close the backend side when the client leaves."""
        if self.pump is not None and not self.answered:
            self.pump.cancel()
        await self._drop_upstream()


class _GrpcConnection:
    """Reads the client's HTTP/2 frames just enough to send a GOAWAY of our own.

    The GOAWAY names the highest stream the client opened so far; streams the client
    opens after it are not forwarded (the client retries them on a new connection,
    as HTTP/2 allows for streams above a GOAWAY's last stream id). The backend's
    bytes are passed on in whole frames only, so an injected GOAWAY always lands
    between two frames.
    """

    def __init__(self, client: asyncio.StreamWriter) -> None:
        self.client = client
        self.max_stream = 0
        self.last_allowed: int | None = None
        self._frames = bytearray()
        self._preface_left = len(_PREFACE)
        self._down = bytearray()

    def go_away(self) -> None:
        """Tell the client to open its next calls on a new connection (NO_ERROR)."""
        if self.last_allowed is not None or self.client.is_closing():
            return
        self.last_allowed = self.max_stream
        payload = self.max_stream.to_bytes(4, "big") + (0).to_bytes(4, "big")
        header = len(payload).to_bytes(3, "big") + bytes([_GOAWAY, 0]) + (0).to_bytes(4, "big")
        self.client.write(header + payload)

    def _forwardable(self, data: bytes) -> bytes:
        self._frames += data
        out = bytearray()
        if self._preface_left:
            take = min(self._preface_left, len(self._frames))
            out += self._frames[:take]
            del self._frames[:take]
            self._preface_left -= take
            if self._preface_left:
                return bytes(out)
        while len(self._frames) >= _FRAME_HEADER:
            total = _FRAME_HEADER + int.from_bytes(self._frames[0:3], "big")
            if len(self._frames) < total:
                break
            kind = self._frames[3]
            stream = int.from_bytes(self._frames[5:9], "big") & 0x7FFFFFFF
            frame = self._frames[:total]
            del self._frames[:total]
            if self.last_allowed is not None and stream > self.last_allowed:
                continue  # refused by our GOAWAY: never seen by the backend
            if kind == _HEADERS and stream > self.max_stream:
                self.max_stream = stream
            out += frame
        return bytes(out)

    async def backend_to_client(self, up_reader: asyncio.StreamReader) -> None:
        """Forward the backend's bytes to the client, whole frames at a time."""
        try:
            while True:
                data = await up_reader.read(_CHUNK)
                if not data:
                    break
                self._down += data
                end = 0
                while len(self._down) - end >= _FRAME_HEADER:
                    total = _FRAME_HEADER + int.from_bytes(self._down[end : end + 3], "big")
                    if len(self._down) - end < total:
                        break
                    end += total
                if end:
                    self.client.write(bytes(self._down[:end]))
                    del self._down[:end]
                    await self.client.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            with contextlib.suppress(OSError, RuntimeError):
                if self.client.can_write_eof():
                    self.client.write_eof()

    async def client_to_backend(
        self, reader: asyncio.StreamReader, up_writer: asyncio.StreamWriter
    ) -> None:
        """Forward the client's frames, watching stream ids."""
        try:
            while True:
                data = await reader.read(_CHUNK)
                if not data:
                    break
                out = self._forwardable(data)
                if out:
                    up_writer.write(out)
                    await up_writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            with contextlib.suppress(OSError, RuntimeError):
                if up_writer.can_write_eof():
                    up_writer.write_eof()


def _interim(data: bytes) -> bool:
    """A lone ``100 Continue`` is not the answer: the request body still follows."""
    return data.startswith(b"HTTP/1.1 100 ") and data.endswith(b"\r\n\r\n") and len(data) < 64
