"""The agent retries a model download that failed, by itself, with backoff and jitter.

The control link here is an in-memory stand-in (the desired document and the reported
patches in lists): what is under test is the agent's retry of the download, which
needs no hub; the IoT Hub link itself is tested against mosquitto in test_hub.py.
"""

from __future__ import annotations

import asyncio
import random
from pathlib import Path
from typing import Any

import pytest

from amlpkg.edge_agent.agent import AgentConfig, EdgeAgent
from amlpkg.edge_agent.link import DesiredHandler, MethodHandler
from amlpkg.edge_agent.outbox import Outbox, OutboxMessage
from amlpkg.edge_agent.retry import Backoff
from tests.edge_agent.conftest import FileServer, add_model, sha256

pytestmark = pytest.mark.slow


class MemoryLink:
    """Desired state from a dict, reported patches into a list, telemetry acknowledged."""

    def __init__(self, desired: dict[str, Any]) -> None:
        self.desired = desired
        self.reports: list[dict[str, Any]] = []

    async def start(self, on_desired: DesiredHandler, on_method: MethodHandler) -> None:
        self.on_desired = on_desired

    async def get_desired(self) -> dict[str, Any]:
        return self.desired

    async def report(self, patch: dict[str, Any]) -> None:
        self.reports.append(patch)

    async def send(self, message: OutboxMessage) -> None:
        return None

    async def close(self) -> None:
        return None


async def _until(check: Any, timeout: float, what: str) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


def test_a_download_that_fails_is_retried_until_it_succeeds(
    tmp_path: Path, file_server: FileServer
) -> None:
    data = add_model(2.0)
    desired = {"model": {"name": "m", "version": "2", "sha256": sha256(data),
                         "url": file_server.url("/m2.onnx")}}  # fmt: skip
    link = MemoryLink(desired)
    config = AgentConfig(
        device_id="dev-retry",
        state_dir=tmp_path / "state",
        host="127.0.0.1",
        http_port=0,
        grpc_port=0,
        telemetry_interval_s=60.0,
        retry_interval_s=0.05,
        retry_max_s=0.2,
        candidate_check=False,
    )
    agent = EdgeAgent(config, link)

    def attempts() -> int:
        return max((r.get("download", {}).get("attempts", 0) for r in link.reports), default=0)

    async def scenario() -> None:
        task = asyncio.create_task(agent.run())
        try:
            await asyncio.wait_for(agent.started.wait(), 60)
            # Not published yet (404): the agent keeps trying without a new desired patch.
            await _until(lambda: attempts() >= 3, 30, "three retries")
            assert agent.swapper is not None and agent.swapper.state.current is None
            file_server.files["/m2.onnx"] = data
            file_server.cut["/m2.onnx"] = len(data) // 2  # and the first answer is cut
            await _until(
                lambda: (
                    agent.swapper is not None
                    and agent.swapper.state.current is not None
                    and agent.swapper.state.current.version == "2"
                ),
                30,
                "the model to be served",
            )
            await _until(lambda: link.reports[-1]["download"]["next_retry_s"] is None, 10, "idle")
            assert link.reports[-1]["model"]["version"] == "2"
            assert link.reports[-1]["last_error"] is None
        finally:
            agent.request_stop()
            await asyncio.wait_for(task, 30)

    asyncio.run(scenario())
    assert attempts() >= 3


def test_backoff_grows_to_its_cap_with_jitter_in_the_upper_half() -> None:
    backoff = Backoff(base_s=1.0, max_s=8.0, rng=random.Random(7))
    delays = [backoff.next_delay() for _ in range(8)]
    windows = [1, 2, 4, 8, 8, 8, 8, 8]
    assert all(w / 2 <= d <= w for d, w in zip(delays, windows, strict=True))
    assert backoff.attempts == 8
    # Two devices with different random streams do not retry in lockstep.
    other = Backoff(base_s=1.0, max_s=8.0, rng=random.Random(8))
    assert [other.next_delay() for _ in range(8)] != delays


def test_outbox_files_stay_bounded_on_disk(tmp_path: Path) -> None:
    cap = 4096
    with Outbox(tmp_path / "q.db", "dev", max_bytes=cap) as box:
        for i in range(3000):
            box.append({"n": i, "pad": "x" * 100})
            if i % 50 == 49:
                head = box.peek(10)
                if head:
                    box.ack(head[-1].seq)
        pending, pending_bytes = box.pending()
        assert pending_bytes <= cap and pending > 0
        # SQLite needs a few pages of its own; 4 MB of log, as before, is far beyond this.
        assert box.disk_bytes() <= 256 * 1024, box.disk_bytes()
        assert box.dropped > 0
