"""``--target kubernetes``: manifests checked against the official schemas, apply code on kmock.

No API server can run on these machines. So:

- every generated object is validated with ``kubernetes-validate`` (strict: unknown
  fields fail) against the published schemas of Kubernetes 1.29 and 1.33;
- apply/status/delete run the real ``kubernetes`` client against ``kmock``'s
  in-memory API. Limits of that mock, stated: it stores objects as plain JSON and
  merges patches as dicts (no strategic merge, no server-side-apply field
  ownership, no defaulting, no ``metadata.generation``), runs no controllers (the
  test plays the Deployment controller by patching ``status``), validates
  nothing, and creates nothing on ``PATCH`` of a missing object (which is why
  apply creates with ``POST`` first);
- ``test_real_cluster`` runs the same flow on a real cluster when ``KUBECONFIG`` is set.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kmock
import kubernetes_validate
import pytest
import yaml
from kubernetes import client as kclient

from amlpkg.errors import FailedPreconditionError, UnavailableError
from amlpkg.packager.deploy import k8s_manifests as k8s
from amlpkg.packager.deploy import records
from amlpkg.packager.deploy.options import parse as parse_options
from amlpkg.packager.deploy.sources import resolve_source
from amlpkg.packager.deploy.targets.base import DeployRequest
from amlpkg.packager.deploy.targets.kubernetes import KubernetesTarget, object_path
from amlpkg.store.workspace import Workspace
from amlpkg.trainer.lineage_view import lineage
from tests.packager.conftest import scorer_workspace

VERSIONS = ("1.29.0", "1.33.0")
IMAGE = "127.0.0.1:5000/scorer@sha256:" + "ab" * 32


def _validate(obj: dict[str, Any], version: str) -> None:
    kubernetes_validate.validate(obj, version, strict=True)


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("flavor", ["cpu", "cuda"])
def test_manifests_are_valid_for_two_kubernetes_versions(version: str, flavor: str) -> None:
    objects = k8s.manifests(k8s.K8sOptions(name="web", image=IMAGE, flavor=flavor, gpus=2))
    assert [o["kind"] for o in objects] == [
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
    ]
    for obj in objects:
        _validate(obj, version)
    pod = objects[0]["spec"]["template"]["spec"]
    scoring = pod["containers"][0]
    assert scoring["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert scoring["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    assert scoring["securityContext"]["runAsNonRoot"] is True
    assert scoring["securityContext"]["readOnlyRootFilesystem"] is True
    gpus = scoring["resources"]["limits"].get("nvidia.com/gpu")
    assert gpus == (2 if flavor == "cuda" else None)
    ports = {p["name"]: p["port"] for p in objects[1]["spec"]["ports"]}
    assert ports == {"http": 8000, "grpc": 8001, "metrics": 8002}
    assert objects[2]["apiVersion"] == "autoscaling/v2"


def test_an_invalid_manifest_is_caught_by_the_schema_check() -> None:
    # Proves the check can fail: a typo'd field and a string replica count.
    bad = k8s.deployment(k8s.K8sOptions(name="web", image=IMAGE))
    bad["spec"]["replica"] = 3
    with pytest.raises(kubernetes_validate.ValidationError):
        _validate(bad, VERSIONS[0])


@pytest.mark.parametrize("version", VERSIONS)
def test_kserve_inference_service(version: str) -> None:
    (isvc,) = k8s.manifests(k8s.K8sOptions(name="web", image=IMAGE, kserve=True))
    assert (isvc["apiVersion"], isvc["kind"]) == ("serving.kserve.io/v1beta1", "InferenceService")
    predictor = isvc["spec"]["predictor"]
    assert predictor["containers"][0]["ports"] == [
        {"name": "http1", "containerPort": 8000, "protocol": "TCP"}
    ]
    # No schema of the KServe CRD ships with kubernetes-validate: its pod part is core/v1,
    # so validate it as a Pod.
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web"},
        "spec": {k: v for k, v in predictor.items() if k not in ("minReplicas", "maxReplicas")},
    }
    _validate(pod, version)


class _KMock:
    """kmock's Kubernetes emulator on a free port, on its own event loop thread."""

    def __init__(self) -> None:
        self._ready = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)
        self._thread.start()
        assert self._ready.wait(20), "kmock did not start"

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        async with kmock.KubernetesEmulator() as handler, kmock.Server(handler) as server:
            self.handler = handler
            self.url = str(server.url).rstrip("/")
            self._ready.set()
            await self._stop.wait()

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(20)


@pytest.fixture
def mock() -> Iterator[_KMock]:
    emulator = _KMock()
    try:
        yield emulator
    finally:
        emulator.close()


@pytest.fixture
def api_client(mock: _KMock) -> Iterator[Any]:
    api = kclient.ApiClient(kclient.Configuration(host=mock.url))
    try:
        yield api
    finally:
        api.close()


@pytest.fixture
def ws(tmp_path: Path) -> Iterator[Workspace]:
    with scorer_workspace(tmp_path) as workspace:
        yield workspace


def _request(ws: Workspace, **options: Any) -> DeployRequest:
    source = resolve_source(ws, "scorer:1", image=IMAGE)
    return DeployRequest("web", source, parse_options("kubernetes", options))


