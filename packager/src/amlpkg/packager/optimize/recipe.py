"""Which variants apply to which target: a pure function of target and precision.

The recipe decides, without touching a model or a device, what ``amlpkg
optimize`` makes for a target and how each variant should be served (the
execution providers, in the runtime's ``config.yaml`` form). Why each choice:

* Offline graph optimization is saved at ``extended`` for CPU: its fusions
  (``FusedMatMul``, ``FusedGemm``, ...) are ``com.microsoft`` ops that every CPU
  build of ONNX Runtime runs. ``all`` (and ``layout``) would also bake in the
  NCHWc layout of *this* CPU's SIMD width (8 floats on AVX2, 16 on AVX-512), so a
  file saved on an AVX-512 build host is slower or unusable on an AVX2 server;
  the runtime applies those online at load on the machine that serves.
* GPU and OpenVINO targets are optimized here, on a CPU, so only ``basic``
  (constant folding, redundant node removal: plain ONNX ops) is saved; the
  extended fusions ONNX Runtime would pick on a CPU are CPU kernels, and
  TensorRT's parser and OpenVINO do not accept ``com.microsoft`` ops at all.
  Those providers fuse for their own hardware when the model loads.
* int8: dynamic quantization (``MatMulInteger``/``DynamicQuantizeLinear``) is a
  CPU technique; static QDQ int8 with a calibration sample suits CPU, OpenVINO
  and TensorRT (whose explicit quantization wants symmetric scales). The CUDA
  provider has no general int8 kernels, so ``cuda`` offers no int8.
* fp16: a converted fp16 graph (inputs and outputs kept fp32) for CUDA; for
  TensorRT the fp32 graph with ``trt_fp16_enable`` (TensorRT picks fp16 kernels
  layer by layer, more accurate than a blanket conversion); CPU and OpenVINO
  are not offered fp16 (ONNX Runtime's CPU provider lacks most fp16 kernels,
  OpenVINO chooses its inference precision per device itself).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from amlpkg.errors import InvalidArgumentError

Target = Literal["cpu", "cuda", "tensorrt", "openvino"]
Precision = Literal["fp32", "fp16", "int8"]
TARGETS: tuple[str, ...] = ("cpu", "cuda", "tensorrt", "openvino")
PRECISIONS: tuple[str, ...] = ("fp32", "fp16", "int8")

# Variant kinds: how the file is made.
GRAPH = "graph"  # ONNX Runtime offline graph optimization, fp32
INT8_DYNAMIC = "int8-dynamic"  # quantize_dynamic
INT8_STATIC = "int8-static"  # quantize_static, QDQ, calibrated
FP16 = "fp16"  # onnxconverter_common float16, fp32 inputs/outputs kept

# The runtime's provider names -> ONNX Runtime's.
ORT_PROVIDERS = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
    "openvino": "OpenVINOExecutionProvider",
}


@dataclass(frozen=True)
class VariantSpec:
    """How to make and serve one variant for one target."""

    kind: str
    target: str
    precision: str
    providers: tuple[dict[str, Any], ...]
    """Ordered providers in the runtime's ``execution_providers`` form (name, options)."""
    graph_level: str = "basic"
    """Graph optimization level the file is saved at (``basic`` or ``extended``)."""
    options: dict[str, Any] = field(default_factory=dict)
    """Knobs for the transform (e.g. symmetric activations for TensorRT)."""

    @property
    def needs_calibration(self) -> bool:
        """Whether making it needs a calibration sample."""
        return self.kind == INT8_STATIC

    @property
    def measured_provider(self) -> str:
        """The ONNX Runtime provider the variant must be measured on."""
        return ORT_PROVIDERS[self.providers[0]["name"]]


def check_target(target: str) -> str:
    """``target`` if known, else a clear error."""
    if target not in TARGETS:
        raise InvalidArgumentError(
            f"unknown target {target!r}", hint=f"use one of: {', '.join(TARGETS)}"
        )
    return target


def check_precision(precision: str | None) -> str | None:
    """``precision`` if known (or None for all), else a clear error."""
    if precision is not None and precision not in PRECISIONS:
        raise InvalidArgumentError(
            f"unknown precision {precision!r}", hint=f"use one of: {', '.join(PRECISIONS)}"
        )
    return precision


def providers_for(target: str, options: dict[str, Any] | None = None) -> tuple[dict[str, Any], ...]:
    """The provider fallback list for ``target``: its own provider first, then what it leans on."""
    check_target(target)
    chain = {
        "cpu": ("cpu",),
        "cuda": ("cuda", "cpu"),
        "tensorrt": ("tensorrt", "cuda", "cpu"),
        "openvino": ("openvino", "cpu"),
    }[target]
    first = {"name": chain[0], "options": dict(options or {})}
    return (first, *({"name": name, "options": {}} for name in chain[1:]))


def _all_specs(target: str) -> list[VariantSpec]:
    base = providers_for(target)
    if target == "cpu":
        return [
            VariantSpec(GRAPH, target, "fp32", base, graph_level="extended"),
            VariantSpec(INT8_DYNAMIC, target, "int8", base),
            VariantSpec(INT8_STATIC, target, "int8", base),
        ]
    if target == "cuda":
        return [
            VariantSpec(GRAPH, target, "fp32", base),
            VariantSpec(FP16, target, "fp16", base),
        ]
    if target == "tensorrt":
        return [
            VariantSpec(GRAPH, target, "fp32", base),
            VariantSpec(GRAPH, target, "fp16", providers_for(target, {"trt_fp16_enable": True})),
            VariantSpec(
                INT8_STATIC,
                target,
                "int8",
                providers_for(target, {"trt_int8_enable": True}),
                options={"symmetric": True, "per_channel": True},
            ),
        ]
    return [
        VariantSpec(GRAPH, target, "fp32", providers_for(target, {"device_type": "CPU"})),
        VariantSpec(INT8_STATIC, target, "int8", providers_for(target, {"device_type": "CPU"})),
    ]


def plan(target: str, precision: str | None = None) -> list[VariantSpec]:
    """The variants ``amlpkg optimize`` makes for ``target`` (only ``precision`` if given).

    Raises :class:`InvalidArgumentError` when the target offers no variant of
    that precision, saying which precisions it does offer.
    """
    check_target(target)
    check_precision(precision)
    specs = _all_specs(target)
    if precision is None:
        return specs
    chosen = [s for s in specs if s.precision == precision]
    if not chosen:
        offered = sorted({s.precision for s in specs})
        raise InvalidArgumentError(
            f"target {target} offers no {precision} variant",
            hint=f"{target} offers {', '.join(offered)}"
            + ("; for GPU int8 use --target tensorrt" if target == "cuda" else ""),
        )
    return chosen
