"""Shared test helpers for real services: skip on a laptop, fail in CI.

A test that needs a service (Docker engine, the local registry, mosquitto, sshd)
or a binary calls :func:`require`. Without it the test is skipped, except when
``CI=true``: there ``.ci/run`` has started the service, so its absence is a failure.
"""

from __future__ import annotations

import os
import socket
import urllib.request

import pytest

REGISTRY = "127.0.0.1:5000"


def require(condition: bool, reason: str) -> None:
    """Continue when ``condition``; else skip (laptop) or fail (CI), naming ``reason``."""
    if condition:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (required when CI=true)")
    pytest.skip(reason)


def free_port() -> int:
    """A TCP port free right now on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def docker_available() -> bool:
    """Whether a Docker engine answers ``GET /_ping`` at ``DOCKER_HOST`` or the default socket.

    A plain socket in a ``with`` block, not the docker SDK: the SDK's version probe leaves
    its unix socket open when no engine answers, and the ``ResourceWarning`` then fails an
    unrelated test under ``-W error``.
    """
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    ping = b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n"
    try:
        if host.startswith("unix://"):
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(5)
                sock.connect(host[len("unix://") :])
                sock.sendall(ping)
                return sock.recv(64).split(b" ")[1:2] == [b"200"]
        if host.startswith("tcp://"):
            url = "http://" + host[len("tcp://") :] + "/_ping"
            with urllib.request.urlopen(url, timeout=5) as response:
                return int(response.status) == 200
    except OSError:
        return False
    return False


def registry_available(address: str = REGISTRY) -> bool:
    """Whether the local OCI registry answers ``/v2/``."""
    try:
        with urllib.request.urlopen(f"http://{address}/v2/", timeout=3) as response:
            return int(response.status) == 200
    except OSError:
        return False
