"""A real TLS mosquitto standing in for the IoT Hub MQTT endpoint, and a twin/method responder.

azure-iot-device always dials port 8883 (443 for websockets), so the broker listens
on 127.0.0.1:8883 with a self-signed CA and a server certificate for ``localhost``;
a second, plain listener on a free port serves the responder and the collector's
bridge. Persistence is on so that a restarted broker keeps the bridge's session.
"""

from __future__ import annotations

import datetime
import getpass
import json
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

from tests.services import free_port

IOTHUB_PORT = 8883


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        # like mosquitto itself: connections in TIME_WAIT must not count as taken
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def make_tls(folder: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for ``localhost`` signed by it: (ca, cert, key)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "amlpkg test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    paths = folder / "ca.pem", folder / "server.pem", folder / "server.key"
    paths[0].write_bytes(ca.public_bytes(pem))
    paths[1].write_bytes(cert.public_bytes(pem))
    paths[2].write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return paths


class Broker:
    """mosquitto with TLS on 8883 and a plain listener for test clients; stop/start at will."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.ca, cert, key = make_tls(folder)
        self.plain_port = free_port()
        (folder / "data").mkdir()
        self.conf = folder / "mosquitto.conf"
        self.conf.write_text(
            "\n".join(
                [
                    # as root, mosquitto would switch to a user that cannot read tmp_path
                    f"user {getpass.getuser()}",
                    "per_listener_settings false",
                    "allow_anonymous true",
                    "persistence true",
                    f"persistence_location {folder / 'data'}/",
                    "autosave_interval 1",
                    f"log_dest file {folder / 'mosquitto.log'}",
                    f"listener {IOTHUB_PORT} 127.0.0.1",
                    f"cafile {self.ca}",
                    f"certfile {cert}",
                    f"keyfile {key}",
                    "require_certificate false",
                    f"listener {self.plain_port} 127.0.0.1",
                    "",
                ]
            )
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self.proc = subprocess.Popen([binary, "-c", str(self.conf)])
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if not port_free(self.plain_port) and not port_free(IOTHUB_PORT):
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        log_file = self.folder / "mosquitto.log"
        log = log_file.read_text(errors="replace") if log_file.exists() else "(no log)"
        raise RuntimeError(f"mosquitto did not start:\n{log[-2000:]}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None


def connection_string(device: str, module: str) -> str:
    # The key is never checked by mosquitto; the SDK only needs a valid base64 one.
    return (
        f"HostName=localhost;DeviceId={device};ModuleId={module};"
        "SharedAccessKey=dGVzdGtleXRlc3RrZXl0ZXN0a2V5dGVzdGtleQ=="
    )


class Responder:
    """Answers the ``$iothub`` twin and method topics as IoT Hub would, for one device."""

    def __init__(self, port: int) -> None:
        self.desired: dict[str, Any] = {"$version": 1}
        self.reported: dict[str, Any] = {}
        self.reported_patches: list[dict[str, Any]] = []
        self._cond = threading.Condition()
        self._method_answers: dict[str, tuple[int, Any]] = {}
        self.client = mqtt.Client(client_id=f"responder-{uuid.uuid4().hex[:8]}")
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _on_connect(self, client: mqtt.Client, *args: Any) -> None:
        for topic in (
            "$iothub/twin/GET/#",
            "$iothub/twin/PATCH/properties/reported/#",
            "$iothub/methods/res/#",
        ):
            client.subscribe(topic, qos=1)

    @staticmethod
    def _rid(topic: str) -> str:
        query = topic.split("?", 1)[1]
        return dict(part.split("=", 1) for part in query.split("&"))["$rid"]

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        topic = msg.topic
        if topic.startswith("$iothub/twin/GET/"):
            body = json.dumps({"desired": self.desired, "reported": self.reported})
            client.publish(f"$iothub/twin/res/200/?$rid={self._rid(topic)}", body, qos=1)
        elif topic.startswith("$iothub/twin/PATCH/properties/reported/"):
            patch = json.loads(msg.payload)
            with self._cond:
                self.reported.update(patch)
                self.reported_patches.append(patch)
                self._cond.notify_all()
            version = len(self.reported_patches) + 1
            client.publish(
                f"$iothub/twin/res/204/?$rid={self._rid(topic)}&$version={version}", b"", qos=1
            )
        elif topic.startswith("$iothub/methods/res/"):
            status = int(topic.split("/")[3])
            payload = json.loads(msg.payload) if msg.payload else None
            with self._cond:
                self._method_answers[self._rid(topic)] = (status, payload)
                self._cond.notify_all()

    def patch_desired(self, patch: dict[str, Any]) -> None:
        self.desired.update(patch)
        self.desired["$version"] += 1
        version = self.desired["$version"]
        body = json.dumps({**patch, "$version": version})
        self.client.publish(
            f"$iothub/twin/PATCH/properties/desired/?$version={version}", body, qos=1
        ).wait_for_publish(5)

    def call_method(self, name: str, payload: Any = None, timeout: float = 20) -> tuple[int, Any]:
        rid = uuid.uuid4().hex[:12]
        self.client.publish(f"$iothub/methods/POST/{name}/?$rid={rid}", json.dumps(payload), qos=1)
        with self._cond:
            if not self._cond.wait_for(lambda: rid in self._method_answers, timeout):
                raise TimeoutError(f"method {name} got no answer in {timeout}s")
            return self._method_answers.pop(rid)

    def wait_reported(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 30
    ) -> dict[str, Any]:
        with self._cond:
            if not self._cond.wait_for(lambda: predicate(self.reported), timeout):
                raise TimeoutError(f"reported properties never matched: {self.reported}")
            return dict(self.reported)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()
