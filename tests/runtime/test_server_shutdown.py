"""Graceful shutdown: SIGTERM lets in-flight requests on both transports finish."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import grpc
import httpx
import numpy as np
import pytest

from amlpkg.runtime.protocol import grpc_service_pb2 as pb
from amlpkg.runtime.protocol import grpc_service_pb2_grpc as pb_grpc
from tests.runtime import toy_models
from tests.runtime.conftest import start_server

pytestmark = pytest.mark.slow


def _in_flight(base_url: str) -> float:
    for line in httpx.get(base_url + "/metrics").text.splitlines():
        if line.startswith('amlpkg_inference_in_flight{model="slow"'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_sigterm_drains_in_flight_requests(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    toy_models.save(toy_models.identity_model("FP32"), repo, "slow")
    # Every request waits ~2 s in the batcher: long enough to be in flight at SIGTERM.
    (repo / "slow" / "config.yaml").write_text(
        "max_batch_size: 8\ndynamic_batching:"
        " {max_queue_delay_microseconds: 2000000, idle_runs_at_once: false}\n"
    )
    server = start_server(repo, tmp_path)
    try:
        body = {
            "inputs": [
                {"name": "INPUT0", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]}
            ]
        }
        rest_results: list[httpx.Response] = []
        grpc_results: list[object] = []

        def rest_call() -> None:
            rest_results.append(
                httpx.post(server.base_url + "/v2/models/slow/infer", json=body, timeout=30)
            )

        def grpc_call() -> None:
            with grpc.insecure_channel(server.grpc_url) as channel:
                request = pb.ModelInferRequest(model_name="slow")
                request.inputs.add(name="INPUT0", datatype="FP32", shape=[1, 4])
                request.raw_input_contents.append(np.ones(4, np.float32).tobytes())
                try:
                    grpc_results.append(
                        pb_grpc.GRPCInferenceServiceStub(channel).ModelInfer(request, timeout=30)
                    )
                except grpc.RpcError as exc:
                    grpc_results.append(exc)

        threads = [threading.Thread(target=f) for f in (rest_call, rest_call, grpc_call)]
        for thread in threads:
            thread.start()
        # SIGTERM only once all three are inside the server (waiting in the batcher).
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and _in_flight(server.base_url) < 3:
            time.sleep(0.05)
        assert _in_flight(server.base_url) == 3
        server.process.send_signal(signal.SIGTERM)
        for thread in threads:
            thread.join(30)
        assert server.process.wait(30) == 0
    finally:
        server.stop()
    assert [r.status_code for r in rest_results] == [200, 200]
    assert rest_results[0].json()["outputs"][0]["data"] == [1, 2, 3, 4]
    assert len(grpc_results) == 1 and isinstance(grpc_results[0], pb.ModelInferResponse)
    log = server.log()
    assert "shutting down: draining in-flight requests" in log and "stopped" in log
    assert f"listening: http://127.0.0.1:{server.http_port}" in log
    assert f"listening: 127.0.0.1:{server.grpc_port}" in log
