"""Typed deploy options, one model per target, validated once where a deploy starts.

The CLI (or a library caller) gives a mapping of the options it was given; ``parse``
validates it against the target's model (unknown keys, wrong types and out-of-range
values fail with every problem named), and the targets read typed attributes from
then on. ``recorded`` is what a deployment record keeps: only the options that were
given, never a secret, so ``rollback`` can give them again.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from amlpkg.errors import InvalidArgumentError
from amlpkg.packager.deploy.k8s_manifests import K8sOptions
from amlpkg.validation import validate_model

TargetName = Literal["local", "docker", "kubernetes", "iotedge"]
TARGETS: tuple[TargetName, ...] = ("local", "docker", "kubernetes", "iotedge")
_K8S = K8sOptions(name="-", image="-")  # the manifests' defaults, kept in one place


class DeployOptions(BaseModel):
    """What every target accepts."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    image: str | None = None
    """Image to run (default: the newest image built from the model version)."""
    ready_timeout_s: float = Field(60.0, gt=0)
    """Seconds to wait for readiness (local, docker) or the rollout (kubernetes)."""
    rollback_of: str | None = None
    """Set by ``rollback``: the revision this one deploys again."""
    trust: Path | None = None
    """PEM public key or root chain: an ``oci://`` source's signature must verify."""

    def recorded(self) -> dict[str, Any]:
        """The options that were given, JSON-ready and without secrets (for the record)."""
        data = self.model_dump(mode="json", exclude_unset=True, exclude_none=True)
        return {key: data[key] for key in sorted(data) if key not in _SECRETS}


_SECRETS = frozenset({"iothub_connection_string"})


class FrontOptions(DeployOptions):
    """The stable endpoint of the supervisor's switching proxy (local and docker)."""

    host: str | None = None
    """Address of the stable endpoint (default: what the deployment had, else 127.0.0.1)."""
    port: int | None = Field(None, ge=0, le=65535)
    grpc_port: int | None = Field(None, ge=0, le=65535)
    drain_grace_s: float = Field(10.0, ge=0)
    """Seconds the replaced revision may finish what it got."""
    telemetry_endpoint: str | None = None
    """OTLP/HTTP endpoint the runtime exports its traces to."""
    telemetry_token_file: str | None = None
    """File holding the endpoint's token (a team server's contributor token): read at deploy
    time into the runtime's ``OTEL_EXPORTER_OTLP_HEADERS``. The path is recorded, so a
    rollback reads the file again; the token never is."""


class LocalOptions(FrontOptions):
    """``--target local``."""

    runtime_config: str | None = None
    """The runtime's ``config.yaml`` text for the model (default: spinning off)."""


class DockerOptions(FrontOptions):
    """``--target docker``."""

    ready_timeout_s: float = Field(120.0, gt=0)
    docker_host: str | None = None
    """``unix://``, ``tcp://`` (TLS from the environment) or ``ssh://user@host``."""
    cpus: float | None = Field(None, gt=0)
    memory: str | None = None
    """Memory limit, Docker (``512m``) or Kubernetes (``512Mi``) style."""
    restart: Literal["no", "always", "unless-stopped", "on-failure"] = "unless-stopped"
    canary_percent: float | None = Field(None, gt=0, lt=100)
    """Start the new revision as a canary: the deployment's proxy sends it this share of
    the requests beside the serving one, until :mod:`amlpkg.packager.deploy.canary`
    promotes or rolls it back."""


class KubernetesOptions(DeployOptions):
    """``--target kubernetes`` (defaults: those of the manifests)."""

    ready_timeout_s: float = Field(300.0, gt=0)
    namespace: str = _K8S.namespace
    replicas: int = Field(_K8S.replicas, ge=1)
    min_replicas: int = Field(_K8S.min_replicas, ge=1)
    max_replicas: int = Field(_K8S.max_replicas, ge=1)
    cpu: str = _K8S.cpu
    memory: str = _K8S.memory
    cpu_limit: str | None = _K8S.cpu_limit
    memory_limit: str | None = _K8S.memory_limit
    flavor: Literal["cpu", "cuda", "tensorrt"] = "cpu"
    gpus: int = Field(_K8S.gpus, ge=1)
    kserve: bool = _K8S.kserve
    canary_percent: float | None = Field(None, gt=0, lt=100)
    """Start the new revision as a canary taking this share of traffic beside the
    serving one, until :mod:`amlpkg.packager.deploy.canary` promotes or rolls it back."""
    wait: bool = True
    """Wait for the rollout (``--no-wait``: record what was applied)."""
    agent_image: str | None = None
    """The edge agent image whose OCI client fetches an ``oci://`` ModelPack source in an
    init container (default: the newest one built and pushed for linux/amd64)."""
    telemetry_endpoint: str | None = None
    """OTLP/HTTP endpoint (reachable from the pods) the runtime exports its traces and
    output summaries to, tagged with the revision's deployment id: what a canary gate reads."""
    telemetry_token_secret: str | None = None
    """``NAME/KEY`` of a Secret holding the endpoint's token: the pods read it with
    ``valueFrom.secretKeyRef`` into ``OTEL_EXPORTER_OTLP_HEADERS``; no token in the manifest."""


class IotEdgeOptions(DeployOptions):
    """``--target iotedge``."""

    device_id: str | None = None
    target_condition: str | None = None
    priority: int = 10
    model_url: str | None = None
    model_oci: str | None = None
    runtime_config: dict[str, Any] | None = None
    agent_image: str | None = None
    """The edge agent image (pinned by digest); default: the newest one built and pushed."""
    platform: str = "linux/amd64"
    port: int = Field(8000, ge=1, le=65535)
    grpc_port: int = Field(8001, ge=1, le=65535)
    memory_mb: int | None = Field(None, ge=1)
    registry: str | None = None
    registry_username: str | None = None
    ttl_s: int = Field(7200, ge=0)
    iothub_connection_string: SecretStr | None = None
    """Never recorded (see ``recorded``)."""


MODELS: dict[str, type[DeployOptions]] = {
    "local": LocalOptions,
    "docker": DockerOptions,
    "kubernetes": KubernetesOptions,
    "iotedge": IotEdgeOptions,
}


def model_for(target: str) -> type[DeployOptions]:
    """The options model of ``target``."""
    try:
        return MODELS[target]
    except KeyError:
        raise InvalidArgumentError(
            f"unknown deployment target {target!r}", hint=f"use one of: {', '.join(TARGETS)}"
        ) from None


def foreign_keys(target: str, given: Mapping[str, Any]) -> list[str]:
    """The keys of ``given`` that some other target knows but ``target`` does not."""
    own = model_for(target).model_fields
    known = {key for model in MODELS.values() for key in model.model_fields}
    return sorted(key for key in given if key not in own and key in known)


def parse(target: str, given: Mapping[str, Any] | DeployOptions | None) -> DeployOptions:
    """Validate ``given`` as ``target``'s options (None values count as not given)."""
    model = model_for(target)
    if isinstance(given, model):
        return given
    if isinstance(given, DeployOptions):
        given = given.model_dump(exclude_unset=True)
    data = {key: value for key, value in (given or {}).items() if value is not None}
    return validate_model(
        model,
        data,
        what=f"invalid {target} deploy options",
        hint=f"see `amlpkg deploy --help` for the {target} options",
    )
