"""The scoring server process: REST (uvicorn) + gRPC (grpc.aio) on one event loop.

:func:`serve` blocks until SIGTERM/SIGINT, then stops accepting, drains in-flight
requests (bounded by ``shutdown_timeout``), stops the data plane and returns.
:func:`running` is the same as an async context manager, for in-process use.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import signal
import socket
from collections.abc import AsyncIterator, Generator
from dataclasses import dataclass
from typing import Any

import uvicorn

from amlpkg.errors import UnavailableError
from amlpkg.runtime import cpus
from amlpkg.runtime.dataplane import DataPlane
from amlpkg.runtime.grpc import create_grpc_server
from amlpkg.runtime.limits import RequestLimits
from amlpkg.runtime.rest import RestApp, metrics_app
from amlpkg.runtime.rest.protocol import guarded_protocol
from amlpkg.runtime.settings import ServerSettings
from amlpkg.runtime.signing import Trust
from amlpkg.runtime.stats_peers import StatsPeers
from amlpkg.runtime.worker_context import WorkerContext

log = logging.getLogger("amlpkg.runtime.server")


class _Uvicorn(uvicorn.Server):
    """uvicorn without its own signal handling: :func:`serve` owns the signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


@dataclass(frozen=True, slots=True)
class RunningServer:
    """Where a started server listens, and its data plane."""

    host: str
    http_port: int
    grpc_port: int
    metrics_port: int | None
    dataplane: DataPlane


def cannot_listen(what: str, host: str, port: int, reason: object) -> UnavailableError:
    """The error for a port this server cannot bind."""
    return UnavailableError(
        f"cannot listen for {what} on {host}:{port}: {reason}",
        hint="pick a free port (0 lets the OS choose) or stop what is using it",
    )


def _bind(host: str, port: int, what: str, *, reuse_port: bool = False) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        sock = socket.create_server(
            (host, port), family=family, backlog=2048, reuse_port=reuse_port
        )
    except OSError as exc:
        raise cannot_listen(what, host, port, exc.strerror or exc) from None
    sock.setblocking(False)
    return sock


def request_limits(settings: ServerSettings) -> RequestLimits:
    """The per-request limits the data plane and the codecs enforce."""
    return RequestLimits(
        max_elements=settings.max_elements,
        max_inputs=settings.max_inputs,
        max_json_size=settings.max_json_size,
        max_json_depth=settings.max_json_depth,
        json_thread_threshold=settings.json_thread_threshold,
    )


def grpc_options(settings: ServerSettings, *, reuse_port: bool = False) -> list[tuple[str, int]]:
    """gRPC channel arguments: metadata size, streams, keepalive, connection idle/age."""
    ms = 1000
    options = [
        # Off unless worker processes share the port: with it, any process of this user
        # could bind the port too and take a share of the connections.
        ("grpc.so_reuseport", 1 if reuse_port else 0),
        ("grpc.max_metadata_size", settings.max_header_size),
        ("grpc.max_concurrent_streams", settings.grpc_max_concurrent_streams),
        ("grpc.max_connection_idle_ms", int(settings.grpc_max_connection_idle * ms)),
        ("grpc.keepalive_time_ms", int(settings.grpc_keepalive_time * ms)),
        ("grpc.keepalive_timeout_ms", int(settings.grpc_keepalive_timeout * ms)),
        # Clients may ping (tritonclient's keepalive) but not flood: 10 s between pings.
        ("grpc.http2.min_ping_interval_without_data_ms", 10 * ms),
        ("grpc.keepalive_permit_without_calls", 1),
    ]
    if settings.grpc_max_connection_age is not None:
        options += [
            ("grpc.max_connection_age_ms", int(settings.grpc_max_connection_age * ms)),
            ("grpc.max_connection_age_grace_ms", int(settings.shutdown_timeout * ms)),
        ]
    return options


def _uvicorn(app: Any, settings: ServerSettings) -> _Uvicorn:
    tls = settings.tls_certfile is not None
    protocol = guarded_protocol(
        max_header_size=settings.max_header_size,
        header_timeout=settings.http_header_timeout,
        read_timeout=settings.http_read_timeout,
    )
    config = uvicorn.Config(
        app,
        http=protocol,
        limit_concurrency=settings.http_max_connections,
        timeout_keep_alive=max(1, math.ceil(settings.http_keepalive_timeout)),
        loop="none",
        lifespan="off",
        log_config=None,
        access_log=False,
        # We never use the client's address, so uvicorn's X-Forwarded-For rewriting
        # would only cost time on every request.
        proxy_headers=False,
        server_header=False,
        timeout_graceful_shutdown=max(1, math.ceil(settings.shutdown_timeout)),
        ssl_certfile=str(settings.tls_certfile) if tls else None,
        ssl_keyfile=str(settings.tls_keyfile) if tls else None,
    )
    return _Uvicorn(config)


async def _start_uvicorn(server: _Uvicorn, sock: socket.socket) -> asyncio.Task[None]:
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            task.result()  # raises the startup error
            raise RuntimeError("uvicorn exited during startup")
        await asyncio.sleep(0.01)
    return task


