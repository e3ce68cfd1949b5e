"""``python -m amlpkg.edge_agent --standalone``: the agent process polling a desired-state file."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from amlpkg.collector.server import running_collector
from amlpkg.store.workspace import open_workspace
from tests.edge_agent.conftest import add_model, sha256, write
from tests.services import free_port

pytestmark = pytest.mark.slow


def wait_for(
    check: Callable[[], bool], timeout: float, what: str, proc: subprocess.Popen[str]
) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return
        except OSError:
            pass
        if proc.poll() is not None:
            raise AssertionError(f"agent exited ({proc.returncode}) waiting for {what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def infer(port: int) -> float:
    body = json.dumps(
        {"inputs": [{"name": "X", "shape": [1, 4], "datatype": "FP32", "data": [0, 0, 0, 0]}]}
    ).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/v2/models/m/infer", body, {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        return float(json.loads(response.read())["outputs"][0]["data"][0])


def desired(tmp: Path, offset: float, version: int) -> dict[str, object]:
    data = add_model(offset)
    src = write(tmp, f"m{version}.onnx", data)
    return {
        "model": {"name": "m", "version": version, "sha256": sha256(data), "url": src.as_uri()},
        "telemetry_interval_s": 0.3,
    }


def serves_one_then_two(
    tmp_path: Path, state_file: Path, port: int, proc: subprocess.Popen[str]
) -> None:
    """The agent serves m:1, then m:2 once ``state_file`` asks for it, and reports m:2."""
    wait_for(lambda: infer(port) == 1.0, 60, "model 1", proc)
    state_file.write_text(json.dumps(desired(tmp_path, 2.0, 2)))
    wait_for(lambda: infer(port) == 2.0, 60, "model 2", proc)
    reported = tmp_path / "agent" / "reported.json"
    wait_for(
        lambda: json.loads(reported.read_text())["model"]["version"] == "2",
        30,
        "reported version 2",
        proc,
    )


def test_standalone_agent_follows_the_desired_file(tmp_path: Path) -> None:
    state_file = tmp_path / "desired.json"
    state_file.write_text(json.dumps(desired(tmp_path, 1.0, 1)))
    http_port, grpc_port = free_port(), free_port()
    with open_workspace(tmp_path / "ws") as ws, running_collector(ws, port=0) as collector:
        cmd = [
            sys.executable, "-m", "amlpkg.edge_agent",
            "--standalone", str(state_file),
            "--state-dir", str(tmp_path / "agent"),
            "--device-id", "dev-s", "--deployment-id", "dep-s:1",
            "--host", "127.0.0.1", "--http-port", str(http_port), "--grpc-port", str(grpc_port),
            "--telemetry-url", collector.url, "--poll-interval", "0.3",
            "--log-level", "warning",
        ]  # fmt: skip
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            serves_one_then_two(tmp_path, state_file, http_port, proc)
            count = "SELECT COUNT(*) FROM telemetry WHERE device_id = 'dev-s'"
            wait_for(lambda: ws.conn.execute(count).fetchone()[0] >= 2, 30, "telemetry", proc)
        finally:
            proc.send_signal(signal.SIGTERM)
            output = proc.communicate(timeout=60)[0]
        assert proc.returncode == 0, output
        deployment = ws.conn.execute(
            "SELECT deployment_id FROM devices WHERE id = 'dev-s'"
        ).fetchone()[0]
    assert deployment == "dep-s:1"


def test_agent_without_a_link_exits_with_a_hint(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IOTEDGE_", "AMLPKG_EDGE"))}
    done = subprocess.run(
        [sys.executable, "-m", "amlpkg.edge_agent", "--state-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "hint: pass --standalone" in done.stderr
