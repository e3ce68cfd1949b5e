"""``--target kubernetes``: apply the generated manifests with the official client.

Objects are applied one by one with server-side apply (``PATCH`` with
``application/apply-patch+yaml``, ``fieldManager=amlpkg``, ``force=true``); an
object that does not exist yet is created with ``POST`` first (the same result on a
real API server, and what the in-memory test API supports). Rollout is awaited the
way ``kubectl rollout status`` does: observedGeneration caught up, every replica
updated and available. Verification is the readiness probe on ``/v2/health/ready``:
a pod that cannot answer it never becomes available, and the rollout times out.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any, ClassVar

from amlpkg.errors import AmlpkgError, FailedPreconditionError, UnavailableError
from amlpkg.packager.deploy import k8s_manifests as k8s
from amlpkg.packager.deploy import records
from amlpkg.packager.deploy.lifecycle import Lifecycle
from amlpkg.packager.deploy.options import DeployOptions, KubernetesOptions
from amlpkg.packager.deploy.otel import telemetry_env
from amlpkg.packager.deploy.records import DeploymentRecord
from amlpkg.packager.deploy.sources import image_for, package_for
from amlpkg.packager.deploy.targets.base import DeployRequest, Plan, Prepared, Revision
from amlpkg.store.workspace import Workspace

FIELD_MANAGER = "amlpkg"
_PLURALS = {
    "Deployment": "deployments",
    "Service": "services",
    "HorizontalPodAutoscaler": "horizontalpodautoscalers",
    "PodDisruptionBudget": "poddisruptionbudgets",
    "InferenceService": "inferenceservices",
}


def object_path(obj: dict[str, Any]) -> str:
    """The REST path of an object (``/api/v1/...`` or ``/apis/GROUP/VERSION/...``)."""
    api_version, kind = obj["apiVersion"], obj["kind"]
    prefix = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
    meta = obj["metadata"]
    return f"{prefix}/namespaces/{meta['namespace']}/{_PLURALS[kind]}/{meta['name']}"


def fetcher_image(ws: Workspace, request: DeployRequest[KubernetesOptions]) -> str | None:
    """The image that fetches a ModelPack ``oci://`` source in the pods (None: no need).

    ``--agent-image`` pinned by digest, else the newest edge agent image built for amd64.
    """
    oci = request.source.oci
    if oci is None or oci.kind != "modelpack":
        return None
    from amlpkg.packager.deploy import oci_source

    if request.options.agent_image:
        return oci_source.pin_image(request.options.agent_image)
    from amlpkg.packager.build.agent_image import newest_agent_image

    found = newest_agent_image(ws, "linux/amd64")
    if found is None:
        raise FailedPreconditionError(
            "pods fetch an oci:// ModelPack model with the edge agent image, and none has"
            " been built and pushed here",
            hint="amlpkg build --flavor edge-agent --tag REGISTRY/amlpkg-edge-agent:TAG --push,"
            " or name one with --agent-image",
        )
    return found


def _oci_fields(
    request: DeployRequest[KubernetesOptions], image: str, fetcher: str | None
) -> dict[str, Any]:
    """Manifest options for an ``oci://`` source the image does not carry itself."""
    oci = request.source.oci
    if oci is None or (oci.kind == "image" and image == oci.image):
        return {}  # no oci source, or the source image itself runs (its model inside)
    return {
        "model_oci": oci.reference,
        "model_oci_kind": oci.kind,
        "model_path": f"{oci.name}/{oci.version}",
        "model_sha256": oci.sha256,
        "fetcher_image": fetcher,
    }


def options_of(
    request: DeployRequest[KubernetesOptions],
    image: str,
    *,
    canary: bool = True,
    fetcher: str | None = None,
    deployment_id: str | None = None,
) -> k8s.K8sOptions:
    """The manifest options from a deploy request (labels carry the lineage).

    ``canary=False``: the options of the same revision once promoted (no canary).
    ``fetcher``: see :func:`fetcher_image` (for a ModelPack ``oci://`` source).
    ``deployment_id``: the revision's record id, which its pods' telemetry carries
    (``telemetry_endpoint``); default: the deployment's name.
    """
    source, opts = request.source, request.options
    labels = {}
    if source.model is not None:
        labels = {
            "amlpkg.ai/model": source.model.name,
            "amlpkg.ai/model-version": str(source.model.version),
        }
    return k8s.K8sOptions(
        name=request.name,
        image=image,
        labels=labels,
        namespace=opts.namespace,
        replicas=opts.replicas,
        min_replicas=opts.min_replicas,
        max_replicas=opts.max_replicas,
        cpu=opts.cpu,
        memory=opts.memory,
        cpu_limit=opts.cpu_limit,
        memory_limit=opts.memory_limit,
        flavor=opts.flavor,
        gpus=opts.gpus,
        kserve=opts.kserve,
        canary_percent=opts.canary_percent if canary else None,
        stable_replicas=opts.replicas,
        env=telemetry_env(opts.telemetry_endpoint, deployment_id or request.name),
        token_secret=opts.telemetry_token_secret,
        **_oci_fields(request, image, fetcher),
    )


