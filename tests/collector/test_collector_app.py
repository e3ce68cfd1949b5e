"""The collector's HTTP answers in-process: JSON for every error, bodies bounded before read."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from amlpkg.collector import app as collector_app
from amlpkg.collector.app import MAX_DEVICE_BODY, PROTOBUF, create_app
from amlpkg.collector.store import TelemetryStore
from amlpkg.store.workspace import Workspace


def _post(store: TelemetryStore, path: str, **kwargs: Any) -> httpx.Response:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=create_app(store))
        async with httpx.AsyncClient(transport=transport, base_url="http://c") as client:
            return await client.post(path, **kwargs)

    return asyncio.run(go())


def _message(seq: int) -> dict[str, Any]:
    return {"message_id": f"dev1:{seq}", "device": "dev1", "seq": seq, "requests": 1}


def test_bad_input_is_4xx_json(ws: Workspace) -> None:
    store = TelemetryStore(ws)
    answer = _post(store, "/v1/devices", content=b"{not json")
    assert answer.status_code == 400 and answer.json()["error"] == "body is not JSON"
    answer = _post(store, "/v1/devices", json={"seq": 1})
    assert answer.status_code == 400 and "message_id" in answer.json()["error"]
    answer = _post(store, "/v1/traces", content=b"\xff\xff", headers={"Content-Type": PROTOBUF})
    assert answer.status_code == 400 and "protobuf" in answer.json()["error"]
    answer = _post(store, "/v1/nothing", content=b"")
    assert answer.status_code == 404 and "error" in answer.json()
    answer = _post(store, "/healthz", content=b"")
    assert answer.status_code == 405 and "error" in answer.json()


def test_a_bug_is_a_generic_500_json_with_a_logged_id(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    store = TelemetryStore(ws)

    def broken(rows: list[Any]) -> int:
        raise RuntimeError("secret detail of a bug")

    monkeypatch.setattr(store, "add", broken)
    with caplog.at_level(logging.ERROR, logger=collector_app.__name__):
        answer = _post(store, "/v1/devices", json=[_message(1)])
    assert answer.status_code == 500
    body = answer.json()
    assert body["error"].startswith("internal error ") and "secret" not in json.dumps(body)
    incident = body["error"].removeprefix("internal error ")
    assert any(incident in r.getMessage() and r.exc_info for r in caplog.records)


def test_too_large_by_content_length_is_refused_before_reading(ws: Workspace) -> None:
    """413 from the header alone: the ASGI body is never received."""
    received: list[Any] = []

    async def go() -> list[dict[str, Any]]:
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            received.append(1)
            return {"type": "http.request", "body": b"[]", "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": "/v1/devices",
            "raw_path": b"/v1/devices",
            "query_string": b"",
            "root_path": "",
            "headers": [(b"content-length", str(MAX_DEVICE_BODY + 1).encode())],
            "server": ("c", 80),
            "client": ("127.0.0.1", 1),
        }
        await create_app(TelemetryStore(ws))(scope, receive, send)
        return sent

    sent = asyncio.run(go())
    assert sent[0]["status"] == 413 and received == []
    assert "larger than" in json.loads(sent[1]["body"])["error"]


def test_too_large_streamed_body_is_cut_off(ws: Workspace) -> None:
    """No Content-Length (chunked): the read stops once past the limit."""

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(64):
            yield b" " * (64 * 1024)

    answer = _post(TelemetryStore(ws), "/v1/devices", content=chunks())
    assert answer.status_code == 413 and "larger than" in answer.json()["error"]
    answer = _post(
        TelemetryStore(ws),
        "/v1/traces",
        content=b"\0" * 10,
        headers={"Content-Type": PROTOBUF, "Content-Length": str(64 * 1024 * 1024)},
    )
    assert answer.status_code == 413


def test_devices_within_the_limit_are_stored(ws: Workspace) -> None:
    answer = _post(TelemetryStore(ws), "/v1/devices", json=[_message(1), _message(2)])
    assert answer.status_code == 200 and answer.json() == {"received": 2, "stored": 2}
