"""`amlpkg telemetry serve` with a team server configured starts nothing: the server receives
telemetry itself, and the command names the URLs; a device message sent to the named URL
with a contributor token is what `telemetry show` then reads from the server."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import paho.mqtt.publish as publish

from tests.remote.conftest import AMLPKG, TeamServer, amlpkg
from tests.services import free_port, require


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
    assert "AMLPKG_STORE=" in done.stderr and "Traceback" not in done.stderr


def test_a_bridge_beside_the_server_on_its_store_lands_device_telemetry_there(
    team: TeamServer, tmp_path: Path
) -> None:
    """The issue's "beside it on the same store": the MQTT bridge runs as its own process
    on the server's store, and the server reads what it wrote."""
    require(shutil.which("mosquitto") is not None, "mosquitto is not installed")
    port = free_port()
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\n")
    broker = subprocess.Popen(["mosquitto", "-c", str(conf)], stderr=subprocess.DEVNULL)
    bridge_env = {k: v for k, v in team.env().items() if k != "AMLPKG_TRACKING_URI"}
    bridge_env["AMLPKG_HOME"] = str(team.home)  # the server's store, not a login
    log = tmp_path / "bridge.log"
    with log.open("w") as out:
        bridge = subprocess.Popen(
            [AMLPKG, "telemetry", "serve", "--port", str(free_port()),
             "--mqtt-host", "127.0.0.1", "--mqtt-port", str(port)],
            env=bridge_env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while "bridging MQTT" not in log.read_text():
            assert bridge.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        message = {"message_id": "b1", "model": "iris", "version": 1, "time": time.time(),
                   "window_s": 60, "requests": 7, "errors": 1}  # fmt: skip
        env = team.env("reader")
        while True:  # the bridge subscribes once connected: publish until it lands
            publish.single("devices/cam-b/modules/agent/messages/events", json.dumps(message),
                           qos=1, hostname="127.0.0.1", port=port)  # fmt: skip
            shown = amlpkg("telemetry", "show", "--device", "cam-b", "--json", env=env)
            devices = json.loads(shown.stdout)["devices"]
            if devices:
                break
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.5)
        # Deduplicated by message id however often it was published.
        assert (devices[0]["requests"], devices[0]["errors"]) == (7, 1)
    finally:
        for process in (bridge, broker):
            process.terminate()
            process.wait(timeout=30)
