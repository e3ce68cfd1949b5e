"""Kubernetes manifests for the team server: stateless replicas over PostgreSQL + S3.

``amlpkg server manifests`` writes a Deployment (replicas, probes on
``/api/v1/health``, no writable root, a scratch volume for the artifact cache)
and a Service. The database URL and the bucket's keys come from a Secret the
cluster already holds, by reference: no credential is ever in the output.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

from amlpkg.errors import InvalidArgumentError

PORT = 8080
HEALTH = "/api/v1/health"
# Keys expected in the Secret named by ``secret``.
SECRET_KEYS = {
    "AMLPKG_STORE": "store-url",
    "AWS_ACCESS_KEY_ID": "aws-access-key-id",
    "AWS_SECRET_ACCESS_KEY": "aws-secret-access-key",
}


@dataclass(frozen=True)
class ServerManifest:
    """What the manifests need: the image, the bucket, the Secret and the shape."""

    image: str
    artifacts: str
    secret: str
    name: str = "amlpkg-server"
    namespace: str | None = None
    replicas: int = 2
    s3_endpoint: str | None = None
    # The endpoint clients reach, for presigned upload URLs when s3_endpoint is internal.
    s3_public_endpoint: str | None = None

    def check(self) -> None:
        """Refuse what would not make a working team server."""
        if not self.artifacts.startswith("s3://"):
            raise InvalidArgumentError(
                "replicas share artifacts only through a bucket",
                hint="give --artifacts s3://BUCKET/PREFIX",
            )
        if self.replicas < 1:
            raise InvalidArgumentError("--replicas must be at least 1")


def _metadata(spec: ServerManifest) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": spec.name, "labels": {"app.kubernetes.io/name": spec.name}}
    if spec.namespace:
        meta["namespace"] = spec.namespace
    return meta


def _env(spec: ServerManifest) -> list[dict[str, Any]]:
    env: list[dict[str, Any]] = [
        {"name": name, "valueFrom": {"secretKeyRef": {"name": spec.secret, "key": key}}}
        for name, key in SECRET_KEYS.items()
    ]
    env.append({"name": "AMLPKG_ARTIFACTS", "value": spec.artifacts})
    env.append({"name": "AMLPKG_HOME", "value": "/var/cache/amlpkg"})
    if spec.s3_endpoint:
        env.append({"name": "AMLPKG_S3_ENDPOINT_URL", "value": spec.s3_endpoint})
    if spec.s3_public_endpoint:
        env.append({"name": "AMLPKG_S3_PUBLIC_ENDPOINT_URL", "value": spec.s3_public_endpoint})
    return env


def _probe(period: int, failures: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": HEALTH, "port": "http"},
        "periodSeconds": period,
        "failureThreshold": failures,
        "timeoutSeconds": 5,
    }


def deployment(spec: ServerManifest) -> dict[str, Any]:
    """The replicas: each a stateless `amlpkg server` on the shared store."""
    container = {
        "name": "server",
        "image": spec.image,
        "args": ["amlpkg", "server", "--host", "0.0.0.0", "--port", str(PORT)],
        "ports": [{"name": "http", "containerPort": PORT}],
        "env": _env(spec),
        "readinessProbe": _probe(5, 3),
        "livenessProbe": _probe(20, 3),
        "startupProbe": _probe(2, 60),
        "resources": {"requests": {"cpu": "250m", "memory": "256Mi"}},
        "securityContext": {
            "runAsNonRoot": True,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [{"name": "cache", "mountPath": "/var/cache/amlpkg"}],
    }
    labels = {"app.kubernetes.io/name": spec.name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(spec),
        "spec": {
            "replicas": spec.replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [container],
                    # Only verified copies of artifacts live here; losing them costs a download.
                    "volumes": [{"name": "cache", "emptyDir": {"sizeLimit": "10Gi"}}],
                },
            },
        },
    }


def service(spec: ServerManifest) -> dict[str, Any]:
    """One address in front of every replica."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(spec),
        "spec": {
            "selector": {"app.kubernetes.io/name": spec.name},
            "ports": [{"name": "http", "port": 80, "targetPort": "http"}],
        },
    }


def manifests(spec: ServerManifest) -> list[dict[str, Any]]:
    """The Deployment and the Service, checked first."""
    spec.check()
    return [deployment(spec), service(spec)]


def to_yaml(objects: list[dict[str, Any]]) -> str:
    """A multi-document YAML stream for ``kubectl apply -f -``."""
    return yaml.safe_dump_all(objects, sort_keys=False)
