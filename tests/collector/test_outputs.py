"""Output histograms from devices: validated and bounded (a device is untrusted input)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from amlpkg.collector.app import create_app
from amlpkg.collector.outputs import MAX_BINS, MAX_COUNT, js_distance, merge, validate
from amlpkg.collector.store import TelemetryStore
from amlpkg.collector.windows import device_windows
from amlpkg.errors import InvalidArgumentError
from amlpkg.store.workspace import open_workspace

BAD = [
    [1, 2],
    {str(i): 1 for i in range(MAX_BINS + 1)},
    {"-1": 3},
    {"x": 3},
    {str(MAX_BINS): 1},
    {"3": -1},
    {"3": 1.5},
    {"3": True},
    {"3": MAX_COUNT + 1},
    {"3": "7"},
]


def test_valid_histograms_pass_and_anything_else_is_refused() -> None:
    assert validate(None) is None
    assert validate({"3": 2, 4: 5, "5": 0}) == {"3": 2, "4": 5}
    for bad in BAD:
        with pytest.raises(InvalidArgumentError):
            validate(bad)


def test_js_distance_is_zero_for_the_same_and_bounded_for_others() -> None:
    p = {"10": 60, "11": 40}
    assert js_distance(p, p) == 0.0
    assert js_distance(p, {"10": 6, "11": 4}) == pytest.approx(0.0, abs=1e-9)
    assert js_distance(p, {"20": 5}) == pytest.approx(1.0)
    near = js_distance(p, {"10": 55, "11": 45})
    assert near is not None and 0 < near < 0.1
    assert js_distance(p, {}) is None
    assert merge([p, None, {"10": 1, "12": 2}]) == {"10": 61, "11": 40, "12": 2}


def _post(store: TelemetryStore, body: Any) -> httpx.Response:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=create_app(store))
        async with httpx.AsyncClient(transport=transport, base_url="http://c") as client:
            return await client.post("/v1/devices", json=body)

    return asyncio.run(go())


def test_ingest_stores_histograms_and_refuses_bad_ones_with_a_4xx(tmp_path: Path) -> None:
    with open_workspace(tmp_path / "ws") as ws:
        store = TelemetryStore(ws)
        good = {"message_id": "d:1", "device": "d", "model": "m", "version": "1",
                "requests": 5, "outputs": {"130": 5}}  # fmt: skip
        assert _post(store, [good]).status_code == 200
        for i, bad in enumerate(BAD):
            answer = _post(store, [{**good, "message_id": f"d:bad{i}", "outputs": bad}])
            assert answer.status_code == 400, bad
            assert "outputs" in answer.json()["error"] or "bin" in answer.json()["error"]
        windows = device_windows(ws, 0)
        assert [w.outputs for w in windows] == [{"130": 5}]
        body = ws.conn.execute("SELECT body FROM telemetry").scalar()
        assert json.loads(body)["outputs"] == {"130": 5}
