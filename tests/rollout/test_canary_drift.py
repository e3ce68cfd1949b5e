"""A canary gated on ``drift``: real runtimes export their output summaries by OTLP to
the real collector, and the gate compares the canary's histogram with the serving one's.

The Kubernetes API is kmock (no API server can run here, see
:mod:`tests.rollout.test_k8s_canary`); everything else is real: each revision's
runtime is an in-process data plane on real ONNX Runtime with output summaries on and
the ``OTEL_*`` variables a deployment gets (:func:`amlpkg.packager.deploy.otel.telemetry_env`),
its traces and metrics posted over HTTP to a collector on a free port.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np

from amlpkg.collector.server import running_collector
from amlpkg.packager.deploy import canary, records
from amlpkg.packager.deploy.otel import telemetry_env
from amlpkg.packager.deploy.targets.kubernetes import KubernetesTarget
from amlpkg.runtime.dataplane import DataPlane
from amlpkg.runtime.types import InferInput, InferRequest
from amlpkg.store.workspace import Workspace
from tests.edge_agent.conftest import add_model
from tests.rollout.test_k8s_canary import DEPLOYMENTS, _deploy, image, target, ws

__all__ = ["target", "ws"]  # fixtures
GATE = "error_rate<0.01,drift<0.2"


def _serve(tmp: Path, collector_url: str, deployment_id: str, offset: float, n: int) -> None:
    """``n`` requests of 4 rows through a runtime of ``deployment_id`` answering X + offset."""
    repo = tmp / deployment_id
    (repo / "scorer" / "1").mkdir(parents=True, exist_ok=True)
    (repo / "scorer" / "1" / "model.onnx").write_bytes(add_model(offset))
    environ = telemetry_env(collector_url, deployment_id)
    assert environ["AMLPKG_SERVER_OUTPUT_SUMMARIES"] == "true"  # every revision counts them

    async def run() -> None:
        dp = DataPlane.from_repository(repo, environ=environ, output_summaries=True)
        await dp.start()
        rng = np.random.default_rng(0)
        try:
            for _ in range(n):
                x = rng.uniform(0.5, 1.5, (4, 4)).astype(np.float32)
                await dp.infer(InferRequest("scorer", None, [InferInput("X", "FP32", (4, 4), x)]))
        finally:
            await dp.stop()  # exports the last spans and summary deltas

    asyncio.run(run())


def test_a_canary_with_shifted_outputs_is_rolled_back_by_drift(
    ws: Workspace, target: KubernetesTarget, tmp_path: Path
) -> None:
    stable = _deploy(ws, target, 1, ready_timeout_s=20.0)
    with running_collector(ws, port=0) as collector:
        same = _deploy(ws, target, 2, canary_percent=10, ready_timeout_s=20.0)
        _serve(tmp_path, collector.url, same.id, 1.0, 2)  # too few outputs to compare
        verdict, decided = canary.decide(ws, target, "web", GATE)
        assert verdict["decided"] is False and decided is None
        assert any("serving revision: 0 of 20" in w for w in verdict["waiting"])
        _serve(tmp_path, collector.url, stable.id, 1.0, 10)
        _serve(tmp_path, collector.url, same.id, 1.0, 8)
        verdict, decided = canary.decide(ws, target, "web", GATE)
        assert verdict.get("passed") is True, verdict
        assert verdict["cohort"]["drift"] is not None and verdict["cohort"]["drift"] < 0.2
        assert decided is not None and decided.state["canary"]["decision"] == "promoted"

        shifted = _deploy(ws, target, 3, canary_percent=10, ready_timeout_s=20.0)
        _serve(tmp_path, collector.url, same.id, 1.0, 10)
        _serve(tmp_path, collector.url, shifted.id, 5.0, 10)  # as fast, no errors
        verdict, decided = canary.decide(ws, target, "web", GATE)
    assert verdict["passed"] is False and decided is not None
    assert verdict["cohort"]["error_rate"] == 0.0
    assert [f["metric"] for f in verdict["failures"]] == ["drift"]
    assert verdict["failures"][0]["observed"] > 0.5
    assert "drift<0.2 failed" in (decided.reason or "")
    assert decided.status == "stopped"
    assert target._call("GET", f"{DEPLOYMENTS}/web-canary")[0] == 404
    web = target._call("GET", f"{DEPLOYMENTS}/web")[1]
    assert web["spec"]["template"]["spec"]["containers"][0]["image"] == image(2)
    assert records.serving(ws, "web") == records.get(ws, same.id)
