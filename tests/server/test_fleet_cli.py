"""`amlpkg deployments list|show`, `telemetry show` and `devices list|show` against a real team
server print what they print against the workspace it serves; errors stay errors."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from typer.testing import CliRunner

from amlpkg.cli.app import app
from tests.remote.conftest import TeamServer, _isolated_user, amlpkg, team

__all__ = ["_isolated_user", "team"]  # the real-server fixtures of tests/remote
pytestmark = pytest.mark.slow


def _seed(team: TeamServer) -> None:
    """Two revisions of a deployment, another deployment, device telemetry and a desired model."""
    from amlpkg.collector import devices
    from amlpkg.packager.deploy import records
    from amlpkg.store.workspace import open_workspace

    with open_workspace(team.home) as ws:
        first = records.create(
            ws, name="shop", target="local", config={"source": "/x/iris"}, model="iris:1"
        )
        records.update(
            ws, first.id, status="ready", endpoint_http="http://127.0.0.1:8000",
            endpoint_grpc="127.0.0.1:8001", state={"verified": True, "pid": 1},
        )  # fmt: skip
        records.create(ws, name="shop", target="local", config={}, model="iris:2")
        records.create(ws, name="edge", target="iotedge", config={}, model="iris:1")
        devices.set_desired(ws, "plant-7", "iris:1", "ab" * 32, deployment_id="edge:1")
        devices.set_desired(ws, "plant-9", "iris:2")
        devices.set_tags(ws, "plant-7", {"site": "north"})
    now = time.time()
    messages = [
        {"message_id": f"m{i}", "device": "plant-7", "deployment": "edge:1", "model": "iris",
         "version": 1, "seq": i, "time": now - 60 * (5 - i), "window_s": 60,
         "requests": 600 + 40 * i, "errors": i % 2, "latency_avg_ms": 2.0 + i / 10,
         "compute_p95_ms": 4.0 + i}
        for i in range(5)
    ]  # fmt: skip
    with team.api("contributor") as api:
        api.post(f"{team.url}/v1/devices", json=messages).raise_for_status()


def _cli(*args: str, env: dict[str, str] | None = None) -> str:
    """The CLI in this process (the server is still its own process): many calls, quickly."""
    done = CliRunner().invoke(app, list(args), env={"COLUMNS": "220", **(env or {})})
    assert done.exit_code == 0, f"{args}: {done.output} {done.exception!r}"
    return done.stdout


def _public(value: Any) -> Any:
    """Deployment JSON without what a server keeps to itself (config, state)."""
    if isinstance(value, list):
        return [_public(v) for v in value]
    if isinstance(value, dict):
        return {k: _public(v) for k, v in value.items() if k not in ("config", "state")}
    return value


def test_read_commands_print_the_same_rows_remote_and_embedded(team: TeamServer) -> None:
    _seed(team)
    env = team.env("reader")
    home = ["--home", str(team.home)]
    commands = [
        ["deployments", "list"], ["deployments", "show", "shop"],
        ["telemetry", "show"], ["telemetry", "show", "--deployment", "edge:1"],
        ["telemetry", "show", "--device", "plant-7"], ["telemetry", "show", "--device", "none"],
        ["devices", "list"], ["devices", "show", "plant-7"],
    ]  # fmt: skip
    for command in commands:
        remote = _cli(*command, env=env)
        assert remote == _cli(*command, *home), command
        remote_json = json.loads(_cli(*command, "--json", env=env))
        assert remote_json == _public(json.loads(_cli(*command, "--json", *home))), command

    shown = json.loads(amlpkg("deployments", "show", "shop", "--json", env=env).stdout)
    assert [r["id"] for r in shown["history"]] == ["shop:2", "shop:1"]
    assert shown["serving"]["id"] == "shop:1"
    assert shown["endpoints"]["http"] == "http://127.0.0.1:8000"
    assert "config" not in shown["history"][0]  # paths of the deploying machine stay there
    summaries = json.loads(_cli("telemetry", "show", "--since", "10m", "--json", env=env))
    assert [s["key"] for s in summaries["deployments"]] == ["edge:1"]
    assert summaries["devices"][0]["requests"] == sum(600 + 40 * i for i in range(5))
    listed = json.loads(_cli("devices", "list", "--json", env=env))
    assert [(d["id"], d["in_sync"]) for d in listed] == [("plant-7", True), ("plant-9", None)]
    assert listed[0]["tags"] == {"site": "north"}
    assert "iris:1 (sha256 " + "ab" * 32 in _cli("devices", "show", "plant-7", env=env)


@pytest.mark.parametrize(
    ("command", "message"),
    [
        (["deployments", "show", "nope"], "no deployment 'nope'"),
        (["devices", "show", "nope"], "no device 'nope'"),
        (["telemetry", "show", "--since", "soon"], "is not a duration"),
    ],
)
def test_read_errors_are_the_stores_errors(
    team: TeamServer, command: list[str], message: str
) -> None:
    done = amlpkg(*command, env=team.env("reader"), check=False)
    assert done.returncode == 2
    assert message in done.stderr
    assert "Traceback" not in done.stderr


def test_a_missing_token_is_refused_before_any_local_read(team: TeamServer) -> None:
    env = {**team.env("reader"), "AMLPKG_TRACKING_TOKEN": "amlpkg_000000000000_" + "x" * 43}
    done = amlpkg("devices", "list", env=env, check=False)
    assert done.returncode == 2
    assert "error:" in done.stderr and "Traceback" not in done.stderr
