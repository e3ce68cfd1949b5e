"""The agent against a real TLS mosquitto playing IoT Hub: swap, reject, report, methods."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path
from typing import Any

import numpy as np
import paho.mqtt.client as mqtt
import pytest
import tritonclient.http as httpclient

from amlpkg.edge_agent.agent import AgentConfig, EdgeAgent
from amlpkg.edge_agent.hub import HubLink
from tests.edge_agent.broker import Broker, Responder, connection_string
from tests.edge_agent.conftest import add_model, sha256, write
from tests.edge_agent.test_swap import running_scorer

pytestmark = pytest.mark.slow


def model_doc(tmp: Path, offset: float, version: int, digest: str | None = None) -> dict[str, Any]:
    data = add_model(offset)
    src = write(tmp, f"m-{offset}-{version}.onnx", data)
    return {"name": "m", "version": version, "sha256": digest or sha256(data), "url": src.as_uri()}


def version_is(version: str) -> Any:
    return lambda r: (r.get("model") or {}).get("version") == version


def infer_value(port: int) -> float:
    client = httpclient.InferenceServerClient(f"127.0.0.1:{port}")
    try:
        inp = httpclient.InferInput("X", [1, 4], "FP32")
        inp.set_data_from_numpy(np.zeros((1, 4), dtype=np.float32))
        return float(client.infer("m", [inp]).as_numpy("Y")[0, 0])
    finally:
        client.close()


class Telemetry:
    """Collects the module's telemetry messages from the broker."""

    def __init__(self, port: int) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.topics: list[str] = []
        self.event = threading.Event()
        self.client = mqtt.Client(client_id="telemetry-probe")
        self.client.on_connect = lambda c, *a: c.subscribe(
            "devices/+/modules/+/messages/events/#", qos=1
        )
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _on_message(self, client: Any, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        self.topics.append(msg.topic)
        self.bodies.append(json.loads(msg.payload))
        self.event.set()

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def test_hub_swap_reject_report_and_methods(tmp_path: Path, broker: Broker) -> None:
    responder = Responder(broker.plain_port)
    telemetry = Telemetry(broker.plain_port)
    responder.desired["model"] = model_doc(tmp_path, 1.0, 1)
    responder.desired["telemetry_interval_s"] = 0.5
    link = HubLink.from_connection_string(
        connection_string("dev1", "edge"), broker.ca, timeout_s=10
    )
    config = AgentConfig(
        device_id="dev1",
        module_id="edge",
        state_dir=tmp_path / "agent",
        host="127.0.0.1",
        http_port=0,
        grpc_port=0,
        telemetry_interval_s=0.5,
    )
    agent = EdgeAgent(config, link)

    async def scenario() -> None:
        run = asyncio.create_task(agent.run())
        try:
            await asyncio.wait_for(agent.started.wait(), 30)
            assert agent.server is not None
            port = agent.server.http_port
            await asyncio.to_thread(responder.wait_reported, version_is("1"))
            async with running_scorer(port) as scorer:
                await scorer.answers(20, poll_s=0.05)
                # IoT Hub sends only what changed: the patch has no model name
                change = {k: v for k, v in model_doc(tmp_path, 2.0, 2).items() if k != "name"}
                responder.patch_desired({"model": change})
                state = await asyncio.to_thread(responder.wait_reported, version_is("2"))
                await scorer.answers(20, poll_s=0.05)
            assert scorer.failures == []
            assert scorer.seen == {1.0, 2.0}
            assert state["providers"] == ["cpu"]  # what the session really runs on
            assert state["last_error"] is None
            assert state["memory"]["rss_bytes"] > 0 and state["disk"]["free_bytes"] > 0

            # a tampered download is rejected; version 2 keeps serving
            tampered = model_doc(tmp_path, 3.0, 3, digest=sha256(b"something else"))
            responder.patch_desired({"model": tampered})
            state = await asyncio.to_thread(
                responder.wait_reported, lambda r: "sha256" in (r.get("last_error") or "")
            )
            assert state["model"]["version"] == "2"
            assert await asyncio.to_thread(infer_value, port) == 2.0

            status, body = await asyncio.to_thread(responder.call_method, "status")
            assert status == 200 and body["model"]["version"] == "2"
            status, body = await asyncio.to_thread(responder.call_method, "rollback")
            assert status == 200 and body["model"]["version"] == "1"
            assert await asyncio.to_thread(infer_value, port) == 1.0
            status, body = await asyncio.to_thread(responder.call_method, "reload")
            assert status == 200
            status, body = await asyncio.to_thread(responder.call_method, "dance")
            assert status == 404 and "status, reload or rollback" in body["error"]

            assert await asyncio.to_thread(telemetry.event.wait, 20)
        finally:
            agent.request_stop()
            await asyncio.wait_for(run, 60)

    try:
        asyncio.run(scenario())
    finally:
        responder.close()
        telemetry.close()
    first = telemetry.bodies[0]
    assert first["message_id"] == f"dev1:{first['seq']}"
    assert first["kind"] == "inference" and first["module"] == "edge"
    assert telemetry.topics[0].startswith("devices/dev1/modules/edge/messages/events/")
