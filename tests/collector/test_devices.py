"""Devices as records: desired (from a deploy or a call), reported (from telemetry), lineage."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from amlpkg.cli.app import app
from amlpkg.collector import devices
from amlpkg.collector.store import TelemetryStore, row_from_device_message
from amlpkg.errors import InvalidArgumentError, NotFoundError
from amlpkg.store.lineage_edges import edges_to
from amlpkg.store.workspace import open_workspace
from tests.cli.rich_tables import assert_not_cut

SHA = "ab" * 32


def _message(seq: int, version: str) -> dict[str, object]:
    return {
        "message_id": f"dev1:{seq}",
        "device": "dev1",
        "seq": seq,
        "model": "m",
        "version": version,
        "deployment": "plant:2",
        "module": "amlpkgagent",
        "requests": 3,
    }


def test_desired_then_reported_then_in_sync(tmp_path: Path) -> None:
    with open_workspace(tmp_path / "ws") as ws:
        known = devices.set_desired(ws, "dev1", "m:2", SHA, deployment_id="plant:2")
        assert known.desired_model == "m:2" and known.desired_sha256 == SHA
        assert known.last_telemetry is None and known.in_sync is None
        store = TelemetryStore(ws)
        store.add([row_from_device_message(_message(1, "1"))])
        behind = devices.get(ws, "dev1")
        assert behind.reported_model == "m:1" and behind.in_sync is False
        assert behind.last_telemetry is not None and behind.first_seen <= behind.last_seen
        store.add([row_from_device_message(_message(2, "2"))])
        assert devices.get(ws, "dev1").in_sync is True
        assert [d.id for d in devices.list_devices(ws)] == ["dev1"]
        relations = {(e.src_id, e.relation) for e in edges_to(ws, ("device", "dev1"))}
        assert relations == {("plant:2", "deployed_to"), ("plant:2", "runs_on")}
        with pytest.raises(NotFoundError):
            devices.get(ws, "nope")
        with pytest.raises(InvalidArgumentError):
            devices.set_desired(ws, "dev1", "no-version")


def test_cli_lists_and_shows_devices_in_80_columns(tmp_path: Path) -> None:
    home = tmp_path / "ws"
    with open_workspace(home) as ws:
        devices.set_desired(ws, "edge-device-with-a-long-name-01", "quickstart-iris:12", SHA)
    runner = CliRunner()
    env = {"COLUMNS": "80"}
    listed = runner.invoke(app, ["devices", "list", "--home", str(home)], env=env)
    assert listed.exit_code == 0, listed.output
    assert_not_cut(listed.output, "edge-device-with-a-long-name-01", "quickstart-iris:12")
    shown = runner.invoke(
        app, ["devices", "show", "edge-device-with-a-long-name-01", "--home", str(home), "--json"]
    )
    assert json.loads(shown.output)["desired_model"] == "quickstart-iris:12"
