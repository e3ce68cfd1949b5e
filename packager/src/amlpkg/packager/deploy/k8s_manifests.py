"""Kubernetes manifests of a scoring deployment, as plain dicts (pure functions).

Either Deployment + Service + HorizontalPodAutoscaler (autoscaling/v2) +
PodDisruptionBudget, or one KServe ``InferenceService`` (``--kserve``) with a
custom predictor container speaking the v2 protocol. The container is a scoring
image from ``amlpkg build``: it runs the runtime as user 10001 on ports 8000
(HTTP), 8001 (gRPC) and 8002 (metrics) with the model baked in.

An ``oci://`` model source pinned by digest comes in at pod start instead: a
modelcar image (the model under ``/models``) is KServe's storage URI (``STORAGE_URI``
of the custom container, KServe mounts it at ``/mnt/models``); otherwise an init
container fills an ``emptyDir`` at ``/mnt/models`` (the modelcar copies its
``/models``, a ModelPack artifact is fetched by the edge agent image's OCI client)
and the runtime serves that repository.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from amlpkg.errors import InvalidArgumentError
from amlpkg.packager.build.recipe import (
    GRPC_PORT,
    HTTP_PORT,
    METRICS_PORT,
    USER_ID,
    server_command,
)
from amlpkg.packager.deploy.otel import secret_token_env

GPU_FLAVORS = ("cuda", "tensorrt")
APP = "amlpkg-scoring"


@dataclass(frozen=True)
class K8sOptions:
    """What the manifests are made from (the CLI's kubernetes options)."""

    name: str
    image: str
    namespace: str = "default"
    replicas: int = 2
    min_replicas: int = 2
    max_replicas: int = 5
    cpu_target_percent: int = 70
    cpu: str = "1"
    memory: str = "1Gi"
    cpu_limit: str | None = "2"
    memory_limit: str | None = None
    flavor: str = "cpu"
    gpus: int = 1
    labels: dict[str, str] = field(default_factory=dict)
    kserve: bool = False
    canary_percent: float | None = None
    """A canary of this image beside the serving revision: KServe's
    ``canaryTrafficPercent``, or a second Deployment weighted by replicas."""
    stable_replicas: int | None = None
    """Replicas of the serving Deployment, to size the canary's share by."""
    model_oci: str | None = None
    """An ``oci://...@sha256:`` model the pods get at start, instead of the image's own."""
    model_oci_kind: str = "modelpack"
    """``image`` (a modelcar: the model under ``/models``) or ``modelpack`` (amlpkg push)."""
    model_path: str = ""
    """``NAME/VERSION``: where a ModelPack model goes in the pod's repository."""
    model_sha256: str = ""
    fetcher_image: str | None = None
    """Image whose ``python -m amlpkg.edge_agent.oci`` fetches a ModelPack model (the
    edge agent's image: it carries the daemonless OCI client)."""
    env: dict[str, str] = field(default_factory=dict)
    """More environment of the scoring container (its OTLP telemetry settings)."""
    token_secret: str | None = None
    """``NAME/KEY`` of the Secret whose token the OTLP exporters send (with ``env``)."""


MODEL_MOUNT = "/mnt/models"  # where KServe mounts a modelcar; ours too, for one layout


def _labels(opts: K8sOptions) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": APP,
        "app.kubernetes.io/instance": opts.name,
        "app.kubernetes.io/managed-by": "amlpkg",
        **opts.labels,
    }


def _selector(opts: K8sOptions) -> dict[str, str]:
    return {"app.kubernetes.io/name": APP, "app.kubernetes.io/instance": opts.name}


def _metadata(opts: K8sOptions, name: str | None = None) -> dict[str, Any]:
    return {"name": name or opts.name, "namespace": opts.namespace, "labels": _labels(opts)}


def _resources(opts: K8sOptions) -> dict[str, Any]:
    requests: dict[str, Any] = {"cpu": opts.cpu, "memory": opts.memory}
    limits: dict[str, Any] = {"memory": opts.memory_limit or opts.memory}
    if opts.cpu_limit:
        limits["cpu"] = opts.cpu_limit
    if opts.flavor in GPU_FLAVORS:
        # Extended resources must be requested and limited with the same count.
        requests["nvidia.com/gpu"] = opts.gpus
        limits["nvidia.com/gpu"] = opts.gpus
    return {"requests": requests, "limits": limits}


def _probe(path: str, period: int, failures: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": "http"},
        "periodSeconds": period,
        "timeoutSeconds": 3,
        "failureThreshold": failures,
    }


def _modelcar(opts: K8sOptions) -> bool:
    """KServe gets a modelcar image as its storage URI (it mounts it at /mnt/models)."""
    return opts.kserve and opts.model_oci is not None and opts.model_oci_kind == "image"


