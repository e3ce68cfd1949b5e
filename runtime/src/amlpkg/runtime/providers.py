"""Execution providers: which ones to ask ONNX Runtime for, and whether it gave them.

ONNX Runtime silently falls back to CPU when a GPU provider cannot start
(onnxruntime#11323), so the choice is made here as pure functions and checked
again against ``session.get_providers()`` after the session exists.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from amlpkg.runtime.errors import ModelLoadError
from amlpkg.runtime.model_config import ExecutionProvider

logger = logging.getLogger(__name__)

ORT_NAME: dict[str, str] = {
    "tensorrt": "TensorrtExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "openvino": "OpenVINOExecutionProvider",
    "cpu": "CPUExecutionProvider",
}
SHORT_NAME: dict[str, str] = {v: k for k, v in ORT_NAME.items()}
_CPU = "CPUExecutionProvider"

_FIX: dict[str, str] = {
    "tensorrt": "install onnxruntime-gpu with TensorRT libraries (libnvinfer) on a GPU host",
    "cuda": "install onnxruntime-gpu (not onnxruntime) and the CUDA/cuDNN libraries it needs, "
    "and check that a GPU is visible (nvidia-smi)",
    "openvino": "install onnxruntime-openvino",
}


@dataclass(frozen=True, slots=True)
class ProviderPlan:
    """What to pass to ``InferenceSession(providers=...)`` and what could not be asked for."""

    providers: list[tuple[str, dict[str, str]]]
    unavailable: list[str] = field(default_factory=list)


def _options(spec: ExecutionProvider, version_dir: Path) -> dict[str, str]:
    options = dict(spec.options)
    if spec.name == "tensorrt":
        # Building a TensorRT engine takes minutes; cache it next to the model by default.
        options.setdefault("trt_engine_cache_enable", True)
        options.setdefault("trt_engine_cache_path", str(version_dir / "trt_cache"))
    return {k: str(v) for k, v in options.items()}


def select_providers(
    requested: Sequence[ExecutionProvider], available: Sequence[str], version_dir: Path
) -> ProviderPlan:
    """The ordered provider list to ask ONNX Runtime for.

    Providers this ONNX Runtime build lacks are left out (ONNX Runtime would warn
    and ignore them anyway) and reported in ``unavailable``; CPU always ends the list.
    """
    chosen: list[tuple[str, dict[str, str]]] = []
    unavailable: list[str] = []
    for spec in requested:
        ort_name = ORT_NAME[spec.name]
        if ort_name in (name for name, _ in chosen):
            continue
        if ort_name in available:
            chosen.append((ort_name, _options(spec, version_dir)))
        else:
            unavailable.append(spec.name)
    if _CPU not in (name for name, _ in chosen):
        chosen.append((_CPU, {}))
    return ProviderPlan(chosen, unavailable)


def missing_providers(requested: Sequence[ExecutionProvider], got: Sequence[str]) -> list[str]:
    """Requested accelerator providers (short names) that the session did not get."""
    return [
        spec.name for spec in requested if spec.name != "cpu" and ORT_NAME[spec.name] not in got
    ]


def check_fallback(
    model: str,
    requested: Sequence[ExecutionProvider],
    got: Sequence[str],
    policy: str,
    available: Sequence[str] = (),
) -> bool:
    """Fail or warn when a requested accelerator is missing; True when it fell back."""
    missing = missing_providers(requested, got)
    if not missing:
        return False
    detail = ", ".join(missing)
    fixes = "; ".join(_FIX[name] for name in missing if name in _FIX)
    got_short = [SHORT_NAME.get(p, p) for p in got]
    message = (
        f"model {model!r}: execution provider(s) {detail} requested but the session runs "
        f"on {got_short} (this ONNX Runtime offers {list(available)})"
    )
    if policy == "fail":
        raise ModelLoadError(
            message,
            hint=f"{fixes}; or set on_provider_fallback: warn to serve on the fallback",
        )
    logger.warning(
        "PROVIDER FALLBACK: %s; serving anyway (on_provider_fallback: warn). %s", message, fixes
    )
    return True
