"""``--workers N``: N server processes sharing the HTTP, gRPC and metrics ports.

One event loop decodes, batches and encodes at most one core's worth of requests; on a
machine where that is the limit (small models, many clients), more processes serve more.
This parent process:

- reserves the ports: it binds each with ``SO_REUSEPORT`` and never listens on it, so
  a port 0 becomes one fixed port every worker binds too, and the kernel spreads new
  connections over the workers (the parent's socket, not listening, gets none);
- makes a private folder (mode 0700) for what the workers share: prometheus_client's
  multiprocess files (any worker's ``/metrics`` reports all of them), the shared
  memory registrations (a region registered through one worker is found by all) and
  the sockets through which a worker adds its siblings' model statistics to its own;
- starts the workers (``spawn``: no state forked from the parent) and gives each its
  share of the CPUs for ONNX Runtime's threads;
- restarts a worker that dies, unless workers keep dying right after they start (a
  broken repository, a port taken): then it stops them all and exits with an error;
- forwards SIGTERM/SIGINT, waits for the workers to drain, and removes the folder.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import multiprocessing.connection
import os
import shutil
import signal
import socket
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from amlpkg.errors import UnavailableError
from amlpkg.runtime import cpus
from amlpkg.runtime.metrics import MULTIPROC_ENV
from amlpkg.runtime.server import cannot_listen
from amlpkg.runtime.settings import ServerSettings
from amlpkg.runtime.worker_context import WorkerContext

log = logging.getLogger("amlpkg.runtime.workers")

# A worker that exits within this many seconds of its start failed to start.
EARLY_EXIT_S = 10.0
# This many early exits in a row stop the server.
MAX_EARLY_EXITS = 3


def reserve_port(host: str, port: int, what: str) -> socket.socket:
    """A socket bound to ``host:port`` with ``SO_REUSEPORT``, not listening."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise cannot_listen(what, host, port, exc.strerror or exc) from None
    return sock


def worker_cpus(settings: ServerSettings) -> int:
    """Each worker's share of the server's CPUs (at least one)."""
    total = settings.cpus if settings.cpus is not None else cpus.machine_cpus()
    return max(1, total // settings.workers)


def _stop_with_parent(parent: int) -> None:
    """Drain and stop this worker when the parent is gone (killed with SIGKILL)."""
    while os.getppid() == parent:
        time.sleep(1.0)
    os.kill(os.getpid(), signal.SIGTERM)


def _worker_main(settings: ServerSettings, context: WorkerContext, budget: int) -> None:
    """A worker process: one ordinary server on the shared ports."""
    from amlpkg.runtime.server import configure_logging, run_loop

    configure_logging(settings, prefix=f"[worker {context.index}] ")
    cpus.set_budget(budget)
    threading.Thread(
        target=_stop_with_parent, args=(context.parent,), name="parent-watch", daemon=True
    ).start()
    try:
        run_loop(settings, context)
    except Exception as exc:
        logging.getLogger("amlpkg.runtime.workers").error("worker failed: %s", exc)
        raise SystemExit(2) from None


class _Workers:
    def __init__(self, settings: ServerSettings, folder: Path) -> None:
        self.settings = settings
        self.context = multiprocessing.get_context("spawn")
        self.book = folder / "shm"
        self.stats = folder / "stats"
        self.metrics = folder / "metrics"
        self.processes: dict[int, Any] = {}
        self.started: dict[int, float] = {}
        self.early_exits = 0
        self.budget = worker_cpus(settings)

    def start(self, index: int) -> None:
        context = WorkerContext(index, self.settings.workers, self.book, self.stats, os.getpid())
        process = self.context.Process(
            target=_worker_main,
            args=(self.settings, context, self.budget),
            name=f"amlpkg-worker-{index}",
        )
        process.start()
        self.processes[index] = process
        self.started[index] = time.monotonic()

    def reap(self) -> bool:
        """Restart workers that exited; False when they keep failing to start."""
        from prometheus_client import multiprocess

        for index, process in list(self.processes.items()):
            if process.is_alive():
                continue
            process.join()
            with contextlib.suppress(OSError):
                multiprocess.mark_process_dead(process.pid, str(self.metrics))
            lived = time.monotonic() - self.started[index]
            log.error("worker %d (pid %d) exited with %s", index, process.pid, process.exitcode)
            self.early_exits = self.early_exits + 1 if lived < EARLY_EXIT_S else 0
            if self.early_exits >= MAX_EARLY_EXITS:
                return False
            self.start(index)
        return True

    def stop(self, timeout: float) -> None:
        for process in self.processes.values():
            if process.is_alive() and process.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for process in self.processes.values():
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                process.kill()
                process.join()


def serve_workers(settings: ServerSettings) -> None:
    """Run ``settings.workers`` worker processes until SIGTERM/SIGINT."""
    folder = Path(tempfile.mkdtemp(prefix="amlpkg-workers-"))
    reserved: list[socket.socket] = []
    try:
        ports: dict[str, int | None] = {}
        for what, field in (("HTTP", "http_port"), ("gRPC", "grpc_port")):
            sock = reserve_port(settings.host, getattr(settings, field), what)
            reserved.append(sock)
            ports[field] = sock.getsockname()[1]
        if settings.metrics_port is not None:
            sock = reserve_port(settings.host, settings.metrics_port, "metrics")
            reserved.append(sock)
            ports["metrics_port"] = sock.getsockname()[1]
        fixed = settings.model_copy(update=ports)
        (folder / "shm").mkdir()
        (folder / "stats").mkdir()
        (folder / "metrics").mkdir()
        # Read by prometheus_client when each worker imports it.
        os.environ[MULTIPROC_ENV] = str(folder / "metrics")
        _supervise(fixed, folder)
    finally:
        os.environ.pop(MULTIPROC_ENV, None)
        for sock in reserved:
            sock.close()
        shutil.rmtree(folder, ignore_errors=True)


def _supervise(settings: ServerSettings, folder: Path) -> None:
    stopping: list[int] = []

    def on_signal(signum: int, frame: object) -> None:
        del frame
        stopping.append(signum)

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    workers = _Workers(settings, folder)
    try:
        for index in range(settings.workers):
            workers.start(index)
        log.info(
            "%d workers on HTTP %s:%d and gRPC %s:%d, %d CPU(s) each",
            settings.workers,
            settings.host,
            settings.http_port,
            settings.host,
            settings.grpc_port,
            workers.budget,
        )
        while not stopping:
            sentinels = [p.sentinel for p in workers.processes.values()]
            multiprocessing.connection.wait(sentinels, timeout=0.5)
            if not stopping and not workers.reap():
                raise UnavailableError(
                    f"the workers keep exiting within {EARLY_EXIT_S:.0f} s of their start",
                    hint="see the workers' errors above (model repository, ports, settings)",
                )
    finally:
        log.info("stopping %d workers", settings.workers)
        workers.stop(settings.shutdown_timeout + 5.0)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
