"""The REST ASGI app in process (httpx ASGI transport) over a real, started DataPlane."""

from __future__ import annotations

import asyncio
import gzip
import zlib
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import httpx
import orjson
import pytest

from amlpkg.runtime.dataplane import DataPlane
from amlpkg.runtime.rest import RestApp
from amlpkg.runtime.types import InferRequest, InferResponse
from tests.runtime import toy_models

T = TypeVar("T")
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


class RecordingDataPlane(DataPlane):
    """The real data plane, remembering the trace context each infer received."""

    seen: list[Mapping[str, str] | None]

    async def infer(
        self, request: InferRequest, *, trace_context: Mapping[str, str] | None = None
    ) -> InferResponse:
        self.seen.append(trace_context)
        return await super().infer(request, trace_context=trace_context)


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One identity model."""
    root = tmp_path_factory.mktemp("rest-app")
    toy_models.save(toy_models.identity_model("FP32"), root, "identity")
    return root


def run(
    repo: Path,
    scenario: Callable[[httpx.AsyncClient, RecordingDataPlane], Awaitable[T]],
    **app_kwargs: Any,
) -> T:
    """Start a data plane, serve it through RestApp in process, run ``scenario``."""

    async def main() -> T:
        dp = RecordingDataPlane.from_repository(repo)
        assert isinstance(dp, RecordingDataPlane)
        dp.seen = []
        await dp.start()
        app = RestApp(dp, metrics_registry=dp.metrics_registry, **app_kwargs)
        try:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                return await scenario(client, dp)
        finally:
            await dp.stop(drain_timeout=5)

    return asyncio.run(main())


BODY = {"inputs": [{"name": "INPUT0", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]}]}


def test_routes_and_methods(repo: Path) -> None:
    async def scenario(client: httpx.AsyncClient, dp: RecordingDataPlane) -> None:
        assert (await client.get("/v2")).json()["name"] == "amlpkg"
        assert (await client.get("/v2/models/identity/versions/1")).json()["versions"] == ["1"]
        assert (await client.get("/v2/models/identity/versions/1/ready")).status_code == 200
        assert (await client.get("/v2/models/identity/config")).json()["name"] == "identity"
        stats = (await client.get("/v2/models/identity/stats")).json()
        assert stats["model_stats"][0]["name"] == "identity"
        wrong = await client.post("/v2/models/identity/ready")
        assert wrong.status_code == 405 and "takes GET or HEAD, not POST" in wrong.json()["error"]
        assert wrong.headers["allow"] == "GET, HEAD"
        missing = await client.get("/nothing")
        assert missing.status_code == 404 and "no route" in missing.json()["error"]
        deep = await client.get("/v2/models/identity/versions/1/bogus")
        assert deep.status_code == 404
        index = await client.post("/v2/repository/index", json={"ready": True})
        assert [(m["name"], m["state"]) for m in index.json()] == [("identity", "READY")]
        bad_flag = await client.post("/v2/repository/index", json={"ready": "yes"})
        assert (
            bad_flag.status_code == 400
            and "'ready' must be true or false" in bad_flag.json()["error"]
        )
        bad_json = await client.post("/v2/repository/index", content=b"{")
        assert bad_json.status_code == 400 and "malformed request JSON" in bad_json.json()["error"]
        unknown = await client.post("/v2/repository/models/nope/load")
        assert unknown.status_code == 404

    run(repo, scenario)


def test_infer_passes_the_w3c_trace_context(repo: Path) -> None:
    async def scenario(client: httpx.AsyncClient, dp: RecordingDataPlane) -> list[Any]:
        plain = await client.post("/v2/models/identity/infer", json=BODY)
        traced = await client.post(
            "/v2/models/identity/infer",
            json=BODY,
            headers={"traceparent": TRACEPARENT, "tracestate": "k=v"},
        )
        assert plain.status_code == traced.status_code == 200
        return dp.seen

    assert run(repo, scenario) == [None, {"traceparent": TRACEPARENT, "tracestate": "k=v"}]


def test_gzip_and_deflate_bodies(repo: Path) -> None:
    raw = orjson.dumps(BODY)
    bomb = gzip.compress(b" " * 100_000)  # ~100 B compressed, over the limit inflated

    async def scenario(client: httpx.AsyncClient, dp: RecordingDataPlane) -> list[httpx.Response]:
        url = "/v2/models/identity/infer"
        return [
            await client.post(
                url, content=gzip.compress(raw), headers={"Content-Encoding": "gzip"}
            ),
            await client.post(
                url, content=zlib.compress(raw), headers={"Content-Encoding": "deflate"}
            ),
            await client.post(url, content=raw, headers={"Content-Encoding": "br"}),
            await client.post(url, content=b"not gzip", headers={"Content-Encoding": "gzip"}),
            await client.post(url, content=bomb, headers={"Content-Encoding": "gzip"}),
        ]

    gz, deflate, brotli, corrupt, too_big = run(repo, scenario, max_request_size=10_000)
    assert gz.status_code == deflate.status_code == 200
    assert gz.json()["outputs"][0]["data"] == [1, 2, 3, 4]
    assert brotli.status_code == 400
    assert "Content-Encoding 'br' is not supported" in brotli.json()["error"]
    assert corrupt.status_code == 400 and "not valid gzip data" in corrupt.json()["error"]
    assert too_big.status_code == 413


def test_auth_token(repo: Path) -> None:
    async def scenario(client: httpx.AsyncClient, dp: RecordingDataPlane) -> list[int]:
        return [
            (await client.get("/v2/health/ready")).status_code,
            (await client.get("/v2/models/identity")).status_code,
            (await client.post("/v2/models/identity/infer", json=BODY)).status_code,
            (await client.get("/v2", headers={"Authorization": "bearer abc"})).status_code,
            (await client.get("/v2", headers={"X-API-Key": "abc"})).status_code,
            (await client.get("/v2", headers={"X-API-Key": "abd"})).status_code,
        ]

    assert run(repo, scenario, auth_token="abc") == [200, 401, 401, 200, 200, 401]


def test_small_body_limit_is_413(repo: Path) -> None:
    async def scenario(client: httpx.AsyncClient, dp: RecordingDataPlane) -> httpx.Response:
        return await client.post("/v2/models/identity/infer", json=BODY)

    response = run(repo, scenario, max_request_size=10)
    assert response.status_code == 413
    assert "over the limit of 10 bytes" in response.json()["error"]
