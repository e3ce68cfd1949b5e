"""OpenTelemetry traces: the real OTLP/HTTP exporter against a tiny collector in the test."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from amlpkg.runtime.dataplane import DataPlane
from amlpkg.runtime.tracing import traces_endpoint
from tests.runtime.test_core_dataplane import with_dataplane
from tests.runtime.toy_models import add_sub_model, infer_request, save, write_config

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"


class Collector:
    """Receives OTLP/HTTP trace exports and keeps the decoded requests."""

    def __init__(self) -> None:
        self.requests: list[ExportTraceServiceRequest] = []
        self.paths: list[str] = []
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                message = ExportTraceServiceRequest()
                message.ParseFromString(body)
                collector.paths.append(self.path)
                collector.requests.append(message)
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def spans(self) -> list:
        return [
            (resource.resource, span)
            for request in self.requests
            for resource in request.resource_spans
            for scope in resource.scope_spans
            for span in scope.spans
        ]


@pytest.fixture
def collector() -> Iterator[Collector]:
    c = Collector()
    c.thread.start()
    yield c
    c.server.shutdown()
    c.server.server_close()


def attributes(span: object) -> dict:
    out = {}
    for kv in span.attributes:  # type: ignore[attr-defined]
        value = kv.value
        out[kv.key] = value.string_value or value.int_value
    return out


def test_spans_are_exported_with_the_callers_trace(tmp_path: Path, collector: Collector) -> None:
    save(add_sub_model(), tmp_path, "simple")
    write_config(
        tmp_path,
        "simple",
        "max_batch_size: 8\ndynamic_batching: {max_queue_delay_microseconds: 1000}\n",
    )
    environ = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{collector.port}",
        "OTEL_SERVICE_NAME": "scoring-test",
    }
    a = np.ones((2, 16), np.float32)

    async def main() -> None:
        dp = DataPlane.from_repository(tmp_path, environ=environ)
        assert dp.tracer is not None
        await dp.start()
        try:
            await dp.infer(
                infer_request("simple", {"INPUT0": a, "INPUT1": a}),
                trace_context={"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01"},
            )
        finally:
            await dp.stop()  # flushes the exporter

    asyncio.run(main())
    assert collector.paths and set(collector.paths) == {"/v1/traces"}
    spans = collector.spans()
    by_name = {span.name: (resource, span) for resource, span in spans}
    assert set(by_name) == {"infer", "queue", "compute"}
    resource, infer = by_name["infer"]
    service = [kv.value.string_value for kv in resource.attributes if kv.key == "service.name"]
    assert service == ["scoring-test"]
    assert infer.trace_id.hex() == TRACE_ID
    assert infer.parent_span_id.hex() == PARENT_ID
    assert attributes(infer) == {"model": "simple", "version": "1", "batch_size": 2}
    for child in ("queue", "compute"):
        span = by_name[child][1]
        assert span.trace_id.hex() == TRACE_ID
        assert span.parent_span_id == infer.span_id
        assert attributes(span)["batch_size"] == 2
        assert infer.start_time_unix_nano <= span.start_time_unix_nano
        assert span.end_time_unix_nano <= infer.end_time_unix_nano


def test_a_failed_request_has_an_error_span(tmp_path: Path, collector: Collector) -> None:
    save(add_sub_model(), tmp_path, "simple")
    environ = {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"http://127.0.0.1:{collector.port}/t"}

    async def main() -> None:
        dp = DataPlane.from_repository(tmp_path, environ=environ)
        await dp.start()
        try:
            with pytest.raises(Exception, match="missing input"):
                await dp.infer(infer_request("simple", {"INPUT0": np.ones((1, 16), np.float32)}))
        finally:
            await dp.stop()

    asyncio.run(main())
    assert collector.paths == ["/t"]
    ((_, span),) = collector.spans()
    assert span.name == "infer"
    assert span.status.code == 2  # STATUS_CODE_ERROR
    assert "missing input" in span.status.message


def test_tracing_is_off_unless_configured() -> None:
    assert traces_endpoint({}) is None
    assert traces_endpoint({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318/"}) == (
        "http://c:4318/v1/traces"
    )
    assert (
        traces_endpoint(
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_TRACES_EXPORTER": "none"}
        )
        is None
    )
    assert traces_endpoint({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://x/t"}) == "http://x/t"


def test_with_tracing_off_opentelemetry_is_never_imported(tmp_path: Path) -> None:
    save(add_sub_model(), tmp_path, "simple")
    script = (
        "import asyncio, sys, numpy as np\n"
        "from amlpkg.runtime.dataplane import DataPlane\n"
        "from tests.runtime.toy_models import infer_request\n"
        "async def main():\n"
        f"    dp = DataPlane.from_repository({str(tmp_path)!r}, environ={{}})\n"
        "    await dp.start()\n"
        "    a = np.ones((1, 16), np.float32)\n"
        "    await dp.infer(infer_request('simple', {'INPUT0': a, 'INPUT1': a}))\n"
        "    await dp.stop()\n"
        "asyncio.run(main())\n"
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))\n"
    )
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=root, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


def test_with_dataplane_helper_has_no_tracer(tmp_path: Path) -> None:
    save(add_sub_model(), tmp_path, "simple")

    async def body(dp: DataPlane) -> object:
        return dp.tracer

    assert with_dataplane(tmp_path, body) is None
