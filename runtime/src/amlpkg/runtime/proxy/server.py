"""The switch of a Docker deployment, as a process of its own on the Docker host.

``python -m amlpkg.runtime.proxy serve --state DIR`` listens on the stable HTTP and
gRPC ports (a :class:`SwitchingProxy` over the current routes) and on two preview
ports that reach only the revision being verified (so a new revision is checked
through the same network path before it gets traffic, without publishing its own
ports). It is told what to do over a unix socket in ``DIR`` (``control.sock``, mode
0600), one JSON object per line; ``docker exec`` of ``python -m amlpkg.runtime.proxy
ctl`` is how the deploy lifecycle reaches it, so the control channel is never on a
network. Operations:

- ``route``: ``{"routes": [{"key", "host", "http_port", "grpc_port", "weight"}]}``,
  the stable endpoint's backends from now on (written to ``DIR/routes.json`` first,
  so a restarted proxy serves the same backends);
- ``preview``: ``{"backend": {...}}`` or ``{"backend": null}``;
- ``drain``: ``{"key", "grace_s"}``, answers once ``key`` has answered what it got
  (or the grace is over), with ``drained``;
- ``status``: the routes, the preview and the per-backend counters.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
from pathlib import Path
from typing import Any

from amlpkg.runtime.proxy.switching import Backend, Route, SwitchingProxy

ROUTES_FILE = "routes.json"
CONTROL_SOCKET = "control.sock"


def route_of(data: dict[str, Any]) -> Route:
    """A route from its JSON form (``weight`` defaults to 1)."""
    backend = Backend(
        str(data["key"]), str(data["host"]), int(data["http_port"]), int(data["grpc_port"])
    )
    return Route(backend, float(data.get("weight", 1.0)))


def route_json(route: Route) -> dict[str, Any]:
    """The JSON form of a route."""
    b = route.backend
    return {
        "key": b.key,
        "host": b.host,
        "http_port": b.http_port,
        "grpc_port": b.grpc_port,
        "weight": route.weight,
    }


def load_routes(state_dir: Path) -> list[Route]:
    """The routes a previous run of the proxy saved (none when there is no valid file)."""
    try:
        data = json.loads((state_dir / ROUTES_FILE).read_text())
        return [route_of(r) for r in data["routes"]]
    except (FileNotFoundError, ValueError, KeyError, TypeError):
        return []


def save_routes(state_dir: Path, routes: list[Route]) -> None:
    """Write the routes atomically (a crash leaves the old file or the new one)."""
    tmp = state_dir / f".{ROUTES_FILE}.tmp"
    tmp.write_text(json.dumps({"routes": [route_json(r) for r in routes]}))
    os.replace(tmp, state_dir / ROUTES_FILE)


class ProxyServer:
    """The stable proxy, the preview proxy and their control operations."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.stable = SwitchingProxy()
        self.preview = SwitchingProxy()
        self.stable.route(load_routes(state_dir))
        self.done = asyncio.Event()

    async def route(self, req: dict[str, Any]) -> dict[str, Any]:
        """New routes for the stable endpoint, saved before they take effect."""
        routes = [route_of(r) for r in req["routes"]]
        SwitchingProxy().route(routes)  # validate before saving
        save_routes(self.state_dir, routes)
        self.stable.route(routes)
        return {}

    async def set_preview(self, req: dict[str, Any]) -> dict[str, Any]:
        """The backend the preview ports reach (null: none)."""
        backend = req.get("backend")
        self.preview.route([] if backend is None else [route_of(backend)])
        return {}

    async def drain(self, req: dict[str, Any]) -> dict[str, Any]:
        """Wait until ``key`` has no request in flight and no gRPC connection open."""
        key = str(req["key"])
        deadline = time.monotonic() + float(req.get("grace_s", 10.0))
        while self.stable.busy(key) or self.preview.busy(key):
            if time.monotonic() >= deadline:
                return {"drained": False}
            await asyncio.sleep(0.05)
        return {"drained": True}

    async def status(self, req: dict[str, Any]) -> dict[str, Any]:
        """Routes, preview and counters per backend."""
        proxy = self.stable
        keys = {r.backend.key for r in proxy.routes} | set(proxy.outstanding) | set(proxy.grpc)
        return {
            "pid": os.getpid(),
            "routes": [route_json(r) for r in proxy.routes],
            "preview": [route_json(r) for r in self.preview.routes],
            "backends": {
                key: {
                    "outstanding": proxy.outstanding.get(key, 0),
                    "connections": proxy.connections.get(key, 0),
                    "grpc_connections": len(proxy.grpc.get(key, ())),
                }
                for key in sorted(keys)
            },
        }

    async def control(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One control request: a JSON line, answered by a JSON line."""
        try:
            req = json.loads(await reader.readline())
            handler = {
                "route": self.route,
                "preview": self.set_preview,
                "drain": self.drain,
                "status": self.status,
            }.get(str(req.get("op")))
            if handler is None:
                answer: dict[str, Any] = {"ok": False, "error": f"unknown op {req.get('op')!r}"}
            else:
                answer = {"ok": True, **await handler(req)}
        except Exception as exc:  # an answer, never a dead proxy
            answer = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        writer.write(json.dumps(answer).encode() + b"\n")
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        writer.close()


async def serve(
    state_dir: Path,
    *,
    host: str = "0.0.0.0",
    http_port: int = 8000,
    grpc_port: int = 8001,
    preview_http_port: int = 9000,
    preview_grpc_port: int = 9001,
) -> None:
    """Serve until SIGTERM/SIGINT (``docker stop``)."""
    state_dir.mkdir(parents=True, exist_ok=True)
    proxy = ProxyServer(state_dir)
    servers = [
        await asyncio.start_server(handler, host, port, backlog=1024)
        for handler, port in (
            (proxy.stable.handle_http, http_port),
            (proxy.stable.handle_grpc, grpc_port),
            (proxy.preview.handle_http, preview_http_port),
            (proxy.preview.handle_grpc, preview_grpc_port),
        )
    ]
    socket_path = state_dir / CONTROL_SOCKET
    socket_path.unlink(missing_ok=True)  # left by a killed run
    old_umask = os.umask(0o177)
    try:
        servers.append(await asyncio.start_unix_server(proxy.control, str(socket_path)))
    finally:
        os.umask(old_umask)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        # PID 1 in a container ignores SIGTERM unless it handles it.
        loop.add_signal_handler(signum, proxy.done.set)
    print(f"proxy serving {[r.backend.key for r in proxy.stable.routes]}", flush=True)
    try:
        await proxy.done.wait()
    finally:
        for server in servers:
            server.close()
        socket_path.unlink(missing_ok=True)


def call(state_dir: Path, request: dict[str, Any], timeout_s: float = 120.0) -> dict[str, Any]:
    """Send one control request to the proxy serving ``state_dir`` and return its answer."""
    import socket

    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout_s)
        sock.connect(str(state_dir / CONTROL_SOCKET))
        sock.sendall(json.dumps(request).encode() + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    answer: dict[str, Any] = json.loads(data or b'{"ok": false, "error": "no answer"}')
    return answer
