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
from amlpkg.packager.deploy import oci_source, records
from amlpkg.packager.deploy.lifecycle import Lifecycle
from amlpkg.packager.deploy.options import DeployOptions, IotEdgeOptions
from amlpkg.packager.deploy.records import DeploymentRecord
from amlpkg.packager.deploy.sources import image_for, package_for
from amlpkg.packager.deploy.targets.base import DeployRequest, Plan, Prepared, Revision
from amlpkg.store.workspace import Workspace

CONNECTION_ENV = "AMLPKG_IOTHUB_CONNECTION_STRING"


def _oci_desired(ws: Workspace, request: DeployRequest[IotEdgeOptions]) -> dict[str, Any]:
    """Devices fetch an ``oci://`` ModelPack source themselves, by its digest."""
    oci, opts = request.source.oci, request.options
    assert oci is not None
    if opts.model_url or opts.model_oci:
        raise InvalidArgumentError(
            "the oci:// source is where devices fetch the model",
            hint="drop --model-url / --model-oci",
        )
    desired: dict[str, Any] = {
        "name": oci.name,
        "version": oci.version,
        "sha256": oci.sha256,
        "oci": oci.reference,
    }
    if oci.signature_url and oci.release_url:
        # Content-addressed blob URLs: the agent verifies the bundle like any other.
        desired.update(signature_url=oci.signature_url, release_url=oci.release_url)
    return desired


def _image_model(ws: Workspace, request: DeployRequest[IotEdgeOptions]) -> tuple[str, str]:
    """``(image pinned by digest, NAME:VERSION)`` of a scoring image that carries the model.

    Its ``ai.amlpkg.model.*`` labels (``amlpkg build``) are read through the registry
    API; a deployed model version must be the one inside.
    """
    source = request.source
    image = image_for(ws, source)
    pinned, labels = oci_source.image_labels(image)
    name = labels.get(f"{oci_source.LABEL}.name")
    version = labels.get(f"{oci_source.LABEL}.version")
    sha256 = labels.get(f"{oci_source.LABEL}.sha256")
    if not (name and version and sha256):
        raise InvalidArgumentError(
            f"{image} carries no model (no ai.amlpkg.model.* labels), and no --model-url"
            " or --model-oci says where devices get one",
            hint="give --model-url or --model-oci, or an image made by `amlpkg build`",
        )
    model = source.model
    if model is not None and (model.name, str(model.version), model.sha256) != (
        name,
        version,
        sha256,
    ):
        raise InvalidArgumentError(
            f"{image} carries {name}:{version}, not the deployed {model.ref}",
            hint="build the image from this version, or give --model-url / --model-oci",
        )
    return pinned, f"{name}:{version}"


def agent_image_for(ws: Workspace, opts: IotEdgeOptions) -> str:
    """The edge agent image pinned by digest: ``--agent-image``, else the newest built."""
    from amlpkg.packager.build.agent_image import newest_agent_image

    if opts.agent_image:
        return oci_source.pin_image(opts.agent_image)
    found = newest_agent_image(ws, opts.platform)
    if found is None:
        raise FailedPreconditionError(
            f"no edge agent image for {opts.platform} has been built and pushed here",
            hint="amlpkg build --flavor edge-agent --platform"
            f" {opts.platform} --tag REGISTRY/amlpkg-edge-agent:TAG --push,"
            " or name one with --agent-image",
        )
    return found


def edge_options(
    ws: Workspace, request: DeployRequest[IotEdgeOptions], deployment_id: str | None = None
) -> edge.EdgeOptions:
    """Manifest options from a deploy request.

    Where devices get the model, first match wins: an ``oci://`` ModelPack source (the
    agent fetches it by digest); ``--model-url`` / ``--model-oci`` for a registered
    version; else the scoring image carries it (an ``oci://`` image source, ``--image``
    or the version's built image), and the agent downloads nothing.

    ``deployment_id`` (``NAME:REVISION``) goes to the agent, so device telemetry links
    to this deployment's record; a plan made before the record exists names none.
    """
    source, opts = request.source, request.options
    desired: dict[str, Any] | None
    if source.oci is not None and source.oci.kind == "image" and source.image != source.oci.image:
        raise InvalidArgumentError(
            "an oci:// image source runs as the scoring module itself (devices fetch"
            " ModelPack artifacts, not models inside images)",
            hint="drop --image, or push the model with `amlpkg push` and deploy that",
        )
    if source.oci is not None and source.oci.kind == "modelpack":
        desired = _oci_desired(ws, request)
        image, ref = image_for(ws, source), f"{source.oci.name}:{source.oci.version}"
    elif opts.model_url or opts.model_oci:
        model = source.model
        if model is None or (opts.model_url and opts.model_oci):
            raise InvalidArgumentError(
                "give one of --model-url or --model-oci, with a registered model (NAME:VERSION)",
                hint="the agent twin names the model's version and sha256",
            )
        where = {"url": opts.model_url} if opts.model_url else {"oci": opts.model_oci}
        desired = {"name": model.name, "version": str(model.version), "sha256": model.sha256}
        desired.update(where)
        image, ref = image_for(ws, source), model.ref
    else:
        desired = None
        image, ref = _image_model(ws, request)
    if desired is not None and opts.runtime_config:
        desired["config"] = dict(opts.runtime_config)
    return edge.EdgeOptions(
        name=request.name,
        image=image,
        model=desired,
        agent_image=agent_image_for(ws, opts),
        platform=opts.platform,
        http_port=opts.port,
        grpc_port=opts.grpc_port,
        memory_mb=opts.memory_mb,
        registry=opts.registry,
        registry_username=opts.registry_username,
        ttl_s=opts.ttl_s,
        labels={"amlpkg.ai/model": ref},
        deployment_id=deployment_id,
    )


def manifest_for(
    ws: Workspace,
    request: DeployRequest[IotEdgeOptions],
    deployment_id: str | None = None,
    opts: edge.EdgeOptions | None = None,
) -> dict[str, Any]:
    """The full manifest, or the layered one when a target condition is given."""
    opts = opts or edge_options(ws, request, deployment_id)
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
    if model is None:  # an oci:// model this workspace has not registered
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
        made = edge_options(ws, request)
        edge.resolve_references(manifest_for(ws, request, opts=made))
        self.manager(request)
        source = request.source
        _, _, digest = made.image.partition("@")
        return Prepared(
            model=None if source.model is None else source.model.ref,
            package=package_for(ws, source),
            image=made.image,
            image_digest=digest or None,
            config={"agent_image": made.agent_image},
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
