"""Store-and-forward through a broker outage and an agent restart, and the disk cap."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from amlpkg.collector.server import MqttOptions, running_collector
from amlpkg.edge_agent.agent import AgentConfig, EdgeAgent
from amlpkg.edge_agent.hub import HubLink
from amlpkg.edge_agent.outbox import Outbox
from amlpkg.store.workspace import open_workspace
from tests.edge_agent.broker import Broker, Responder, connection_string

pytestmark = pytest.mark.slow


def make_agent(tmp: Path, broker: Broker, cap: int = 16 * 1024 * 1024) -> EdgeAgent:
    link = HubLink.from_connection_string(connection_string("dev1", "edge"), broker.ca, timeout_s=3)
    config = AgentConfig(
        device_id="dev1",
        module_id="edge",
        deployment_id="fleet:1",
        state_dir=tmp / "agent",
        host="127.0.0.1",
        http_port=0,
        grpc_port=0,
        telemetry_interval_s=0.2,
        outbox_max_bytes=cap,
        retry_interval_s=0.3,
    )
    return EdgeAgent(config, link)


async def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


def stored_seqs(conn: object) -> list[int]:
    """Sequence numbers in the order the collector first stored them."""
    rows = conn.execute("SELECT seq FROM telemetry ORDER BY rowid").fetchall()  # type: ignore[attr-defined]
    return [int(r[0]) for r in rows]


def test_outage_and_restart_deliver_every_message_once_in_order(
    tmp_path: Path, broker: Broker
) -> None:
    responder = Responder(broker.plain_port)
    mqtt = MqttOptions("127.0.0.1", broker.plain_port, client_id="collector-outage")
    with (
        open_workspace(tmp_path / "ws") as ws,
        running_collector(ws, port=0, mqtt=mqtt) as collector,
    ):
        assert collector.bridge is not None and collector.bridge.connected.wait(10)

        async def scenario() -> None:
            first = make_agent(tmp_path, broker)
            run = asyncio.create_task(first.run())
            await wait_until(lambda: len(stored_seqs(ws.conn)) >= 3, 30, "online telemetry")
            await asyncio.to_thread(broker.stop)
            assert first.outbox is not None
            queued_before = first.outbox.pending()[0]
            await wait_until(
                lambda: first.outbox is not None and first.outbox.pending()[0] >= queued_before + 4,
                30,
                "telemetry queued offline",
            )
            first.request_stop()
            await asyncio.wait_for(run, 60)

            second = make_agent(tmp_path, broker)  # restarted while offline
            run = asyncio.create_task(second.run())
            await asyncio.wait_for(second.started.wait(), 30)
            assert second.outbox is not None
            offline = second.outbox.pending()[0]
            await wait_until(
                lambda: second.outbox is not None and second.outbox.pending()[0] >= offline + 4,
                30,
                "telemetry queued after the restart",
            )
            await asyncio.to_thread(broker.start)
            await wait_until(lambda: second.outbox.pending()[0] == 0, 60, "the outbox to drain")  # type: ignore[union-attr]
            second.request_stop()
            await asyncio.wait_for(run, 60)

        try:
            asyncio.run(scenario())
        finally:
            responder.close()
        with Outbox(tmp_path / "agent" / "outbox.db", "dev1") as box:
            produced_last = box.append({"probe": True}).seq - 1
            dropped = box.dropped
        # the bridge may still be taking the last acknowledged messages off the broker
        deadline = time.monotonic() + 20
        while len(stored_seqs(ws.conn)) < produced_last and time.monotonic() < deadline:
            time.sleep(0.1)
        seqs = stored_seqs(ws.conn)
        bridge = collector.bridge.counters
    assert dropped == 0
    assert seqs == list(range(1, produced_last + 1))  # all of them, once, in order
    assert bridge.stored == produced_last and bridge.rejected == 0


def test_disk_cap_drops_oldest_offline_and_reports_the_count(
    tmp_path: Path, broker: Broker
) -> None:
    responder = Responder(broker.plain_port)
    mqtt = MqttOptions("127.0.0.1", broker.plain_port, client_id="collector-cap")
    cap = 2_000
    with (
        open_workspace(tmp_path / "ws") as ws,
        running_collector(ws, port=0, mqtt=mqtt) as collector,
    ):
        assert collector.bridge is not None and collector.bridge.connected.wait(10)
        broker.stop()  # the device starts offline

        async def scenario() -> dict[str, object]:
            agent = make_agent(tmp_path, broker, cap=cap)
            run = asyncio.create_task(agent.run())
            await asyncio.wait_for(agent.started.wait(), 30)
            assert agent.outbox is not None
            await wait_until(lambda: agent.outbox.dropped >= 3, 30, "drops")  # type: ignore[union-attr]
            assert agent.outbox.pending()[1] <= cap
            await asyncio.to_thread(broker.start)
            state = await asyncio.to_thread(
                responder.wait_reported, lambda r: r.get("telemetry", {}).get("dropped", 0) >= 3
            )
            await wait_until(lambda: agent.outbox.pending()[0] == 0, 60, "the outbox to drain")  # type: ignore[union-attr]
            agent.request_stop()
            await asyncio.wait_for(run, 60)
            return state

        try:
            state = asyncio.run(scenario())
        finally:
            responder.close()
        time.sleep(1)
        seqs = stored_seqs(ws.conn)
    assert state["telemetry"]["dropped"] >= 3  # type: ignore[index]
    # the oldest were dropped: what arrived is a gap-free tail, in order
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    assert seqs[0] > 1