def _security() -> dict[str, Any]:
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "runAsUser": USER_ID,
        "runAsGroup": USER_ID,
        "capabilities": {"drop": ["ALL"]},
    }


def model_init_container(opts: K8sOptions) -> dict[str, Any]:
    """The init container that puts an ``oci://`` model into the pod's model volume.

    A modelcar image copies its ``/models`` (it needs ``sh`` and ``cp``, as KServe's
    modelcars do); a ModelPack artifact is fetched through the registry API by the
    edge agent image's OCI client, digest checked.
    """
    assert opts.model_oci is not None
    if opts.model_oci_kind == "image":
        image = opts.model_oci.removeprefix("oci://")
        command = ["sh", "-c", f"cp -R /models/. {MODEL_MOUNT}/"]
    else:
        assert opts.fetcher_image is not None
        image = opts.fetcher_image
        command = ["python", "-m", "amlpkg.edge_agent.oci", opts.model_oci, opts.model_sha256,
                   f"{MODEL_MOUNT}/{opts.model_path}"]  # fmt: skip
    return {
        "name": "fetch-model",
        "image": image,
        "command": command,
        "securityContext": _security(),
        "volumeMounts": [{"name": "model", "mountPath": MODEL_MOUNT}],
        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "1Gi"}},
    }


def container(opts: K8sOptions) -> dict[str, Any]:
    """The scoring container: probes on the V2 health endpoints, non-root, read-only root."""
    scoring = _scoring_container(opts)
    if opts.model_oci is not None:
        # the image's command on the mounted repository (its CMD names /models)
        scoring["args"] = server_command(MODEL_MOUNT)
        if _modelcar(opts):
            # KServe's storage URI of a custom container; it injects the modelcar itself.
            scoring["env"] = [{"name": "STORAGE_URI", "value": opts.model_oci}]
        else:
            mount = {"name": "model", "mountPath": MODEL_MOUNT, "readOnly": True}
            scoring["volumeMounts"].append(mount)
    if opts.token_secret is not None and not opts.env:
        raise InvalidArgumentError(
            "--telemetry-token-secret is the token of --telemetry's endpoint",
            hint="add --telemetry URL, or leave the secret out",
        )
    if opts.env:
        extra: list[dict[str, Any]] = [{"name": k, "value": v} for k, v in sorted(opts.env.items())]
        if opts.token_secret is not None:
            extra += secret_token_env(opts.token_secret)
        scoring["env"] = [*scoring.get("env", []), *extra]
    return scoring


def _scoring_container(opts: K8sOptions) -> dict[str, Any]:
    return {
        "name": "scoring",
        "image": opts.image,
        "ports": [
            {"name": "http", "containerPort": HTTP_PORT, "protocol": "TCP"},
            {"name": "grpc", "containerPort": GRPC_PORT, "protocol": "TCP"},
            {"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"},
        ],
        "resources": _resources(opts),
        # A slow model load must not get the pod killed: startup probe first.
        "startupProbe": _probe("/v2/health/ready", 2, 60),
        "readinessProbe": _probe("/v2/health/ready", 5, 3),
        "livenessProbe": _probe("/v2/health/live", 10, 3),
        "securityContext": _security(),
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }


def _pod_spec(opts: K8sOptions) -> dict[str, Any]:
    spec = _base_pod_spec(opts)
    if opts.model_oci is not None and not _modelcar(opts):
        spec["initContainers"] = [model_init_container(opts)]
        spec["volumes"].append({"name": "model", "emptyDir": {}})
    return spec


def _base_pod_spec(opts: K8sOptions) -> dict[str, Any]:
    return {
        "automountServiceAccountToken": False,
        # Longer than the runtime's 30 s drain, so in-flight requests finish.
        "terminationGracePeriodSeconds": 45,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": USER_ID,
            "runAsGroup": USER_ID,
            "fsGroup": USER_ID,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [container(opts)],
        # The read-only root needs somewhere to write temporary files.
        "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}}],
    }


def deployment(opts: K8sOptions) -> dict[str, Any]:
    """apps/v1 Deployment: rolling update that never drops below the wanted replicas."""
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(opts),
        "spec": {
            "replicas": opts.replicas,
            "selector": {"matchLabels": _selector(opts)},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
            },
            "template": {
                "metadata": {
                    "labels": _labels(opts),
                    "annotations": {
                        "prometheus.io/scrape": "true",
                        "prometheus.io/port": str(METRICS_PORT),
                        "prometheus.io/path": "/metrics",
                    },
                },
                "spec": _pod_spec(opts),
            },
        },
    }