class KubernetesTarget(Lifecycle):
    """Applies to the cluster of ``KUBECONFIG`` (or an injected ``ApiClient``)."""

    name: ClassVar[str] = "kubernetes"
    options_model: ClassVar[type[DeployOptions]] = KubernetesOptions

    def __init__(self, api_client: Any = None) -> None:
        self._client = api_client

    @property
    def client(self) -> Any:
        """The ``kubernetes.client.ApiClient``: injected, in-cluster, or from kubeconfig."""
        if self._client is None:
            from kubernetes import config

            try:
                if os.environ.get("KUBERNETES_SERVICE_HOST"):
                    config.load_incluster_config()
                    from kubernetes import client

                    self._client = client.ApiClient()
                else:
                    self._client = config.new_client_from_config()
            except Exception as exc:  # kubeconfig errors come in many types
                raise FailedPreconditionError(
                    f"cannot configure the Kubernetes client: {exc}",
                    hint="set KUBECONFIG to a kubeconfig file, or use --dry-run",
                ) from exc
        return self._client

    def _call(
        self, method: str, path: str, body: Any = None, *, content_type: str | None = None
    ) -> tuple[int, dict[str, Any]]:
        query = [("fieldManager", FIELD_MANAGER)] if method in ("POST", "PATCH") else []
        if content_type == "application/apply-patch+yaml":
            query.append(("force", "true"))
        headers = {"Accept": "application/json"}
        if content_type:
            headers["Content-Type"] = content_type
        try:
            params = self.client.param_serialize(
                method,
                path,
                query_params=query,
                header_params=headers,
                body=body,
                auth_settings=["BearerToken"],
            )
            response = self.client.call_api(*params, _request_timeout=30)
            response.read()
        except Exception as exc:  # urllib3/ssl/connection errors
            raise UnavailableError(
                f"Kubernetes API {method} {path} failed: {exc}",
                hint="check that the cluster in KUBECONFIG is reachable",
            ) from exc
        data = json.loads(response.data or b"{}")
        return int(response.status), data

    def apply_object(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Server-side apply one object (created first when missing); returns the object."""
        path = object_path(obj)
        status, _ = self._call("GET", path)
        if status == 404:
            status, data = self._call(
                "POST", path.rsplit("/", 1)[0], obj, content_type="application/json"
            )
        else:
            status, data = self._call(
                "PATCH", path, obj, content_type="application/apply-patch+yaml"
            )
        if status >= 300:
            raise FailedPreconditionError(
                f"Kubernetes refused {obj['kind']} {obj['metadata']['name']}:"
                f" {data.get('message', status)}",
                hint="see the manifest with --dry-run",
            )
        return data

    def wait_rollout(self, obj: dict[str, Any], timeout_s: float, poll_s: float = 1.0) -> str:
        """Wait for a Deployment (or InferenceService) to be fully rolled out; returns why."""
        deadline = time.monotonic() + timeout_s
        last = "no status yet"
        while True:
            status, data = self._call("GET", object_path(obj))
            if status == 200:
                done, last = rollout_done(data)
                if done:
                    return last
            if time.monotonic() >= deadline:
                raise FailedPreconditionError(
                    f"{obj['kind']} {obj['metadata']['name']} did not roll out in"
                    f" {timeout_s:.0f}s: {last}",
                    hint="kubectl describe the pods: image pull, resources or readiness probe",
                )
            time.sleep(poll_s)

    def plan(self, ws: Workspace, request: DeployRequest[KubernetesOptions]) -> Plan:
        """The manifests (``--dry-run``), checked for nothing but shape."""
        image = image_for(ws, request.source)
        opts = options_of(request, image, fetcher=fetcher_image(ws, request))
        return Plan(
            target=self.name,
            steps=[f"server-side apply {o['kind']} {object_path(o)}" for o in k8s.manifests(opts)],
            documents={f"{request.name}.yaml": k8s.to_yaml(k8s.manifests(opts))},
        )

    def prepare(self, ws: Workspace, request: DeployRequest[KubernetesOptions]) -> Prepared:
        """The image and its package; the objects are made from them in ``start``."""
        source = request.source
        fetcher = fetcher_image(ws, request)
        return Prepared(
            model=None if source.model is None else source.model.ref,
            package=package_for(ws, source),
            image=image_for(ws, source),
            image_digest=source.image_digest,
            config={"agent_image": fetcher} if fetcher else {},
        )

    def start(self, ws: Workspace, rev: Revision[KubernetesOptions]) -> None:
        """Apply every object and wait for the rollout (the readiness probe verifies).

        The Deployment's rolling update keeps the old pods serving until new ones are
        available, so a failed rollout leaves the previous revision answering. The
        objects are shared by every revision of the name: nothing to switch, retire or
        undo (the lifecycle's defaults), and the API client stays with the target.
        """
        fetcher = rev.record.config.get("agent_image")
        opts = options_of(
            rev.request, str(rev.record.image), fetcher=fetcher, deployment_id=rev.record.id
        )
        objects = k8s.manifests(opts)
        if opts.canary_percent is not None:
            rev.state["canary"] = self._canary_plan(rev, opts)
        rev.state["objects"] = [object_path(o) for o in objects]
        for obj in objects:
            self.apply_object(obj)
        rev.reason = "applied"
        if rev.request.options.wait:
            rev.reason = self.wait_rollout(objects[0], rev.request.options.ready_timeout_s)
        host = f"{rev.request.name}.{opts.namespace}.svc"
        rev.endpoint_http = f"http://{host}:{k8s.HTTP_PORT}"
        rev.endpoint_grpc = f"{host}:{k8s.GRPC_PORT}"

    def _canary_plan(
        self, rev: Revision[KubernetesOptions], opts: k8s.K8sOptions
    ) -> dict[str, Any]:
        """What promoting and rolling back the canary will apply (see ``deploy.canary``)."""
        if rev.previous is None or rev.previous.target != self.name:
            raise FailedPreconditionError(
                f"a canary needs a serving revision of {rev.request.name} on kubernetes",
                hint="deploy it once without --canary",
            )
        fetcher = rev.record.config.get("agent_image")
        promoted = k8s.manifests(
            options_of(
                rev.request,
                str(rev.record.image),
                canary=False,
                fetcher=fetcher,
                deployment_id=rev.record.id,
            )
        )
        plan: dict[str, Any] = {
            "percent": opts.canary_percent,
            "stable": rev.previous.id,
            "kserve": opts.kserve,
            "promote": promoted,
            "decision": None,
        }
        if opts.kserve:
            # KServe keeps one spec: rolling back re-applies the serving revision's image.
            old = options_of(
                rev.request, str(rev.previous.image), canary=False, deployment_id=rev.previous.id
            )
            plan["rollback"] = k8s.manifests(old)
        else:
            plan["effective_percent"] = round(
                100.0
                * k8s.canary_replicas(opts.canary_percent or 0, opts.replicas)
                / (k8s.canary_replicas(opts.canary_percent or 0, opts.replicas) + opts.replicas),
                1,
            )
        return plan

    def wrap(self, exc: Exception) -> AmlpkgError:
        """Client, TLS and JSON errors while talking to the API server."""
        return UnavailableError(
            f"the kubernetes deploy failed: {type(exc).__name__}: {exc}",
            hint="check the cluster in KUBECONFIG (kubectl get nodes) and --dry-run's manifests",
        )

    def status(self, ws: Workspace, record: DeploymentRecord) -> dict[str, Any]:
        """Whether every object exists, and the rollout state of the first."""
        paths = record.state.get("objects", [])
        found = {path: self._call("GET", path)[0] == 200 for path in paths}
        live: dict[str, Any] = {"objects": found, "ready": False, "rollout": "not applied"}
        if paths and found[paths[0]]:
            live["ready"], live["rollout"] = rollout_done(self._call("GET", paths[0])[1])
        return live

    def delete(self, ws: Workspace, record: DeploymentRecord) -> DeploymentRecord:
        """Delete every object of the serving revision (missing ones are fine)."""
        for path in reversed(record.state.get("objects", [])):
            status, data = self._call("DELETE", path)
            if status >= 300 and status != 404:
                raise FailedPreconditionError(
                    f"cannot delete {path}: {data.get('message', status)}"
                )
        return records.update(ws, record.id, status="stopped", reason="deleted")


def rollout_done(obj: dict[str, Any]) -> tuple[bool, str]:
    """``(done, why)`` like ``kubectl rollout status`` (InferenceService: Ready condition)."""
    status = obj.get("status") or {}
    if obj.get("kind") == "InferenceService":
        for condition in status.get("conditions", []):
            if condition.get("type") == "Ready":
                return condition.get("status") == "True", condition.get("message", "Ready")
        return False, "no Ready condition yet"
    wanted = int((obj.get("spec") or {}).get("replicas", 1))
    generation = int((obj.get("metadata") or {}).get("generation", 0))
    observed = int(status.get("observedGeneration", -1))
    updated = int(status.get("updatedReplicas", 0))
    available = int(status.get("availableReplicas", 0))
    if observed < generation:
        return False, "waiting for the controller to observe the new spec"
    if updated < wanted:
        return False, f"{updated} of {wanted} replicas updated"
    if available < wanted:
        return False, f"{available} of {wanted} updated replicas available"
    return True, f"rolled out: {available}/{wanted} available"
