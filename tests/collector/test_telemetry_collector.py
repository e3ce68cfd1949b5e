"""The central collector: real OTLP exporters in, dedup by id, lineage, summaries, CLI."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from amlpkg.collector.server import running_collector
from amlpkg.collector.summary import parse_since, summarize
from amlpkg.errors import InvalidArgumentError
from amlpkg.runtime.dataplane import DataPlane
from amlpkg.runtime.types import InferInput, InferRequest
from amlpkg.store.lineage_edges import edges_to
from amlpkg.store.workspace import open_workspace
from tests.edge_agent.conftest import add_model

pytestmark = pytest.mark.slow


def post(url: str, body: bytes, content_type: str) -> tuple[int, bytes]:
    request = urllib.request.Request(url, body, {"Content-Type": content_type}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def device_message(seq: int, device: str = "dev1", **extra: object) -> dict[str, object]:
    return {
        "message_id": f"{device}:{seq}",
        "seq": seq,
        "device": device,
        "kind": "inference",
        "time": 1_000.0 + seq,
        "window_s": 1.0,
        "model": "m",
        "version": "2",
        "deployment": "edge-fleet:1",
        "module": "edge",
        "requests": 10,
        "errors": 1,
        "latency_avg_ms": 2.0,
        "compute_p95_ms": 3.0,
        **extra,
    }


def test_runtime_traces_arrive_through_the_real_otlp_exporter(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / "m" / "1").mkdir(parents=True)
    (repo / "m" / "1" / "model.onnx").write_bytes(add_model(1.0))
    with open_workspace(tmp_path / "ws") as ws, running_collector(ws, port=0) as collector:
        environ = {"OTEL_EXPORTER_OTLP_ENDPOINT": collector.url, "OTEL_SERVICE_NAME": "dep-a:1"}

        async def score() -> None:
            dp = DataPlane.from_repository(repo, environ=environ)
            await dp.start()
            x = np.zeros((1, 4), dtype=np.float32)
            for _ in range(7):
                await dp.infer(InferRequest("m", None, [InferInput("X", "FP32", (1, 4), x)]))
            await dp.stop()  # shuts the tracer down: every span is exported now

        asyncio.run(score())
        [summary] = summarize(ws, by="deployment")
    assert summary.key == "dep-a:1"
    assert summary.requests == 7 and summary.errors == 0
    assert summary.models == ["m:1"]
    assert summary.latency_avg_ms is not None and summary.latency_avg_ms > 0


def test_otlp_metrics_from_the_sdk_exporter_are_stored(tmp_path: Path) -> None:
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.resources import Resource

    with open_workspace(tmp_path / "ws") as ws, running_collector(ws, port=0) as collector:
        exporter = OTLPMetricExporter(endpoint=f"{collector.url}/v1/metrics")
        reader = PeriodicExportingMetricReader(exporter, export_interval_millis=3_600_000)
        provider = MeterProvider(
            metric_readers=[reader], resource=Resource.create({"service.name": "dep-b:1"})
        )
        provider.get_meter("test").create_counter("requests").add(5, {"outcome": "success"})
        provider.shutdown()  # final collect + export
        rows = ws.conn.execute(
            "SELECT deployment_id, body FROM telemetry WHERE source = 'otlp_metrics'"
        ).fetchall()
    assert [r["deployment_id"] for r in rows] == ["dep-b:1"]
    points = json.loads(rows[0]["body"])["metrics"]["requests"]
    assert points == [{"attributes": {"outcome": "success"}, "value": 5}]


def test_duplicates_are_stored_once_and_devices_join_the_lineage(tmp_path: Path) -> None:
    with open_workspace(tmp_path / "ws") as ws, running_collector(ws, port=0) as collector:
        batch = json.dumps([device_message(1), device_message(2)]).encode()
        assert post(f"{collector.url}/v1/devices", batch, "application/json") == (
            200,
            b'{"received":2,"stored":2}',
        )
        again = json.dumps([device_message(2), device_message(3)]).encode()
        status, body = post(f"{collector.url}/v1/devices", again, "application/json")
        assert status == 200 and json.loads(body)["stored"] == 1
        status, body = post(f"{collector.url}/v1/devices", b'{"seq": 1}', "application/json")
        assert status == 400 and b"message_id" in body
        status, _ = post(f"{collector.url}/v1/traces", b"{}", "application/json")
        assert status == 415
        status, body = post(f"{collector.url}/v1/traces", b"\xff\xff", "application/x-protobuf")
        assert status == 400
        seqs = [r[0] for r in ws.conn.execute("SELECT seq FROM telemetry ORDER BY seq")]
        edges = edges_to(ws, ("device", "dev1"))
        [device] = summarize(ws, by="device")
    assert seqs == [1, 2, 3]
    assert [(e.src_kind, e.src_id, e.relation) for e in edges] == [
        ("deployment", "edge-fleet:1", "runs_on")
    ]
    assert device.requests == 30 and device.errors == 3
    assert device.throughput_rps == pytest.approx(10.0)
    assert device.latency_p95_ms == 3.0


def test_since_is_parsed_with_a_clear_error() -> None:
    assert parse_since("2m", now=1000.0) == 880.0
    assert parse_since(None) is None
    with pytest.raises(InvalidArgumentError, match="15m"):
        parse_since("yesterday")


def test_cli_show_prints_json_and_tables(tmp_path: Path) -> None:
    home = tmp_path / "ws"
    with open_workspace(home) as ws, running_collector(ws, port=0) as collector:
        body = json.dumps([device_message(1), device_message(1, device="dev2")]).encode()
        post(f"{collector.url}/v1/devices", body, "application/json")
    cmd = [
        str(Path(sys.executable).parent / "amlpkg"),
        "telemetry",
        "show",
        "--home",
        str(home),
    ]
    done = subprocess.run([*cmd, "--json"], capture_output=True, text=True, check=True)
    assert done.stdout, done.stderr
    out = done.stdout
    data = json.loads(out)
    assert [d["key"] for d in data["devices"]] == ["dev1", "dev2"]
    assert [d["key"] for d in data["deployments"]] == ["edge-fleet:1"]
    wide = {**os.environ, "COLUMNS": "200"}
    text = subprocess.run(
        [*cmd, "--device", "dev2"], capture_output=True, text=True, check=True, env=wide
    ).stdout
    assert "dev2" in text and "dev1" not in text and "per deployment" not in text
    bad = subprocess.run([*cmd, "--since", "nope"], capture_output=True, text=True, check=False)
    assert bad.returncode == 2 and "hint:" in bad.stderr


def test_lineage_reaches_devices_with_their_key_facts(tmp_path: Path) -> None:
    from amlpkg.collector.lineage import describe_device_edges
    from amlpkg.collector.store import TelemetryStore, row_from_device_message
    from amlpkg.store.lineage_edges import add_edge, downstream

    with open_workspace(tmp_path / "ws") as ws:
        add_edge(ws, ("model_version", "m:2"), ("deployment", "edge-fleet:1"), "deployed_as")
        store = TelemetryStore(ws)
        store.add([row_from_device_message(device_message(1))])
        lone = device_message(1, device="dev9", deployment=None)
        store.add([row_from_device_message(lone)])
        edges = [e.to_dict() for e in downstream(ws, ("model_version", "m:2"))]
        describe_device_edges(ws, edges)
    chain = [(e["src_id"], e["relation"], e["dst_id"]) for e in edges]
    assert sorted(chain) == [
        ("edge-fleet:1", "runs_on", "dev1"),
        ("m:2", "deployed_as", "edge-fleet:1"),
        ("m:2", "served_on", "dev9"),
    ]
    details = {e["dst_id"]: e.get("detail", "") for e in edges}
    assert "serving m:2" in details["dev1"] and "10 requests, 1 errors" in details["dev1"]
    assert "module edge" in details["dev9"]