def _play_controller(target: KubernetesTarget, path: str, stop: threading.Event) -> None:
    """Mark the Deployment rolled out once it exists, as the real controller would."""
    body = {
        "status": {
            "observedGeneration": 1,
            "replicas": 2,
            "updatedReplicas": 2,
            "readyReplicas": 2,
            "availableReplicas": 2,
        }
    }
    while not stop.is_set():
        if target._call("GET", path)[0] == 200:
            target._call("PATCH", path, body, content_type="application/merge-patch+json")
            return
        time.sleep(0.1)


def test_apply_status_delete_on_kmock(ws: Workspace, api_client: Any, mock: _KMock) -> None:
    target = KubernetesTarget(api_client)
    path = "/apis/apps/v1/namespaces/default/deployments/web"
    stop = threading.Event()
    controller = threading.Thread(target=_play_controller, args=(target, path, stop))
    controller.start()
    try:
        record = target.apply(ws, _request(ws, ready_timeout_s=20.0))
    finally:
        stop.set()
        controller.join(10)
    assert record.status == "ready" and record.reason == "rolled out: 2/2 available"
    assert record.endpoint_http == "http://web.default.svc:8000"
    assert record.endpoint_grpc == "web.default.svc:8001"
    assert record.image == IMAGE
    stored = target._call("GET", path)[1]
    assert stored["metadata"]["labels"]["amlpkg.ai/model-version"] == "1"
    assert stored["spec"]["template"]["spec"]["containers"][0]["image"] == IMAGE
    assert [e["dst_id"] for e in lineage("scorer:1", workspace=ws)["downstream"]] == ["web:1"]

    live = target.status(ws, record)
    assert live["ready"] is True and all(live["objects"].values())
    assert len(live["objects"]) == 4

    # Applying again (a new revision) is a server-side apply PATCH of the existing objects.
    again = target.apply(ws, _request(ws, replicas=2, wait=False))
    assert again.id == "web:2" and records.get(ws, "web:1").status == "stopped"
    patches = [r for r in list(mock.handler) if r.method.value == "PATCH" and r.url.path == path]
    applied = patches[-1]
    assert applied.headers["Content-Type"] == "application/apply-patch+yaml"
    assert applied.url.query["fieldManager"] == "amlpkg"

    deleted = target.delete(ws, again)
    assert deleted.status == "stopped" and deleted.reason == "deleted"
    for obj_path in again.state["objects"]:
        assert target._call("GET", obj_path)[0] == 404
    assert target.status(ws, deleted)["ready"] is False


def test_rollout_that_never_completes_is_recorded_failed(ws: Workspace, api_client: Any) -> None:
    target = KubernetesTarget(api_client)
    with pytest.raises(FailedPreconditionError, match="did not roll out"):
        target.apply(ws, _request(ws, ready_timeout_s=1.0))
    failed = records.get(ws, "web:1")
    assert failed.status == "failed" and "observe the new spec" in (failed.reason or "")


def test_object_paths() -> None:
    opts = k8s.K8sOptions(name="web", image=IMAGE, namespace="ml")
    assert [object_path(o) for o in k8s.manifests(opts)] == [
        "/apis/apps/v1/namespaces/ml/deployments/web",
        "/api/v1/namespaces/ml/services/web",
        "/apis/autoscaling/v2/namespaces/ml/horizontalpodautoscalers/web",
        "/apis/policy/v1/namespaces/ml/poddisruptionbudgets/web",
    ]
    assert yaml.safe_load_all(k8s.to_yaml(k8s.manifests(opts)))


@pytest.mark.skipif(not os.environ.get("KUBECONFIG"), reason="needs a real cluster (KUBECONFIG)")
def test_real_cluster(ws: Workspace) -> None:
    """Apply, wait for the rollout (needs an image the cluster can pull: AMLPKG_TEST_IMAGE)."""
    image = os.environ.get("AMLPKG_TEST_IMAGE", IMAGE)
    target = KubernetesTarget()
    request = DeployRequest(
        "amlpkg-test",
        resolve_source(ws, "scorer:1", image=image),
        parse_options("kubernetes", {"replicas": 1, "min_replicas": 1, "ready_timeout_s": 300.0}),
    )
    record = target.apply(ws, request)
    try:
        assert record.status == "ready"
        assert target.status(ws, record)["ready"] is True
    finally:
        target.delete(ws, record)


def test_a_foreign_exception_fails_the_revision_and_keeps_the_previous(
    ws: Workspace, api_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = KubernetesTarget(api_client)
    first = target.apply(ws, _request(ws, wait=False))
    assert first.status == "ready"
    applied = target.apply_object
    calls: list[str] = []

    def breaks_on_the_second_object(obj: dict[str, Any]) -> dict[str, Any]:
        calls.append(obj["kind"])
        if len(calls) == 2:
            raise RuntimeError("connection reset by the API server")
        return applied(obj)

    monkeypatch.setattr(target, "apply_object", breaks_on_the_second_object)
    with pytest.raises(UnavailableError, match="connection reset") as caught:
        target.apply(ws, _request(ws, wait=False, replicas=3))
    assert "web:1 keeps serving" in (caught.value.hint or "")
    failed = records.get(ws, "web:2")
    assert failed.status == "failed" and "connection reset" in (failed.reason or "")
    assert records.serving(ws, "web") == records.get(ws, "web:1")
    for path in first.state["objects"]:
        assert target._call("GET", path)[0] == 200
