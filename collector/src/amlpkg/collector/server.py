"""Run the collector: the HTTP receiver (uvicorn in a thread) and the MQTT bridge."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import uvicorn

from amlpkg.collector.app import create_app
from amlpkg.collector.bridge import MqttBridge
from amlpkg.collector.store import TelemetryStore
from amlpkg.errors import UnavailableError
from amlpkg.store.workspace import Workspace


@dataclass(frozen=True)
class MqttOptions:
    """Where the bridge subscribes to device telemetry."""

    host: str
    port: int
    ca_file: Path | None = None
    client_id: str = "amlpkg-telemetry-bridge"


@dataclass
class RunningCollector:
    """A started collector: its URL, its store and its bridge (when MQTT is on)."""

    url: str
    store: TelemetryStore
    bridge: MqttBridge | None


@contextlib.contextmanager
def running_collector(
    ws: Workspace, *, host: str = "127.0.0.1", port: int = 4318, mqtt: MqttOptions | None = None
) -> Iterator[RunningCollector]:
    """Serve OTLP/HTTP (default port 4318, as OpenTelemetry expects) and bridge MQTT."""
    store = TelemetryStore(ws)
    try:
        sock = socket.create_server((host, port))
    except OSError as exc:
        raise UnavailableError(
            f"cannot listen for OTLP on {host}:{port}: {exc.strerror or exc}",
            hint="pick a free --port (0 lets the OS choose)",
        ) from None
    config = uvicorn.Config(
        create_app(store), log_config=None, access_log=False, lifespan="off", loop="asyncio"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    bridge = None
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise UnavailableError("the telemetry HTTP receiver did not start")
            time.sleep(0.02)
        if mqtt is not None:
            bridge = MqttBridge(
                store, mqtt.host, mqtt.port, ca_file=mqtt.ca_file, client_id=mqtt.client_id
            )
            bridge.start()
        yield RunningCollector(f"http://{host}:{sock.getsockname()[1]}", store, bridge)
    finally:
        if bridge is not None:
            bridge.stop()
        server.should_exit = True
        thread.join(10)
        sock.close()
