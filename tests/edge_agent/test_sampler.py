"""Telemetry records from the runtime's statistics and histogram."""

from __future__ import annotations

import asyncio
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


def test_sample_reports_deltas_since_the_previous_sample(tmp_path: Path) -> None:
    (tmp_path / "m" / "1").mkdir(parents=True)
    (tmp_path / "m" / "1" / "model.onnx").write_bytes(add_model(1.0))

    async def scenario() -> tuple[dict[str, object], dict[str, object], dict[str, object]]:
        dp = DataPlane.from_repository(tmp_path)
        await dp.start()
        sampler = TelemetrySampler(dp)
        x = np.zeros((1, 4), dtype=np.float32)
        good = InferRequest("m", None, [InferInput("X", "FP32", (1, 4), x)])
        bad = InferRequest("m", None, [InferInput("X", "FP32", (1, 3), x[:, :3])])
        try:
            for _ in range(5):
                await dp.infer(good)
            with pytest.raises(Exception):
                await dp.infer(bad)
            first = await sampler.sample()
            await dp.infer(good)
            second = await sampler.sample()
            third = await sampler.sample()
        finally:
            await dp.stop()
        return first, second, third

    first, second, third = asyncio.run(scenario())
    assert (first["model"], first["version"]) == ("m", "1")
    assert first["requests"] == 6 and first["errors"] == 1
    assert first["latency_avg_ms"] is not None and first["compute_p95_ms"] is not None
    assert second["requests"] == 1 and second["errors"] == 0
    assert third["requests"] == 0 and third["latency_avg_ms"] is None


def test_requests_served_before_a_swap_are_still_counted(tmp_path: Path) -> None:
    (tmp_path / "m" / "1").mkdir(parents=True)
    (tmp_path / "m" / "1" / "model.onnx").write_bytes(add_model(1.0))

    async def scenario() -> dict[str, object]:
        dp = DataPlane.from_repository(tmp_path)
        await dp.start()
        sampler = TelemetrySampler(dp)
        x = np.zeros((1, 4), dtype=np.float32)
        request = InferRequest("m", None, [InferInput("X", "FP32", (1, 4), x)])
        try:
            for _ in range(3):
                await dp.infer(request)
            (tmp_path / "m" / "2").mkdir()
            (tmp_path / "m" / "2" / "model.onnx").write_bytes(add_model(2.0))
            await dp.load_model("m")  # latest policy: version 2 replaces version 1
            assert (await dp.model_metadata("m")).versions == ("2",)
            await dp.infer(request)
            return await sampler.sample()
        finally:
            await dp.stop()

    record = asyncio.run(scenario())
    assert record["requests"] == 4
    assert (record["model"], record["version"]) == ("m", "2")


def test_after_a_rollback_the_version_that_answers_is_reported(tmp_path: Path) -> None:
    """A higher version's series outlive its rollback: the record names who served."""
    import shutil

    (tmp_path / "m" / "1").mkdir(parents=True)
    (tmp_path / "m" / "1" / "model.onnx").write_bytes(add_model(1.0))

    async def scenario() -> list[dict[str, object]]:
        dp = DataPlane.from_repository(tmp_path)
        await dp.start()
        sampler = TelemetrySampler(dp)
        x = np.zeros((1, 4), dtype=np.float32)
        request = InferRequest("m", None, [InferInput("X", "FP32", (1, 4), x)])
        try:
            (tmp_path / "m" / "2").mkdir()
            (tmp_path / "m" / "2" / "model.onnx").write_bytes(add_model(2.0))
            await dp.load_model("m")
            await dp.infer(request)
            on_two = await sampler.sample()
            shutil.rmtree(tmp_path / "m" / "2")  # rolled back: version 1 serves again
            await dp.load_model("m")
            await dp.infer(request)
            rolled_back = await sampler.sample()
            quiet = await sampler.sample()
            return [on_two, rolled_back, quiet]
        finally:
            await dp.stop()

    on_two, rolled_back, quiet = asyncio.run(scenario())
    assert on_two["version"] == "2"
    assert rolled_back["version"] == "1" and rolled_back["requests"] == 1
    assert quiet["version"] == "1" and quiet["requests"] == 0
