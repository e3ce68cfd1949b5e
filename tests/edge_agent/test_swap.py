"""Model swaps on a real runtime server: 0 failed requests, failed checks keep the old model."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import numpy as np
import pytest
import tritonclient.http as httpclient

from amlpkg.edge_agent.desired import DesiredModel
from amlpkg.edge_agent.swap import ModelSwapper
from amlpkg.errors import FailedPreconditionError, IntegrityError
from amlpkg.runtime.dataplane import DataPlane
from amlpkg.runtime.server import RunningServer, running
from amlpkg.runtime.settings import ServerSettings
from tests.edge_agent.conftest import add_model, sha256, write

pytestmark = pytest.mark.slow


def desired_for(tmp: Path, offset: float, version: int, name: str = "m") -> DesiredModel:
    data = add_model(offset)
    src = write(tmp, f"src-{offset}-{version}.onnx", data)
    return DesiredModel(name=name, version=str(version), sha256=sha256(data), url=src.as_uri())


@asynccontextmanager
async def agent_runtime(tmp: Path) -> AsyncIterator[tuple[RunningServer, ModelSwapper]]:
    repo = tmp / "repo"
    repo.mkdir(exist_ok=True)
    settings = ServerSettings(
        model_repository=repo, host="127.0.0.1", http_port=0, grpc_port=0, shutdown_timeout=2
    )
    dp = DataPlane.from_repository(repo)
    async with running(settings, dp) as server:
        yield server, ModelSwapper(dp, repo, tmp / "state")


class Scorer(threading.Thread):
    """Scores continuously through tritonclient and counts failures and answers seen."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.stop = threading.Event()
        self.ok = 0
        self.failures: list[str] = []
        self.seen: set[float] = set()

    def run(self) -> None:
        client = httpclient.InferenceServerClient(f"127.0.0.1:{self.port}")
        x = np.zeros((1, 4), dtype=np.float32)
        try:
            while not self.stop.is_set():
                inp = httpclient.InferInput("X", [1, 4], "FP32")
                inp.set_data_from_numpy(x)
                try:
                    result = client.infer("m", [inp])
                    self.seen.add(float(result.as_numpy("Y")[0, 0]))
                    self.ok += 1
                except Exception as exc:
                    self.failures.append(repr(exc))
        finally:
            client.close()

    async def answers(self, count: int, poll_s: float = 0.02) -> None:
        """Wait until ``count`` more requests have succeeded (or the scorer has stopped)."""
        target = self.ok + count
        while self.ok < target and self.is_alive():
            await asyncio.sleep(poll_s)


@asynccontextmanager
async def running_scorer(port: int) -> AsyncIterator[Scorer]:
    """A :class:`Scorer` of ``port`` running for the block; stopped and joined after it."""
    scorer = Scorer(port)
    scorer.start()
    try:
        yield scorer
    finally:
        scorer.stop.set()
        await asyncio.to_thread(scorer.join, 10)


def test_swap_under_load_fails_no_request(tmp_path: Path) -> None:
    asyncio.run(_swap_under_load_fails_no_request(tmp_path))


async def _swap_under_load_fails_no_request(tmp_path: Path) -> None:
    async with agent_runtime(tmp_path) as (server, swapper):
        assert await swapper.apply(desired_for(tmp_path, 1.0, 1))
        async with running_scorer(server.http_port) as scorer:
            await scorer.answers(20)
            assert await swapper.apply(desired_for(tmp_path, 2.0, 2))
            await scorer.answers(20)
        assert scorer.failures == []
        assert scorer.seen == {1.0, 2.0}
        assert swapper.state.current is not None and swapper.state.current.version == "2"
        index = await server.dataplane.repository_index()
        # the hidden candidate stays in the runtime's table as an unloaded row only
        assert [(r.name, r.version, r.state) for r in index if r.state == "READY"] == [
            ("m", "2", "READY")
        ]
        # applying the same desired state again is a no-op
        assert not await swapper.apply(desired_for(tmp_path, 2.0, 2))
        # rollback serves version 1 again from the local cache
        await swapper.rollback()
        result = await server.dataplane.model_metadata("m")
        assert result.versions == ("1",)


def test_failed_checks_keep_the_old_model(tmp_path: Path) -> None:
    asyncio.run(_failed_checks_keep_the_old_model(tmp_path))


async def _failed_checks_keep_the_old_model(tmp_path: Path) -> None:
    async with agent_runtime(tmp_path) as (server, swapper):
        good = desired_for(tmp_path, 1.0, 1)
        await swapper.apply(good)
        tampered = DesiredModel(name="m", version="2", sha256=sha256(b"other"), url=good.url)
        with pytest.raises(IntegrityError):
            await swapper.apply(tampered)
        assert "sha256" in (swapper.state.last_error or "")
        garbage = b"not an onnx model"
        broken_src = write(tmp_path, "broken.onnx", garbage)
        broken = DesiredModel(
            name="m", version="3", sha256=sha256(garbage), url=broken_src.as_uri()
        )
        with pytest.raises(FailedPreconditionError, match="load/smoke check"):
            await swapper.apply(broken)
        assert swapper.state.current == good
        assert (await server.dataplane.model_metadata("m")).versions == ("1",)
        assert sorted(p.name for p in (tmp_path / "repo").iterdir()) == ["m"]


def test_state_survives_restart(tmp_path: Path) -> None:
    asyncio.run(_state_survives_restart(tmp_path))


async def _state_survives_restart(tmp_path: Path) -> None:
    async with agent_runtime(tmp_path) as (_, swapper):
        await swapper.apply(desired_for(tmp_path, 1.0, 1))
    async with agent_runtime(tmp_path) as (server, swapper):
        assert swapper.state.current is not None and swapper.state.current.version == "1"
        assert await server.dataplane.model_ready("m")


def test_a_bad_signature_keeps_the_old_model(
    tmp_path: Path, signing_key: tuple[object, bytes]
) -> None:
    import base64

    key, pem = signing_key

    async def scenario() -> None:
        async with agent_runtime(tmp_path) as (server, swapper):
            swapper.public_key_pem = pem
            good = desired_for(tmp_path, 1.0, 1)
            signature = base64.b64encode(key.sign(bytes.fromhex(good.sha256))).decode()  # type: ignore[attr-defined]
            await swapper.apply(good.model_copy(update={"signature": signature}))
            forged = desired_for(tmp_path, 2.0, 2).model_copy(update={"signature": signature})
            with pytest.raises(IntegrityError, match="does not verify"):
                await swapper.apply(forged)
            assert (await server.dataplane.model_metadata("m")).versions == ("1",)
            assert "does not verify" in (swapper.state.last_error or "")

    asyncio.run(scenario())