def service(opts: K8sOptions) -> dict[str, Any]:
    """v1 Service: http 8000, grpc 8001 (appProtocol so meshes speak HTTP/2), metrics 8002."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(opts),
        "spec": {
            "type": "ClusterIP",
            "selector": _selector(opts),
            "ports": [
                {"name": "http", "port": HTTP_PORT, "targetPort": "http", "protocol": "TCP"},
                {
                    "name": "grpc",
                    "port": GRPC_PORT,
                    "targetPort": "grpc",
                    "protocol": "TCP",
                    "appProtocol": "kubernetes.io/h2c",
                },
                {"name": "metrics", "port": METRICS_PORT, "targetPort": "metrics"},
            ],
        },
    }


def autoscaler(opts: K8sOptions) -> dict[str, Any]:
    """autoscaling/v2 HorizontalPodAutoscaler on CPU utilization."""
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": _metadata(opts),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": opts.name},
            "minReplicas": opts.min_replicas,
            "maxReplicas": opts.max_replicas,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {
                            "type": "Utilization",
                            "averageUtilization": opts.cpu_target_percent,
                        },
                    },
                }
            ],
        },
    }


def disruption_budget(opts: K8sOptions) -> dict[str, Any]:
    """policy/v1 PodDisruptionBudget: node drains keep at least one replica serving."""
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": _metadata(opts),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": _selector(opts)}},
    }


def inference_service(opts: K8sOptions) -> dict[str, Any]:
    """KServe serving.kserve.io/v1beta1 InferenceService with our image as custom predictor."""
    scoring = container(opts)
    # KServe routes to the container's one port ("http1"); gRPC would need a second
    # InferenceService with an "h2c" port. ``protocolVersion`` is a field of KServe's
    # model specs, not of custom containers: ours speaks v2 natively, said by a label.
    scoring["name"] = "kserve-container"
    scoring["ports"] = [{"name": "http1", "containerPort": HTTP_PORT, "protocol": "TCP"}]
    scoring.pop("startupProbe")
    annotations = {"serving.kserve.io/deploymentMode": "RawDeployment"}
    pod = _pod_spec(opts)
    predictor: dict[str, Any] = {}
    if "initContainers" in pod:
        predictor["initContainers"] = pod["initContainers"]
    if opts.canary_percent is not None:
        # KServe splits traffic between the last ready revision and this one only in
        # Serverless mode (Knative revisions); RawDeployment has no canary.
        annotations["serving.kserve.io/deploymentMode"] = "Serverless"
        predictor["canaryTrafficPercent"] = round(opts.canary_percent)
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {
            **_metadata(opts),
            "annotations": {**annotations, "amlpkg.ai/protocol-version": "v2"},
        },
        "spec": {
            "predictor": {
                **predictor,
                "minReplicas": opts.min_replicas,
                "maxReplicas": opts.max_replicas,
                "securityContext": pod["securityContext"],
                "volumes": pod["volumes"],
                "containers": [scoring],
            }
        },
    }


CANARY_TRACK = "amlpkg.ai/track"


def canary_replicas(percent: float, stable: int) -> int:
    """Canary pods so that canary / (canary + stable) comes closest to ``percent`` (>= 1)."""
    return max(1, round(percent * stable / (100.0 - percent)))


def canary_deployment(opts: K8sOptions) -> dict[str, Any]:
    """A second Deployment ``NAME-canary`` whose pods the one Service also selects.

    The Service spreads requests over every ready pod it selects, so the canary's
    share of traffic is its share of the pods. Its own selector adds the track label,
    so the two Deployments never adopt each other's pods; no HPA or PDB of its own.
    """
    canary = deployment(opts)
    stable = opts.stable_replicas or opts.replicas
    canary["metadata"]["name"] = f"{opts.name}-canary"
    canary["metadata"]["labels"][CANARY_TRACK] = "canary"
    canary["spec"]["replicas"] = canary_replicas(opts.canary_percent or 0.0, stable)
    canary["spec"]["selector"]["matchLabels"][CANARY_TRACK] = "canary"
    canary["spec"]["template"]["metadata"]["labels"][CANARY_TRACK] = "canary"
    return canary


def manifests(opts: K8sOptions) -> list[dict[str, Any]]:
    """Every object to apply, in apply order (a canary: only what the canary adds)."""
    if opts.kserve:
        return [inference_service(opts)]
    if opts.canary_percent is not None:
        return [canary_deployment(opts)]
    return [deployment(opts), service(opts), autoscaler(opts), disruption_budget(opts)]


def to_yaml(objects: list[dict[str, Any]]) -> str:
    """One multi-document YAML text (``--dry-run``)."""
    return yaml.safe_dump_all(objects, sort_keys=False)
