"""Prometheus metrics of the data plane: per-instance registry, outcomes, latencies, in-flight."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest
from prometheus_client import REGISTRY, generate_latest

from amlpkg.runtime.dataplane import DataPlane
from amlpkg.runtime.errors import InvalidInputError
from tests.runtime.test_core_dataplane import with_dataplane
from tests.runtime.toy_models import infer_request, mlp_model, save, write_config


def test_request_latency_and_in_flight_metrics(tmp_path: Path) -> None:
    save(mlp_model(), tmp_path, "mlp")
    write_config(tmp_path, "mlp", "max_batch_size: 8\n")  # batched, each request runs alone
    labels = {"model": "mlp", "version": "1"}

    async def body(dp: DataPlane) -> bytes:
        x = np.ones((2, 64), np.float32)
        await asyncio.gather(*(dp.infer(infer_request("mlp", {"x": x})) for _ in range(3)))
        with pytest.raises(InvalidInputError):
            await dp.infer(infer_request("mlp", {"x": x[:, :5]}))
        value = dp.metrics_registry.get_sample_value
        assert value("amlpkg_inference_requests_total", {**labels, "outcome": "success"}) == 3
        assert value("amlpkg_inference_requests_total", {**labels, "outcome": "failure"}) == 1
        assert value("amlpkg_inference_queue_seconds_count", labels) == 3
        assert value("amlpkg_inference_compute_seconds_count", labels) == 3
        assert (value("amlpkg_inference_compute_seconds_sum", labels) or 0) > 0
        assert value("amlpkg_inference_batch_size_sum", labels) == 6  # samples
        assert value("amlpkg_inference_in_flight", labels) == 0
        return generate_latest(dp.metrics_registry)

    text = with_dataplane(tmp_path, body).decode()
    for name in (
        "amlpkg_inference_requests_total",
        "amlpkg_inference_batch_size_bucket",
        "amlpkg_inference_in_flight",
        "amlpkg_model_execution_provider",
    ):
        assert name in text
    # Never the process-global registry: two servers in one process must not collide.
    assert REGISTRY.get_sample_value("amlpkg_inference_in_flight", labels) is None


def test_each_dataplane_has_its_own_registry(tmp_path: Path) -> None:
    save(mlp_model(), tmp_path, "mlp")
    first = DataPlane.from_repository(tmp_path, environ={})
    second = DataPlane.from_repository(tmp_path, environ={})
    assert first.metrics_registry is not second.metrics_registry


def test_unload_drops_the_provider_series(tmp_path: Path) -> None:
    save(mlp_model(), tmp_path, "mlp")

    async def body(dp: DataPlane) -> None:
        labels = {"model": "mlp", "version": "1", "provider": "cpu"}
        value = dp.metrics_registry.get_sample_value
        assert value("amlpkg_model_execution_provider", labels) == 1
        await dp.unload_model("mlp")
        assert value("amlpkg_model_execution_provider", labels) is None

    with_dataplane(tmp_path, body)
