"""Connection-level attacks: oversized headers, slowloris, half-sent bodies, idle sockets.

Each runs against a real server while a health probe must keep answering quickly.
"""

from __future__ import annotations

import socket
import threading
import time

import pytest

from tests.runtime.conftest import ServerProcess
from tests.runtime.reliability.conftest import GUARD_TIMEOUT_S, PROBE_LIMIT_S, best_probe_s

pytestmark = pytest.mark.slow
# How long past the guard timeout the server may take to close (timer + loaded machine).
CLOSE_SLACK_S = 3.0


def _connect(server: ServerProcess) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.http_port), timeout=10)
    sock.settimeout(GUARD_TIMEOUT_S + CLOSE_SLACK_S)
    return sock


def _closed_within(sock: socket.socket, seconds: float) -> tuple[bool, bytes]:
    """Whether the server closes ``sock`` within ``seconds``; what it sent before."""
    deadline = time.monotonic() + seconds
    received = b""
    while time.monotonic() < deadline:
        sock.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            return False, received
        except ConnectionResetError:
            return True, received
        if not chunk:
            return True, received
        received += chunk
    return False, received


def test_oversized_header_is_refused_while_probes_answer(guarded_server: ServerProcess) -> None:
    sock = _connect(guarded_server)
    sent = 0
    refused = threading.Event()

    def flood() -> None:
        nonlocal sent
        try:
            sock.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\nX-Big: ")
            chunk = b"a" * 65536
            while sent < 100 * 1024 * 1024:
                sock.sendall(chunk)
                sent += len(chunk)
        except OSError:
            refused.set()  # the server closed the connection

    sender = threading.Thread(target=flood, daemon=True)
    sender.start()
    assert best_probe_s(guarded_server.base_url) < PROBE_LIMIT_S
    sender.join(30)
    closed, answer = _closed_within(sock, CLOSE_SLACK_S)
    sock.close()
    assert refused.is_set() or closed
    assert sent < 16 * 1024 * 1024, f"{sent} header bytes were read before refusing"
    if answer:
        assert answer.startswith(b"HTTP/1.1 431")


def test_slowloris_connections_are_closed_while_probes_answer(
    guarded_server: ServerProcess,
) -> None:
    socks = [_connect(guarded_server) for _ in range(20)]
    for sock in socks:
        sock.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n")
    started = time.monotonic()
    closed = [False] * len(socks)
    # Keep dribbling a header byte now and then, as slowloris does.
    while time.monotonic() - started < GUARD_TIMEOUT_S + CLOSE_SLACK_S and not all(closed):
        for i, sock in enumerate(socks):
            if closed[i]:
                continue
            try:
                sock.sendall(b"X")
            except OSError:
                closed[i] = True
        assert best_probe_s(guarded_server.base_url, tries=1) < 5 * PROBE_LIMIT_S
        time.sleep(0.2)
    for i, sock in enumerate(socks):
        if not closed[i]:
            closed[i] = _closed_within(sock, 0.5)[0]
        sock.close()
    assert all(closed), f"{closed.count(False)} slowloris connections still open"
    assert best_probe_s(guarded_server.base_url) < PROBE_LIMIT_S


def test_half_sent_body_is_closed_after_the_read_timeout(guarded_server: ServerProcess) -> None:
    sock = _connect(guarded_server)
    sock.sendall(
        b'POST /v2/models/mlp/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{"inp'
    )
    closed, _ = _closed_within(sock, GUARD_TIMEOUT_S + CLOSE_SLACK_S)
    sock.close()
    assert closed
    assert best_probe_s(guarded_server.base_url) < PROBE_LIMIT_S


def test_silent_connection_is_closed(guarded_server: ServerProcess) -> None:
    sock = _connect(guarded_server)
    closed, answer = _closed_within(sock, GUARD_TIMEOUT_S + CLOSE_SLACK_S)
    sock.close()
    assert closed
    assert not answer or answer.startswith(b"HTTP/1.1 408")


def test_a_complete_slow_request_is_still_served(guarded_server: ServerProcess) -> None:
    """The guards close stalled requests, not slow-but-steady ones within the deadline."""
    sock = _connect(guarded_server)
    for part in (b"GET /v2/health/live HTTP/1.1\r\n", b"Host: x\r\n", b"\r\n"):
        sock.sendall(part)
        time.sleep(GUARD_TIMEOUT_S / 5)
    answer = sock.recv(4096)
    sock.close()
    assert answer.startswith(b"HTTP/1.1 200")
