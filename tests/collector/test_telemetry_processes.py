"""`amlpkg telemetry serve` as a process, fed by a runtime process's real OTLP exporter."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.edge_agent.conftest import add_model
from tests.services import free_port

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent


def _wait_ready(url: str, proc: subprocess.Popen[str], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"process exited early: {proc.communicate()[0]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"{url} never became ready")


def _stop(proc: subprocess.Popen[str]) -> str:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.communicate(timeout=60)[0]
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.communicate()[0]


def test_runtime_process_traces_reach_the_collector_process(tmp_path: Path) -> None:
    home = tmp_path / "ws"
    repo = tmp_path / "repo"
    (repo / "m" / "1").mkdir(parents=True)
    (repo / "m" / "1" / "model.onnx").write_bytes(add_model(1.0))
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200"}
    collector_port = free_port()
    collector = subprocess.Popen(
        [str(BIN / "amlpkg"), "telemetry", "serve", "--port", str(collector_port),
         "--home", str(home)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    )  # fmt: skip
    runtime = None
    try:
        _wait_ready(f"http://127.0.0.1:{collector_port}/healthz", collector)
        http_port = free_port()
        runtime_env = {
            **env,
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{collector_port}",
            "OTEL_SERVICE_NAME": "local-dep:1",
        }
        runtime = subprocess.Popen(
            [sys.executable, "-m", "amlpkg.runtime", "--model-repository", str(repo),
             "--host", "127.0.0.1", "--http-port", str(http_port), "--grpc-port", "0"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=runtime_env,
        )  # fmt: skip
        _wait_ready(f"http://127.0.0.1:{http_port}/v2/health/ready", runtime)
        body = json.dumps(
            {"inputs": [{"name": "X", "shape": [1, 4], "datatype": "FP32", "data": [0] * 4}]}
        ).encode()
        for _ in range(4):
            request = urllib.request.Request(
                f"http://127.0.0.1:{http_port}/v2/models/m/infer",
                body,
                {"Content-Type": "application/json"},
            )
            urllib.request.urlopen(request, timeout=10).close()
        runtime_out = _stop(runtime)  # SIGTERM flushes the span exporter
        assert runtime.returncode == 0, runtime_out
    finally:
        if runtime is not None:
            _stop(runtime)
        collector_out = _stop(collector)
    assert collector.returncode == 0, collector_out
    assert re.search(r"OTLP/HTTP on http://127\.0\.0\.1:\d+", collector_out)
    shown = subprocess.run(
        [str(BIN / "amlpkg"), "telemetry", "show", "--deployment", "local-dep:1", "--json",
         "--home", str(home)],
        capture_output=True, text=True, check=True, env=env,
    ).stdout  # fmt: skip
    [summary] = json.loads(shown)["deployments"]
    assert summary["requests"] == 4 and summary["models"] == ["m:1"]
