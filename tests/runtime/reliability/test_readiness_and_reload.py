"""Strict readiness, and transactional reloads under continuous scoring."""

from __future__ import annotations

import base64
import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc
import httpx
import orjson
import pytest

from amlpkg.runtime.protocol import grpc_service_pb2 as pb
from amlpkg.runtime.protocol import grpc_service_pb2_grpc as pb_grpc
from tests.runtime import toy_models
from tests.runtime.conftest import ServerProcess, start_server
from tests.services import free_port

pytestmark = pytest.mark.slow


def _repo_with_a_broken_model(root: Path) -> Path:
    toy_models.save(toy_models.identity_model("FP32"), root, "good")
    broken = root / "broken" / "1" / "model.onnx"
    broken.parent.mkdir(parents=True)
    broken.write_bytes(b"not an onnx model")
    return root


def test_strict_readiness_waits_for_every_model(tmp_path: Path) -> None:
    repo = _repo_with_a_broken_model(tmp_path / "repo")
    http_port, grpc_port = free_port(), free_port()
    log = (tmp_path / "strict.log").open("wb")
    process = subprocess.Popen(
        [
            sys.executable, "-m", "amlpkg.runtime", "--model-repository", str(repo),
            "--host", "127.0.0.1", "--http-port", str(http_port), "--grpc-port", str(grpc_port),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    server = ServerProcess(process, http_port, grpc_port, tmp_path / "strict.log")
    try:
        deadline = time.monotonic() + 60
        tried = False
        while time.monotonic() < deadline and not tried:
            try:
                index = httpx.post(f"{server.base_url}/v2/repository/index", content=b"{}")
                rows = {r["name"]: r["state"] for r in index.json()}
                tried = rows.get("broken") == "UNAVAILABLE" and rows.get("good") == "READY"
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        assert tried, server.log()
        assert httpx.get(f"{server.base_url}/v2/health/live").status_code == 200
        assert httpx.get(f"{server.base_url}/v2/health/ready").status_code == 503
        with grpc.insecure_channel(server.grpc_url) as channel:
            stub = pb_grpc.GRPCInferenceServiceStub(channel)
            assert not stub.ServerReady(pb.ServerReadyRequest(), timeout=30).ready
        # Unloading the failed model (the operator gave up on it) makes the server ready.
        assert (
            httpx.post(f"{server.base_url}/v2/repository/models/broken/unload").status_code == 200
        )
        assert httpx.get(f"{server.base_url}/v2/health/ready").status_code == 200
    finally:
        server.stop()
        log.close()


def test_readiness_can_be_relaxed(tmp_path: Path) -> None:
    repo = _repo_with_a_broken_model(tmp_path / "repo")
    server = start_server(repo, tmp_path, "--strict-readiness", "false")  # waits for 200
    try:
        with grpc.insecure_channel(server.grpc_url) as channel:
            stub = pb_grpc.GRPCInferenceServiceStub(channel)
            assert stub.ServerReady(pb.ServerReadyRequest(), timeout=30).ready
    finally:
        server.stop()


def test_failed_reloads_leave_the_serving_version_serving(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    toy_models.save(toy_models.identity_model("FP32"), repo, "tx")
    (repo / "tx" / "config.yaml").write_text("max_batch_size: 8\n")
    server = start_server(repo, tmp_path)
    body = orjson.dumps(
        {"inputs": [{"name": "INPUT0", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]}]}
    )
    stop = threading.Event()
    failures: list[str] = []
    served = 0

    def score() -> None:
        nonlocal served
        with httpx.Client(base_url=server.base_url, timeout=30) as client:
            while not stop.is_set():
                response = client.post("/v2/models/tx/infer", content=body)
                if response.status_code == 200:
                    served += 1
                else:
                    failures.append(f"{response.status_code} {response.text[:200]}")

    scorer = threading.Thread(target=score)
    scorer.start()
    try:
        with httpx.Client(base_url=server.base_url, timeout=60) as client:
            time.sleep(0.3)
            # 1. A new, corrupt version appears on disk (the policy selects only it).
            (repo / "tx" / "2").mkdir()
            (repo / "tx" / "2" / "model.onnx").write_bytes(b"corrupt")
            first = client.post("/v2/repository/models/tx/load")
            assert first.status_code == 400 and "failed to load 'tx'" in first.json()["error"]
            # 2. A config that does not fit the model.
            bad_config = {"parameters": {"config": '{"max_batch_size": 8, "inputs": {"nope": {}}}'}}
            second = client.post("/v2/repository/models/tx/load", content=orjson.dumps(bad_config))
            assert second.status_code == 400
            # 3. A corrupt file override.
            override = {"parameters": {"file:3/model.onnx": base64.b64encode(b"junk").decode()}}
            third = client.post("/v2/repository/models/tx/load", content=orjson.dumps(override))
            assert third.status_code == 400
            time.sleep(0.3)
            index = {
                (r["name"], r["version"]): r["state"]
                for r in client.post("/v2/repository/index", content=b"{}").json()
            }
            assert index[("tx", "1")] == "READY"
            assert client.get("/v2/health/ready").status_code == 200
    finally:
        stop.set()
        scorer.join(30)
        server.stop()
    assert not failures, failures[:5]
    assert served > 10
