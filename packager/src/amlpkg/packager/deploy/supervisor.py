"""The background process of a ``local`` deployment: stable endpoint + supervised runtimes.

``python -m amlpkg.packager.deploy.supervisor STATE_DIR --http-port P --grpc-port Q``
listens on the deployment's stable ports (the :class:`SwitchingProxy`), starts
``python -m amlpkg.runtime`` children on private loopback ports, restarts a child
that dies (bounded), and obeys a control connection on loopback that needs the
token it wrote to ``STATE_DIR/control.json`` (mode 0600). Operations, one JSON
object per line: ``start`` (a runtime child), ``switch``, ``stop``, ``status``,
``shutdown``. (A docker deployment's endpoint is not here but on its Docker host:
see :mod:`amlpkg.packager.deploy.targets.docker_switch`.)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from amlpkg.runtime.proxy import Backend, SwitchingProxy

CONTROL_FILE = "control.json"
MAX_RESTARTS = 5  # within RESTART_WINDOW_S; beyond that the child stays down
RESTART_WINDOW_S = 60.0


@dataclass
class Child:
    """One supervised runtime process."""

    backend: Backend
    argv: list[str]
    log: Path
    env: dict[str, str] = field(default_factory=dict)  # over the supervisor's own
    process: asyncio.subprocess.Process | None = None
    stopping: bool = False
    restarts: list[float] = field(default_factory=list)
    watcher: asyncio.Task[None] | None = None


class Supervisor:
    """State of the supervisor process (one per local deployment name)."""

    def __init__(self, state_dir: Path, token: str) -> None:
        self.state_dir = state_dir
        self.token = token
        self.proxy = SwitchingProxy()
        self.children: dict[str, Child] = {}
        self.done = asyncio.Event()

    async def _spawn(self, child: Child) -> None:
        with child.log.open("ab") as log:
            child.process = await asyncio.create_subprocess_exec(
                *child.argv,
                stdout=log,
                stderr=log,
                stdin=asyncio.subprocess.DEVNULL,
                env={**os.environ, **child.env},
            )

    async def _watch(self, child: Child) -> None:
        """Restart the child when it exits on its own, at most MAX_RESTARTS a minute."""
        while True:
            assert child.process is not None
            code = await child.process.wait()
            if child.stopping:
                return
            now = time.monotonic()
            child.restarts = [t for t in child.restarts if now - t < RESTART_WINDOW_S]
            if len(child.restarts) >= MAX_RESTARTS:
                with child.log.open("a") as log:
                    log.write(f"[supervisor] exited with {code}; restart limit reached\n")
                return
            child.restarts.append(now)
            with child.log.open("a") as log:
                log.write(f"[supervisor] exited with {code}; restarting\n")
            await asyncio.sleep(min(2.0 ** len(child.restarts) / 4, 5.0))
            await self._spawn(child)

    async def start(self, req: dict[str, Any]) -> dict[str, Any]:
        """Start a runtime child for revision ``key`` on the given loopback ports."""
        key = str(req["key"])
        backend = Backend(key, "127.0.0.1", int(req["http_port"]), int(req["grpc_port"]))
        argv = [
            sys.executable,
            "-m",
            "amlpkg.runtime",
            "--model-repository",
            str(req["repository"]),
            "--host",
            backend.host,
            "--http-port",
            str(backend.http_port),
            "--grpc-port",
            str(backend.grpc_port),
            "--shutdown-timeout",
            str(float(req.get("shutdown_timeout_s", 10.0))),
        ]
        env = {str(k): str(v) for k, v in dict(req.get("env") or {}).items()}
        child = Child(backend, argv, Path(req["log"]), env)
        old = self.children.get(key)
        if old is not None:
            await self._stop_child(old, 0.0)
        self.children[key] = child
        await self._spawn(child)
        child.watcher = asyncio.create_task(self._watch(child))
        assert child.process is not None
        return {"pid": child.process.pid}

    async def switch(self, req: dict[str, Any]) -> dict[str, Any]:
        """Route new connections and requests to revision ``key``."""
        child = self.children.get(str(req["key"]))
        if child is None:
            raise KeyError(f"no backend {req['key']!r}")
        self.proxy.switch(child.backend)
        return {}

    async def _stop_child(self, child: Child, grace_s: float) -> int | None:
        # Wait until the backend has answered every HTTP request routed to it.
        deadline = time.monotonic() + grace_s
        while self.proxy.busy(child.backend.key):
            if time.monotonic() >= deadline:
                break
            await asyncio.sleep(0.05)
        child.stopping = True
        process = child.process
        if process is None or process.returncode is not None:
            return None if process is None else process.returncode
        process.send_signal(signal.SIGTERM)
        try:
            return await asyncio.wait_for(process.wait(), timeout=grace_s + 30.0)
        except TimeoutError:
            process.kill()
            return await process.wait()

    async def stop(self, req: dict[str, Any]) -> dict[str, Any]:
        """Stop revision ``key`` once drained (``grace_s`` at most), SIGTERM then wait."""
        child = self.children.pop(str(req["key"]), None)
        if child is None:
            return {"returncode": None}
        code = await self._stop_child(child, float(req.get("grace_s", 5.0)))
        return {"returncode": code}

    async def status(self, req: dict[str, Any]) -> dict[str, Any]:
        """The current backend and every child's process state."""
        backends = {}
        for key, child in self.children.items():
            process = child.process
            backends[key] = {
                "pid": None if process is None else process.pid,
                "alive": process is not None and process.returncode is None,
                "returncode": None if process is None else process.returncode,
                "restarts": len(child.restarts),
                "http_port": child.backend.http_port,
                "grpc_port": child.backend.grpc_port,
                "outstanding": self.proxy.outstanding.get(key, 0),
                "connections": self.proxy.connections.get(key, 0),
                "grpc_connections": len(self.proxy.grpc.get(key, ())),
            }
        current = self.proxy.current
        return {"pid": os.getpid(), "current": current and current.key, "backends": backends}

    async def shutdown(self, req: dict[str, Any]) -> dict[str, Any]:
        """Stop every child and end the supervisor."""
        grace = float(req.get("grace_s", 5.0))
        await asyncio.gather(*(self._stop_child(c, grace) for c in self.children.values()))
        self.children.clear()
        # Let the control connection answer before the loop ends.
        asyncio.get_running_loop().call_later(0.2, self.done.set)
        return {}

    async def control(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One control request: a JSON line with the token, answered by a JSON line."""
        try:
            line = await reader.readline()
            req = json.loads(line)
            if not secrets.compare_digest(str(req.get("token", "")), self.token):
                answer: dict[str, Any] = {"ok": False, "error": "bad token"}
            else:
                handler = {
                    "start": self.start,
                    "switch": self.switch,
                    "stop": self.stop,
                    "status": self.status,
                    "shutdown": self.shutdown,
                }.get(str(req.get("op")))
                if handler is None:
                    answer = {"ok": False, "error": f"unknown op {req.get('op')!r}"}
                else:
                    answer = {"ok": True, **await handler(req)}
        except Exception as exc:  # an answer, never a dead supervisor
            answer = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        writer.write(json.dumps(answer).encode() + b"\n")
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        writer.close()


def _write_private(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(data, handle)
    os.replace(tmp, path)


async def run(state_dir: Path, host: str, http_port: int, grpc_port: int) -> None:
    """Serve until ``shutdown`` or SIGTERM/SIGINT."""
    sup = Supervisor(state_dir, secrets.token_hex(16))
    http = await asyncio.start_server(sup.proxy.handle_http, host, http_port, backlog=1024)
    grpc = await asyncio.start_server(sup.proxy.handle_grpc, host, grpc_port, backlog=1024)
    control = await asyncio.start_server(sup.control, "127.0.0.1", 0)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(
            signum, lambda: asyncio.ensure_future(sup.shutdown({"grace_s": 5.0}))
        )
    _write_private(
        state_dir / CONTROL_FILE,
        {
            "pid": os.getpid(),
            "token": sup.token,
            "control_port": control.sockets[0].getsockname()[1],
            "host": host,
            "http_port": http.sockets[0].getsockname()[1],
            "grpc_port": grpc.sockets[0].getsockname()[1],
        },
    )
    try:
        await sup.done.wait()
    finally:
        for server in (http, grpc, control):
            server.close()
        with contextlib.suppress(FileNotFoundError):
            (state_dir / CONTROL_FILE).unlink()


def main(argv: list[str] | None = None) -> None:
    """Entry point of the supervisor process."""
    parser = argparse.ArgumentParser(prog="python -m amlpkg.packager.deploy.supervisor")
    parser.add_argument("state_dir", type=Path)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--http-port", type=int, default=0)
    parser.add_argument("--grpc-port", type=int, default=0)
    args = parser.parse_args(argv)
    asyncio.run(run(args.state_dir, args.host, args.http_port, args.grpc_port))


if __name__ == "__main__":
    main()
