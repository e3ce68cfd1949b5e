"""A canary gated on ``drift``: real runtimes export their output summaries by OTLP to
the real collector, and the gate compares the canary's histogram with the serving one's.

The Kubernetes API is kmock (no API server can run here, see
:mod:`tests.rollout.test_k8s_canary`); everything else is real: each revision's
runtime is an in-process data plane on real ONNX Runtime with the environment of its
pods' scoring container as applied to kmock (``telemetry_endpoint``: the ``OTEL_*``
variables tagged with the revision's id, output summaries on), its traces and metrics
posted over HTTP to a collector on a free port.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import numpy as np

from amlpkg.collector.server import running_collector
from amlpkg.packager.deploy import canary, records
from amlpkg.packager.deploy import k8s_manifests as k8s
from amlpkg.packager.deploy.otel import telemetry_env
from amlpkg.packager.deploy.targets.kubernetes import KubernetesTarget
from amlpkg.runtime.dataplane import DataPlane
from amlpkg.runtime.types import InferInput, InferRequest
from amlpkg.store.workspace import Workspace
from tests.edge_agent.conftest import add_model
from tests.packager.test_deploy_kubernetes import VERSIONS
from tests.rollout.test_k8s_canary import DEPLOYMENTS, _deploy, image, target, ws

__all__ = ["target", "ws"]  # fixtures
GATE = "error_rate<0.01,drift<0.2"
AMLPKG = str(Path(sys.executable).parent / "amlpkg")


def pod_env(target: KubernetesTarget, deployment: str) -> dict[str, str]:
    """The scoring container's environment in the Deployment ``deployment`` on kmock."""
    obj = target._call("GET", f"{DEPLOYMENTS}/{deployment}")[1]
    container = obj["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e["value"] for e in container.get("env", [])}


def _serve(tmp: Path, environ: dict[str, str], offset: float, n: int) -> None:
    """``n`` requests of 4 rows through a runtime with ``environ``, answering X + offset."""
    repo = tmp / f"repo-{len(list(tmp.iterdir()))}"
    (repo / "scorer" / "1").mkdir(parents=True)
    (repo / "scorer" / "1" / "model.onnx").write_bytes(add_model(offset))
    summaries = environ.get("AMLPKG_SERVER_OUTPUT_SUMMARIES") == "true"

    async def run() -> None:
        dp = DataPlane.from_repository(repo, environ=environ, output_summaries=summaries)
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
    with running_collector(ws, port=0) as collector:
        telemetry = {"telemetry_endpoint": collector.url, "ready_timeout_s": 20.0}
        stable = _deploy(ws, target, 1, **telemetry)
        stable_env = pod_env(target, "web")
        same = _deploy(ws, target, 2, canary_percent=10, **telemetry)
        canary_env = pod_env(target, "web-canary")
        assert stable_env["OTEL_RESOURCE_ATTRIBUTES"] == f"amlpkg.deployment={stable.id}"
        assert canary_env["OTEL_RESOURCE_ATTRIBUTES"] == f"amlpkg.deployment={same.id}"
        assert canary_env["OTEL_EXPORTER_OTLP_ENDPOINT"] == collector.url
        assert stable_env["AMLPKG_SERVER_OUTPUT_SUMMARIES"] == "true"  # both revisions count
        assert canary_env["AMLPKG_SERVER_OUTPUT_SUMMARIES"] == "true"
        _serve(tmp_path, canary_env, 1.0, 2)  # too few outputs to compare
        verdict, decided = canary.decide(ws, target, "web", GATE)
        assert verdict["decided"] is False and decided is None
        assert any("serving revision: 0 of 20" in w for w in verdict["waiting"])
        cli = [AMLPKG, "rollout", "canary", "web", "--gate", GATE, "--home", str(tmp_path / "home")]
        done = subprocess.run(cli, check=False, capture_output=True, text=True, timeout=60,
                              env={**os.environ, "COLUMNS": "300"})  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert "no decision: canary revision: 8 of 20 output summaries" in done.stdout
        _serve(tmp_path, stable_env, 1.0, 10)
        _serve(tmp_path, canary_env, 1.0, 8)
        verdict, decided = canary.decide(ws, target, "web", GATE)
        assert verdict.get("passed") is True, verdict
        assert verdict["cohort"]["drift"] is not None and verdict["cohort"]["drift"] < 0.2
        assert decided is not None and decided.state["canary"]["decision"] == "promoted"
        promoted_env = pod_env(target, "web")  # the promoted pods report as the canary did
        assert promoted_env["OTEL_RESOURCE_ATTRIBUTES"] == f"amlpkg.deployment={same.id}"

        shifted = _deploy(ws, target, 3, canary_percent=10, **telemetry)
        _serve(tmp_path, promoted_env, 1.0, 10)
        shifted_env = pod_env(target, "web-canary")
        assert shifted_env["OTEL_RESOURCE_ATTRIBUTES"] == f"amlpkg.deployment={shifted.id}"
        _serve(tmp_path, shifted_env, 5.0, 10)  # as fast, no errors
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


def test_manifests_with_telemetry_are_valid() -> None:
    env = telemetry_env("http://collector.monitoring:4318", "web:2")
    opts = k8s.K8sOptions(name="web", image=image(2), canary_percent=10, env=env)
    (deployment,) = k8s.manifests(opts)
    kubernetes_validate.validate(deployment, VERSIONS[-1], strict=True)
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert {"name": "AMLPKG_SERVER_OUTPUT_SUMMARIES", "value": "true"} in container["env"]
