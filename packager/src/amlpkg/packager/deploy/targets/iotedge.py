"""``--target iotedge``: generate the IoT Edge deployment manifest and apply it via IoT Hub.

One device (``--device-id``): the full manifest goes to
``IoTHubConfigurationManager.apply_configuration_on_edge_device``. A fleet
(``--target-condition "tags.site='plant1'"`` + ``--priority``): a layered
deployment through ``create_configuration``. Without a connection string
(``--iothub-connection-string`` or ``AMLPKG_IOTHUB_CONNECTION_STRING``) only
``--dry-run`` / ``--output`` are possible. Devices converge on their own, so the
record says what IoT Hub accepted; ``status`` reads the layered deployment's
metrics (targeted / applied / reported success) where there are some.
"""

from __future__ import annotations

import json
import os
from typing import Any, ClassVar

from amlpkg.errors import (
    AmlpkgError,
    FailedPreconditionError,
    InvalidArgumentError,
    UnavailableError,
)
from amlpkg.packager.deploy import iotedge_manifest as edge
from amlpkg.packager.deploy import records
from amlpkg.packager.deploy.records import DeploymentRecord
from amlpkg.packager.deploy.sources import image_for, package_for
from amlpkg.packager.deploy.targets.base import DeployRequest, Plan
from amlpkg.store.workspace import Workspace

CONNECTION_ENV = "AMLPKG_IOTHUB_CONNECTION_STRING"
DEFAULT_AGENT_IMAGE = "amlpkg-edge-agent:latest"


def edge_options(
    ws: Workspace, request: DeployRequest, deployment_id: str | None = None
) -> edge.EdgeOptions:
    """Manifest options from a deploy request; the model must be a registered version.

    ``deployment_id`` (``NAME:REVISION``) goes to the agent, so device telemetry links
    to this deployment's record; a plan made before the record exists names none.
    """
    model = request.source.model
    if model is None:
        raise InvalidArgumentError(
            "an IoT Edge deployment needs a registered model (NAME:VERSION)",
            hint="the agent twin names the model's version and sha256",
        )
    url, oci = request.option("model_url"), request.option("model_oci")
    if (url is None) == (oci is None):
        raise InvalidArgumentError(
            "give exactly one of --model-url or --model-oci",
            hint="where devices download the model (http(s)/file URL, or an OCI artifact)",
        )
    desired: dict[str, Any] = {
        "name": model.name,
        "version": str(model.version),
        "sha256": model.sha256,
        **({"url": url} if url else {"oci": oci}),
    }
    if request.option("runtime_config"):
        desired["config"] = dict(request.option("runtime_config"))
    return edge.EdgeOptions(
        name=request.name,
        image=image_for(ws, request.source),
        model=desired,
        agent_image=request.option("agent_image", DEFAULT_AGENT_IMAGE),
        platform=request.option("platform", "linux/amd64"),
        http_port=int(request.option("port", 8000)),
        grpc_port=int(request.option("grpc_port", 8001)),
        memory_mb=request.option("memory_mb"),
        registry=request.option("registry"),
        registry_username=request.option("registry_username"),
        ttl_s=int(request.option("ttl_s", 7200)),
        labels={"amlpkg.ai/model": model.ref},
        deployment_id=deployment_id,
    )


def manifest_for(
    ws: Workspace, request: DeployRequest, deployment_id: str | None = None
) -> dict[str, Any]:
    """The full manifest, or the layered one when a target condition is given."""
    opts = edge_options(ws, request, deployment_id)
    if request.option("target_condition"):
        return edge.layered_manifest(opts)
    return edge.deployment_manifest(opts)


