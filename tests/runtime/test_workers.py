"""``--workers 2``: two real server processes on one set of ports.

Each request here goes over a new connection, which the kernel hands to either worker,
so what one worker registered or counted must be seen through the other.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import orjson
import pytest
import tritonclient.utils.shared_memory as shm

from tests.runtime.conftest import ServerProcess, free_port, start_server

pytestmark = pytest.mark.slow
DATA = np.arange(8, dtype=np.float32).reshape(2, 4)


def _children(pid: int) -> set[int]:
    """The worker processes of the server ``pid`` (not multiprocessing's resource tracker)."""
    found = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            try:
                cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
            except OSError:
                continue
            if b"spawn_main" in cmdline:
                found.add(int(child))
    return found


def _wait_ready(server: ServerProcess, workers_started: int) -> None:
    """Until that many workers have said ready in the log (each loads its own models)."""
    deadline = time.monotonic() + 60
    while server.log().count("amlpkg.runtime.server: ready") < workers_started:
        assert time.monotonic() < deadline, server.log()
        time.sleep(0.2)


def _fresh(server: ServerProcess, method: str, path: str, **kwargs: object) -> httpx.Response:
    """One request on a connection of its own."""
    with httpx.Client(base_url=server.base_url, timeout=10) as client:
        return client.request(method, path, **kwargs)  # type: ignore[arg-type]


def _infer_add_sub(server: ServerProcess, count: int) -> None:
    """``count`` add_sub requests, each on a connection of its own (any worker may answer)."""
    body = {
        "inputs": [
            {"name": n, "datatype": "FP32", "shape": [1, 16], "data": list(range(16))}
            for n in ("INPUT0", "INPUT1")
        ]
    }
    for _ in range(count):
        answer = _fresh(server, "POST", "/v2/models/add_sub/infer", json=body)
        assert answer.status_code == 200, answer.text


def _infer_body() -> dict[str, object]:
    return {
        "inputs": [
            {"name": "INPUT0", "datatype": "FP32", "shape": [2, 4], "data": DATA.ravel().tolist()}
        ]
    }


@pytest.fixture(scope="module")
def workers(model_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A two-worker server whose workers have both loaded their models."""
    metrics_port = free_port()
    running = start_server(
        model_repo,
        tmp_path_factory.mktemp("workers"),
        "--workers", "2",
        "--metrics-port", str(metrics_port),
    )  # fmt: skip
    running.metrics_port = metrics_port  # type: ignore[attr-defined]
    try:
        deadline = time.monotonic() + 60
        # Both ready: 20 fresh connections in a row all say so.
        while (
            sum(_fresh(running, "GET", "/v2/health/ready").status_code == 200 for _ in range(20))
            < 20
        ):
            assert time.monotonic() < deadline, running.log()
            time.sleep(0.2)
        yield running
    finally:
        running.stop()


def _served(workers: ServerProcess, model: str) -> tuple[int, int, int]:
    """(samples, successful requests, batches) of the statistics one worker answers."""
    entry = _fresh(workers, "GET", f"/v2/models/{model}/stats").json()["model_stats"][0]
    batches = sum(b["compute_infer"]["count"] for b in entry["batch_stats"])
    return entry["inference_count"], entry["inference_stats"]["success"]["count"], batches


def test_two_worker_processes_serve_one_port(workers: ServerProcess) -> None:
    assert len(_children(workers.process.pid)) == 2
    before = _served(workers, "identity_fp32")
    for _ in range(31):
        answer = _fresh(workers, "POST", "/v2/models/identity_fp32/infer", json=_infer_body())
        assert answer.status_code == 200, answer.text
    # Each worker counts what it served, and the one asked adds its sibling's counters:
    # whichever worker the connection reaches (both do, over 31 + 20 connections) answers
    # the total, as perf_analyzer needs when it reads them before and after a window.
    after = {_served(workers, "identity_fp32") for _ in range(20)}
    assert after == {(before[0] + 31 * len(DATA), before[1] + 31, before[2] + 31)}, after


def test_statistics_over_grpc_add_up_every_worker(workers: ServerProcess) -> None:
    import tritonclient.grpc as grpcclient

    def grpc_count() -> int:
        client = grpcclient.InferenceServerClient(f"127.0.0.1:{workers.grpc_port}")
        try:
            stats = client.get_inference_statistics("add_sub", as_json=True)
        finally:
            client.close()
        return int(stats["model_stats"][0].get("inference_count", 0))

    before = grpc_count()
    _infer_add_sub(workers, 15)
    assert {grpc_count() for _ in range(8)} == {before + 15}


def test_metrics_add_up_every_worker(workers: ServerProcess) -> None:
    def served() -> float:
        port = workers.metrics_port  # type: ignore[attr-defined]
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("amlpkg_inference_requests_total{")
            and 'model="add_sub"' in line
            and 'outcome="success"' in line
        )

    before = served()
    _infer_add_sub(workers, 24)
    # Whichever worker answers /metrics reports both workers' requests.
    assert [served() - before for _ in range(6)] == [24.0] * 6


def test_a_region_registered_through_one_worker_serves_through_all(
    workers: ServerProcess,
) -> None:
    key, name = f"/amlpkg_w_{uuid.uuid4().hex[:8]}", f"in_{uuid.uuid4().hex[:8]}"
    handle = shm.create_shared_memory_region(name, key, DATA.nbytes)
    shm.set_shared_memory_region(handle, [DATA])
    body = {
        "inputs": [
            {
                "name": "INPUT0",
                "datatype": "FP32",
                "shape": [2, 4],
                "parameters": {
                    "shared_memory_region": name,
                    "shared_memory_byte_size": DATA.nbytes,
                },
            }
        ]
    }
    try:
        register = {"key": key, "offset": 0, "byte_size": DATA.nbytes}
        path = f"/v2/systemsharedmemory/region/{name}/register"
        assert _fresh(workers, "POST", path, json=register).status_code == 200
        again = _fresh(workers, "POST", path, json=register)
        assert again.status_code == 409 and "already in manager" in again.text
        for _ in range(16):
            answer = _fresh(workers, "POST", "/v2/models/identity_fp32/infer", json=body)
            assert answer.status_code == 200, answer.text
            assert answer.json()["outputs"][0]["data"] == DATA.ravel().tolist()
        statuses = [
            _fresh(workers, "GET", "/v2/systemsharedmemory/status").json() for _ in range(6)
        ]
        assert all(name in {r["name"] for r in s} for s in statuses)
        unregister = f"/v2/systemsharedmemory/region/{name}/unregister"
        assert _fresh(workers, "POST", unregister).status_code == 200
        # Gone for every worker, including those that had it mapped.
        for _ in range(16):
            answer = _fresh(workers, "POST", "/v2/models/identity_fp32/infer", json=body)
            assert answer.status_code == 404 and "Unable to find" in answer.text
    finally:
        shm.destroy_shared_memory_region(handle)


def test_model_control_is_refused_with_what_to_do(workers: ServerProcess) -> None:
    for action in ("load", "unload"):
        answer = _fresh(workers, "POST", f"/v2/repository/models/spare/{action}")
        assert answer.status_code == 400
        error = orjson.loads(answer.content)["error"]
        assert f"explicit model {action} is not allowed" in error and "--workers 1" in error


def test_a_killed_worker_is_replaced(workers: ServerProcess) -> None:
    victim = min(_children(workers.process.pid))
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 60
    while True:
        children = _children(workers.process.pid)
        if len(children) == 2 and victim not in children:
            break
        assert time.monotonic() < deadline, workers.log()
        time.sleep(0.2)
    while (
        sum(_fresh(workers, "GET", "/v2/health/ready").status_code == 200 for _ in range(20)) < 20
    ):
        assert time.monotonic() < deadline, workers.log()
        time.sleep(0.2)
    assert f"pid {victim}) exited with -9" in workers.log()


def test_sigterm_stops_every_worker_and_cleans_up(model_repo: Path, tmp_path: Path) -> None:
    running = start_server(model_repo, tmp_path, "--workers", "2")
    children = _children(running.process.pid)
    assert running.stop() == 0
    for pid in children:
        assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text()
    assert "stopping 2 workers" in running.log()


def test_a_taken_port_fails_at_once_with_a_clear_error(model_repo: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        argv = [sys.executable, "-m", "amlpkg.runtime", "--model-repository", str(model_repo)]
        argv += ["--host", "127.0.0.1", "--http-port", str(port), "--grpc-port", "0"]
        done = subprocess.run(
            [*argv, "--workers", "2"],
            check=False,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 2
    assert f"cannot listen for HTTP on 127.0.0.1:{port}" in done.stderr
