"""`amlpkg telemetry serve` with a team server configured starts nothing: the server receives
telemetry itself, and the command names the URLs; a device message sent to the named URL
with a contributor token is what `telemetry show` then reads from the server."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import httpx

from tests.remote.conftest import TeamServer, amlpkg


def test_serve_names_the_servers_receivers(team: TeamServer, tmp_path: Path) -> None:
    env, cwd = team.env("contributor"), tmp_path / "cwd"
    cwd.mkdir()
    done = amlpkg("telemetry", "serve", "--port", "9", env=env, cwd=cwd)
    assert f"OTEL_EXPORTER_OTLP_ENDPOINT={team.url} " in done.stdout
    assert f"{team.url}/v1/traces, {team.url}/v1/metrics" in done.stdout
    assert team.tokens["contributor"] not in done.stdout  # a placeholder, never the token
    assert list(cwd.iterdir()) == []  # no ./.amlpkg, no receiver started
    found = re.search(r"devices: POST (\S+)", done.stdout)
    assert found is not None
    message = {"message_id": "m1", "device": "cam-9", "model": "iris", "version": 1,
               "time": time.time(), "window_s": 60, "requests": 12, "errors": 0}  # fmt: skip
    headers = {"Authorization": f"Bearer {team.tokens['contributor']}"}
    httpx.post(found.group(1), json=message, headers=headers, timeout=30).raise_for_status()
    shown = amlpkg("telemetry", "show", "--device", "cam-9", "--json", env=env)
    assert json.loads(shown.stdout)["devices"][0]["requests"] == 12


def test_serve_refuses_to_bridge_mqtt_into_a_server(team: TeamServer) -> None:
    done = amlpkg("telemetry", "serve", "--mqtt-host", "127.0.0.1", env=team.env(), check=False)
    assert done.returncode == 2 and "bridges no MQTT broker" in done.stderr
    assert "--home DIR --mqtt-host" in done.stderr and "Traceback" not in done.stderr