@contextlib.asynccontextmanager
async def running(
    settings: ServerSettings,
    dataplane: DataPlane | None = None,
    *,
    worker: WorkerContext | None = None,
) -> AsyncIterator[RunningServer]:
    """Start the transports and the data plane; on exit drain and stop everything.

    ``worker``: this process is one of several sharing the ports (``SO_REUSEPORT``).
    """
    reuse_port = worker is not None
    dp = dataplane or DataPlane.from_repository(
        settings.model_repository,
        limits=request_limits(settings),
        strict_readiness=settings.strict_readiness,
        trust=Trust(settings.trust) if settings.require_signature and settings.trust else None,
        workers=settings.workers,
        shared_memory_book=worker.book if worker else None,
        stats_peers=StatsPeers(worker.stats, worker.index) if worker else None,
        state_dir=settings.state_dir,
        output_summaries=settings.output_summaries,
    )
    registry = getattr(dp, "metrics_registry", None)
    token = settings.token
    scheme = "https" if settings.tls_certfile else "http"
    tls = None
    if settings.tls_certfile and settings.tls_keyfile:
        tls = (settings.tls_keyfile.read_bytes(), settings.tls_certfile.read_bytes())

    if worker is not None:
        # A worker joins the shared ports only once its models are loaded: the kernel
        # hands connections to any listening worker, and one still loading would answer
        # them "not ready" while its siblings serve (a worker restarted after a crash too).
        await dp.start()
    http_sock = _bind(settings.host, settings.http_port, "HTTP", reuse_port=reuse_port)
    servers: list[tuple[_Uvicorn, asyncio.Task[None]]] = []
    try:
        grpc_server, grpc_port = create_grpc_server(
            dp,
            host=settings.host,
            port=settings.grpc_port,
            max_message_size=settings.grpc_max_message_size,
            auth_token=token,
            tls=tls,
            options=grpc_options(settings, reuse_port=reuse_port),
        )
    except RuntimeError as exc:  # grpc reports a failed bind as RuntimeError
        http_sock.close()
        raise cannot_listen("gRPC", settings.host, settings.grpc_port, exc) from None
    metrics_port = None
    try:
        rest = RestApp(
            dp,
            max_request_size=settings.max_request_size,
            auth_token=token,
            metrics_registry=registry,
        )
        http = _uvicorn(rest, settings)
        servers.append((http, await _start_uvicorn(http, http_sock)))
        http_port = http_sock.getsockname()[1]
        log.info("listening: %s://%s:%d (KServe v2 REST)", scheme, settings.host, http_port)
        await grpc_server.start()
        log.info(
            "listening: %s:%d (KServe v2 gRPC, TLS %s)",
            settings.host,
            grpc_port,
            "on" if tls else "off",
        )
        if settings.metrics_port is not None and registry is not None:
            metrics_sock = _bind(
                settings.host, settings.metrics_port, "metrics", reuse_port=reuse_port
            )
            metrics = _uvicorn(metrics_app(registry), settings)
            servers.append((metrics, await _start_uvicorn(metrics, metrics_sock)))
            metrics_port = metrics_sock.getsockname()[1]
            log.info("listening: %s://%s:%d/metrics", scheme, settings.host, metrics_port)
        # Listeners first, so liveness answers while the models load; readiness
        # turns true only when the data plane has tried every model.
        if worker is None:
            await dp.start()
        log.info("ready")
        yield RunningServer(settings.host, http_port, grpc_port, metrics_port, dp)
    finally:
        log.info(
            "shutting down: draining in-flight requests (up to %.0fs)", settings.shutdown_timeout
        )
        for server, _ in servers:
            server.should_exit = True
        await asyncio.gather(
            grpc_server.stop(settings.shutdown_timeout),
            *(task for _, task in servers),
            return_exceptions=True,
        )
        await dp.stop(drain_timeout=settings.shutdown_timeout)
        log.info("stopped")


async def serve_async(settings: ServerSettings, worker: WorkerContext | None = None) -> None:
    """Run until SIGTERM or SIGINT, then shut down gracefully."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with running(settings, worker=worker):
            await stop.wait()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)


def configure_logging(settings: ServerSettings, prefix: str = "") -> None:
    """The server's log format at its level (``prefix`` names a worker process)."""
    logging.basicConfig(
        level=settings.log_level.upper(),
        format=f"%(asctime)s %(levelname)s {prefix}%(name)s: %(message)s",
    )


def run_loop(settings: ServerSettings, worker: WorkerContext | None = None) -> None:
    """Serve on a fresh event loop (uvloop when installed) until a signal."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop comes with uvicorn[standard]
        asyncio.run(serve_async(settings, worker))
    else:
        uvloop.run(serve_async(settings, worker))


def serve(settings: ServerSettings) -> None:
    """Run the server (``workers`` processes when above 1); blocks until a signal."""
    configure_logging(settings)
    if settings.workers > 1:
        from amlpkg.runtime.workers import serve_workers

        serve_workers(settings)
        return
    cpus.set_budget(settings.cpus)
    run_loop(settings)
