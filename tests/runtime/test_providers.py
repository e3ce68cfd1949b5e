"""Execution provider choice (pure) and fallback handling on a real CPU-only ONNX Runtime."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from amlpkg.runtime.dataplane import DataPlane
from amlpkg.runtime.errors import ModelLoadError
from amlpkg.runtime.model_config import ExecutionProvider as EP
from amlpkg.runtime.providers import check_fallback, missing_providers, select_providers
from tests.runtime.test_core_dataplane import with_dataplane
from tests.runtime.toy_models import infer_request, mlp_model, save, write_config

GPU_BUILD = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]


def test_select_keeps_the_order_and_ends_with_cpu(tmp_path: Path) -> None:
    plan = select_providers([EP(name="cuda", options={"device_id": 1})], GPU_BUILD, tmp_path)
    assert plan.providers == [
        ("CUDAExecutionProvider", {"device_id": "1"}),
        ("CPUExecutionProvider", {}),
    ]
    assert plan.unavailable == []


def test_select_drops_what_the_build_lacks(tmp_path: Path) -> None:
    requested = [EP(name="tensorrt"), EP(name="cuda"), EP(name="cpu")]
    plan = select_providers(requested, ["CPUExecutionProvider"], tmp_path)
    assert plan.providers == [("CPUExecutionProvider", {})]
    assert plan.unavailable == ["tensorrt", "cuda"]


def test_tensorrt_caches_engines_under_the_model_by_default(tmp_path: Path) -> None:
    plan = select_providers([EP(name="tensorrt"), EP(name="cuda")], GPU_BUILD, tmp_path)
    name, options = plan.providers[0]
    assert name == "TensorrtExecutionProvider"
    assert options["trt_engine_cache_enable"] == "True"
    assert options["trt_engine_cache_path"] == str(tmp_path / "trt_cache")
    custom = select_providers(
        [EP(name="tensorrt", options={"trt_engine_cache_path": "/cache"})], GPU_BUILD, tmp_path
    )
    assert custom.providers[0][1]["trt_engine_cache_path"] == "/cache"
    assert [n for n, _ in plan.providers] == GPU_BUILD


def test_missing_accelerators_and_policy() -> None:
    requested = [EP(name="cuda"), EP(name="cpu")]
    assert missing_providers(requested, ["CUDAExecutionProvider", "CPUExecutionProvider"]) == []
    assert missing_providers(requested, ["CPUExecutionProvider"]) == ["cuda"]
    with pytest.raises(ModelLoadError) as caught:
        check_fallback("m", requested, ["CPUExecutionProvider"], "fail")
    assert "cuda requested but the session runs on ['cpu']" in caught.value.message
    assert caught.value.hint is not None and "onnxruntime-gpu" in caught.value.hint
    assert check_fallback("m", requested, ["CPUExecutionProvider"], "warn") is True
    assert check_fallback("m", [EP(name="cpu")], ["CPUExecutionProvider"], "fail") is False


@pytest.mark.skipif(
    "CUDAExecutionProvider" in ort.get_available_providers(), reason="needs a CPU-only build"
)
def test_cuda_fail_is_a_load_error_while_cuda_warn_serves_on_cpu(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    save(mlp_model(), tmp_path, "strict")
    write_config(tmp_path, "strict", "execution_providers: [{name: cuda}]\n")
    save(mlp_model(), tmp_path, "lenient")
    write_config(
        tmp_path,
        "lenient",
        "execution_providers: [{name: cuda}, {name: cpu}]\non_provider_fallback: warn\n",
    )
    x = np.ones((1, 64), np.float32)

    async def body(dp: DataPlane) -> None:
        rows = {r.name: r for r in await dp.repository_index()}
        assert rows["strict"].state == "UNAVAILABLE"
        assert "execution provider(s) cuda requested" in rows["strict"].reason
        assert "onnxruntime-gpu" in rows["strict"].reason
        assert rows["lenient"].state == "READY"
        response = await dp.infer(infer_request("lenient", {"x": x}))
        assert response.outputs[0].shape == (1, 10)
        meta = await dp.model_metadata("lenient")
        assert meta.parameters == {"execution_providers": ["cpu"], "provider_fallback": True}
        registry = dp.metrics_registry
        labels = {"model": "lenient", "version": "1"}
        assert registry.get_sample_value("amlpkg_model_provider_fallback", labels) == 1.0
        assert (
            registry.get_sample_value(
                "amlpkg_model_execution_provider", {**labels, "provider": "cpu"}
            )
            == 1.0
        )

    with caplog.at_level(logging.WARNING, logger="amlpkg.runtime.providers"):
        with_dataplane(tmp_path, body)
    assert any("PROVIDER FALLBACK" in r.getMessage() for r in caplog.records)
