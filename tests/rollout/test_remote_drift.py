"""An edge agent with ``--scoring-url`` reports output summaries, so ``drift`` gates its
device too: the scoring module (a real ``python -m amlpkg.runtime`` process, with the
environment the IoT Edge manifest gives it) counts them, the agent reads them from its
``/metrics`` and its telemetry reaches the real collector with them; the agent's smoke
inferences are not counted.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from amlpkg.collector.server import running_collector
from amlpkg.collector.windows import device_windows
from amlpkg.packager.deploy import iotedge_manifest as edge
from amlpkg.runtime.summaries import bins
from amlpkg.store.workspace import open_workspace
from tests.edge_agent.test_standalone import desired, infer, wait_for
from tests.runtime.conftest import start_server

pytestmark = pytest.mark.slow
REQUESTS = 25


def _scoring_module_env() -> dict[str, str]:
    """The environment of the scoring module in an IoT Edge deployment manifest."""
    opts = edge.EdgeOptions(
        name="plant",
        image="registry.local/plant:1",
        model={"name": "m", "version": "1", "sha256": "0" * 64, "url": "https://x/m.onnx"},
        agent_image="amlpkg-edge-agent:latest",
    )
    modules = edge.deployment_manifest(opts)["modulesContent"]["$edgeAgent"]["properties.desired"]
    return {k: v["value"] for k, v in modules["modules"]["plant"].get("env", {}).items()}


def test_an_agent_with_a_scoring_url_reports_output_summaries(tmp_path: Path) -> None:
    repo = tmp_path / "scoring-repo"
    repo.mkdir()
    env = _scoring_module_env()
    assert env == {"AMLPKG_SERVER_OUTPUT_SUMMARIES": "true"}
    scoring = start_server(repo, tmp_path, env=env)
    state_file = tmp_path / "desired.json"
    state_file.write_text(json.dumps(desired(tmp_path, 1.0, 1)))
    norm_bin = str(int(bins(np.array([2.0]))[0]))  # X = 0, Y = X + 1: rows [1, 1, 1, 1], norm 2
    try:
        with open_workspace(tmp_path / "ws") as ws, running_collector(ws, port=0) as collector:
            cmd = [
                sys.executable, "-m", "amlpkg.edge_agent",
                "--standalone", str(state_file), "--scoring-url", scoring.base_url,
                "--state-dir", str(tmp_path / "agent"), "--device-id", "dev-s",
                "--deployment-id", "dep-s:1", "--telemetry-url", collector.url,
                "--poll-interval", "0.3", "--log-level", "warning",
            ]  # fmt: skip
            proc = subprocess.Popen(
                cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
            )

            def reported() -> int:
                rows = device_windows(ws, 0.0, ["dev-s"])
                return sum((w.outputs or {}).get(norm_bin, 0) for w in rows)

            try:
                wait_for(lambda: infer(scoring.http_port) == 1.0, 60, "model 1", proc)
                for _ in range(REQUESTS - 1):
                    assert infer(scoring.http_port) == 1.0
                wait_for(lambda: reported() >= REQUESTS, 30, "summaries in telemetry", proc)
                time.sleep(1.0)  # a few more windows: nothing counted twice
                counted = reported()
                metrics = httpx.get(f"{scoring.base_url}/metrics", timeout=10).text
            finally:
                proc.send_signal(signal.SIGTERM)
                output = proc.communicate(timeout=60)[0]
            assert proc.returncode == 0, output
    finally:
        scoring.stop()
    assert counted == REQUESTS
    # the smoke inference of the swap went to the same module and was left out
    line = f'amlpkg_output_summary_total{{bin="{norm_bin}",model="m",version="1"}}'
    assert f"{line} {float(REQUESTS)}" in metrics
