"""Telemetry records from the runtime's statistics and histogram."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import numpy as np
import pytest

from amlpkg.edge_agent.sampler import TelemetrySampler, percentile
from amlpkg.runtime.dataplane import DataPlane
from amlpkg.runtime.types import InferInput, InferRequest
from tests.edge_agent.conftest import add_model


def test_percentile_interpolates_cumulative_buckets() -> None:
    buckets = [(0.001, 50.0), (0.01, 90.0), (0.1, 100.0), (float("inf"), 100.0)]
    assert percentile(buckets, 0.5) == pytest.approx(0.001)
    assert percentile(buckets, 0.7) == pytest.approx(0.001 + 0.009 * 0.5)
    assert percentile(buckets, 0.95) == pytest.approx(0.01 + 0.09 * 0.5)
    assert percentile([], 0.5) is None
    assert percentile([(0.1, 0.0), (float("inf"), 0.0)], 0.5) is None


def _put(repo: Path, version: int, offset: float) -> None:
    """Version ``version`` of model ``m``: Y = X + ``offset``."""
    (repo / "m" / str(version)).mkdir(parents=True)
    (repo / "m" / str(version) / "model.onnx").write_bytes(add_model(offset))


def _request(width: int = 4) -> InferRequest:
    """One row of zeros for ``m`` (a width other than 4 fails)."""
    x = np.zeros((1, width), dtype=np.float32)
    return InferRequest("m", None, [InferInput("X", "FP32", (1, width), x)])


@asynccontextmanager
async def _sampled(repo: Path) -> AsyncIterator[tuple[DataPlane, TelemetrySampler]]:
    """A started data plane over ``repo`` and a sampler of it; stopped after the block."""
    dp = DataPlane.from_repository(repo)
    await dp.start()
    try:
        yield dp, TelemetrySampler(dp)
    finally:
        await dp.stop()


def test_sample_reports_deltas_since_the_previous_sample(tmp_path: Path) -> None:
    _put(tmp_path, 1, 1.0)

    async def scenario() -> tuple[dict[str, object], dict[str, object], dict[str, object]]:
        async with _sampled(tmp_path) as (dp, sampler):
            for _ in range(5):
                await dp.infer(_request())
            with pytest.raises(Exception):
                await dp.infer(_request(width=3))
            first = await sampler.sample()
            await dp.infer(_request())
            second = await sampler.sample()
            third = await sampler.sample()
        return first, second, third

    first, second, third = asyncio.run(scenario())
    assert (first["model"], first["version"]) == ("m", "1")
    assert first["requests"] == 6 and first["errors"] == 1
    assert first["latency_avg_ms"] is not None and first["compute_p95_ms"] is not None
    assert second["requests"] == 1 and second["errors"] == 0
    assert third["requests"] == 0 and third["latency_avg_ms"] is None


def test_requests_served_before_a_swap_are_still_counted(tmp_path: Path) -> None:
    _put(tmp_path, 1, 1.0)

    async def scenario() -> dict[str, object]:
        async with _sampled(tmp_path) as (dp, sampler):
            for _ in range(3):
                await dp.infer(_request())
            _put(tmp_path, 2, 2.0)
            await dp.load_model("m")  # latest policy: version 2 replaces version 1
            assert (await dp.model_metadata("m")).versions == ("2",)
            await dp.infer(_request())
            return await sampler.sample()

    record = asyncio.run(scenario())
    assert record["requests"] == 4
    assert (record["model"], record["version"]) == ("m", "2")


def test_after_a_rollback_the_version_that_answers_is_reported(tmp_path: Path) -> None:
    """A higher version's series outlive its rollback: the record names who served."""
    _put(tmp_path, 1, 1.0)

    async def scenario() -> list[dict[str, object]]:
        async with _sampled(tmp_path) as (dp, sampler):
            _put(tmp_path, 2, 2.0)
            await dp.load_model("m")
            await dp.infer(_request())
            on_two = await sampler.sample()
            shutil.rmtree(tmp_path / "m" / "2")  # rolled back: version 1 serves again
            await dp.load_model("m")
            await dp.infer(_request())
            rolled_back = await sampler.sample()
            quiet = await sampler.sample()
            return [on_two, rolled_back, quiet]

    on_two, rolled_back, quiet = asyncio.run(scenario())
    assert on_two["version"] == "2"
    assert rolled_back["version"] == "1" and rolled_back["requests"] == 1
    assert quiet["version"] == "1" and quiet["requests"] == 0
