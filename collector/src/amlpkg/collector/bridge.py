"""The MQTT bridge: device telemetry from ``devices/+/modules/+/messages/events/#`` into the store.

It keeps a persistent session (fixed client id, ``clean_session=False``, QoS 1), so a
broker with persistence queues the messages published while the bridge is away;
paho reconnects on its own and :meth:`_on_connect` re-subscribes.
"""

from __future__ import annotations

import json
import logging
import ssl
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt  # type: ignore[import-untyped]

from amlpkg.collector.store import TelemetryStore, row_from_device_message
from amlpkg.errors import AmlpkgError, InvalidArgumentError

log = logging.getLogger(__name__)
TOPIC = "devices/+/modules/+/messages/events/#"


@dataclass
class BridgeCounters:
    """What the bridge has seen since it started."""

    received: int = 0
    stored: int = 0
    duplicates: int = 0
    rejected: int = 0


class MqttBridge:
    """Subscribes to device telemetry and stores it, deduplicated by message id."""

    def __init__(
        self,
        store: TelemetryStore,
        host: str,
        port: int,
        *,
        ca_file: Path | None = None,
        client_id: str = "amlpkg-telemetry-bridge",
        username: str | None = None,
        password: str | None = None,
    ) -> None:
        self.store = store
        self.host, self.port = host, port
        self.counters = BridgeCounters()
        self.connected = threading.Event()
        self._client = mqtt.Client(client_id=client_id, clean_session=False)
        if ca_file is not None:
            self._client.tls_set(ca_certs=str(ca_file), tls_version=ssl.PROTOCOL_TLS_CLIENT)
        if username is not None:
            self._client.username_pw_set(username, password)
        self._client.reconnect_delay_set(min_delay=1, max_delay=5)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message

    def start(self) -> None:
        """Connect in the background (retrying until the broker answers)."""
        try:
            self._client.connect_async(self.host, self.port, keepalive=30)
        except (OSError, ValueError) as exc:
            raise InvalidArgumentError(
                f"cannot reach the MQTT broker at {self.host}:{self.port}: {exc}",
                hint="check --mqtt-host/--mqtt-port",
            ) from None
        self._client.loop_start()

    def stop(self) -> None:
        """Disconnect and stop the network thread."""
        self._client.disconnect()
        self._client.loop_stop()

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, rc: int) -> None:
        if rc != 0:
            log.warning("MQTT broker refused the bridge: %s", mqtt.connack_string(rc))
            return
        client.subscribe(TOPIC, qos=1)
        self.connected.set()

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, rc: int) -> None:
        self.connected.clear()

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        self.counters.received += 1
        parts = msg.topic.split("/")
        module = parts[3] if len(parts) > 3 else None
        try:
            body = json.loads(msg.payload)
            if not isinstance(body, dict):
                raise InvalidArgumentError("device telemetry must be a JSON object")
            body.setdefault("device", parts[1] if len(parts) > 1 else None)
            new = self.store.add([row_from_device_message(body, module)])
        except (ValueError, AmlpkgError) as exc:
            self.counters.rejected += 1
            log.warning("rejected telemetry on %s: %s", msg.topic, exc)
            return
        if new:
            self.counters.stored += 1
        else:
            self.counters.duplicates += 1
