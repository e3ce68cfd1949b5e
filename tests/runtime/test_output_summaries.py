"""Output summaries: one scalar per row, fixed bins, counted per version by the runtime.

In process (the edge agent's data plane), and on a real server process (``python -m
amlpkg.runtime --output-summaries``, real ONNX Runtime) whose OTLP export reaches the
real collector, which stores the histogram for the deployment.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from prometheus_client import generate_latest

from amlpkg.collector.outputs import MAX_BINS, js_distance
from amlpkg.collector.server import running_collector
from amlpkg.collector.windows import deployment_windows
from amlpkg.edge_agent.backend import SMOKE_ID
from amlpkg.edge_agent.sampler import TelemetrySampler
from amlpkg.runtime import summaries as outputs
from amlpkg.runtime.dataplane import DataPlane
from amlpkg.runtime.tracing import resource_attributes
from amlpkg.runtime.types import InferInput, InferRequest
from amlpkg.store.workspace import open_workspace
from tests.edge_agent.conftest import add_model
from tests.runtime.conftest import start_server


def test_rows_are_summarized_by_value_argmax_or_norm() -> None:
    # one value per row (a regressor, a classifier's label): the value
    assert outputs.row_summaries(np.array([[2.5], [-1.0]], np.float32)).tolist() == [2.5, -1.0]
    assert outputs.row_summaries(np.array([0, 2, 1], np.int64)).tolist() == [0, 2, 1]
    # probabilities: the argmax class
    probs = np.array([[0.1, 0.7, 0.2], [0.6, 0.3, 0.1]], np.float32)
    assert outputs.row_summaries(probs).tolist() == [1, 0]
    # anything else: the L2 norm of the row
    assert outputs.row_summaries(np.full((2, 4), 3.0, np.float32)).tolist() == [6.0, 6.0]
    assert outputs.row_summaries(np.array([b"x"], dtype=object)).size == 0


def test_bins_are_fixed_bounded_and_tell_shifted_outputs_apart() -> None:
    values = np.array([np.nan, -1e30, -3.0, 0.0, 1e-9, 1.0, 4.0, 6.0, 1e30, np.inf])
    found = outputs.bins(values)
    assert found.min() >= 0 and found.max() < outputs.BINS <= MAX_BINS
    assert found[0] == outputs.NAN_BIN and found[3] == found[4] == outputs.ZERO_BIN
    assert found[1] < found[2] < found[3] < found[5] < found[6] < found[7] < found[8]
    assert found[8] == found[9] == outputs.BINS - 1  # clamped, never a new bin
    # Y = X + 1 and Y = X + 2 on the same inputs: norms 4 and 6 fall in different bins
    base, shifted = np.full((50, 4), 1.0) + 1.0, np.full((50, 4), 1.0) + 2.0
    assert js_distance(outputs.histogram(base), outputs.histogram(base)) == 0.0
    assert js_distance(outputs.histogram(base), outputs.histogram(shifted)) == 1.0


def test_the_agent_data_plane_counts_summaries_and_the_sampler_reports_them(
    tmp_path: Path,
) -> None:
    (tmp_path / "m" / "1").mkdir(parents=True)
    (tmp_path / "m" / "1" / "model.onnx").write_bytes(add_model(1.0))

    async def scenario() -> tuple[dict[str, Any], dict[str, Any]]:
        dp = DataPlane.from_repository(tmp_path, output_summaries=True)
        await dp.start()
        sampler = TelemetrySampler(dp)
        x = np.ones((3, 4), dtype=np.float32)
        try:
            await dp.infer(InferRequest("m", None, [InferInput("X", "FP32", (3, 4), x)]))
            smoke = InferRequest("m", None, [InferInput("X", "FP32", (1, 4), x[:1])], id=SMOKE_ID)
            await dp.infer(smoke)  # not live traffic: not counted
            first = await sampler.sample()
            second = await sampler.sample()
        finally:
            await dp.stop()
        return first, second

    first, second = asyncio.run(scenario())
    norm_bin = str(int(outputs.bins(np.array([4.0]))[0]))  # rows [2, 2, 2, 2]
    assert first["outputs"] == {norm_bin: 3}
    assert "outputs" not in second  # deltas: nothing new


def test_summaries_are_off_by_default(tmp_path: Path) -> None:
    (tmp_path / "m" / "1").mkdir(parents=True)
    (tmp_path / "m" / "1" / "model.onnx").write_bytes(add_model(1.0))

    async def scenario() -> bytes:
        dp = DataPlane.from_repository(tmp_path)
        await dp.start()
        x = np.ones((3, 4), dtype=np.float32)
        try:
            await dp.infer(InferRequest("m", None, [InferInput("X", "FP32", (3, 4), x)]))
        finally:
            await dp.stop()
        assert dp.output_summaries is None
        return generate_latest(dp.metrics_registry)

    assert b"amlpkg_output_summary" not in asyncio.run(scenario())


def _scores(base_url: str, rows: int, value: float) -> None:
    body = {"inputs": [{"name": "X", "datatype": "FP32", "shape": [rows, 4],
                        "data": [value] * (rows * 4)}]}  # fmt: skip
    answer = httpx.post(f"{base_url}/v2/models/m/infer", json=body, timeout=30)
    assert answer.status_code == 200, answer.text


def test_a_server_counts_summaries_and_exports_them_to_the_collector(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / "m" / "1").mkdir(parents=True)
    (repo / "m" / "1" / "model.onnx").write_bytes(add_model(1.0))
    with open_workspace(tmp_path / "ws") as ws, running_collector(ws, port=0) as collector:
        env = {
            "OTEL_EXPORTER_OTLP_ENDPOINT": collector.url,
            "OTEL_RESOURCE_ATTRIBUTES": "amlpkg.deployment=dep-7",
            "OTEL_METRIC_EXPORT_INTERVAL": "3600000",  # only the final export at SIGTERM
        }
        server = start_server(repo, tmp_path, "--output-summaries", env=env)
        try:
            _scores(server.base_url, 5, 1.0)  # rows [2, 2, 2, 2]: norm 4
            _scores(server.base_url, 2, 2.0)  # norm 6
            text = httpx.get(f"{server.base_url}/metrics", timeout=10).text
        finally:
            assert server.stop() == 0, server.log()
        rows = ws.conn.execute(
            "SELECT deployment_id, model_name, model_version, outputs FROM telemetry"
            " WHERE source = 'otlp_metrics' AND outputs IS NOT NULL"
        ).fetchall()
        windows = deployment_windows(ws, 0.0, ["dep-7"])
    four, six = (str(int(b)) for b in outputs.bins(np.array([4.0, 6.0])))
    assert f'amlpkg_output_summary_total{{bin="{four}",model="m",version="1"}} 5.0' in text
    assert f'amlpkg_output_summary_total{{bin="{six}",model="m",version="1"}} 2.0' in text
    assert [(r[0], r[1], r[2]) for r in rows] == [("dep-7", "m", "1")]
    assert json.loads(rows[0][3]) == {four: 5, six: 2}
    assert [w.outputs for w in windows if w.outputs] == [{four: 5, six: 2}]


def test_bad_output_summaries_over_otlp_are_refused_with_a_4xx(tmp_path: Path) -> None:
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
        ExportMetricsServiceRequest,
    )

    request = ExportMetricsServiceRequest()
    metric = request.resource_metrics.add().scope_metrics.add().metrics.add()
    metric.name = "amlpkg_output_summary"
    metric.sum.aggregation_temporality = 1  # delta
    point = metric.sum.data_points.add()
    point.as_int = 3
    for key, value in (("model", "m"), ("version", "1"), ("bin", "9999")):
        attr = point.attributes.add()
        attr.key, attr.value.string_value = key, value
    with open_workspace(tmp_path / "ws") as ws, running_collector(ws, port=0) as collector:
        answer = httpx.post(
            f"{collector.url}/v1/metrics",
            content=request.SerializeToString(),
            headers={"Content-Type": "application/x-protobuf"},
        )
        stored = ws.conn.execute("SELECT COUNT(*) FROM telemetry").scalar()
    assert answer.status_code == 400, answer.text
    assert "9999" in answer.text and stored == 0


def test_resource_attributes_come_from_the_given_environment() -> None:
    env = {"OTEL_RESOURCE_ATTRIBUTES": "amlpkg.deployment=web:2, service.name=a,bad"}
    assert resource_attributes(env) == {"amlpkg.deployment": "web:2", "service.name": "a"}
    assert resource_attributes({**env, "OTEL_SERVICE_NAME": "b"})["service.name"] == "b"
    assert resource_attributes({}) == {"service.name": "amlpkg-runtime"}


def test_small_and_large_responses_fall_in_the_same_bins() -> None:
    edges = 2.0 ** (np.arange(-12, 22, 0.25))  # every bin boundary and beyond both ends
    values = np.concatenate([edges, -edges, edges * 1.01, [0.0, np.nan, np.inf, -np.inf]])
    assert [outputs.bin_of(v) for v in values.tolist()] == outputs.bins(values).tolist()
    rows = np.random.default_rng(3).normal(0, 50, (200, 1))
    small = {}
    for part in np.array_split(rows, 10):  # 20 rows each: counted value by value
        for key, n in outputs.histogram(part).items():
            small[key] = small.get(key, 0) + n
    assert outputs.histogram(rows) == small  # 200 rows: vectorized
