"""The optimize recipe: which variants and providers each target gets (pure, no model)."""

from __future__ import annotations

import pytest

from amlpkg.errors import InvalidArgumentError
from amlpkg.packager.optimize import plan
from amlpkg.packager.optimize.recipe import (
    FP16,
    GRAPH,
    INT8_DYNAMIC,
    INT8_STATIC,
    providers_for,
)


def kinds(target: str, precision: str | None = None) -> list[tuple[str, str]]:
    return [(s.kind, s.precision) for s in plan(target, precision)]


def test_cpu_gets_portable_graph_and_both_int8() -> None:
    assert kinds("cpu") == [(GRAPH, "fp32"), (INT8_DYNAMIC, "int8"), (INT8_STATIC, "int8")]
    graph = plan("cpu")[0]
    # extended, not all: "all" bakes this CPU's NCHWc block size into the file.
    assert graph.graph_level == "extended"
    assert graph.measured_provider == "CPUExecutionProvider"
    assert [p["name"] for p in graph.providers] == ["cpu"]


@pytest.mark.parametrize("target", ["cuda", "tensorrt", "openvino"])
def test_accelerator_targets_save_only_basic_level(target: str) -> None:
    for spec in plan(target):
        if spec.kind == GRAPH:
            assert spec.graph_level == "basic"
        assert spec.providers[-1]["name"] == "cpu"  # every chain falls back to the CPU


def test_cuda_gets_fp16_and_no_int8() -> None:
    assert kinds("cuda") == [(GRAPH, "fp32"), (FP16, "fp16")]
    assert plan("cuda")[1].measured_provider == "CUDAExecutionProvider"
    with pytest.raises(InvalidArgumentError) as caught:
        plan("cuda", "int8")
    assert "--target tensorrt" in (caught.value.hint or "")


def test_tensorrt_fp16_and_int8_go_through_provider_options() -> None:
    specs = {s.precision: s for s in plan("tensorrt")}
    assert [p["name"] for p in specs["fp32"].providers] == ["tensorrt", "cuda", "cpu"]
    # TensorRT picks fp16 kernels itself from the fp32 graph.
    assert specs["fp16"].kind == GRAPH
    assert specs["fp16"].providers[0]["options"] == {"trt_fp16_enable": True}
    assert specs["int8"].kind == INT8_STATIC and specs["int8"].needs_calibration
    assert specs["int8"].options["symmetric"] is True  # TensorRT explicit quantization
    assert specs["int8"].providers[0]["options"] == {"trt_int8_enable": True}
    assert specs["int8"].measured_provider == "TensorrtExecutionProvider"


def test_openvino_recipe() -> None:
    assert kinds("openvino") == [(GRAPH, "fp32"), (INT8_STATIC, "int8")]
    assert plan("openvino")[0].providers[0] == {
        "name": "openvino",
        "options": {"device_type": "CPU"},
    }
    with pytest.raises(InvalidArgumentError, match="offers no fp16"):
        plan("openvino", "fp16")


def test_precision_filters_and_unknown_values_are_refused() -> None:
    assert kinds("cpu", "int8") == [(INT8_DYNAMIC, "int8"), (INT8_STATIC, "int8")]
    assert kinds("cpu", "fp32") == [(GRAPH, "fp32")]
    with pytest.raises(InvalidArgumentError, match="cpu offers no fp16"):
        plan("cpu", "fp16")
    with pytest.raises(InvalidArgumentError, match="unknown target 'gpu'"):
        plan("gpu")
    with pytest.raises(InvalidArgumentError, match="unknown precision 'int4'"):
        plan("cpu", "int4")


def test_providers_do_not_share_option_dicts() -> None:
    first = providers_for("tensorrt", {"trt_fp16_enable": True})
    first[0]["options"]["device_id"] = 1
    assert providers_for("tensorrt")[0]["options"] == {}
