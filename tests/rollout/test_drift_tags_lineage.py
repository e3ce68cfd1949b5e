"""The drift gate, twin-tag fleets, the agent image pinned by digest, and rollout lineage.

Telemetry is written through the collector's store as agents' messages would be; the
desired state goes to a folder (standalone). IoT Hub cannot be reached from CI, so the
layered-deployment applier is not called here (see test_engine for its fake client).
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from amlpkg.collector.devices import get as get_device
from amlpkg.collector.devices import set_tags
from amlpkg.collector.lineage import device_lineage
from amlpkg.collector.store import TelemetryStore, row_from_device_message
from amlpkg.collector.windows import DeviceWindow
from amlpkg.errors import FailedPreconditionError, InvalidArgumentError
from amlpkg.packager import rollout as ro
from amlpkg.packager.build.agent_image import AGENT_KIND
from amlpkg.packager.build.api import IMAGE_KIND, PUSHED_AS
from amlpkg.packager.rollout import records
from amlpkg.packager.rollout.gate import DRIFT_MIN_OUTPUTS, CohortDevice, evaluate
from amlpkg.packager.rollout.spec import FleetCondition, parse_gate
from amlpkg.store.lineage_edges import add_edge
from amlpkg.store.workspace import open_workspace
from amlpkg.trainer.registry import register
from tests.edge_agent.conftest import add_model


def _window(device: str, model: str, at: float, bins: dict[str, int]) -> DeviceWindow:
    return DeviceWindow(device, model, at, 40, 0, 2.0, 2.0, 4.0, 5.0, outputs=bins)


def _verdict(cohort_bins: dict[str, int], *, baseline: dict[str, Any] | None = None) -> Any:
    t0, usual = 1000.0, {"130": 30, "131": 10}
    control = [] if baseline else [_window(f"k{i}", "m:1", t0 + 1, usual) for i in range(3)]
    return evaluate(
        checks=parse_gate("error_rate<0.05,drift<0.2"),
        cohort=[CohortDevice("a", t0), CohortDevice("b", t0)],
        control_ids=set() if baseline else {"k0", "k1", "k2"},
        windows=[_window("a", "m:2", t0 + 1, cohort_bins), _window("b", "m:2", t0 + 1, usual),
                 *control],
        new_model="m:2", stage_applied_at=t0, soak_s=5, quorum=1.0, max_wait_s=5,
        baseline=baseline, now=t0 + 6,
    )  # fmt: skip


def test_drift_passes_the_same_outputs_and_stops_shifted_ones() -> None:
    same = _verdict({"130": 29, "131": 11})
    assert same["passed"] is True and same["cohort"]["drift"] < 0.05
    shifted = _verdict({"140": 40})  # device a answers something else entirely
    assert shifted["passed"] is False
    failure = next(f for f in shifted["failures"] if f["metric"] == "drift")
    assert failure["observed"] > 0.2 and failure["devices"] == ["a"]
    # the last stage has no control left: the previous gate's control histogram is used
    baseline = json.loads(json.dumps(same["control"]))  # as stored in the workspace
    assert _verdict({"140": 40}, baseline=baseline)["passed"] is False
    assert _verdict({"130": 30, "131": 10}, baseline=baseline)["passed"] is True


def test_drift_without_enough_outputs_fails_and_says_why() -> None:
    t0 = 1000.0
    verdict = evaluate(
        checks=parse_gate("drift<0.2"), cohort=[CohortDevice("a", t0)], control_ids={"k"},
        windows=[_window("a", "m:2", t0 + 1, {"130": DRIFT_MIN_OUTPUTS - 1}),
                 _window("k", "m:1", t0 + 1, {"130": 50})],
        new_model="m:2", stage_applied_at=t0, soak_s=5, quorum=1.0, max_wait_s=5,
        baseline=None, now=t0 + 6,
    )  # fmt: skip
    assert verdict["passed"] is False
    assert "fewer than" in verdict["failures"][0]["why"]


def test_fleet_conditions_select_on_twin_tags(tmp_path: Path) -> None:
    fleet = FleetCondition.parse("tags.region=eu-*,tags.site.line=3")
    assert fleet.matches({"tags.region": "eu-west", "tags.site.line": "3"})
    assert not fleet.matches({"tags.region": "us-east", "tags.site.line": "3"})
    assert not fleet.matches({"id": "x"})  # no tags: not in the fleet
    assert FleetCondition.parse("tags.region!=eu-*").matches({"id": "x"})
    with pytest.raises(InvalidArgumentError):
        FleetCondition.parse("tags.=x")
    with open_workspace(tmp_path / "ws") as ws:
        set_tags(ws, "d1", {"region": "eu-west", "site": {"line": 3}})
        set_tags(ws, "d2", {"region": "eu-north", "site": {"line": 4}})
        set_tags(ws, "d3", {"region": "us-east", "site": {"line": 3}})
        assert get_device(ws, "d1").tags == {"region": "eu-west", "site.line": "3"}
        assert ro.fleet(ws, "tags.region=eu-*,tags.site.line=3") == ["d1"]
        assert ro.fleet(ws, "tags.region=eu-*") == ["d1", "d2"]
        set_tags(ws, "d2", {"region": None})  # a twin tags patch: null removes
        assert ro.fleet(ws, "tags.region=eu-*") == ["d1"]
        with pytest.raises(InvalidArgumentError):
            set_tags(ws, "d1", {"bad name": "x"})
        with pytest.raises(InvalidArgumentError):
            set_tags(ws, "d1", {f"t{i}": "x" for i in range(100)})


def _send(store: TelemetryStore, device: str, version: str, errors: int = 0) -> None:
    body = {"message_id": uuid.uuid4().hex, "device": device, "model": "m", "version": version,
            "time": time.time(), "window_s": 1, "requests": 10, "errors": errors}  # fmt: skip
    store.add([row_from_device_message(body)])


class Recorder:
    """Records stage decisions instead of writing desired state."""

    def previous(self, device_id: str) -> dict[str, Any]:
        return {"model": {"name": "m", "version": "1", "sha256": "0" * 64}}

    def apply_stage(self, rollout: records.Rollout, stage: int, device_ids: list[str]) -> None:
        pass

    def roll_back(self, rollout: records.Rollout, devices: list[records.RolloutDevice]) -> None:
        pass


def test_lineage_says_which_rollout_stage_put_a_model_on_a_device(tmp_path: Path) -> None:
    with open_workspace(tmp_path / "ws") as ws:
        for version in (1, 2, 3):
            path = tmp_path / f"m{version}.onnx"
            path.write_bytes(add_model(float(version)))
            register("m", path, workspace=ws)
        store = TelemetryStore(ws)
        for i in range(4):
            _send(store, f"d{i}", "1")

        def create(model: str) -> records.Rollout:
            return ro.create(ws, model, fleet_condition="*", stages="50%,100%",
                             gate="error_rate<0.05", soak="0.1s", quorum=1.0,
                             desired_dir=tmp_path / "desired")  # fmt: skip

        good = create("m:2")
        ro.step(ws, good.id, Recorder())
        first = [d.device_id for d in records.devices(ws, good.id)]
        time.sleep(0.15)
        for i in range(4):
            _send(store, f"d{i}", "2" if f"d{i}" in first else "1")
        ro.step(ws, good.id, Recorder())
        ro.step(ws, good.id, Recorder())
        time.sleep(0.15)
        for i in range(4):
            _send(store, f"d{i}", "2")
        assert ro.step(ws, good.id, Recorder()).state == "succeeded"
        view = device_lineage(ws, first[0])
        assert view["because"] == f"runs m:2 because of rollout {good.id} stage 1 (50%)"
        later = next(d.device_id for d in records.devices(ws, good.id) if d.stage == 1)
        assert f"rollout {good.id} stage 2 (100%)" in device_lineage(ws, later)["because"]
        relations = {(e["src_kind"], e["relation"]) for e in view["upstream"]}
        assert {("rollout", "staged"), ("model_version", "rolled_out")} <= relations

        bad = create("m:3")
        ro.step(ws, bad.id, Recorder())
        cohort = [d.device_id for d in records.devices(ws, bad.id)]
        time.sleep(0.15)
        for device in cohort:
            _send(store, device, "3", errors=5)
        assert ro.step(ws, bad.id, Recorder()).state == "failed"
        view = device_lineage(ws, cohort[0])
        assert view["because"] == (
            f"back on m:1 because rollout {bad.id} stage 1 (50%) with m:3 was rolled back"
        )
        back = [e for e in view["upstream"] if e["relation"] == "rolled_back"]
        assert len(back) == 1 and "rolled back to m:1" in back[0]["detail"]


def test_an_iotedge_rollout_pins_the_agent_image_by_digest(tmp_path: Path) -> None:
    digest = "127.0.0.1:5000/amlpkg-edge-agent@sha256:" + "b" * 64
    with open_workspace(tmp_path / "ws") as ws:
        path = tmp_path / "m1.onnx"
        path.write_bytes(add_model(1.0))
        register("m", path, workspace=ws)
        _send(TelemetryStore(ws), "cam-1", "1")
        options = {"image": "reg/score@sha256:" + "c" * 64}
        with pytest.raises(FailedPreconditionError, match="no edge agent image"):
            ro.create(ws, "m:1", fleet_condition="*", target="iotedge", options=options)
        add_edge(ws, (AGENT_KIND, "linux/amd64"), (IMAGE_KIND, digest), PUSHED_AS)
        created = ro.create(ws, "m:1", fleet_condition="*", target="iotedge", options=options)
        assert created.options["agent_image"] == digest
        unpinned = records.update(
            ws, created.id, options={**created.options, "agent_image": "reg/a:1"}
        )
        with pytest.raises(InvalidArgumentError, match="not pinned"):
            ro.IotHubApplier(None).manifest(unpinned)


class FakeRegistry:
    """Stands in for azure-iot-hub's IoTHubRegistryManager (no IoT Hub reachable from CI):
    answers the twin query in pages, with the models' Twin objects."""

    def __init__(self, twins: list[Any]) -> None:
        self.twins = twins
        self.queries: list[tuple[str, str | None]] = []

    def query_iot_hub(self, spec: Any, token: str | None, count: int) -> Any:
        from azure.iot.hub.models import QueryResult

        self.queries.append((spec.query, token))
        start = int(token or 0)
        rest = self.twins[start + count :]
        return QueryResult(
            type="twin",
            items=self.twins[start : start + count],
            continuation_token=str(start + count) if rest else None,
        )


