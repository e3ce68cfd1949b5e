"""Every HTTP/1.1 form works through the guarded protocol, spoken raw to a real server:
HEAD (headers only), ``Expect: 100-continue`` (the interim answer comes before the body is
sent), pipelined requests and keep-alive."""

from __future__ import annotations

import socket

import orjson

from tests.runtime.conftest import ServerProcess


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
