"""The load generators and the answer check against real (tiny) servers on free ports."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.loadgen import find_wrk, run_grpc, run_wrk
from benchmarks.payloads import Wire, build_payload
from benchmarks.verify import WrongAnswerError, check_answer
from tests.benchmarks.fakes import OUTPUT, v2_grpc_server, v2_http_server
from tests.services import require

SAMPLE = np.zeros((1, 64), dtype=np.float32)


def test_grpc_client_counts_requests_latency_and_cpu() -> None:
    payload = build_payload(Wire.GRPC_RAW, "mlp", SAMPLE)
    with v2_grpc_server() as target:
        result = run_grpc(target, payload, concurrency=2, duration_s=0.5, warmup_s=0.1)
    assert result.requests > 0
    assert result.errors == 0
    assert 0 < result.p50_ms <= result.p99_ms
    assert result.client_cpu > 0
    assert result.req_per_s == pytest.approx(result.requests / result.seconds)


def test_grpc_client_reports_errors() -> None:
    payload = build_payload(Wire.GRPC_RAW, "mlp", SAMPLE)
    with v2_grpc_server(fail=True) as target:
        result = run_grpc(target, payload, concurrency=1, duration_s=0.3, warmup_s=0.0)
    assert result.requests == 0
    assert result.errors > 0
    assert "UNAVAILABLE" in result.first_error


def test_wrk_counts_requests_and_latency() -> None:
    require(find_wrk() is not None, "needs wrk (apt-get install wrk)")
    payload = build_payload(Wire.V2_JSON, "mlp", SAMPLE)
    with v2_http_server() as url:
        result = run_wrk(url, payload, concurrency=2, duration_s=1, warmup_s=0)
    assert result.requests > 0
    assert result.errors == 0
    assert 0 < result.p50_ms <= result.p99_ms
    assert result.tool == "wrk"


def test_wrk_counts_error_statuses() -> None:
    require(find_wrk() is not None, "needs wrk (apt-get install wrk)")
    payload = build_payload(Wire.V2_JSON, "mlp", SAMPLE)
    with v2_http_server(status=503) as url:
        result = run_wrk(url, payload, concurrency=1, duration_s=1, warmup_s=0)
    assert result.errors > 0
    assert result.requests == 0
    assert "non-2xx" in result.first_error


def test_answer_check_accepts_right_and_rejects_wrong_numbers() -> None:
    http = build_payload(Wire.V2_JSON, "mlp", SAMPLE)
    grpc_payload = build_payload(Wire.GRPC_RAW, "mlp", SAMPLE)
    with v2_http_server() as url, v2_grpc_server() as target:
        check_answer(http, OUTPUT, url, None)
        check_answer(grpc_payload, OUTPUT, None, target)
        with pytest.raises(WrongAnswerError, match="differs"):
            check_answer(http, OUTPUT + 1, url, None)
    with v2_http_server(status=500) as url, pytest.raises(WrongAnswerError, match="HTTP 500"):
        check_answer(http, OUTPUT, url, None)
