"""Serve per-device desired-state documents over HTTP for ``amlpkg-edge-agent --standalone``.

``GET /devices/<id>.json`` answers ``<desired_dir>/<id>.json`` (404 when absent), so
each agent polls ``http://HOST:PORT/devices/<its id>.json``. What each device was
sent is kept (``served``) so a test or an audit can say which devices ever got a
version.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from amlpkg.errors import UnavailableError


@dataclass
class DesiredServer:
    """A started server: its base URL and, per device, every model ref it was sent."""

    url: str
    served: dict[str, set[str]] = field(default_factory=dict)

    def device_url(self, device_id: str) -> str:
        """The URL ``device_id``'s agent polls."""
        return f"{self.url}/devices/{device_id}.json"


def _model_ref(body: bytes) -> str | None:
    try:
        model = json.loads(body).get("model") or {}
        return f"{model['name']}:{model['version']}"
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


@contextlib.contextmanager
def serving_desired(
    desired_dir: Path, *, host: str = "127.0.0.1", port: int = 0
) -> Iterator[DesiredServer]:
    """Serve ``desired_dir`` read-only until the block ends."""
    lock = threading.Lock()
    state = DesiredServer(url="")

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass  # one poll per device every few seconds: not worth a log line each

        def do_GET(self) -> None:
            name = self.path.removeprefix("/devices/")
            if (
                name == self.path
                or "/" in name
                or name.startswith(".")
                or not name.endswith(".json")
            ):
                self.send_error(404)
                return
            try:
                body = (desired_dir / name).read_bytes()
            except OSError:
                self.send_error(404)
                return
            ref = _model_ref(body)
            if ref is not None:
                with lock:
                    state.served.setdefault(name.removesuffix(".json"), set()).add(ref)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    try:
        server = ThreadingHTTPServer((host, port), Handler)
    except OSError as exc:
        raise UnavailableError(f"cannot serve desired state on {host}:{port}: {exc}") from None
    server.daemon_threads = True
    state.url = f"http://{host}:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, name="desired-http", daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
