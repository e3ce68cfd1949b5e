"""The HTTP protocol sends each response in one write, and every HTTP/1.1 form still works.

The unit tests record what :class:`OneWriteResponse` hands its transport (a recording
stand-in: the write boundaries are what is checked, and a kernel socket does not keep
them). The server tests speak raw HTTP/1.1 to a real server: HEAD (no body write),
``Expect: 100-continue`` (an interim answer that must not be held), pipelined requests and
keep-alive.
"""

from __future__ import annotations

import socket
from types import SimpleNamespace
from typing import Any

import orjson

from amlpkg.runtime.rest.protocol import OneWriteResponse
from tests.runtime.conftest import ServerProcess


class _Recorder:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str) -> Any:
        return ("127.0.0.1", 1) if name == "peername" else None


def _wrapped() -> tuple[_Recorder, Any, list[str], OneWriteResponse]:
    transport = _Recorder()
    events: list[str] = []
    cycle = SimpleNamespace(response_started=False, on_response=lambda: events.append("done"))
    return transport, cycle, events, OneWriteResponse(transport, cycle)  # type: ignore[arg-type]


def test_head_and_body_go_out_in_one_write() -> None:
    transport, cycle, events, wrapped = _wrapped()
    cycle.response_started = True
    wrapped.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
    assert transport.writes == []
    wrapped.write(b"{}")
    cycle.on_response()
    assert transport.writes == [b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}"]
    assert events == ["done"]


def test_interim_answer_is_not_held() -> None:
    transport, _cycle, _, wrapped = _wrapped()
    wrapped.write(b"HTTP/1.1 100 Continue\r\n\r\n")  # before the response started
    assert transport.writes == [b"HTTP/1.1 100 Continue\r\n\r\n"]


def test_a_response_without_a_body_write_is_sent_when_it_completes() -> None:
    transport, cycle, events, wrapped = _wrapped()
    cycle.response_started = True
    wrapped.write(b"HTTP/1.1 204 No Content\r\n\r\n")
    cycle.on_response()
    assert transport.writes == [b"HTTP/1.1 204 No Content\r\n\r\n"]
    assert events == ["done"]


def test_close_and_other_uses_release_the_head_first() -> None:
    transport, cycle, _, wrapped = _wrapped()
    cycle.response_started = True
    wrapped.write(b"HEAD")
    assert wrapped.get_extra_info("peername") == ("127.0.0.1", 1)
    assert transport.writes == [b"HEAD"]
    wrapped.write(b"more")
    wrapped.close()
    assert transport.writes == [b"HEAD", b"more"] and transport.closed


def _exchange(server: ServerProcess, data: bytes, *, expect_responses: int) -> bytes:
    """Send ``data`` and read until ``expect_responses`` complete responses arrived."""
    with socket.create_connection(("127.0.0.1", server.http_port), timeout=10) as sock:
        sock.sendall(data)
        received = b""
        while received.count(b"HTTP/1.1 ") < expect_responses or not _complete(received):
            chunk = sock.recv(65536)
            assert chunk, f"connection closed early after {received!r}"
            received += chunk
        return received


def _complete(received: bytes) -> bool:
    """Whether the last response in ``received`` has all its content-length bytes."""
    head_start = received.rfind(b"HTTP/1.1 ")
    head_end = received.find(b"\r\n\r\n", head_start)
    if head_end < 0:
        return False
    head = received[head_start:head_end].lower()
    length = 0
    for line in head.split(b"\r\n"):
        if line.startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    if b" 100 continue" in head.split(b"\r\n")[0]:
        return False
    return len(received) - head_end - 4 >= length


def test_head_request_gets_headers_and_no_body(server: ServerProcess) -> None:
    request = b"HEAD /v2/health/ready HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
    with socket.create_connection(("127.0.0.1", server.http_port), timeout=10) as sock:
        sock.sendall(request)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    assert received.startswith(b"HTTP/1.1 200 ")
    assert received.endswith(b"\r\n\r\n")  # headers only


def test_expect_continue_gets_the_interim_answer_before_the_body(server: ServerProcess) -> None:
    body = orjson.dumps({"inputs": [{"name": "INPUT0", "datatype": "FP32", "shape": [1, 4]}]})
    head = (
        b"POST /v2/models/identity_fp32/infer HTTP/1.1\r\nhost: x\r\n"
        b"expect: 100-continue\r\ncontent-type: application/json\r\n"
        b"content-length: " + str(len(body)).encode() + b"\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", server.http_port), timeout=10) as sock:
        sock.sendall(head)
        interim = sock.recv(65536)  # the server must answer before the body is sent
        assert interim.startswith(b"HTTP/1.1 100 Continue"), interim
        sock.sendall(body)
        answer = b""
        while not (answer.startswith(b"HTTP/1.1 ") and _complete(answer)):
            chunk = sock.recv(65536)
            assert chunk
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 400 "), answer  # no data: a clear client error
    assert b"INPUT0" in answer


def test_pipelined_and_kept_alive_requests_each_get_their_whole_response(
    server: ServerProcess,
) -> None:
    one = b"GET /v2/health/live HTTP/1.1\r\nhost: x\r\n\r\n"
    meta = b"GET /v2 HTTP/1.1\r\nhost: x\r\n\r\n"
    received = _exchange(server, one + meta + one, expect_responses=3)
    responses = received.split(b"HTTP/1.1 ")[1:]
    assert [r[:3] for r in responses] == [b"200"] * 3
    assert b'"extensions"' in responses[1]
