"""Bad input answers a JSON 4xx, bodies are bounded, server paths never leak; OTLP lands."""

from __future__ import annotations

from pathlib import Path

from amlpkg.store.workspace import open_workspace
from tests.server.conftest import Api

V1 = "/api/v1"


def _run(c: Api) -> str:
    return str(c.post(f"{V1}/runs", json={}).json()["id"])


def test_errors_are_json_from_the_error_tree_without_server_paths(
    api: dict[str, Api], home: Path
) -> None:
    r = api["reader"]
    missing = r.get(f"{V1}/runs/abcd")
    assert missing.status_code == 404 and missing.json()["code"] == "not_found"
    assert str(home) not in missing.text and "<workspace>" in missing.text
    assert r.get(f"{V1}/runs/not-hex").json()["code"] == "invalid_argument"
    assert r.get(f"{V1}/models/x/versions/0").status_code == 400
    assert r.get(f"{V1}/models/x/versions/99999999999999999999").status_code == 400
    assert r.get(f"{V1}/nowhere").json()["code"] == "not_found"


def test_json_bodies_are_bounded_and_validated(api: dict[str, Api]) -> None:
    c = api["contributor"]
    run = _run(c)
    huge = c.post(f"{V1}/runs/{run}/log-batch", json={"params": {"k": "v" * 70_000}})
    assert huge.status_code == 413 and huge.json()["code"] == "payload_too_large"
    nan = c.post(
        f"{V1}/runs/{run}/log-batch",
        content=b'{"metrics": [{"key": "m", "value": NaN}]}',
        headers={"content-type": "application/json"},
    )
    assert nan.status_code == 400
    extra = c.post(f"{V1}/runs", json={"experiment": "e", "surprise": 1})
    assert extra.status_code == 400 and "surprise" in extra.json()["error"]


def test_uploads_are_bounded_checked_and_confined(api: dict[str, Api], home: Path) -> None:
    c = api["contributor"]
    run = _run(c)
    zero = {"sha256": "0" * 64}
    big = c.put(f"{V1}/runs/{run}/artifacts/a.bin", params=zero, content=b"x" * 5000)
    assert big.status_code == 413
    for bad in ("a/%2E%2E/b", "%2Fetc/passwd", "a//b", "a\\b"):
        answer = c.put(f"{V1}/runs/{run}/artifacts/{bad}", params=zero, content=b"x")
        assert answer.status_code in (400, 404), bad
    # A version is registered from a run's artifact only, never from a file on the server.
    local = c.post(f"{V1}/models/m/versions", json={"source": str(home / "amlpkg.db")})
    assert local.status_code == 400
    with open_workspace(home) as ws:
        assert ws.conn.execute("SELECT COUNT(*) FROM artifacts").fetchone()[0] == 0
    uploads = home / ".server-uploads"
    assert not uploads.exists() or not list(uploads.iterdir())


def test_otlp_traces_land_in_the_workspace_behind_the_token(api: dict[str, Api]) -> None:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

    request = ExportTraceServiceRequest()
    spans = request.resource_spans.add()
    spans.resource.attributes.append(
        KeyValue(key="service.name", value=AnyValue(string_value="web"))
    )
    span = spans.scope_spans.add().spans.add()
    span.name, span.trace_id, span.span_id = "infer", b"t" * 16, b"s" * 8
    span.start_time_unix_nano, span.end_time_unix_nano = 1_000_000_000, 1_004_000_000
    body = request.SerializeToString()
    headers = {"content-type": "application/x-protobuf"}
    assert api["reader"].post("/v1/traces", content=body, headers=headers).status_code == 403
    assert api["anonymous"].post("/v1/traces", content=body, headers=headers).status_code == 401
    sent = api["contributor"].post("/v1/traces", content=body, headers=headers)
    assert sent.status_code == 200, sent.text
    summary = api["reader"].get(f"{V1}/telemetry/deployments").json()
    assert [(s["key"], s["requests"]) for s in summary] == [("web", 1)]
    device = {"message_id": "m1", "device": "d1", "requests": 3}
    assert api["contributor"].post("/v1/devices", json=device).status_code == 200
    assert api["contributor"].post("/v1/devices", json={**device, "model": {}}).status_code == 400
    assert [d["key"] for d in api["reader"].get(f"{V1}/devices").json()] == ["d1"]