class IotEdgeTarget:
    """Applies through an injected or connection-string ``IoTHubConfigurationManager``."""

    name: ClassVar[str] = "iotedge"

    def __init__(self, configuration_manager: Any = None) -> None:
        self._manager = configuration_manager

    def manager(self, request: DeployRequest | None = None) -> Any:
        """The IoT Hub configuration client (azure-iot-hub)."""
        if self._manager is None:
            text = (request.option("iothub_connection_string") if request else None) or (
                os.environ.get(CONNECTION_ENV)
            )
            if not text:
                raise FailedPreconditionError(
                    "no IoT Hub connection string",
                    hint=f"pass --iothub-connection-string or set {CONNECTION_ENV};"
                    " or use --dry-run / --output DIR to get the manifest",
                )
            from azure.iot.hub import (  # type: ignore[import-untyped]
                IoTHubConfigurationManager,
            )

            self._manager = IoTHubConfigurationManager.from_connection_string(text)
        return self._manager

    def plan(self, ws: Workspace, request: DeployRequest) -> Plan:
        """The manifest JSON (``--dry-run``), with credential references unresolved."""
        manifest = manifest_for(ws, request)
        layered = bool(request.option("target_condition"))
        where = (
            f"layered deployment for {request.option('target_condition')}"
            if layered
            else f"device {request.option('device_id', '<--device-id>')}"
        )
        return Plan(
            target=self.name,
            steps=[f"apply the IoT Edge manifest to {where} through IoT Hub"],
            documents={f"{request.name}.deployment.json": json.dumps(manifest, indent=2) + "\n"},
        )

    def apply(self, ws: Workspace, request: DeployRequest) -> DeploymentRecord:
        """Send the manifest to IoT Hub and record what it accepted."""
        condition, device = request.option("target_condition"), request.option("device_id")
        if (condition is None) == (device is None):
            raise InvalidArgumentError(
                "give exactly one of --device-id (one device) or --target-condition (a fleet)"
            )
        edge.resolve_references(manifest_for(ws, request))  # refuse bad input before recording
        manager = self.manager(request)
        source = request.source
        record = records.create(
            ws,
            name=request.name,
            target=self.name,
            config=request.config(),
            model=None if source.model is None else source.model.ref,
            package=package_for(ws, source),
            image=image_for(ws, source),
        )
        from azure.iot.hub.models import (  # type: ignore[import-untyped]
            Configuration,
            ConfigurationContent,
        )

        try:
            manifest = edge.resolve_references(manifest_for(ws, request, record.id))
            content = ConfigurationContent(modules_content=manifest["modulesContent"])
            if device is not None:
                manager.apply_configuration_on_edge_device(device, content)
                state: dict[str, Any] = {"device_id": device}
            else:
                config_id = f"{request.name}-{record.revision}"
                manager.create_configuration(
                    Configuration(
                        id=config_id,
                        schema_version="1.0",
                        labels={"amlpkg": request.name, "model": record.model or ""},
                        content=content,
                        target_condition=condition,
                        priority=int(request.option("priority", 10)),
                    )
                )
                state = {"configuration_id": config_id, "target_condition": condition}
        except AmlpkgError as exc:
            records.update(ws, record.id, status="failed", reason=exc.message)
            raise
        except Exception as exc:  # azure SDK / msrest / HTTP errors
            records.update(ws, record.id, status="failed", reason=str(exc))
            raise UnavailableError(
                f"IoT Hub refused the deployment: {exc}",
                hint="check the connection string's rights (service + registry write)",
            ) from exc
        for old in records.history(ws, request.name):
            if old.id != record.id and old.status == "ready":
                records.update(ws, old.id, status="stopped", reason=f"replaced by {record.id}")
        return records.update(
            ws,
            record.id,
            status="ready",
            reason="accepted by IoT Hub; devices converge on their own",
            state={"verified": True, **state},
        )

    def status(self, ws: Workspace, record: DeploymentRecord) -> dict[str, Any]:
        """The layered deployment's system metrics from IoT Hub (counts of devices)."""
        config_id = record.state.get("configuration_id")
        if config_id is None:
            return {"device_id": record.state.get("device_id"), "ready": None}
        configuration = self.manager().get_configuration(config_id)
        metrics = getattr(configuration.system_metrics, "results", None) or {}
        return {"configuration_id": config_id, "metrics": dict(metrics), "ready": None}

    def delete(self, ws: Workspace, record: DeploymentRecord) -> DeploymentRecord:
        """Delete the layered deployment (a single device keeps its last manifest)."""
        config_id = record.state.get("configuration_id")
        if config_id is not None:
            self.manager().delete_configuration(config_id)
        return records.update(ws, record.id, status="stopped", reason="deleted")
