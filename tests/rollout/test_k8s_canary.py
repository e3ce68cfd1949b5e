"""``--target kubernetes --canary``: manifests validated, promoted and rolled back on kmock.

kmock stands in for a real API server (none can run here; see
``tests/packager/test_deploy_kubernetes.py`` for what it does not emulate). The test
plays the Deployment controller, and writes the runtimes' telemetry the way the
collector stores their OTLP metrics (rows keyed by deployment id).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
from kubernetes import client as kclient

from amlpkg.collector.store import TelemetryRow, TelemetryStore
from amlpkg.errors import FailedPreconditionError
from amlpkg.packager.deploy import canary, records
from amlpkg.packager.deploy import k8s_manifests as k8s
from amlpkg.packager.deploy.options import parse as parse_options
from amlpkg.packager.deploy.sources import resolve_source
from amlpkg.packager.deploy.targets.base import DeployRequest
from amlpkg.packager.deploy.targets.kubernetes import KubernetesTarget
from amlpkg.store.workspace import Workspace
from tests.packager.conftest import scorer_workspace
from tests.packager.test_deploy_kubernetes import VERSIONS, _KMock

GATE = "p95_ms<=1.2*control,error_rate<0.01"
DEPLOYMENTS = "/apis/apps/v1/namespaces/default/deployments"


def image(n: int) -> str:
    return f"127.0.0.1:5000/scorer@sha256:{n:02d}" + "ab" * 31


@pytest.fixture
def ws(tmp_path: Path) -> Iterator[Workspace]:
    with scorer_workspace(tmp_path) as workspace:
        yield workspace


@pytest.fixture
def target() -> Iterator[KubernetesTarget]:
    mock = _KMock()
    api = kclient.ApiClient(kclient.Configuration(host=mock.url))
    try:
        yield KubernetesTarget(api)
    finally:
        api.close()
        mock.close()


def _deploy(ws: Workspace, target: KubernetesTarget, n: int, **options: Any) -> Any:
    source = resolve_source(ws, "scorer:1", image=image(n))
    request = DeployRequest("web", source, parse_options("kubernetes", options))
    stop = threading.Event()
    name = "web-canary" if options.get("canary_percent") else "web"
    controller = threading.Thread(target=_play_controller, args=(target, name, stop))
    controller.start()
    try:
        return target.apply(ws, request)
    finally:
        stop.set()
        controller.join(10)


def _play_controller(target: KubernetesTarget, name: str, stop: threading.Event) -> None:
    """Mark the Deployment rolled out once it exists (its replicas), as the controller would."""
    path = f"{DEPLOYMENTS}/{name}"
    while not stop.is_set():
        status, obj = target._call("GET", path)
        if status == 200:
            n = obj["spec"]["replicas"]
            body = {"status": {"observedGeneration": 1, "replicas": n, "updatedReplicas": n,
                               "availableReplicas": n}}  # fmt: skip
            target._call("PATCH", path, body, content_type="application/merge-patch+json")
            return
        time.sleep(0.1)


def _telemetry(ws: Workspace, deployment: str, p95: float, errors: int) -> None:
    rows = [
        TelemetryRow(
            message_id=uuid.uuid4().hex,
            source="otlp_metrics",
            deployment_id=deployment,
            model_name="scorer",
            model_version="1",
            requests=100,
            errors=errors,
            latency_p95_ms=p95,
        )
        for _ in range(3)
    ]
    TelemetryStore(ws).add(rows)


@pytest.mark.parametrize("version", VERSIONS)
def test_canary_manifests_are_valid(version: str) -> None:
    opts = k8s.K8sOptions(name="web", image=image(2), canary_percent=10, stable_replicas=4)
    (deployment,) = k8s.manifests(opts)
    kubernetes_validate.validate(deployment, version, strict=True)
    assert deployment["metadata"]["name"] == "web-canary"
    assert deployment["spec"]["replicas"] == 1  # 1 of 5 pods behind the one Service
    assert deployment["spec"]["selector"]["matchLabels"]["amlpkg.ai/track"] == "canary"
    stable_selector = k8s.service(opts)["spec"]["selector"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert stable_selector.items() <= labels.items()  # the Service reaches the canary pods
    (isvc,) = k8s.manifests(k8s.K8sOptions(name="web", image=image(2), kserve=True,
                                           canary_percent=10))  # fmt: skip
    assert isvc["spec"]["predictor"]["canaryTrafficPercent"] == 10
    assert isvc["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "Serverless"
    predictor = isvc["spec"]["predictor"]
    kserve_only = ("minReplicas", "maxReplicas", "canaryTrafficPercent")
    spec = {k: v for k, v in predictor.items() if k not in kserve_only}
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web"}, "spec": spec}
    kubernetes_validate.validate(pod, version, strict=True)


def test_a_good_canary_is_promoted_and_a_bad_one_rolled_back(
    ws: Workspace, target: KubernetesTarget
) -> None:
    with pytest.raises(FailedPreconditionError, match="needs a serving revision"):
        _deploy(ws, target, 1, canary_percent=10, ready_timeout_s=5.0)
    stable = _deploy(ws, target, 1, ready_timeout_s=20.0)
    assert stable.status == "ready"

    first = _deploy(ws, target, 2, canary_percent=10, ready_timeout_s=20.0)
    assert first.status == "ready"
    assert records.get(ws, stable.id).status == "ready"  # both serve until the gate decides
    assert target._call("GET", f"{DEPLOYMENTS}/web-canary")[1]["spec"]["template"]["spec"][
        "containers"][0]["image"] == image(2)  # fmt: skip
    verdict, decided = canary.decide(ws, target, "web", GATE)
    assert verdict["decided"] is False and decided is None  # no canary traffic yet
    _telemetry(ws, stable.id, p95=10.0, errors=0)
    _telemetry(ws, first.id, p95=10.5, errors=0)
    verdict, decided = canary.decide(ws, target, "web", GATE)
    assert verdict["passed"] is True and decided is not None
    assert decided.state["canary"]["decision"] == "promoted"
    assert target._call("GET", f"{DEPLOYMENTS}/web-canary")[0] == 404
    web = target._call("GET", f"{DEPLOYMENTS}/web")[1]
    assert web["spec"]["template"]["spec"]["containers"][0]["image"] == image(2)
    assert records.get(ws, stable.id).status == "stopped"

    second = _deploy(ws, target, 3, canary_percent=10, ready_timeout_s=20.0)
    _telemetry(ws, second.id, p95=30.0, errors=5)
    verdict, decided = canary.decide(ws, target, "web", GATE)
    assert verdict["passed"] is False and decided is not None
    assert {f["metric"] for f in verdict["failures"]} == {"p95_ms", "error_rate"}
    assert decided.status == "stopped" and "canary rolled back" in (decided.reason or "")
    assert target._call("GET", f"{DEPLOYMENTS}/web-canary")[0] == 404
    web = target._call("GET", f"{DEPLOYMENTS}/web")[1]
    assert web["spec"]["template"]["spec"]["containers"][0]["image"] == image(2)
    assert records.serving(ws, "web") == records.get(ws, first.id)
    with pytest.raises(FailedPreconditionError, match="no canary"):
        canary.evaluate(ws, "web", GATE)
