"""``--target iotedge``: manifests checked against the checked-in schema rules; IoT Hub calls.

A real IoT Hub cannot be reached from here, so applying is tested with a stated,
minimal test double: ``_RecordingHub`` stands in for ``IoTHubConfigurationManager``
and records the calls (method and content) that the real SDK object would get.
The ``Configuration``/``ConfigurationContent`` objects are the SDK's own models.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from amlpkg.collector import devices
from amlpkg.edge_agent.desired import parse_desired
from amlpkg.errors import InvalidArgumentError, UnavailableError
from amlpkg.packager.deploy import iotedge_manifest as edge
from amlpkg.packager.deploy import records
from amlpkg.packager.deploy.options import parse as parse_options
from amlpkg.packager.deploy.sources import resolve_source
from amlpkg.packager.deploy.targets.base import DeployRequest
from amlpkg.packager.deploy.targets.iotedge import IotEdgeTarget, manifest_for
from amlpkg.store.workspace import Workspace
from amlpkg.trainer.lineage_view import lineage
from tests.packager.conftest import scorer_workspace

SCHEMA = Path(edge.__file__).parent / "schemas" / "iotedge-deployment.schema.json"
IMAGE = "myregistry.azurecr.io/scorer:1-arm64"
# The agent image, named by digest as a built one is (no registry is asked then).
AGENT = "myregistry.azurecr.io/amlpkg-edge-agent@sha256:" + "ab" * 32


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


@pytest.fixture
def ws(tmp_path: Path) -> Iterator[Workspace]:
    with scorer_workspace(tmp_path) as workspace:
        yield workspace


def _request(ws: Workspace, **options: Any) -> DeployRequest:
    base = {"model_url": "https://models.example.com/scorer/1/model.onnx", "agent_image": AGENT}
    source = resolve_source(ws, "scorer:1", image=IMAGE)
    return DeployRequest("plant", source, parse_options("iotedge", base | options))


def _check_create_options(manifest: dict[str, Any]) -> None:
    """What JSON Schema cannot say: createOptions is a JSON object in a string."""
    agent = manifest["modulesContent"]["$edgeAgent"]["properties.desired"]
    for module in [*agent["systemModules"].values(), *agent["modules"].values()]:
        assert isinstance(json.loads(module["settings"]["createOptions"]), dict)


@pytest.mark.parametrize("platform", ["linux/amd64", "linux/arm64"])
def test_manifest_is_valid_for_cpu_and_arm64_devices(
    ws: Workspace, validator: jsonschema.Draft202012Validator, platform: str
) -> None:
    manifest = manifest_for(
        ws, _request(ws, platform=platform, registry="myregistry.azurecr.io", memory_mb=512)
    )
    validator.validate(manifest)
    _check_create_options(manifest)
    content = manifest["modulesContent"]
    agent = content["$edgeAgent"]["properties.desired"]
    assert agent["schemaVersion"] == "1.1"
    scoring = agent["modules"]["plant"]
    assert scoring["settings"]["image"] == IMAGE and scoring["restartPolicy"] == "always"
    options = json.loads(scoring["settings"]["createOptions"])
    assert options["HostConfig"]["PortBindings"]["8000/tcp"] == [{"HostPort": "8000"}]
    assert options["HostConfig"]["Memory"] == 512 * 1024 * 1024
    assert options["Labels"]["amlpkg.ai/platform"] == platform
    assert set(agent["modules"]) == {"plant", edge.AGENT_MODULE}
    assert agent["modules"][edge.AGENT_MODULE]["settings"]["image"] == AGENT
    # Credentials by reference only: the manifest holds no secret.
    creds = agent["runtime"]["settings"]["registryCredentials"]["myregistryazurecrio"]
    assert creds["password"] == "${AMLPKG_REGISTRY_PASSWORD}"
    hub = content["$edgeHub"]["properties.desired"]
    assert hub["storeAndForwardConfiguration"]["timeToLiveSecs"] == 7200
    # The agent twin is what the edge agent itself parses.
    desired = parse_desired(content[edge.AGENT_MODULE]["properties.desired"])
    assert desired.model is not None and desired.model.ref == "scorer:1"
    assert desired.model.sha256 == resolve_source(ws, "scorer:1").model.sha256  # type: ignore[union-attr]


def test_schema_rules_reject_broken_manifests(
    ws: Workspace, validator: jsonschema.Draft202012Validator
) -> None:
    manifest = manifest_for(ws, _request(ws))
    agent = manifest["modulesContent"]["$edgeAgent"]["properties.desired"]
    agent["modules"]["plant"]["restartPolicy"] = "sometimes"
    with pytest.raises(jsonschema.ValidationError, match="sometimes"):
        validator.validate(manifest)
    manifest = manifest_for(ws, _request(ws))
    del manifest["modulesContent"]["$edgeHub"]["properties.desired"]["storeAndForwardConfiguration"]
    with pytest.raises(jsonschema.ValidationError, match="storeAndForwardConfiguration"):
        validator.validate(manifest)


def test_layered_manifest_sets_properties_by_path(ws: Workspace) -> None:
    manifest = manifest_for(ws, _request(ws, target_condition="tags.site='plant1'"))
    content = manifest["modulesContent"]
    assert set(content["$edgeAgent"]) == {
        "properties.desired.modules.plant",
        f"properties.desired.modules.{edge.AGENT_MODULE}",
    }
    assert list(content["$edgeHub"]) == [f"properties.desired.routes.{edge.AGENT_MODULE}ToUpstream"]
    assert parse_desired(content[edge.AGENT_MODULE]["properties.desired"]).model is not None


def test_bad_options_are_refused(ws: Workspace) -> None:
    with pytest.raises(InvalidArgumentError, match="one of --model-url or --model-oci"):
        manifest_for(ws, _request(ws, model_oci="oci://127.0.0.1:5000/scorer:1"))
    with pytest.raises(InvalidArgumentError, match="platform"):
        manifest_for(ws, _request(ws, platform="windows/amd64"))


class _RecordingHub:
    """Test double of ``IoTHubConfigurationManager``: records calls, can be told to fail."""

    def __init__(self, fail: Exception | None = None) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.fail = fail

    def apply_configuration_on_edge_device(self, device_id: str, content: Any) -> None:
        self.calls.append(("apply_configuration_on_edge_device", (device_id, content)))
        if self.fail is not None:
            raise self.fail

    def create_configuration(self, configuration: Any) -> Any:
        self.calls.append(("create_configuration", configuration))
        return configuration

    def delete_configuration(self, configuration_id: str) -> None:
        self.calls.append(("delete_configuration", configuration_id))


def test_apply_to_one_device_sends_the_manifest(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub = _RecordingHub()
    target = IotEdgeTarget(hub)
    request = _request(ws, device_id="dev1", registry="myregistry.azurecr.io")
    with pytest.raises(InvalidArgumentError, match="AMLPKG_REGISTRY_PASSWORD"):
        target.apply(ws, request)
    assert hub.calls == [] and records.latest_per_name(ws) == []
    monkeypatch.setenv("AMLPKG_REGISTRY_USERNAME", "puller")
    monkeypatch.setenv("AMLPKG_REGISTRY_PASSWORD", 's3cr"et')
    record = target.apply(ws, request)
    ((method, (device, content)),) = hub.calls
    assert (method, device) == ("apply_configuration_on_edge_device", "dev1")
    modules = content.modules_content
    creds = modules["$edgeAgent"]["properties.desired"]["runtime"]["settings"][
        "registryCredentials"
    ]["myregistryazurecrio"]
    assert creds == {
        "address": "myregistry.azurecr.io",
        "username": "puller",
        "password": 's3cr"et',
    }
    assert record.status == "ready" and record.state["device_id"] == "dev1"
    desired = devices.get(ws, "dev1")  # the device is a record, naming what it should serve
    assert (desired.desired_model, desired.desired_deployment_id) == ("scorer:1", record.id)
    assert desired.desired_sha256 and desired.last_telemetry is None
    # The agent reports device telemetry under this record's id, so it links in the lineage.
    agent_env = next(
        m["env"]
        for m in modules["$edgeAgent"]["properties.desired"]["modules"].values()
        if "AMLPKG_EDGE_SCORING_URL" in m.get("env", {})
    )
    assert agent_env["AMLPKG_DEPLOYMENT_ID"] == {"value": record.id}
    assert "s3cr" not in json.dumps(record.to_dict())
    # model version -> deployment -> the device it names
    downstream = lineage("scorer:1", workspace=ws)["downstream"]
    assert [e["dst_id"] for e in downstream] == ["plant:1", "dev1"]


def test_layered_apply_and_delete(ws: Workspace) -> None:
    hub = _RecordingHub()
    target = IotEdgeTarget(hub)
    record = target.apply(ws, _request(ws, target_condition="tags.site='plant1'", priority=20))
    ((method, configuration),) = hub.calls
    assert method == "create_configuration"
    assert configuration.id == "plant-1" and configuration.priority == 20
    assert configuration.target_condition == "tags.site='plant1'"
    assert "properties.desired.modules.plant" in configuration.content.modules_content["$edgeAgent"]
    deleted = target.delete(ws, record)
    assert hub.calls[-1] == ("delete_configuration", "plant-1")
    assert deleted.status == "stopped"


def test_hub_failure_is_recorded(ws: Workspace) -> None:
    target = IotEdgeTarget(_RecordingHub(fail=RuntimeError("401 Unauthorized")))
    with pytest.raises(UnavailableError, match="401"):
        target.apply(ws, _request(ws, device_id="dev1"))
    failed = records.get(ws, "plant")
    assert failed.status == "failed" and "401" in (failed.reason or "")


def test_a_foreign_exception_fails_the_revision_and_keeps_the_previous(ws: Workspace) -> None:
    hub = _RecordingHub()
    target = IotEdgeTarget(hub)
    first = target.apply(ws, _request(ws, device_id="dev1"))
    assert first.status == "ready"
    hub.fail = OSError("network is unreachable")
    with pytest.raises(UnavailableError, match="network is unreachable") as caught:
        target.apply(ws, _request(ws, device_id="dev1", platform="linux/arm64"))
    assert "plant:1 keeps serving" in (caught.value.hint or "")
    failed = records.get(ws, "plant:2")
    assert failed.status == "failed" and "network is unreachable" in (failed.reason or "")
    assert records.serving(ws, "plant") == records.get(ws, "plant:1")
    assert records.get(ws, "plant:1").state["device_id"] == "dev1"
