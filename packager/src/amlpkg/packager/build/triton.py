"""Export a Triton Inference Server model repository (``config.pbtxt`` + versions).

For users who outgrow our server: ``tritonserver --model-repository DIR`` serves
the same model with ``platform: "onnxruntime_onnx"``. The config is written in
protobuf text format from the model's signature (pure function, unit-tested by
parsing it into Triton's ``ModelConfig`` message).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from amlpkg.datatypes import BY_V2
from amlpkg.errors import AlreadyExistsError, InvalidArgumentError


def _triton_type(datatype: Any) -> str | None:
    """Triton's DataType enum name of a V2 datatype (BF16: not in the numpy-based table)."""
    if datatype == "BF16":
        return "TYPE_BF16"
    found = BY_V2.get(str(datatype))
    return None if found is None else found.triton


_KIND = {"cpu": "KIND_CPU", "cuda": "KIND_GPU", "tensorrt": "KIND_GPU", "openvino": "KIND_CPU"}


def _dims(shape: list[Any] | None, batched: bool, where: str) -> list[int] | None:
    """Triton dims (without the batch dim when batched); None for a scalar per sample."""
    if shape is None:
        raise InvalidArgumentError(
            f"{where} has no static rank; Triton needs one", hint="export the model with shapes"
        )
    dims = [d if isinstance(d, int) and d >= 0 else -1 for d in shape]
    if batched:
        if not dims:
            raise InvalidArgumentError(f"{where} is a scalar: it cannot be batched")
        dims = dims[1:]
    return dims or None


def _tensor(kind: str, spec: dict[str, Any], batched: bool) -> str:
    where = f"{kind} {spec['name']!r}"
    datatype = spec.get("datatype")
    triton_type = _triton_type(datatype)
    if triton_type is None:
        raise InvalidArgumentError(f"{where} has a type Triton cannot serve ({datatype})")
    dims = _dims(spec.get("shape"), batched, where)
    # Triton wants at least one dim: a scalar per sample is [1] reshaped to [].
    shown = ", ".join(str(d) for d in dims or [1])
    reshape = "" if dims else "\n    reshape: { shape: [ ] }"
    return (
        f"  {{\n    name: {json.dumps(spec['name'])}\n"
        f"    data_type: {triton_type}\n    dims: [ {shown} ]{reshape}\n  }}"
    )


def config_pbtxt(
    name: str,
    signature: dict[str, Any],
    *,
    max_batch_size: int = 0,
    queue_delay_us: int = 0,
    instance_count: int = 1,
    provider: str = "cpu",
) -> str:
    """Triton's ``config.pbtxt`` (protobuf text format) for an ONNX model."""
    if instance_count < 1 or max_batch_size < 0:
        raise InvalidArgumentError("instance_count must be >= 1 and max_batch_size >= 0")
    batched = max_batch_size > 0
    inputs = ",\n".join(_tensor("input", s, batched) for s in signature.get("inputs", []))
    outputs = ",\n".join(_tensor("output", s, batched) for s in signature.get("outputs", []))
    parts = [
        f"name: {json.dumps(name)}",
        'platform: "onnxruntime_onnx"',
        f"max_batch_size: {max_batch_size}",
        f"input [\n{inputs}\n]",
        f"output [\n{outputs}\n]",
        f"instance_group [\n  {{\n    count: {instance_count}\n"
        f"    kind: {_KIND.get(provider, 'KIND_CPU')}\n  }}\n]",
        "version_policy: { latest: { num_versions: 1 } }",
    ]
    if batched:
        parts.append(f"dynamic_batching {{\n  max_queue_delay_microseconds: {queue_delay_us}\n}}")
    if provider == "tensorrt":
        parts.append(
            "optimization { execution_accelerators { gpu_execution_accelerator"
            ' [ { name: "tensorrt" } ] } }'
        )
    elif provider == "openvino":
        parts.append(
            "optimization { execution_accelerators { cpu_execution_accelerator"
            ' [ { name: "openvino" } ] } }'
        )
    return "\n".join(parts) + "\n"


def write_repository(
    output: Path,
    *,
    name: str,
    version: int,
    model_file: Path,
    config: str,
    overwrite: bool = False,
) -> Path:
    """``<output>/<name>/config.pbtxt`` and ``<output>/<name>/<version>/model.onnx``."""
    model_dir = output / name
    if model_dir.exists() and not overwrite:
        raise AlreadyExistsError(
            f"{model_dir} exists already", hint="choose another --output or remove it first"
        )
    (model_dir / str(version)).mkdir(parents=True, exist_ok=True)
    shutil.copyfile(model_file, model_dir / str(version) / "model.onnx")
    (model_dir / "config.pbtxt").write_text(config, encoding="utf-8")
    return output
