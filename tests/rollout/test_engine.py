"""The rollout engine without devices: parsing, cohorts, the gate and the driver's steps.

Telemetry is written through the collector's own store, as agents' messages would be;
the desired state goes to a folder (standalone) or to a fake IoT Hub configuration
client that records what it is asked (no IoT Hub can be reached from CI).
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from amlpkg.collector.devices import get as get_device
from amlpkg.collector.store import TelemetryStore, row_from_device_message
from amlpkg.collector.windows import DeviceWindow
from amlpkg.errors import FailedPreconditionError, InvalidArgumentError
from amlpkg.packager import rollout as ro
from amlpkg.packager.rollout import cohorts, records
from amlpkg.packager.rollout.appliers import IotHubApplier, target_condition
from amlpkg.packager.rollout.gate import CohortDevice, evaluate
from amlpkg.packager.rollout.spec import FleetCondition, parse_duration, parse_gate, parse_stages
from amlpkg.store.lineage_edges import describe, downstream
from amlpkg.store.workspace import Workspace, open_workspace
from amlpkg.trainer.registry import register
from tests.edge_agent.conftest import add_model


def test_gate_stages_durations_and_fleet_conditions_parse() -> None:
    checks = parse_gate("p95_ms<=1.2*control, error_rate<0.01")
    assert [c.text for c in checks] == [
        "p95_ms<=1.2*control",
        "error_rate<0.01",
        "swap_failures<=0",
    ]
    assert checks[0].passes(11.0, 10.0) and not checks[0].passes(13.0, 10.0)
    assert checks[0].passes(1.0, None) is None
    assert parse_stages("5%,25%,100%") == [5.0, 25.0, 100.0]
    assert parse_duration("10m") == 600 and parse_duration("2.5s") == 2.5
    for bad in ("latency<1", "p95_ms<=fast"):
        with pytest.raises(InvalidArgumentError):
            parse_gate(bad)
    for bad in ("5%,25%", "50%,25%,100%", "x"):
        with pytest.raises(InvalidArgumentError):
            parse_stages(bad)
    fleet = FleetCondition.parse("id=cam-*, deployment!=lab:*")
    assert fleet.matches({"id": "cam-1", "deployment": "plant:1"})
    assert not fleet.matches({"id": "cam-1", "deployment": "lab:2"})
    assert not fleet.matches({"id": "door-1"})
    with pytest.raises(InvalidArgumentError):
        FleetCondition.parse("color=red")


def test_cohorts_are_deterministic_cumulative_and_per_rollout() -> None:
    fleet = [f"dev-{i:02d}" for i in range(30)]
    first = cohorts.cohort("ro-a", fleet, 10)
    assert len(first) == 3 and first == cohorts.cohort("ro-a", reversed(fleet), 10)
    assert cohorts.cohort("ro-a", fleet, 50)[:3] == first
    assert cohorts.cohort("ro-b", fleet, 10) != first
    assert cohorts.stage_size(5, 30) == 2 and cohorts.stage_size(1, 3) == 1
    # a device joining the fleet does not reshuffle the ones chosen before
    assert set(first) - set(cohorts.cohort("ro-a", [*fleet, "dev-new"], 10)) <= {first[-1]}


def _window(
    device: str, model: str, at: float, *, errors: int = 0, p95: float = 5.0
) -> DeviceWindow:
    return DeviceWindow(device, model, at, 20, errors, p95 / 2, p95 / 2, p95, p95 * 1.2)


def test_gate_names_the_metric_and_the_devices_that_failed_it() -> None:
    t0 = 1000.0
    cohort = [CohortDevice("a", t0), CohortDevice("b", t0), CohortDevice("c", t0)]
    windows = [
        _window("a", "m:2", t0 + 1, p95=30.0),
        _window("b", "m:2", t0 + 1, p95=5.0),
        _window("c", "m:1", t0 + 6),  # still the old model half a soak later: a failed swap
        *(_window(f"k{i}", "m:1", t0 + 1, p95=5.0) for i in range(5)),
    ]
    common: dict[str, Any] = dict(
        checks=parse_gate("p95_ms<=1.2*control,error_rate<0.01"),
        cohort=cohort, control_ids={f"k{i}" for i in range(5)}, windows=windows,
        new_model="m:2", stage_applied_at=t0, soak_s=10, quorum=0.6, max_wait_s=10,
        baseline=None,
    )  # fmt: skip
    assert evaluate(**common, now=t0 + 5)["decided"] is False  # still soaking
    verdict = evaluate(**common, now=t0 + 10)
    assert verdict["decided"] and verdict["passed"] is False
    failed = {f["metric"]: f["devices"] for f in verdict["failures"]}
    assert failed == {"p95_ms": ["a"], "swap_failures": ["c"]}
    assert verdict["devices"] == {"a": "swapped", "b": "swapped", "c": "failed"}


def test_gate_waits_for_a_quorum_but_not_forever() -> None:
    t0 = 1000.0
    cohort = [CohortDevice("a", t0), CohortDevice("b", t0)]
    common: dict[str, Any] = dict(
        checks=parse_gate("error_rate<0.01"), cohort=cohort, control_ids={"k"},
        windows=[_window("a", "m:2", t0 + 1), _window("k", "m:1", t0 + 1)], new_model="m:2",
        stage_applied_at=t0, soak_s=10, quorum=1.0, max_wait_s=20, baseline=None,
    )  # fmt: skip
    assert evaluate(**common, now=t0 + 15)["decided"] is False
    verdict = evaluate(**common, now=t0 + 31)
    assert verdict["passed"] is False
    assert verdict["failures"][0]["metric"] == "quorum"
    assert verdict["failures"][0]["devices"] == ["b"]
    common["quorum"] = 0.5
    assert evaluate(**common, now=t0 + 10)["passed"] is True


class FakeApplier:
    """Records the stage decisions instead of writing desired state."""

    def __init__(self) -> None:
        self.applied: list[tuple[int, list[str]]] = []
        self.rolled_back: list[str] = []

    def previous(self, device_id: str) -> dict[str, Any]:
        return {"model": {"name": "m", "version": "1", "sha256": "0" * 64}}

    def apply_stage(self, rollout: records.Rollout, stage: int, device_ids: list[str]) -> None:
        self.applied.append((stage, sorted(device_ids)))

    def roll_back(self, rollout: records.Rollout, devices: list[records.RolloutDevice]) -> None:
        self.rolled_back += [d.device_id for d in devices]


def _fleet(ws: Workspace, tmp: Path, n: int = 10) -> TelemetryStore:
    for version in (1, 2):
        path = tmp / f"m{version}.onnx"
        path.write_bytes(add_model(float(version)))
        register("m", path, workspace=ws)
    store = TelemetryStore(ws)
    for i in range(n):
        _send(store, f"d{i}", "1")
    return store


def _send(store: TelemetryStore, device: str, version: str, errors: int = 0) -> None:
    body = {
        "message_id": uuid.uuid4().hex, "device": device, "model": "m", "version": version,
        "time": time.time(), "window_s": 1, "requests": 10, "errors": errors,
        "compute_p95_ms": 4.0, "latency_avg_ms": 2.0,
    }  # fmt: skip
    store.add([row_from_device_message(body)])


def test_driver_goes_through_stages_and_rolls_back_on_errors(tmp_path: Path) -> None:
    with open_workspace(tmp_path / "ws") as ws:
        store = _fleet(ws, tmp_path)
        rollout = ro.create(
            ws, "m:2", fleet_condition="id=d*", stages="20%,100%", gate="error_rate<0.05",
            soak="0.2s", quorum=1.0, desired_dir=tmp_path / "desired",
        )  # fmt: skip
        fake = FakeApplier()
        rollout = ro.step(ws, rollout.id, fake)
        assert (rollout.phase, len(fake.applied[0][1])) == ("soak", 2)
        cohort = fake.applied[0][1]
        assert get_device(ws, cohort[0]).desired_model == "m:2"
        time.sleep(0.25)
        for device in cohort:
            _send(store, device, "2")
        for i in range(10):
            if f"d{i}" not in cohort:
                _send(store, f"d{i}", "1")
        rollout = ro.step(ws, rollout.id, fake)
        assert (rollout.stage, rollout.phase, rollout.result[0]["passed"]) == (1, "apply", True)
        rollout = ro.step(ws, rollout.id, fake)
        assert len(fake.applied[1][1]) == 8
        time.sleep(0.25)
        for i in range(10):
            _send(store, f"d{i}", "2", errors=5)  # 50% errors, no control left
        rollout = ro.step(ws, rollout.id, fake)
        assert rollout.state == "failed"
        assert "error_rate<0.05 failed" in (rollout.reason or "")
        assert sorted(fake.rolled_back) == [f"d{i}" for i in range(10)]
        assert get_device(ws, "d0").desired_model == "m:1"
        assert {d.status for d in records.devices(ws, rollout.id)} == {"rolled_back"}
        edges = [e.to_dict() for e in downstream(ws, ("model_version", "m:2"))]
        describe(ws, edges)
        staged = [e for e in edges if e["relation"] == "staged"]
        assert len(staged) == 10 and "by stage 1 (20%), rolled back" in str(
            next(e for e in staged if e["dst_id"] == cohort[0])["detail"]
        )
        with pytest.raises(FailedPreconditionError):
            ro.abort(ws, rollout.id, fake)


def test_pause_resume_abort_and_the_standalone_documents(tmp_path: Path) -> None:
    with open_workspace(tmp_path / "ws") as ws:
        _fleet(ws, tmp_path, n=4)
        desired = tmp_path / "desired"
        desired.mkdir()
        old = {"model": {"name": "m", "version": "1", "sha256": "1" * 64, "url": "file:///x"},
               "telemetry_interval_s": 5}  # fmt: skip
        for i in range(4):
            (desired / f"d{i}.json").write_text(json.dumps(old))
        rollout = ro.create(
            ws, "m:2", fleet_condition="*", stages="50%,100%", gate="error_rate<0.05",
            soak="1h", desired_dir=desired,
        )  # fmt: skip
        applier = ro.applier_for(rollout)
        ro.step(ws, rollout.id, applier)
        changed = [i for i in range(4) if json.loads((desired / f"d{i}.json").read_text())
                   ["model"]["version"] == "2"]  # fmt: skip
        assert len(changed) == 2
        assert (
            json.loads((desired / f"d{changed[0]}.json").read_text())["telemetry_interval_s"] == 5
        )
        records.set_state(ws, rollout.id, "paused", allowed=("running",))
        assert ro.drive(ws, rollout.id, applier).state == "paused"
        records.set_state(ws, rollout.id, "running", allowed=("paused",))
        assert ro.drive(ws, rollout.id, applier, poll_s=0.05, max_s=0.2).phase == "soak"
        aborted = ro.abort(ws, rollout.id, applier)
        assert aborted.state == "aborted"
        assert all(json.loads((desired / f"d{i}.json").read_text()) == old for i in range(4))


class FakeConfigurationManager:
    """Stands in for azure-iot-hub's IoTHubConfigurationManager."""

    def __init__(self) -> None:
        self.configs: dict[str, Any] = {}

    def create_configuration(self, configuration: Any) -> Any:
        self.configs[configuration.id] = configuration
        return configuration

    def get_configurations(self) -> list[Any]:
        return list(self.configs.values())

    def delete_configuration(self, config_id: str) -> None:
        del self.configs[config_id]


