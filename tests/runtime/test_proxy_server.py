"""The proxy as its own process (``python -m amlpkg.runtime.proxy``) in front of real
HTTP servers on free ports: routes by weight, the preview ports, the control socket,
and routes that survive a restart (what a Docker deployment's proxy container runs)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.services import free_port


def _backend(key: str) -> ThreadingHTTPServer:
    """An HTTP/1.1 keep-alive server that answers every GET with its key."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body go out in two writes

        def do_GET(self) -> None:
            body = key.encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


class _Proxy:
    """The proxy process with its state folder and four ports."""

    def __init__(self, state: Path) -> None:
        self.state = state
        names = ("http", "grpc", "preview_http", "preview_grpc")
        self.ports = {name: free_port() for name in names}
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        argv = [sys.executable, "-m", "amlpkg.runtime.proxy", "serve", "--state", str(self.state)]
        argv += ["--host", "127.0.0.1"]
        for name, port in self.ports.items():
            argv += [f"--{name.replace('_', '-')}-port", str(port)]
        self.process = subprocess.Popen(argv)
        deadline = time.monotonic() + 20
        while self.ctl({"op": "status"})[0] != 0:
            assert self.process.poll() is None, "the proxy exited"
            assert time.monotonic() < deadline, "the proxy did not answer"
            time.sleep(0.1)

    def stop(self) -> int:
        assert self.process is not None
        self.process.terminate()
        return self.process.wait(10)

    def ctl(self, request: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        argv = [sys.executable, "-m", "amlpkg.runtime.proxy", "ctl", "--state", str(self.state)]
        done = subprocess.run([*argv, json.dumps(request)], capture_output=True, check=False)
        return done.returncode, json.loads(done.stdout)

    def url(self, which: str = "http") -> str:
        return f"http://127.0.0.1:{self.ports[which]}/"


def _route(server: ThreadingHTTPServer, key: str, weight: float = 1.0) -> dict[str, Any]:
    return {"key": key, "host": "127.0.0.1", "http_port": server.server_address[1],
            "grpc_port": 1, "weight": weight}  # fmt: skip


@pytest.fixture
def proxy(tmp_path: Path) -> Iterator[_Proxy]:
    running = _Proxy(tmp_path / "state")
    running.start()
    yield running
    if running.process is not None and running.process.poll() is None:
        running.stop()


def test_weights_split_requests_and_routes_survive_a_restart(proxy: _Proxy) -> None:
    blue, green = _backend("blue"), _backend("green")
    try:
        with httpx.Client() as client:  # one keep-alive connection throughout
            assert proxy.ctl({"op": "route", "routes": [_route(blue, "blue")]})[0] == 0
            assert {client.get(proxy.url()).text for _ in range(20)} == {"blue"}

            routes = [_route(blue, "blue", 90), _route(green, "green", 10)]
            assert proxy.ctl({"op": "route", "routes": routes})[0] == 0
            hits = [client.get(proxy.url()).text for _ in range(400)]
            # Binomial(400, 0.1): mean 40, standard deviation 6.
            assert 20 <= hits.count("green") <= 80, hits.count("green")
            assert hits.count("blue") + hits.count("green") == 400

            # The preview ports reach only the backend being verified.
            assert proxy.ctl({"op": "preview", "backend": _route(green, "green")})[0] == 0
            assert {client.get(proxy.url("preview_http")).text for _ in range(10)} == {"green"}

        assert proxy.stop() == 0  # SIGTERM ends it cleanly
        proxy.start()
        code, status = proxy.ctl({"op": "status"})
        assert code == 0 and [(r["key"], r["weight"]) for r in status["routes"]] == [
            ("blue", 90.0),
            ("green", 10.0),
        ]
        assert status["preview"] == []  # a preview is for one deploy, not kept
        with pytest.raises(httpx.TransportError):
            httpx.get(proxy.url("preview_http"))
        assert proxy.ctl({"op": "drain", "key": "green", "grace_s": 5})[1]["drained"] is True
    finally:
        for server in (blue, green):
            server.shutdown()
            server.server_close()


def test_bad_control_requests_are_refused_and_change_nothing(proxy: _Proxy) -> None:
    blue = _backend("blue")
    try:
        assert proxy.ctl({"op": "route", "routes": [_route(blue, "blue")]})[0] == 0
        code, answer = proxy.ctl({"op": "route", "routes": [_route(blue, "blue", -1)]})
        assert code == 1 and "positive weight" in answer["error"]
        code, answer = proxy.ctl({"op": "route", "routes": [{"key": "x"}]})
        assert code == 1 and "KeyError" in answer["error"]
        code, answer = proxy.ctl({"op": "reboot"})
        assert code == 1 and "unknown op" in answer["error"]
        assert httpx.get(proxy.url()).text == "blue"
        routes = json.loads((proxy.state / "routes.json").read_text())["routes"]
        assert [r["key"] for r in routes] == ["blue"]
        assert (proxy.state / "control.sock").stat().st_mode & 0o077 == 0
    finally:
        blue.shutdown()
        blue.server_close()


def test_ctl_without_a_running_proxy_says_so(tmp_path: Path) -> None:
    idle = _Proxy(tmp_path)
    code, answer = idle.ctl({"op": "status"})
    assert code == 1 and "FileNotFoundError" in answer["error"]