def test_twin_tags_come_from_the_hub_before_the_fleet_is_chosen(tmp_path: Path) -> None:
    from azure.iot.hub.models import Twin

    from amlpkg.packager.rollout.twins import import_twin_tags

    twins = [
        Twin(device_id="cam-1", tags={"region": "eu-west", "site": {"line": 3}}),
        Twin(device_id="cam-2", tags={"region": "us-east"}),
        Twin(device_id="cam-3", tags={"bad name": "x"}),
        Twin(device_id="cam-4", tags=None),
    ]
    with open_workspace(tmp_path / "ws") as ws:
        set_tags(ws, "cam-2", {"old": "gone"})
        paged = FakeRegistry(twins)
        done = import_twin_tags(ws, paged, page=2)
        assert [token for _, token in paged.queries] == [None, "2"]
        assert done.imported == ["cam-1", "cam-2", "cam-4"] and list(done.refused) == ["cam-3"]
        assert get_device(ws, "cam-1").tags == {"region": "eu-west", "site.line": "3"}
        assert get_device(ws, "cam-2").tags == {"region": "us-east"}  # the hub's, exactly
        path = tmp_path / "m1.onnx"
        path.write_bytes(add_model(1.0))
        register("m", path, workspace=ws)
        twins[1] = Twin(device_id="cam-2", tags={"region": "eu-north"})
        registry = FakeRegistry(twins)
        created = ro.create(
            ws, "m:1", fleet_condition="tags.region=eu-*", desired_dir=tmp_path / "d",
            registry=registry,
        )  # fmt: skip
        assert registry.queries == [("SELECT * FROM devices", None)]
        assert ro.fleet(ws, created.fleet) == ["cam-1", "cam-2"]