def test_iotedge_stages_are_layered_deployments_naming_the_cohort() -> None:
    rollout = SimpleNamespace(
        id="ro-1", model="m:2", stages=[10.0, 100.0],
        options={"image": "reg/score:1", "agent_image": f"reg/agent@sha256:{'a' * 64}",
                 "priority": 120,
                 "desired": {"name": "m", "version": "2", "sha256": "2" * 64,
                             "url": "https://models/m/2/model.onnx"}},
    )  # fmt: skip
    manager = FakeConfigurationManager()
    applier = IotHubApplier(manager)
    applier.apply_stage(rollout, 0, ["cam-2", "cam-1"])  # type: ignore[arg-type]
    applier.apply_stage(rollout, 0, ["cam-2", "cam-1"])  # type: ignore[arg-type]  # resumed
    config = manager.configs["ro-1-s1"]
    assert config.target_condition == "deviceId='cam-1' OR deviceId='cam-2'"
    assert config.priority == 120
    twin = config.content.modules_content["amlpkgagent"]["properties.desired"]["model"]
    assert twin["version"] == "2"
    applier.roll_back(rollout, [])  # type: ignore[arg-type]
    assert manager.configs == {}
    with pytest.raises(InvalidArgumentError):
        target_condition(["x' OR deviceId='y"])
