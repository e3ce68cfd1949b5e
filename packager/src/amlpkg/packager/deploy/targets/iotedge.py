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
from amlpkg.packager.deploy.lifecycle import Lifecycle
from amlpkg.packager.deploy.options import DeployOptions, IotEdgeOptions
from amlpkg.packager.deploy.records import DeploymentRecord
from amlpkg.packager.deploy.sources import image_for, package_for
from amlpkg.packager.deploy.targets.base import DeployRequest, Plan, Prepared, Revision
from amlpkg.store.workspace import Workspace

CONNECTION_ENV = "AMLPKG_IOTHUB_CONNECTION_STRING"


def edge_options(
    ws: Workspace, request: DeployRequest[IotEdgeOptions], deployment_id: str | None = None
) -> edge.EdgeOptions:
    """Manifest options from a deploy request; the model must be a registered version.

    ``deployment_id`` (``NAME:REVISION``) goes to the agent, so device telemetry links
    to this deployment's record; a plan made before the record exists names none.
    """
    model, opts = request.source.model, request.options
    if model is None:
        raise InvalidArgumentError(
            "an IoT Edge deployment needs a registered model (NAME:VERSION)",
            hint="the agent twin names the model's version and sha256",
        )
    url, oci = opts.model_url, opts.model_oci
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
    if opts.runtime_config:
        desired["config"] = dict(opts.runtime_config)
    return edge.EdgeOptions(
        name=request.name,
        image=image_for(ws, request.source),
        model=desired,
        agent_image=opts.agent_image,
        platform=opts.platform,
        http_port=opts.port,
        grpc_port=opts.grpc_port,
        memory_mb=opts.memory_mb,
        registry=opts.registry,
        registry_username=opts.registry_username,
        ttl_s=opts.ttl_s,
        labels={"amlpkg.ai/model": model.ref},
        deployment_id=deployment_id,
    )


def manifest_for(
    ws: Workspace, request: DeployRequest[IotEdgeOptions], deployment_id: str | None = None
) -> dict[str, Any]:
    """The full manifest, or the layered one when a target condition is given."""
    opts = edge_options(ws, request, deployment_id)
    if request.options.target_condition:
        return edge.layered_manifest(opts)
    return edge.deployment_manifest(opts)


def _record_desired(ws: Workspace, rev: Revision[IotEdgeOptions]) -> None:
    """Set the desired model of the devices this revision is for.

    One device: that device. A fleet (target condition): IoT Hub alone knows which
    devices match, so the devices known to run an earlier revision of this deployment
    get it; the others get it through :func:`amlpkg.collector.devices.set_desired`.
    """
    from amlpkg.collector import devices

    model = rev.request.source.model
    if model is None:
        return
    wanted = {rev.request.options.device_id} - {None}
    if not wanted:
        prefix = f"{rev.request.name}:"
        wanted = {
            d.id for d in devices.list_devices(ws) if (d.deployment_id or "").startswith(prefix)
        }
    for device_id in sorted(str(d) for d in wanted):
        devices.set_desired(ws, device_id, model.ref, model.sha256, deployment_id=rev.id)


class IotEdgeTarget(Lifecycle):
    """Applies through an injected or connection-string ``IoTHubConfigurationManager``."""

    name: ClassVar[str] = "iotedge"
    options_model: ClassVar[type[DeployOptions]] = IotEdgeOptions

    def __init__(self, configuration_manager: Any = None) -> None:
        self._manager = configuration_manager

    def manager(self, request: DeployRequest[IotEdgeOptions] | None = None) -> Any:
        """The IoT Hub configuration client (azure-iot-hub)."""
        if self._manager is None:
            secret = None if request is None else request.options.iothub_connection_string
            text = (secret.get_secret_value() if secret else None) or os.environ.get(CONNECTION_ENV)
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

    def plan(self, ws: Workspace, request: DeployRequest[IotEdgeOptions]) -> Plan:
        """The manifest JSON (``--dry-run``), with credential references unresolved."""
        manifest = manifest_for(ws, request)
        opts = request.options
        where = (
            f"layered deployment for {opts.target_condition}"
            if opts.target_condition
            else f"device {opts.device_id or '<--device-id>'}"
        )
        return Plan(
            target=self.name,
            steps=[f"apply the IoT Edge manifest to {where} through IoT Hub"],
            documents={f"{request.name}.deployment.json": json.dumps(manifest, indent=2) + "\n"},
        )

    def prepare(self, ws: Workspace, request: DeployRequest[IotEdgeOptions]) -> Prepared:
        """Refuse bad input (where to, credentials) and find IoT Hub before recording."""
        opts = request.options
        if (opts.target_condition is None) == (opts.device_id is None):
            raise InvalidArgumentError(
                "give exactly one of --device-id (one device) or --target-condition (a fleet)"
            )
        edge.resolve_references(manifest_for(ws, request))
        self.manager(request)
        source = request.source
        return Prepared(
            model=None if source.model is None else source.model.ref,
            package=package_for(ws, source),
            image=image_for(ws, source),
        )

    def start(self, ws: Workspace, rev: Revision[IotEdgeOptions]) -> None:
        """Send the manifest (naming this revision) to IoT Hub; devices converge on their own.

        IoT Hub's accepting it is the switch, and the new manifest (or the higher layer)
        replaces the old one on the devices: nothing to retire or undo here.
        """
        from azure.iot.hub.models import (  # type: ignore[import-untyped]
            Configuration,
            ConfigurationContent,
        )

        request, opts = rev.request, rev.request.options
        manager = self.manager(request)
        manifest = edge.resolve_references(manifest_for(ws, request, rev.id))
        content = ConfigurationContent(modules_content=manifest["modulesContent"])
        if opts.device_id is not None:
            manager.apply_configuration_on_edge_device(opts.device_id, content)
            rev.state["device_id"] = opts.device_id
        else:
            config_id = f"{request.name}-{rev.record.revision}"
            manager.create_configuration(
                Configuration(
                    id=config_id,
                    schema_version="1.0",
                    labels={"amlpkg": request.name, "model": rev.record.model or ""},
                    content=content,
                    target_condition=opts.target_condition,
                    priority=opts.priority,
                )
            )
            rev.state.update(configuration_id=config_id, target_condition=opts.target_condition)
        rev.reason = "accepted by IoT Hub; devices converge on their own"
        _record_desired(ws, rev)

    def wrap(self, exc: Exception) -> AmlpkgError:
        """azure SDK / msrest / HTTP errors: IoT Hub refused the manifest."""
        return UnavailableError(
            f"IoT Hub refused the deployment: {exc}",
            hint="check the connection string's rights (service + registry write)",
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
